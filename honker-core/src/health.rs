//! What `honker doctor` looks at: the rows that tell of trouble, and the
//! format's tables and indexes a file has.

use rusqlite::Connection;

use crate::{sql, JobRow, Result};

/// Signs of trouble in a honker file's rows (see [`health`]).
///
/// ```
/// let conn = honker_core::open_in_memory().unwrap();
/// let h: honker_core::Health = honker_core::health(&conn, 5).unwrap();
/// assert!(h.expired_sample.is_empty() && h.created_ahead.is_none());
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Health {
    /// How many rows are still `processing` past their claim deadline.
    pub expired_claims: i64,
    /// The longest overdue of them (at most the limit asked for).
    pub expired_sample: Vec<JobRow>,
    /// Pending rows with no attempt left: the next claim dead-letters them.
    pub exhausted: i64,
    /// Seconds the newest `created_at` lies ahead of SQLite's clock here;
    /// positive when a writer's clock runs ahead. `None` for no rows.
    pub created_ahead: Option<i64>,
}

/// The trouble signs of the file, with up to `sample` overdue claims.
///
/// ```
/// let conn = honker_core::open_in_memory().unwrap();
/// honker_core::enqueue(&conn, "q", "1", &Default::default()).unwrap();
/// let h = honker_core::health(&conn, 10).unwrap();
/// assert_eq!((h.expired_claims, h.exhausted), (0, 0));
/// assert!(h.created_ahead.unwrap() <= 0);
/// ```
pub fn health(conn: &Connection, sample: usize) -> Result<Health> {
    let count =
        |q: &str| -> Result<i64> { Ok(conn.prepare_cached(q)?.query_row([], |r| r.get(0))?) };
    let limit = i64::try_from(sample).unwrap_or(i64::MAX);
    let expired_sample = conn
        .prepare_cached(sql::HEALTH_EXPIRED_CLAIMS)?
        .query_map([limit], JobRow::from_row)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(Health {
        expired_claims: count(sql::HEALTH_EXPIRED_CLAIMS_COUNT)?,
        expired_sample,
        exhausted: count(sql::HEALTH_EXHAUSTED_COUNT)?,
        created_ahead: conn
            .prepare_cached(sql::HEALTH_CREATED_AHEAD)?
            .query_row([], |r| r.get(0))?,
    })
}

/// Row totals for a throughput estimate: live rows, dead rows, and the
/// ids handed out so far (every enqueue takes one). Between two readings,
/// `Δissued` jobs were enqueued and `Δissued - Δlive - Δdead` left the file
/// (succeeded, or were deleted: a cancel by the Python package, a purge).
///
/// ```
/// let conn = honker_core::open_in_memory().unwrap();
/// let a = honker_core::row_totals(&conn).unwrap();
/// let id = honker_core::enqueue(&conn, "q", "1", &Default::default()).unwrap();
/// let b = honker_core::row_totals(&conn).unwrap();
/// assert_eq!((b.live - a.live, b.issued - a.issued), (1, 1));
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RowTotals {
    /// Rows in `_honker_live`.
    pub live: i64,
    /// Rows in `_honker_dead`.
    pub dead: i64,
    /// Ids handed out to live rows so far (`sqlite_sequence`).
    pub issued: i64,
}

/// See [`RowTotals`].
pub fn row_totals(conn: &Connection) -> Result<RowTotals> {
    Ok(conn
        .prepare_cached(sql::HEALTH_ROW_TOTALS)?
        .query_row([], |r| {
            Ok(RowTotals {
                live: r.get(0)?,
                dead: r.get(1)?,
                issued: r.get(2)?,
            })
        })?)
}

/// The ids of up to `limit` running (claimed) jobs of every queue, read
/// from the processing index alone (the cost grows with the running jobs,
/// not the file).
///
/// ```
/// use std::time::Duration;
/// let conn = honker_core::open_in_memory().unwrap();
/// let id = honker_core::enqueue(&conn, "q", "1", &Default::default()).unwrap();
/// honker_core::claim_batch(&conn, "q", "w", 1, Duration::from_secs(60)).unwrap();
/// assert_eq!(honker_core::running_ids(&conn, 10).unwrap(), [id]);
/// ```
pub fn running_ids(conn: &Connection, limit: usize) -> Result<Vec<i64>> {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    Ok(conn
        .prepare_cached(sql::HEALTH_RUNNING_IDS)?
        .query_map([limit], |r| r.get(0))?
        .collect::<rusqlite::Result<Vec<i64>>>()?)
}

/// One object of the format's schema, and whether this file has it.
///
/// ```
/// let conn = honker_core::open_in_memory().unwrap();
/// let live = honker_core::schema_objects(&conn).unwrap().into_iter()
///     .find(|o| o.name == "_honker_live").unwrap();
/// assert_eq!((live.kind, live.shared, live.present), ("table", true, true));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SchemaObject {
    /// `"table"` or `"index"`.
    pub kind: &'static str,
    /// Its name.
    pub name: String,
    /// Shared by every binding (the Python package creates it); `false`
    /// for honker-rs's additive side tables and indexes.
    pub shared: bool,
    /// Present in the file's main database.
    pub present: bool,
}

/// The tables and indexes of the format (as this crate creates them), and
/// which of them the file has.
///
/// ```
/// let conn = honker_core::open_in_memory().unwrap();
/// let objects = honker_core::schema_objects(&conn).unwrap();
/// assert!(objects.iter().all(|o| o.present));
/// assert!(objects.iter().any(|o| o.name == "_honker_live_claim" && o.shared));
/// ```
pub fn schema_objects(conn: &Connection) -> Result<Vec<SchemaObject>> {
    let present: Vec<(String, String)> = conn
        .prepare_cached(sql::HEALTH_OBJECTS)?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    let mut out = Vec::new();
    for line in sql::SCHEMA.lines() {
        let line = line.trim();
        let (kind, rest) = if let Some(r) = line.strip_prefix("CREATE TABLE IF NOT EXISTS ") {
            ("table", r)
        } else if let Some(r) = line.strip_prefix("CREATE INDEX IF NOT EXISTS ") {
            ("index", r)
        } else {
            continue;
        };
        let name = rest
            .split(|c: char| c.is_whitespace() || c == '(')
            .next()
            .unwrap_or_default()
            .to_string();
        out.push(SchemaObject {
            kind,
            shared: sql::SHARED_OBJECTS.contains(&name.as_str()),
            present: present.iter().any(|(k, n)| k == kind && *n == name),
            name,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn overdue_claims_exhausted_rows_and_clocks_ahead_are_found() {
        let conn = crate::open_in_memory().unwrap();
        let opts = crate::EnqueueOptions::default().max_attempts(1);
        let stuck = crate::enqueue(&conn, "q", "1", &opts).unwrap();
        crate::enqueue(&conn, "q", "2", &Default::default()).unwrap();
        crate::claim_batch(&conn, "q", "w", 1, Duration::from_secs(60)).unwrap();
        assert_eq!(health(&conn, 5).unwrap().expired_claims, 0, "a live claim");
        // The worker died: its claim ran out 10 s ago.
        conn.execute(
            "UPDATE _honker_live SET claim_expires_at = unixepoch() - 10 WHERE id = ?1",
            [stuck],
        )
        .unwrap();
        let h = health(&conn, 5).unwrap();
        assert_eq!(h.expired_claims, 1);
        assert_eq!(h.expired_sample[0].id, stuck);
        assert_eq!(
            h.exhausted, 0,
            "processing rows are not counted as exhausted"
        );
        conn.execute(
            "UPDATE _honker_live SET state = 'pending', claim_expires_at = NULL WHERE id = ?1",
            [stuck],
        )
        .unwrap();
        assert_eq!(health(&conn, 5).unwrap().exhausted, 1, "no attempt left");
        conn.execute(
            "UPDATE _honker_live SET created_at = unixepoch() + 600 WHERE id = ?1",
            [stuck],
        )
        .unwrap();
        let ahead = health(&conn, 5).unwrap().created_ahead.unwrap();
        assert!((599..=600).contains(&ahead), "{ahead}");
    }

    #[test]
    fn a_file_without_side_tables_lacks_only_unshared_objects() {
        let conn = Connection::open_in_memory().unwrap();
        crate::migrate(&conn).unwrap();
        conn.execute_batch("DROP TABLE _honker_unique; DROP INDEX _honker_live_claim")
            .unwrap();
        let missing: Vec<(String, bool)> = schema_objects(&conn)
            .unwrap()
            .into_iter()
            .filter(|o| !o.present)
            .map(|o| (o.name, o.shared))
            .collect();
        assert_eq!(
            missing,
            [
                ("_honker_live_claim".to_string(), true),
                ("_honker_unique".to_string(), false),
                ("_honker_unique_key".to_string(), false)
            ]
        );
    }

    #[test]
    fn totals_and_running_ids_count_each_table_and_claimed_rows_only() {
        let conn = crate::open_in_memory().unwrap();
        let opts = crate::EnqueueOptions::default().max_attempts(1);
        let ids: Vec<i64> = (0..4)
            .map(|i| crate::enqueue(&conn, "q", &i.to_string(), &opts).unwrap())
            .collect();
        let jobs = crate::claim_batch(&conn, "q", "w", 3, Duration::from_secs(60)).unwrap();
        assert!(crate::fail(&conn, "w", jobs[0].lease(), "boom").unwrap());
        assert_eq!(
            row_totals(&conn).unwrap(),
            RowTotals {
                live: 3,
                dead: 1,
                issued: 4
            }
        );
        let mut running = running_ids(&conn, 10).unwrap();
        running.sort_unstable();
        assert_eq!(running, [ids[1], ids[2]]);
        assert_eq!(running_ids(&conn, 1).unwrap().len(), 1, "the limit holds");
    }
}
