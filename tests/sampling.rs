//! Sampling mode through the real binary: a fixed arrival rate corrects for coordinated
//! omission, `--duration` bounds a run by time, and credentials are acquired once per run
//! whatever the number of iterations. The sandbox injects a fixed latency, so the lower
//! bounds below follow from arithmetic, not from how fast this machine is.

#[path = "fixtures/prober/support.rs"]
mod support;

use serde_json::{Value, json};
use support::*;

fn secs(v: &Value, what: &str) -> f64 {
    v.as_f64()
        .unwrap_or_else(|| panic!("{what} is not a number: {v}"))
}

async fn slow_health(ms: u64) -> Sb {
    Sb::start_with(faults(json!({
        "route": [{ "path": "/iap/health", "latency": format!("{ms}ms") }]
    })))
    .await
}

fn rate_args<'a>(cfg: &'a str, rate: &'a str) -> Vec<&'a str> {
    vec![
        "run",
        "--config",
        cfg,
        "--probe",
        "health",
        "--iterations",
        "10",
        "--concurrency",
        "1",
        "--rate",
        rate,
        "--format",
        "json",
    ]
}

/// One worker, 100 ms answers, 20 arrivals a second: iteration `i` is due at `i × 50 ms`
/// but cannot start before `i × 100 ms`. A closed-loop prober would report ~100 ms for
/// every sample; the open loop charges the wait, so the last of 10 samples is at least
/// 100 + 450 ms.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fixed_rate_charges_the_backlog_to_the_samples() {
    let sb = slow_health(100).await;
    let cfg = sb.config_str();
    let run = probe(&rate_args(&cfg, "20")).await;
    run.expect_code(0);
    let r = run.json();
    let h = probe_of(&r, "health");
    assert_eq!(h["iterations"], 10, "{h:#}");
    let l = &step_of(h, "health")["latency"];
    assert_eq!(l["samples"], 10, "{l}");
    assert!(secs(&l["min"], "min") >= 0.099, "{l}");
    assert!(
        secs(&l["max"], "max") >= 0.54,
        "the late starts were not charged: {l}"
    );
    let c = &h["completion"];
    assert!(secs(&c["max"], "completion max") >= 0.54, "{c}");

    // Below the worker's capacity nothing is late: samples are the server's 100 ms.
    let run = probe(&rate_args(&cfg, "5")).await;
    run.expect_code(0);
    let r = run.json();
    let l = &step_of(probe_of(&r, "health"), "health")["latency"];
    assert_eq!(l["samples"], 10, "{l}");
    assert!(secs(&l["min"], "min") >= 0.099, "{l}");
    assert!(
        secs(&l["p50"], "p50") < 0.3,
        "an unloaded open loop charged a wait: {l}"
    );
    // And the rate is kept: 10 arrivals at 5/s take at least 1.8 s.
    assert!(secs(&r["duration_seconds"], "duration") >= 1.8, "{r:#}");
}

/// `--duration` with `--rate`: arrivals at 0, 100, ..., 900 ms fall inside one second;
/// the one due at 1 s does not. Without `--iterations` the count comes from the time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duration_bounds_a_run_by_time() {
    let sb = Sb::start().await;
    let cfg = sb.config_str();
    let run = probe(&[
        "run",
        "--config",
        &cfg,
        "--probe",
        "health",
        "--duration",
        "1s",
        "--rate",
        "10",
        "--concurrency",
        "2",
        "--format",
        "json",
    ])
    .await;
    run.expect_code(0);
    let r = run.json();
    let h = probe_of(&r, "health");
    assert_eq!(h["iterations"], 10, "{h:#}");
    assert_eq!(h["successes"], 10, "{h:#}");
    assert!(secs(&r["duration_seconds"], "duration") >= 0.9, "{r:#}");
}

/// A rate or duration that makes no sense is refused before anything runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nonsense_rates_and_durations_are_refused() {
    let sb = Sb::start().await;
    let cfg = sb.config_str();
    for bad in [
        ["--rate", "0"],
        ["--rate", "-3"],
        ["--rate", "NaN"],
        ["--rate", "inf"],
        ["--duration", "0s"],
        ["--duration", "soon"],
    ] {
        let mut args = vec!["run", "--config", &cfg, "--probe", "health"];
        args.extend(bad);
        let run = probe(&args).await;
        run.expect_code(2);
        assert!(
            run.stderr.contains(bad[0]),
            "the error names {}: {}",
            bad[0],
            run.stderr
        );
        assert!(!run.stderr.contains("panicked"), "{}", run.stderr);
    }
}

/// 40 iterations of each purchase flow on 4 workers: one App Store JWT and one Google
/// token for the whole run, as the prober's own count says.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_are_acquired_once_per_run() {
    let sb = Sb::start().await;
    let cfg = sb.config_str();
    let run = probe_env(
        &[
            "run",
            "--config",
            &cfg,
            "--probe",
            "ios-purchase",
            "--probe",
            "android-purchase",
            "--iterations",
            "40",
            "--concurrency",
            "4",
            "--format",
            "json",
        ],
        &[("RUST_LOG", "iap_probe=info"), ("NO_COLOR", "1")],
    )
    .await;
    run.expect_code(0);
    let r = run.json();
    for name in ["ios-purchase", "android-purchase"] {
        let p = probe_of(&r, name);
        assert_eq!(p["successes"], 40, "{p:#}");
    }
    let line = run
        .stderr
        .lines()
        .find(|l| l.contains("credentials acquired"))
        .unwrap_or_else(|| panic!("no credential count logged:\n{}", run.stderr));
    assert!(line.contains("iterations=80"), "{line}");
    assert!(line.contains("app_store_jwt_signatures=1"), "{line}");
    assert!(line.contains("google_token_fetches=1"), "{line}");
}
