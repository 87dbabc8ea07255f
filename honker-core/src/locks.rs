//! Named locks in `_honker_locks`, the rows and rules of the Python
//! package's `db.lock(name, ttl)`: one owner per name until it releases
//! the lock or its time runs out, across every process (and binding) on
//! the file.

use std::time::Duration;

use rusqlite::{Connection, OptionalExtension};

use crate::durations::clamped_secs;
use crate::{atomically, sql, Error, Result};

/// Take lock `name` for `owner` for `ttl` (whole seconds, at least 1; the
/// format's times are whole seconds, so a lock may run out up to a second
/// early: give it a few):
/// `true` when `owner` holds it now. A lock whose time ran out is taken
/// over; one `owner` already holds is kept as it is (its time is not
/// extended: [`renew_lock`] does that), as Python's `db.lock` does.
///
/// ```
/// use std::time::Duration;
/// let conn = honker_core::open_in_memory().unwrap();
/// let minute = Duration::from_secs(60);
/// assert!(honker_core::try_lock(&conn, "nightly", "a", minute).unwrap());
/// assert!(!honker_core::try_lock(&conn, "nightly", "b", minute).unwrap());
/// assert!(honker_core::unlock(&conn, "nightly", "a").unwrap());
/// assert!(honker_core::try_lock(&conn, "nightly", "b", minute).unwrap());
/// ```
pub fn try_lock(conn: &Connection, name: &str, owner: &str, ttl: Duration) -> Result<bool> {
    check_lock(name, owner, ttl)?;
    let ttl = clamped_secs(ttl).max(1);
    atomically(conn, |c| {
        c.prepare_cached(sql::LOCK_DROP_EXPIRED)?.execute([name])?;
        c.prepare_cached(sql::LOCK_TAKE)?
            .execute(rusqlite::params![name, owner, ttl])?;
        let holder: Option<String> = c
            .prepare_cached(sql::LOCK_OWNER)?
            .query_row([name], |r| r.get(0))
            .optional()?;
        Ok(holder.as_deref() == Some(owner))
    })
}

/// Extend lock `name` of `owner` to `ttl` from now: `false` when `owner`
/// no longer holds it (released, or taken over by another after its time
/// ran out).
pub fn renew_lock(conn: &Connection, name: &str, owner: &str, ttl: Duration) -> Result<bool> {
    check_lock(name, owner, ttl)?;
    let ttl = clamped_secs(ttl).max(1);
    Ok(conn
        .prepare_cached(sql::LOCK_RENEW)?
        .execute(rusqlite::params![name, owner, ttl])?
        == 1)
}

/// Release lock `name` if `owner` holds it: `false` when it did not.
pub fn unlock(conn: &Connection, name: &str, owner: &str) -> Result<bool> {
    Ok(conn
        .prepare_cached(sql::LOCK_RELEASE)?
        .execute([name, owner])?
        == 1)
}

/// Who holds lock `name` now, and until when (unix seconds); `None` when
/// nobody does (or the holder's time ran out).
///
/// ```
/// let conn = honker_core::open_in_memory().unwrap();
/// assert_eq!(honker_core::lock_holder(&conn, "nightly").unwrap(), None);
/// ```
pub fn lock_holder(conn: &Connection, name: &str) -> Result<Option<(String, i64)>> {
    Ok(conn
        .prepare_cached(sql::LOCK_HOLDER)?
        .query_row([name], |r| {
            Ok((
                crate::job::text_lossy(r.get_ref(0)?),
                crate::job::lenient_int(r.get_ref(1)?, "expires_at", 0),
            ))
        })
        .optional()?)
}

/// Check a lock's name, owner and time to live as every store does.
///
/// ```
/// use std::time::Duration;
/// assert!(honker_core::check_lock("l", "me", Duration::from_secs(1)).is_ok());
/// assert!(honker_core::check_lock("", "me", Duration::from_secs(1)).is_err());
/// ```
pub fn check_lock(name: &str, owner: &str, ttl: Duration) -> Result<()> {
    if name.is_empty() || owner.is_empty() {
        return Err(Error::InvalidOption(
            "a lock needs a name and an owner".into(),
        ));
    }
    if ttl < Duration::from_secs(1) {
        return Err(Error::InvalidOption(format!(
            "a lock's ttl is whole seconds, at least 1 s; got {ttl:?}"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::open_in_memory;

    const MIN: Duration = Duration::from_secs(60);

    #[test]
    fn one_owner_at_a_time_until_release_or_expiry() {
        let conn = open_in_memory().unwrap();
        assert!(try_lock(&conn, "l", "a", MIN).unwrap());
        assert!(
            try_lock(&conn, "l", "a", MIN).unwrap(),
            "its owner keeps it"
        );
        assert!(!try_lock(&conn, "l", "b", MIN).unwrap());
        assert!(!unlock(&conn, "l", "b").unwrap(), "not b's to release");
        assert_eq!(lock_holder(&conn, "l").unwrap().unwrap().0, "a");
        // Its time runs out: b takes it over, and a can no longer renew.
        conn.execute("UPDATE _honker_locks SET expires_at = unixepoch() - 1", [])
            .unwrap();
        assert_eq!(lock_holder(&conn, "l").unwrap(), None);
        assert!(
            renew_lock(&conn, "l", "a", MIN).unwrap(),
            "run out, not taken: still a's"
        );
        conn.execute("UPDATE _honker_locks SET expires_at = unixepoch() - 1", [])
            .unwrap();
        assert!(try_lock(&conn, "l", "b", MIN).unwrap());
        assert!(!renew_lock(&conn, "l", "a", MIN).unwrap());
        assert!(renew_lock(&conn, "l", "b", MIN).unwrap());
        assert!(unlock(&conn, "l", "b").unwrap());
        assert_eq!(lock_holder(&conn, "l").unwrap(), None);
    }

    #[test]
    fn a_renewal_extends_and_the_owner_retaking_does_not() {
        let conn = open_in_memory().unwrap();
        try_lock(&conn, "l", "a", Duration::from_secs(10)).unwrap();
        let (_, first) = lock_holder(&conn, "l").unwrap().unwrap();
        try_lock(&conn, "l", "a", Duration::from_secs(1000)).unwrap();
        assert_eq!(
            lock_holder(&conn, "l").unwrap().unwrap().1,
            first,
            "as Python"
        );
        renew_lock(&conn, "l", "a", Duration::from_secs(1000)).unwrap();
        assert!(lock_holder(&conn, "l").unwrap().unwrap().1 >= first + 990);
    }

    #[test]
    fn bad_locks_are_refused() {
        let conn = open_in_memory().unwrap();
        for (n, o, t) in [
            ("", "a", MIN),
            ("l", "", MIN),
            ("l", "a", Duration::from_millis(500)),
        ] {
            assert!(matches!(
                try_lock(&conn, n, o, t),
                Err(Error::InvalidOption(_))
            ));
        }
        // A huge ttl is clamped, never wrapped.
        assert!(try_lock(&conn, "l", "a", Duration::MAX).unwrap());
        assert!(lock_holder(&conn, "l").unwrap().unwrap().1 > 0);
    }

    #[test]
    fn a_ttl_of_one_second_is_the_shortest_allowed() {
        let conn = open_in_memory().unwrap();
        assert!(try_lock(&conn, "l", "a", Duration::from_secs(1)).unwrap());
        assert!(matches!(
            try_lock(&conn, "m", "a", Duration::from_millis(999)),
            Err(Error::InvalidOption(_))
        ));
    }
}
