//! Opening a database: pragmas, schema creation and migration, typed errors.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rusqlite::ffi::ErrorCode;
use rusqlite::{Connection, OpenFlags};

use crate::{sql, Error, Result};

/// Open (creating if needed) the database at `path` with the format's
/// pragmas, and create or migrate the honker schema.
///
/// Safe to call from many processes at once on a new file: schema creation
/// runs in one `BEGIN IMMEDIATE` transaction, so bootstrappers take turns.
///
/// ```
/// let dir = tempfile::tempdir().unwrap();
/// let conn = honker_core::open(dir.path().join("app.db")).unwrap();
/// let mode: String = conn.query_row("PRAGMA journal_mode", [], |r| r.get(0)).unwrap();
/// assert_eq!(mode, "wal");
/// ```
pub fn open(path: impl AsRef<Path>) -> Result<Connection> {
    let path = path.as_ref();
    let conn = open_connection(path)?;
    retry_busy(|| migrate(&conn)).map_err(|e| classify(path, e))?;
    Ok(conn)
}

/// How long opening keeps retrying lock conflicts: the format's busy timeout.
const OPEN_BUSY_BUDGET: Duration = Duration::from_millis(5000);

/// Retry `f` while it fails with a lock conflict. Switching a new file to
/// WAL, and WAL recovery when the first connections arrive together, can
/// return `SQLITE_BUSY` without waiting on the busy handler; several
/// processes bootstrapping one new file at once must all succeed.
fn retry_busy<T>(mut f: impl FnMut() -> Result<T>) -> Result<T> {
    let deadline = Instant::now() + OPEN_BUSY_BUDGET;
    let mut pause = Duration::from_millis(2);
    loop {
        match f() {
            Err(e) if e.is_transient() && Instant::now() + pause < deadline => {
                std::thread::sleep(pause);
                pause = next_pause(pause);
            }
            other => return other,
        }
    }
}

/// The pause after `pause` between lock-conflict retries: twice as long,
/// at most 100 ms.
fn next_pause(pause: Duration) -> Duration {
    (pause * 2).min(Duration::from_millis(100))
}

/// Open the database at `path` with the format's pragmas, without touching
/// the schema. For extra connections (readers, watchers) once [`open`] has
/// run.
///
/// ```
/// let dir = tempfile::tempdir().unwrap();
/// let path = dir.path().join("app.db");
/// honker_core::open(&path).unwrap();
/// let reader = honker_core::open_connection(&path).unwrap();
/// assert!(reader.is_autocommit());
/// ```
pub fn open_connection(path: impl AsRef<Path>) -> Result<Connection> {
    let path = path.as_ref();
    check_directory(path)?;
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = retry_busy(|| Ok(Connection::open_with_flags(path, flags)?))
        .map_err(|e| classify(path, e))?;
    if conn.is_readonly(rusqlite::MAIN_DB).unwrap_or(false) {
        return Err(Error::ReadOnly {
            path: path.to_path_buf(),
            cause: "the file is not writable (SQLite opened it read-only)".into(),
        });
    }
    retry_busy(|| Ok(conn.execute_batch(sql::PRAGMAS)?)).map_err(|e| classify(path, e))?;
    // A read-only directory lets SQLite open an existing file but not create
    // its `-wal`: journal_mode then silently stays as it was.
    let mode: String = retry_busy(|| Ok(conn.query_row("PRAGMA journal_mode", [], |r| r.get(0))?))
        .map_err(|e| classify(path, e))?;
    if !mode.eq_ignore_ascii_case("wal") && !mode.eq_ignore_ascii_case("memory") {
        return Err(Error::ReadOnly {
            path: path.to_path_buf(),
            cause: format!(
                "cannot switch to WAL mode (journal_mode is {mode}); \
                 the directory must be writable so SQLite can create the -wal and -shm files"
            ),
        });
    }
    Ok(conn)
}

/// An in-memory database with the honker schema, for tests and examples.
///
/// ```
/// let conn = honker_core::open_in_memory().unwrap();
/// let id = honker_core::enqueue(&conn, "q", "{}", &Default::default()).unwrap();
/// assert!(id > 0);
/// ```
pub fn open_in_memory() -> Result<Connection> {
    let conn = Connection::open_in_memory()?;
    conn.execute_batch(sql::PRAGMAS)?;
    migrate(&conn)?;
    Ok(conn)
}

/// Create the schema if missing and add columns that older files lack.
/// Idempotent; runs in one write transaction.
///
/// ```
/// let conn = rusqlite::Connection::open_in_memory().unwrap();
/// honker_core::migrate(&conn).unwrap();
/// honker_core::migrate(&conn).unwrap();
/// ```
pub fn migrate(conn: &Connection) -> Result<()> {
    crate::atomically(conn, |c| {
        c.execute_batch(sql::SCHEMA)?;
        for (table, column, ddl) in sql::ADDED_COLUMNS {
            let present = c
                .prepare(sql::HAS_COLUMN)?
                .exists(rusqlite::params![table, column])?;
            if !present && let Err(e) = c.execute(ddl, []) {
                // A peer that does not bootstrap inside a transaction
                // may have won the race: judged by the column being
                // there now, not by the error's text.
                let added_meanwhile = c
                    .prepare(sql::HAS_COLUMN)?
                    .exists(rusqlite::params![table, column])?;
                if !added_meanwhile {
                    return Err(e.into());
                }
            }
        }
        Ok(())
    })
}

fn check_directory(path: &Path) -> Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => return Ok(()),
    };
    if !dir.is_dir() {
        return Err(Error::MissingDirectory {
            path: path.to_path_buf(),
            dir: dir.to_path_buf(),
        });
    }
    Ok(())
}

/// Turn an error met while opening `path` into one that names the path
/// and, for permission problems, says which of file or directory it is.
fn classify(path: &Path, e: Error) -> Error {
    let path: PathBuf = path.to_path_buf();
    let sqlite = match e {
        Error::Sqlite(e) | Error::Busy(e) | Error::DiskFull(e) => e,
        other => return other,
    };
    let code = sqlite.sqlite_error_code();
    if code == Some(ErrorCode::NotADatabase) {
        return Error::NotADatabase { path };
    }
    let permission_problem = matches!(
        code,
        Some(ErrorCode::ReadOnly | ErrorCode::CannotOpen | ErrorCode::PermissionDenied)
    );
    if permission_problem && !path.is_dir() {
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        if path.exists() && !writable(&path) {
            return Error::ReadOnly {
                path,
                cause: format!("the file is not writable ({sqlite})"),
            };
        }
        if !writable(&dir) {
            let what = if path.exists() {
                "SQLite must create the -wal and -shm files beside the database"
            } else {
                "the database file cannot be created there"
            };
            return Error::ReadOnly {
                cause: format!(
                    "directory {} is not writable: {what} ({sqlite})",
                    dir.display()
                ),
                path,
            };
        }
        if code == Some(ErrorCode::ReadOnly) {
            return Error::ReadOnly {
                path,
                cause: sqlite.to_string(),
            };
        }
    }
    Error::Open {
        path,
        source: sqlite,
    }
}

/// Whether this process may write `p` (the real permission check, which
/// owner and group bits alone do not tell).
#[cfg(unix)]
fn writable(p: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let Ok(c) = std::ffi::CString::new(p.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: `c` is a valid NUL-terminated path for the duration of the call.
    unsafe { libc::access(c.as_ptr(), libc::W_OK) == 0 }
}

#[cfg(not(unix))]
fn writable(p: &Path) -> bool {
    std::fs::metadata(p)
        .map(|m| !m.permissions().readonly())
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use rusqlite::ffi;

    use super::*;

    #[test]
    fn retry_pauses_double_up_to_a_tenth_of_a_second() {
        let ms = Duration::from_millis;
        assert_eq!(next_pause(ms(2)), ms(4));
        assert_eq!(next_pause(ms(40)), ms(80));
        assert_eq!(next_pause(ms(80)), ms(100));
        assert_eq!(next_pause(ms(100)), ms(100));
    }

    fn sqlite(code: std::ffi::c_int) -> Error {
        Error::from(rusqlite::Error::SqliteFailure(ffi::Error::new(code), None))
    }

    #[test]
    fn lock_conflicts_are_retried_and_other_errors_are_not() {
        let calls = Cell::new(0);
        let got = retry_busy(|| {
            calls.set(calls.get() + 1);
            if calls.get() < 3 {
                Err(sqlite(ffi::SQLITE_BUSY))
            } else {
                Ok(7)
            }
        });
        assert_eq!((got.unwrap(), calls.get()), (7, 3), "busy twice, then done");
        calls.set(0);
        let got: Result<()> = retry_busy(|| {
            calls.set(calls.get() + 1);
            Err(sqlite(ffi::SQLITE_CORRUPT))
        });
        assert!(matches!(got, Err(Error::Sqlite(_))));
        assert_eq!(calls.get(), 1, "a lasting error is returned at once");
    }

    #[test]
    fn a_path_without_a_directory_part_is_in_the_current_one() {
        assert!(check_directory(Path::new("app.db")).is_ok());
        let missing = check_directory(Path::new("/no/such/dir/app.db")).unwrap_err();
        assert!(
            matches!(missing, Error::MissingDirectory { .. }),
            "{missing:?}"
        );
        let dir = tempfile::tempdir().unwrap();
        assert!(check_directory(&dir.path().join("app.db")).is_ok());
    }

    #[test]
    fn writable_is_the_real_permission_and_an_unnameable_path_is_not_writable() {
        let dir = tempfile::tempdir().unwrap();
        assert!(writable(dir.path()));
        assert!(
            !writable(Path::new("/tmp/nul\0byte")),
            "no C path: not writable"
        );
        assert!(!writable(Path::new("/no/such/dir")));
    }

    /// Root may write anything, so the unwritable directory here is one
    /// whose name no system call can take (a NUL byte).
    #[test]
    fn an_open_error_names_the_file_or_the_directory_that_cannot_be_written() {
        let dir = tempfile::tempdir().unwrap();
        let existing = dir.path().join("app.db");
        std::fs::write(&existing, b"").unwrap();
        let cannot_open = || sqlite(ffi::SQLITE_CANTOPEN);

        // A new file in a directory that cannot be written.
        let nowhere = Path::new("/tmp/x\0y/app.db");
        match classify(nowhere, cannot_open()) {
            Error::ReadOnly { cause, .. } => {
                assert!(
                    cause.contains("directory") && cause.contains("cannot be created"),
                    "{cause}"
                );
            }
            other => panic!("{other:?}"),
        }
        // An error that is no permission problem is an open error, wherever.
        assert!(matches!(
            classify(nowhere, sqlite(ffi::SQLITE_CORRUPT)),
            Error::Open { .. }
        ));
        // A writable file in a writable directory: not a permission problem
        // of either, so SQLite's own error (or its read-only verdict).
        assert!(matches!(
            classify(&existing, cannot_open()),
            Error::Open { .. }
        ));
        match classify(&existing, sqlite(ffi::SQLITE_READONLY)) {
            Error::ReadOnly { path, .. } => assert_eq!(path, existing),
            other => panic!("{other:?}"),
        }
        // A relative name is in the current directory, which is writable.
        assert!(matches!(
            classify(Path::new("app.db"), cannot_open()),
            Error::Open { .. }
        ));
        // A directory where the file should be: an open error.
        assert!(matches!(
            classify(dir.path(), cannot_open()),
            Error::Open { .. }
        ));
        assert!(matches!(
            classify(&existing, sqlite(ffi::SQLITE_NOTADB)),
            Error::NotADatabase { .. }
        ));
        let other = Error::InvalidOption("x".into());
        assert!(
            matches!(classify(&existing, other), Error::InvalidOption(_)),
            "passed through"
        );
    }

    #[test]
    fn migrating_adds_a_column_an_older_file_lacks_and_changes_nothing_twice() {
        let c = open_in_memory().unwrap();
        let (table, column, _) = sql::ADDED_COLUMNS[0];
        c.execute_batch(&format!("ALTER TABLE {table} DROP COLUMN {column}"))
            .unwrap();
        let has = |c: &Connection| {
            c.prepare(sql::HAS_COLUMN)
                .unwrap()
                .exists([table, column])
                .unwrap()
        };
        assert!(!has(&c));
        migrate(&c).unwrap();
        assert!(has(&c), "added back");
        migrate(&c).unwrap();
        assert!(has(&c));
    }
}
