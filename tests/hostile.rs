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
    // The engine's own clock: the run ends within the deadline plus a second. The process
    // bound is only a safety net (a loaded CI machine adds start-up time, not hangs).
    assert!(took < Duration::from_secs(20), "took {took:?}");
    let report = run.json();
    let ran = report["duration_seconds"].as_f64().unwrap();
    assert!(ran <= 3.0, "ran {ran} s with --deadline 2s");
    assert_eq!(report["deadline_hit"], true);
    let verify = step_of(probe_of(&report, "android-purchase"), "verify");
    assert_eq!(kind(verify), "deadline", "{verify}");
    assert_eq!(probe_of(&report, "health")["verdict"], "pass");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn odd_bodies_fail_with_precise_reasons() {
    let cases = [
        (
            json!({"body": "<html><body>Service Unavailable</body></html>", "status": 200}),
            "no JSON body",
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
    std::fs::write(dir.path().join("retrying.toml"), probe_file).unwrap();
    sb.use_probes_dir(dir.path());
    // Always 429: three retries, then the failure, every retry counted.
    sb.set_faults(
        json!({"route": [{"path": "/iap/health", "status": 429, "retry_after": "100ms"}]}),
    )
    .await;
    let (health, _) = run_step(&sb, "retrying", "health", &[]).await;
    assert_eq!(health["retries"], 3, "{health}");
    assert!(reason(&health).contains("429"), "{health}");
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
        "--iterations",
        "20",
    ])
    .await;
    let report = run.json();
    let health = step_of(probe_of(&report, "retrying"), "health");
    assert!(health["retries"].as_u64().unwrap() > 0, "{health}");
    assert!(health["ok"].as_u64().unwrap() >= 18, "{health}");
    // A POST is not idempotent: a refused connection is retried, a timeout is not; an
    // assertion failure never is.
    sb.set_faults(json!({"route": [{"path": "/iap/health", "status": 500}]}))
        .await;
    let (health, _) = run_step(&sb, "retrying", "health", &[]).await;
    assert_eq!(health["retries"], 0, "{health}");
}
