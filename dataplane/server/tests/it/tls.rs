//! TLS on every listener a client reaches (OTLP gRPC and HTTP, the Tempo
//! API, Flight SQL), over real sockets: data sent over TLS is read back
//! over TLS, plain TCP gets nothing, a renewed certificate is presented
//! without a restart, a broken renewal keeps the previous one, and a client
//! that never finishes its handshake holds up nobody.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use futures::TryStreamExt;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use prost::Message;
use rustls::pki_types::{CertificateDer, ServerName};

use crate::common::*;

/// A self-signed certificate for `localhost` and `127.0.0.1`: its DER, and
/// PEM of it and its key.
struct Cert {
    der: CertificateDer<'static>,
    cert_pem: String,
    key_pem: String,
}

fn cert() -> Cert {
    let made = rcgen::generate_simple_self_signed(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).unwrap();
    Cert {
        der: made.cert.der().clone(),
        cert_pem: made.cert.pem(),
        key_pem: made.key_pair.serialize_pem(),
    }
}

fn install(dir: &Path, cert: &Cert) {
    // The key first: a reader may see the new key with the old certificate
    // for a moment, which must not stop the old pair from being presented.
    std::fs::write(dir.join("tls.key"), &cert.key_pem).unwrap();
    std::fs::write(dir.join("tls.crt"), &cert.cert_pem).unwrap();
}

/// A client configuration trusting `certs`, speaking `alpn`.
fn client_config(certs: &[&Cert], alpn: &[&[u8]]) -> rustls::ClientConfig {
    let mut roots = rustls::RootCertStore::empty();
    for c in certs {
        roots.add(c.der.clone()).unwrap();
    }
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    config
}

/// Completes a handshake with `addr`; the certificate it presented.
async fn presented(addr: std::net::SocketAddr, config: &rustls::ClientConfig) -> CertificateDer<'static> {
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config.clone()))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap();
    tls.get_ref().1.peer_certificates().unwrap()[0].clone().into_owned()
}

/// A gRPC channel to `addr` over TLS.
async fn grpc_channel(addr: std::net::SocketAddr, config: rustls::ClientConfig) -> tonic::transport::Channel {
    let connector = Arc::new(tokio_rustls::TlsConnector::from(Arc::new(config)));
    tonic::transport::Endpoint::from_static("http://localhost")
        .connect_with_connector(tower::service_fn(move |_: http::Uri| {
            let connector = Arc::clone(&connector);
            async move {
                let tcp = tokio::net::TcpStream::connect(addr).await?;
                let tls = connector
                    .connect(ServerName::try_from("localhost").map_err(std::io::Error::other)?, tcp)
                    .await?;
                Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(tls))
            }
        }))
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_client_listener_speaks_tls_and_picks_up_renewals() {
    let dir = tempfile::tempdir().unwrap();
    let certs = tempfile::tempdir().unwrap();
    let (first, second) = (cert(), cert());
    install(certs.path(), &first);
    let mut config = test_config(dir.path());
    config.tls.cert_file = Some(certs.path().join("tls.crt"));
    config.tls.key_file = Some(certs.path().join("tls.key"));
    config.tls.reload_interval = Duration::from_millis(100);
    let running = start_all(config).await;
    let e = running.endpoints.clone();
    let (grpc_addr, otlp_addr) = (e.otlp_grpc.unwrap(), e.otlp_http.unwrap());
    let (api_addr, sql_addr) = (e.router_http.unwrap(), e.router_flight_sql.unwrap());
    let trusting_both = client_config(&[&first, &second], &[b"h2"]);

    // OTLP over gRPC and over HTTP, both on TLS.
    let sent = request(61, 1, 3);
    let trace = hex::encode(&sent.resource_spans[0].scope_spans[0].spans[0].trace_id);
    let mut grpc = TraceServiceClient::new(grpc_channel(grpc_addr, trusting_both.clone()).await);
    grpc.export(sent).await.unwrap();
    let https = reqwest::Client::builder()
        .tls_backend_preconfigured(client_config(&[&first, &second], &[b"http/1.1"]))
        .build()
        .unwrap();
    let over_http = request(62, 1, 2);
    let resp = https
        .post(format!("https://localhost:{}/v1/traces", otlp_addr.port()))
        .header("content-type", "application/x-protobuf")
        .body(over_http.encode_to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);

    // Read back over TLS: the Tempo API and Flight SQL.
    let api = format!("https://localhost:{}", api_addr.port());
    wait_until_async("the trace readable over https", Duration::from_secs(10), || async {
        let r = https.get(format!("{api}/api/traces/{trace}")).send().await.unwrap();
        r.status() == 200
    })
    .await;
    let sql =
        arrow_flight::sql::client::FlightSqlServiceClient::new(grpc_channel(sql_addr, trusting_both.clone()).await);
    let count = || {
        let mut sql = sql.clone();
        async move {
            let info = sql
                .execute("SELECT count(*) FROM spans".to_owned(), None)
                .await
                .unwrap();
            let ticket = info.endpoint[0].ticket.clone().unwrap();
            let batches: Vec<arrow_array::RecordBatch> = sql.do_get(ticket).await.unwrap().try_collect().await.unwrap();
            batches[0]
                .column(0)
                .as_any()
                .downcast_ref::<arrow_array::Int64Array>()
                .unwrap()
                .value(0)
        }
    };
    wait_until_async("5 spans over Flight SQL on TLS", Duration::from_secs(10), || async {
        count().await == 5
    })
    .await;

    // Plain TCP gets no answer on any of them.
    let plain = reqwest::Client::new();
    for addr in [otlp_addr, api_addr] {
        assert!(
            plain.get(format!("http://{addr}/ready")).send().await.is_err(),
            "plain HTTP to {addr}"
        );
    }
    let plain_grpc = TraceServiceClient::connect(format!("http://{grpc_addr}")).await;
    let refused = match plain_grpc {
        Err(_) => true,
        Ok(mut c) => c.export(request(63, 1, 1)).await.is_err(),
    };
    assert!(refused, "plain gRPC");

    // A client that opens a connection and never says hello holds up nobody.
    let _silent = tokio::net::TcpStream::connect(api_addr).await.unwrap();
    assert_eq!(presented(api_addr, &trusting_both).await, first.der);

    // A renewal is presented to the connections that follow, on every listener.
    install(certs.path(), &second);
    wait_until_async("the renewed certificate", Duration::from_secs(10), || async {
        presented(api_addr, &trusting_both).await == second.der
    })
    .await;
    for addr in [grpc_addr, otlp_addr, sql_addr] {
        assert_eq!(presented(addr, &trusting_both).await, second.der, "{addr}");
    }
    // A broken renewal is not presented: the previous certificate stays.
    std::fs::write(certs.path().join("tls.crt"), "not a certificate").unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(presented(api_addr, &trusting_both).await, second.der);
    // Clients that trust only the new certificate are served.
    let new_only = reqwest::Client::builder()
        .tls_backend_preconfigured(client_config(&[&second], &[b"http/1.1"]))
        .build()
        .unwrap();
    let r = new_only.get(format!("{api}/api/traces/{trace}")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(count().await, 5);
}

#[tokio::test]
async fn a_missing_or_mismatched_certificate_stops_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (cert(), cert());
    std::fs::write(dir.path().join("a.crt"), &a.cert_pem).unwrap();
    std::fs::write(dir.path().join("b.key"), &b.key_pem).unwrap();
    let mut config = test_config(dir.path());
    config.tls.cert_file = Some(dir.path().join("a.crt"));
    config.tls.key_file = Some(dir.path().join("b.key"));
    let err = signaldb::server::start(config.clone(), signaldb::server::Roles::ALL)
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("does not match the key"), "{err}");
    config.tls.key_file = Some(dir.path().join("missing.key"));
    let err = signaldb::server::start(config, signaldb::server::Roles::ALL)
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("missing.key"), "{err}");
}
