//! `signaldb loadgen --query-bench`: trace-by-id and search latency through
//! the Tempo API, on unflushed data and again after the writer flushed.

use std::time::{Duration, Instant};

fn percentiles(mut v: Vec<Duration>) -> (f64, f64) {
    if v.is_empty() {
        return (0.0, 0.0);
    }
    v.sort_unstable();
    let at = |p: f64| v[((v.len() as f64 - 1.0) * p).round() as usize].as_secs_f64() * 1e3;
    (at(0.5), at(0.99))
}

async fn timed_get(
    http: &reqwest::Client,
    url: &str,
    tenant: &str,
    accept: &str,
) -> Result<(Duration, u16, bytes::Bytes), String> {
    let mut req = http.get(url).header("accept", accept);
    if !tenant.is_empty() {
        req = req.header("x-scope-orgid", tenant);
    }
    let t = Instant::now();
    let resp = req.send().await.map_err(|e| format!("GET {url}: {e}"))?;
    let status = resp.status().as_u16();
    let body = resp.bytes().await.map_err(|e| format!("GET {url}: {e}"))?;
    Ok((t.elapsed(), status, body))
}

/// One round of the benchmark: 200 traces by id, then the two searches.
pub(crate) async fn round(
    http: &reqwest::Client,
    router: &str,
    ids: &[[u8; 16]],
    tenant: &str,
    label: &str,
) -> Result<(), String> {
    let mut by_id = Vec::new();
    let mut missing = 0;
    for id in ids {
        let url = format!("{router}/api/traces/{}", hex::encode(id));
        let (d, status, _) = timed_get(http, &url, tenant, "application/protobuf").await?;
        if status != 200 {
            missing += 1;
        }
        by_id.push(d);
    }
    let (p50, p99) = percentiles(by_id);
    println!(
        "[{label}] trace by id:      p50 {p50:.1} ms, p99 {p99:.1} ms over {} ids ({missing} not found)",
        ids.len()
    );
    // The two searches the Tempo 3.0.3 figures of the query issue come from.
    for (name, q) in [
        (
            "selective search",
            "{ resource.service.name = \"svc-03\" && span.http.response.status_code = 500 }",
        ),
        ("broad search", "{ span.attr.str5 = \"value-42\" }"),
    ] {
        let url = format!("{router}/api/search?limit=20&q={}", encode(q));
        let mut times = Vec::new();
        let mut last = bytes::Bytes::new();
        for _ in 0..10 {
            let (d, status, body) = timed_get(http, &url, tenant, "application/json").await?;
            if status != 200 {
                return Err(format!("{name}: HTTP {status}: {}", String::from_utf8_lossy(&body)));
            }
            last = body;
            times.push(d);
        }
        let (p50, p99) = percentiles(times);
        let answer: serde_json::Value = serde_json::from_slice(&last).map_err(|e| format!("{name}: {e}"))?;
        let traces = answer["traces"].as_array().map_or(0, Vec::len);
        let inspected = answer["metrics"]["inspectedBytes"].as_str().unwrap_or("0").to_owned();
        println!(
            "[{label}] {name:<17} p50 {p50:.1} ms, p99 {p99:.1} ms, {traces} traces, {inspected} bytes inspected: {q}"
        );
    }
    Ok(())
}

fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Runs the query benchmark: unflushed, then drained (flushed) data.
pub async fn run(
    router: &str,
    admin: &str,
    token: Option<&crate::auth::ClusterToken>,
    ids: &[[u8; 16]],
    tenant: &str,
) -> Result<(), String> {
    let http = reqwest::Client::new();
    let ids: Vec<[u8; 16]> = ids.iter().take(200).copied().collect();
    // Wait until the acceptor has handed everything to the writer.
    crate::loadgen::wait_delivered(admin).await?;
    round(&http, router, &ids, tenant, "buffers").await?;
    let t = Instant::now();
    let mut drain = http.post(format!("{admin}/drain"));
    if let Some(token) = token {
        drain = drain.header(reqwest::header::AUTHORIZATION, token.bearer());
    }
    let resp = drain.send().await.map_err(|e| e.to_string())?;
    if !resp.status().is_success() {
        return Err(format!(
            "POST /drain answered {}: {}",
            resp.status(),
            resp.text().await.unwrap_or_default()
        ));
    }
    loop {
        let body = http
            .get(format!("{admin}/drain"))
            .send()
            .await
            .map_err(|e| e.to_string())?
            .text()
            .await
            .map_err(|e| e.to_string())?;
        if body.contains("\"done\":true") {
            break;
        }
        if t.elapsed() > Duration::from_secs(300) {
            return Err(format!("the writer did not drain within 5 minutes: {body}"));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!("flush (drain):      {:.2} s", t.elapsed().as_secs_f64());
    round(&http, router, &ids, tenant, "parquet").await
}
