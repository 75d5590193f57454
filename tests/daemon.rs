//! `probe daemon` as a process: scheduled runs against a sandbox, `/healthz`, `/metrics`
//! (checked by `promtool check metrics`), `/results/latest`, runs that never overlap,
//! SIGTERM letting the run in flight finish, and bad configs refused at start (exit 2).
//! Every wait is a bounded poll for a condition.

#[path = "fixtures/prober/support.rs"]
mod support;

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use iap_probe::clock::now_ms;
use iap_probe::history::History;
use serde_json::{Value, json};
use support::*;

/// A `probe daemon` child, SIGKILLed on drop if a test ends early.
struct Daemon {
    child: Child,
    url: String,
    log: PathBuf,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

impl Daemon {
    fn stderr(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGTERM, as Kubernetes and systemd stop it.
    fn terminate(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success());
    }

    /// Waits (bounded) for the process to exit.
    async fn exit_within(&mut self, limit: Duration) -> ExitStatus {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                start.elapsed() < limit,
                "the daemon did not exit within {limit:?}\nstderr:\n{}",
                self.stderr()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn spawn(args: &[String], log: &Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_probe"))
        .args(args)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .expect("the probe binary starts")
}

/// Starts `probe daemon --config CFG --interval 1s --listen 127.0.0.1:PORT EXTRA...` on
/// a free port (another if it was taken meanwhile) and waits until it answers /healthz.
async fn start_daemon(dir: &Path, cfg: &str, extra: &[&str]) -> Daemon {
    start_daemon_every(dir, cfg, "1s", extra).await
}

/// [`start_daemon`] with another `--interval`.
async fn start_daemon_every(dir: &Path, cfg: &str, interval: &str, extra: &[&str]) -> Daemon {
    let client = http();
    let mut last = String::new();
    for attempt in 0..5 {
        let port = free_port();
        let mut args: Vec<String> = [
            "daemon",
            "--config",
            cfg,
            "--interval",
            interval,
            "--listen",
            &format!("127.0.0.1:{port}"),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        args.extend(extra.iter().map(|s| s.to_string()));
        let log = dir.join(format!("daemon-{port}-{attempt}.log"));
        let mut d = Daemon {
            child: spawn(&args, &log),
            url: format!("http://127.0.0.1:{port}"),
            log,
        };
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(30) {
            if let Some(status) = d.child.try_wait().unwrap() {
                last = format!("exited {status}: {}", d.stderr());
                assert!(
                    last.contains("cannot listen"),
                    "the daemon died at start: {last}"
                );
                break;
            }
            if let Ok(r) = client.get(format!("{}/healthz", d.url)).send().await
                && r.status() == 200
            {
                return d;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        if d.child.try_wait().unwrap().is_none() {
            panic!(
                "/healthz did not answer 200 within 30 s\nstderr:\n{}",
                d.stderr()
            );
        }
    }
    panic!("no free port for the daemon: {last}");
}

async fn get(url: &str) -> (u16, String, String) {
    let r = http().get(url).send().await.expect("GET");
    let status = r.status().as_u16();
    let ctype = r
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    (status, ctype, r.text().await.unwrap())
}

/// The value of an unlabelled sample in a text exposition.
fn gauge(body: &str, name: &str) -> Option<f64> {
    body.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

/// Polls /metrics until `iap_probe_daemon_runs_total >= n`; returns that body.
async fn metrics_after_runs(d: &Daemon, n: f64, within: Duration) -> String {
    let start = Instant::now();
    loop {
        let (status, _, body) = get(&format!("{}/metrics", d.url)).await;
        assert_eq!(status, 200, "{body}");
        let runs = gauge(&body, "iap_probe_daemon_runs_total").expect("runs counter");
        if runs >= n {
            return body;
        }
        assert!(
            start.elapsed() < within,
            "{runs} runs after {within:?}\nstderr:\n{}",
            d.stderr()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn promtool(body: &str) -> (i32, String) {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool runs (apt-get install prometheus)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(body.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// (started_ms, duration_ms) of every recorded run, in start order.
fn recorded_runs(path: &Path) -> Vec<(i64, i64)> {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.busy_timeout(Duration::from_secs(10)).unwrap();
    let mut stmt = conn
        .prepare("SELECT started_ms, duration_ms FROM runs ORDER BY started_ms")
        .unwrap();
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

/// Replaces a file in one step, so the daemon never reads half of it.
fn replace(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

async fn poll_health(d: &Daemon, want: u16) -> String {
    let start = Instant::now();
    loop {
        let (status, _, body) = get(&format!("{}/healthz", d.url)).await;
        if status == want {
            return body;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "/healthz stayed {status} ({body}), want {want}\nstderr:\n{}",
            d.stderr()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn daemon_serves_metrics_health_and_results_then_stops_on_sigterm() {
    let sb = Sb::start().await;
    let cfg = sb.config_str();
    let mut d = start_daemon(
        sb.dir.path(),
        &cfg,
        &["--probe", "health", "--probe", "ios-purchase"],
    )
    .await;

    let body = metrics_after_runs(&d, 2.0, Duration::from_secs(60)).await;
    let (code, complaints) = promtool(&body);
    assert!(
        code == 0 && complaints.trim().is_empty(),
        "promtool check metrics exited {code}: {complaints}\n{body}"
    );
    assert_eq!(gauge(&body, "iap_probe_daemon_run_error"), Some(0.0));
    for name in ["health", "ios-purchase"] {
        assert!(
            body.lines().any(
                |l| l.starts_with(&format!("iap_probe_success{{probe=\"{name}\","))
                    && l.ends_with(" 1")
            ),
            "{name} passing in /metrics:\n{body}"
        );
    }
    assert!(body.contains("# TYPE iap_probe_daemon_runs_total counter"));

    let (status, ctype, text) = get(&format!("{}/results/latest", d.url)).await;
    assert_eq!(status, 200, "{text}");
    assert!(ctype.starts_with("application/json"), "{ctype}");
    let r: Value = serde_json::from_str(&text).expect("/results/latest is JSON");
    assert_eq!(r["schema_version"], 1);
    assert_eq!(r["verdict"], "pass", "{r:#}");
    assert_eq!(probe_names(&r), ["health", "ios-purchase"]);

    // Runs start an interval apart (each run's start is recorded in the history; the
    // recorded start is after config loading, whose time varies a little).
    let runs = recorded_runs(&sb.path("probe-history.sqlite"));
    assert!(runs.len() >= 2, "{runs:?}");
    for w in runs.windows(2) {
        let gap = w[1].0 - w[0].0;
        assert!(
            gap >= 700,
            "runs {gap} ms apart with --interval 1s: {runs:?}"
        );
    }

    // The port is taken: a second daemon there is refused at start.
    let log = sb.path("second-daemon.log");
    let port = d.url.rsplit(':').next().unwrap().to_string();
    let args: Vec<String> = [
        "daemon",
        "--config",
        &cfg,
        "--interval",
        "1s",
        "--listen",
        &format!("127.0.0.1:{port}"),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let mut second = Daemon {
        child: spawn(&args, &log),
        url: d.url.clone(),
        log,
    };
    let status = second.exit_within(Duration::from_secs(30)).await;
    assert_eq!(status.code(), Some(2), "{}", second.stderr());
    assert!(
        second.stderr().contains("cannot listen"),
        "{}",
        second.stderr()
    );

    // A config broken while running: /healthz says so, /metrics flags it, the last
    // good report stays served; fixed, it recovers.
    let good = sb.read("probe.toml");
    replace(&sb.config(), "[backend]\nbase_url = \"nope\"\n");
    let why = poll_health(&d, 503).await;
    assert!(why.contains("backend.base_url"), "{why}");
    let (_, _, body) = get(&format!("{}/metrics", d.url)).await;
    assert_eq!(gauge(&body, "iap_probe_daemon_run_error"), Some(1.0));
    let (status, _, _) = get(&format!("{}/results/latest", d.url)).await;
    assert_eq!(status, 200);
    replace(&sb.config(), &good);
    poll_health(&d, 200).await;

    d.terminate();
    let status = d.exit_within(Duration::from_secs(30)).await;
    assert_eq!(status.code(), Some(0), "{}", d.stderr());
    assert!(
        d.stderr().contains("probe daemon: stopped"),
        "{}",
        d.stderr()
    );
    // Stopped means stopped listening.
    assert!(
        http()
            .get(format!("{}/healthz", d.url))
            .send()
            .await
            .is_err()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_never_overlap_and_sigterm_lets_the_run_in_flight_finish() {
    // Each run takes longer than the interval: the next starts when it ends, not before.
    let sb = Sb::start_with(faults(json!({
        "route": [{"path": "/iap/verify", "latency": "1200ms"}]
    })))
    .await;
    let mut d = start_daemon(
        sb.dir.path(),
        &sb.config_str(),
        &["--probe", "ios-purchase"],
    )
    .await;
    let body = metrics_after_runs(&d, 2.0, Duration::from_secs(60)).await;
    let done = gauge(&body, "iap_probe_daemon_runs_total").unwrap() as u64;

    let sigterm_ms = now_ms();
    d.terminate();
    let status = d.exit_within(Duration::from_secs(30)).await;
    assert_eq!(status.code(), Some(0), "{}", d.stderr());

    let path = sb.path("probe-history.sqlite");
    let h = History::open(&path).unwrap();
    assert_eq!(h.integrity_check().unwrap(), "ok");
    drop(h);
    let runs = recorded_runs(&path);
    // Runs back to back: one was in flight at SIGTERM; it finished and was recorded.
    assert!(
        runs.len() as u64 > done,
        "{} runs recorded, {done} done before SIGTERM",
        runs.len()
    );
    for (_, took) in &runs {
        assert!(*took >= 1200, "run of {took} ms with a 1.2 s verify");
    }
    // The last run ended after SIGTERM: it was finished, not cut short.
    let (s, took) = runs[runs.len() - 1];
    assert!(
        s + took >= sigterm_ms - 5,
        "the last recorded run ended at {} ms, SIGTERM was sent at {sigterm_ms} ms",
        s + took
    );
    for w in runs.windows(2) {
        let ((s0, d0), (s1, _)) = (w[0], w[1]);
        assert!(
            s0 + d0 <= s1 + 2,
            "runs overlap: one started at {s0} and took {d0} ms, the next started at {s1}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn daemon_with_a_bad_config_exits_2_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("probe.toml");
    std::fs::write(&cfg, "[backend]\nbase_url = \"nope\"\n").unwrap();
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            vec!["--config".into(), cfg.display().to_string()],
            "backend.base_url",
        ),
        (
            vec![
                "--config".into(),
                dir.path().join("missing.toml").display().to_string(),
            ],
            "missing.toml",
        ),
        (
            vec![
                "--config".into(),
                cfg.display().to_string(),
                "--interval".into(),
                "0s".into(),
            ],
            "--interval must be above zero",
        ),
        (
            vec![
                "--config".into(),
                cfg.display().to_string(),
                "--interval".into(),
                "soon".into(),
            ],
            "soon",
        ),
    ];
    for (i, (extra, says)) in cases.into_iter().enumerate() {
        let mut args: Vec<String> = vec!["daemon".into(), "--listen".into(), "127.0.0.1:0".into()];
        args.extend(extra);
        let log = dir.path().join(format!("daemon-{i}.log"));
        let mut d = Daemon {
            child: spawn(&args, &log),
            url: String::new(),
            log,
        };
        let status = d.exit_within(Duration::from_secs(30)).await;
        let err = d.stderr();
        assert_eq!(status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(says), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{err}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jitter_spaces_runs_between_the_interval_and_the_interval_plus_its_share() {
    // src/daemon.rs: the next run starts interval + U[0, jitter) * interval after the
    // previous one started. 250 ms and 100%: starts 250..500 ms apart.
    const INTERVAL: i64 = 250;
    const RUNS: usize = 11;
    let sb = Sb::start().await;
    let mut d = start_daemon_every(
        sb.dir.path(),
        &sb.config_str(),
        "250ms",
        &["--jitter", "100%", "--probe", "health"],
    )
    .await;
    metrics_after_runs(&d, RUNS as f64, Duration::from_secs(60)).await;
    d.terminate();
    let status = d.exit_within(Duration::from_secs(30)).await;
    assert_eq!(status.code(), Some(0), "{}", d.stderr());

    let runs = recorded_runs(&sb.path("probe-history.sqlite"));
    assert!(runs.len() >= RUNS, "{runs:?}");
    let gaps: Vec<i64> = runs.windows(2).map(|w| w[1].0 - w[0].0).collect();
    // The recorded start comes after config loading and credentials, whose time varies a
    // little from run to run (EARLY); a busy shared machine may also wake the timer late
    // (LATE: generous, a CI machine running the whole suite on two cores stalls timers
    // by hundreds of ms). The health runs themselves take a few ms, far below the interval.
    const EARLY: i64 = 50;
    const LATE: i64 = 750;
    for g in &gaps {
        assert!(
            (INTERVAL - EARLY..=2 * INTERVAL + LATE).contains(g),
            "a start {g} ms after the previous one, outside [{INTERVAL}, {}] ms: {gaps:?}",
            2 * INTERVAL
        );
    }
    // Jitter is applied, and drawn per run rather than a fixed extra delay: with 100%,
    // each gap is above 1.3 x interval with chance 0.7 and below 1.7 x with chance 0.7,
    // so ten gaps all on one side of either mark happen with chance 6e-6.
    let widest = *gaps.iter().max().unwrap();
    assert!(
        widest > INTERVAL * 13 / 10,
        "no gap above {} ms with --jitter 100%: {gaps:?}",
        INTERVAL * 13 / 10
    );
    let narrowest = *gaps.iter().min().unwrap();
    assert!(
        narrowest < INTERVAL * 17 / 10,
        "every gap above {} ms: the jitter is not random: {gaps:?}",
        INTERVAL * 17 / 10
    );

    // A share outside 0..100% is refused at start.
    let log = sb.path("bad-jitter.log");
    let args: Vec<String> = ["daemon", "--config", &sb.config_str(), "--jitter", "150%"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let mut bad = Daemon {
        child: spawn(&args, &log),
        url: String::new(),
        log,
    };
    let status = bad.exit_within(Duration::from_secs(30)).await;
    assert_eq!(status.code(), Some(2), "{}", bad.stderr());
    assert!(
        bad.stderr().contains("between 0% and 100%"),
        "{}",
        bad.stderr()
    );
}
