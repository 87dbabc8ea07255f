//! Making and migrating a schema: idempotent, safe when several
//! processes open at once.

use sqlx::{Connection, PgConnection};

use crate::sql::{APPLIED, CREATE_LEDGER, CREATE_SCHEMA, MIGRATIONS, MIGRATION_LOCK, RECORD};
use crate::{Error, Result, Statements};

/// The newest migration this build knows.
pub const SCHEMA_VERSION: i32 = MIGRATIONS[MIGRATIONS.len() - 1].0;

/// Make `st`'s schema and apply every migration it lacks, in one
/// transaction under an advisory lock on the schema's name: processes
/// opening at once wait for the first, then find nothing to do. A schema
/// migrated by a newer build is refused ([`Error::TooNew`]), never
/// written. Returns the migrations it applied.
pub async fn migrate(conn: &mut PgConnection, st: &Statements) -> Result<Vec<i32>> {
    let mut tx = conn.begin().await?;
    sqlx::query(MIGRATION_LOCK)
        .bind(format!("honker-migrate:{}", st.schema()))
        .execute(&mut *tx)
        .await?;
    sqlx::query(st.get(CREATE_SCHEMA)).execute(&mut *tx).await?;
    sqlx::query(st.get(CREATE_LEDGER)).execute(&mut *tx).await?;
    let applied: Vec<i32> = sqlx::query_scalar(st.get(APPLIED))
        .fetch_all(&mut *tx)
        .await?;
    if let Some(&found) = applied.iter().max()
        && found > SCHEMA_VERSION
    {
        return Err(Error::TooNew {
            schema: st.schema().to_string(),
            found,
            known: SCHEMA_VERSION,
        });
    }
    let mut done = Vec::new();
    for &(version, ddl) in MIGRATIONS {
        if applied.contains(&version) {
            continue;
        }
        sqlx::raw_sql(st.get(ddl)).execute(&mut *tx).await?;
        sqlx::query(st.get(RECORD))
            .bind(version)
            .execute(&mut *tx)
            .await?;
        done.push(version);
    }
    tx.commit().await?;
    if !done.is_empty() {
        tracing::info!(schema = st.schema(), migrations = ?done, "migrated the honker schema");
    }
    Ok(done)
}
