//! What operators read and do: jobs by id, lists, dead jobs, stats,
//! cancel, requeue, purge, sweeps and results.

use std::time::Duration;

use honker_core::durations::clamped_secs;
use honker_core::{DeadFilter, DeadJob, JobFate, JobRow, LiveState, QueueStats};
use sqlx::postgres::PgRow;
use sqlx::{Connection, PgConnection, Row};

use crate::enqueue::{blocking_job, notify};
use crate::rows::{dead, int, live, state};
use crate::sql::{
    CANCEL, DEAD_IDS_WHERE, GET_DEAD, GET_JOB, GET_JOB_IN, IS_DEAD, JOB_FATE, LIST_DEAD_WHERE,
    LIST_PENDING, LIST_RUNNING, LIST_SCHEDULED, PURGE_DEAD_IN, PURGE_DEAD_WHERE, RATE_SWEEP,
    REQUEUE_DEAD, RESULT_GET, RESULT_SAVE, RESULT_SWEEP, RESULT_WAIT, RESULT_WAIT_END,
    RESULT_WAIT_SWEEP, STATS_ALL, STATS_QUEUE, SWEEP_EXPIRED, UNIQUE_LOCK, UNIQUE_OF_JOB,
    UNIQUE_SWEEP, WAITING_PAYLOADS,
};
use crate::{Result, Statements};

/// Live job `id`, of `queue` when given.
pub async fn get_job(
    conn: &mut PgConnection,
    st: &Statements,
    queue: Option<&str>,
    id: i64,
) -> Result<Option<JobRow>> {
    let row = match queue {
        None => {
            sqlx::query(st.get(GET_JOB))
                .bind(id)
                .fetch_optional(&mut *conn)
                .await?
        }
        Some(q) => {
            sqlx::query(st.get(GET_JOB_IN))
                .bind(id)
                .bind(q)
                .fetch_optional(&mut *conn)
                .await?
        }
    };
    Ok(row.as_ref().map(live).transpose()?)
}

/// Dead job `id`.
pub async fn get_dead(
    conn: &mut PgConnection,
    st: &Statements,
    id: i64,
) -> Result<Option<DeadJob>> {
    let row = sqlx::query(st.get(GET_DEAD))
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?;
    Ok(row.as_ref().map(dead).transpose()?)
}

/// Cancel live job `id` (of `queue` when given): it moves to the dead
/// jobs as `cancelled`, running or not; a running one's worker sees its
/// claim gone. `false` when there is no such live job.
pub async fn cancel(
    conn: &mut PgConnection,
    st: &Statements,
    queue: Option<&str>,
    id: i64,
) -> Result<bool> {
    let n = sqlx::query(st.get(CANCEL))
        .bind(id)
        .bind(queue)
        .bind(honker_core::CANCELLED)
        .execute(&mut *conn)
        .await?
        .rows_affected();
    if n == 1 {
        // A running job cancelled frees a slot of a running limit.
        notify(conn, st).await?;
    }
    Ok(n == 1)
}

/// Where job `id` is: live (and its state), dead (and why), or gone.
pub async fn job_fate(conn: &mut PgConnection, st: &Statements, id: i64) -> Result<JobFate> {
    let row = sqlx::query(st.get(JOB_FATE))
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?;
    let Some(r) = row else {
        return Ok(JobFate::Gone);
    };
    let table: i32 = r.try_get(0)?;
    Ok(if table == 1 {
        JobFate::Live(state(r.try_get(1)?))
    } else {
        JobFate::Dead {
            last_error: r.try_get(2)?,
        }
    })
}

/// Move the expired jobs of `queue` (every queue when `None`) to the
/// dead jobs as `expired`; how many.
pub async fn sweep_expired(
    conn: &mut PgConnection,
    st: &Statements,
    queue: Option<&str>,
) -> Result<usize> {
    let n: i64 = sqlx::query(st.get(SWEEP_EXPIRED))
        .bind(queue)
        .fetch_one(&mut *conn)
        .await?
        .try_get(0)?;
    if n > 0 {
        tracing::info!(queue, count = n, "swept expired jobs to the dead jobs");
    }
    Ok(usize::try_from(n).unwrap_or(0))
}

/// Delete expired results, unique keys that block nothing any more,
/// rate-limit windows that ended a day ago, and result waits whose
/// waiters went away.
pub async fn sweep_results_and_keys(conn: &mut PgConnection, st: &Statements) -> Result<()> {
    sqlx::query(st.get(RESULT_SWEEP))
        .execute(&mut *conn)
        .await?;
    sqlx::query(st.get(RESULT_WAIT_SWEEP))
        .execute(&mut *conn)
        .await?;
    sqlx::query(st.get(UNIQUE_SWEEP))
        .execute(&mut *conn)
        .await?;
    sqlx::query(st.get(RATE_SWEEP)).execute(&mut *conn).await?;
    Ok(())
}

/// Say that someone waits for job `job_id`'s result, so that its ack
/// notifies the schema's channel (see [`sql::ACK_BATCH`](crate::sql::ACK_BATCH)),
/// until [`end_result_wait`] with the returned id.
pub async fn begin_result_wait(
    conn: &mut PgConnection,
    st: &Statements,
    job_id: i64,
) -> Result<i64> {
    Ok(sqlx::query_scalar(st.get(RESULT_WAIT))
        .bind(job_id)
        .fetch_one(&mut *conn)
        .await?)
}

/// End the result wait `wait_id` (of [`begin_result_wait`]).
pub async fn end_result_wait(conn: &mut PgConnection, st: &Statements, wait_id: i64) -> Result<()> {
    sqlx::query(st.get(RESULT_WAIT_END))
        .bind(wait_id)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// The payloads of `queue`'s pending jobs, oldest first.
pub async fn waiting_payloads(
    conn: &mut PgConnection,
    st: &Statements,
    queue: &str,
) -> Result<Vec<String>> {
    Ok(sqlx::query_scalar(st.get(WAITING_PAYLOADS))
        .bind(queue)
        .fetch_all(&mut *conn)
        .await?)
}

/// `queue`'s live jobs in `state` whose payload contains `text` (any
/// when `None`), `limit` from `offset`.
pub async fn find_jobs(
    conn: &mut PgConnection,
    st: &Statements,
    queue: &str,
    state: LiveState,
    text: Option<&str>,
    limit: usize,
    offset: usize,
) -> Result<Vec<JobRow>> {
    let sql = match state {
        LiveState::Pending => LIST_PENDING,
        LiveState::Scheduled => LIST_SCHEDULED,
        LiveState::Running => LIST_RUNNING,
    };
    let rows = sqlx::query(st.get(sql))
        .bind(queue)
        .bind(int(limit))
        .bind(int(offset))
        .bind(text)
        .fetch_all(&mut *conn)
        .await?;
    Ok(rows.iter().map(live).collect::<sqlx::Result<_>>()?)
}

/// Bind a dead filter's four parameters.
fn filtered<'q>(
    q: sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>,
    f: &'q DeadFilter,
) -> sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments> {
    q.bind(f.queue.as_deref())
        .bind(f.error_contains.as_deref())
        .bind(f.died_before)
        .bind(f.payload_contains.as_deref())
}

/// Dead jobs matching `filter`, the newest death first.
pub async fn list_dead_where(
    conn: &mut PgConnection,
    st: &Statements,
    filter: &DeadFilter,
    limit: usize,
    offset: usize,
) -> Result<Vec<DeadJob>> {
    let rows = filtered(sqlx::query(st.get(LIST_DEAD_WHERE)), filter)
        .bind(int(limit))
        .bind(int(offset))
        .fetch_all(&mut *conn)
        .await?;
    Ok(rows.iter().map(dead).collect::<sqlx::Result<_>>()?)
}

/// Requeue dead job `id` (of `queue` when given) with fresh attempts,
/// due now, under its own id. A unique job whose key another job holds
/// meanwhile is refused ([`UniqueConflict`](honker_core::Error::UniqueConflict)).
pub async fn requeue_dead(
    conn: &mut PgConnection,
    st: &Statements,
    queue: Option<&str>,
    id: i64,
) -> Result<bool> {
    let mut tx = conn.begin().await?;
    check_requeue(&mut tx, st, id).await?;
    let back = sqlx::query(st.get(REQUEUE_DEAD))
        .bind(id)
        .bind(queue)
        .fetch_optional(&mut *tx)
        .await?
        .is_some();
    if back {
        notify(&mut tx, st).await?;
    }
    tx.commit().await?;
    Ok(back)
}

/// Refuse to requeue dead job `id` while another job holds its unique key.
async fn check_requeue(conn: &mut PgConnection, st: &Statements, id: i64) -> Result<()> {
    let is_dead = sqlx::query(st.get(IS_DEAD))
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?
        .is_some();
    if !is_dead {
        return Ok(());
    }
    let held: Option<PgRow> = sqlx::query(st.get(UNIQUE_OF_JOB))
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?;
    let Some(r) = held else {
        return Ok(());
    };
    let (queue, key): (String, String) = (r.try_get(0)?, r.try_get(1)?);
    sqlx::query(UNIQUE_LOCK)
        .bind(&queue)
        .bind(&key)
        .execute(&mut *conn)
        .await?;
    match blocking_job(conn, st, &queue, &key, Some(id)).await? {
        Some(holder) => Err(honker_core::Error::UniqueConflict {
            job_id: id,
            holder,
            key,
        }
        .into()),
        None => Ok(()),
    }
}

/// Requeue the dead jobs matching `filter` (those whose unique key
/// another job holds stay dead); how many.
pub async fn requeue_dead_where(
    conn: &mut PgConnection,
    st: &Statements,
    filter: &DeadFilter,
) -> Result<usize> {
    let ids: Vec<i64> = filtered(sqlx::query(st.get(DEAD_IDS_WHERE)), filter)
        .fetch_all(&mut *conn)
        .await?
        .iter()
        .map(|r| r.try_get(0))
        .collect::<sqlx::Result<_>>()?;
    let mut n = 0;
    for id in ids {
        match requeue_dead(conn, st, None, id).await {
            Ok(done) => n += usize::from(done),
            Err(crate::Error::Format(honker_core::Error::UniqueConflict { .. })) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Delete dead job `id` of `queue`.
pub async fn purge_dead_in(
    conn: &mut PgConnection,
    st: &Statements,
    queue: &str,
    id: i64,
) -> Result<bool> {
    let n = sqlx::query(st.get(PURGE_DEAD_IN))
        .bind(id)
        .bind(queue)
        .execute(&mut *conn)
        .await?
        .rows_affected();
    Ok(n == 1)
}

/// Delete the dead jobs matching `filter`; how many.
pub async fn purge_dead_where(
    conn: &mut PgConnection,
    st: &Statements,
    filter: &DeadFilter,
) -> Result<usize> {
    let n = filtered(sqlx::query(st.get(PURGE_DEAD_WHERE)), filter)
        .execute(&mut *conn)
        .await?
        .rows_affected();
    Ok(usize::try_from(n).unwrap_or(usize::MAX))
}

fn counts(r: &PgRow, first: usize, queue: String) -> sqlx::Result<QueueStats> {
    let n = |i: usize| -> sqlx::Result<i64> {
        Ok(r.try_get::<Option<i64>, _>(first + i)?.unwrap_or(0))
    };
    Ok(QueueStats {
        pending_due: n(0)?,
        scheduled: n(1)?,
        processing: n(2)?,
        dead: n(3)?,
        oldest_pending_age: r.try_get::<Option<i64>, _>(first + 4)?.map(|a| a.max(0)),
        paused: r.try_get(first + 5)?,
        next_due_at: r.try_get(first + 6)?,
        queue,
    })
}

/// Counts for every queue the store knows, by name.
pub async fn stats(conn: &mut PgConnection, st: &Statements) -> Result<Vec<QueueStats>> {
    let rows = sqlx::query(st.get(STATS_ALL)).fetch_all(&mut *conn).await?;
    Ok(rows
        .iter()
        .map(|r| counts(r, 1, r.try_get(0)?))
        .collect::<sqlx::Result<_>>()?)
}

/// Counts for `queue`.
pub async fn queue_stats(
    conn: &mut PgConnection,
    st: &Statements,
    queue: &str,
) -> Result<QueueStats> {
    let r = sqlx::query(st.get(STATS_QUEUE))
        .bind(queue)
        .fetch_one(&mut *conn)
        .await?;
    Ok(counts(&r, 0, queue.to_string())?)
}

/// Save job `id`'s result (JSON text), kept for `ttl` (forever when
/// `None`).
pub async fn save_result(
    conn: &mut PgConnection,
    st: &Statements,
    id: i64,
    value: &str,
    ttl: Option<Duration>,
) -> Result<()> {
    serde_json::from_str::<Box<serde_json::value::RawValue>>(value)
        .map_err(honker_core::Error::InvalidPayload)?;
    sqlx::query(st.get(RESULT_SAVE))
        .bind(id)
        .bind(value)
        .bind(ttl.map(clamped_secs))
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Job `id`'s result, unless absent or expired.
pub async fn get_result(
    conn: &mut PgConnection,
    st: &Statements,
    id: i64,
) -> Result<Option<String>> {
    Ok(sqlx::query(st.get(RESULT_GET))
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?
        .map(|r| r.try_get::<Option<String>, _>(0))
        .transpose()?
        .flatten())
}
