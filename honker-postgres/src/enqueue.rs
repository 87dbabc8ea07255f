//! Enqueueing, and unique keys.

use honker_core::{prepare_enqueue, EnqueueOptions, Enqueued, Unique, UniqueWhile};
use sqlx::{Connection, PgConnection, Row};

use crate::sql::{ENQUEUE, NOTIFY, UNIQUE_BLOCKING, UNIQUE_HOLD, UNIQUE_LOCK};
use crate::{Result, Statements};

/// Enqueue `payload` (JSON text the caller has produced or checked) to
/// `queue` with `opts`, inside the transaction `conn` is in: the job
/// commits or rolls back with it. A job that is not unique is one
/// statement, so outside a transaction it commits on its own; a unique
/// one needs the caller's transaction (its key is checked and held in
/// it). A unique job whose key another job
/// holds is not inserted: that job's id comes back, `duplicate` set.
/// Enqueues of one key serialize on an advisory lock, so two processes
/// racing with one key insert one job. Notifies the schema's channel.
pub async fn enqueue(
    conn: &mut PgConnection,
    st: &Statements,
    queue: &str,
    payload: &str,
    opts: &EnqueueOptions,
) -> Result<Enqueued> {
    let p = prepare_enqueue(queue, opts)?;
    if opts.unique.is_some() {
        // The key's lock, its check, the insert and the hold: in one
        // transaction (a savepoint in the caller's, or one of its own on
        // a connection outside any), so the lock lasts until they commit.
        let mut tx = conn.begin().await?;
        let done = insert(&mut tx, st, queue, payload, opts, &p).await?;
        tx.commit().await?;
        return Ok(done);
    }
    insert(conn, st, queue, payload, opts, &p).await
}

async fn insert(
    conn: &mut PgConnection,
    st: &Statements,
    queue: &str,
    payload: &str,
    opts: &EnqueueOptions,
    p: &honker_core::PreparedEnqueue,
) -> Result<Enqueued> {
    if let Some(unique) = &opts.unique {
        sqlx::query(UNIQUE_LOCK)
            .bind(queue)
            .bind(crate::storable(&unique.key))
            .execute(&mut *conn)
            .await?;
        if let Some(id) = blocking_job(conn, st, queue, &unique.key, None).await? {
            return Ok(Enqueued {
                id,
                duplicate: true,
            });
        }
    }
    let id: i64 = sqlx::query(st.get(ENQUEUE))
        .bind(queue)
        .bind(payload)
        .bind(p.run_at)
        .bind(p.delay_ms)
        .bind(p.priority)
        .bind(i64::from(p.max_attempts))
        .bind(p.expires_s)
        .bind(st.channel())
        .fetch_one(&mut *conn)
        .await?
        .try_get(0)?;
    if let Some(unique) = &opts.unique {
        hold(conn, st, queue, unique, id).await?;
    }
    Ok(Enqueued {
        id,
        duplicate: false,
    })
}

/// Wake the schema's listeners when the transaction commits (one
/// notification per transaction, however many calls).
pub async fn notify(conn: &mut PgConnection, st: &Statements) -> Result<()> {
    sqlx::query(NOTIFY)
        .bind(st.channel())
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// The job holding `key` of `queue` now, other than `except`.
pub(crate) async fn blocking_job(
    conn: &mut PgConnection,
    st: &Statements,
    queue: &str,
    key: &str,
    except: Option<i64>,
) -> Result<Option<i64>> {
    Ok(sqlx::query(st.get(UNIQUE_BLOCKING))
        .bind(queue)
        .bind(key)
        .bind(except)
        .fetch_optional(&mut *conn)
        .await?
        .map(|r| r.try_get(0))
        .transpose()?)
}

async fn hold(
    conn: &mut PgConnection,
    st: &Statements,
    queue: &str,
    unique: &Unique,
    id: i64,
) -> Result<()> {
    let while_ = match unique.while_ {
        UniqueWhile::Pending => "pending",
        UniqueWhile::Active => "active",
    };
    sqlx::query(st.get(UNIQUE_HOLD))
        .bind(id)
        .bind(queue)
        .bind(crate::storable(&unique.key))
        .bind(while_)
        .bind(unique.period.map(honker_core::durations::ceil_secs))
        .execute(&mut *conn)
        .await?;
    Ok(())
}
