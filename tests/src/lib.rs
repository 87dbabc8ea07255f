//! Helpers for honker-rs's integration tests: child processes and the
//! Python `honker` package.
