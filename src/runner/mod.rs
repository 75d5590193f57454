//! Executes probes: every selected probe concurrently, each for `iterations` rounds on
//! `concurrency` workers. Workers keep their own histograms (no locks on the hot path)
//! and merge at the end. Every request has a timeout and the run a deadline, so a run
//! always ends and always reports.

pub mod context;
pub mod http;
pub mod signed;
pub mod step;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

pub use context::{Engine, SetupError};

use crate::probe::{Auth, Probe, Vars};
use crate::slo::{FailureKind, ProbeStats};
use step::StepResult;

/// How much to run.
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub iterations: u64,
    pub concurrency: usize,
    pub deadline: Duration,
}

/// A step as reported: the probe's own steps after the credential steps they need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepInfo {
    pub name: String,
    /// The credential this step acquires, for credential steps.
    pub credential: Option<Auth>,
    /// Index into `Probe::steps` for HTTP steps.
    pub index: Option<usize>,
}

/// Credential steps first (in order of first use), then the probe's steps.
pub fn plan(probe: &Probe) -> Vec<StepInfo> {
    let mut out: Vec<StepInfo> = Vec::new();
    for s in &probe.steps {
        let name = match s.auth {
            Auth::AppStore => "app-store-jwt",
            Auth::GooglePlay => "google-token",
            _ => continue,
        };
        if !out.iter().any(|c| c.name == name) {
            out.push(StepInfo {
                name: name.into(),
                credential: Some(s.auth),
                index: None,
            });
        }
    }
    for (i, s) in probe.steps.iter().enumerate() {
        out.push(StepInfo {
            name: s.name.clone(),
            credential: None,
            index: Some(i),
        });
    }
    out
}

/// The first failure seen in a probe's iterations: where it stopped and why.
#[derive(Debug, Clone)]
pub struct FirstFailure {
    pub step: usize,
    pub kind: FailureKind,
    pub reason: String,
    pub status: Option<u16>,
}

/// One probe's outcome over all its iterations.
#[derive(Debug, Clone)]
pub struct ProbeRun {
    pub probe: Probe,
    pub steps: Vec<StepInfo>,
    pub stats: ProbeStats,
    pub first_failure: Option<FirstFailure>,
}

impl ProbeRun {
    pub fn iterations(&self) -> u64 {
        self.stats.total.attempts()
    }
}

#[derive(Debug, Clone)]
pub struct RunOutcome {
    pub run_id: String,
    pub started: SystemTime,
    pub elapsed: Duration,
    pub deadline: Duration,
    pub deadline_hit: bool,
    pub probes: Vec<ProbeRun>,
}

pub fn new_run_id() -> String {
    let r: u32 = rand::random();
    format!("{:x}{:04x}", crate::clock::now_ms() / 1000, r & 0xffff)
}

fn base_vars(engine: &Engine, probe: &Probe, run_id: &str) -> Vars {
    let c = &engine.config;
    let mut v = Vars::new();
    v.set("backend", c.backend_url.clone());
    v.set("run_id", run_id);
    if let Some(a) = &c.apple {
        v.set("apple", a.base_url.clone());
        v.set("bundle_id", a.bundle_id.clone());
    }
    if let Some(g) = &c.google {
        v.set("google", g.base_url.clone());
        v.set("package_name", g.package_name.clone());
    }
    for (k, val) in c.fixture_vars(probe.platform) {
        v.set(format!("fixture.{k}"), val);
    }
    v
}

fn record(stats: &mut ProbeStats, i: usize, r: &StepResult) {
    let s = &mut stats.steps[i];
    s.retries += r.retries as u64;
    if let Some(code) = r.status {
        s.last_status = Some(code);
    }
    match &r.failure {
        None => {
            s.ok += 1;
            if let Some(l) = r.latency {
                s.record_latency(l);
            }
        }
        Some((kind, reason)) => {
            s.record_failure(*kind, reason);
            // A slow failure is still a latency figure; a refused connection is not.
            if matches!(
                kind,
                FailureKind::Assertion | FailureKind::Timeout | FailureKind::Poll
            ) && let Some(l) = r.latency
            {
                s.record_latency(l);
            }
        }
    }
}

/// One pass through a probe. Returns the first failure, if any.
async fn iterate(
    engine: &Engine,
    probe: &Probe,
    steps: &[StepInfo],
    base: &Vars,
    user: String,
    deadline: Instant,
    stats: &mut ProbeStats,
) -> Option<FirstFailure> {
    let mut vars = base.clone();
    vars.set("user", user);
    let start = Instant::now();
    let mut failure: Option<FirstFailure> = None;
    for (i, info) in steps.iter().enumerate() {
        if failure.is_some() {
            stats.steps[i].skipped += 1;
            continue;
        }
        tracing::trace!(probe = %probe.name, step = %info.name, "step starts");
        let r = match (info.credential, info.index) {
            (Some(auth), _) => step::credential(engine, auth, deadline).await,
            (None, Some(idx)) => step::run(engine, &probe.steps[idx], &mut vars, deadline).await,
            (None, None) => continue,
        };
        tracing::debug!(
            probe = %probe.name,
            step = %info.name,
            status = ?r.status,
            latency_ms = r.latency.map(|l| l.as_secs_f64() * 1000.0),
            retries = r.retries,
            failure = ?r.failure.as_ref().map(|(k, reason)| format!("{k:?}: {reason}")),
            "step done"
        );
        record(stats, i, &r);
        for (name, v) in &r.values {
            stats.record_value(name, *v);
        }
        if let Some((kind, reason)) = r.failure {
            failure = Some(FirstFailure {
                step: i,
                kind,
                reason,
                status: r.status,
            });
        }
    }
    match &failure {
        None => {
            stats.total.ok += 1;
            stats.total.record_latency(start.elapsed());
        }
        Some(f) => stats.total.record_failure(f.kind, &f.reason),
    }
    failure
}

async fn run_probe(
    engine: Arc<Engine>,
    index: usize,
    run_id: String,
    opts: RunOptions,
    deadline: Instant,
) -> ProbeRun {
    let probe = &engine.probes[index];
    let steps = plan(probe);
    let base = base_vars(&engine, probe, &run_id);
    let next = Arc::new(AtomicU64::new(0));
    let workers = opts.concurrency.clamp(1, opts.iterations.max(1) as usize);
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..workers {
        let (engine, next, steps, base, run_id) = (
            engine.clone(),
            next.clone(),
            steps.clone(),
            base.clone(),
            run_id.clone(),
        );
        set.spawn(async move {
            let probe = &engine.probes[index];
            let mut stats = ProbeStats::new(steps.len());
            let mut first = None;
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= opts.iterations || Instant::now() >= deadline {
                    break;
                }
                let user = format!("iap-probe-{run_id}-{}-{i}", probe.platform);
                let f = iterate(&engine, probe, &steps, &base, user, deadline, &mut stats).await;
                if first.is_none() {
                    first = f;
                }
            }
            (stats, first)
        });
    }
    let mut stats = ProbeStats::new(steps.len());
    let mut first_failure = None;
    while let Some(joined) = set.join_next().await {
        if let Ok((s, f)) = joined {
            stats.merge(&s);
            if first_failure.is_none() {
                first_failure = f;
            }
        }
    }
    ProbeRun {
        probe: probe.clone(),
        steps,
        stats,
        first_failure,
    }
}

/// Runs every probe of `engine` and collects the figures.
pub async fn run(engine: Arc<Engine>, opts: &RunOptions) -> RunOutcome {
    let run_id = new_run_id();
    let started = SystemTime::now();
    let t0 = Instant::now();
    let deadline = t0 + opts.deadline;
    let mut set = tokio::task::JoinSet::new();
    for i in 0..engine.probes.len() {
        set.spawn(run_probe(
            engine.clone(),
            i,
            run_id.clone(),
            opts.clone(),
            deadline,
        ));
    }
    let mut probes = Vec::new();
    while let Some(joined) = set.join_next().await {
        if let Ok(p) = joined {
            probes.push(p);
        }
    }
    // Report in the order the probes were loaded.
    probes.sort_by_key(|p| {
        engine
            .probes
            .iter()
            .position(|q| q.name == p.probe.name)
            .unwrap_or(usize::MAX)
    });
    let elapsed = t0.elapsed();
    RunOutcome {
        run_id,
        started,
        elapsed,
        deadline: opts.deadline,
        deadline_hit: Instant::now() >= deadline,
        probes,
    }
}
