#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The Tempo router over real HTTP, against a fake backend holding the three
//! golden traces, compared with what Grafana Tempo 3.0.3 answered.

mod fixtures;

use std::io::Read as _;
use std::sync::{Arc, Mutex};

use fixtures::{T1, T2, T3};
use futures::StreamExt as _;
use prost::Message as _;
use signaldb_config::{TenancyConfig, TenantId};
use signaldb_tempo::{
    BackendError, BackendStream, ScopedTags, SearchItem, SearchRequest, SearchResult, TagNamesRequest,
    TagValuesRequest, TempoBackend, TraceAnswer, TypedValue, tempopb,
};

/// What the fake was asked.
#[derive(Debug, Clone, PartialEq)]
enum Call {
    Trace([u8; 16], Option<(u64, u64)>),
    Search(SearchRequest),
    TagNames(TagNamesRequest),
    TagValues(TagValuesRequest),
}

#[derive(Default)]
struct Fake {
    calls: Mutex<Vec<(String, Call)>>,
}

impl Fake {
    fn record(&self, tenant: &TenantId, call: Call) {
        self.calls.lock().unwrap().push((tenant.as_str().to_owned(), call));
    }

    fn last(&self) -> (String, Call) {
        self.calls.lock().unwrap().last().cloned().unwrap()
    }

    fn search_result(&self, tenant: &TenantId, req: SearchRequest) -> Result<SearchResult, BackendError> {
        self.record(tenant, Call::Search(req.clone()));
        let q = req.q.as_deref().unwrap_or("");
        if q.starts_with("{ this") {
            return Err(BackendError::BadRequest(
                "invalid TraceQL query: parse error at line 1, col 3: unknown identifier: this".into(),
            ));
        }
        Ok(match q {
            "{status=error}" => fixtures::search_status_error(),
            "{}" => fixtures::search_all_limit(),
            r#"{name="db.query"} | select(span.db.system, span.db.statement)"# => fixtures::search_name_select(),
            "" if req.tags == [("service.name".to_owned(), "golden-grpc-svc".to_owned())] => {
                fixtures::search_tags_service()
            }
            _ => SearchResult::default(),
        })
    }
}

#[async_trait::async_trait]
impl TempoBackend for Fake {
    async fn trace_by_id(
        &self,
        tenant: &TenantId,
        trace_id: [u8; 16],
        range: Option<(u64, u64)>,
    ) -> Result<TraceAnswer, BackendError> {
        self.record(tenant, Call::Trace(trace_id, range));
        if hex::encode(trace_id) == PARTIAL {
            return Ok(TraceAnswer {
                pieces: futures::stream::iter([Ok(fixtures::trace1())]).boxed(),
                partial: Some("writer \"w-2\" could not be read".into()),
            });
        }
        let pieces = match hex::encode(trace_id).as_str() {
            T1 => vec![Ok(fixtures::trace1())],
            T2 => vec![Ok(fixtures::trace2())],
            T3 => vec![Ok(fixtures::trace3())],
            "000000000000000000000000000000aa" => return Err(BackendError::Unavailable("store is down".into())),
            "000000000000000000000000000000bb" => return Err(BackendError::Internal("boom".into())),
            // T1's batches three times, in pieces, with empty pieces between.
            PIECES => (0..3).flat_map(|_| [Ok(vec![]), Ok(fixtures::trace1())]).collect(),
            // A large trace whose backend fails once it has been sent in part.
            CUT => std::iter::repeat_with(|| Ok(fixtures::trace1()))
                .take(50)
                .chain([Err(BackendError::Internal("querier gone".into()))])
                .collect(),
            _ => vec![],
        };
        Ok(TraceAnswer::complete(futures::stream::iter(pieces).boxed()))
    }

    async fn search(&self, tenant: &TenantId, req: SearchRequest) -> Result<BackendStream<SearchItem>, BackendError> {
        let result = self.search_result(tenant, req)?;
        Ok(futures::stream::iter(result.into_items().map(Ok)).boxed())
    }

    async fn tag_names(&self, tenant: &TenantId, req: TagNamesRequest) -> Result<Vec<ScopedTags>, BackendError> {
        self.record(tenant, Call::TagNames(req.clone()));
        let mut scopes = fixtures::tag_scopes();
        if let Some(scope) = req.scope {
            scopes.retain(|s| s.scope == scope);
        }
        Ok(scopes)
    }

    async fn tag_values(&self, tenant: &TenantId, req: TagValuesRequest) -> Result<Vec<TypedValue>, BackendError> {
        self.record(tenant, Call::TagValues(req.clone()));
        let services = || {
            ["golden-json-svc", "golden-http-svc", "golden-grpc-svc"]
                .into_iter()
                .map(TypedValue::string)
                .collect()
        };
        Ok(match (req.v2, req.tag.as_str()) {
            (false, "service.name") | (true, "resource.service.name") => services(),
            (true, "status") => ["ok", "error", "unset"].into_iter().map(TypedValue::keyword).collect(),
            (true, "span.amount") => vec![TypedValue::float(42.5)],
            _ => vec![],
        })
    }
}

struct Server {
    base: String,
    fake: Arc<Fake>,
    client: reqwest::Client,
}

async fn serve_with(tenancy: TenancyConfig) -> Server {
    let fake = Arc::new(Fake::default());
    let backend: Arc<dyn TempoBackend> = Arc::<Fake>::clone(&fake);
    let app = signaldb_tempo::router(backend, tenancy, fixtures::golden_build_info());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    Server {
        base: format!("http://{addr}"),
        fake,
        client: {
            // The workspace enables rustls without a provider; pick ring.
            let _ = rustls::crypto::ring::default_provider().install_default();
            reqwest::Client::new()
        },
    }
}

async fn serve() -> Server {
    serve_with(TenancyConfig::default()).await
}

struct Reply {
    status: u16,
    headers: http::HeaderMap,
    body: Vec<u8>,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }

    fn text(&self) -> &str {
        std::str::from_utf8(&self.body).unwrap()
    }

    fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap()
    }

    fn assert_text(&self, status: u16, body: &str) {
        assert_eq!((self.status, self.text()), (status, body));
        assert_eq!(self.header("content-type"), Some("text/plain; charset=utf-8"));
    }

    fn assert_json(&self, expected: &[u8]) {
        assert_eq!(self.status, 200, "{}", self.text());
        assert_eq!(self.header("content-type"), Some("application/json"));
        assert_eq!(self.header("vary"), Some("Accept-Encoding"));
        // Same value, and the same bytes: key order, number and string formats.
        assert_eq!(
            self.json(),
            serde_json::from_slice::<serde_json::Value>(expected).unwrap()
        );
        assert_eq!(self.text(), std::str::from_utf8(expected).unwrap());
    }

    fn assert_protobuf(&self) {
        assert_eq!(self.status, 200, "{}", self.text());
        assert_eq!(self.header("content-type"), Some("application/protobuf"));
    }
}

impl Server {
    async fn get_with(&self, path: &str, headers: &[(&str, &str)]) -> Reply {
        let mut req = self.client.get(format!("{}{path}", self.base));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let res = req.send().await.unwrap();
        Reply {
            status: res.status().as_u16(),
            headers: res.headers().clone(),
            body: res.bytes().await.unwrap().to_vec(),
        }
    }

    async fn get(&self, path: &str) -> Reply {
        self.get_with(path, &[]).await
    }

    async fn get_pb(&self, path: &str) -> Reply {
        self.get_with(path, &[("accept", "application/protobuf")]).await
    }
}

/// A trace sent by the backend in pieces.
const PIECES: &str = "000000000000000000000000000000cc";
/// A trace whose backend fails after part of it was sent.
const CUT: &str = "000000000000000000000000000000dd";
/// A trace the backend may not have whole (a writer could not be read).
const PARTIAL: &str = "000000000000000000000000000000ee";

const RANGE: &str = "start=1795567827&end=1795567948";

/// A golden body whose trailing `"metrics":{...}` object is emptied: the
/// backend trait carries no tag or trace-by-id work counters.
fn without_metrics(golden: &[u8]) -> Vec<u8> {
    let text = std::str::from_utf8(golden).unwrap();
    let at = text.rfind("\"metrics\":{").unwrap();
    format!("{}\"metrics\":{{}}}}", &text[..at]).into_bytes()
}

fn gunzip(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(body).read_to_end(&mut out).unwrap();
    out
}

#[tokio::test]
async fn trace_by_id_v1_json_matches_tempo() {
    let srv = serve().await;
    let reply = srv.get(&format!("/api/traces/{T1}?{RANGE}")).await;
    reply.assert_json(include_bytes!("../../testdata/trace_v1_json.body.json"));
    assert_eq!(
        srv.fake.last(),
        (
            "single-tenant".to_owned(),
            Call::Trace(fixtures::id16(T1), Some((1_795_567_827, 1_795_567_948)))
        )
    );

    let t2 = include_bytes!("../../testdata/trace_v1_json_T2.body.json");
    srv.get(&format!("/api/traces/{T2}?{RANGE}")).await.assert_json(t2);
    // Upper case ids name the same trace.
    srv.get(&format!("/api/traces/{}?{RANGE}", T2.to_uppercase()))
        .await
        .assert_json(t2);

    // Short ids are left-padded; without start/end there is no range.
    let short = srv.get("/api/traces/7f3a2c1b9d8e6f50").await;
    let leading = srv.get(&format!("/api/traces/{T3}")).await;
    assert_eq!(short.status, 200);
    assert_eq!(short.body, leading.body);
    assert_eq!(srv.fake.last().1, Call::Trace(fixtures::id16(T3), None));
}

#[tokio::test]
async fn trace_by_id_v1_protobuf_is_byte_identical() {
    let srv = serve().await;
    let reply = srv.get_pb(&format!("/api/traces/{T1}?{RANGE}")).await;
    reply.assert_protobuf();
    assert_eq!(reply.body, include_bytes!("../../testdata/trace_v1_pb.body.pb"));
}

#[tokio::test]
async fn trace_by_id_v2() {
    let srv = serve().await;
    let reply = srv.get(&format!("/api/v2/traces/{T3}?{RANGE}")).await;
    reply.assert_json(&without_metrics(include_bytes!(
        "../../testdata/trace_v2_json_T3.body.json"
    )));

    // v2 JSON is v1's batches under trace.resourceSpans.
    let v1 = srv.get(&format!("/api/traces/{T1}")).await.json();
    let v2 = srv.get(&format!("/api/v2/traces/{T1}")).await.json();
    assert_eq!(v2["trace"]["resourceSpans"], v1["batches"]);
    assert_eq!(v2["metrics"], serde_json::json!({}));

    let reply = srv.get_pb(&format!("/api/v2/traces/{T1}?{RANGE}")).await;
    reply.assert_protobuf();
    let ours = tempopb::TraceByIdResponse::decode(&reply.body[..]).unwrap();
    let golden = tempopb::TraceByIdResponse::decode(&include_bytes!("../../testdata/trace_v2_pb.body.pb")[..]).unwrap();
    assert_eq!(ours.trace, golden.trace);
    assert_eq!(ours.metrics, Some(tempopb::TraceByIdMetrics::default()));
}

#[tokio::test]
async fn trace_by_id_errors_and_not_found() {
    let srv = serve().await;
    let reply = srv.get("/api/traces/not-a-hex-id").await;
    reply.assert_text(
        400,
        "trace IDs can only contain hex characters: invalid character 'n' at position 1",
    );
    assert_eq!(reply.header("vary"), Some("Accept-Encoding"));
    srv.get("/api/v2/traces/zzzz").await.assert_text(
        400,
        "trace IDs can only contain hex characters: invalid character 'z' at position 1",
    );
    srv.get(&format!("/api/traces/{T1}00"))
        .await
        .assert_text(400, "trace IDs can't be larger than 128 bits");
    srv.get(&format!("/api/traces/{T1}?start=x"))
        .await
        .assert_text(400, r#"invalid start: strconv.ParseInt: parsing "x": invalid syntax"#);
    srv.get(&format!("/api/traces/{T1}?start=9&end=3"))
        .await
        .assert_text(400, "http parameter start must be before end. received start=9 end=3");

    // Not found: v1 is a bare 404, v2 an empty trace.
    let missing = "deadbeefdeadbeefdeadbeefdeadbeef";
    let reply = srv.get(&format!("/api/traces/{missing}?{RANGE}")).await;
    assert_eq!((reply.status, reply.body.len()), (404, 0));
    assert_eq!(reply.header("content-type"), None);
    assert_eq!(reply.header("vary"), Some("Accept-Encoding"));
    let reply = srv.get_pb(&format!("/api/traces/{missing}")).await;
    assert_eq!((reply.status, reply.body.len()), (404, 0));
    srv.get(&format!("/api/v2/traces/{missing}?{RANGE}"))
        .await
        .assert_json(br#"{"trace":{},"metrics":{}}"#);
    let reply = srv.get_pb(&format!("/api/v2/traces/{missing}")).await;
    reply.assert_protobuf();
    assert_eq!(reply.body, [0x0a, 0x00, 0x12, 0x00]);

    // Backend failures.
    srv.get("/api/traces/aa").await.assert_text(503, "store is down");
    srv.get("/api/v2/traces/bb").await.assert_text(500, "boom");
}

/// A trace that arrives in pieces is answered as the pieces come, with
/// the same body as the trace whole; one whose backend fails after the
/// answer started is cut off, never answered short.
/// A trace that may lack spans says so: v2 as Tempo does (`status`
/// PARTIAL and a `message`, in JSON and protobuf), v1 in a header; a
/// complete one carries neither.
#[tokio::test]
async fn a_partial_trace_says_so() {
    let srv = serve().await;
    let why = "writer \"w-2\" could not be read";
    let v1 = srv.get(&format!("/api/traces/{PARTIAL}")).await;
    assert_eq!(v1.status, 200);
    assert_eq!(v1.header(signaldb_tempo::PARTIAL_HEADER), Some(why));
    assert!(v1.json()["batches"].as_array().is_some_and(|b| !b.is_empty()));
    let v2 = srv.get(&format!("/api/v2/traces/{PARTIAL}")).await;
    let body = v2.json();
    assert_eq!(body["status"], "PARTIAL");
    assert_eq!(body["message"], why);
    assert!(body["trace"]["resourceSpans"].as_array().is_some_and(|b| !b.is_empty()));
    let pb = srv.get_pb(&format!("/api/v2/traces/{PARTIAL}")).await;
    let msg = tempopb::TraceByIdResponse::decode(&pb.body[..]).unwrap();
    assert_eq!((msg.status, msg.message.as_str()), (1, why));
    assert!(!msg.trace.unwrap().resource_spans.is_empty());

    let complete = srv.get(&format!("/api/v2/traces/{T1}")).await.json();
    assert!(complete.get("status").is_none() && complete.get("message").is_none());
    assert!(
        srv.get(&format!("/api/traces/{T1}"))
            .await
            .header(signaldb_tempo::PARTIAL_HEADER)
            .is_none()
    );
}

#[tokio::test]
async fn traces_are_streamed_in_pieces() {
    let srv = serve().await;
    let whole = srv.get(&format!("/api/traces/{T1}")).await.json();
    let thrice: Vec<serde_json::Value> = (0..3)
        .flat_map(|_| whole["batches"].as_array().unwrap().clone())
        .collect();
    let pieces = srv.get(&format!("/api/traces/{PIECES}")).await;
    assert_eq!(pieces.status, 200);
    assert_eq!(pieces.json(), serde_json::json!({ "batches": thrice }));
    let v2 = srv.get(&format!("/api/v2/traces/{PIECES}")).await;
    assert_eq!(
        v2.json(),
        serde_json::json!({ "trace": { "resourceSpans": thrice }, "metrics": {} })
    );
    // Protobuf pieces concatenate (v1) or merge (v2) into one message.
    let golden = &include_bytes!("../../testdata/trace_v1_pb.body.pb")[..];
    let pb = srv.get_pb(&format!("/api/traces/{PIECES}")).await;
    assert_eq!(pb.body, golden.repeat(3));
    let pb = srv.get_pb(&format!("/api/v2/traces/{PIECES}")).await;
    let merged = tempopb::TraceByIdResponse::decode(&pb.body[..]).unwrap();
    let one = tempopb::Trace::decode(golden).unwrap().resource_spans;
    assert_eq!(
        merged.trace.unwrap().resource_spans,
        [one.clone(), one.clone(), one].concat()
    );
    assert_eq!(merged.metrics, Some(tempopb::TraceByIdMetrics::default()));

    for path in [format!("/api/traces/{CUT}"), format!("/api/v2/traces/{CUT}")] {
        let res = srv.client.get(format!("{}{path}", srv.base)).send().await.unwrap();
        assert_eq!(res.status(), 200, "{path}: the answer started");
        assert!(res.headers().get("content-length").is_none(), "{path}: streamed");
        let body = res.bytes().await;
        assert!(body.is_err(), "{path}: the body is cut off, not ended: {body:?}");
    }
    // The server keeps serving.
    srv.get(&format!("/api/traces/{T1}"))
        .await
        .assert_json(include_bytes!("../../testdata/trace_v1_json.body.json"));
}

#[tokio::test]
async fn search_matches_tempo() {
    let srv = serve().await;
    let reply = srv.get(&format!("/api/search?q=%7Bstatus%3Derror%7D&{RANGE}")).await;
    reply.assert_json(include_bytes!("../../testdata/search_q_error.body.json"));
    let (tenant, call) = srv.fake.last();
    assert_eq!(tenant, "single-tenant");
    assert_eq!(
        call,
        Call::Search(SearchRequest {
            q: Some("{status=error}".into()),
            start: Some(1_795_567_827),
            end: Some(1_795_567_948),
            ..Default::default()
        })
    );
    let reply = srv.get_pb(&format!("/api/search?q=%7Bstatus%3Derror%7D&{RANGE}")).await;
    reply.assert_protobuf();
    assert_eq!(reply.body, include_bytes!("../../testdata/search_q_error_pb.body.pb"));

    let path = format!("/api/search?tags=service.name%3Dgolden-grpc-svc&{RANGE}");
    srv.get(&path)
        .await
        .assert_json(include_bytes!("../../testdata/search_tags_service.body.json"));
    let reply = srv.get_pb(&path).await;
    reply.assert_protobuf();
    assert_eq!(
        reply.body,
        include_bytes!("../../testdata/search_tags_service_pb.body.pb")
    );

    srv.get(&format!("/api/search?q=%7B%7D&limit=2&spss=1&{RANGE}"))
        .await
        .assert_json(include_bytes!("../../testdata/search_q_all_limit.body.json"));
    let Call::Search(req) = srv.fake.last().1 else { panic!() };
    assert_eq!((req.limit, req.spans_per_spanset), (2, 1));

    srv.get(&format!(
        "/api/search?q=%7Bname%3D%22db.query%22%7D%20%7C%20select%28span.db.system%2C%20span.db.statement%29&{RANGE}"
    ))
    .await
    .assert_json(include_bytes!("../../testdata/search_q_name_select.body.json"));

    srv.get("/api/search?q=%7Bresource.service.name%3D%22nope%22%7D")
        .await
        .assert_json(br#"{"traces":[],"metrics":{}}"#);

    // Logfmt tags with quotes, durations.
    srv.get("/api/search?tags=name%3D%22GET%20%2Fapi%2Fusers%22%20http.status_code%3D200&minDuration=100ms&maxDuration=1.5s")
        .await;
    let Call::Search(req) = srv.fake.last().1 else { panic!() };
    assert_eq!(
        req.tags,
        [
            ("name".to_owned(), "GET /api/users".to_owned()),
            ("http.status_code".to_owned(), "200".to_owned())
        ]
    );
    assert_eq!(
        (req.min_duration_nanos, req.max_duration_nanos, req.limit),
        (Some(100_000_000), Some(1_500_000_000), 20)
    );
}

#[tokio::test]
async fn search_errors() {
    let srv = serve().await;
    srv.get(&format!("/api/search?q=%7B%20this%20is%20not%20traceql&{RANGE}"))
        .await
        .assert_text(
            400,
            "invalid TraceQL query: parse error at line 1, col 3: unknown identifier: this",
        );
    srv.get("/api/search?limit=0")
        .await
        .assert_text(400, "invalid limit: must be a positive number");
    srv.get("/api/search?q=%7B%7D&tags=a%3Db")
        .await
        .assert_text(400, "invalid request: can't specify tags and q in the same query");
    srv.get("/api/search?tags=a%3D%22open")
        .await
        .assert_text(400, "invalid tags: unterminated quoted value at pos 8");
    srv.get("/api/search?minDuration=5")
        .await
        .assert_text(400, r#"invalid minDuration: time: missing unit in duration "5""#);
    srv.get("/api/search?start=100&end=50").await.assert_text(
        400,
        "http parameter start must be before end. received start=100 end=50",
    );
}

#[tokio::test]
async fn tag_names() {
    let srv = serve().await;
    let reply = srv.get(&format!("/api/search/tags?{RANGE}")).await;
    reply.assert_json(&without_metrics(include_bytes!("../../testdata/search_tags.body.json")));
    let reply = srv.get_pb(&format!("/api/search/tags?{RANGE}")).await;
    reply.assert_protobuf();
    let ours = tempopb::SearchTagsResponse::decode(&reply.body[..]).unwrap();
    let golden =
        tempopb::SearchTagsResponse::decode(&include_bytes!("../../testdata/search_tags_pb.body.pb")[..]).unwrap();
    assert_eq!(ours.tag_names, golden.tag_names);
    assert_eq!(ours.metrics, Some(tempopb::MetadataMetrics::default()));

    let reply = srv.get("/api/search/tags?scope=span").await;
    let span_only = fixtures::tag_scopes().swap_remove(2).names;
    assert_eq!(reply.json()["tagNames"], serde_json::json!(span_only));
    assert_eq!(
        srv.fake.last().1,
        Call::TagNames(TagNamesRequest {
            scope: Some(signaldb_tempo::TagScope::Span),
            ..Default::default()
        })
    );

    let reply = srv.get(&format!("/api/v2/search/tags?{RANGE}")).await;
    reply.assert_json(&without_metrics(include_bytes!(
        "../../testdata/v2_search_tags.body.json"
    )));
    let reply = srv.get_pb(&format!("/api/v2/search/tags?{RANGE}")).await;
    reply.assert_protobuf();
    let ours = tempopb::SearchTagsV2Response::decode(&reply.body[..]).unwrap();
    let golden =
        tempopb::SearchTagsV2Response::decode(&include_bytes!("../../testdata/v2_search_tags_pb.body.pb")[..]).unwrap();
    let sorted = |r: &tempopb::SearchTagsV2Response| {
        let mut scopes = r.scopes.clone();
        scopes.sort_by(|a, b| a.name.cmp(&b.name));
        scopes
    };
    assert_eq!(sorted(&ours), sorted(&golden));

    srv.get("/api/v2/search/tags?scope=resource&q=%7B%7D")
        .await
        .assert_json(
            br#"{"scopes":[{"name":"resource","tags":["deployment.environment","host.name","k8s.namespace.name","service.instance.id","service.name","service.version","telemetry.sdk.language","telemetry.sdk.name","telemetry.sdk.version"]}],"metrics":{}}"#,
        );
    let Call::TagNames(req) = srv.fake.last().1 else {
        panic!()
    };
    assert_eq!(req.q.as_deref(), Some("{}"));
    srv.get("/api/v2/search/tags?scope=bogus")
        .await
        .assert_text(400, "invalid scope: bogus");
}

#[tokio::test]
async fn tag_values() {
    let srv = serve().await;
    let path = format!("/api/search/tag/service.name/values?{RANGE}");
    srv.get(&path).await.assert_json(&without_metrics(include_bytes!(
        "../../testdata/tag_values_service_name.body.json"
    )));
    let reply = srv.get_pb(&path).await;
    reply.assert_protobuf();
    let ours = tempopb::SearchTagValuesResponse::decode(&reply.body[..]).unwrap();
    let golden = tempopb::SearchTagValuesResponse::decode(
        &include_bytes!("../../testdata/tag_values_service_name_pb.body.pb")[..],
    )
    .unwrap();
    assert_eq!(ours.tag_values, golden.tag_values);
    assert_eq!(
        srv.fake.last().1,
        Call::TagValues(TagValuesRequest {
            tag: "service.name".into(),
            v2: false,
            start: Some(1_795_567_827),
            end: Some(1_795_567_948),
            ..Default::default()
        })
    );
    srv.get("/api/search/tag/no.such.tag/values")
        .await
        .assert_json(br#"{"tagValues":[],"metrics":{}}"#);

    let path = format!("/api/v2/search/tag/resource.service.name/values?{RANGE}");
    srv.get(&path).await.assert_json(&without_metrics(include_bytes!(
        "../../testdata/v2_tag_values_resource_service_name.body.json"
    )));
    let reply = srv.get_pb(&path).await;
    reply.assert_protobuf();
    let ours = tempopb::SearchTagValuesV2Response::decode(&reply.body[..]).unwrap();
    let golden = tempopb::SearchTagValuesV2Response::decode(
        &include_bytes!("../../testdata/v2_tag_values_resource_service_name_pb.body.pb")[..],
    )
    .unwrap();
    let set = |r: &tempopb::SearchTagValuesV2Response| {
        let mut v: Vec<(String, String)> = r
            .tag_values
            .iter()
            .map(|t| (t.r#type.clone(), t.value.clone()))
            .collect();
        v.sort();
        v
    };
    assert_eq!(set(&ours), set(&golden));

    srv.get("/api/v2/search/tag/status/values")
        .await
        .assert_json(br#"{"tagValues":[{"type":"keyword","value":"ok"},{"type":"keyword","value":"error"},{"type":"keyword","value":"unset"}],"metrics":{}}"#);
    srv.get("/api/v2/search/tag/span.amount/values?q=%7B%7D")
        .await
        .assert_json(br#"{"tagValues":[{"type":"float","value":"42.5"}],"metrics":{}}"#);
    let Call::TagValues(req) = srv.fake.last().1 else {
        panic!()
    };
    assert_eq!(
        (req.tag.as_str(), req.v2, req.q.as_deref()),
        ("span.amount", true, Some("{}"))
    );

    // v2 wants a TraceQL name: an unscoped attribute is refused before the backend is asked.
    let calls = srv.fake.calls.lock().unwrap().len();
    srv.get("/api/v2/search/tag/service.name/values").await.assert_text(
        400,
        "please provide a valid tagName: failed to parse identifier service.name: \
         parse error at line 1, col 2: unknown identifier: service",
    );
    assert_eq!(srv.fake.calls.lock().unwrap().len(), calls);
}

#[tokio::test]
async fn golden_status_values_body() {
    let srv = serve().await;
    // Tempo listed these keywords in another order; ours follows the backend.
    let reply = srv.get("/api/v2/search/tag/status/values").await;
    let golden: serde_json::Value =
        serde_json::from_slice(include_bytes!("../../testdata/v2_tag_values_status.body.json")).unwrap();
    assert_eq!(reply.json()["metrics"], golden["metrics"]);
    let mut ours = reply.json()["tagValues"].as_array().unwrap().clone();
    let mut theirs = golden["tagValues"].as_array().unwrap().clone();
    let key = |v: &serde_json::Value| v.to_string();
    ours.sort_by_key(key);
    theirs.sort_by_key(key);
    assert_eq!(ours, theirs);
}

#[tokio::test]
async fn plain_endpoints() {
    let srv = serve().await;
    let reply = srv.get("/api/echo").await;
    reply.assert_text(200, "echo\n");
    assert_eq!(reply.header("x-content-type-options"), Some("nosniff"));
    srv.get("/ready").await.assert_text(200, "ready\n");

    let reply = srv.get("/api/status/buildinfo").await;
    assert_eq!(reply.header("content-type"), Some("application/json"));
    assert_eq!(reply.body, include_bytes!("../../testdata/buildinfo.body.json"));

    let reply = srv.get("/api/nope").await;
    reply.assert_text(404, "404 page not found\n");
    assert_eq!(reply.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(srv.get("/api/traces/").await.status, 404);

    let reply = srv
        .client
        .post(format!("{}/api/search", srv.base))
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status().as_u16(), 405);
}

#[tokio::test]
async fn gzip_when_asked_and_large_enough() {
    let srv = serve().await;
    let gz = [("accept-encoding", "gzip, deflate")];
    let reply = srv.get_with(&format!("/api/traces/{T1}?{RANGE}"), &gz).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("content-encoding"), Some("gzip"));
    assert_eq!(reply.header("content-type"), Some("application/json"));
    assert_eq!(
        reply.headers.get_all("vary").iter().collect::<Vec<_>>(),
        ["Accept-Encoding"]
    );
    assert_eq!(
        gunzip(&reply.body),
        include_bytes!("../../testdata/trace_v1_json.body.json")
    );

    let reply = srv
        .get_with(
            &format!("/api/traces/{T1}"),
            &[gz[0], ("accept", "application/protobuf")],
        )
        .await;
    assert_eq!(reply.header("content-encoding"), Some("gzip"));
    assert_eq!(
        gunzip(&reply.body),
        include_bytes!("../../testdata/trace_v1_pb.body.pb")
    );

    // Under 1 KiB: sent as is (as Tempo does), still with Vary.
    let reply = srv.get_with(&format!("/api/v2/traces/{T3}"), &gz).await;
    assert_eq!(reply.header("content-encoding"), None);
    assert_eq!(reply.header("vary"), Some("Accept-Encoding"));
    assert_eq!(
        reply.json()["trace"]["resourceSpans"][0]["scopeSpans"][0]["spans"][1]["name"],
        "process order"
    );

    // Not asked: never compressed.
    let reply = srv.get(&format!("/api/traces/{T1}")).await;
    assert_eq!(reply.header("content-encoding"), None);
    assert_eq!(reply.header("vary"), Some("Accept-Encoding"));
}

#[tokio::test]
async fn tenants() {
    let srv = serve().await;
    let acme = [("x-scope-orgid", "acme")];
    assert_eq!(srv.get_with(&format!("/api/traces/{T1}"), &acme).await.status, 200);
    assert_eq!(srv.fake.last().0, "acme");
    srv.get_with("/api/search?q=%7B%7D", &acme).await;
    assert_eq!(srv.fake.last().0, "acme");
    srv.get_with("/api/v2/search/tags", &acme).await;
    assert_eq!(srv.fake.last().0, "acme");
    srv.get_with("/api/v2/search/tag/status/values", &acme).await;
    assert_eq!(srv.fake.last().0, "acme");
    srv.get("/api/search/tags").await;
    assert_eq!(srv.fake.last().0, "single-tenant");
    let reply = srv.get_with("/api/search", &[("x-scope-orgid", "a/b")]).await;
    assert_eq!(reply.status, 400);
    assert!(
        reply.text().starts_with("invalid X-Scope-OrgID header: "),
        "{}",
        reply.text()
    );

    let srv = serve_with(TenancyConfig {
        multi_tenant: true,
        ..TenancyConfig::default()
    })
    .await;
    for path in [
        format!("/api/traces/{T1}"),
        format!("/api/v2/traces/{T1}"),
        "/api/search".to_owned(),
        "/api/search/tags".to_owned(),
        "/api/v2/search/tags".to_owned(),
        "/api/search/tag/service.name/values".to_owned(),
        "/api/v2/search/tag/status/values".to_owned(),
    ] {
        let reply = srv.get(&path).await;
        reply.assert_text(401, "no org id\n");
    }
    assert!(srv.fake.calls.lock().unwrap().is_empty());
    let reply = srv.get_with("/api/search/tags", &[("x-scope-orgid", "team-b")]).await;
    assert_eq!(reply.status, 200);
    assert_eq!(srv.fake.last().0, "team-b");
    // Health endpoints need no tenant.
    assert_eq!(srv.get("/ready").await.status, 200);
}
