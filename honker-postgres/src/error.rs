//! What an operation of this crate fails with.

/// A refusal of input (the format's own checks, as on SQLite) or a
/// failure of the database.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The input was refused by the format's checks: a bad queue name,
    /// option, payload, or a unique key another job holds.
    #[error(transparent)]
    Format(#[from] honker_core::Error),
    /// The database failed.
    #[error(transparent)]
    Db(#[from] sqlx::Error),
    /// The schema's name is not one this crate writes: lowercase ASCII
    /// letters, digits and `_`, starting with a letter or `_`, at most 56
    /// bytes.
    #[error("invalid PostgreSQL schema name {0:?}: use a-z, 0-9 and _, starting with a letter or _, at most 56 bytes")]
    SchemaName(String),
    /// The schema was migrated by a newer honker: its version is past
    /// the one this build knows.
    #[error("schema {schema} is at version {found}; this build of honker knows up to {known}: upgrade honker")]
    TooNew {
        /// The schema.
        schema: String,
        /// Its newest applied migration.
        found: i32,
        /// The newest migration this build has.
        known: i32,
    },
}

impl Error {
    /// The SQLSTATE code of a database error, if it has one.
    ///
    /// ```
    /// let e = honker_postgres::Error::SchemaName("A".into());
    /// assert_eq!(e.sqlstate(), None);
    /// ```
    pub fn sqlstate(&self) -> Option<String> {
        match self {
            Error::Db(sqlx::Error::Database(d)) => d.code().map(|c| c.into_owned()),
            _ => None,
        }
    }
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
