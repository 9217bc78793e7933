//! `signaldb loadgen`: the ingest load generator and benchmark.
//!
//! Sends OTLP/gRPC export requests from several concurrent clients and prints
//! spans/s, request latency percentiles and the server's peak RSS. With
//! `--spawn-server` it starts an all-in-one `signaldb` on a fresh data
//! directory first and stops it after the run, so one command reproduces the
//! figures of docs/benchmarks.md.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status, span};
use rand::{Rng, SeedableRng};
use tokio::io::AsyncBufReadExt;

/// Parameters of a load run. Defaults are the standard load of DESIGN §7.
#[derive(Debug, Clone, clap::Args)]
pub struct LoadgenArgs {
    /// OTLP/gRPC endpoint of an acceptor.
    #[arg(long, default_value = "http://127.0.0.1:4317")]
    pub endpoint: String,
    /// Spans to send in all.
    #[arg(long, default_value_t = 1_000_000)]
    pub spans: u64,
    /// Spans of each trace.
    #[arg(long, default_value_t = 10)]
    pub spans_per_trace: u32,
    /// Spans of each export request.
    #[arg(long, default_value_t = 500)]
    pub spans_per_request: u32,
    /// Concurrent clients.
    #[arg(long, default_value_t = 4)]
    pub concurrency: u32,
    /// Attributes of each span (resource attributes come on top).
    #[arg(long, default_value_t = 10)]
    pub attributes: u32,
    /// Tenant (X-Scope-OrgID); none when empty.
    #[arg(long, default_value = "")]
    pub tenant: String,
    /// Report the peak RSS of this process id (Linux).
    #[arg(long)]
    pub server_pid: Option<u32>,
    /// Start an all-in-one signaldb (this binary) on a temporary data
    /// directory, load it, report its peak RSS, and stop it.
    #[arg(long)]
    pub spawn_server: bool,
    /// After the load, measure trace-by-id and search latency through the
    /// Tempo API, first on unflushed data, then after draining (flushing)
    /// the writer.
    #[arg(long)]
    pub query_bench: bool,
    /// Tempo API base URL for --query-bench (set automatically with --spawn-server).
    #[arg(long, default_value = "http://127.0.0.1:3200")]
    pub router: String,
    /// Admin base URL of the writer for --query-bench (set automatically with --spawn-server).
    #[arg(long, default_value = "http://127.0.0.1:9091")]
    pub admin: String,
    /// With --spawn-server and --query-bench: the spawned server does not
    /// compact on its own; after the benchmark on flushed data, every file
    /// is compacted (windows counted as settled) by a compactor in this
    /// process, which reports files, bytes and spans/s, and the benchmark
    /// runs again on the compacted files.
    #[arg(long)]
    pub compact: bool,
    /// Extra `--set KEY=VALUE` for the spawned server.
    #[arg(long = "server-set", value_name = "KEY=VALUE")]
    pub server_set: Vec<String>,
    /// File with the cluster token that --query-bench presents to start the
    /// writer's drain (set automatically with --spawn-server).
    #[arg(long, value_name = "PATH")]
    pub cluster_token_file: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum LoadgenError {
    #[error("bad arguments: {0}")]
    Args(String),
    #[error("connecting to {endpoint}: {source}")]
    Connect {
        endpoint: String,
        source: tonic::transport::Error,
    },
    #[error("spawning the server: {0}")]
    Spawn(String),
    #[error("export failed: {0}")]
    Export(tonic::Status),
}

/// What a run measured.
#[derive(Debug, Clone)]
pub struct Report {
    pub spans: u64,
    pub requests: u64,
    pub request_bytes: u64,
    pub elapsed: Duration,
    pub p50: Duration,
    pub p99: Duration,
    pub max: Duration,
    pub retries: u64,
    /// Some of the trace ids sent, for query benchmarks.
    pub sampled_trace_ids: Vec<[u8; 16]>,
    /// The last trace each client sent: readable by id means everything
    /// before it was delivered too (delivery keeps each client's order
    /// closely enough to make it the honest end of the run).
    pub last_trace_ids: Vec<[u8; 16]>,
}

impl Report {
    pub fn spans_per_second(&self) -> f64 {
        self.spans as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// Makes export requests of the configured shape with random ids.
#[derive(Debug)]
pub struct RequestFactory {
    rng: rand::rngs::StdRng,
    spans_per_trace: u32,
    attributes: u32,
    /// Requests made: picks each request's service.
    requests: u64,
    traces: u64,
    /// The trace id made last.
    last: [u8; 16],
    /// Every 97th trace id made, for query benchmarks.
    pub sampled: Vec<[u8; 16]>,
}

fn kv(key: &str, v: any_value::Value) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue { value: Some(v) }),
        ..Default::default()
    }
}

fn s(v: &str) -> any_value::Value {
    any_value::Value::StringValue(v.to_owned())
}

impl RequestFactory {
    pub fn new(seed: u64, spans_per_trace: u32, attributes: u32) -> Self {
        Self {
            rng: rand::rngs::StdRng::seed_from_u64(seed),
            spans_per_trace: spans_per_trace.max(1),
            attributes,
            requests: 0,
            traces: 0,
            last: [0; 16],
            sampled: Vec::new(),
        }
    }

    /// The resource of the next request: services `svc-00` to `svc-19` in
    /// turn (every trace of a request belongs to one service).
    fn next_resource(&mut self) -> Resource {
        let service = format!("svc-{:02}", self.requests % 20);
        self.requests += 1;
        Resource {
            attributes: vec![
                kv("service.name", s(&service)),
                kv("service.version", s("1.42.0")),
                kv("deployment.environment", s("bench")),
                kv("host.name", s("bench-host-01")),
                kv("k8s.pod.name", s(&format!("{service}-7d9f8b6c5d-x2x8q"))),
            ],
            ..Default::default()
        }
    }

    /// A span's attributes, shaped like the load Tempo's figures come from:
    /// `http.request.method`, `http.response.status_code` (500 in 5% of
    /// spans), `attr.str5` (`value-0`..`value-99`), then random ids, ints,
    /// bools and doubles up to `self.attributes`.
    fn span_attributes(&mut self) -> Vec<KeyValue> {
        let mut out = Vec::with_capacity(self.attributes as usize);
        for a in 0..self.attributes {
            out.push(match a {
                0 => kv(
                    "http.request.method",
                    s(["GET", "POST", "PUT", "DELETE"][self.rng.random_range(0..4)]),
                ),
                1 => {
                    let code = if self.rng.random_range(0..100) < 5 { 500 } else { 200 };
                    kv("http.response.status_code", any_value::Value::IntValue(code))
                }
                2 => kv("attr.str5", s(&format!("value-{}", self.rng.random_range(0..100)))),
                _ => match a % 4 {
                    0 => kv(&format!("attr.id{a}"), s(&format!("{:016x}", self.rng.random::<u64>()))),
                    1 => kv(
                        &format!("attr.int{a}"),
                        any_value::Value::IntValue(self.rng.random_range(0..1_000_000)),
                    ),
                    2 => kv(&format!("attr.bool{a}"), any_value::Value::BoolValue(self.rng.random())),
                    _ => kv(
                        &format!("attr.double{a}"),
                        any_value::Value::DoubleValue(self.rng.random::<f64>() * 1000.0),
                    ),
                },
            });
        }
        out
    }

    /// A request of `n` spans: whole traces of `spans_per_trace` spans.
    pub fn request(&mut self, n: u32) -> ExportTraceServiceRequest {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1);
        let mut spans = Vec::with_capacity(n as usize);
        let mut trace_id = [0u8; 16];
        let mut root = [0u8; 8];
        for i in 0..n {
            let pos = i % self.spans_per_trace;
            if pos == 0 {
                self.rng.fill(&mut trace_id);
                self.rng.fill(&mut root);
                trace_id[0] |= 1;
                root[0] |= 1;
                self.traces += 1;
                self.last = trace_id;
                if self.traces.is_multiple_of(97) {
                    self.sampled.push(trace_id);
                }
            }
            let mut span_id = [0u8; 8];
            if pos == 0 {
                span_id = root;
            } else {
                self.rng.fill(&mut span_id);
                span_id[0] |= 1;
            }
            let start = now - 50_000_000 + u64::from(pos) * 1_000_000;
            let duration = self.rng.random_range(100_000..5_000_000u64);
            let attributes = self.span_attributes();
            // 5% of spans fail.
            let status_code = if self.rng.random_range(0..100) < 5 { 2 } else { 0 };
            spans.push(Span {
                trace_id: trace_id.to_vec(),
                span_id: span_id.to_vec(),
                parent_span_id: if pos == 0 { Vec::new() } else { root.to_vec() },
                name: if pos == 0 {
                    "GET /api/v1/orders".into()
                } else {
                    format!("db.query {pos}")
                },
                kind: if pos == 0 {
                    span::SpanKind::Server as i32
                } else {
                    span::SpanKind::Client as i32
                },
                start_time_unix_nano: start,
                end_time_unix_nano: start + duration,
                attributes,
                status: Some(Status {
                    code: status_code,
                    message: String::new(),
                }),
                ..Default::default()
            });
        }
        ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                resource: Some(self.next_resource()),
                scope_spans: vec![ScopeSpans {
                    scope: Some(InstrumentationScope {
                        name: "loadgen".into(),
                        version: "1".into(),
                        ..Default::default()
                    }),
                    spans,
                    schema_url: String::new(),
                }],
                schema_url: String::new(),
            }],
        }
    }
}

/// Runs the load against `args.endpoint`.
pub async fn run_load(args: &LoadgenArgs) -> Result<Report, LoadgenError> {
    if args.spans_per_request == 0 || args.concurrency == 0 {
        return Err(LoadgenError::Args(
            "--spans-per-request and --concurrency must be positive".into(),
        ));
    }
    let channel = tonic::transport::Endpoint::from_shared(args.endpoint.clone())
        .map_err(|source| LoadgenError::Connect {
            endpoint: args.endpoint.clone(),
            source,
        })?
        .tcp_nodelay(true)
        .connect()
        .await
        .map_err(|source| LoadgenError::Connect {
            endpoint: args.endpoint.clone(),
            source,
        })?;
    let requests_total = args.spans.div_ceil(u64::from(args.spans_per_request));
    let next = Arc::new(AtomicU64::new(0));
    let retries = Arc::new(AtomicU64::new(0));
    let bytes = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for worker in 0..args.concurrency {
        let mut client = TraceServiceClient::new(channel.clone()).max_encoding_message_size(64 << 20);
        let (next, retries, bytes) = (Arc::clone(&next), Arc::clone(&retries), Arc::clone(&bytes));
        let args = args.clone();
        tasks.spawn(async move {
            let mut factory = RequestFactory::new(u64::from(worker) + 1, args.spans_per_trace, args.attributes);
            let mut latencies = Vec::new();
            let mut spans = 0u64;
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= requests_total {
                    break;
                }
                let n =
                    (args.spans - i * u64::from(args.spans_per_request)).min(u64::from(args.spans_per_request)) as u32;
                let req = factory.request(n);
                bytes.fetch_add(prost::Message::encoded_len(&req) as u64, Ordering::Relaxed);
                loop {
                    let mut request = tonic::Request::new(req.clone());
                    if !args.tenant.is_empty()
                        && let Ok(v) = args.tenant.parse()
                    {
                        request.metadata_mut().insert("x-scope-orgid", v);
                    }
                    let t = Instant::now();
                    match client.export(request).await {
                        Ok(_) => {
                            latencies.push(t.elapsed());
                            break;
                        }
                        Err(s) if matches!(s.code(), tonic::Code::ResourceExhausted | tonic::Code::Unavailable) => {
                            retries.fetch_add(1, Ordering::Relaxed);
                            tokio::time::sleep(Duration::from_millis(100)).await;
                        }
                        Err(s) => return Err(LoadgenError::Export(s)),
                    }
                }
                spans += u64::from(n);
            }
            Ok((latencies, spans, factory.sampled, factory.last))
        });
    }
    let mut latencies = Vec::new();
    let mut spans = 0;
    let mut sampled = Vec::new();
    let mut last = Vec::new();
    while let Some(r) = tasks.join_next().await {
        let (l, s, ids, last_id) = r.map_err(|e| LoadgenError::Args(format!("client task failed: {e}")))??;
        latencies.extend(l);
        spans += s;
        sampled.extend(ids);
        if s > 0 {
            last.push(last_id);
        }
    }
    let elapsed = started.elapsed();
    latencies.sort_unstable();
    let pct = |p: f64| {
        if latencies.is_empty() {
            Duration::ZERO
        } else {
            latencies[((latencies.len() as f64 - 1.0) * p).round() as usize]
        }
    };
    Ok(Report {
        spans,
        requests: latencies.len() as u64,
        request_bytes: bytes.load(Ordering::Relaxed),
        elapsed,
        p50: pct(0.50),
        p99: pct(0.99),
        max: latencies.last().copied().unwrap_or_default(),
        retries: retries.load(Ordering::Relaxed),
        sampled_trace_ids: sampled,
        last_trace_ids: last,
    })
}

/// Waits until the acceptor behind `admin` has delivered everything it
/// acknowledged to writers (whose buffers are queryable at once).
pub(crate) async fn wait_delivered(admin: &str) -> Result<(), String> {
    let http = reqwest::Client::new();
    let t = Instant::now();
    loop {
        let text = http
            .get(format!("{admin}/metrics"))
            .send()
            .await
            .map_err(|e| format!("GET {admin}/metrics: {e}"))?
            .text()
            .await
            .map_err(|e| format!("GET {admin}/metrics: {e}"))?;
        if text
            .lines()
            .any(|l| l == "signaldb_wal_pending_bytes{role=\"acceptor\"} 0")
        {
            return Ok(());
        }
        if t.elapsed() > Duration::from_secs(600) {
            return Err("the acceptor did not deliver within 10 minutes".into());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Waits until every trace in `ids` is readable by id through the Tempo API
/// at `router`; how long that took, or why it could not tell.
async fn wait_readable(router: &str, tenant: &str, ids: &[[u8; 16]]) -> Result<Duration, String> {
    let http = reqwest::Client::new();
    let t = Instant::now();
    for id in ids {
        let url = format!("{router}/api/traces/{}", hex::encode(id));
        loop {
            let mut req = http.get(&url).header("accept", "application/protobuf");
            if !tenant.is_empty() {
                req = req.header("x-scope-orgid", tenant);
            }
            let status = req.send().await.map_err(|e| format!("GET {url}: {e}"))?.status();
            if status.is_success() {
                break;
            }
            if t.elapsed() > Duration::from_secs(600) {
                return Err(format!("trace {} not readable after 10 minutes", hex::encode(id)));
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    Ok(t.elapsed())
}

/// Peak resident set size of a process, from `/proc/PID/status` (`VmHWM`).
pub fn peak_rss_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

struct Spawned {
    child: tokio::process::Child,
    dir: PathBuf,
    endpoint: String,
    router: Option<String>,
    admin: Option<String>,
    token_file: PathBuf,
}

async fn spawn_server(extra: &[String]) -> Result<Spawned, LoadgenError> {
    let exe = std::env::current_exe().map_err(|e| LoadgenError::Spawn(e.to_string()))?;
    let dir = std::env::temp_dir().join(format!("signaldb-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| LoadgenError::Spawn(format!("creating {}: {e}", dir.display())))?;
    let token_file = dir.join("cluster-token");
    crate::auth::ClusterToken::create_file(&token_file)
        .map_err(|e| LoadgenError::Spawn(format!("writing {}: {e}", token_file.display())))?;
    let mut cmd = tokio::process::Command::new(exe);
    cmd.arg("--data-dir")
        .arg(&dir)
        .arg("--set")
        .arg(format!("cluster.token_file={}", token_file.display()))
        .args(["--otlp-grpc-addr", "127.0.0.1:0", "--otlp-http-addr", "127.0.0.1:0"])
        .args(["--flight-addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0"])
        .args([
            "--querier-addr",
            "127.0.0.1:0",
            "--http-addr",
            "127.0.0.1:0",
            "--flight-sql-addr",
            "127.0.0.1:0",
        ]);
    for s in extra {
        cmd.arg("--set").arg(s);
    }
    cmd.stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true);
    let mut child = cmd.spawn().map_err(|e| LoadgenError::Spawn(e.to_string()))?;
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| LoadgenError::Spawn("no stdout".into()))?;
    let mut lines = tokio::io::BufReader::new(stdout).lines();
    let line = tokio::time::timeout(Duration::from_secs(60), lines.next_line())
        .await
        .map_err(|_| LoadgenError::Spawn("server did not start within 60 s".into()))?
        .map_err(|e| LoadgenError::Spawn(e.to_string()))?
        .ok_or_else(|| LoadgenError::Spawn("server exited before listening".into()))?;
    let v: serde_json::Value = serde_json::from_str(&line).map_err(|e| LoadgenError::Spawn(format!("{e}: {line}")))?;
    let grpc = v["otlp_grpc"]
        .as_str()
        .ok_or_else(|| LoadgenError::Spawn(format!("no otlp_grpc in {line}")))?;
    let router = v["router_http"].as_str().map(|a| format!("http://{a}"));
    let admin = v["admin"].as_str().map(|a| format!("http://{a}"));
    Ok(Spawned {
        router,
        admin,
        token_file,
        child,
        dir,
        endpoint: format!("http://{grpc}"),
    })
}

/// `signaldb loadgen`.
pub async fn run(mut args: LoadgenArgs) -> Result<(), LoadgenError> {
    let mut spawned = None;
    if args.compact && !(args.spawn_server && args.query_bench) {
        return Err(LoadgenError::Args(
            "--compact needs --spawn-server and --query-bench".into(),
        ));
    }
    if args.spawn_server {
        let mut set = args.server_set.clone();
        if args.compact {
            // Compaction waits for the benchmark on the flushed files.
            set.push("compactor.interval=1000days".into());
        }
        let s = spawn_server(&set).await?;
        args.endpoint = s.endpoint.clone();
        args.server_pid = s.child.id();
        if let Some(r) = &s.router {
            args.router = r.clone();
        }
        if let Some(a) = &s.admin {
            args.admin = a.clone();
        }
        args.cluster_token_file = Some(s.token_file.clone());
        spawned = Some(s);
    }
    println!(
        "load: {} spans, {} spans/trace, {} spans/request, {} clients, {} attributes/span -> {}",
        args.spans, args.spans_per_trace, args.spans_per_request, args.concurrency, args.attributes, args.endpoint
    );
    let report = run_load(&args).await?;
    println!("spans sent:        {}", report.spans);
    println!(
        "requests:          {} ({} retried after 429/503)",
        report.requests, report.retries
    );
    println!("elapsed:           {:.2} s", report.elapsed.as_secs_f64());
    println!("throughput:        {:.0} spans/s", report.spans_per_second());
    println!(
        "OTLP bytes/span:   {:.0}",
        report.request_bytes as f64 / report.spans.max(1) as f64
    );
    println!(
        "request latency:   p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        report.p50.as_secs_f64() * 1e3,
        report.p99.as_secs_f64() * 1e3,
        report.max.as_secs_f64() * 1e3
    );
    // What the user sees: when the last traces sent became readable, and
    // everything acknowledged was delivered (so readable) too.
    let readable = async {
        let t = Instant::now();
        wait_readable(&args.router, &args.tenant, &report.last_trace_ids).await?;
        wait_delivered(&args.admin).await?;
        Ok::<_, String>(t.elapsed())
    };
    match readable.await {
        Ok(after) => {
            let end_to_end = report.elapsed + after;
            println!(
                "readable:          last trace readable by id {:.2} s after the last acknowledgement",
                after.as_secs_f64()
            );
            println!(
                "end to end:        {:.0} spans/s (sent until the last trace was readable, {:.2} s)",
                report.spans as f64 / end_to_end.as_secs_f64().max(1e-9),
                end_to_end.as_secs_f64()
            );
        }
        Err(e) => println!("readable:          unknown ({e}; --router names the Tempo API)"),
    }
    if args.query_bench {
        let token = match &args.cluster_token_file {
            Some(path) => {
                Some(crate::auth::ClusterToken::from_file(path).map_err(|e| LoadgenError::Args(e.to_string()))?)
            }
            None => None,
        };
        crate::querybench::run(
            &args.router,
            &args.admin,
            token.as_ref(),
            &report.sampled_trace_ids,
            &args.tenant,
        )
        .await
        .map_err(LoadgenError::Spawn)?;
        if let Some(s) = spawned.as_ref().filter(|_| args.compact) {
            compact_all(&s.dir).await?;
            let http = reqwest::Client::new();
            let ids: Vec<[u8; 16]> = report.sampled_trace_ids.iter().take(200).copied().collect();
            crate::querybench::round(&http, &args.router, &ids, &args.tenant, "compacted")
                .await
                .map_err(LoadgenError::Spawn)?;
        }
    }
    if let Some(pid) = args.server_pid {
        match peak_rss_bytes(pid) {
            Some(b) => println!("server peak RSS:   {:.0} MiB (pid {pid})", b as f64 / (1024.0 * 1024.0)),
            None => println!("server peak RSS:   unknown (no /proc/{pid}/status)"),
        }
    }
    if let Some(mut s) = spawned {
        if let Some(pid) = s.child.id() {
            // SIGTERM: the server flushes and exits.
            #[allow(unsafe_code)]
            // SAFETY: kill(2) with a pid we spawned and a valid signal number.
            unsafe {
                libc::kill(pid as i32, libc::SIGTERM);
            }
        }
        let t = Instant::now();
        let _ = tokio::time::timeout(Duration::from_secs(120), s.child.wait()).await;
        println!("server shutdown:   {:.2} s (final flush)", t.elapsed().as_secs_f64());
        // The files the catalog lists: the data kept. Objects a compaction
        // replaced stay on disk for `compactor.delete_delay` (queries may
        // still read them) and count only in the second figure.
        let on_disk = dir_size(&s.dir.join("objects"));
        let spans = report.spans.max(1) as f64;
        match registered_bytes(&s.dir).await {
            Ok(stored) => println!(
                "Parquet bytes/span: {:.1} (files in the catalog; {:.1} on disk with replaced files not yet deleted)",
                stored as f64 / spans,
                on_disk as f64 / spans
            ),
            Err(e) => println!(
                "Parquet bytes/span: {:.1} on disk (catalog unreadable: {e})",
                on_disk as f64 / spans
            ),
        }
        let _ = std::fs::remove_dir_all(&s.dir);
    }
    Ok(())
}

/// The catalog of data directory `dir` (a spawned server's).
async fn open_catalog(dir: &std::path::Path) -> Result<std::sync::Arc<dyn signaldb_catalog::Catalog>, String> {
    let config = signaldb_config::Config {
        data_dir: dir.to_path_buf(),
        ..signaldb_config::Config::default()
    };
    let catalog = signaldb_catalog::connect(&config.catalog_url(), 2)
        .await
        .map_err(|e| e.to_string())?;
    Ok(std::sync::Arc::new(catalog))
}

/// Every tenant's span files that `catalog` lists.
async fn span_files(catalog: &dyn signaldb_catalog::Catalog) -> Result<Vec<signaldb_catalog::FileRecord>, String> {
    let mut files = Vec::new();
    for tenant in catalog.list_tenants().await.map_err(|e| e.to_string())? {
        files.extend(
            catalog
                .list_files(&tenant, signaldb_config::Signal::Traces, None)
                .await
                .map_err(|e| e.to_string())?,
        );
    }
    Ok(files)
}

/// The bytes of the span files the catalog of data directory `dir` lists.
async fn registered_bytes(dir: &std::path::Path) -> Result<u64, String> {
    let catalog = open_catalog(dir).await?;
    Ok(span_files(catalog.as_ref())
        .await?
        .iter()
        .map(|f| u64::try_from(f.size_bytes).unwrap_or(0))
        .sum())
}

/// Compacts every file of the spawned server's store (data directory
/// `dir`) until no job is left, and prints what it did.
async fn compact_all(dir: &std::path::Path) -> Result<(), LoadgenError> {
    let fail = |e: String| LoadgenError::Spawn(format!("compacting: {e}"));
    let config = signaldb_config::Config {
        data_dir: dir.to_path_buf(),
        ..signaldb_config::Config::default()
    };
    let catalog = open_catalog(dir).await.map_err(fail)?;
    let store = crate::storage::open(&config).map_err(|e| fail(e.to_string()))?;
    let count = || async { span_files(catalog.as_ref()).await.map(|f| f.len()).map_err(fail) };
    let before = count().await?;
    let compactor = crate::compactor::Compactor::new(
        "loadgen-compactor".into(),
        store,
        std::sync::Arc::clone(&catalog),
        crate::storage::local_root(&config),
        config.compactor.clone(),
        crate::metrics::Metrics::new(),
    );
    // Every window counts as settled.
    let settled = chrono::Utc::now()
        + chrono::Duration::from_std(config.compactor.window + crate::compactor::SETTLED_AFTER).unwrap_or_default();
    let t = Instant::now();
    let mut total = crate::compactor::Report::default();
    loop {
        let r = compactor.compact_once(settled).await.map_err(|e| fail(e.to_string()))?;
        total.add(&r);
        if r.jobs == 0 {
            break;
        }
    }
    let secs = t.elapsed().as_secs_f64();
    // No query is running: the replaced objects may go now, so that the
    // stored bytes reported at the end are the compacted ones.
    let after_delay = settled + chrono::Duration::from_std(config.compactor.delete_delay).unwrap_or_default();
    compactor
        .compact_once(after_delay)
        .await
        .map_err(|e| fail(e.to_string()))?;
    println!(
        "compaction:        {before} files -> {} in {:.2} s: {} jobs, {} spans read ({:.0} spans/s), {} duplicates dropped, {:.1} -> {:.1} MiB",
        count().await?,
        secs,
        total.jobs,
        total.rows_in,
        total.rows_in as f64 / secs.max(1e-9),
        total.duplicates,
        total.bytes_in as f64 / (1024.0 * 1024.0),
        total.bytes_out as f64 / (1024.0 * 1024.0),
    );
    Ok(())
}

fn dir_size(p: &std::path::Path) -> u64 {
    let Ok(rd) = std::fs::read_dir(p) else {
        return 0;
    };
    rd.flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_size(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}
