//! The application layer: what each command does, from engine options to a report.
//! `main.rs` parses the command line into these options and maps errors to exit codes;
//! nothing here knows about clap.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::config::{self, Config, ConfigError};
use crate::history::{AlertState, History, WindowSummary};
use crate::probe::{DEFAULT_BUILTINS, LoadError, Platform, Probe, load_dir};
use crate::report::{self, Format, Report};
use crate::runner::{self, Engine, RunOptions, SetupError};
use crate::sandbox::{self, SandboxError, SandboxOptions};

/// Why a command could not run. Every variant maps to an exit code.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("{0}")]
    Usage(String),
    #[error("{0}")]
    Config(#[from] ConfigError),
    #[error("{0}")]
    Probes(#[from] LoadError),
    #[error("{0}")]
    Setup(#[from] SetupError),
    #[error("{0}")]
    Sandbox(#[from] SandboxError),
    #[error("cannot write {path}: {reason}")]
    Output { path: PathBuf, reason: String },
    #[error("internal error: {0}")]
    Internal(String),
}

impl AppError {
    /// 2: usage, config or credential-file error (nothing was probed); 3: internal.
    pub fn exit_code(&self) -> u8 {
        match self {
            AppError::Internal(_) => 3,
            _ => 2,
        }
    }
}

/// Which probes to run.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    /// `None` or `Some(Platform::Any)`: all platforms.
    pub platform: Option<Platform>,
    pub probes: Vec<String>,
}

/// Loads the config and every probe file: the one path `check`, `list` and `run` share.
pub fn load(config_path: &Path) -> Result<(Config, Vec<Probe>), AppError> {
    let config = config::load(config_path)?;
    let probes = load_dir(&config.probes_dir, DEFAULT_BUILTINS)?;
    let missing = missing_fixtures(&config, &probes);
    if !missing.is_empty() {
        return Err(AppError::Usage(missing.join("\n")));
    }
    Ok((config, probes))
}

/// Every `fixture.*` a probe uses must be in probe.toml for its platform.
fn missing_fixtures(config: &Config, probes: &[Probe]) -> Vec<String> {
    let mut out = Vec::new();
    for p in probes {
        for s in &p.steps {
            for v in &s.variables {
                let section = match v.as_str() {
                    "apple" | "bundle_id" if config.apple.is_none() => "[apple]",
                    "google" | "package_name" if config.google.is_none() => "[google]",
                    _ => continue,
                };
                out.push(format!(
                    "{}: line {}: step.{}: uses {{{{{v}}}}}, but {} has no {section} section",
                    p.source.display(),
                    s.line,
                    s.name,
                    config.path.display()
                ));
            }
        }
        let have = config.fixture_vars(p.platform);
        for f in p.fixtures_used() {
            let name = f.trim_start_matches("fixture.");
            if !have.contains_key(name) {
                let group = match p.platform {
                    Platform::Ios => "ios",
                    Platform::Android => "android",
                    Platform::Any => "common",
                };
                out.push(format!(
                    "{}: probe {} uses {{{{{f}}}}}, but {} has no {name} in [fixtures.{group}]",
                    p.source.display(),
                    p.name,
                    config.path.display()
                ));
            }
        }
    }
    out
}

/// Applies `--platform` and `--probe`.
pub fn select(probes: Vec<Probe>, sel: &Selection) -> Result<Vec<Probe>, AppError> {
    for name in &sel.probes {
        if !probes.iter().any(|p| &p.name == name) {
            let known: Vec<&str> = probes.iter().map(|p| p.name.as_str()).collect();
            return Err(AppError::Usage(format!(
                "no probe named {name:?}; known probes: {}",
                known.join(", ")
            )));
        }
    }
    let chosen: Vec<Probe> = probes
        .into_iter()
        .filter(|p| sel.probes.is_empty() || sel.probes.contains(&p.name))
        .filter(|p| match sel.platform {
            None | Some(Platform::Any) => true,
            // Platform-independent probes (health, sync) belong to every platform's run.
            Some(want) => p.platform == want || p.platform == Platform::Any,
        })
        .collect();
    if chosen.is_empty() {
        return Err(AppError::Usage("the selection matches no probe".into()));
    }
    Ok(chosen)
}

/// Options for `probe run` and `probe demo`.
#[derive(Debug, Clone)]
pub struct RunRequest {
    pub selection: Selection,
    /// Iterations per probe; `u64::MAX` with `duration`: as many as fit.
    pub iterations: u64,
    pub concurrency: Option<usize>,
    pub deadline: Option<Duration>,
    /// Fixed arrival rate (iterations per second per probe), corrected for coordinated
    /// omission; `None`: each worker starts its next iteration when the last one ends.
    pub rate: Option<f64>,
    /// Time-bounded sampling: start iterations for this long.
    pub duration: Option<Duration>,
    /// A progress bar on stderr for runs longer than a second (people, not CI logs).
    pub progress: bool,
}

impl Default for RunRequest {
    fn default() -> Self {
        RunRequest {
            selection: Selection::default(),
            iterations: 1,
            concurrency: None,
            deadline: None,
            rate: None,
            duration: None,
            progress: false,
        }
    }
}

/// Runs the selected probes of `config_path` and judges them.
pub async fn run(config_path: &Path, req: &RunRequest) -> Result<Report, AppError> {
    let (config, probes) = load(config_path)?;
    let probes = select(probes, &req.selection)?;
    if req.iterations == 0 {
        return Err(AppError::Usage("--iterations must be at least 1".into()));
    }
    if let Some(r) = req.rate
        && !(r.is_finite() && r > 0.0)
    {
        return Err(AppError::Usage(format!(
            "--rate {r}: write iterations per second above zero, e.g. 100 or 0.5"
        )));
    }
    // A time-bounded run gets the configured deadline on top of its duration, so the
    // last iterations may finish; an explicit deadline must leave room for the duration.
    let deadline = match (req.deadline, req.duration) {
        (_, Some(d)) if d.is_zero() => {
            return Err(AppError::Usage("--duration must be above zero".into()));
        }
        (Some(dl), Some(d)) if dl <= d => {
            return Err(AppError::Usage(format!(
                "--deadline {} must be longer than --duration {}",
                humantime::format_duration(dl),
                humantime::format_duration(d)
            )));
        }
        (Some(dl), _) => dl,
        (None, Some(d)) => d + config.deadline,
        (None, None) => config.deadline,
    };
    let opts = RunOptions {
        iterations: req.iterations,
        concurrency: req.concurrency.unwrap_or(config.concurrency).max(1),
        deadline,
        rate: req.rate,
        duration: req.duration,
        progress: req.progress,
    };
    let environment = config.environment.clone();
    let targets = config.slo.clone();
    let backend = config.backend_url.clone();
    let history = config.history.clone();
    let rules = config.alerts.clone();
    let alerting = config.alerting.clone();
    let engine = Engine::new(config, probes).await?;
    let outcome = runner::run(engine, &opts).await;
    let mut report = report::model::build_with_backend(&outcome, &environment, &targets, &backend);
    if let Some(h) = history {
        let started_ms = outcome
            .started
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        let snapshot = report.clone();
        let evaluated = tokio::task::spawn_blocking(move || {
            let mut store = History::open(&h.path)?;
            store.record(&snapshot, started_ms, h.retention)?;
            rules.evaluate(&store, crate::clock::now_ms())
        })
        .await;
        match evaluated {
            Ok(Ok(alerts)) => report.alerts = alerts,
            // The run's own verdict stands; a broken store must not hide it.
            Ok(Err(e)) => tracing::warn!("{e}; windowed alerts not evaluated"),
            Err(e) => tracing::warn!("history task failed: {e}"),
        }
    }
    crate::alert::announce(alerting.as_ref(), &mut report).await;
    Ok(report)
}

/// `probe history`: the window's runs, success ratios, merged percentiles and alerts.
pub async fn history(
    config_path: &Path,
    window: Duration,
    probe: Option<String>,
) -> Result<(WindowSummary, Vec<AlertState>), AppError> {
    let config = config::load(config_path)?;
    let h = config
        .history
        .clone()
        .ok_or_else(|| AppError::Usage("[history] enabled = false in probe.toml".into()))?;
    if !h.path.exists() {
        return Err(AppError::Usage(format!(
            "no history yet at {}: run `probe run` first",
            h.path.display()
        )));
    }
    let rules = config.alerts.clone();
    tokio::task::spawn_blocking(move || {
        let store = History::open(&h.path)?;
        let now = crate::clock::now_ms();
        let summary = store.summary(now - window.as_millis() as i64, window, probe.as_deref())?;
        let alerts = rules.evaluate(&store, now)?;
        Ok::<_, crate::history::HistoryError>((summary, alerts))
    })
    .await
    .map_err(|e| AppError::Internal(e.to_string()))?
    .map_err(|e| AppError::Usage(e.to_string()))
}

/// Starts the embedded sandbox, runs every shipped probe against it, stops it.
pub async fn demo(faults: Option<&Path>, req: &RunRequest) -> Result<Report, AppError> {
    let mut options = SandboxOptions::default();
    if let Some(path) = faults {
        options.faults = sandbox::load_faults(path)?;
    }
    let dir = tempfile::Builder::new()
        .prefix("iap-probe-demo-")
        .tempdir()
        .map_err(|e| AppError::Internal(format!("cannot create a temporary folder: {e}")))?;
    let running = sandbox::start("127.0.0.1:0", dir.path(), options).await?;
    let result = run(&dir.path().join("probe.toml"), req).await;
    running.stop().await;
    result
}

/// Writes the rendered report to `path`.
pub fn write_output(path: &Path, text: &str) -> Result<(), AppError> {
    std::fs::write(path, text).map_err(|e| AppError::Output {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

/// Pushes the report's metrics to a Prometheus Pushgateway.
pub async fn push(gateway: &str, report: &Report) -> Result<(), crate::report::push::PushError> {
    let client = runner::context::http_client(Duration::from_secs(10)).map_err(|e| {
        crate::report::push::PushError {
            url: gateway.to_string(),
            reason: e.to_string(),
        }
    })?;
    crate::report::push::push(&client, gateway, report).await
}

pub fn render(report: &Report, format: Format, color: bool) -> String {
    report::render(report, format, color)
}

/// `probe check`: validates config, probes, fixtures and credential files, offline.
pub async fn check(config_path: &Path) -> Result<String, AppError> {
    let (config, probes) = load(config_path)?;
    let n = probes.len();
    let steps: usize = probes.iter().map(|p| p.steps.len()).sum();
    // Parse keys and read secrets without contacting anyone.
    let engine = Engine::new(config, probes).await?;
    Ok(format!(
        "{}: ok — {n} probes, {steps} steps; credentials readable (apple: {}, google: {}, admin token: {})",
        engine.config.path.display(),
        yes(engine.apple.is_some()),
        yes(engine.google.is_some()),
        yes(engine.admin.is_some()),
    ))
}

fn yes(b: bool) -> &'static str {
    if b { "yes" } else { "not needed" }
}

/// `probe list`: probes, platforms, steps and SLOs.
pub fn list(config_path: &Path) -> Result<String, AppError> {
    use std::fmt::Write as _;
    let (config, probes) = load(config_path)?;
    let mut out = String::new();
    for p in &probes {
        let _ = writeln!(
            out,
            "{} ({}){}",
            p.name,
            p.platform,
            p.description
                .as_ref()
                .map(|d| format!(" — {d}"))
                .unwrap_or_default()
        );
        for info in runner::plan(p) {
            let line = match info.index {
                None => format!("  {:<20} credential", info.name),
                Some(i) => {
                    let s = &p.steps[i];
                    let mut slo = Vec::new();
                    for (k, v) in [
                        ("p50", s.slo.p50),
                        ("p95", s.slo.p95),
                        ("p99", s.slo.p99),
                        ("critical", s.slo.critical),
                    ] {
                        if let Some(v) = v {
                            slo.push(format!("{k} {}", crate::slo::verdict::fmt_duration(v)));
                        }
                    }
                    let poll = s
                        .poll
                        .as_ref()
                        .map(|p| {
                            format!(
                                " poll every {} within {}",
                                crate::slo::verdict::fmt_duration(p.every),
                                crate::slo::verdict::fmt_duration(p.within)
                            )
                        })
                        .unwrap_or_default();
                    format!(
                        "  {:<20} {} {} auth={}{poll}{}",
                        s.name,
                        s.request.method,
                        s.request.url,
                        s.auth.as_str(),
                        if slo.is_empty() {
                            String::new()
                        } else {
                            format!("  slo: {}", slo.join(", "))
                        }
                    )
                }
            };
            let _ = writeln!(out, "{line}");
        }
    }
    let t = &config.slo;
    let _ = writeln!(
        out,
        "\nrun targets: purchase success >= {}% (critical < {}%), other probes >= {}%, purchase completion p99 <= {}",
        t.purchase_success_rate * 100.0,
        t.purchase_success_critical * 100.0,
        t.success_rate * 100.0,
        crate::slo::verdict::fmt_duration(t.purchase_completion.0)
    );
    Ok(out)
}

/// Which credential `probe token` acquires.
#[derive(Debug, Clone, Copy)]
pub enum TokenKind {
    Apple,
    Google,
}

/// `probe token`: acquires a credential and describes it — never the secret itself.
pub async fn token(config_path: &Path, kind: TokenKind) -> Result<String, AppError> {
    let config = config::load(config_path)?;
    let dummy = match kind {
        TokenKind::Apple => crate::probe::Auth::AppStore,
        TokenKind::Google => crate::probe::Auth::GooglePlay,
    };
    let probe = credential_probe(dummy);
    let engine = Engine::new(config, vec![probe]).await?;
    let start = Instant::now();
    match kind {
        TokenKind::Apple => {
            let signer = engine
                .apple
                .as_ref()
                .ok_or_else(|| AppError::Internal("no signer".into()))?;
            let t = signer.token().map_err(|e| AppError::Setup(e.into()))?;
            let took = start.elapsed();
            let header = serde_json::json!({"alg": "ES256", "kid": signer.key_id, "typ": "JWT"});
            Ok(format!(
                "App Store Server API JWT (not shown)\n  header:   {header}\n  claims:   {}\n  lifetime: {} s\n  took:     {}\n",
                serde_json::to_string(&t.claims).unwrap_or_default(),
                t.claims
                    .exp
                    .saturating_sub(t.claims.iat.unwrap_or(t.claims.exp)),
                crate::slo::verdict::fmt_duration(took)
            ))
        }
        TokenKind::Google => {
            let g = engine
                .google
                .as_ref()
                .ok_or_else(|| AppError::Internal("no token source".into()))?;
            let t = g.token().await.map_err(|e| AppError::Setup(e.into()))?;
            let took = start.elapsed();
            let left = t
                .expires_at
                .and_then(|e| e.duration_since(std::time::SystemTime::now()).ok())
                .map(|d| format!("{} s", d.as_secs()))
                .unwrap_or_else(|| "unknown".into());
            Ok(format!(
                "Google OAuth2 access token (not shown)\n  account:   {}\n  token_uri: {}\n  scope:     {}\n  expires:   {}\n  lifetime:  {left}\n  took:      {}\n",
                g.client_email,
                g.token_uri,
                crate::auth::google::ANDROID_PUBLISHER_SCOPE,
                t.expires_at
                    .map(|e| humantime::format_rfc3339_seconds(e).to_string())
                    .unwrap_or_else(|| "unknown".into()),
                crate::slo::verdict::fmt_duration(took)
            ))
        }
    }
}

/// A one-step probe that makes `Engine::new` load exactly one credential.
fn credential_probe(auth: crate::probe::Auth) -> Probe {
    let src = format!(
        "name = \"token\"\nplatform = \"any\"\n[[step]]\nname = \"token\"\nauth = \"{}\"\nrequest = {{ url = \"http://127.0.0.1/\" }}\n",
        auth.as_str()
    );
    crate::probe::load_str(&src, Path::new("<token>"), DEFAULT_BUILTINS)
        .expect("the built-in credential probe is valid")
}
