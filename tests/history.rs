//! The run history (SQLite) and the runbook's windowed alert rules, through the real
//! `probe` binary: runs recorded and merged by `probe history`; alerts firing in the
//! run's own report and in `probe history`; retention; concurrent writers; writers killed
//! with SIGKILL. Each test has its own sandbox and store.

#[path = "fixtures/prober/support.rs"]
mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use iap_probe::history::History;
use serde_json::{Value, json};
use support::*;

fn store_path(sb: &Sb) -> PathBuf {
    sb.path("probe-history.sqlite")
}

fn alert<'a>(alerts: &'a Value, rule: &str) -> &'a Value {
    alerts
        .as_array()
        .unwrap_or_else(|| panic!("alerts[] expected, got {alerts}"))
        .iter()
        .find(|a| a["rule"] == rule)
        .unwrap_or_else(|| panic!("no alert rule {rule:?} in {alerts:#}"))
}

fn firing(alerts: &Value, rule: &str) -> bool {
    alert(alerts, rule)["firing"]
        .as_bool()
        .unwrap_or_else(|| panic!("{rule}: firing is not a bool"))
}

async fn history_json(sb: &Sb, extra: &[&str]) -> Value {
    let cfg = sb.config_str();
    let mut args = vec!["history", "--config", &cfg, "--format", "json"];
    args.extend_from_slice(extra);
    let run = probe(&args).await;
    run.expect_code(0);
    run.json()
}

fn window_of<'a>(h: &'a Value, name: &str) -> &'a Value {
    h["probes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["probe"] == name)
        .unwrap_or_else(|| panic!("no probe {name:?} in history:\n{h:#}"))
}

fn window_step<'a>(p: &'a Value, name: &str) -> &'a Value {
    p["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["step"] == name)
        .unwrap_or_else(|| panic!("no step {name:?} in {p:#}"))
}

fn sql_count(path: &Path, sql: &str) -> i64 {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.busy_timeout(Duration::from_secs(10)).unwrap();
    conn.query_row(sql, [], |r| r.get(0)).unwrap()
}

fn run_ids(path: &Path) -> Vec<String> {
    let conn = rusqlite::Connection::open(path).unwrap();
    let mut stmt = conn.prepare("SELECT run_id FROM runs ORDER BY id").unwrap();
    stmt.query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

/// Sound file, and every recorded run complete (one transaction per run).
fn assert_store_sound(path: &Path) {
    let h = History::open(path).expect("the store opens");
    assert_eq!(h.integrity_check().unwrap(), "ok");
    drop(h);
    for table in ["probe_runs", "step_runs", "recorded_values"] {
        let orphans = sql_count(
            path,
            &format!("SELECT COUNT(*) FROM {table} WHERE run NOT IN (SELECT id FROM runs)"),
        );
        assert_eq!(orphans, 0, "{table} rows without their run");
    }
    let partial = sql_count(
        path,
        "SELECT COUNT(*) FROM runs r WHERE NOT EXISTS (SELECT 1 FROM probe_runs p WHERE p.run = r.id)
            OR NOT EXISTS (SELECT 1 FROM step_runs s WHERE s.run = r.id)",
    );
    assert_eq!(partial, 0, "a run was recorded without its probes or steps");
}

fn runs_in(path: &Path) -> u64 {
    let h = History::open(path).unwrap();
    h.summary(0, Duration::from_secs(86_400), None)
        .unwrap()
        .runs
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_counts_runs_and_merges_percentiles() {
    let sb = Sb::start().await;
    let cfg = sb.config_str();
    let mut verify = Vec::new();
    let mut ids = Vec::new();
    for _ in 0..3 {
        let run = probe(&[
            "run",
            "--config",
            &cfg,
            "--probe",
            "health",
            "--probe",
            "ios-purchase",
            "--format",
            "json",
        ])
        .await;
        run.expect_code(0);
        let r = run.json();
        ids.push(str_of(&r["run_id"]).to_string());
        let v = step_of(probe_of(&r, "ios-purchase"), "verify")["latency"]["p50"]
            .as_f64()
            .unwrap();
        verify.push(v);
    }
    assert_eq!(run_ids(&store_path(&sb)), ids);

    let h = history_json(&sb, &[]).await;
    assert_eq!(h["schema_version"], 1);
    assert_eq!(h["window_seconds"], 900, "default window 15m");
    assert_eq!(h["runs"], 3, "{h:#}");
    let names: Vec<&str> = h["probes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| str_of(&p["probe"]))
        .collect();
    assert_eq!(names, ["health", "ios-purchase"]);
    let ios = window_of(&h, "ios-purchase");
    assert_eq!(ios["platform"], "ios");
    assert_eq!(ios["runs"], 3);
    assert_eq!(ios["iterations"], 3);
    assert_eq!(ios["successes"], 3);
    assert_eq!(ios["success_ratio"], 1.0);
    let steps: Vec<&str> = ios["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| str_of(&s["step"]))
        .collect();
    assert_eq!(
        steps,
        [
            "app-store-jwt",
            "health",
            "apple-transaction",
            "verify",
            "entitlement"
        ],
        "steps in flow order"
    );
    let v = window_step(ios, "verify");
    assert_eq!((v["ok"].as_u64(), v["failed"].as_u64()), (Some(3), Some(0)));
    assert_eq!(v["samples"], 3);
    // Percentiles of the merged histograms, not averages of percentiles: with three
    // single-sample runs, p50 is the middle sample and p99 the largest.
    let mut sorted = verify.clone();
    sorted.sort_by(f64::total_cmp);
    let (p50, p95, p99) = (
        v["p50"].as_f64().unwrap(),
        v["p95"].as_f64().unwrap(),
        v["p99"].as_f64().unwrap(),
    );
    assert!((p50 - sorted[1]).abs() < 1e-9, "p50 {p50} vs {sorted:?}");
    assert!((p99 - sorted[2]).abs() < 1e-9, "p99 {p99} vs {sorted:?}");
    assert!(p50 <= p95 && p95 <= p99);
    // The health step of both probes is kept apart by probe.
    let hs = window_step(window_of(&h, "health"), "health");
    assert_eq!(hs["samples"], 3);

    // One probe only; a shorter window; the people's form.
    let only = history_json(&sb, &["--probe", "health", "--window", "5m"]).await;
    assert_eq!(only["window_seconds"], 300);
    assert_eq!(only["probes"].as_array().unwrap().len(), 1);
    assert_eq!(only["probes"][0]["probe"], "health");
    let table = probe(&["history", "--config", &cfg, "--format", "table"]).await;
    table.expect_code(0);
    assert!(table.stdout.contains(": 3 runs"), "{}", table.stdout);
    assert!(
        table.stdout.contains("ios-purchase (ios)"),
        "{}",
        table.stdout
    );
    assert!(table.stdout.contains("alert rules"), "{}", table.stdout);
    let junit = probe(&["history", "--config", &cfg, "--format", "junit"]).await;
    junit.expect_code(2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_without_a_store_is_a_usage_error() {
    let sb = Sb::start().await;
    let run = probe(&["history", "--config", &sb.config_str()]).await;
    run.expect_code(2);
    assert!(run.stderr.contains("no history yet"), "{}", run.stderr);

    // With [history] enabled = false, runs write nothing and `history` says why.
    sb.edit("probe.toml", |s| {
        format!("{s}\n[history]\nenabled = false\n")
    });
    let run = probe(&[
        "run",
        "--config",
        &sb.config_str(),
        "--probe",
        "health",
        "--format",
        "json",
    ])
    .await;
    run.expect_code(0);
    let r = run.json();
    assert!(
        r["alerts"].as_array().is_none_or(|a| a.is_empty()),
        "no history, no windowed alerts: {r:#}"
    );
    assert!(!store_path(&sb).exists());
    let run = probe(&["history", "--config", &sb.config_str()]).await;
    run.expect_code(2);
    assert!(run.stderr.contains("enabled = false"), "{}", run.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_verify_fires_purchase_success_critical() {
    let sb = Sb::start().await;
    let cfg = sb.config_str();
    let args = [
        "run",
        "--config",
        &cfg,
        "--probe",
        "ios-purchase",
        "--format",
        "json",
    ];
    let run = probe(&args).await;
    run.expect_code(0);
    let r = run.json();
    let a = alert(&r["alerts"], "purchase_success_critical");
    assert_eq!(a["firing"], false, "{a:#}");
    assert_eq!(a["value"], 1.0);
    assert_eq!(a["samples"], 1);
    assert_eq!(a["severity"], "critical");
    assert_eq!(a["threshold"], 0.95);
    assert_eq!(a["window_seconds"], 300);

    sb.set_faults(json!({
        "route": [{"path": "/iap/verify", "status": 503, "error_rate": 1.0}]
    }))
    .await;
    for n in 2..=4u64 {
        let run = probe(&args).await;
        run.expect_code(1);
        let r = run.json();
        let a = alert(&r["alerts"], "purchase_success_critical");
        assert_eq!(a["firing"], true, "run {n}: {a:#}");
        assert_eq!(a["samples"], n, "{a:#}");
        let v = a["value"].as_f64().unwrap();
        assert!((v - 1.0 / n as f64).abs() < 1e-9, "{v}");
        assert!(str_of(&a["message"]).contains(&format!("(1/{n})")), "{a:#}");
        assert!(firing(&r["alerts"], "purchase_success_warning"));
        assert!(firing(&r["alerts"], "error_rate_warning"));
        // Verification failing on one platform is not an outage.
        assert!(!firing(&r["alerts"], "complete_outage"));
        assert!(!firing(&r["alerts"], "verify_latency_critical"));
    }

    let h = history_json(&sb, &[]).await;
    assert_eq!(h["runs"], 4);
    let ios = window_of(&h, "ios-purchase");
    assert_eq!(
        (ios["successes"].as_u64(), ios["iterations"].as_u64()),
        (Some(1), Some(4))
    );
    let v = window_step(ios, "verify");
    assert_eq!((v["ok"].as_u64(), v["failed"].as_u64()), (Some(1), Some(3)));
    let a = alert(&h["alerts"], "purchase_success_critical");
    assert_eq!(a["firing"], true, "{a:#}");
    assert_eq!(a["value"], 0.25);
    // The table says so too.
    let table = probe(&[
        "run",
        "--config",
        &cfg,
        "--probe",
        "ios-purchase",
        "--format",
        "table",
    ])
    .await;
    table.expect_code(1);
    assert!(table.stdout.contains("ALERTS firing"), "{}", table.stdout);
    assert!(
        table.stdout.contains("purchase_success_critical"),
        "{}",
        table.stdout
    );
}

/// One ios-purchase run whose verify takes 100 ms, with `alerts` added to `[alerts]`.
/// 100 ms is within the step's own 2 s SLO, so the run itself passes (exit 0).
async fn slow_verify_run(alerts: &str) -> (Sb, Value) {
    let sb = Sb::start_with(faults(json!({
        "route": [{"path": "/iap/verify", "latency": "100ms"}]
    })))
    .await;
    sb.edit("probe.toml", |s| format!("{s}\n[alerts]\n{alerts}\n"));
    let run = probe(&[
        "run",
        "--config",
        &sb.config_str(),
        "--probe",
        "ios-purchase",
        "--format",
        "json",
    ])
    .await;
    run.expect_code(0);
    let r = run.json();
    (sb, r)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_verify_fires_the_latency_warning() {
    let (sb, r) = slow_verify_run("verify_warning_above = \"50ms\"").await;
    let a = alert(&r["alerts"], "verify_latency_warning");
    assert_eq!(a["firing"], true, "{a:#}");
    assert_eq!(a["threshold"], 0.05);
    assert_eq!(a["severity"], "warning");
    assert_eq!(a["samples"], 1);
    let v = a["value"].as_f64().unwrap();
    assert!((0.1..2.0).contains(&v), "{v}");
    assert!(!firing(&r["alerts"], "verify_latency_critical"));
    assert!(!firing(&r["alerts"], "purchase_success_critical"));
    assert!(!firing(&r["alerts"], "purchase_success_warning"));
    let h = history_json(&sb, &[]).await;
    assert!(firing(&h["alerts"], "verify_latency_warning"));
}

/// entitlement-sync with the cache-stats step judged on its status only, so the ratio is
/// recorded whatever it is: isolates the alert rule from the step's own expectation.
fn lenient_cache_probe(sb: &Sb) {
    sb.edit("probes/entitlement-sync.toml", |s| {
        s.replace(
            "expect = { status = 200, json = { \"$.hitRatio\" = { gte = 0.85 } } }",
            "expect = { status = 200 }",
        )
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn low_cache_hit_ratio_fires_the_cache_warning_over_the_window() {
    let sb = Sb::start().await;
    lenient_cache_probe(&sb);
    let cfg = sb.config_str();
    let args = [
        "run",
        "--config",
        &cfg,
        "--probe",
        "entitlement-sync",
        "--format",
        "json",
    ];
    let run = probe(&args).await;
    run.expect_code(0);
    let r = run.json();
    let healthy = probe_of(&r, "entitlement-sync")["values"]["cache_hit_ratio"]["last"]
        .as_f64()
        .unwrap_or_else(|| panic!("cache_hit_ratio recorded: {r:#}"));
    assert!(healthy > 0.85, "{healthy}");
    let a = alert(&r["alerts"], "cache_hit_ratio_warning");
    assert_eq!(a["firing"], false, "{a:#}");
    assert_eq!(
        a["window_seconds"], 1800,
        "default cache_warning_window 30m"
    );
    assert_eq!(a["samples"], 1);

    sb.set_faults(json!({"cache_hit_degradation": 1.0})).await;
    let run = probe(&args).await;
    run.expect_code(0);
    let r = run.json();
    let low = probe_of(&r, "entitlement-sync")["values"]["cache_hit_ratio"]["last"]
        .as_f64()
        .unwrap();
    assert!(low < 0.2, "{low}");
    // The mean over the window, not the last figure.
    let a = alert(&r["alerts"], "cache_hit_ratio_warning");
    assert_eq!(a["samples"], 2, "{a:#}");
    let mean = a["value"].as_f64().unwrap();
    assert!((mean - (healthy + low) / 2.0).abs() < 1e-6, "{mean}");
    assert_eq!(a["firing"], mean < 0.8, "{a:#}");
    assert_eq!(a["firing"], true, "{a:#}");
    let h = history_json(&sb, &[]).await;
    assert!(firing(&h["alerts"], "cache_hit_ratio_warning"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn low_cache_hit_ratio_from_the_shipped_probe_fires_the_cache_warning() {
    let sb = Sb::start_with(faults(json!({"cache_hit_degradation": 1.0}))).await;
    let run = probe(&[
        "run",
        "--config",
        &sb.config_str(),
        "--probe",
        "entitlement-sync",
        "--format",
        "json",
    ])
    .await;
    // The step fails its own >= 85% expectation: that is fine.
    run.expect_code(1);
    let r = run.json();
    let p = probe_of(&r, "entitlement-sync");
    assert_eq!(step_of(p, "cache-stats")["verdict"], "fail", "{p:#}");
    let a = alert(&r["alerts"], "cache_hit_ratio_warning");
    assert_eq!(a["samples"], 1, "the low ratio is recorded: {a:#}");
    assert_eq!(a["firing"], true, "{a:#}");
    let h = history_json(&sb, &[]).await;
    assert!(firing(&h["alerts"], "cache_hit_ratio_warning"));
}

fn started_at(r: &Value) -> SystemTime {
    humantime::parse_rfc3339(str_of(&r["started_at"])).expect("started_at is RFC 3339")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_prunes_runs_older_than_it() {
    let sb = Sb::start().await;
    sb.edit("probe.toml", |s| {
        format!("{s}\n[history]\nretention = \"1s\"\n")
    });
    let cfg = sb.config_str();
    let args = [
        "run", "--config", &cfg, "--probe", "health", "--format", "json",
    ];
    let run = probe(&args).await;
    run.expect_code(0);
    let first = run.json();
    assert_eq!(runs_in(&store_path(&sb)), 1);
    // Wait (by the clock) until the first run is well past the retention.
    let old = started_at(&first) + Duration::from_millis(1500);
    let limit = Instant::now() + Duration::from_secs(10);
    while SystemTime::now() < old {
        assert!(Instant::now() < limit, "the clock does not move");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let run = probe(&args).await;
    run.expect_code(0);
    let second = run.json();

    let path = store_path(&sb);
    assert_eq!(run_ids(&path), [str_of(&second["run_id"]).to_string()]);
    assert_store_sound(&path);
    let h = history_json(&sb, &["--window", "1h"]).await;
    assert_eq!(h["runs"], 1, "{h:#}");
    assert_eq!(window_of(&h, "health")["runs"], 1);
    assert_eq!(window_step(window_of(&h, "health"), "health")["samples"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_runs_share_the_store_without_corrupting_it() {
    let sb = Sb::start().await;
    let cfg = sb.config_str();
    // Round 0 starts on a fresh file: the writers race to create the schema too.
    for round in 0..3 {
        let before = if round == 0 {
            assert!(!store_path(&sb).exists());
            0
        } else {
            runs_in(&store_path(&sb))
        };
        let args = [
            "run",
            "--config",
            &cfg,
            "--probe",
            "health",
            "--probe",
            "ios-purchase",
            "--format",
            "json",
        ];
        let (a, b) = tokio::join!(probe(&args), probe(&args));
        let mut ids = Vec::new();
        for run in [&a, &b] {
            run.expect_code(0);
            assert!(
                !run.stderr.contains("not evaluated") && !run.stderr.contains("history"),
                "a writer could not record: {}",
                run.stderr
            );
            let r = run.json();
            assert!(
                !r["alerts"].as_array().unwrap().is_empty(),
                "windowed alerts evaluated: {r:#}"
            );
            ids.push(str_of(&r["run_id"]).to_string());
        }
        let path = store_path(&sb);
        assert_store_sound(&path);
        assert_eq!(runs_in(&path), before + 2, "round {round}");
        let recorded = run_ids(&path);
        for id in &ids {
            assert!(recorded.contains(id), "run {id} not recorded: {recorded:?}");
        }
    }
}

fn spawn_probe(args: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_probe"))
        .args(args)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("the probe binary starts")
}

/// SIGKILL (`Child::kill`) after `after`, then reap.
async fn kill_after(mut child: Child, after: Duration) {
    tokio::time::sleep(after).await;
    let _ = child.kill();
    let limit = Instant::now() + Duration::from_secs(10);
    loop {
        if child.try_wait().unwrap().is_some() {
            return;
        }
        assert!(Instant::now() < limit, "a SIGKILLed probe did not exit");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_at_any_moment_leaves_the_store_sound() {
    let sb = Sb::start().await;
    let cfg = sb.config_str();
    let path = store_path(&sb);
    let short = [
        "run", "--config", &cfg, "--probe", "health", "--format", "json",
    ];
    // A whole short run, timed: the kills below straddle its end, where it writes.
    let t0 = Instant::now();
    probe(&short).await.expect_code(0);
    let whole = t0.elapsed();
    assert_eq!(runs_in(&path), 1);

    // A busy sampling run, killed at a few different moments.
    let busy = [
        "run",
        "--config",
        &cfg,
        "--probe",
        "health",
        "--iterations",
        "100000",
        "--concurrency",
        "4",
        "--format",
        "json",
    ];
    for i in 0..5u64 {
        let child = spawn_probe(&busy);
        kill_after(child, Duration::from_millis(50 + 120 * i)).await;
        assert_store_sound(&path);
    }
    // Short runs killed from early on to after they should have finished writing.
    for k in 1..=8u32 {
        let child = spawn_probe(&short);
        kill_after(child, whole * k / 6).await;
        assert_store_sound(&path);
    }
    let before = runs_in(&path);
    assert!(before >= 1);
    let run = probe(&short).await;
    run.expect_code(0);
    assert!(
        !run.json()["alerts"].as_array().unwrap().is_empty(),
        "windowed alerts after the kills"
    );
    assert_eq!(runs_in(&path), before + 1, "a new run still records");
    assert_store_sound(&path);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_store_is_wal_and_its_histograms_are_hdr_v2() {
    let sb = Sb::start().await;
    let run = probe(&[
        "run",
        "--config",
        &sb.config_str(),
        "--probe",
        "ios-purchase",
        "--iterations",
        "5",
        "--format",
        "json",
    ])
    .await;
    run.expect_code(0);
    let r = run.json();
    let latency = &step_of(probe_of(&r, "ios-purchase"), "verify")["latency"];

    // WAL is a property of the file: a fresh connection (not the prober's) sees it.
    let conn = rusqlite::Connection::open(store_path(&sb)).unwrap();
    let mode: String = conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");

    let blob: Vec<u8> = conn
        .query_row(
            "SELECT histogram FROM step_runs WHERE probe = 'ios-purchase' AND step = 'verify'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    // hdrhistogram's V2 cookie (uncompressed, word size 8), big-endian, then the data.
    assert_eq!(
        u32::from_be_bytes(blob[..4].try_into().unwrap()),
        0x1c84_9313,
        "not the V2 encoding"
    );
    let h: hdrhistogram::Histogram<u64> = hdrhistogram::serialization::Deserializer::new()
        .deserialize(&mut &blob[..])
        .expect("the V2 deserializer reads the stored blob");
    // The same samples as the run's report (microseconds there, seconds here).
    assert_eq!(h.len(), 5);
    assert_eq!(latency["samples"], 5);
    let sec = |micros: u64| micros as f64 / 1e6;
    assert_eq!(
        sec(h.value_at_quantile(0.5)),
        latency["p50"].as_f64().unwrap()
    );
    assert_eq!(
        sec(h.value_at_quantile(0.99)),
        latency["p99"].as_f64().unwrap()
    );
    assert_eq!(sec(h.max()), latency["max"].as_f64().unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_verify_fires_the_latency_critical_rule() {
    // The runbook's 10 s over 5 min, scaled down so a 100 ms verify crosses it.
    let (sb, r) = slow_verify_run("verify_critical_above = \"50ms\"").await;
    let a = alert(&r["alerts"], "verify_latency_critical");
    assert_eq!(a["firing"], true, "{a:#}");
    assert_eq!(a["severity"], "critical");
    assert_eq!(a["threshold"], 0.05);
    assert_eq!(
        a["window_seconds"], 300,
        "default verify_critical_window 5m"
    );
    assert_eq!(a["samples"], 1);
    let v = a["value"].as_f64().unwrap();
    assert!((0.1..2.0).contains(&v), "{v}");
    assert!(str_of(&a["message"]).contains("> 50 ms"), "{a:#}");
    // The warning rule keeps its 5 s default and stays quiet.
    assert!(!firing(&r["alerts"], "verify_latency_warning"));
    let h = history_json(&sb, &[]).await;
    assert!(firing(&h["alerts"], "verify_latency_critical"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_configured_window_decides_which_runs_a_rule_sees() {
    let sb = Sb::start_with(faults(json!({
        "route": [{"path": "/iap/verify", "status": 503, "error_rate": 1.0}]
    })))
    .await;
    sb.edit("probe.toml", |s| {
        format!("{s}\n[alerts]\npurchase_critical_window = \"1s\"\n")
    });
    let cfg = sb.config_str();
    let args = [
        "run",
        "--config",
        &cfg,
        "--probe",
        "ios-purchase",
        "--format",
        "json",
    ];
    let run = probe(&args).await;
    run.expect_code(1);
    let failed = run.json();
    let a = alert(&failed["alerts"], "purchase_success_critical");
    assert_eq!(a["window_seconds"], 1, "{a:#}");
    assert_eq!(a["firing"], true, "{a:#}");
    assert!(str_of(&a["message"]).contains("over 1"), "{a:#}");

    // Wait (by the clock: the window is about time) until the failed run is out of 1 s.
    let old = started_at(&failed) + Duration::from_millis(1500);
    let limit = Instant::now() + Duration::from_secs(10);
    while SystemTime::now() < old {
        assert!(Instant::now() < limit, "the clock does not move");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    sb.set_faults(json!({})).await;
    let run = probe(&args).await;
    run.expect_code(0);
    let r = run.json();
    // The 1 s window holds the passing run only...
    let a = alert(&r["alerts"], "purchase_success_critical");
    assert_eq!(
        (a["samples"].as_u64(), a["value"].as_f64()),
        (Some(1), Some(1.0)),
        "{a:#}"
    );
    assert_eq!(a["firing"], false, "{a:#}");
    // ...while the default 15 min warning window, over the same store, still sees both.
    let w = alert(&r["alerts"], "purchase_success_warning");
    assert_eq!(w["window_seconds"], 900);
    assert_eq!(
        (w["samples"].as_u64(), w["value"].as_f64()),
        (Some(2), Some(0.5)),
        "{w:#}"
    );
    assert_eq!(w["firing"], true, "{w:#}");
}
