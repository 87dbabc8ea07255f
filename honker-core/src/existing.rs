//! Opening a file that must already exist, for operator tools: read-only
//! for looking (never creates, never writes), read-write for acting (never
//! creates a file, and refuses one that is not a honker file).

use std::path::Path;

use rusqlite::{Connection, OpenFlags};

use crate::{sql, Error, Result};

/// Open the honker file at `path` read-only, for looking at it.
///
/// It never creates a file (a typo'd path is [`Error::NoSuchFile`], naming
/// it), never writes one byte to the database, and refuses a file that is
/// not a SQLite database ([`Error::NotADatabase`]) or has no honker tables
/// ([`Error::NotHonker`]). Tables of the format that this file lacks (a
/// file written only by the Python package has none of honker-rs's side
/// tables) read as empty, through empty `TEMP` tables of this connection.
///
/// ```
/// let dir = tempfile::tempdir().unwrap();
/// let path = dir.path().join("app.db");
/// let err = honker_core::open_read_only(&path).unwrap_err();
/// assert!(matches!(err, honker_core::Error::NoSuchFile { .. }));
/// assert!(!path.exists());
///
/// let conn = honker_core::open(&path).unwrap();
/// honker_core::enqueue(&conn, "q", "1", &Default::default()).unwrap();
/// let reader = honker_core::open_read_only(&path).unwrap();
/// assert_eq!(honker_core::stats(&reader).unwrap()[0].pending_due, 1);
/// assert!(honker_core::enqueue(&reader, "q", "2", &Default::default()).is_err());
/// ```
pub fn open_read_only(path: impl AsRef<Path>) -> Result<Connection> {
    let path = path.as_ref();
    must_exist(path)?;
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags).map_err(|source| Error::Open {
        path: path.to_path_buf(),
        source,
    })?;
    conn.busy_timeout(std::time::Duration::from_millis(5000))?;
    conn.execute_batch("PRAGMA temp_store = MEMORY")?;
    must_be_honker(&conn, path)?;
    shadow_missing_tables(&conn).map_err(|e| classify_read(path, e))?;
    Ok(conn)
}

/// Open the honker file at `path` for one look, read-only, creating
/// nothing beside it: a file at rest (no `-wal` or `-shm` beside it, so no
/// connection has it open) is read in place as immutable; a file in use is
/// opened as [`open_read_only`] does (its `-wal` and `-shm` are there
/// already), and so is a file with a `-journal` or in rollback-journal
/// mode (a hot journal must be honoured). For a reader that follows
/// commits, use [`open_read_only`].
///
/// ```
/// let dir = tempfile::tempdir().unwrap();
/// let path = dir.path().join("app.db");
/// let conn = honker_core::open(&path).unwrap();
/// honker_core::enqueue(&conn, "q", "1", &Default::default()).unwrap();
/// drop(conn); // the last connection: the file is at rest
/// let look = honker_core::open_snapshot(&path).unwrap();
/// assert_eq!(honker_core::stats(&look).unwrap()[0].pending_due, 1);
/// assert!(!dir.path().join("app.db-shm").exists());
/// ```
pub fn open_snapshot(path: impl AsRef<Path>) -> Result<Connection> {
    let path = path.as_ref();
    must_exist(path)?;
    let in_use = ["-wal", "-shm", "-journal"]
        .iter()
        .any(|s| sidecar(path, s).exists());
    // Immutable reads skip locks and journals: only for a WAL-format file
    // no connection has open. A rollback-journal file (honker needs WAL,
    // but doctor looks at any) may be mid-write with no sidecar yet.
    if in_use || !wal_format(path) {
        return open_read_only(path);
    }
    let uri = format!("file:{}?immutable=1", uri_path(path));
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY
        | OpenFlags::SQLITE_OPEN_URI
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(&uri, flags).map_err(|source| Error::Open {
        path: path.to_path_buf(),
        source,
    })?;
    conn.execute_batch("PRAGMA temp_store = MEMORY")?;
    must_be_honker(&conn, path)?;
    shadow_missing_tables(&conn).map_err(|e| classify_read(path, e))?;
    Ok(conn)
}

/// Whether the file's header says WAL (bytes 18 and 19 are 2).
fn wal_format(path: &Path) -> bool {
    use std::io::Read as _;
    let mut header = [0u8; 20];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut header))
        .is_ok_and(|()| header[18] == 2 && header[19] == 2)
}

fn sidecar(path: &Path, suffix: &str) -> std::path::PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    s.into()
}

/// `path` for a `file:` URI: bytes outside the unreserved set escaped.
fn uri_path(path: &Path) -> String {
    use std::fmt::Write as _;
    #[cfg(unix)]
    let bytes = {
        use std::os::unix::ffi::OsStrExt;
        path.as_os_str().as_bytes().to_vec()
    };
    #[cfg(not(unix))]
    let bytes = path.to_string_lossy().replace('\\', "/").into_bytes();
    let mut out = String::new();
    for &b in &bytes {
        if b.is_ascii_alphanumeric() || b"/-_.~".contains(&b) {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// Open the honker file at `path` to act on it ([`open`](crate::open)'s
/// pragmas and migration), refusing to create a file ([`Error::NoSuchFile`])
/// or to give a database without honker tables a honker schema
/// ([`Error::NotHonker`]).
///
/// ```
/// let dir = tempfile::tempdir().unwrap();
/// let path = dir.path().join("app.db");
/// assert!(honker_core::open_existing(&path).is_err());
/// honker_core::open(&path).unwrap();
/// let conn = honker_core::open_existing(&path).unwrap();
/// assert!(honker_core::pause_queue(&conn, "q").unwrap());
/// ```
pub fn open_existing(path: impl AsRef<Path>) -> Result<Connection> {
    let path = path.as_ref();
    must_exist(path)?;
    // Looked at first, creating nothing: a file refused (not a database,
    // not honker's) is left exactly as it was, with no `-wal` or `-shm`
    // beside it.
    drop(open_snapshot(path)?);
    crate::open(path)
}

fn must_exist(path: &Path) -> Result<()> {
    if path.is_file() {
        return Ok(());
    }
    // A directory, a fifo, a device: there, but no database.
    if path.exists() {
        return Err(Error::NotADatabase {
            path: path.to_path_buf(),
        });
    }
    Err(Error::NoSuchFile {
        path: path.to_path_buf(),
    })
}

fn must_be_honker(conn: &Connection, path: &Path) -> Result<()> {
    let has = main_has(conn, "_honker_live").map_err(|e| classify_read(path, e))?;
    if has {
        Ok(())
    } else {
        Err(Error::NotHonker {
            path: path.to_path_buf(),
        })
    }
}

fn main_has(conn: &Connection, table: &str) -> Result<bool> {
    Ok(conn.prepare_cached(sql::MAIN_HAS_TABLE)?.exists([table])?)
}

fn classify_read(path: &Path, e: Error) -> Error {
    match e {
        Error::Sqlite(s)
            if s.sqlite_error_code() == Some(rusqlite::ffi::ErrorCode::NotADatabase) =>
        {
            Error::NotADatabase {
                path: path.to_path_buf(),
            }
        }
        Error::Sqlite(source) => Error::Open {
            path: path.to_path_buf(),
            source,
        },
        other => other,
    }
}

/// The format's tables this file lacks, as empty `TEMP` tables; a table
/// that lacks a column added since the format's first release, as a
/// `TEMP` view that supplies the column's default (temp names are looked
/// up before main ones).
fn shadow_missing_tables(conn: &Connection) -> Result<()> {
    let ddl: String = sql::SCHEMA
        .lines()
        .filter(|l| !l.trim_start().starts_with("--"))
        .collect::<Vec<_>>()
        .join("\n");
    for statement in ddl.split(';') {
        let Some(rest) = statement.trim().strip_prefix("CREATE TABLE IF NOT EXISTS ") else {
            continue;
        };
        let name = rest
            .split(|c: char| c.is_whitespace() || c == '(')
            .next()
            .unwrap_or_default();
        if !main_has(conn, name)? {
            conn.execute_batch(&format!("CREATE TEMP TABLE {rest}"))?;
        }
    }
    let mut tables: Vec<&str> = sql::ADDED_COLUMNS.iter().map(|(t, _, _)| *t).collect();
    tables.dedup();
    for table in tables {
        if !main_has(conn, table)? {
            continue;
        }
        let mut extra = Vec::new();
        for (t, column, ddl) in sql::ADDED_COLUMNS.iter().filter(|(t, _, _)| *t == table) {
            let present = conn
                .prepare(sql::HAS_COLUMN)?
                .exists(rusqlite::params![t, column])?;
            if !present {
                let default = ddl.rsplit_once("DEFAULT ").map_or("NULL", |(_, d)| d);
                extra.push(format!("{default} AS {column}"));
            }
        }
        if !extra.is_empty() {
            conn.execute_batch(&format!(
                "CREATE TEMP VIEW {table} AS SELECT *, {} FROM main.{table}",
                extra.join(", ")
            ))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn python_like_file(path: &Path) {
        // The format's shared tables only, as a file the Python package
        // wrote and no honker-rs process ever opened.
        let c = Connection::open(path).unwrap();
        c.execute_batch(
            "PRAGMA journal_mode = WAL;
             CREATE TABLE _honker_live (id INTEGER PRIMARY KEY AUTOINCREMENT, queue TEXT NOT NULL,
               payload TEXT NOT NULL, state TEXT NOT NULL DEFAULT 'pending',
               priority INTEGER NOT NULL DEFAULT 0, run_at INTEGER NOT NULL DEFAULT (unixepoch()),
               worker_id TEXT, claim_expires_at INTEGER, attempts INTEGER NOT NULL DEFAULT 0,
               max_attempts INTEGER NOT NULL DEFAULT 3,
               created_at INTEGER NOT NULL DEFAULT (unixepoch()), expires_at INTEGER);
             CREATE TABLE _honker_dead (id INTEGER PRIMARY KEY, queue TEXT NOT NULL,
               payload TEXT NOT NULL, priority INTEGER NOT NULL DEFAULT 0,
               run_at INTEGER NOT NULL DEFAULT 0, attempts INTEGER NOT NULL DEFAULT 0,
               max_attempts INTEGER NOT NULL DEFAULT 0, last_error TEXT,
               created_at INTEGER NOT NULL DEFAULT (unixepoch()),
               died_at INTEGER NOT NULL DEFAULT (unixepoch()));
             CREATE TABLE _honker_scheduler_tasks (name TEXT PRIMARY KEY, queue TEXT NOT NULL,
               cron_expr TEXT NOT NULL, payload TEXT NOT NULL, priority INTEGER NOT NULL DEFAULT 0,
               expires_s INTEGER, next_fire_at INTEGER NOT NULL);
             INSERT INTO _honker_live (queue, payload) VALUES ('q', '{}');
             INSERT INTO _honker_scheduler_tasks (name, queue, cron_expr, payload, next_fire_at)
               VALUES ('nightly', 'q', '0 3 * * *', '{}', 4102444800);",
        )
        .unwrap();
    }

    fn file_bytes(path: &Path) -> Vec<u8> {
        std::fs::read(path).unwrap()
    }

    #[test]
    fn a_file_lacking_honker_rs_tables_reads_as_empty_and_is_never_written() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("py.db");
        python_like_file(&path);
        let before = file_bytes(&path);
        let conn = open_read_only(&path).unwrap();
        let stats = crate::stats(&conn).unwrap();
        assert_eq!(
            (stats.len(), stats[0].pending_due, stats[0].paused),
            (1, 1, false)
        );
        let schedules = crate::list_schedules(&conn).unwrap();
        assert_eq!(schedules.len(), 1);
        assert!(
            schedules[0].enabled,
            "a column the file lacks reads as its default"
        );
        assert_eq!(schedules[0].spec.max_attempts, 3);
        assert!(crate::list_dead(&conn, "q", 10, 0).unwrap().is_empty());
        drop(conn);
        assert_eq!(file_bytes(&path), before, "looking never writes");
        let tables: i64 = Connection::open(&path)
            .unwrap()
            .query_row(
                "SELECT COUNT(*) FROM sqlite_schema WHERE name = '_honker_queue_controls'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(tables, 0, "no table was created in the file");
    }

    #[test]
    fn a_snapshot_of_a_file_at_rest_creates_nothing_beside_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("odd name?#%.db");
        python_like_file(&path);
        let listing = || {
            let mut v: Vec<_> = std::fs::read_dir(dir.path())
                .unwrap()
                .map(|e| e.unwrap().file_name())
                .collect();
            v.sort();
            v
        };
        let before = listing();
        let conn = open_snapshot(&path).unwrap();
        assert_eq!(crate::stats(&conn).unwrap()[0].pending_due, 1);
        drop(conn);
        assert_eq!(listing(), before, "no -wal or -shm created");
        // In use: read as any reader does, and sees the writer's commits.
        let writer = crate::open(&path).unwrap();
        crate::enqueue(&writer, "q", "2", &Default::default()).unwrap();
        let conn = open_snapshot(&path).unwrap();
        assert_eq!(crate::stats(&conn).unwrap()[0].pending_due, 2);
    }

    #[test]
    fn a_rollback_journal_file_is_never_read_as_immutable() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rb.db");
        let c = crate::open(&path).unwrap();
        c.execute_batch("PRAGMA journal_mode = DELETE").unwrap();
        let tx = c.unchecked_transaction().unwrap();
        for i in 0..2000 {
            crate::enqueue(&tx, "q", &i.to_string(), &Default::default()).unwrap();
        }
        tx.commit().unwrap();
        assert!(!wal_format(&path));
        // Mid-transaction, its pages spilled to the file: copied now, the
        // copy is what a crash leaves (a hot journal beside a half-written
        // file).
        c.execute_batch(
            "PRAGMA cache_size = 2; BEGIN;
             UPDATE _honker_live SET run_at = run_at + 100000, payload = payload || 'xxxxxxxx';",
        )
        .unwrap();
        let crashed = dir.path().join("crashed.db");
        std::fs::copy(&path, &crashed).unwrap();
        std::fs::copy(sidecar(&path, "-journal"), sidecar(&crashed, "-journal")).unwrap();
        c.execute_batch("ROLLBACK").unwrap();
        // A read-only look cannot roll the journal back: it refuses, and
        // never shows the uncommitted update.
        let seen = open_snapshot(&crashed).and_then(|look| crate::stats(&look));
        match seen {
            Ok(s) => assert_eq!(s[0].pending_due, 2000, "uncommitted state shown"),
            Err(e) => assert!(!e.to_string().is_empty()),
        }
    }

    #[test]
    fn missing_files_plain_databases_and_other_files_are_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("typo.db");
        let err = open_read_only(&missing).unwrap_err();
        assert!(matches!(err, Error::NoSuchFile { .. }), "{err}");
        assert!(err.to_string().contains("typo.db"));
        assert!(!missing.exists(), "never created");
        assert!(matches!(
            open_existing(&missing),
            Err(Error::NoSuchFile { .. })
        ));
        assert!(!missing.exists(), "never created");

        let text = dir.path().join("notes.txt");
        std::fs::write(
            &text,
            "hello, this is not a database at all, not even close",
        )
        .unwrap();
        let err = open_read_only(&text).unwrap_err();
        assert!(matches!(err, Error::NotADatabase { .. }), "{err}");

        let plain = dir.path().join("plain.db");
        Connection::open(&plain)
            .unwrap()
            .execute_batch("CREATE TABLE t (x)")
            .unwrap();
        let err = open_existing(&plain).unwrap_err();
        assert!(matches!(err, Error::NotHonker { .. }), "{err}");
        let n: i64 = Connection::open(&plain)
            .unwrap()
            .query_row("SELECT COUNT(*) FROM sqlite_schema", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 1, "a plain database is not given the honker schema");

        assert!(matches!(
            open_read_only(dir.path()),
            Err(Error::NotADatabase { .. })
        ));
        assert!(matches!(
            open_read_only("/dev/null"),
            Err(Error::NotADatabase { .. })
        ));
    }

    #[test]
    fn a_damaged_database_is_an_open_error_not_called_a_non_database() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("app.db");
        drop(crate::open(&path).unwrap());
        // A valid header, then a schema page of garbage.
        let mut bytes = std::fs::read(&path).unwrap();
        for b in &mut bytes[100..4096] {
            *b = 0xFF;
        }
        std::fs::write(&path, &bytes).unwrap();
        let e = open_snapshot(&path).unwrap_err();
        assert!(matches!(e, Error::Open { .. }), "{e:?}");
        assert!(!matches!(e, Error::NotADatabase { .. }));
        // Bytes that are no database at all are called so.
        std::fs::write(&path, b"notes, not a database").unwrap();
        assert!(matches!(
            open_snapshot(&path).unwrap_err(),
            Error::NotADatabase { .. }
        ));
    }
}
