//! Job results in `_honker_results`.

use std::time::Duration;

use rusqlite::{Connection, OptionalExtension};

use crate::durations::clamped_secs;
use crate::{sql, Error, Result};

/// Save (or replace) the JSON result of job `job_id`, kept for `ttl`
/// (`None`: until swept by hand; a `ttl` longer than
/// [`MAX_DURATION`](crate::MAX_DURATION) is clamped to it).
///
/// ```
/// let conn = honker_core::open_in_memory().unwrap();
/// honker_core::save_result(&conn, 1, r#"{"ok":true}"#, None).unwrap();
/// assert_eq!(honker_core::get_result(&conn, 1).unwrap().as_deref(), Some(r#"{"ok":true}"#));
/// ```
pub fn save_result(
    conn: &Connection,
    job_id: i64,
    value: &str,
    ttl: Option<Duration>,
) -> Result<()> {
    serde_json::from_str::<serde::de::IgnoredAny>(value).map_err(Error::InvalidPayload)?;
    conn.prepare_cached(sql::RESULT_SAVE)?
        .execute(rusqlite::params![job_id, value, ttl.map(clamped_secs)])?;
    Ok(())
}

/// The saved result of `job_id`, unless absent or expired. A job that
/// returned JSON `null` gives `Some("null")`. Read leniently: a value
/// another writer stored as bytes or a number is rendered as text.
///
/// ```
/// let conn = honker_core::open_in_memory().unwrap();
/// assert_eq!(honker_core::get_result(&conn, 42).unwrap(), None);
/// ```
pub fn get_result(conn: &Connection, job_id: i64) -> Result<Option<String>> {
    let mut stmt = conn.prepare_cached(sql::RESULT_GET)?;
    Ok(stmt
        .query_row([job_id], |r| Ok(crate::job::opt_text_lossy(r.get_ref(0)?)))
        .optional()?
        .flatten())
}

/// Delete expired results; returns how many.
///
/// ```
/// let conn = honker_core::open_in_memory().unwrap();
/// assert_eq!(honker_core::sweep_results(&conn).unwrap(), 0);
/// ```
pub fn sweep_results(conn: &Connection) -> Result<usize> {
    Ok(conn.prepare_cached(sql::RESULT_SWEEP)?.execute([])?)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    #[test]
    fn the_sweep_deletes_expired_results_only_and_says_how_many() {
        let c = crate::open_in_memory().unwrap();
        crate::save_result(&c, 1, "1", Some(Duration::ZERO)).unwrap();
        crate::save_result(&c, 2, "2", Some(Duration::ZERO)).unwrap();
        crate::save_result(&c, 3, "3", None).unwrap();
        crate::save_result(&c, 4, "4", Some(Duration::from_secs(3600))).unwrap();
        assert_eq!(crate::sweep_results(&c).unwrap(), 2);
        assert_eq!(crate::sweep_results(&c).unwrap(), 0);
        assert_eq!(crate::get_result(&c, 3).unwrap().as_deref(), Some("3"));
        assert_eq!(crate::get_result(&c, 4).unwrap().as_deref(), Some("4"));
    }
}
