//! A test suite that any [`Catalog`] implementation must pass.
//!
//! [`run_all`] exercises every method and panics on the first wrong answer.
//! All ids it creates carry a suffix unique to the run, and it only asserts
//! on its own records, so it may run repeatedly against one database (runs
//! should not overlap in time, as `expire_services` and `prune_batches` act
//! on every record).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use signaldb_catalog::{
    ApiKeyRecord, BatchId, Capability, Catalog, Error, FileRecord, Role, ServiceRecord, Signal, TenantId,
};

/// Runs every check against `catalog`.
pub(crate) async fn run_all(catalog: &dyn Catalog) {
    let run = Run::new();
    services(catalog, &run).await;
    tenants(catalog, &run).await;
    files(catalog, &run).await;
    batches(catalog, &run).await;
    duplicates(catalog, &run).await;
    many_batches(catalog, &run).await;
    prune(catalog, &run).await;
    api_keys(catalog, &run).await;
    expire(catalog, &run).await;
    replace(catalog, &run).await;
}

/// Retention: files that ended before the cut-off go, in one step, with a
/// new file-list version; the rest, other signals and other tenants stay.
async fn expire(c: &dyn Catalog, run: &Run) {
    let t = run.tenant("expire1");
    let other = run.tenant("expire2");
    let old = run.file("old", &t, Signal::Traces, 100, 199);
    let edge = run.file("edge", &t, Signal::Traces, 150, 200);
    let new = run.file("new", &t, Signal::Traces, 300, 400);
    let logs = run.file("logs", &t, Signal::Logs, 100, 150);
    let theirs = run.file("theirs", &other, Signal::Traces, 100, 150);
    for (i, f) in [&old, &edge, &new, &logs, &theirs].into_iter().enumerate() {
        c.register_file(f, &[run.batch("expire", 1, u32::try_from(i).expect("small"))])
            .await
            .expect("register_file");
    }
    assert!(
        c.remove_files_before(&run.tenant("expire-none"), Signal::Traces, 1_000, 5_000)
            .await
            .expect("unknown tenant")
            .is_empty()
    );
    let before = c.files_version(&t).await.expect("files_version");
    assert!(
        c.remove_files_before(&t, Signal::Traces, 199, 5_000)
            .await
            .expect("nothing yet")
            .is_empty()
    );
    assert_eq!(
        c.files_version(&t).await.expect("files_version"),
        before,
        "nothing removed, same version"
    );
    let removed = c
        .remove_files_before(&t, Signal::Traces, 200, 5_000)
        .await
        .expect("remove_files_before");
    assert_eq!(removed, vec![old.clone()], "only the file that ended before 200");
    assert!(c.files_version(&t).await.expect("files_version") > before);
    assert_eq!(list_traces(c, &t, None).await, vec![edge.clone(), new.clone()]);
    assert_eq!(c.list_files(&t, Signal::Logs, None).await.expect("logs"), vec![logs]);
    assert_eq!(list_traces(c, &other, None).await, vec![theirs]);
    let removed = c
        .remove_files_before(&t, Signal::Traces, i64::MAX, 6_000)
        .await
        .expect("remove all");
    assert_eq!(removed, vec![edge.clone(), new.clone()]);
    assert!(list_traces(c, &t, None).await.is_empty());
    // Their objects wait for deletion until their time.
    let due = c.pending_deletes(Some(5_000)).await.expect("pending_deletes");
    assert!(due.contains(&old.path) && !due.contains(&edge.path));
    let all = c.pending_deletes(None).await.expect("pending_deletes");
    assert!(all.contains(&old.path) && all.contains(&edge.path) && all.contains(&new.path));
    c.forget_deletes(&[old.path.clone(), edge.path.clone(), new.path.clone()])
        .await
        .expect("forget_deletes");
    let all = c.pending_deletes(None).await.expect("pending_deletes");
    assert!(!all.contains(&old.path) && !all.contains(&edge.path) && !all.contains(&new.path));
}

/// Compaction's swap: old files out and new ones in, in one step or not
/// at all; leases held by one holder at a time.
async fn replace(c: &dyn Catalog, run: &Run) {
    let t = run.tenant("replace");
    let a = run.file("rep-a", &t, Signal::Traces, 100, 200);
    let b = run.file("rep-b", &t, Signal::Traces, 150, 300);
    let keep = run.file("rep-keep", &t, Signal::Traces, 400, 500);
    for (i, f) in [&a, &b, &keep].into_iter().enumerate() {
        c.register_file(f, &[run.batch("replace", 1, u32::try_from(i).expect("small"))])
            .await
            .expect("register_file");
    }
    let merged = run.file("rep-merged", &t, Signal::Traces, 100, 300);
    let before = c.files_version(&t).await.expect("files_version");
    c.replace_files(
        &t,
        Signal::Traces,
        &[a.path.clone(), b.path.clone()],
        std::slice::from_ref(&merged),
        9_000,
    )
    .await
    .expect("replace_files");
    assert!(c.files_version(&t).await.expect("files_version") > before);
    assert_eq!(list_traces(c, &t, None).await, vec![merged.clone(), keep.clone()]);
    let pending = c.pending_deletes(Some(9_000)).await.expect("pending_deletes");
    assert!(pending.contains(&a.path) && pending.contains(&b.path));
    assert!(!c.pending_deletes(Some(8_999)).await.expect("pending").contains(&a.path));

    // A second swap of the same inputs (another compactor that merged
    // them too) changes nothing.
    let again = run.file("rep-again", &t, Signal::Traces, 100, 300);
    let err = c
        .replace_files(
            &t,
            Signal::Traces,
            &[a.path.clone(), keep.path.clone()],
            &[again],
            9_000,
        )
        .await
        .expect_err("a is gone");
    assert!(matches!(err, Error::Conflict { .. }), "{err}");
    assert_eq!(list_traces(c, &t, None).await, vec![merged.clone(), keep.clone()]);
    // An output path that exists already refuses the whole swap.
    let err = c
        .replace_files(
            &t,
            Signal::Traces,
            std::slice::from_ref(&keep.path),
            std::slice::from_ref(&merged),
            9_000,
        )
        .await
        .expect_err("merged exists");
    assert!(matches!(err, Error::DuplicateFile { .. }), "{err}");
    assert_eq!(list_traces(c, &t, None).await, vec![merged, keep]);
    c.forget_deletes(&[a.path.clone(), b.path.clone()])
        .await
        .expect("forget");

    let lease = format!("compact/{}", run.sfx);
    assert!(c.try_lease(&lease, "one", 1_000, 500).await.expect("take"));
    assert!(!c.try_lease(&lease, "two", 1_400, 500).await.expect("held"));
    assert!(c.try_lease(&lease, "one", 1_400, 500).await.expect("renew"));
    assert!(
        !c.try_lease(&lease, "two", 1_900, 500)
            .await
            .expect("renewed, still held")
    );
    assert!(c.try_lease(&lease, "two", 1_901, 500).await.expect("expired"));
    c.release_lease(&lease, "one").await.expect("not one's: no-op");
    assert!(!c.try_lease(&lease, "one", 2_000, 500).await.expect("two's"));
    c.release_lease(&lease, "two").await.expect("release");
    assert!(c.try_lease(&lease, "one", 2_000, 500).await.expect("free"));
    c.release_lease(&lease, "one").await.expect("release");
}

async fn api_keys(c: &dyn Catalog, run: &Run) {
    let t1 = run.tenant("keys-a");
    let t2 = run.tenant("keys-b");
    let key = |id: &str, tenant: &TenantId, at: i64| ApiKeyRecord {
        id: format!("{id}{}", run.sfx),
        tenant: tenant.clone(),
        secret_sha256: format!("{:064x}", at),
        name: format!("name of {id}"),
        created_at_ms: at,
        revoked_at_ms: None,
    };
    let (a1, a2, b1) = (key("a1", &t1, run.t), key("a2", &t1, run.t + 1), key("b1", &t2, run.t));
    for k in [&a2, &b1, &a1] {
        c.create_api_key(k).await.expect("create_api_key");
    }
    // The key's tenant is recorded as a tenant too.
    let tenants = c.list_tenants().await.expect("list_tenants");
    assert!(tenants.contains(&t1) && tenants.contains(&t2));
    assert!(
        matches!(c.create_api_key(&a1).await, Err(Error::InvalidInput { .. })),
        "an id is unique"
    );
    assert_eq!(c.api_key(&a1.id).await.unwrap(), Some(a1.clone()));
    assert_eq!(c.api_key(&format!("none{}", run.sfx)).await.unwrap(), None);
    assert_eq!(
        c.list_api_keys(Some(&t1)).await.unwrap(),
        vec![a1.clone(), a2.clone()],
        "by creation time"
    );
    let all = c.list_api_keys(None).await.unwrap();
    let ours: Vec<_> = all.into_iter().filter(|k| k.id.ends_with(&run.sfx)).collect();
    assert_eq!(ours, vec![a1.clone(), a2.clone(), b1.clone()], "by tenant");

    c.revoke_api_key(&a1.id, run.t + 10).await.expect("revoke");
    c.revoke_api_key(&a1.id, run.t + 20).await.expect("revoke again");
    assert_eq!(
        c.api_key(&a1.id).await.unwrap().unwrap().revoked_at_ms,
        Some(run.t + 10)
    );
    assert_eq!(c.api_key(&a2.id).await.unwrap().unwrap().revoked_at_ms, None);
    assert!(matches!(
        c.revoke_api_key(&format!("none{}", run.sfx), run.t).await,
        Err(Error::NotFound { .. })
    ));
}

/// Identity and clock of one run.
struct Run {
    sfx: String,
    /// Wall-clock milliseconds at the start.
    t: i64,
}

impl Run {
    fn new() -> Self {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let since = SystemTime::now().duration_since(UNIX_EPOCH).expect("clock before 1970");
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        Self {
            sfx: format!("{}-{}-{}", since.as_nanos(), std::process::id(), n),
            t: i64::try_from(since.as_millis()).expect("time fits i64"),
        }
    }

    fn tenant(&self, name: &str) -> TenantId {
        TenantId::new(format!("{name}-{}", self.sfx)).expect("valid tenant id")
    }

    fn batch(&self, source: &str, seq: u64, part: u32) -> BatchId {
        BatchId {
            source: format!("{source}-{}", self.sfx),
            seq,
            part,
        }
    }

    fn file(&self, name: &str, tenant: &TenantId, signal: Signal, min: i64, max: i64) -> FileRecord {
        FileRecord {
            path: format!("{tenant}/{signal}/{name}-{}.parquet", self.sfx),
            tenant: tenant.clone(),
            signal,
            min_time_ns: min,
            max_time_ns: max,
            rows: max - min + 1,
            size_bytes: 1000 + min,
            // Distinct per file, with bytes past 0x7f to catch a signed or
            // text-order mix-up.
            trace_ids: Some(([min.to_le_bytes()[0]; 16], [0xf0; 16])),
            writer_id: format!("writer-{}", self.sfx),
            created_at_ms: self.t,
        }
    }

    /// This run's records among `all`.
    fn mine(&self, all: Vec<ServiceRecord>) -> Vec<ServiceRecord> {
        all.into_iter().filter(|s| s.id.ends_with(&self.sfx)).collect()
    }
}

fn is_sorted_by_id(services: &[ServiceRecord]) -> bool {
    services.windows(2).all(|w| w[0].id <= w[1].id)
}

async fn live(c: &dyn Catalog, run: &Run, cap: Capability, now: i64, ttl: i64) -> Vec<ServiceRecord> {
    let all = c.live_services(cap, now, ttl).await.expect("live_services");
    assert!(is_sorted_by_id(&all), "live_services must be ordered by id");
    assert!(
        all.iter().all(|s| s.capabilities.contains(&cap)),
        "live_services returned a service without {cap}"
    );
    run.mine(all)
}

async fn services(c: &dyn Catalog, run: &Run) {
    let t = run.t;
    let a = ServiceRecord {
        id: format!("svc-a-{}", run.sfx),
        role: Role::Writer,
        address: "http://10.0.0.1:50051".into(),
        capabilities: vec![Capability::Storage],
        draining: false,
        started_at_ms: t - 10,
        last_heartbeat_ms: t,
    };
    let b = ServiceRecord {
        id: format!("svc-b-{}", run.sfx),
        role: Role::Querier,
        address: "http://10.0.0.2:50052".into(),
        capabilities: vec![Capability::QueryExecution, Capability::Storage],
        draining: false,
        started_at_ms: t - 20,
        last_heartbeat_ms: t,
    };
    let d = ServiceRecord {
        id: format!("svc-d-{}", run.sfx),
        role: Role::Acceptor,
        address: "http://10.0.0.3:4317".into(),
        capabilities: vec![Capability::TraceIngestion],
        draining: true,
        started_at_ms: t - 30,
        last_heartbeat_ms: t,
    };
    let e = ServiceRecord {
        id: format!("svc-e-{}", run.sfx),
        role: Role::Router,
        address: "http://10.0.0.4:3200".into(),
        capabilities: vec![],
        draining: false,
        started_at_ms: t,
        last_heartbeat_ms: t,
    };
    // Registered out of order: results come back ordered by id.
    for s in [&d, &b, &e, &a] {
        c.register_service(s).await.expect("register_service");
    }

    assert_eq!(
        live(c, run, Capability::Storage, t, 1000).await,
        vec![a.clone(), b.clone()]
    );
    assert_eq!(live(c, run, Capability::QueryExecution, t, 1000).await, vec![b.clone()]);
    assert_eq!(
        live(c, run, Capability::TraceIngestion, t, 1000).await,
        vec![d.clone()],
        "draining services are listed"
    );
    assert_eq!(live(c, run, Capability::Routing, t, 1000).await, vec![]);

    // Upsert replaces every field.
    let a2 = ServiceRecord {
        address: "http://10.0.0.9:50051".into(),
        capabilities: vec![Capability::Storage, Capability::Routing],
        started_at_ms: t - 5,
        ..a.clone()
    };
    c.register_service(&a2).await.expect("re-register_service");
    assert_eq!(
        live(c, run, Capability::Storage, t, 1000).await,
        vec![a2.clone(), b.clone()]
    );
    assert_eq!(live(c, run, Capability::Routing, t, 1000).await, vec![a2.clone()]);

    // Heartbeats and the TTL window: a heartbeat exactly at now - ttl is live.
    c.heartbeat(&a2.id, t + 5000).await.expect("heartbeat");
    let a3 = ServiceRecord {
        last_heartbeat_ms: t + 5000,
        ..a2.clone()
    };
    assert_eq!(
        live(c, run, Capability::Storage, t + 5000, 1000).await,
        vec![a3.clone()]
    );
    assert_eq!(
        live(c, run, Capability::Storage, t + 1000, 1000).await,
        vec![a3.clone(), b.clone()]
    );
    assert_eq!(
        live(c, run, Capability::Storage, t + 1001, 1000).await,
        vec![a3.clone()]
    );
    let missing = format!("svc-missing-{}", run.sfx);
    match c.heartbeat(&missing, t).await {
        Err(Error::NotFound { .. }) => {}
        other => panic!("heartbeat of an unknown service: expected NotFound, got {other:?}"),
    }

    // Draining flag.
    c.set_draining(&b.id, true).await.expect("set_draining");
    let b_draining = ServiceRecord {
        draining: true,
        ..b.clone()
    };
    assert_eq!(
        live(c, run, Capability::QueryExecution, t, 1000).await,
        vec![b_draining]
    );
    c.set_draining(&b.id, false).await.expect("set_draining false");
    assert_eq!(live(c, run, Capability::QueryExecution, t, 1000).await, vec![b.clone()]);
    match c.set_draining(&missing, true).await {
        Err(Error::NotFound { .. }) => {}
        other => panic!("set_draining of an unknown service: expected NotFound, got {other:?}"),
    }

    // Expiry removes b, d and e (heartbeat t < t + 4000) but not a (t + 5000).
    let expired = c.expire_services(t + 5000, 1000).await.expect("expire_services");
    assert!(expired >= 3, "expire_services removed {expired}, expected at least 3");
    for cap in Capability::ALL {
        let ours: Vec<String> = live(c, run, cap, t + 5000, i64::MAX)
            .await
            .into_iter()
            .map(|s| s.id)
            .collect();
        let expected: Vec<String> = if a3.capabilities.contains(&cap) {
            vec![a3.id.clone()]
        } else {
            vec![]
        };
        assert_eq!(ours, expected, "after expiry, services with {cap}");
    }
    match c.heartbeat(&b.id, t + 5000).await {
        Err(Error::NotFound { .. }) => {}
        other => panic!("heartbeat of an expired service: expected NotFound, got {other:?}"),
    }
    // An expired service may register again.
    c.register_service(&b).await.expect("register again after expiry");
    assert_eq!(live(c, run, Capability::QueryExecution, t, 0).await, vec![b.clone()]);

    // Deregistration; deregistering twice is fine.
    c.deregister_service(&a3.id).await.expect("deregister_service");
    c.deregister_service(&b.id).await.expect("deregister_service b");
    c.deregister_service(&a3.id).await.expect("deregister_service twice");
    assert_eq!(live(c, run, Capability::Storage, t + 5000, i64::MAX).await, vec![]);
    match c.heartbeat(&a3.id, t + 6000).await {
        Err(Error::NotFound { .. }) => {}
        other => panic!("heartbeat after deregistration: expected NotFound, got {other:?}"),
    }
}

async fn tenants(c: &dyn Catalog, run: &Run) {
    let t1 = run.tenant("acme");
    let t2 = run.tenant("beta");
    c.ensure_tenant(&t2, run.t).await.expect("ensure_tenant");
    c.ensure_tenant(&t1, run.t).await.expect("ensure_tenant");
    c.ensure_tenant(&t1, run.t + 1).await.expect("ensure_tenant again");
    let all = c.list_tenants().await.expect("list_tenants");
    assert!(
        all.windows(2).all(|w| w[0] < w[1]),
        "list_tenants must be ordered and distinct"
    );
    let ours: Vec<&TenantId> = all.iter().filter(|t| t.as_str().ends_with(&run.sfx)).collect();
    assert_eq!(ours, vec![&t1, &t2]);
}

async fn files(c: &dyn Catalog, run: &Run) {
    let t1 = run.tenant("files1");
    let t2 = run.tenant("files2");
    let f1 = run.file("b", &t1, Signal::Traces, 100, 200);
    let f0 = run.file("a", &t1, Signal::Traces, 100, 120); // ties with f1 on min: path decides
    let f2 = run.file("c", &t1, Signal::Traces, 150, 300);
    let f3 = run.file("d", &t1, Signal::Traces, 400, 500);
    let logs = run.file("e", &t1, Signal::Logs, 100, 500);
    let other = run.file("f", &t2, Signal::Traces, 100, 200);
    let version = c.files_version(&t1).await.expect("files_version");
    assert_eq!(version, 0, "a tenant without files is at version 0");
    let mut last = version;
    for (i, f) in [&f3, &f1, &logs, &f2, &other, &f0].into_iter().enumerate() {
        let batch = run.batch("files", 1, u32::try_from(i).expect("small"));
        c.register_file(f, &[batch]).await.expect("register_file");
        let now = c.files_version(&t1).await.expect("files_version");
        if f.tenant == t1 {
            assert!(now > last, "registering {} must change the file-list version", f.path);
        } else {
            assert_eq!(now, last, "another tenant's file must not change t1's version");
        }
        last = now;
    }
    let without_ids = FileRecord {
        trace_ids: None,
        ..run.file("g", &t2, Signal::Logs, 1, 2)
    };
    c.register_file(&without_ids, &[run.batch("files", 2, 0)])
        .await
        .expect("register_file without trace ids");
    assert_eq!(
        c.list_files(&t2, Signal::Logs, None).await.expect("list_files t2 logs"),
        vec![without_ids]
    );

    // register_file records the tenant.
    let tenants = c.list_tenants().await.expect("list_tenants");
    assert!(
        tenants.contains(&t1) && tenants.contains(&t2),
        "register_file must record the tenant"
    );

    let list = |range| list_traces(c, &t1, range);
    let all = vec![f0.clone(), f1.clone(), f2.clone(), f3.clone()];
    assert_eq!(list(None).await, all);
    assert_eq!(list(Some((i64::MIN, i64::MAX))).await, all);
    assert_eq!(list(Some((0, 99))).await, vec![]);
    assert_eq!(
        list(Some((0, 100))).await,
        vec![f0.clone(), f1.clone()],
        "range bounds are inclusive"
    );
    assert_eq!(list(Some((200, 200))).await, vec![f1.clone(), f2.clone()]);
    assert_eq!(list(Some((121, 149))).await, vec![f1.clone()]);
    assert_eq!(list(Some((250, 450))).await, vec![f2.clone(), f3.clone()]);
    assert_eq!(list(Some((301, 399))).await, vec![]);
    assert_eq!(list(Some((500, 1000))).await, vec![f3.clone()]);
    assert_eq!(list(Some((501, 1000))).await, vec![]);

    assert_eq!(
        c.list_files(&t1, Signal::Logs, None).await.expect("list_files logs"),
        vec![logs.clone()]
    );
    assert_eq!(
        c.list_files(&t1, Signal::Metrics, None)
            .await
            .expect("list_files metrics"),
        vec![]
    );
    assert_eq!(
        c.list_files(&t2, Signal::Traces, None).await.expect("list_files t2"),
        vec![other.clone()]
    );
    assert_eq!(
        c.list_files(&t2, Signal::Metrics, Some((0, 1000)))
            .await
            .expect("list_files t2 metrics"),
        vec![]
    );
    let unknown = run.tenant("nobody");
    assert_eq!(
        c.list_files(&unknown, Signal::Traces, None)
            .await
            .expect("list_files unknown"),
        vec![]
    );
}

async fn list_traces(c: &dyn Catalog, tenant: &TenantId, range: Option<(i64, i64)>) -> Vec<FileRecord> {
    c.list_files(tenant, Signal::Traces, range).await.expect("list_files")
}

async fn batches(c: &dyn Catalog, run: &Run) {
    let tenant = run.tenant("batches");
    let b10 = run.batch("src", 1, 0);
    let b11 = run.batch("src", 1, 1);
    let b20 = run.batch("src", 2, 0);
    let big = run.batch("src", (1 << 62) + 7, u32::MAX);
    let other_source = run.batch("other", 1, 0);
    assert_eq!(c.batches_seen(&[]).await.expect("batches_seen empty"), vec![]);
    assert_eq!(
        c.batches_seen(&[b10.clone(), big.clone()]).await.expect("batches_seen"),
        vec![]
    );

    let f = run.file("batches", &tenant, Signal::Traces, 1, 2);
    // A repeated id counts once.
    let ids = [b10.clone(), b11.clone(), b20.clone(), big.clone(), b10.clone()];
    c.register_file(&f, &ids).await.expect("register_file with batches");

    let b30 = run.batch("src", 3, 0);
    let asked = [
        b20.clone(),
        b30.clone(),
        other_source.clone(),
        big.clone(),
        b10.clone(),
        b20.clone(),
    ];
    assert_eq!(
        c.batches_seen(&asked).await.expect("batches_seen"),
        vec![b20.clone(), big.clone(), b10.clone(), b20.clone()],
        "batches_seen answers in the order given"
    );

    // A file without batches is fine.
    let empty = run.file("no-batches", &tenant, Signal::Traces, 3, 4);
    c.register_file(&empty, &[])
        .await
        .expect("register_file without batches");
    assert_eq!(
        c.list_files(&tenant, Signal::Traces, None).await.expect("list_files"),
        vec![f.clone(), empty.clone()]
    );
}

async fn duplicates(c: &dyn Catalog, run: &Run) {
    let tenant = run.tenant("dups");
    let first = run.file("first", &tenant, Signal::Logs, 10, 20);
    let known = run.batch("dup", 1, 0);
    c.register_file(&first, std::slice::from_ref(&known))
        .await
        .expect("register_file");

    // A known batch id among new ones: nothing at all is recorded, not even
    // the new tenant.
    let fresh_tenant = run.tenant("dups-fresh");
    let second = run.file("second", &fresh_tenant, Signal::Logs, 10, 20);
    let new1 = run.batch("dup", 2, 0);
    let new2 = run.batch("dup", 3, 0);
    match c
        .register_file(&second, &[new1.clone(), known.clone(), new2.clone()])
        .await
    {
        Err(Error::DuplicateBatch { batch, .. }) => assert_eq!(batch, known),
        other => {
            panic!("register_file with a known batch id: expected DuplicateBatch, got {other:?}")
        }
    }
    assert_eq!(
        c.list_files(&fresh_tenant, Signal::Logs, None)
            .await
            .expect("list_files"),
        vec![]
    );
    assert_eq!(
        c.batches_seen(&[new1.clone(), new2.clone()])
            .await
            .expect("batches_seen"),
        vec![]
    );
    assert!(
        !c.list_tenants().await.expect("list_tenants").contains(&fresh_tenant),
        "the transaction must roll back"
    );

    // The same file path twice: rejected, its batch ids not recorded.
    let again = FileRecord {
        rows: 1,
        ..first.clone()
    };
    match c.register_file(&again, std::slice::from_ref(&new1)).await {
        Err(Error::DuplicateFile { path }) => assert_eq!(path, first.path),
        other => panic!("register_file with a known path: expected DuplicateFile, got {other:?}"),
    }
    assert_eq!(
        c.batches_seen(std::slice::from_ref(&new1)).await.expect("batches_seen"),
        vec![]
    );
    assert_eq!(
        c.list_files(&tenant, Signal::Logs, None).await.expect("list_files"),
        vec![first.clone()]
    );

    // After the failures the same registration with only new ids succeeds.
    c.register_file(&second, &[new1.clone(), new2.clone()])
        .await
        .expect("register_file after rollback");
    assert_eq!(
        c.list_files(&fresh_tenant, Signal::Logs, None)
            .await
            .expect("list_files"),
        vec![second]
    );
    assert_eq!(
        c.batches_seen(&[new2.clone(), new1.clone()])
            .await
            .expect("batches_seen"),
        vec![new2, new1]
    );
}

async fn many_batches(c: &dyn Catalog, run: &Run) {
    let tenant = run.tenant("many");
    let f = run.file("many", &tenant, Signal::Metrics, 1, 1);
    let ids: Vec<BatchId> = (0..2500u64)
        .map(|i| run.batch("many", i, u32::try_from(i % 3).expect("small")))
        .collect();
    c.register_file(&f, &ids)
        .await
        .expect("register_file with 2500 batch ids");

    // 3500 questions: every registered id, with unknown ones mixed in.
    let mut asked = Vec::new();
    let mut expected = Vec::new();
    for (i, id) in ids.iter().enumerate() {
        if i % 5 == 0 {
            asked.push(run.batch("many", id.seq, 99));
        }
        asked.push(id.clone());
        expected.push(id.clone());
    }
    asked.extend((0..500u64).map(|i| run.batch("unknown", i, 0)));
    assert_eq!(
        c.batches_seen(&asked).await.expect("batches_seen of 3500 ids"),
        expected
    );

    // A duplicate deep in a large registration still rolls everything back.
    let g = run.file("many-again", &tenant, Signal::Metrics, 2, 2);
    let mut more: Vec<BatchId> = (0..1000u64).map(|i| run.batch("more", i, 0)).collect();
    more.push(ids[2400].clone());
    match c.register_file(&g, &more).await {
        Err(Error::DuplicateBatch { batch, .. }) => assert_eq!(batch, ids[2400]),
        other => {
            panic!("register_file with a known batch id: expected DuplicateBatch, got {other:?}")
        }
    }
    assert_eq!(c.batches_seen(&more[..1000]).await.expect("batches_seen"), vec![]);
    assert_eq!(
        c.list_files(&tenant, Signal::Metrics, None).await.expect("list_files"),
        vec![f]
    );
}

async fn prune(c: &dyn Catalog, run: &Run) {
    let tenant = run.tenant("prune");
    let old = FileRecord {
        created_at_ms: run.t - 100_000,
        ..run.file("old", &tenant, Signal::Traces, 1, 2)
    };
    let new = FileRecord {
        created_at_ms: run.t,
        ..run.file("new", &tenant, Signal::Traces, 3, 4)
    };
    let old_ids = [run.batch("prune", 1, 0), run.batch("prune", 1, 1)];
    let new_ids = [run.batch("prune", 2, 0)];
    c.register_file(&old, &old_ids).await.expect("register_file old");
    c.register_file(&new, &new_ids).await.expect("register_file new");

    let pruned = c.prune_batches(run.t - 50_000).await.expect("prune_batches");
    assert!(pruned >= 2, "prune_batches removed {pruned}, expected at least 2");
    let all: Vec<BatchId> = old_ids.iter().chain(&new_ids).cloned().collect();
    assert_eq!(c.batches_seen(&all).await.expect("batches_seen"), new_ids.to_vec());
    // The files stay; a pruned id may be registered again.
    assert_eq!(
        c.list_files(&tenant, Signal::Traces, None).await.expect("list_files"),
        vec![old.clone(), new.clone()]
    );
    let again = run.file("again", &tenant, Signal::Traces, 5, 6);
    c.register_file(&again, &old_ids)
        .await
        .expect("register_file with pruned ids");
    assert_eq!(c.batches_seen(&all).await.expect("batches_seen"), all);
    assert_eq!(c.prune_batches(i64::MIN).await.expect("prune_batches nothing"), 0);
}
