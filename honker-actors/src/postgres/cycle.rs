//! One cycle of a pool on PostgreSQL: write the outcomes that came in,
//! claim for the room the supervisor planned, sweep when asked, and read
//! when something is next due.
//!
//! Each part commits on its own, atomic by itself, so a cycle costs the
//! statements it needs and no `BEGIN` or `COMMIT` round trip (on a
//! server, the round trips are the cost):
//!
//! - the plain acks together, in one statement that also notifies the
//!   listeners; every other outcome in one statement, or (an ack with a
//!   result) in a transaction of its own. Every write is fenced by its
//!   claim, so an outcome sent again is `Lost`, never written twice; one
//!   that cannot be written (a result that is not JSON) is refused before
//!   anything is;
//! - each queue's claim in one statement, and a queue with a running or
//!   rate limit in a transaction of its own under the queue's advisory
//!   lock (the count, the claim and the rate window together); a claim
//!   that fails after the outcomes were written is reported for its queue
//!   (`claim_errors`), the outcomes' answers kept;
//! - the sweeps, one statement each.
//!
//! A failure before any outcome is written fails the cycle: the pool
//! sends them all again. One after some were written (the connection went
//! away) answers those and gives the pool back only the rest.

use honker_core::{QueueControls, RetryOutcome};
use honker_postgres as pg;
use honker_postgres::sqlx::{Acquire, PgConnection};

use super::Ctx;
use crate::store::cycle::earliest;
use crate::store::{Applied, CycleOutput, CycleRequest, Fence, NextTimes, Outcome};
use crate::Result;

/// Run one cycle on a pooled connection.
pub(crate) async fn run_cycle(ctx: &Ctx, cy: &CycleRequest) -> Result<CycleOutput> {
    let out: pg::Result<CycleOutput> = async {
        let mut conn = ctx.pool.acquire().await?;
        cycle_in(&mut conn, &ctx.st, cy).await
    }
    .await;
    out.map_err(|e| ctx.err(e))
}

async fn cycle_in(
    c: &mut PgConnection,
    st: &pg::Statements,
    cy: &CycleRequest,
) -> pg::Result<CycleOutput> {
    // The controls first, once: which queues are paused, which limited
    // across processes, and each one's limits for its claim.
    let controls = pg::controlled_queues(c, st).await?;
    let ctl_of = |q: &str| -> QueueControls {
        controls
            .iter()
            .find(|(name, _)| name == q)
            .map(|(_, ctl)| ctl.clone())
            .unwrap_or_default()
    };
    let (applied, cut_short) = write_outcomes(c, st, &cy.outcomes).await?;
    let mut out = CycleOutput {
        applied,
        ..CycleOutput::default()
    };
    if cut_short {
        // The connection failed after some outcomes were written: those
        // are answered, the rest go back to the pool to send again, and
        // nothing more is asked of this connection.
        return Ok(out);
    }
    let mut limited = Vec::new();
    for (q, ctl) in &controls {
        if ctl.paused {
            out.paused.push(q.clone());
        } else if ctl.max_running.is_some() || ctl.rate.is_some() {
            limited.push(q.as_str());
        }
    }
    let is_limited = |q: &str| limited.contains(&q);
    // The plain acks told the listeners themselves.
    if wrote_other(&cy.outcomes, &out.applied) {
        pg::notify(c, st).await?;
    }
    let (first, rest): (Vec<_>, Vec<_>) = cy.plan.queues.iter().partition(|(q, _)| is_limited(q));
    let mut budget = cy.plan.budget;
    let mut free = cy.plan.free;
    let mut short = Vec::new();
    for &(q, room) in first.into_iter().chain(rest) {
        let n = budget.min(room);
        if n == 0 {
            out.maybe_more = true;
            continue;
        }
        let n = if is_limited(q) { n.min(free) } else { n };
        let ctl = ctl_of(q);
        if n == 0 || ctl.paused {
            continue;
        }
        let claimed = if is_limited(q) {
            // The count, the claim and the rate window under the queue's
            // advisory lock, released at this commit.
            let mut tx = c.begin().await?;
            match pg::claim_under(&mut tx, st, q, &ctl, &cy.worker, n, cy.visibility).await {
                Ok(claimed) => tx.commit().await.map(|()| claimed).map_err(Into::into),
                Err(e) => Err(e),
            }
        } else {
            pg::claim_under(c, st, q, &ctl, &cy.worker, n, cy.visibility).await
        };
        let claimed = match claimed {
            Ok(claimed) => claimed,
            Err(e) => {
                // The outcomes are written and answered; the pool tries
                // the claims again after a pause (the connection may be
                // gone, so nothing more is asked of it now).
                out.claim_errors.push((q, e.to_string()));
                return Ok(out);
            }
        };
        if let Some(end) = claimed.start_before {
            out.start_before.push((q, end));
        }
        out.maybe_more |= claimed.jobs.len() == n;
        // (A limited queue comes back short by its limit: the freed slot
        // or the window's end wakes its pools.)
        if claimed.jobs.len() < n && !is_limited(q) {
            short.push(q);
        }
        budget = budget.saturating_sub(claimed.jobs.len());
        free = free.saturating_sub(claimed.jobs.len());
        out.claimed.extend(claimed.jobs);
    }
    if cy.sweep {
        match sweep(c, st).await {
            Ok(n) => out.swept = n,
            Err(e) => tracing::warn!(error = %e, "the expiry sweep failed; it runs again later"),
        }
    }
    // A claim that came back short may have skipped rows another
    // transaction held, which it then gave up (rolled back): they are due
    // now, and no commit will tell of them. Look once.
    if !out.maybe_more {
        for q in short {
            if pg::has_claimable(c, st, q).await.unwrap_or(false) {
                out.maybe_more = true;
                break;
            }
        }
    }
    if !out.maybe_more {
        let mut next = NextTimes::default();
        let read: pg::Result<()> = async {
            for q in cy.queues.iter() {
                let at = pg::next_claim_allowed_under(c, st, q, &ctl_of(q)).await?;
                next.claim = earliest(next.claim, at);
            }
            next.expiry = pg::next_expiry_any(c, st).await?;
            Ok(())
        }
        .await;
        match read {
            Ok(()) => out.next = Some(next),
            // Unread, the pool cycles again soon, and meets the trouble
            // (if it lasts) with its outcomes already answered.
            Err(e) => tracing::warn!(error = %e, "could not read when work is next due"),
        }
    }
    Ok(out)
}

/// Move expired jobs to dead, drop expired results and spent keys.
async fn sweep(c: &mut PgConnection, st: &pg::Statements) -> pg::Result<usize> {
    let n = pg::sweep_expired(c, st, None).await?;
    pg::sweep_results_and_keys(c, st).await?;
    Ok(n)
}

/// Whether an outcome other than a plain ack was written: then the
/// listeners are told. Every written outcome matters to someone: a job
/// due again or a running-limit slot freed to the other pools, a job done
/// or dead to whoever waits for its result. (The plain acks' statement
/// tells them itself; a cycle that only claims tells nobody.)
fn wrote_other(outcomes: &[Outcome], applied: &[std::result::Result<Applied, String>]) -> bool {
    outcomes.iter().zip(applied).any(|(o, a)| {
        let plain = matches!(o, Outcome::Ack { result: None, .. });
        !plain && matches!(a, Ok(a) if *a != Applied::Lost)
    })
}

/// When something next happens on `queues`.
pub(crate) async fn next_times(
    c: &mut PgConnection,
    st: &pg::Statements,
    queues: &[&'static str],
) -> pg::Result<NextTimes> {
    let mut next = NextTimes::default();
    for q in queues {
        next.claim = earliest(next.claim, pg::next_claim_allowed_at(c, st, q).await?);
    }
    next.expiry = pg::next_expiry_any(c, st).await?;
    Ok(next)
}

/// Write each outcome with the fence of its own claim: plain acks in one
/// statement, the others one by one, in order. A failure before anything
/// is written fails the cycle (the pool sends every outcome again). One
/// after (the connection went away) answers what was written and reports
/// the rest as not written, so the pool sends only those again: sent
/// again, a written ack would find its row gone and be counted a lost
/// claim. The flag says the cycle was cut short.
async fn write_outcomes(
    c: &mut PgConnection,
    st: &pg::Statements,
    outcomes: &[Outcome],
) -> pg::Result<(Vec<std::result::Result<Applied, String>>, bool)> {
    let plain: Vec<(usize, &Fence)> = outcomes
        .iter()
        .enumerate()
        .filter_map(|(i, o)| match o {
            Outcome::Ack {
                fence,
                result: None,
                ..
            } => Some((i, fence)),
            _ => None,
        })
        .collect();
    let mut applied: Vec<Option<std::result::Result<Applied, String>>> = vec![None; outcomes.len()];
    if !plain.is_empty() {
        let fences: Vec<(&str, honker_core::Lease)> =
            plain.iter().map(|(_, f)| (&*f.worker, f.lease)).collect();
        let acked = pg::ack_batch(c, st, &fences, true).await?;
        for (i, f) in plain {
            applied[i] = Some(Ok(if acked.contains(&(f.lease.id, f.lease.attempts)) {
                Applied::Acked
            } else {
                Applied::Lost
            }));
        }
    }
    let mut cut_short = false;
    for (i, o) in outcomes.iter().enumerate() {
        if applied[i].is_some() {
            continue;
        }
        applied[i] = Some(match apply(c, st, o).await {
            Ok(a) => a,
            // The statement was refused (the connection is fine):
            // this outcome alone is reported, and tried again.
            Err(pg::Error::Db(pg::sqlx::Error::Database(e))) => Err(e.to_string()),
            Err(e) if applied.iter().any(|a| matches!(a, Some(Ok(_)))) => {
                cut_short = true;
                Err(format!("not written: {e}"))
            }
            Err(e) => return Err(e),
        });
        if cut_short {
            break;
        }
    }
    if cut_short {
        for a in applied.iter_mut().filter(|a| a.is_none()) {
            *a = Some(Err("not written: the cycle was cut short".to_string()));
        }
    }
    Ok((applied.into_iter().flatten().collect(), cut_short))
}

/// Write one outcome other than a plain ack.
async fn apply(
    c: &mut PgConnection,
    st: &pg::Statements,
    o: &Outcome,
) -> pg::Result<std::result::Result<Applied, String>> {
    let Fence { worker, lease } = o.fence();
    let (worker, lease) = (&**worker, *lease);
    Ok(Ok(match o {
        Outcome::Ack { result: None, .. } => {
            if pg::ack(c, st, worker, lease).await? {
                Applied::Acked
            } else {
                Applied::Lost
            }
        }
        Outcome::Ack {
            result: Some((value, ttl)),
            ..
        } => {
            // Refused before anything is written: the ack waits with it.
            if let Err(e) = serde_json::from_str::<Box<serde_json::value::RawValue>>(value) {
                return Ok(Err(format!("the job's result is not JSON: {e}")));
            }
            // The ack and its result commit together.
            let mut tx = c.begin().await?;
            if !pg::ack(&mut tx, st, worker, lease).await? {
                Applied::Lost
            } else {
                pg::save_result(&mut tx, st, lease.id, value, *ttl).await?;
                tx.commit().await?;
                Applied::Acked
            }
        }
        Outcome::Retry { delay, error, .. } => {
            match pg::retry(c, st, worker, lease, *delay, error).await? {
                RetryOutcome::Retried => Applied::Retried,
                RetryOutcome::Dead => Applied::Dead,
                RetryOutcome::Lost => Applied::Lost,
            }
        }
        Outcome::Fail { error, .. } => {
            if pg::fail(c, st, worker, lease, error).await? {
                Applied::Dead
            } else {
                Applied::Lost
            }
        }
        Outcome::Release { .. } => {
            if pg::release(c, st, worker, &[lease]).await? == 1 {
                Applied::Released
            } else {
                Applied::Lost
            }
        }
    }))
}
