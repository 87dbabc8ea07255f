//! The honker-rs runtime. For now it re-exports the format layer
//! ([`honker_core`]); the actor runtime builds on it.
//!
//! ```
//! let conn = honker_actors::core::open_in_memory().unwrap();
//! assert!(honker_actors::core::stats(&conn).unwrap().is_empty());
//! ```

pub use honker_core as core;
