//! Queue controls, named locks, schedules, and the store's health.

use std::time::Duration;

use honker_core::durations::clamped_secs;
use honker_core::{
    boundaries_to_fire, check_lock, check_max_running, check_rate_limit, check_schedule,
    first_boundary, EnqueueOptions, Fired, Health, Misfire, QueueControls, RateLimit, RowTotals,
    ScheduleRow, ScheduleSpec, SchemaObject,
};
use sqlx::postgres::PgRow;
use sqlx::{Connection, PgConnection, Row};

use crate::enqueue::{enqueue, notify};
use crate::rows::{int, live};
use crate::sql::{
    CONTROLS_ALL, CONTROLS_GET, CONTROLS_PAUSED, CONTROLS_SET_MAX_RUNNING, CONTROLS_SET_PAUSED,
    CONTROLS_SET_RATE, HEALTH_CREATED_AHEAD, HEALTH_EXHAUSTED_COUNT, HEALTH_EXPIRED_CLAIMS,
    HEALTH_EXPIRED_CLAIMS_COUNT, HEALTH_OBJECTS, HEALTH_ROW_TOTALS, HEALTH_RUNNING_IDS,
    LOCK_DROP_EXPIRED, LOCK_OWNER, LOCK_RELEASE, LOCK_RENEW, LOCK_TAKE, NOW, OBJECTS, RATE_WINDOW,
    SCHEDULE_ADVANCE, SCHEDULE_DELETE, SCHEDULE_DUE, SCHEDULE_GET, SCHEDULE_LIST, SCHEDULE_RUN_GET,
    SCHEDULE_RUN_RECORD, SCHEDULE_SET_ENABLED, SCHEDULE_SOONEST, SCHEDULE_UPSERT,
};
use crate::{next_claim_at, Result, Statements};

/// The server's clock, unix seconds.
pub async fn now(conn: &mut PgConnection, st: &Statements) -> Result<i64> {
    Ok(sqlx::query(st.get(NOW))
        .fetch_one(&mut *conn)
        .await?
        .try_get(0)?)
}

fn read_controls(r: &PgRow, first: usize) -> sqlx::Result<QueueControls> {
    let positive = |v: i64| u32::try_from(v.max(1)).unwrap_or(u32::MAX);
    let max_running: Option<i64> = r.try_get(first + 1)?;
    let limit: Option<i64> = r.try_get(first + 2)?;
    let per: Option<i64> = r.try_get(first + 3)?;
    Ok(QueueControls {
        paused: r.try_get(first)?,
        max_running: max_running.map(positive),
        rate: match (limit, per) {
            (Some(l), Some(p)) => Some(RateLimit {
                limit: positive(l),
                per: Duration::from_secs(p.max(1).unsigned_abs()),
            }),
            _ => None,
        },
    })
}

/// `queue`'s controls (all off for a queue never controlled).
pub async fn queue_controls(
    conn: &mut PgConnection,
    st: &Statements,
    queue: &str,
) -> Result<QueueControls> {
    let row = sqlx::query(st.get(CONTROLS_GET))
        .bind(queue)
        .fetch_optional(&mut *conn)
        .await?;
    Ok(row
        .map(|r| read_controls(&r, 0))
        .transpose()?
        .unwrap_or_default())
}

/// Every queue with a control set, and its controls, by name.
pub async fn controlled_queues(
    conn: &mut PgConnection,
    st: &Statements,
) -> Result<Vec<(String, QueueControls)>> {
    let rows = sqlx::query(st.get(CONTROLS_ALL))
        .fetch_all(&mut *conn)
        .await?;
    Ok(rows
        .iter()
        .map(|r| Ok((r.try_get(0)?, read_controls(r, 1)?)))
        .collect::<sqlx::Result<_>>()?)
}

/// The paused queues.
pub async fn paused_queues(conn: &mut PgConnection, st: &Statements) -> Result<Vec<String>> {
    Ok(sqlx::query_scalar(st.get(CONTROLS_PAUSED))
        .fetch_all(&mut *conn)
        .await?)
}

/// Pause (`true`) or resume `queue` for every process; whether it
/// changed. A resume wakes the pools.
pub async fn set_paused(
    conn: &mut PgConnection,
    st: &Statements,
    queue: &str,
    paused: bool,
) -> Result<bool> {
    honker_core::validate_queue_name(queue)?;
    let changed: bool = sqlx::query(st.get(CONTROLS_SET_PAUSED))
        .bind(queue)
        .bind(paused)
        .fetch_one(&mut *conn)
        .await?
        .try_get(0)?;
    if changed && !paused {
        notify(conn, st).await?;
    }
    Ok(changed)
}

/// Limit how many of `queue`'s jobs run at once across every process.
pub async fn set_max_running(
    conn: &mut PgConnection,
    st: &Statements,
    queue: &str,
    n: Option<u32>,
) -> Result<()> {
    check_max_running(queue, n)?;
    sqlx::query(st.get(CONTROLS_SET_MAX_RUNNING))
        .bind(queue)
        .bind(n.map(i64::from))
        .execute(&mut *conn)
        .await?;
    notify(conn, st).await
}

/// Limit how many of `queue`'s jobs start per period across every
/// process.
pub async fn set_rate_limit(
    conn: &mut PgConnection,
    st: &Statements,
    queue: &str,
    rate: Option<RateLimit>,
) -> Result<()> {
    let (limit, per) = check_rate_limit(queue, rate)?;
    sqlx::query(st.get(CONTROLS_SET_RATE))
        .bind(queue)
        .bind(limit.map(i64::from))
        .bind(per)
        .execute(&mut *conn)
        .await?;
    notify(conn, st).await
}

/// When `queue` may next claim: its next due time, or when its rate
/// limit's window reopens if that is what holds it.
pub async fn next_claim_allowed_at(
    conn: &mut PgConnection,
    st: &Statements,
    queue: &str,
) -> Result<Option<i64>> {
    let ctl = queue_controls(conn, st, queue).await?;
    next_claim_allowed_under(conn, st, queue, &ctl).await
}

/// [`next_claim_allowed_at`] with `queue`'s controls already read.
pub async fn next_claim_allowed_under(
    conn: &mut PgConnection,
    st: &Statements,
    queue: &str,
    ctl: &QueueControls,
) -> Result<Option<i64>> {
    let due = next_claim_at(conn, st, queue).await?;
    let mut reopens = None;
    if let (false, Some(rate)) = (ctl.paused, ctl.rate) {
        let per = i64::try_from(rate.per.as_secs()).unwrap_or(i64::MAX).max(1);
        let r = sqlx::query(st.get(RATE_WINDOW))
            .bind(queue)
            .bind(per)
            .fetch_one(&mut *conn)
            .await?;
        let (start, used): (i64, i64) = (r.try_get(0)?, r.try_get(1)?);
        if used >= i64::from(rate.limit) {
            reopens = Some(start.saturating_add(per));
        }
    }
    Ok(match (due, reopens) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    })
}

/// Take lock `name` for `owner` for `ttl`, if free or lapsed.
pub async fn try_lock(
    conn: &mut PgConnection,
    st: &Statements,
    name: &str,
    owner: &str,
    ttl: Duration,
) -> Result<bool> {
    check_lock(name, owner, ttl)?;
    let ttl = clamped_secs(ttl).max(1);
    let mut tx = conn.begin().await?;
    sqlx::query(st.get(LOCK_DROP_EXPIRED))
        .bind(crate::storable(name))
        .execute(&mut *tx)
        .await?;
    sqlx::query(st.get(LOCK_TAKE))
        .bind(crate::storable(name))
        .bind(crate::storable(owner))
        .bind(ttl)
        .execute(&mut *tx)
        .await?;
    let holder: Option<String> = sqlx::query(st.get(LOCK_OWNER))
        .bind(crate::storable(name))
        .fetch_optional(&mut *tx)
        .await?
        .map(|r| r.try_get(0))
        .transpose()?;
    tx.commit().await?;
    Ok(holder.as_deref() == Some(owner))
}

/// Extend `owner`'s lock `name` to `ttl` from now; `false` when lost.
pub async fn renew_lock(
    conn: &mut PgConnection,
    st: &Statements,
    name: &str,
    owner: &str,
    ttl: Duration,
) -> Result<bool> {
    check_lock(name, owner, ttl)?;
    let n = sqlx::query(st.get(LOCK_RENEW))
        .bind(crate::storable(name))
        .bind(crate::storable(owner))
        .bind(clamped_secs(ttl).max(1))
        .execute(&mut *conn)
        .await?
        .rows_affected();
    Ok(n == 1)
}

/// Release `owner`'s lock `name`; `false` when not held.
pub async fn unlock(
    conn: &mut PgConnection,
    st: &Statements,
    name: &str,
    owner: &str,
) -> Result<bool> {
    let n = sqlx::query(st.get(LOCK_RELEASE))
        .bind(crate::storable(name))
        .bind(crate::storable(owner))
        .execute(&mut *conn)
        .await?
        .rows_affected();
    Ok(n == 1)
}

fn read_schedule(r: &PgRow) -> sqlx::Result<ScheduleRow> {
    let expires: Option<i64> = r.try_get(5)?;
    let misfire: String = r.try_get(10)?;
    let max_attempts: i64 = r.try_get(8)?;
    Ok(ScheduleRow {
        spec: ScheduleSpec {
            name: r.try_get(0)?,
            queue: r.try_get(1)?,
            expr: r.try_get(2)?,
            payload: r.try_get(3)?,
            priority: r.try_get(4)?,
            expires: expires.map(|e| Duration::from_secs(e.max(0).unsigned_abs())),
            max_attempts: u32::try_from(max_attempts.max(1)).unwrap_or(u32::MAX),
            zone: r.try_get(9)?,
            misfire: Misfire::parse(&misfire),
        },
        next_fire_at: r.try_get(6)?,
        enabled: r.try_get(7)?,
    })
}

/// Register (or update) schedule `spec`; a spec registered unchanged
/// keeps its next boundary (a deploy does not move it).
pub async fn register_schedule(
    conn: &mut PgConnection,
    st: &Statements,
    spec: &ScheduleSpec,
) -> Result<()> {
    check_schedule(spec)?;
    serde_json::from_str::<Box<serde_json::value::RawValue>>(&spec.payload)
        .map_err(honker_core::Error::InvalidPayload)?;
    if get_schedule(conn, st, &spec.name)
        .await?
        .is_some_and(|old| old.spec == *spec)
    {
        return Ok(());
    }
    let first = first_boundary(spec, now(conn, st).await?)?;
    sqlx::query(st.get(SCHEDULE_UPSERT))
        .bind(crate::storable(&spec.name))
        .bind(&spec.queue)
        .bind(&spec.expr)
        .bind(&spec.payload)
        .bind(spec.priority)
        .bind(spec.expires.map(honker_core::durations::ceil_secs))
        .bind(first)
        .bind(i64::from(spec.max_attempts))
        .bind(spec.zone.as_deref())
        .bind(spec.misfire.as_str())
        .execute(&mut *conn)
        .await?;
    notify(conn, st).await
}

/// Remove schedule `name`; `false` when there was none.
pub async fn remove_schedule(conn: &mut PgConnection, st: &Statements, name: &str) -> Result<bool> {
    let n = sqlx::query(st.get(SCHEDULE_DELETE))
        .bind(crate::storable(name))
        .execute(&mut *conn)
        .await?
        .rows_affected();
    Ok(n == 1)
}

/// Enable or disable schedule `name`; `false` when unchanged or absent.
pub async fn set_schedule_enabled(
    conn: &mut PgConnection,
    st: &Statements,
    name: &str,
    enabled: bool,
) -> Result<bool> {
    let n = sqlx::query(st.get(SCHEDULE_SET_ENABLED))
        .bind(crate::storable(name))
        .bind(enabled)
        .execute(&mut *conn)
        .await?
        .rows_affected();
    if n == 1 && enabled {
        notify(conn, st).await?;
    }
    Ok(n == 1)
}

/// Schedule `name`.
pub async fn get_schedule(
    conn: &mut PgConnection,
    st: &Statements,
    name: &str,
) -> Result<Option<ScheduleRow>> {
    let row = sqlx::query(st.get(SCHEDULE_GET))
        .bind(crate::storable(name))
        .fetch_optional(&mut *conn)
        .await?;
    Ok(row.as_ref().map(read_schedule).transpose()?)
}

/// Every schedule, by name.
pub async fn list_schedules(conn: &mut PgConnection, st: &Statements) -> Result<Vec<ScheduleRow>> {
    let rows = sqlx::query(st.get(SCHEDULE_LIST))
        .fetch_all(&mut *conn)
        .await?;
    Ok(rows
        .iter()
        .map(read_schedule)
        .collect::<sqlx::Result<_>>()?)
}

/// The soonest boundary of an enabled schedule.
pub async fn next_fire_at(conn: &mut PgConnection, st: &Statements) -> Result<Option<i64>> {
    Ok(sqlx::query(st.get(SCHEDULE_SOONEST))
        .fetch_one(&mut *conn)
        .await?
        .try_get(0)?)
}

fn schedule_opts(spec: &ScheduleSpec) -> EnqueueOptions {
    let mut opts = EnqueueOptions::default()
        .priority(spec.priority)
        .max_attempts(spec.max_attempts);
    if let Some(e) = spec.expires {
        opts = opts.expires(e);
    }
    opts
}

/// Fire every boundary due at `now` of every enabled schedule, by its
/// misfire policy; each schedule in a savepoint of its own, advanced by
/// compare-and-set, so two schedulers never fire one boundary twice.
pub async fn fire_due(conn: &mut PgConnection, st: &Statements, now: i64) -> Result<Vec<Fired>> {
    let rows = sqlx::query(st.get(SCHEDULE_DUE))
        .bind(now)
        .fetch_all(&mut *conn)
        .await?;
    let due: Vec<ScheduleRow> = rows
        .iter()
        .map(read_schedule)
        .collect::<sqlx::Result<_>>()?;
    let mut fired = Vec::new();
    for row in due {
        let mut sp = conn.begin().await?;
        match fire_one(&mut sp, st, &row, now).await {
            Ok(f) => {
                sp.commit().await?;
                fired.extend(f);
            }
            Err(e) => {
                sp.rollback().await?;
                tracing::warn!(schedule = %row.spec.name, error = %e,
                    "could not fire a schedule; will try again");
            }
        }
    }
    Ok(fired)
}

async fn fire_one(
    conn: &mut PgConnection,
    st: &Statements,
    row: &ScheduleRow,
    now: i64,
) -> Result<Vec<Fired>> {
    let spec = &row.spec;
    let (to_fire, next) = boundaries_to_fire(row, now)?;
    let advanced = sqlx::query(st.get(SCHEDULE_ADVANCE))
        .bind(&spec.name)
        .bind(next)
        .bind(row.next_fire_at)
        .execute(&mut *conn)
        .await?
        .rows_affected();
    if advanced == 0 {
        return Ok(Vec::new());
    }
    let opts = schedule_opts(spec);
    let mut fired = Vec::new();
    for boundary in to_fire {
        let job = enqueue(conn, st, &spec.queue, &spec.payload, &opts).await?;
        record_run(conn, st, job.id, &spec.name, boundary).await?;
        fired.push(Fired {
            schedule: spec.name.clone(),
            boundary,
            job_id: job.id,
        });
    }
    Ok(fired)
}

async fn record_run(
    conn: &mut PgConnection,
    st: &Statements,
    job: i64,
    schedule: &str,
    boundary: i64,
) -> Result<()> {
    sqlx::query(st.get(SCHEDULE_RUN_RECORD))
        .bind(job)
        .bind(schedule)
        .bind(boundary)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Enqueue schedule `name`'s job now; its id.
pub async fn run_schedule_now(
    conn: &mut PgConnection,
    st: &Statements,
    name: &str,
) -> Result<Option<i64>> {
    let Some(row) = get_schedule(conn, st, name).await? else {
        return Ok(None);
    };
    let spec = &row.spec;
    let job = enqueue(conn, st, &spec.queue, &spec.payload, &schedule_opts(spec)).await?;
    let at = now(conn, st).await?;
    record_run(conn, st, job.id, &spec.name, at).await?;
    Ok(Some(job.id))
}

/// The schedule and boundary that fired job `id`.
pub async fn fired_for(
    conn: &mut PgConnection,
    st: &Statements,
    id: i64,
) -> Result<Option<(String, i64)>> {
    let row = sqlx::query(st.get(SCHEDULE_RUN_GET))
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?;
    Ok(row
        .map(|r| Ok::<_, sqlx::Error>((r.try_get(0)?, r.try_get(1)?)))
        .transpose()?)
}

/// Overdue claims (with up to `sample` of them), exhausted rows, and how
/// far ahead of the server's clock the newest row was made.
pub async fn health(conn: &mut PgConnection, st: &Statements, sample: usize) -> Result<Health> {
    let expired_claims: i64 = sqlx::query(st.get(HEALTH_EXPIRED_CLAIMS_COUNT))
        .fetch_one(&mut *conn)
        .await?
        .try_get(0)?;
    let expired_sample = sqlx::query(st.get(HEALTH_EXPIRED_CLAIMS))
        .bind(int(sample))
        .fetch_all(&mut *conn)
        .await?
        .iter()
        .map(live)
        .collect::<sqlx::Result<_>>()?;
    let exhausted: i64 = sqlx::query(st.get(HEALTH_EXHAUSTED_COUNT))
        .fetch_one(&mut *conn)
        .await?
        .try_get(0)?;
    let created_ahead: Option<i64> = sqlx::query(st.get(HEALTH_CREATED_AHEAD))
        .fetch_one(&mut *conn)
        .await?
        .try_get(0)?;
    Ok(Health {
        expired_claims,
        expired_sample,
        exhausted,
        created_ahead,
    })
}

/// Rows of each table, and ids handed out so far.
pub async fn row_totals(conn: &mut PgConnection, st: &Statements) -> Result<RowTotals> {
    let r = sqlx::query(st.get(HEALTH_ROW_TOTALS))
        .bind(st.schema())
        .fetch_one(&mut *conn)
        .await?;
    Ok(RowTotals {
        live: r.try_get(0)?,
        dead: r.try_get(1)?,
        issued: r.try_get(2)?,
    })
}

/// Up to `limit` running job ids.
pub async fn running_ids(
    conn: &mut PgConnection,
    st: &Statements,
    limit: usize,
) -> Result<Vec<i64>> {
    Ok(sqlx::query_scalar(st.get(HEALTH_RUNNING_IDS))
        .bind(int(limit))
        .fetch_all(&mut *conn)
        .await?)
}

/// Each table and index the migrations make, and whether the schema has
/// it. On PostgreSQL every one is this store's own (`shared` is `false`:
/// no other binding reads this schema).
pub async fn schema_objects(conn: &mut PgConnection, st: &Statements) -> Result<Vec<SchemaObject>> {
    let rows = sqlx::query(HEALTH_OBJECTS)
        .bind(st.schema())
        .fetch_all(&mut *conn)
        .await?;
    let present: Vec<(String, String)> = rows
        .iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
        .collect::<sqlx::Result<_>>()?;
    Ok(OBJECTS
        .iter()
        .map(|&(kind, name)| SchemaObject {
            kind,
            name: name.to_string(),
            shared: false,
            present: present.iter().any(|(k, n)| k == kind && n == name),
        })
        .collect())
}
