//! Reading rows into the format's types.

use honker_core::{ClaimedJob, DeadJob, JobRow, JobState};
use sqlx::postgres::PgRow;
use sqlx::Row;

/// A claimed row, as `sql::CLAIM` returns it.
pub(crate) fn claimed(r: &PgRow) -> sqlx::Result<ClaimedJob> {
    Ok(ClaimedJob {
        id: r.try_get(0)?,
        queue: r.try_get(1)?,
        payload: r.try_get(2)?,
        priority: r.try_get(3)?,
        run_at: r.try_get(4)?,
        worker_id: r.try_get(5)?,
        claim_expires_at: r.try_get(6)?,
        attempts: r.try_get(7)?,
        max_attempts: r.try_get(8)?,
        created_at: r.try_get(9)?,
        expires_at: r.try_get(10)?,
    })
}

/// A job's state as the format writes it.
pub(crate) fn state(s: String) -> JobState {
    match s.as_str() {
        "pending" => JobState::Pending,
        "processing" => JobState::Processing,
        _ => JobState::Other(s),
    }
}

/// A live row, in the columns of `live_columns!`.
pub(crate) fn live(r: &PgRow) -> sqlx::Result<JobRow> {
    Ok(JobRow {
        id: r.try_get(0)?,
        queue: r.try_get(1)?,
        payload: r.try_get(2)?,
        state: state(r.try_get(3)?),
        priority: r.try_get(4)?,
        run_at: r.try_get(5)?,
        worker_id: r.try_get(6)?,
        claim_expires_at: r.try_get(7)?,
        attempts: r.try_get(8)?,
        max_attempts: r.try_get(9)?,
        created_at: r.try_get(10)?,
        expires_at: r.try_get(11)?,
    })
}

/// A dead row, in the columns of `dead_columns!`.
pub(crate) fn dead(r: &PgRow) -> sqlx::Result<DeadJob> {
    Ok(DeadJob {
        id: r.try_get(0)?,
        queue: r.try_get(1)?,
        payload: r.try_get(2)?,
        priority: r.try_get(3)?,
        run_at: r.try_get(4)?,
        attempts: r.try_get(5)?,
        max_attempts: r.try_get(6)?,
        last_error: r.try_get(7)?,
        created_at: r.try_get(8)?,
        died_at: r.try_get(9)?,
    })
}

/// A count or limit as the database takes it.
pub(crate) fn int(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}
