//! Memory is bounded by configuration, not by load: a real all-in-one
//! process ingests ten times its writer buffer bound, over OTLP/gRPC from
//! several clients, while its compactor merges the files it flushes, and
//! its peak RSS stays within the bounds it was given.

use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;

use crate::common::*;

const MIB: usize = 1024 * 1024;
/// `writer.max_buffer_size`: the writer's in-memory spans, including the
/// ones being flushed.
const BUFFER: usize = 16 * MIB;
/// `acceptor.max_in_flight`: the requests being received and checked
/// (decoded, they take a few times this).
const IN_FLIGHT: usize = 8 * MIB;
/// `acceptor.max_pending`: logged requests waiting for delivery, held as
/// received.
const PENDING: usize = 16 * MIB;
/// `acceptor.max_delivering`: logged requests being converted and sent to
/// the writers (converted, about three times this).
const DELIVERING: usize = 4 * MIB;
/// `acceptor.max_converted_pending`: span rows converted at acceptance and
/// held until delivered.
const CONVERTED: usize = 8 * MIB;
/// What the process may hold beyond its bounds: the flush's sort keys and
/// pieces, Parquet pages of a row group, upload parts, caches, allocator
/// slack.
const SLACK: usize = 128 * MIB;

/// VmHWM (peak resident set) or VmRSS of a process, in bytes.
fn rss(pid: u32, field: &str) -> usize {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kib: usize = status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"));
    kib * 1024
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_times_the_writer_buffer_passes_within_the_configured_memory() {
    signaldb::install_crypto_provider();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_string_lossy().into_owned();
    let buffer = format!("{}MiB", BUFFER / MIB);
    let in_flight = format!("{}MiB", IN_FLIGHT / MIB);
    let pending = format!("{}MiB", PENDING / MIB);
    let delivering = format!("{}MiB", DELIVERING / MIB);
    let converted = format!("{}MiB", CONVERTED / MIB);
    let proc = Proc::spawn(
        &all_in_one_args(&data),
        &[
            ("SIGNALDB_WRITER__MAX_BUFFER_SIZE", buffer.as_str()),
            ("SIGNALDB_WRITER__FLUSH_MAX_SIZE", "4MiB"),
            ("SIGNALDB_ACCEPTOR__MAX_IN_FLIGHT", in_flight.as_str()),
            ("SIGNALDB_ACCEPTOR__MAX_REQUEST_SIZE", "4MiB"),
            ("SIGNALDB_ACCEPTOR__MAX_PENDING", pending.as_str()),
            ("SIGNALDB_ACCEPTOR__MAX_DELIVERING", delivering.as_str()),
            ("SIGNALDB_ACCEPTOR__MAX_CONVERTED_PENDING", converted.as_str()),
            // Compaction runs all along, within the same bound.
            ("SIGNALDB_COMPACTOR__INTERVAL", "2s"),
            ("SIGNALDB_COMPACTOR__MIN_FILES", "2"),
        ],
    );
    let pid = proc.child.id();
    let endpoint = format!("http://{}", proc.addr("otlp_grpc"));
    let api = format!("http://{}", proc.addr("router_http"));

    // What the process holds before the load: its code, runtimes, catalog.
    let mut client = TraceServiceClient::connect(endpoint.clone()).await.unwrap();
    let mut factory = signaldb::loadgen::RequestFactory::new(99, 10, 10);
    client.export(factory.request(500)).await.unwrap();
    wait_acceptor_wal_delivered(&proc.addr("admin")).await;
    let base = rss(pid, "VmRSS:");

    // Ten times the writer's bound, as the writer holds it (Arrow bytes),
    // from four clients; overload answers are retried, as SDKs do.
    let target = 10 * BUFFER;
    let per_request = {
        let sample = factory.request(500);
        signaldb_schema::data_bytes(&signaldb_schema::traces::otlp_to_arrow(&sample.resource_spans).unwrap())
    };
    let requests = target.div_ceil(per_request);
    let started = Instant::now();
    let mut clients = Vec::new();
    for c in 0..4u64 {
        let endpoint = endpoint.clone();
        clients.push(tokio::spawn(async move {
            let mut client = TraceServiceClient::connect(endpoint).await.unwrap();
            let mut factory = signaldb::loadgen::RequestFactory::new(c + 1, 10, 10);
            let mut last = None;
            for _ in (c as usize..requests).step_by(4) {
                let request = factory.request(500);
                let id = request.resource_spans[0].scope_spans[0].spans[0].trace_id.clone();
                loop {
                    match client.export(request.clone()).await {
                        Ok(_) => break,
                        Err(s) if matches!(s.code(), tonic::Code::ResourceExhausted | tonic::Code::Unavailable) => {
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                        Err(s) => panic!("export failed: {s:?}"),
                    }
                }
                last = Some(id);
            }
            last
        }));
    }
    let mut last_ids = Vec::new();
    for c in clients {
        last_ids.extend(c.await.unwrap());
    }
    // Everything acknowledged becomes readable.
    let http = reqwest::Client::new();
    for id in &last_ids {
        let url = format!("{api}/api/traces/{}", hex::encode(id));
        wait_until_async("the last traces readable by id", Duration::from_secs(120), || {
            let req = http.get(&url).send();
            async move { req.await.is_ok_and(|r| r.status().as_u16() == 200) }
        })
        .await;
    }
    let peak = rss(pid, "VmHWM:");
    let bound = base + BUFFER + PENDING + CONVERTED + 3 * (IN_FLIGHT + DELIVERING) + SLACK;
    eprintln!(
        "{} MiB of spans in {:.1} s: RSS {} MiB at rest, peak {} MiB, bound {} MiB",
        requests * per_request / MIB,
        started.elapsed().as_secs_f64(),
        base / MIB,
        peak / MIB,
        bound / MIB
    );
    assert!(
        peak <= bound,
        "peak RSS {} MiB over the bound of {} MiB ({} MiB at rest, writer buffer {}, pending {}, converted {}, \
         3 x (in flight {} + delivering {}), slack {})",
        peak / MIB,
        bound / MIB,
        base / MIB,
        BUFFER / MIB,
        PENDING / MIB,
        CONVERTED / MIB,
        IN_FLIGHT / MIB,
        DELIVERING / MIB,
        SLACK / MIB
    );
    proc.terminate();
}
