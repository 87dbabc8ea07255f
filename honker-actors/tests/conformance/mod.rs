//! The conformance suite: what every store must do, run through the
//! runtime's public API (and, in `store_ops`, the store traits
//! themselves), as River's `riverdrivertest` is run against each driver.
//!
//! A test binary runs it on one store by defining, at its root,
//!
//! ```ignore
//! fn fresh() -> common::Fresh { common::sqlite() }
//! mod common;
//! mod conformance;
//! ```
//!
//! so adding a store is one such file with that line changed. Each test
//! asks `fresh()` for a store of its own, empty, wrapped in a `Honker`.
//! Nothing here names SQLite, a file, or a connection.

pub mod admin;
pub mod cancel;
pub mod edges;
pub mod lifecycle;
pub mod model;
pub mod other_handles;
pub mod outcomes;
pub mod pause;
pub mod routing;
pub mod store_ops;
pub mod unique;

/// A fresh store under test, in a `Honker`, and what keeps it alive.
pub fn honker() -> crate::common::Fresh {
    crate::common::trace();
    crate::fresh()
}
