//! Searches through the Tempo API on the real path: candidate traces found
//! by the query's span condition, then the whole query over them alone,
//! newest first, stopping at `limit`; the same answers before and after a
//! flush.

use std::time::Duration;

use crate::common::*;

async fn search(http: &reqwest::Client, base: &str, q: &str, limit: usize) -> Vec<(String, u64, u64)> {
    let url = format!("{base}/api/search?q={}&limit={limit}&spss=0", urlencode(q));
    let body = get_json(http, &url).await;
    body["traces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            let start: u64 = t["startTimeUnixNano"].as_str().unwrap().parse().unwrap();
            let matched = t["spanSets"][0]["matched"].as_u64().unwrap_or(0);
            (t["traceID"].as_str().unwrap().to_owned(), start, matched)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn searches_stop_at_limit_newest_first_before_and_after_a_flush() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    config.writer.flush_max_age = Duration::from_secs(3600);
    let running = start_all(config).await;
    let (mut grpc, base) = clients(&running).await;
    let http = reqwest::Client::new();
    // 30 traces of 3 spans and 10 of 1 span.
    grpc.export(request(41, 30, 3)).await.unwrap();
    grpc.export(request(42, 10, 1)).await.unwrap();
    let t = std::time::Instant::now();
    while search(&http, &base, "{ }", 100).await.len() < 40 {
        assert!(t.elapsed() < Duration::from_secs(10), "spans never became searchable");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    for round in ["buffered", "flushed"] {
        let all = search(&http, &base, "{ }", 100).await;
        assert_eq!(all.len(), 40, "{round}");
        let mut newest: Vec<u64> = all.iter().map(|t| t.1).collect();
        newest.sort_unstable_by(|a, b| b.cmp(a));

        // Exact condition (every span), asking for the most recent: the
        // newest `limit` traces.
        let five = search(&http, &base, "{ } with (most_recent=true)", 5).await;
        assert_eq!(five.iter().map(|t| t.1).collect::<Vec<_>>(), newest[..5], "{round}");
        // Without the hint: `limit` of them, newest first, as found reading
        // the newest data first.
        let any = search(&http, &base, "{ }", 5).await;
        assert_eq!(any.len(), 5, "{round}");
        assert!(any.windows(2).all(|w| w[0].1 >= w[1].1), "{round}: newest first");
        assert!(any.iter().all(|t| all.contains(t)), "{round}");

        // Not exact (an aggregate over the spanset): only traces of 3 spans
        // qualify, still newest first and at most `limit`.
        let three = search(&http, &base, "{ } | count() > 2", 7).await;
        assert_eq!(three.len(), 7, "{round}");
        assert!(three.iter().all(|t| t.2 == 3), "{round}: {three:?}");
        assert!(three.windows(2).all(|w| w[0].1 >= w[1].1), "{round}: newest first");
        let all_three = search(&http, &base, "{ } | count() > 2", 100).await;
        assert_eq!(all_three.len(), 30, "{round}");
        assert_eq!(three[..], all_three[..7], "{round}: the first page of the full answer");

        // Matched spans carry the fields the query filtered on and selected,
        // as Tempo shows them; the answer says how many bytes it read.
        let q = "{ span.http.response.status_code >= 200 && kind = server } | select(span.attr.str5)";
        let url = format!("{base}/api/search?q={}&limit=3", urlencode(q));
        let body: serde_json::Value = get_json(&http, &url).await;
        let traces = body["traces"].as_array().unwrap();
        assert_eq!(traces.len(), 3, "{round}: {body}");
        for t in traces {
            for span in t["spanSets"][0]["spans"].as_array().unwrap() {
                let attrs = span["attributes"].as_array().unwrap();
                let keys: Vec<&str> = attrs.iter().map(|a| a["key"].as_str().unwrap()).collect();
                assert_eq!(
                    keys,
                    ["http.response.status_code", "kind", "attr.str5"],
                    "{round}: {span}"
                );
                assert!(attrs[0]["value"]["intValue"].is_string(), "{span}");
                assert_eq!(attrs[1]["value"]["stringValue"], "server");
                assert!(attrs[2]["value"]["stringValue"].as_str().unwrap().starts_with("value-"));
            }
        }
        let inspected: u64 = body["metrics"]["inspectedBytes"].as_str().unwrap().parse().unwrap();
        assert!(inspected > 0, "{round}: {body}");

        // Scoped intrinsics: a trace by its id, as a search condition.
        let wanted = &all[17].0;
        let by_id = search(&http, &base, &format!(r#"{{ trace:id = "{wanted:0>32}" }}"#), 20).await;
        assert_eq!(by_id.iter().map(|t| &t.0).collect::<Vec<_>>(), [wanted], "{round}");
        assert!(
            search(&http, &base, r#"{ event:name = "no-such-event" }"#, 20)
                .await
                .is_empty()
        );

        // A condition no span meets finds nothing, and says so cleanly.
        assert!(
            search(&http, &base, r#"{ span.no.such.attribute = "x" }"#, 20)
                .await
                .is_empty()
        );

        deliver_and_flush(&running).await;
    }
    running.shutdown().await;
}

async fn service_values(http: &reqwest::Client, base: &str, q: Option<&str>) -> Vec<String> {
    let mut url = format!("{base}/api/v2/search/tag/resource.service.name/values");
    if let Some(q) = q {
        url = format!("{url}?q={}", urlencode(q));
    }
    let body = get_json(http, &url).await;
    let mut out: Vec<String> = body["tagValues"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["value"].as_str().unwrap().to_owned())
        .collect();
    out.sort();
    out
}

/// Grafana's autocomplete sends the query being typed as `q`: tag values
/// come from the spans it matches; a query half typed filters nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tag_values_follow_the_q_filter() {
    let dir = tempfile::tempdir().unwrap();
    let running = start_all(test_config(dir.path())).await;
    let (mut grpc, base) = clients(&running).await;
    let http = reqwest::Client::new();
    // One request per service: svc-00, then svc-01.
    let mut factory = signaldb::loadgen::RequestFactory::new(5, 2, 4);
    grpc.export(factory.request(4)).await.unwrap();
    grpc.export(factory.request(4)).await.unwrap();
    let both = vec!["svc-00".to_owned(), "svc-01".to_owned()];
    let t = std::time::Instant::now();
    while service_values(&http, &base, None).await != both {
        assert!(t.elapsed() < Duration::from_secs(10), "services never became visible");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        service_values(&http, &base, Some(r#"{ resource.service.name = "svc-01" }"#)).await,
        ["svc-01"]
    );
    assert_eq!(
        service_values(
            &http,
            &base,
            Some(r#"{ resource.service.name =~ "svc-0[01]" && kind = server }"#)
        )
        .await,
        both
    );
    assert!(
        service_values(&http, &base, Some(r#"{ span.no.such = 1 }"#))
            .await
            .is_empty()
    );
    assert_eq!(
        service_values(&http, &base, Some(r#"{ resource.service.name = "svc-01" && "#)).await,
        both,
        "a half-typed query filters nothing"
    );
    running.shutdown().await;
}

async fn search_with_bytes(http: &reqwest::Client, base: &str, q: &str, limit: usize) -> (Vec<u64>, u64) {
    let url = format!("{base}/api/search?q={}&limit={limit}", urlencode(q));
    let body: serde_json::Value = get_json(http, &url).await;
    let starts = body["traces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["startTimeUnixNano"].as_str().unwrap().parse().unwrap())
        .collect();
    let bytes = body["metrics"]["inspectedBytes"]
        .as_str()
        .map_or(0, |b| b.parse().unwrap());
    (starts, bytes)
}

/// With several files, a search whose condition is the whole query reads
/// the newest file first and stops once older files cannot change the
/// answer: the same newest traces, fewer bytes read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn searches_read_newest_files_first_and_stop_at_limit() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    config.writer.flush_max_age = Duration::from_secs(3600);
    let running = start_all(config).await;
    let (mut grpc, base) = clients(&running).await;
    let http = reqwest::Client::new();
    // Three files, each newer than the last.
    for seed in 0..3 {
        grpc.export(request(60 + seed, 300, 2)).await.unwrap();
        deliver_and_flush(&running).await;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(parquet_files(dir.path()).len(), 3);

    for q in ["{ }", "{ kind = server }"] {
        let (all, all_bytes) = search_with_bytes(&http, &base, q, 1000).await;
        assert_eq!(all.len(), 900, "{q}");
        let (newest, newest_bytes) = search_with_bytes(&http, &base, q, 5).await;
        assert_eq!(newest[..], all[..5], "{q}: the newest five of all");
        assert!(
            newest_bytes * 2 < all_bytes,
            "{q}: reading stopped early ({newest_bytes} of {all_bytes} bytes)"
        );
    }
    running.shutdown().await;
}
