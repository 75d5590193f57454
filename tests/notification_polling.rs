//! Polling Apple's Get Test Notification Status politely: a 429's `Retry-After` (Apple's
//! absolute UNIX milliseconds) is honoured, and polls are never closer than `every`.
//! Spacing is measured on the server side, by a recording proxy in front of the sandbox.

#[path = "fixtures/prober/support.rs"]
mod support;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::Response;
use serde_json::json;
use support::*;

/// One status poll as the server saw it.
#[derive(Debug, Clone)]
struct Hit {
    at: Instant,
    /// Arrival in UNIX ms, to compare with Apple's absolute `Retry-After`.
    at_ms: i64,
    status: u16,
    retry_after: Option<String>,
}

#[derive(Clone)]
struct Recorder {
    target: String,
    client: reqwest::Client,
    hits: Arc<Mutex<Vec<Hit>>>,
}

async fn forward(State(r): State<Recorder>, req: Request) -> Response {
    let (at, at_ms) = (Instant::now(), iap_probe::clock::now_ms());
    let (parts, body) = req.into_parts();
    let body = axum::body::to_bytes(body, usize::MAX)
        .await
        .unwrap_or_default();
    let path = parts.uri.path().to_string();
    let url = format!(
        "{}{}",
        r.target,
        parts.uri.path_and_query().map_or("/", |p| p.as_str())
    );
    let mut out = r.client.request(parts.method, url).body(body);
    for (k, v) in &parts.headers {
        if k != "host" {
            out = out.header(k, v);
        }
    }
    let resp = out.send().await.expect("the sandbox answers the proxy");
    let status = resp.status();
    let headers = resp.headers().clone();
    let bytes = resp.bytes().await.unwrap_or_default();
    if path.starts_with("/inApps/v1/notifications/test/") {
        r.hits.lock().unwrap().push(Hit {
            at,
            at_ms,
            status: status.as_u16(),
            retry_after: headers
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string),
        });
    }
    let mut builder = Response::builder().status(status);
    for (k, v) in &headers {
        if !matches!(
            k.as_str(),
            "content-length" | "transfer-encoding" | "connection"
        ) {
            builder = builder.header(k, v);
        }
    }
    builder.body(Body::from(bytes)).unwrap()
}

/// Serves the recording proxy on 127.0.0.1:0; returns its base URL and the hits.
async fn recorder(target: &str) -> (String, Arc<Mutex<Vec<Hit>>>) {
    let hits = Arc::new(Mutex::new(Vec::new()));
    let state = Recorder {
        target: target.to_string(),
        client: reqwest::Client::builder().no_proxy().build().unwrap(),
        hits: hits.clone(),
    };
    let app = axum::Router::new().fallback(forward).with_state(state);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}"), hits)
}

/// A notification probe polling every `every` for at most `within`.
fn polling_probe(every: &str, within: &str) -> String {
    format!(
        r#"
name = "ios-notifications"
platform = "ios"

[[step]]
name = "request-test"
auth = "app-store"
request = {{ method = "POST", url = "{{{{apple}}}}/inApps/v1/notifications/test" }}
expect = {{ status = 200 }}
capture = {{ test_token = "$.testNotificationToken" }}

[[step]]
name = "delivery"
auth = "app-store"
request = {{ url = "{{{{apple}}}}/inApps/v1/notifications/test/{{{{test_token}}}}" }}
poll = {{ every = "{every}", within = "{within}" }}
until = {{ status = 200, json = {{ "$.sendAttempts[*].sendAttemptResult" = {{ contains = "SUCCESS" }} }} }}
"#
    )
}

/// Runs the polling probe through the recorder against a status endpoint that always
/// answers 429 with `Retry-After` of `retry_after`, with `[apple] poll_min_interval` set
/// to `min`; returns the polls it made.
async fn polls_under_429(every: &str, within: &str, retry_after: &str, min: &str) -> Vec<Hit> {
    let sb = Sb::start_with(faults(json!({"route": [{
        "path": "/inApps/v1/notifications/test/*", "method": "GET",
        "status": 429, "retry_after": retry_after,
    }]})))
    .await;
    let (proxy, hits) = recorder(&sb.sb.base_url).await;
    let base = sb.sb.base_url.clone();
    sb.edit("probe.toml", |s| {
        s.replace(
            &format!("[apple]\nbase_url = \"{base}\""),
            &format!("[apple]\nbase_url = \"{proxy}\""),
        )
    });
    let dir = sb.path("polling-probes");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("ios-notifications.toml"),
        polling_probe(every, within),
    )
    .unwrap();
    sb.use_probes_dir(&dir);
    sb.edit("probe.toml", |s| {
        s.replace(
            "poll_min_interval = \"1s\"",
            &format!("poll_min_interval = \"{min}\""),
        )
    });
    let cfg = sb.config_str();
    let run = probe(&["run", "--config", &cfg, "--format", "json"]).await;
    run.expect_code(1);
    let report = run.json();
    let delivery = step_of(probe_of(&report, "ios-notifications"), "delivery");
    assert_eq!(delivery["failures"][0]["kind"], "poll", "{delivery:#}");
    let hits = hits.lock().unwrap().clone();
    assert!(
        hits.iter().all(|h| h.status == 429),
        "every poll was refused: {hits:?}"
    );
    hits
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_retry_after_is_waited_out() {
    let hits = polls_under_429("200ms", "2500ms", "1s", "0s").await;
    // Polls at about 0 s, 1 s and 2 s: more than `every` alone would allow fewer of.
    assert!(hits.len() >= 2, "it polled again after the 429: {hits:?}");
    assert!(hits.len() <= 3, "{} polls in 2.5 s: {hits:?}", hits.len());
    for pair in hits.windows(2) {
        let until: i64 = pair[0]
            .retry_after
            .as_deref()
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("Apple's 429 carries Retry-After in ms: {pair:?}"));
        assert!(
            pair[1].at_ms >= until,
            "polled {} ms before Retry-After: {pair:?}",
            until - pair[1].at_ms
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_retry_after_never_polls_faster_than_every() {
    let every = Duration::from_millis(400);
    let hits = polls_under_429("400ms", "1500ms", "50ms", "0s").await;
    assert!(hits.len() >= 3, "it kept polling: {hits:?}");
    for pair in hits.windows(2) {
        let gap = pair[1].at - pair[0].at;
        assert!(gap >= every, "polls {gap:?} apart, `every` is {every:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apples_minimum_poll_interval_spaces_polls_wider_than_every() {
    // The probe asks for 100 ms and the 429s for 10 ms; `[apple] poll_min_interval`
    // (Apple's per-endpoint rate limit) wins over both.
    let min = Duration::from_millis(600);
    let hits = polls_under_429("100ms", "1500ms", "10ms", "600ms").await;
    assert!(hits.len() >= 2, "it kept polling: {hits:?}");
    assert!(hits.len() <= 3, "{} polls in 1.5 s: {hits:?}", hits.len());
    for pair in hits.windows(2) {
        let gap = pair[1].at - pair[0].at;
        assert!(
            gap >= min,
            "polls {gap:?} apart, poll_min_interval is {min:?}"
        );
    }
}
