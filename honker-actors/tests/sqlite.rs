//! The conformance suite (`conformance/`), run on the SQLite store.

mod common;
mod conformance;

/// The store under test. A store joins the suite with a file like this
/// one, this line changed.
fn fresh() -> common::Fresh {
    common::sqlite()
}
