//! Retention on the real path: spans a writer stored leave the catalog once
//! their tenant's retention has passed (clock given to `expire`), queries
//! stop finding them, and their objects are then deleted; a tenant kept
//! forever and newer files stay.

use std::sync::Arc;
use std::time::Duration;

use signaldb_config::{TenantId, TenantLimits};

use crate::common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_past_their_tenants_retention_leave_the_catalog_then_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    config.tenancy.multi_tenant = true;
    config.limits.defaults.retention = Duration::from_secs(14 * 24 * 3600);
    config.limits.overrides.insert(
        TenantId::new("forever").unwrap(),
        TenantLimits {
            retention: Duration::ZERO,
            ..TenantLimits::default()
        },
    );
    let running = start_all(config.clone()).await;
    let (mut grpc, api) = clients(&running).await;
    let mut traces = Vec::new();
    for (tenant, seed) in [("short", 81), ("forever", 82)] {
        let sent = request(seed, 2, 3);
        traces.push((
            tenant,
            hex::encode(&sent.resource_spans[0].scope_spans[0].spans[0].trace_id),
        ));
        let mut req = tonic::Request::new(sent);
        req.metadata_mut().insert("x-scope-orgid", tenant.parse().unwrap());
        grpc.export(req).await.unwrap();
    }
    deliver_and_flush(&running).await;
    let http = reqwest::Client::new();
    let status = |tenant: &'static str, trace: String| {
        let req = http
            .get(format!("{api}/api/traces/{trace}"))
            .header("x-scope-orgid", tenant)
            .send();
        async move { req.await.unwrap().status().as_u16() }
    };
    for (tenant, trace) in &traces {
        assert_eq!(status(tenant, trace.clone()).await, 200, "{tenant} stored");
    }

    let catalog: Arc<dyn signaldb_catalog::Catalog> =
        Arc::new(signaldb_catalog::connect(&config.catalog_url(), 2).await.unwrap());
    let store = signaldb::storage::open(&config).unwrap();
    let now = chrono::Utc::now();
    assert!(
        signaldb::retention::expire(&catalog, &config.limits, now + chrono::Duration::days(13))
            .await
            .unwrap()
            .is_empty(),
        "nothing is past 14 days of retention yet"
    );
    let expired = signaldb::retention::expire(&catalog, &config.limits, now + chrono::Duration::days(15))
        .await
        .unwrap();
    assert!(!expired.is_empty());
    assert!(
        expired.iter().all(|f| f.tenant.as_str() == "short"),
        "the tenant kept forever keeps its files: {expired:?}"
    );
    // Gone for queries at once; the other tenant's trace still answers.
    assert_eq!(status("short", traces[0].1.clone()).await, 404);
    assert_eq!(status("forever", traces[1].1.clone()).await, 200);
    // The objects stay until they are deleted (after queries that planned
    // on them are over), then go.
    let objects = dir.path().join("objects");
    for f in &expired {
        assert!(objects.join(&f.path).exists(), "{} still stored", f.path);
    }
    let expired_at = now + chrono::Duration::days(15);
    assert_eq!(
        signaldb::retention::delete_due(&store, &catalog, expired_at)
            .await
            .unwrap(),
        0,
        "not due before queries planned on them are over"
    );
    for f in &expired {
        assert!(objects.join(&f.path).exists(), "{} still stored", f.path);
    }
    let later = expired_at + chrono::Duration::from_std(signaldb::retention::DELETE_DELAY).unwrap();
    let deleted = signaldb::retention::delete_due(&store, &catalog, later).await.unwrap();
    assert_eq!(deleted, expired.len() as u64);
    assert!(
        catalog.pending_deletes(None).await.unwrap().is_empty(),
        "forgotten once deleted"
    );
    for f in &expired {
        assert!(!objects.join(&f.path).exists(), "{} deleted", f.path);
    }
    assert!(
        parquet_files(&objects.join("forever")).len() == 1,
        "the other tenant's file stays"
    );
    // A second round finds nothing more.
    assert!(
        signaldb::retention::expire(&catalog, &config.limits, now + chrono::Duration::days(15))
            .await
            .unwrap()
            .is_empty()
    );
}
