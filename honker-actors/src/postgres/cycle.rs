//! One cycle of a pool on PostgreSQL, in one transaction: write the
//! outcomes that came in, claim for the room the supervisor planned,
//! sweep when asked, and read when something is next due.
//!
//! Isolation: every outcome is one statement or a few that cannot fail
//! on their own (a result that is not JSON is refused before anything is
//! written), so only a failure of the database fails a write, and then
//! the whole transaction is gone: the cycle fails and the pool sends
//! every outcome again (each fenced, so one already written is `Lost`,
//! never written twice). Plain acks are written together, in one
//! statement.

use honker_core::RetryOutcome;
use honker_postgres as pg;
use honker_postgres::sqlx::{Acquire, PgConnection};

use super::Ctx;
use crate::store::cycle::earliest;
use crate::store::{Applied, CycleOutput, CycleRequest, Fence, NextTimes, Outcome};
use crate::Result;

/// Run one cycle on a pooled connection, in a transaction of its own.
pub(crate) async fn run_cycle(ctx: &Ctx, cy: &CycleRequest) -> Result<CycleOutput> {
    let out: pg::Result<CycleOutput> = async {
        let mut conn = ctx.pool.acquire().await?;
        let mut tx = conn.begin().await?;
        let out = cycle_in(&mut tx, &ctx.st, cy).await?;
        tx.commit().await?;
        Ok(out)
    }
    .await;
    out.map_err(|e| ctx.err(e))
}

async fn cycle_in(
    c: &mut PgConnection,
    st: &pg::Statements,
    cy: &CycleRequest,
) -> pg::Result<CycleOutput> {
    let mut out = CycleOutput {
        applied: write_outcomes(c, st, &cy.outcomes).await?,
        ..CycleOutput::default()
    };
    // Work made due or a running slot freed: wake the other pools.
    if out
        .applied
        .iter()
        .any(|a| matches!(a, Ok(a) if *a != Applied::Lost))
    {
        pg::notify(c, st).await?;
    }
    let mut limited = Vec::new();
    for (q, ctl) in pg::controlled_queues(c, st).await? {
        if ctl.paused {
            out.paused.push(q);
        } else if ctl.max_running.is_some() || ctl.rate.is_some() {
            limited.push(q);
        }
    }
    let is_limited = |q: &str| limited.iter().any(|l| l == q);
    let (first, rest): (Vec<_>, Vec<_>) = cy.plan.queues.iter().partition(|(q, _)| is_limited(q));
    let mut budget = cy.plan.budget;
    let mut free = cy.plan.free;
    for &(q, room) in first.into_iter().chain(rest) {
        let n = budget.min(room);
        if n == 0 {
            out.maybe_more = true;
            continue;
        }
        let n = if is_limited(q) { n.min(free) } else { n };
        if n == 0 || out.paused.iter().any(|p| p == q) {
            continue;
        }
        let claimed = pg::claim(c, st, q, &cy.worker, n, cy.visibility).await?;
        if let Some(end) = claimed.start_before {
            out.start_before.push((q, end));
        }
        out.maybe_more |= claimed.jobs.len() == n;
        budget = budget.saturating_sub(claimed.jobs.len());
        free = free.saturating_sub(claimed.jobs.len());
        out.claimed.extend(claimed.jobs);
    }
    if cy.sweep {
        out.swept = pg::sweep_expired(c, st, None).await?;
        pg::sweep_results_and_keys(c, st).await?;
    }
    if !out.maybe_more {
        out.next = Some(next_times(c, st, &cy.queues).await?);
    }
    Ok(out)
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
/// statement, the others one by one, in order.
async fn write_outcomes(
    c: &mut PgConnection,
    st: &pg::Statements,
    outcomes: &[Outcome],
) -> pg::Result<Vec<std::result::Result<Applied, String>>> {
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
        let acked = pg::ack_batch(c, st, &fences).await?;
        for (i, f) in plain {
            applied[i] = Some(Ok(if acked.contains(&(f.lease.id, f.lease.attempts)) {
                Applied::Acked
            } else {
                Applied::Lost
            }));
        }
    }
    for (i, o) in outcomes.iter().enumerate() {
        if applied[i].is_none() {
            applied[i] = Some(apply(c, st, o).await?);
        }
    }
    Ok(applied.into_iter().flatten().collect())
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
            if !pg::ack(c, st, worker, lease).await? {
                Applied::Lost
            } else {
                pg::save_result(c, st, lease.id, value, *ttl).await?;
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
