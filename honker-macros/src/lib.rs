//! The `#[job]` attribute of honker-rs. It expands to calls into
//! `honker-actors`; it arrives with the typed-job layer and exports nothing yet.
