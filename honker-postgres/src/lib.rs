//! The honker job format on PostgreSQL: its schema, migrated at open,
//! and every queue operation, each a plain async function over a
//! [`PgConnection`](sqlx::PgConnection) inside the caller's transaction.
//!
//! This crate is to PostgreSQL what `honker-core` is to SQLite: the rows
//! and the SQL, no runtime. `honker-actors` (feature `postgres`) builds
//! its PostgreSQL store on it; a service that enqueues in its own sqlx
//! transaction calls it through `#[job]`'s `enqueue_tx`.
//!
//! - The tables live in a schema of their own (default `honker`), made and
//!   migrated by [`migrate`], under an advisory lock, so that several
//!   processes opening at once migrate once; each migration is recorded
//!   with its version.
//! - Every time is the server's (`now_s()`, unix seconds), never the
//!   client's.
//! - Claims take rows `FOR UPDATE SKIP LOCKED`, in the order `priority
//!   DESC, run_at, id`; every completion is fenced by the claim's worker
//!   string and attempt number, so a stale run never completes a later
//!   claim.
//! - A write that makes work due notifies the schema's channel
//!   ([`Statements::channel`]); PostgreSQL delivers one notification per
//!   committing transaction.
//!
//! The option checks are `honker-core`'s own, so a job refused on SQLite
//! is refused here with the same error.

mod admin;
mod claims;
mod control;
mod enqueue;
mod error;
mod migrate;
mod rows;
pub mod sql;
mod statements;

pub use admin::*;
pub use claims::*;
pub use control::*;
pub use enqueue::*;
pub use error::{Error, Result};
pub use migrate::{migrate, SCHEMA_VERSION};
pub use statements::{Statements, DEFAULT_SCHEMA, MAX_SCHEMA};

pub use sqlx;

/// `text` as PostgreSQL can store it: a NUL (which PostgreSQL's text
/// refuses, where SQLite keeps it) becomes U+FFFD. An error message with
/// a NUL in it is then written, not refused: a refused outcome would be
/// sent again and again.
///
/// ```
/// assert_eq!(honker_postgres::storable("a\0b"), "a\u{FFFD}b");
/// assert!(matches!(honker_postgres::storable("ab"), std::borrow::Cow::Borrowed(_)));
/// ```
pub fn storable(text: &str) -> std::borrow::Cow<'_, str> {
    if text.contains('\0') {
        std::borrow::Cow::Owned(text.replace('\0', "\u{FFFD}"))
    } else {
        std::borrow::Cow::Borrowed(text)
    }
}
