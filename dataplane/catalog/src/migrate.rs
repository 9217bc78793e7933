//! The schema migration runner.
//!
//! Migrations are embedded SQL files, applied in version order, each in its
//! own transaction, and recorded in `signaldb_schema_migrations`. Several
//! processes may start at once against one database:
//!
//! - on PostgreSQL every migration transaction first takes a transaction-level
//!   advisory lock, so they run one after the other;
//! - on SQLite the transaction's first statement is a write, which takes the
//!   database's write lock (waiting for it up to the busy timeout).
//!
//! Either way the first statement claims the version by inserting its row
//! with `ON CONFLICT DO NOTHING`: a process that finds the row present rolls
//! back, as someone else applied the migration.

use sqlx::AnyPool;
use sqlx::{Any, Transaction};
use tracing::{info, warn};

use crate::url::Backend;
use crate::{Error, Result};

struct Migration {
    version: i64,
    name: &'static str,
    sql: &'static str,
}

/// Every migration, in version order. Append only: never edit one that has
/// shipped.
const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "init",
        sql: include_str!("../migrations/0001_init.sql"),
    },
    Migration {
        version: 2,
        name: "trace ids and file-list versions",
        sql: include_str!("../migrations/0002_trace_ids_and_versions.sql"),
    },
    Migration {
        version: 3,
        name: "api keys",
        sql: include_str!("../migrations/0003_api_keys.sql"),
    },
    Migration {
        version: 4,
        name: "compaction leases and deferred deletes",
        sql: include_str!("../migrations/0004_compaction.sql"),
    },
];

/// Key of the PostgreSQL advisory lock that serialises migrations (an
/// arbitrary constant: "SgnlDBmg" in ASCII, shortened to fit).
const PG_LOCK_KEY: i64 = 0x5367_6e6c_4442_6d67;

const CREATE_TABLE: &str = "CREATE TABLE IF NOT EXISTS signaldb_schema_migrations (\
     version BIGINT NOT NULL PRIMARY KEY, \
     name TEXT NOT NULL, \
     applied_at_ms BIGINT NOT NULL)";

/// Applies the pending migrations.
pub(crate) async fn run(pool: &AnyPool, backend: Backend) -> Result<()> {
    let bootstrap = |source| Error::Migrate {
        version: 0,
        name: "migrations table",
        source,
    };

    let mut tx = pool.begin().await.map_err(bootstrap)?;
    lock(&mut tx, backend).await.map_err(bootstrap)?;
    sqlx::query(CREATE_TABLE)
        .persistent(false)
        .execute(&mut *tx)
        .await
        .map_err(bootstrap)?;
    tx.commit().await.map_err(bootstrap)?;

    let applied: Vec<i64> = sqlx::query_scalar("SELECT version FROM signaldb_schema_migrations ORDER BY version")
        .fetch_all(pool)
        .await
        .map_err(bootstrap)?;
    let newest_known = MIGRATIONS.last().map_or(0, |m| m.version);
    if let Some(&newest) = applied.last()
        && newest > newest_known
    {
        warn!(
            applied = newest,
            known = newest_known,
            "the catalog schema is newer than this binary; continuing"
        );
    }

    for m in MIGRATIONS.iter().filter(|m| !applied.contains(&m.version)) {
        let fail = |source| Error::Migrate {
            version: m.version,
            name: m.name,
            source,
        };
        let mut tx = pool.begin().await.map_err(fail)?;
        lock(&mut tx, backend).await.map_err(fail)?;
        let claimed = sqlx::query(
            "INSERT INTO signaldb_schema_migrations (version, name, applied_at_ms) \
             VALUES ($1, $2, $3) ON CONFLICT (version) DO NOTHING",
        )
        .bind(m.version)
        .bind(m.name)
        .bind(now_ms())
        .execute(&mut *tx)
        .await
        .map_err(fail)?
        .rows_affected();
        if claimed == 0 {
            // Another process applied it between our check and our claim.
            tx.rollback().await.map_err(fail)?;
            continue;
        }
        for statement in statements(m.sql) {
            sqlx::query(statement)
                .persistent(false)
                .execute(&mut *tx)
                .await
                .map_err(fail)?;
        }
        tx.commit().await.map_err(fail)?;
        info!(
            version = m.version,
            name = m.name,
            backend = backend.as_str(),
            "applied catalog migration"
        );
    }
    Ok(())
}

/// On PostgreSQL, waits for the migration lock, held until the transaction
/// ends. On SQLite the write lock serialises writers already.
async fn lock(tx: &mut Transaction<'_, Any>, backend: Backend) -> Result<(), sqlx::Error> {
    if backend == Backend::Postgres {
        // pg_advisory_xact_lock returns void, which the Any driver cannot
        // decode: count the one row instead.
        let _: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM (SELECT pg_advisory_xact_lock($1)) AS l")
            .bind(PG_LOCK_KEY)
            .fetch_one(&mut **tx)
            .await?;
    }
    Ok(())
}

/// The statements of a migration file: `--` comment lines dropped, split on
/// semicolons, blank pieces skipped.
fn statements(sql: &str) -> impl Iterator<Item = &str> {
    sql.split(';')
        .map(str::trim)
        .filter(|s| s.lines().any(|l| !is_blank_or_comment(l)))
}

fn is_blank_or_comment(line: &str) -> bool {
    let l = line.trim();
    l.is_empty() || l.starts_with("--")
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_are_ordered_and_split() {
        let mut last = 0;
        for m in MIGRATIONS {
            assert!(m.version > last, "versions must increase");
            last = m.version;
            let n = statements(m.sql).count();
            assert!(n > 0, "migration {} has no statements", m.version);
        }
        let v: Vec<_> = statements("-- a\nCREATE TABLE a (x BIGINT);\n\n-- only a comment\n;\nSELECT 1;\n").collect();
        assert_eq!(v, ["-- a\nCREATE TABLE a (x BIGINT)", "SELECT 1"]);
    }
}
