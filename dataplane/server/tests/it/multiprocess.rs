//! Separate `signaldb acceptor` and `signaldb writer` processes sharing a
//! PostgreSQL catalog, the writer storing into a real S3 API server: the SDK
//! round trip, then `kill -9` of each role in turn under load.

use std::time::Duration;

use opentelemetry_otlp::{WithExportConfig, WithTonicConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SdkTracerProvider;

use crate::common::*;
use crate::otel_sdk::{check, emit};

pub(crate) fn required_env(name: &str) -> String {
    signaldb::install_crypto_provider();
    std::env::var(name).unwrap_or_else(|_| {
        panic!(
            "{name} is not set. This test needs PostgreSQL and an S3 API server; `scripts/test.sh` starts both \
             (scripts/start-postgres.sh and scripts/start-s3.sh) and sets SIGNALDB_TEST_POSTGRES_URL and \
             SIGNALDB_TEST_S3_ENDPOINT."
        )
    })
}

/// `url` (of the test PostgreSQL) for a schema of its own, `signaldb_{run}`:
/// processes of two tests running at once must not see each other's
/// services in the catalog.
pub(crate) async fn fresh_catalog(url: &str, run: &str) -> String {
    sqlx::any::install_default_drivers();
    let admin = sqlx::any::AnyPoolOptions::new()
        .max_connections(1)
        .connect(url)
        .await
        .unwrap();
    let schema = format!("signaldb_{run}");
    sqlx::query(&format!("CREATE SCHEMA {schema}"))
        .execute(&admin)
        .await
        .unwrap();
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}options=-c%20search_path%3D{schema}")
}

/// The `--set` values that point a process at the test S3 API server.
pub(crate) fn s3_settings(s3: &str) -> Vec<String> {
    vec![
        format!("storage.s3.endpoint={s3}"),
        "storage.s3.path_style=true".into(),
        "storage.s3.allow_http=true".into(),
        "storage.s3.region=us-east-1".into(),
        "storage.s3.access_key_id=test".into(),
        "storage.s3.secret_access_key=test".into(),
    ]
}

/// A run id for names, and a new bucket `{prefix}-{run}` on the S3 API
/// server at `s3`.
pub(crate) async fn new_bucket(s3: &str, prefix: &str) -> (String, String) {
    let run = uuid::Uuid::new_v4().simple().to_string()[..10].to_owned();
    let bucket = format!("{prefix}-{run}");
    let resp = reqwest::Client::new()
        .put(format!("{s3}/{bucket}"))
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success(), "creating bucket: {}", resp.status());
    (run, bucket)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acceptor_and_writer_processes_on_postgres_and_s3() {
    let pg = required_env("SIGNALDB_TEST_POSTGRES_URL");
    let s3 = required_env("SIGNALDB_TEST_S3_ENDPOINT");
    let (run, bucket) = new_bucket(&s3, "sdb-it").await;
    let pg = fresh_catalog(&pg, &run).await;
    let tenant = format!("mp-{run}");

    let dir = tempfile::tempdir().unwrap();
    let wdir = dir.path().join("writer").to_str().unwrap().to_owned();
    let adir = dir.path().join("acceptor").to_str().unwrap().to_owned();
    let storage = format!("s3://{bucket}/signaldb");
    let (wid, aid) = (format!("w-{run}"), format!("a-{run}"));
    let mut s3_settings = s3_settings(&s3);
    s3_settings.extend([
        "writer.flush_max_age=300ms".into(),
        "discovery.heartbeat_interval=200ms".into(),
    ]);
    let mut writer_args: Vec<&str> = vec![
        "writer",
        "--data-dir",
        &wdir,
        "--node-id",
        &wid,
        "--catalog-url",
        &pg,
        "--storage-url",
        &storage,
        "--flight-addr",
        "127.0.0.1:0",
        "--admin-addr",
        "127.0.0.1:0",
    ];
    for s in &s3_settings {
        writer_args.extend(["--set", s.as_str()]);
    }
    let acceptor_args: Vec<&str> = vec![
        "acceptor",
        "--data-dir",
        &adir,
        "--node-id",
        &aid,
        "--catalog-url",
        &pg,
        "--otlp-grpc-addr",
        "127.0.0.1:0",
        "--otlp-http-addr",
        "127.0.0.1:0",
        "--admin-addr",
        "127.0.0.1:0",
        "--set",
        "discovery.heartbeat_interval=200ms",
    ];
    let mut writer = Proc::spawn(&writer_args, &[]);
    let mut acceptor = Proc::spawn(&acceptor_args, &[]);

    // 1. The real SDK exporter, through both processes.
    let grpc = format!("http://{}", acceptor.addr("otlp_grpc"));
    let t = tenant.clone();
    let sent = tokio::task::spawn_blocking(move || {
        let mut md = tonic::metadata::MetadataMap::new();
        md.insert("x-scope-orgid", t.parse().unwrap());
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .with_endpoint(grpc)
            .with_metadata(md)
            .build()
            .unwrap();
        let provider = SdkTracerProvider::builder()
            .with_simple_exporter(exporter)
            .with_resource(Resource::builder().with_service_name("mp-svc").build())
            .build();
        let sent = emit(&provider);
        provider.shutdown().unwrap();
        sent
    })
    .await
    .unwrap();

    // 2. Load, and kill -9 each role in turn.
    let loader = Loader::start(acceptor.addr("otlp_grpc"), 2, Some(tenant.clone()));
    tokio::time::sleep(Duration::from_millis(800)).await;
    writer.kill9();
    tokio::time::sleep(Duration::from_millis(300)).await;
    writer = Proc::spawn(&writer_args, &[]);
    tokio::time::sleep(Duration::from_millis(800)).await;
    acceptor.kill9();
    acceptor = Proc::spawn(&acceptor_args, &[]);
    loader.set_endpoint(acceptor.addr("otlp_grpc"));
    tokio::time::sleep(Duration::from_millis(800)).await;
    let mut acked = loader.stop().await;
    assert!(acked.len() > 200, "the load acknowledged only {} spans", acked.len());

    // Let the acceptor hand everything over, then stop both cleanly.
    wait_acceptor_wal_delivered(&acceptor.addr("admin")).await;
    acceptor.terminate();
    writer.terminate();

    let mut config = signaldb_config::Config::default();
    config.storage.url = Some(storage.clone());
    config.storage.s3 = signaldb_config::S3Config {
        endpoint: Some(s3.clone()),
        region: Some("us-east-1".into()),
        access_key_id: Some("test".into()),
        secret_access_key: Some("test".into()),
        path_style: true,
        allow_http: true,
    };
    let store = signaldb::storage::open(&config).unwrap();
    let stored = catalog_spans(&pg, &store, &tenant).await;
    check(&stored, &sent, "mp-svc");
    for c in [&sent.root, &sent.child] {
        acked.insert((c.trace_id().to_bytes().to_vec(), c.span_id().to_bytes().to_vec()));
    }
    assert_exactly_once(&acked, &stored);
}
