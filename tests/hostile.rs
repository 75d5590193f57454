//! Hostile answers and broken networks (issue: never hang, never panic): each is a failed
//! step with its own reason and kind, the run still ends and reports every probe.

#[path = "fixtures/prober/support.rs"]
mod support;

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::*;

/// Runs `--probe NAME` and returns the step's report and the whole report.
async fn run_step(sb: &Sb, probe: &str, step: &str, extra: &[&str]) -> (Value, Value) {
    let cfg = sb.config_str();
    let mut args = vec![
        "run", "--config", &cfg, "--format", "json", "--probe", probe,
    ];
    args.extend_from_slice(extra);
    let run = support::probe(&args).await;
    run.expect_code(1);
    let report = run.json();
    let s = step_of(probe_of(&report, probe), step).clone();
    (s, report)
}

fn kind(step: &Value) -> &str {
    step["failures"][0]["kind"].as_str().unwrap_or("")
}

fn reason(step: &Value) -> String {
    step["reason"].as_str().unwrap_or("").to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trickling_body_times_out_and_other_probes_still_report() {
    let sb = Sb::start_with(faults(
        json!({"route": [{"path": "/iap/verify", "trickle": true}]}),
    ))
    .await;
    sb.set_run("timeout = \"1s\"");
    let cfg = sb.config_str();
    let t0 = Instant::now();
    let run = probe(&[
        "run",
        "--config",
        &cfg,
        "--format",
        "json",
        "--deadline",
        "20s",
    ])
    .await;
    run.expect_code(1);
    assert!(
        t0.elapsed() < Duration::from_secs(15),
        "took {:?}",
        t0.elapsed()
    );
    let report = run.json();
    let verify = step_of(probe_of(&report, "ios-purchase"), "verify");
    assert_eq!(kind(verify), "timeout", "{verify}");
    assert!(reason(verify).contains("timeout after 1 s"), "{verify}");
    assert_eq!(probe_of(&report, "health")["verdict"], "pass");
    assert_eq!(report["probes"].as_array().unwrap().len(), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_endpoint_ends_within_the_deadline_plus_a_second() {
    let sb = Sb::start_with(faults(
        json!({"route": [{"path": "/iap/verify", "hang": true}]}),
    ))
    .await;
    let cfg = sb.config_str();
    let t0 = Instant::now();
    let run = probe(&[
        "run",
        "--config",
        &cfg,
        "--format",
        "json",
        "--deadline",
        "2s",
    ])
    .await;
    let took = t0.elapsed();
    run.expect_code(1);
    // The whole process, start-up and report included, not only the engine's clock.
    assert!(took < Duration::from_secs(3), "the process took {took:?}");
    let report = run.json();
    let ran = report["duration_seconds"].as_f64().unwrap();
    assert!(ran <= 3.0, "ran {ran} s with --deadline 2s");
    assert_eq!(report["deadline_hit"], true);
    let verify = step_of(probe_of(&report, "android-purchase"), "verify");
    assert_eq!(kind(verify), "deadline", "{verify}");
    assert_eq!(probe_of(&report, "health")["verdict"], "pass");
}

/// POSTs to the sandbox's admin endpoint, returns the JSON answer.
async fn admin_post(sb: &Sb, path: &str) -> Value {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap()
        .post(format!("{}{path}", sb.sb.base_url))
        .bearer_auth(sb.admin_token())
        .send()
        .await
        .expect("sandbox admin endpoint")
        .json()
        .await
        .expect("JSON answer")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_token_refresh_cannot_stretch_the_deadline() {
    let sb = Sb::start().await;
    // android-purchase ends at play-purchase here: the backend's own verify needs Google
    // too, and a worker stuck there (until its request timeout) would never reach the
    // refresh this test is about.
    sb.edit("probes/android-purchase.toml", |s| {
        let cut = s.find("[[step]]\nname = \"verify\"").expect("verify step");
        s[..cut].to_string()
    });
    let cfg = sb.config_str();
    // Sampling on four workers, so that several refreshes queue behind the token source's
    // gate; more iterations than 2 s allow, so the deadline is what ends the run.
    let args: Vec<String> = [
        "run",
        "--config",
        &cfg,
        "--format",
        "json",
        "--deadline",
        "2s",
        "--iterations",
        "100000",
        "--concurrency",
        "4",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let child = tokio::spawn(async move {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        probe(&args).await
    });
    // Wait until the prober holds a Google token (the sandbox has issued one), so the hang
    // below hits a refresh inside a step's send, not the credential step.
    let t0 = Instant::now();
    while admin_post(&sb, "/sandbox/google/revoke").await["revoked"]
        .as_u64()
        .unwrap_or(0)
        == 0
    {
        assert!(t0.elapsed() < Duration::from_secs(20), "no token issued");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Every Play call now says 401 (refresh and retry) and the token endpoint never answers.
    sb.set_faults(json!({"route": [
        {"path": "/token", "hang": true},
        {"path": "/androidpublisher", "status": 401},
    ]}))
    .await;
    let run = child.await.unwrap();
    run.expect_code(1);
    // Measured around the child: start-up, the run, the report, the exit.
    assert!(
        run.elapsed < Duration::from_secs(3),
        "the process took {:?} with --deadline 2s",
        run.elapsed
    );
    let report = run.json();
    assert_eq!(report["deadline_hit"], true);
    let play = step_of(probe_of(&report, "android-purchase"), "play-purchase");
    let failures = play["failures"].as_array().unwrap();
    assert!(
        failures.iter().any(|f| f["kind"] == "deadline"
            && str_of(&f["reason"]).contains("while acquiring the Google token")),
        "{play:#}"
    );
    // Every other probe still ran and is reported.
    assert_eq!(report["probes"].as_array().unwrap().len(), 5, "{report:#}");
    let health = probe_of(&report, "health");
    assert!(health["iterations"].as_u64().unwrap() > 0, "{health:#}");
    assert!(
        step_of(health, "health")["ok"].as_u64().unwrap() > 0,
        "{health:#}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn odd_bodies_fail_with_precise_reasons() {
    let cases = [
        (
            json!({"body": "<html><body>Service Unavailable</body></html>", "status": 200}),
            "no JSON body",
        ),
        // The type is named: it says who answered (a proxy's or CDN's page).
        (
            json!({"body": "<!doctype html><html><body>Sign in</body></html>", "content_type": "text/html", "status": 200}),
            "$.valid: no JSON body (Content-Type text/html; starts \"<!doctype html>",
        ),
        (
            json!({"body": "Service Unavailable", "content_type": "", "status": 200}),
            "$.valid: no JSON body (no Content-Type; starts \"Service Unavailable\")",
        ),
        (
            json!({"body": "", "content_type": "application/json", "status": 200}),
            "no JSON body (Content-Type application/json; empty body)",
        ),
        // JSON under a slightly different type is judged as JSON, not refused.
        (
            json!({"body": "{\"valid\": false}", "content_type": "application/problem+json", "status": 200}),
            "$.valid is false",
        ),
        (
            json!({"body": "{\"valid\": tr", "content_type": "application/json", "status": 200}),
            "no JSON body",
        ),
        (
            json!({"body": "[1, 2, 3]", "content_type": "application/json", "status": 200}),
            "$.valid",
        ),
        (
            json!({"body": "", "content_type": "application/json", "status": 200}),
            "no JSON body",
        ),
        (
            json!({"body": "{\"valid\": \"yes\"}", "content_type": "text/plain", "status": 200}),
            "$.valid",
        ),
    ];
    let sb = Sb::start().await;
    for (fault, want) in cases {
        let mut route = fault.clone();
        route["path"] = json!("/iap/verify");
        sb.set_faults(json!({"route": [route]})).await;
        let (verify, _) = run_step(&sb, "ios-purchase", "verify", &[]).await;
        assert_eq!(verify["verdict"], "fail", "{fault}: {verify}");
        assert_eq!(kind(&verify), "assertion", "{fault}: {verify}");
        assert!(
            reason(&verify).contains(want),
            "{fault}: {}",
            reason(&verify)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_huge_body_is_capped() {
    let sb = Sb::start_with(faults(json!({"route": [
        {"path": "/iap/verify", "body_bytes": 100_000_000u64, "status": 200}
    ]})))
    .await;
    sb.set_run("max_body = 1048576");
    let (verify, _) = run_step(&sb, "ios-purchase", "verify", &[]).await;
    assert_eq!(kind(&verify), "body", "{verify}");
    assert!(
        reason(&verify).contains("larger than 1048576 bytes"),
        "{verify}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_cut_mid_response_is_network_trouble() {
    let sb = Sb::start_with(faults(
        json!({"route": [{"path": "/iap/verify", "reset": true}]}),
    ))
    .await;
    let (verify, _) = run_step(&sb, "ios-purchase", "verify", &[]).await;
    assert_eq!(kind(&verify), "network", "{verify}");
    assert!(reason(&verify).contains("connection dropped"), "{verify}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_and_tls_failures_are_network_trouble() {
    let sb = Sb::start().await;
    // Nothing listens on port 1.
    sb.edit("probe.toml", |s| {
        s.replacen(
            &format!("[backend]\nbase_url = \"{}\"", sb.sb.base_url),
            "[backend]\nbase_url = \"http://127.0.0.1:1\"",
            1,
        )
    });
    let (health, _) = run_step(&sb, "health", "health", &[]).await;
    assert_eq!(kind(&health), "network", "{health}");
    assert!(reason(&health).contains("connection refused"), "{health}");
    // TLS expected, plain HTTP answers.
    sb.edit("probe.toml", |s| {
        s.replacen(
            "base_url = \"http://127.0.0.1:1\"",
            &format!(
                "base_url = \"{}\"",
                sb.sb.base_url.replace("http://", "https://")
            ),
            1,
        )
    });
    let (health, _) = run_step(&sb, "health", "health", &[]).await;
    assert_eq!(kind(&health), "network", "{health}");
    assert!(reason(&health).contains("TLS"), "{health}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dns_failure_is_network_trouble() {
    let sb = Sb::start().await;
    // RFC 6761: a `.invalid` name never resolves, and the prober refuses it without asking
    // a DNS server, so nothing leaves loopback.
    sb.edit("probe.toml", |s| {
        s.replacen(
            &format!("[backend]\nbase_url = \"{}\"", sb.sb.base_url),
            "[backend]\nbase_url = \"http://backend.iap-probe.invalid:8080\"",
            1,
        )
    });
    let cfg = sb.config_str();
    // No proxy either: a proxy would be sent the name instead of it failing here.
    let run = probe_env(
        &[
            "run", "--config", &cfg, "--format", "json", "--probe", "health",
        ],
        &[("NO_PROXY", "*"), ("no_proxy", "*")],
    )
    .await;
    run.expect_code(1);
    let report = run.json();
    let health = step_of(probe_of(&report, "health"), "health");
    assert_eq!(kind(health), "network", "{health}");
    assert!(reason(health).contains("DNS lookup failed"), "{health}");
    assert!(reason(health).contains(".invalid"), "{health}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_are_retried_where_the_step_allows_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let sb = Sb::start().await;
    let probe_file = r#"
name = "retrying"
platform = "any"
[[step]]
name = "health"
retry = { attempts = 3 }
request = { method = "GET", url = "{{backend}}/iap/health" }
expect = { status = 200 }
"#;
    // One retry, a short timeout: for the Retry-After and timeout cases.
    let once = r#"
name = "once"
platform = "any"
[[step]]
name = "health"
timeout = "500ms"
retry = { attempts = 1 }
request = { method = "GET", url = "{{backend}}/iap/health" }
expect = { status = 200 }
"#;
    // A POST is not idempotent: sending it twice may act twice.
    let posting = r#"
name = "posting"
platform = "any"
[[step]]
name = "post"
timeout = "500ms"
retry = { attempts = 3 }
request = { method = "POST", url = "{{backend}}/iap/health", json = { ping = 1 } }
expect = { status = 200 }
"#;
    std::fs::write(dir.path().join("retrying.toml"), probe_file).unwrap();
    std::fs::write(dir.path().join("once.toml"), once).unwrap();
    std::fs::write(dir.path().join("posting.toml"), posting).unwrap();
    sb.use_probes_dir(dir.path());
    // Always 429: three retries, then the failure, every retry counted.
    sb.set_faults(
        json!({"route": [{"path": "/iap/health", "status": 429, "retry_after": "100ms"}]}),
    )
    .await;
    let (health, _) = run_step(&sb, "retrying", "health", &[]).await;
    assert_eq!(health["retries"], 3, "{health}");
    assert!(reason(&health).contains("429"), "{health}");
    // Always 503: retried the same way.
    sb.set_faults(
        json!({"route": [{"path": "/iap/health", "status": 503, "retry_after": "100ms"}]}),
    )
    .await;
    let (health, _) = run_step(&sb, "retrying", "health", &[]).await;
    assert_eq!(health["retries"], 3, "{health}");
    assert!(reason(&health).contains("503"), "{health}");
    // Retry-After is obeyed, as delta seconds and as an HTTP date: the sandbox announces
    // at least 1 s, four times the first backoff (at most 200 ms), so a run shorter than
    // that came back early.
    for (form, fault) in [
        (
            "seconds",
            json!({"path": "/iap/health", "status": 503, "retry_after": "1s"}),
        ),
        (
            "HTTP date",
            json!({"path": "/iap/health", "status": 503, "retry_after": "1s", "retry_after_date": true}),
        ),
    ] {
        sb.set_faults(json!({ "route": [fault] })).await;
        let (health, report) = run_step(&sb, "once", "health", &[]).await;
        assert_eq!(health["retries"], 1, "{form}: {health}");
        assert!(reason(&health).contains("503"), "{form}: {health}");
        let ran = report["duration_seconds"].as_f64().unwrap();
        assert!(
            ran >= 0.95,
            "{form}: retried after {ran} s, before Retry-After"
        );
    }
    // Half the answers 429 (seeded): it gets through, with the retries reported.
    sb.set_faults(json!({"seed": 3, "route": [{"path": "/iap/health", "status": 429, "error_rate": 0.5, "retry_after": "50ms"}]}))
        .await;
    let cfg = sb.config_str();
    let run = probe(&[
        "run",
        "--config",
        &cfg,
        "--format",
        "json",
        "--probe",
        "retrying",
        "--iterations",
        "20",
    ])
    .await;
    let report = run.json();
    let health = step_of(probe_of(&report, "retrying"), "health");
    assert!(health["retries"].as_u64().unwrap() > 0, "{health}");
    assert!(health["ok"].as_u64().unwrap() >= 18, "{health}");
    // A timeout: the GET (idempotent, safe to send again) is retried, the POST is not —
    // the server may have acted on it — whatever `retry` allows.
    sb.set_faults(json!({"route": [{"path": "/iap/health", "hang": true}]}))
        .await;
    let (get, _) = run_step(&sb, "once", "health", &[]).await;
    assert_eq!(kind(&get), "timeout", "{get}");
    assert_eq!(get["retries"], 1, "{get}");
    let (post, _) = run_step(&sb, "posting", "post", &[]).await;
    assert_eq!(kind(&post), "timeout", "{post}");
    assert_eq!(post["retries"], 0, "{post}");
    // A 500 is an answer, not a request to come back: an assertion failure is never
    // retried, even on a GET with retries allowed.
    sb.set_faults(json!({"route": [{"path": "/iap/health", "status": 500}]}))
        .await;
    let (health, _) = run_step(&sb, "retrying", "health", &[]).await;
    assert_eq!(kind(&health), "assertion", "{health}");
    assert_eq!(health["retries"], 0, "{health}");
}
