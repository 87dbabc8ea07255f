//! Claims, and what their runs write: ack, retry, fail, heartbeat,
//! release, and why a claim is gone.

use std::time::Duration;

use honker_core::durations::{clamped_millis, clamped_secs};
use honker_core::{ClaimGone, ClaimedJob, Lease, QueueControls, RetryOutcome};
use sqlx::{PgConnection, Row};

use crate::rows::{claimed, int};
use crate::sql::{
    ACK, ACK_BATCH, CLAIM, CLAIMS_GONE_WHY, CLAIM_EXHAUSTED_TO_DEAD, CONTROLS_RUNNING,
    FENCED_TO_DEAD, HAS_CLAIMABLE, HEARTBEAT, LIMIT_LOCK, NEXT_CLAIM_AT, NEXT_EXPIRY_ANY,
    PENDING_DUE_COUNT, RATE_COUNT, RATE_WINDOW, RELEASE, RETRY_TO_PENDING,
};
use crate::{queue_controls, Result, Statements};

/// What [`claim`] took.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Claimed {
    /// The claimed jobs, in claim order.
    pub jobs: Vec<ClaimedJob>,
    /// For a rate-limited queue: the end of the window the claims were
    /// counted in as starts (they must start before it).
    pub start_before: Option<i64>,
}

/// Claim up to `n` jobs of `queue` for `worker` for `visibility`, inside
/// the transaction `conn` is in, as the SQLite store claims: due pending
/// rows and lapsed claims, in claim order, skipping rows other
/// transactions hold; a row whose attempts were already spent goes to
/// dead instead (`max attempts exceeded`) and its slot is refilled. The
/// queue's controls hold across every process: a paused queue gives
/// nothing; a limited one (running or rate limit) is claimed under an
/// advisory lock of its own, so two processes never both take the last
/// slot, and its claims are counted in the rate window.
pub async fn claim(
    conn: &mut PgConnection,
    st: &Statements,
    queue: &str,
    worker: &str,
    n: usize,
    visibility: Duration,
) -> Result<Claimed> {
    if n == 0 || !has_claimable(conn, st, queue).await? {
        return Ok(Claimed::default());
    }
    let ctl = queue_controls(conn, st, queue).await?;
    claim_under(conn, st, queue, &ctl, worker, n, visibility).await
}

/// [`claim`] with `queue`'s controls already read (in this transaction),
/// and without the look whether anything is claimable first: for a
/// pool's cycle, which reads every queue's controls once and whose claim
/// finds nothing as cheaply as the look would.
pub async fn claim_under(
    conn: &mut PgConnection,
    st: &Statements,
    queue: &str,
    ctl: &QueueControls,
    worker: &str,
    n: usize,
    visibility: Duration,
) -> Result<Claimed> {
    let visibility = clamped_secs(visibility).max(1);
    if n == 0 || ctl.paused {
        return Ok(Claimed::default());
    }
    let mut n = n;
    let mut rate_per = None;
    if ctl.max_running.is_some() || ctl.rate.is_some() {
        sqlx::query(LIMIT_LOCK)
            .bind(queue)
            .execute(&mut *conn)
            .await?;
        if let Some(max) = ctl.max_running {
            let running: i64 = sqlx::query(st.get(CONTROLS_RUNNING))
                .bind(queue)
                .fetch_one(&mut *conn)
                .await?
                .try_get(0)?;
            let room = i64::from(max).saturating_sub(running).max(0);
            n = n.min(usize::try_from(room).unwrap_or(0));
        }
        if let Some(rate) = ctl.rate {
            let per = i64::try_from(rate.per.as_secs()).unwrap_or(i64::MAX).max(1);
            rate_per = Some(per);
            let used: i64 = sqlx::query(st.get(RATE_WINDOW))
                .bind(queue)
                .bind(per)
                .fetch_one(&mut *conn)
                .await?
                .try_get(1)?;
            let room = i64::from(rate.limit).saturating_sub(used).max(0);
            n = n.min(usize::try_from(room).unwrap_or(0));
        }
        if n == 0 {
            return Ok(Claimed::default());
        }
    }
    let mut jobs: Vec<ClaimedJob> = Vec::with_capacity(n.min(1024));
    let mut first = true;
    loop {
        let want = n - jobs.len();
        let rows = match sqlx::query(st.get(CLAIM))
            .bind(queue)
            .bind(worker)
            .bind(int(want))
            .bind(visibility)
            .fetch_all(&mut *conn)
            .await
        {
            Ok(rows) => rows,
            Err(e) if first => return Err(e.into()),
            // A refill after rows were claimed (outside a transaction,
            // each claim commits alone): those rows are answered, not
            // dropped.
            Err(e) => {
                tracing::warn!(queue, error = %e, "a refilling claim failed; the rows claimed so far run");
                break;
            }
        };
        first = false;
        let got = rows.len();
        let mut moved_any = false;
        for r in &rows {
            let job = claimed(r)?;
            if job.attempts > job.max_attempts {
                if let Err(e) = dead_letter_exhausted(conn, st, job.id).await {
                    // It stays claimed, unreturned, until its claim lapses;
                    // the queue goes on.
                    tracing::warn!(job_id = job.id, queue, error = %e,
                        "could not move an exhausted job to the dead jobs; it is tried again when its claim lapses");
                }
                moved_any = true;
            } else {
                jobs.push(job);
            }
        }
        if !moved_any || got < want {
            break;
        }
    }
    let start_before = match rate_per {
        Some(per) if !jobs.is_empty() => {
            let start: i64 = sqlx::query(st.get(RATE_COUNT))
                .bind(queue)
                .bind(per)
                .bind(int(jobs.len()))
                .fetch_one(&mut *conn)
                .await?
                .try_get(0)?;
            Some(start.saturating_add(per))
        }
        _ => None,
    };
    jobs.sort_by(|a, b| {
        b.priority
            .cmp(&a.priority)
            .then(a.run_at.cmp(&b.run_at))
            .then(a.id.cmp(&b.id))
    });
    Ok(Claimed { jobs, start_before })
}

async fn dead_letter_exhausted(conn: &mut PgConnection, st: &Statements, id: i64) -> Result<()> {
    sqlx::query(st.get(CLAIM_EXHAUSTED_TO_DEAD))
        .bind(id)
        .execute(&mut *conn)
        .await?;
    tracing::warn!(
        job_id = id,
        "job exhausted its attempts; moved to the dead jobs"
    );
    Ok(())
}

/// Whether `queue` has a job a claim would take now (were its controls
/// to allow it).
pub async fn has_claimable(conn: &mut PgConnection, st: &Statements, queue: &str) -> Result<bool> {
    Ok(sqlx::query(st.get(HAS_CLAIMABLE))
        .bind(queue)
        .fetch_one(&mut *conn)
        .await?
        .try_get(0)?)
}

/// The earliest future moment `queue` may have something to claim: its
/// next due `run_at`, or a second after a running claim lapses.
pub async fn next_claim_at(
    conn: &mut PgConnection,
    st: &Statements,
    queue: &str,
) -> Result<Option<i64>> {
    Ok(sqlx::query(st.get(NEXT_CLAIM_AT))
        .bind(queue)
        .fetch_one(&mut *conn)
        .await?
        .try_get(0)?)
}

/// The earliest `expires_at` still ahead, of every queue.
pub async fn next_expiry_any(conn: &mut PgConnection, st: &Statements) -> Result<Option<i64>> {
    Ok(sqlx::query(st.get(NEXT_EXPIRY_ANY))
        .fetch_one(&mut *conn)
        .await?
        .try_get(0)?)
}

/// `queue`'s pending jobs due now.
pub async fn pending_due_count(
    conn: &mut PgConnection,
    st: &Statements,
    queue: &str,
) -> Result<i64> {
    Ok(sqlx::query(st.get(PENDING_DUE_COUNT))
        .bind(queue)
        .fetch_one(&mut *conn)
        .await?
        .try_get(0)?)
}

/// Delete a finished job while `worker`'s claim `lease` is valid.
pub async fn ack(
    conn: &mut PgConnection,
    st: &Statements,
    worker: &str,
    lease: Lease,
) -> Result<bool> {
    let n = sqlx::query(st.get(ACK))
        .bind(lease.id)
        .bind(worker)
        .bind(lease.attempts)
        .execute(&mut *conn)
        .await?
        .rows_affected();
    Ok(n == 1)
}

/// Delete the finished jobs of `fences` (worker string and lease), each
/// while its own claim is valid, and, when `notify` and any was deleted,
/// notify the schema's channel: one statement. The (id, attempt) of each
/// deleted.
pub async fn ack_batch(
    conn: &mut PgConnection,
    st: &Statements,
    fences: &[(&str, Lease)],
    notify: bool,
) -> Result<Vec<(i64, i64)>> {
    let (ids, workers, attempts) = fence_arrays(fences);
    let rows = sqlx::query(st.get(ACK_BATCH))
        .bind(ids)
        .bind(workers)
        .bind(attempts)
        .bind(notify.then(|| st.channel()))
        .fetch_all(&mut *conn)
        .await?;
    Ok(rows
        .iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
        .collect::<sqlx::Result<_>>()?)
}

/// Make the job due again after `delay` while attempts remain, else
/// dead-letter it with `error`; nothing when the claim is no longer
/// valid.
pub async fn retry(
    conn: &mut PgConnection,
    st: &Statements,
    worker: &str,
    lease: Lease,
    delay: Duration,
    error: &str,
) -> Result<RetryOutcome> {
    let n = sqlx::query(st.get(RETRY_TO_PENDING))
        .bind(lease.id)
        .bind(worker)
        .bind(lease.attempts)
        .bind(clamped_millis(delay))
        .execute(&mut *conn)
        .await?
        .rows_affected();
    if n == 1 {
        return Ok(RetryOutcome::Retried);
    }
    Ok(if fail(conn, st, worker, lease, error).await? {
        RetryOutcome::Dead
    } else {
        RetryOutcome::Lost
    })
}

/// Dead-letter the job with `error` while the claim is valid.
pub async fn fail(
    conn: &mut PgConnection,
    st: &Statements,
    worker: &str,
    lease: Lease,
    error: &str,
) -> Result<bool> {
    let n = sqlx::query(st.get(FENCED_TO_DEAD))
        .bind(lease.id)
        .bind(worker)
        .bind(lease.attempts)
        .bind(crate::storable(error))
        .execute(&mut *conn)
        .await?
        .rows_affected();
    Ok(n == 1)
}

/// Extend a valid claim to `extend` from now (never shortening it): the
/// new deadline, `None` when the claim is gone.
pub async fn heartbeat(
    conn: &mut PgConnection,
    st: &Statements,
    worker: &str,
    lease: Lease,
    extend: Duration,
) -> Result<Option<i64>> {
    Ok(sqlx::query(st.get(HEARTBEAT))
        .bind(lease.id)
        .bind(worker)
        .bind(lease.attempts)
        .bind(clamped_secs(extend))
        .fetch_optional(&mut *conn)
        .await?
        .map(|r| r.try_get(0))
        .transpose()?)
}

/// Give valid claims back, attempts unburned; how many.
pub async fn release(
    conn: &mut PgConnection,
    st: &Statements,
    worker: &str,
    leases: &[Lease],
) -> Result<usize> {
    let mut n = 0;
    for l in leases {
        n += sqlx::query(st.get(RELEASE))
            .bind(l.id)
            .bind(worker)
            .bind(l.attempts)
            .execute(&mut *conn)
            .await?
            .rows_affected();
    }
    Ok(usize::try_from(n).unwrap_or(usize::MAX))
}

/// Which of `worker`'s claims `leases` are gone, and why.
pub async fn lost_claims(
    conn: &mut PgConnection,
    st: &Statements,
    worker: &str,
    leases: &[Lease],
) -> Result<Vec<(Lease, ClaimGone)>> {
    let fences: Vec<(&str, Lease)> = leases.iter().map(|l| (worker, *l)).collect();
    Ok(claims_gone(conn, st, &fences)
        .await?
        .into_iter()
        .map(|(i, why)| (fences[i].1, why))
        .collect())
}

/// Which of `fences` (worker string and lease, of any claims) are no
/// longer held, by index into `fences`, and why: one statement.
pub async fn claims_gone(
    conn: &mut PgConnection,
    st: &Statements,
    fences: &[(&str, Lease)],
) -> Result<Vec<(usize, ClaimGone)>> {
    if fences.is_empty() {
        return Ok(Vec::new());
    }
    let (ids, workers, attempts) = fence_arrays(fences);
    let rows = sqlx::query(st.get(CLAIMS_GONE_WHY))
        .bind(ids)
        .bind(workers)
        .bind(attempts)
        .bind(honker_core::CANCELLED)
        .fetch_all(&mut *conn)
        .await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in &rows {
        let place: i64 = r.try_get(0)?;
        let why: Option<i32> = r.try_get(1)?;
        let why = match why {
            Some(1) => ClaimGone::Lost,
            _ => ClaimGone::Cancelled,
        };
        // The server counts places from 1.
        let i = usize::try_from(place.saturating_sub(1)).unwrap_or(usize::MAX);
        if i < fences.len() {
            out.push((i, why));
        }
    }
    Ok(out)
}

/// `fences` as the three arrays the statements over many claims bind
/// (`unnest($1, $2, $3)`): ids, worker strings, attempts.
fn fence_arrays<'a>(fences: &[(&'a str, Lease)]) -> (Vec<i64>, Vec<&'a str>, Vec<i64>) {
    (
        fences.iter().map(|f| f.1.id).collect(),
        fences.iter().map(|f| f.0).collect(),
        fences.iter().map(|f| f.1.attempts).collect(),
    )
}
