use crate::conformance;
use signaldb_catalog::{Catalog, TenantId, connect};
use sqlx::any::AnyPoolOptions;

const HOW_TO: &str = "\
PostgreSQL tests need a server: run `scripts/start-postgres.sh` (it prints the URL) and set
    SIGNALDB_TEST_POSTGRES_URL=postgres://postgres@127.0.0.1:55432/postgres
or set SIGNALDB_SKIP_POSTGRES=1 to skip the PostgreSQL tests explicitly.";

/// The test server's URL; `None` only when skipping was asked for.
fn postgres_url() -> Option<String> {
    match std::env::var("SIGNALDB_TEST_POSTGRES_URL") {
        Ok(url) if !url.trim().is_empty() => Some(url.trim().to_owned()),
        _ if std::env::var("SIGNALDB_SKIP_POSTGRES").as_deref() == Ok("1") => {
            // Straight to stderr, past the test harness's capture: this must
            // be seen.
            let _ = std::io::Write::write_all(
                &mut std::io::stderr(),
                b"\n************************************************************\n\
                  * SIGNALDB_SKIP_POSTGRES=1: the PostgreSQL catalog tests   *\n\
                  * were NOT run.                                            *\n\
                  ************************************************************\n\n",
            );
            None
        }
        _ => panic!("SIGNALDB_TEST_POSTGRES_URL is not set.\n{HOW_TO}"),
    }
}

/// `url` with its connections' search_path set to `schema`.
fn with_search_path(url: &str, schema: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}options=-c%20search_path%3D{schema}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_conformance() {
    let Some(url) = postgres_url() else { return };
    let first = connect(&url, 4).await.unwrap();
    assert_eq!(first.backend(), "postgres");
    conformance::run_all(&first).await;

    let second = connect(&url, 4).await.unwrap();
    let tenant = TenantId::new(format!("pg-shared-{}", crate::unique())).unwrap();
    first.ensure_tenant(&tenant, 1).await.unwrap();
    assert!(second.list_tenants().await.unwrap().contains(&tenant));
    // Again against the same database.
    conformance::run_all(&second).await;
}

/// Several processes starting at once against a fresh database: each
/// migration is applied once and every start succeeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_concurrent_first_start() {
    let Some(url) = postgres_url() else { return };
    sqlx::any::install_default_drivers();
    let admin = AnyPoolOptions::new().max_connections(1).connect(&url).await.unwrap();
    let schema = format!("signaldb_it_{}", crate::unique());
    sqlx::query(&format!("CREATE SCHEMA {schema}"))
        .execute(&admin)
        .await
        .unwrap();

    let fresh = with_search_path(&url, &schema);
    let starts: Vec<_> = (0..4)
        .map(|_| {
            let url = fresh.clone();
            tokio::spawn(async move { connect(&url, 2).await })
        })
        .collect();
    let mut catalogs = Vec::new();
    for s in starts {
        catalogs.push(s.await.unwrap().unwrap());
    }
    let versions: Vec<i64> = sqlx::query_scalar(&format!(
        "SELECT version FROM {schema}.signaldb_schema_migrations ORDER BY version"
    ))
    .fetch_all(&admin)
    .await
    .unwrap();
    assert_eq!(versions, vec![1, 2, 3, 4], "each migration recorded exactly once");
    let tables: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = $1 AND table_name LIKE 'signaldb_%'",
    )
    .bind(&schema)
    .fetch_one(&admin)
    .await
    .unwrap();
    assert_eq!(tables, 8, "the catalog's tables are in the fresh schema");
    conformance::run_all(&catalogs[0]).await;
    let some = catalogs[1].list_tenants().await.unwrap();
    assert!(!some.is_empty());

    for c in &catalogs {
        c.close().await;
    }
    sqlx::query(&format!("DROP SCHEMA {schema} CASCADE"))
        .execute(&admin)
        .await
        .unwrap();
}
