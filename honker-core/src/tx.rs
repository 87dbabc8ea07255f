//! Running a multi-statement operation atomically.

use rusqlite::Connection;

use crate::Result;

/// Run `f` atomically on `conn`.
///
/// Outside a transaction this opens `BEGIN IMMEDIATE` (taking the write lock
/// up front, so the operation cannot fail half-way on a lock upgrade) and
/// commits, or rolls back on error. Inside a caller's transaction it uses a
/// savepoint, so the operation commits or rolls back with the caller.
///
/// ```
/// let conn = honker_core::open_in_memory().unwrap();
/// let n: i64 = honker_core::atomically(&conn, |c| {
///     c.execute("CREATE TABLE t(x)", [])?;
///     c.execute("INSERT INTO t VALUES (1)", [])?;
///     Ok(c.query_row("SELECT count(*) FROM t", [], |r| r.get(0))?)
/// }).unwrap();
/// assert_eq!(n, 1);
/// ```
pub fn atomically<T>(conn: &Connection, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
    let outer = conn.is_autocommit();
    let (begin, commit, rollback): (&str, &str, &[&str]) = if outer {
        ("BEGIN IMMEDIATE", "COMMIT", &["ROLLBACK"])
    } else {
        (
            "SAVEPOINT honker_op",
            "RELEASE honker_op",
            &["ROLLBACK TO honker_op", "RELEASE honker_op"],
        )
    };
    control(conn, begin)?;
    match f(conn) {
        Ok(v) => match control(conn, commit) {
            Ok(()) => Ok(v),
            Err(e) => {
                // A failed COMMIT (SQLITE_BUSY, disk full) leaves the
                // transaction open; close it so the connection stays usable.
                if !conn.is_autocommit() {
                    let _rolled_back = rollback.iter().try_for_each(|s| control(conn, s));
                }
                Err(e.into())
            }
        },
        Err(e) => {
            // SQLite may already have rolled back (for example on SQLITE_FULL).
            if !conn.is_autocommit()
                && let Err(rb) = rollback.iter().try_for_each(|s| control(conn, s))
            {
                tracing::warn!(error = %rb, "rollback after a failed honker operation also failed");
            }
            Err(e)
        }
    }
}

/// A transaction-control statement, from the statement cache: they run
/// around every multi-statement operation, often many per transaction, and
/// parsing them anew each time costs more than the operation.
fn control(conn: &Connection, sql: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(sql)?.execute([]).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A deferred foreign key fails at COMMIT, which leaves the
    /// transaction open: it must be rolled back, not left on the
    /// connection for the next statement to join.
    #[test]
    fn a_failed_commit_rolls_back_and_leaves_the_connection_usable() {
        let c = Connection::open_in_memory().unwrap();
        c.execute_batch(
            "PRAGMA foreign_keys = ON;
             CREATE TABLE parent(id INTEGER PRIMARY KEY);
             CREATE TABLE child(p INTEGER REFERENCES parent(id) DEFERRABLE INITIALLY DEFERRED);",
        )
        .unwrap();
        let e = atomically(&c, |c| {
            c.execute("INSERT INTO child VALUES (7)", [])?;
            Ok(())
        })
        .unwrap_err();
        assert!(e.to_string().contains("FOREIGN KEY"), "{e}");
        assert!(c.is_autocommit(), "the failed transaction is closed");
        let n: i64 = c
            .query_row("SELECT count(*) FROM child", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 0);
    }
}
