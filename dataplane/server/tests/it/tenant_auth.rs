//! Tenants authenticated by API keys (`tenancy.api_keys`), one case per
//! row, over real sockets against the all-in-one server: every listener a
//! client reaches (OTLP gRPC and HTTP, the Tempo API, Flight SQL) refuses a
//! missing, malformed, unknown or revoked key (401 / UNAUTHENTICATED) and a
//! key used for another tenant (403 / PERMISSION_DENIED), while each key's
//! own requests are stored and read back, and nothing acknowledged is lost.

use std::time::Duration;

use arrow_flight::sql::client::FlightSqlServiceClient;
use base64::Engine as _;
use futures::TryStreamExt;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use prost::Message;
use signaldb::manage::{Manage, run};

use crate::common::*;

/// Exports over gRPC with the given metadata; the status code.
async fn grpc_export(
    grpc: &mut TraceServiceClient<tonic::transport::Channel>,
    req: ExportTraceServiceRequest,
    metadata: &[(&'static str, &str)],
) -> tonic::Code {
    let mut r = tonic::Request::new(req);
    for (k, v) in metadata {
        r.metadata_mut().insert(*k, v.parse().unwrap());
    }
    match grpc.export(r).await {
        Ok(_) => tonic::Code::Ok,
        Err(s) => s.code(),
    }
}

/// A request with the given headers; the status and body text.
async fn send(req: reqwest::RequestBuilder, headers: &[(&str, &str)]) -> (u16, String) {
    let mut req = req;
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let body = resp.bytes().await.unwrap();
    let text = signaldb::proto::RpcStatus::decode(body.clone())
        .ok()
        .filter(|s| !s.message.is_empty())
        .map(|s| s.message)
        .unwrap_or_else(|| String::from_utf8_lossy(&body).into_owned());
    (status, text)
}

/// Counts the caller's spans over Flight SQL; the error's code otherwise.
async fn sql_spans(client: &mut FlightSqlServiceClient<tonic::transport::Channel>) -> Result<i64, tonic::Code> {
    let code = |e: arrow_flight::error::FlightError| match e {
        arrow_flight::error::FlightError::Tonic(s) => s.code(),
        _ => tonic::Code::Unknown,
    };
    let info = client
        .execute("SELECT count(*) FROM spans".to_owned(), None)
        .await
        .map_err(code)?;
    let ticket = info.endpoint[0].ticket.clone().unwrap();
    let batches: Vec<arrow_array::RecordBatch> = client
        .do_get(ticket)
        .await
        .map_err(code)?
        .try_collect()
        .await
        .map_err(code)?;
    let counts = batches[0]
        .column(0)
        .as_any()
        .downcast_ref::<arrow_array::Int64Array>()
        .unwrap();
    Ok(counts.value(0))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_keys_decide_the_tenant_on_every_listener() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    config.tenancy.api_keys = true;
    config.tenancy.api_key_cache_ttl = Duration::from_millis(300);
    // Keys are made as `signaldb keys create` makes them, in the same catalog.
    let key = |tenant: &str| {
        let config = config.clone();
        let tenant = tenant.to_owned();
        async move {
            let out = run(
                &config,
                Manage::CreateKey {
                    tenant,
                    name: "test".into(),
                },
            )
            .await
            .unwrap();
            out.trim().to_owned()
        }
    };
    let running = start_all(config.clone()).await;
    let (acme, beta, revoked) = (key("acme").await, key("beta").await, key("acme").await);
    let e = running.endpoints.clone();
    let api = format!("http://{}", e.router_http.unwrap());
    let otlp = format!("http://{}/v1/traces", e.otlp_http.unwrap());
    let sql = format!("http://{}", e.router_flight_sql.unwrap());
    let http = reqwest::Client::new();
    let mut grpc = TraceServiceClient::connect(format!("http://{}", e.otlp_grpc.unwrap()))
        .await
        .unwrap();
    let bearer = |k: &str| format!("Bearer {k}");
    let (acme_auth, beta_auth, revoked_auth) = (bearer(&acme), bearer(&beta), bearer(&revoked));

    // Acme's trace, sent with acme's key over gRPC, and one over HTTP.
    let stored = request(41, 1, 3);
    let trace = hex::encode(&stored.resource_spans[0].scope_spans[0].spans[0].trace_id);
    assert_eq!(
        grpc_export(&mut grpc, stored.clone(), &[("authorization", &acme_auth)]).await,
        tonic::Code::Ok
    );
    let over_http = request(42, 1, 2);
    let http_trace = hex::encode(&over_http.resource_spans[0].scope_spans[0].spans[0].trace_id);
    let post = || {
        http.post(&otlp)
            .header("content-type", "application/x-protobuf")
            .body(over_http.encode_to_vec())
    };
    assert_eq!(send(post(), &[("authorization", &acme_auth)]).await.0, 200);
    // Read back with acme's key (and with its own org id), as soon as stored.
    let by_id = |id: &str| http.get(format!("{api}/api/traces/{id}"));
    wait_until_async("acme's traces readable", Duration::from_secs(10), || async {
        send(by_id(&trace), &[("authorization", &acme_auth)]).await.0 == 200
            && send(by_id(&http_trace), &[("authorization", &acme_auth)]).await.0 == 200
    })
    .await;
    assert_eq!(
        send(
            by_id(&trace),
            &[("authorization", &acme_auth), ("x-scope-orgid", "acme")]
        )
        .await
        .0,
        200
    );

    let basic = |k: &str| {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("user:{k}"))
        )
    };
    let acme_basic = basic(&acme);
    // The last digit of acme's secret changed.
    let forged = {
        let (head, last) = acme_auth.split_at(acme_auth.len() - 1);
        format!("{head}{}", if last == "0" { "1" } else { "0" })
    };
    let search = || http.get(format!("{api}/api/search?q={}", urlencode("{}")));
    let key_required = "an API key is required: send Authorization: Bearer <key>";
    let forbidden = "this API key acts as tenant acme; X-Scope-OrgID beta is not allowed";

    // Tempo API and OTLP/HTTP rows: (case, request, headers, status, message).
    type Build<'a> = Box<dyn Fn() -> reqwest::RequestBuilder + 'a>;
    type Row<'a> = (&'a str, Build<'a>, Vec<(&'a str, &'a str)>, u16, &'a str);
    let rows: Vec<Row<'_>> = vec![
        ("tempo: no key", Box::new(search), vec![], 401, key_required),
        (
            "tempo: spoofed X-Scope-OrgID, no key",
            Box::new(|| by_id(&trace)),
            vec![("x-scope-orgid", "acme")],
            401,
            key_required,
        ),
        (
            "tempo: acme's key with X-Scope-OrgID beta",
            Box::new(|| by_id(&trace)),
            vec![("authorization", &acme_auth), ("x-scope-orgid", "beta")],
            403,
            forbidden,
        ),
        (
            "tempo: an unknown key",
            Box::new(search),
            vec![("authorization", "Bearer sdb_0123456789abcdef_00")],
            401,
            "invalid API key",
        ),
        (
            "tempo: acme's key id with a forged secret",
            Box::new(search),
            vec![("authorization", &forged)],
            401,
            "invalid API key",
        ),
        (
            "tempo: not bearer or basic",
            Box::new(search),
            vec![("authorization", "Token abc")],
            401,
            "Authorization must be Bearer <API key> (or basic auth with the key as the password)",
        ),
        (
            "tempo: beta's key reads acme's trace",
            Box::new(|| by_id(&trace)),
            vec![("authorization", &beta_auth)],
            404,
            "",
        ),
        (
            "tempo: beta's key lists acme's tags",
            Box::new(|| http.get(format!("{api}/api/v2/search/tag/resource.service.name/values"))),
            vec![("authorization", &beta_auth)],
            200,
            r#"{"tagValues":[],"metrics":{}}"#,
        ),
        (
            "tempo: basic auth with acme's key",
            Box::new(|| by_id(&trace)),
            vec![("authorization", &acme_basic)],
            200,
            "",
        ),
        (
            "tempo: probes need no key",
            Box::new(|| http.get(format!("{api}/ready"))),
            vec![],
            200,
            "ready\n",
        ),
        ("otlp http: no key", Box::new(post), vec![], 401, key_required),
        (
            "otlp http: spoofed X-Scope-OrgID, no key",
            Box::new(post),
            vec![("x-scope-orgid", "beta")],
            401,
            key_required,
        ),
        (
            "otlp http: acme's key with X-Scope-OrgID beta",
            Box::new(post),
            vec![("authorization", &acme_auth), ("x-scope-orgid", "beta")],
            403,
            forbidden,
        ),
        (
            "otlp http: an unknown key",
            Box::new(post),
            vec![("authorization", "Bearer sdb_0123456789abcdef_00")],
            401,
            "invalid API key",
        ),
    ];
    for (case, build, headers, status, message) in &rows {
        let (got, text) = send(build(), headers).await;
        assert_eq!(got, *status, "{case}: {text}");
        if !message.is_empty() {
            assert_eq!(text, *message, "{case}");
        }
    }

    // OTLP/gRPC rows.
    type GrpcRow<'a> = (&'a str, Vec<(&'static str, &'a str)>, tonic::Code);
    let grpc_rows: Vec<GrpcRow<'_>> = vec![
        ("otlp grpc: no key", vec![], tonic::Code::Unauthenticated),
        (
            "otlp grpc: spoofed x-scope-orgid, no key",
            vec![("x-scope-orgid", "acme")],
            tonic::Code::Unauthenticated,
        ),
        (
            "otlp grpc: acme's key with x-scope-orgid beta",
            vec![("authorization", &acme_auth), ("x-scope-orgid", "beta")],
            tonic::Code::PermissionDenied,
        ),
        (
            "otlp grpc: an unknown key",
            vec![("authorization", "Bearer sdb_0123456789abcdef_00")],
            tonic::Code::Unauthenticated,
        ),
        (
            "otlp grpc: beta's own key",
            vec![("authorization", &beta_auth)],
            tonic::Code::Ok,
        ),
    ];
    for (case, metadata, code) in grpc_rows {
        assert_eq!(
            grpc_export(&mut grpc, request(43, 1, 1), &metadata).await,
            code,
            "{case}"
        );
    }

    // Flight SQL rows: no key; another tenant's org id; the handshake with
    // basic auth (as ADBC and JDBC send it) then bearer; each tenant counts
    // its own spans only.
    let channel = tonic::transport::Endpoint::from_shared(sql.clone())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut anonymous = FlightSqlServiceClient::new(channel.clone());
    assert_eq!(
        sql_spans(&mut anonymous).await,
        Err(tonic::Code::Unauthenticated),
        "flight sql: no key"
    );
    anonymous.set_header("x-scope-orgid", "acme");
    assert_eq!(
        sql_spans(&mut anonymous).await,
        Err(tonic::Code::Unauthenticated),
        "flight sql: spoofed x-scope-orgid, no key"
    );
    // Not even the fixed catalog, schema and table names without a key.
    let code = |e: arrow_flight::error::FlightError| match e {
        arrow_flight::error::FlightError::Tonic(s) => s.code(),
        _ => tonic::Code::Unknown,
    };
    let tables = arrow_flight::sql::CommandGetTables {
        include_schema: false,
        ..Default::default()
    };
    assert_eq!(
        anonymous.get_catalogs().await.map_err(code).err(),
        Some(tonic::Code::Unauthenticated),
        "flight sql: catalogs without a key"
    );
    assert_eq!(
        anonymous.get_tables(tables.clone()).await.map_err(code).err(),
        Some(tonic::Code::Unauthenticated),
        "flight sql: tables without a key"
    );
    let mut acme_sql = FlightSqlServiceClient::new(channel.clone());
    acme_sql.handshake("anyone", &acme).await.unwrap();
    assert_eq!(sql_spans(&mut acme_sql).await, Ok(5), "flight sql: acme's 3 + 2 spans");
    let info = acme_sql.get_tables(tables).await.map_err(code).unwrap();
    let ticket = info.endpoint[0].ticket.clone().unwrap();
    let listed: Vec<arrow_array::RecordBatch> = acme_sql.do_get(ticket).await.unwrap().try_collect().await.unwrap();
    assert_eq!(
        listed.iter().map(|b| b.num_rows()).sum::<usize>(),
        1,
        "flight sql: acme sees the spans table"
    );
    acme_sql.set_header("x-scope-orgid", "beta");
    assert_eq!(
        sql_spans(&mut acme_sql).await,
        Err(tonic::Code::PermissionDenied),
        "flight sql: acme's key with x-scope-orgid beta"
    );
    let mut beta_sql = FlightSqlServiceClient::new(channel.clone());
    beta_sql.set_token(beta.clone());
    wait_until_async("beta's span readable", Duration::from_secs(10), || {
        let mut c = beta_sql.clone();
        async move { sql_spans(&mut c).await == Ok(1) }
    })
    .await;
    let mut wrong = FlightSqlServiceClient::new(channel);
    assert!(
        wrong.handshake("anyone", "sdb_0123456789abcdef_00").await.is_err(),
        "flight sql: a handshake with an unknown key"
    );

    // A revoked key works until the cache's TTL passes, then never again,
    // on every listener.
    assert_eq!(send(search(), &[("authorization", &revoked_auth)]).await.0, 200);
    run(&config, Manage::RevokeKey(revoked[4..20].to_owned()))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    let revoked_message = "this API key has been revoked";
    assert_eq!(
        send(search(), &[("authorization", &revoked_auth)]).await,
        (401, revoked_message.to_owned()),
        "tempo: a revoked key"
    );
    assert_eq!(
        send(post(), &[("authorization", &revoked_auth)]).await,
        (401, revoked_message.to_owned()),
        "otlp http: a revoked key"
    );
    assert_eq!(
        grpc_export(&mut grpc, request(44, 1, 1), &[("authorization", &revoked_auth)]).await,
        tonic::Code::Unauthenticated,
        "otlp grpc: a revoked key"
    );

    // Nothing acknowledged was lost, and the refusals stored nothing.
    let (status, body) = send(by_id(&trace), &[("authorization", &acme_auth)]).await;
    assert_eq!(status, 200);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let spans: usize = v["batches"][0]["scopeSpans"][0]["spans"].as_array().unwrap().len();
    assert_eq!(spans, 3);
    assert_eq!(sql_spans(&mut acme_sql.clone()).await.ok(), None, "still beta's org id");
    let mut acme_again = FlightSqlServiceClient::new(
        tonic::transport::Endpoint::from_shared(sql)
            .unwrap()
            .connect()
            .await
            .unwrap(),
    );
    acme_again.set_token(acme.clone());
    assert_eq!(sql_spans(&mut acme_again).await, Ok(5), "acme's spans, and only those");
}
