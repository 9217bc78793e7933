//! Helpers shared by the integration tests.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, Span};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use signaldb::server::{Roles, Running, start};
use signaldb_config::Config;

/// A config on fresh directories and port 0 everywhere.
pub(crate) fn test_config(dir: &Path) -> Config {
    let mut c = Config::default();
    c.data_dir = dir.to_path_buf();
    let any = "127.0.0.1:0".parse().unwrap();
    c.acceptor.grpc_addr = any;
    c.acceptor.http_addr = any;
    c.writer.flight_addr = any;
    c.admin.addr = any;
    c.querier.flight_addr = any;
    c.router.http_addr = any;
    c.router.flight_sql_addr = any;
    c.discovery.heartbeat_interval = Duration::from_millis(200);
    c.discovery.ttl = Duration::from_secs(5);
    c.acceptor.max_retry_backoff = Duration::from_millis(200);
    // Tests that compact run rounds themselves, with a clock of their own.
    c.compactor.interval = Duration::from_secs(24 * 3600);
    c
}

/// Several servers of one cluster under `root`: one SQLite catalog, one
/// local object store and one cluster token (made once), each node with a
/// data directory and node id of its own, writers flushing only when told.
pub(crate) struct SharedCluster {
    root: std::path::PathBuf,
    pub(crate) token: signaldb::auth::ClusterToken,
}

impl SharedCluster {
    pub(crate) fn new(root: &Path) -> Self {
        let token = signaldb::auth::ClusterToken::create_file(&root.join("cluster-token")).unwrap();
        Self {
            root: root.to_path_buf(),
            token,
        }
    }

    /// The configuration of node `name`.
    pub(crate) fn node(&self, name: &str) -> Config {
        let mut c = test_config(&self.root.join(name));
        c.cluster.token_file = Some(self.root.join("cluster-token"));
        c.node_id = Some(name.into());
        c.catalog.url = Some(format!("sqlite://{}?mode=rwc", self.root.join("catalog.db").display()));
        c.storage.url = Some(format!("file://{}", self.root.join("objects").display()));
        c.writer.flush_max_age = Duration::from_secs(3600);
        c
    }
}

pub(crate) async fn start_all(config: Config) -> Running {
    start(config, Roles::ALL).await.expect("server starts")
}

/// Polls the async `f` every 20 ms until it is true or `timeout` passes.
pub(crate) async fn wait_until_async<F: std::future::Future<Output = bool>>(
    what: &str,
    timeout: Duration,
    mut f: impl FnMut() -> F,
) {
    let t = Instant::now();
    while !f().await {
        assert!(t.elapsed() < timeout, "timed out after {timeout:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Polls `f` every 20 ms until it is true or `timeout` passes.
pub(crate) async fn wait_until(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let t = Instant::now();
    while !f() {
        assert!(t.elapsed() < timeout, "timed out after {timeout:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Every `.parquet` file below `dir`.
pub(crate) fn parquet_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "parquet") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// Reads Parquet bytes back as OTLP.
pub(crate) fn read_parquet_bytes(bytes: bytes::Bytes) -> Vec<ResourceSpans> {
    let reader = ParquetRecordBatchReaderBuilder::try_new(bytes)
        .unwrap()
        .build()
        .unwrap();
    let mut out = Vec::new();
    for batch in reader {
        out.extend(signaldb_schema::traces::arrow_to_otlp(&batch.unwrap()).unwrap());
    }
    out
}

/// All spans stored as Parquet under `dir`, with their resource attributes' service name.
pub(crate) fn stored_spans(dir: &Path) -> Vec<ResourceSpans> {
    parquet_files(dir)
        .into_iter()
        .flat_map(|p| read_parquet_bytes(bytes::Bytes::from(std::fs::read(p).unwrap())))
        .collect()
}

/// Flattens to spans keyed by (trace id, span id), counting duplicates.
pub(crate) fn spans_by_id(rs: &[ResourceSpans]) -> HashMap<(Vec<u8>, Vec<u8>), (usize, Span)> {
    let mut out: HashMap<(Vec<u8>, Vec<u8>), (usize, Span)> = HashMap::new();
    for r in rs {
        for ss in &r.scope_spans {
            for s in &ss.spans {
                out.entry((s.trace_id.clone(), s.span_id.clone()))
                    .and_modify(|e| e.0 += 1)
                    .or_insert((1, s.clone()));
            }
        }
    }
    out
}

/// Waits until the acceptor has delivered everything, then flushes the writer.
pub(crate) async fn deliver_and_flush(running: &Running) {
    let m = running.metrics.clone();
    wait_until("acceptor WAL to drain", Duration::from_secs(20), || {
        m.render()
            .lines()
            .any(|l| l.starts_with("signaldb_wal_pending_bytes{role=\"acceptor\"} 0"))
    })
    .await;
    running.writer().expect("writer role").flush().await.expect("flush");
}

/// A request of `traces` traces of `per_trace` spans, ids derived from `seed`.
pub(crate) fn request(seed: u64, traces: u32, per_trace: u32) -> ExportTraceServiceRequest {
    let mut f = signaldb::loadgen::RequestFactory::new(seed, per_trace, 4);
    f.request(traces * per_trace)
}

/// Sends SIGTERM or SIGKILL to a child.
pub(crate) fn signal(child: &std::process::Child, sig: i32) {
    #[allow(unsafe_code)]
    // SAFETY: kill(2) on a child we spawned.
    unsafe {
        libc::kill(child.id() as i32, sig);
    }
}

/// A `signaldb` process of the binary under test.
pub(crate) struct Proc {
    pub child: std::process::Child,
    pub endpoints: serde_json::Value,
}

/// Arguments for an all-in-one `signaldb` on `data` with every listener on
/// port 0 (the process prints the ports it got).
pub(crate) fn all_in_one_args(data: &str) -> Vec<&str> {
    vec![
        "--data-dir",
        data,
        "--otlp-grpc-addr",
        "127.0.0.1:0",
        "--otlp-http-addr",
        "127.0.0.1:0",
        "--flight-addr",
        "127.0.0.1:0",
        "--admin-addr",
        "127.0.0.1:0",
        "--querier-addr",
        "127.0.0.1:0",
        "--http-addr",
        "127.0.0.1:0",
        "--flight-sql-addr",
        "127.0.0.1:0",
    ]
}

impl Proc {
    pub(crate) fn spawn(args: &[&str], env: &[(&str, &str)]) -> Proc {
        use std::io::BufRead;
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_signaldb"));
        cmd.args(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::inherit());
        cmd.env("SIGNALDB_LOG", "warn");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn signaldb");
        let stdout = child.stdout.take().unwrap();
        let mut line = String::new();
        std::io::BufReader::new(stdout)
            .read_line(&mut line)
            .expect("read endpoints line");
        assert!(!line.is_empty(), "signaldb {args:?} exited before listening");
        let endpoints: serde_json::Value = serde_json::from_str(&line).expect("endpoints JSON");
        Proc { child, endpoints }
    }

    pub(crate) fn addr(&self, key: &str) -> String {
        self.endpoints[key]
            .as_str()
            .unwrap_or_else(|| panic!("no {key} in {}", self.endpoints))
            .to_owned()
    }

    pub(crate) fn kill9(mut self) {
        signal(&self.child, libc::SIGKILL);
        let _ = self.child.wait();
    }

    pub(crate) fn terminate(mut self) {
        signal(&self.child, libc::SIGTERM);
        let status = self.child.wait().unwrap();
        assert!(status.success(), "signaldb exited with {status} after SIGTERM");
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Scrapes a metric's value from a Prometheus text page.
pub(crate) fn metric(text: &str, name_and_labels: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(name_and_labels) && l[name_and_labels.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// One metric from a running process's admin `/metrics` page.
pub(crate) async fn admin_metric(admin: &str, name: &str) -> Option<f64> {
    let text = reqwest::get(format!("http://{admin}/metrics"))
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    metric(&text, name)
}

/// Waits (up to 30 s) until the acceptor behind `admin` has handed every
/// acknowledged request to the writers.
pub(crate) async fn wait_acceptor_wal_delivered(admin: &str) {
    let t = std::time::Instant::now();
    while admin_metric(admin, "signaldb_wal_pending_bytes{role=\"acceptor\"}").await != Some(0.0) {
        assert!(
            t.elapsed() < std::time::Duration::from_secs(30),
            "the acceptor did not deliver its WAL within 30 s"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// Span ids, as stored.
pub(crate) type SpanKey = (Vec<u8>, Vec<u8>);

/// Sends OTLP/gRPC requests in a loop to whatever endpoint is current and
/// records the span ids of every acknowledged request.
pub(crate) struct Loader {
    pub acked: std::sync::Arc<std::sync::Mutex<std::collections::HashSet<SpanKey>>>,
    pub endpoint: std::sync::Arc<std::sync::Mutex<String>>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Loader {
    pub(crate) fn start(endpoint: String, clients: u32, tenant: Option<String>) -> Loader {
        use std::sync::atomic::Ordering;
        use std::sync::{Arc, Mutex};
        let acked = Arc::new(Mutex::new(std::collections::HashSet::new()));
        let endpoint = Arc::new(Mutex::new(endpoint));
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let mut tasks = Vec::new();
        for c in 0..clients {
            let (acked, endpoint, stop, tenant) = (
                Arc::clone(&acked),
                Arc::clone(&endpoint),
                Arc::clone(&stop),
                tenant.clone(),
            );
            tasks.push(tokio::spawn(async move {
                let mut seed = u64::from(c) << 40;
                let mut client: Option<(String, opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient<tonic::transport::Channel>)> = None;
                while !stop.load(Ordering::Relaxed) {
                    seed += 1;
                    let target = endpoint.lock().unwrap().clone();
                    if client.as_ref().is_none_or(|(e, _)| *e != target) {
                        match tonic::transport::Endpoint::from_shared(format!("http://{target}"))
                            .unwrap()
                            .connect_timeout(Duration::from_millis(500))
                            .timeout(Duration::from_secs(5))
                            .connect()
                            .await
                        {
                            Ok(ch) => client = Some((target.clone(), opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient::new(ch))),
                            Err(_) => {
                                tokio::time::sleep(Duration::from_millis(50)).await;
                                continue;
                            }
                        }
                    }
                    let Some((_, cl)) = client.as_mut() else { continue };
                    let req = request(seed, 5, 10);
                    let keys: Vec<SpanKey> = req.resource_spans[0].scope_spans[0]
                        .spans
                        .iter()
                        .map(|s| (s.trace_id.clone(), s.span_id.clone()))
                        .collect();
                    let mut r = tonic::Request::new(req);
                    if let Some(t) = &tenant {
                        r.metadata_mut().insert("x-scope-orgid", t.parse().unwrap());
                    }
                    match cl.export(r).await {
                        Ok(_) => acked.lock().unwrap().extend(keys),
                        Err(_) => {
                            client = None;
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                    }
                }
            }));
        }
        Loader {
            acked,
            endpoint,
            stop,
            tasks,
        }
    }

    pub(crate) fn set_endpoint(&self, e: String) {
        *self.endpoint.lock().unwrap() = e;
    }

    pub(crate) fn acked_count(&self) -> usize {
        self.acked.lock().unwrap().len()
    }

    pub(crate) async fn stop(self) -> std::collections::HashSet<SpanKey> {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        for t in self.tasks {
            t.await.unwrap();
        }
        std::sync::Arc::try_unwrap(self.acked).unwrap().into_inner().unwrap()
    }
}

/// The spans of every file the catalog lists for `tenant`, read through `store`.
pub(crate) async fn catalog_spans(
    catalog_url: &str,
    store: &std::sync::Arc<dyn object_store::ObjectStore>,
    tenant: &str,
) -> Vec<ResourceSpans> {
    use object_store::ObjectStoreExt;
    use signaldb_catalog::Catalog;
    let catalog = signaldb_catalog::connect(catalog_url, 2).await.unwrap();
    let tenant = signaldb_config::TenantId::new(tenant).unwrap();
    let files = catalog
        .list_files(&tenant, signaldb_config::Signal::Traces, None)
        .await
        .unwrap();
    let mut out = Vec::new();
    for f in files {
        let bytes = store
            .get(&object_store::path::Path::from(f.path.as_str()))
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        out.extend(read_parquet_bytes(bytes));
    }
    out
}

/// Asserts every acknowledged span is stored exactly once and nothing is stored twice.
pub(crate) fn assert_exactly_once(acked: &std::collections::HashSet<SpanKey>, stored: &[ResourceSpans]) {
    let by_id = spans_by_id(stored);
    let dupes = by_id.values().filter(|(n, _)| *n > 1).count();
    assert_eq!(dupes, 0, "{dupes} spans are stored more than once");
    let missing = acked.iter().filter(|k| !by_id.contains_key(*k)).count();
    assert_eq!(
        missing,
        0,
        "{missing} of {} acknowledged spans are missing",
        acked.len()
    );
    assert!(by_id.len() >= acked.len());
}

/// Percent-encodes everything but unreserved characters.
pub(crate) fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// An OTLP/gRPC client of `running`'s acceptor and the base URL of its Tempo
/// API.
pub(crate) async fn clients(
    running: &Running,
) -> (
    opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient<
        tonic::transport::Channel,
    >,
    String,
) {
    let e = &running.endpoints;
    let grpc = opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient::connect(
        format!("http://{}", e.otlp_grpc.expect("acceptor role")),
    )
    .await
    .expect("connects to the acceptor");
    (grpc, format!("http://{}", e.router_http.expect("router role")))
}

/// GETs `url` and parses its JSON body; anything but 200 fails the test
/// with the body.
pub(crate) async fn get_json(http: &reqwest::Client, url: &str) -> serde_json::Value {
    let resp = http.get(url).send().await.unwrap();
    let status = resp.status().as_u16();
    let bytes = resp.bytes().await.unwrap();
    assert_eq!(status, 200, "GET {url}: {}", String::from_utf8_lossy(&bytes));
    serde_json::from_slice(&bytes).unwrap()
}

/// The span ids of trace `trace_hex` as the Tempo API at `base` returns
/// them to `tenant` (empty when it answers 404), and how many spans it
/// returned (ids repeated count again).
pub(crate) async fn trace_span_ids(
    http: &reqwest::Client,
    base: &str,
    tenant: &str,
    trace_hex: &str,
) -> (std::collections::HashSet<Vec<u8>>, usize) {
    use base64::Engine;
    let resp = http
        .get(format!("{base}/api/traces/{trace_hex}"))
        .header("X-Scope-OrgID", tenant)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    assert!(status == 200 || status == 404, "trace {trace_hex}: {status}");
    if status == 404 {
        return (Default::default(), 0);
    }
    let body: serde_json::Value = serde_json::from_slice(&resp.bytes().await.unwrap()).unwrap();
    let ids: Vec<Vec<u8>> = body["batches"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|rs| rs["scopeSpans"].as_array().cloned().unwrap_or_default())
        .flat_map(|ss| ss["spans"].as_array().cloned().unwrap_or_default())
        .filter_map(|s| {
            s["spanId"]
                .as_str()
                .and_then(|id| base64::engine::general_purpose::STANDARD.decode(id).ok())
        })
        .collect();
    let n = ids.len();
    (ids.into_iter().collect(), n)
}
