//! Executes probes: every selected probe concurrently, each for `iterations` rounds (or
//! for `duration`) on `concurrency` workers. Workers keep their own histograms (no locks
//! on the hot path: one shared atomic hands out iteration numbers) and merge at the end.
//! Every request has a timeout and the run a deadline, so a run always ends and always
//! reports.
//!
//! Sampling is a closed loop by default (each worker starts its next iteration when the
//! last one ends). With a `rate` it is an open loop: iteration `i` is due at
//! `start + i / rate`, whatever the answers' speed. When every worker is still busy at an
//! iteration's due time, the iteration starts late and its latency is measured from when
//! it was due — the wait is charged to the first step and to the total — so a slow
//! server cannot hide its slowness by slowing the prober down (coordinated omission).

pub mod context;
pub mod http;
pub mod signed;
pub mod step;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::oneshot;

pub use context::{Engine, SetupError};

use crate::probe::{Auth, Probe, Vars};
use crate::slo::{FailureKind, ProbeStats};
use step::StepResult;

/// How much to run.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Iterations per probe (`u64::MAX`: as many as `duration` allows).
    pub iterations: u64,
    /// Workers per probe: at most this many iterations of a probe in flight.
    pub concurrency: usize,
    pub deadline: Duration,
    /// Fixed arrival rate, iterations per second per probe (`None`: closed loop).
    pub rate: Option<f64>,
    /// Start no iteration after this long.
    pub duration: Option<Duration>,
    /// Draw a progress bar on stderr once the run has lasted a second.
    pub progress: bool,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            iterations: 1,
            concurrency: 1,
            deadline: Duration::from_secs(120),
            rate: None,
            duration: None,
            progress: false,
        }
    }
}

/// When each iteration may start.
#[derive(Debug, Clone, Copy)]
struct Schedule {
    t0: Instant,
    iterations: u64,
    /// Iterations per second (`None`: as soon as a worker is free).
    rate: Option<f64>,
    /// No iteration starts at or after this instant (end of `duration`, or the deadline).
    stop: Instant,
}

/// Lateness below this — the timer's resolution — is the prober's jitter, not a backlog,
/// and is not charged.
const LATE_TOLERANCE: Duration = Duration::from_millis(1);

/// How an iteration starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    /// Start at this instant (sleep first if it is still ahead).
    At(Instant),
    /// Due at `due`, already past: every worker was busy. Measured from `due`.
    Late { due: Instant },
    /// Nothing more to run.
    Done,
}

impl Schedule {
    fn new(opts: &RunOptions, t0: Instant, deadline: Instant) -> Self {
        let stop = opts
            .duration
            .and_then(|d| t0.checked_add(d))
            .map_or(deadline, |end| end.min(deadline));
        Schedule {
            t0,
            iterations: opts.iterations,
            rate: opts.rate.filter(|r| r.is_finite() && *r > 0.0),
            stop,
        }
    }

    /// When iteration `i` is due (closed loop: `now`), or `None` past every bound.
    fn due(&self, i: u64, now: Instant) -> Option<Instant> {
        if i >= self.iterations {
            return None;
        }
        let at = match self.rate {
            None => now,
            Some(r) => {
                let offset = Duration::try_from_secs_f64(i as f64 / r).ok()?;
                self.t0.checked_add(offset)?
            }
        };
        (at < self.stop).then_some(at)
    }

    /// The slot for iteration `i`, seen at `now`.
    fn slot(&self, i: u64, now: Instant) -> Slot {
        match self.due(i, now) {
            None => Slot::Done,
            Some(due)
                if self.rate.is_some() && now.saturating_duration_since(due) > LATE_TOLERANCE =>
            {
                Slot::Late { due }
            }
            Some(due) => Slot::At(due),
        }
    }
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
                FailureKind::Assertion
                    | FailureKind::Rejected
                    | FailureKind::Timeout
                    | FailureKind::Poll
            ) && let Some(l) = r.latency
            {
                s.record_latency(l);
            }
        }
    }
}

/// One pass through a probe, started at `start` (the due time, for a late iteration) —
/// `lag` late: the first step and the total carry the wait. Returns the first failure.
#[allow(clippy::too_many_arguments)]
async fn iterate(
    engine: &Engine,
    probe: &Probe,
    steps: &[StepInfo],
    base: &Vars,
    user: String,
    deadline: Instant,
    (start, lag): (Instant, Duration),
    stats: &mut ProbeStats,
) -> Option<FirstFailure> {
    let mut vars = base.clone();
    vars.set("user", user);
    let mut failure: Option<FirstFailure> = None;
    for (i, info) in steps.iter().enumerate() {
        if failure.is_some() {
            stats.steps[i].skipped += 1;
            continue;
        }
        tracing::trace!(probe = %probe.name, step = %info.name, "step starts");
        let mut r = match (info.credential, info.index) {
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
        if i == 0 && !lag.is_zero() {
            // The user would have waited for the start too (coordinated omission).
            r.latency = r.latency.map(|l| l + lag);
        }
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

/// What a worker hands back: its figures, its first failure, and how late it started.
struct WorkerResult {
    stats: ProbeStats,
    first: Option<FirstFailure>,
    late: u64,
    max_lag: Duration,
}

async fn run_probe(
    engine: Arc<Engine>,
    index: usize,
    run_id: String,
    opts: RunOptions,
    schedule: Schedule,
    deadline: Instant,
    done: Arc<AtomicU64>,
) -> ProbeRun {
    let probe = &engine.probes[index];
    let steps = plan(probe);
    let base = base_vars(&engine, probe, &run_id);
    let next = Arc::new(AtomicU64::new(0));
    let workers = opts.concurrency.clamp(
        1,
        usize::try_from(opts.iterations.max(1)).unwrap_or(usize::MAX),
    );
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..workers {
        let (engine, next, steps, base, run_id, done) = (
            engine.clone(),
            next.clone(),
            steps.clone(),
            base.clone(),
            run_id.clone(),
            done.clone(),
        );
        set.spawn(async move {
            let probe = &engine.probes[index];
            let mut out = WorkerResult {
                stats: ProbeStats::new(steps.len()),
                first: None,
                late: 0,
                max_lag: Duration::ZERO,
            };
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let now = Instant::now();
                let (start, lag) = match schedule.slot(i, now) {
                    Slot::Done => break,
                    Slot::At(due) if due > now => {
                        // On time, and the worker was free: timer jitter is ours, not the
                        // server's, so the clock starts when the request really does.
                        tokio::time::sleep_until(due.into()).await;
                        (Instant::now(), Duration::ZERO)
                    }
                    Slot::At(_) => (now, Duration::ZERO),
                    Slot::Late { due } => {
                        let lag = now.saturating_duration_since(due);
                        out.late += 1;
                        out.max_lag = out.max_lag.max(lag);
                        (due, lag)
                    }
                };
                if Instant::now() >= deadline {
                    break;
                }
                let user = format!("iap-probe-{run_id}-{}-{i}", probe.platform);
                let f = iterate(
                    &engine,
                    probe,
                    &steps,
                    &base,
                    user,
                    deadline,
                    (start, lag),
                    &mut out.stats,
                )
                .await;
                done.fetch_add(1, Ordering::Relaxed);
                if out.first.is_none() {
                    out.first = f;
                }
            }
            out
        });
    }
    let mut stats = ProbeStats::new(steps.len());
    let mut first_failure = None;
    let (mut late, mut max_lag) = (0, Duration::ZERO);
    while let Some(joined) = set.join_next().await {
        if let Ok(w) = joined {
            stats.merge(&w.stats);
            if first_failure.is_none() {
                first_failure = w.first;
            }
            late += w.late;
            max_lag = max_lag.max(w.max_lag);
        }
    }
    let ran = stats.total.attempts();
    if ran > 1 {
        let secs = schedule.t0.elapsed().as_secs_f64();
        tracing::info!(
            probe = %probe.name,
            iterations = ran,
            workers,
            elapsed_s = secs,
            per_second = ran as f64 / secs.max(1e-9),
            target_rate = opts.rate,
            late_starts = late,
            max_lag_ms = max_lag.as_secs_f64() * 1000.0,
            "sampling done"
        );
    }
    ProbeRun {
        probe: probe.clone(),
        steps,
        stats,
        first_failure,
    }
}

/// A progress bar on stderr, drawn only once the run has lasted a second; `stop` clears it.
async fn progress(
    t0: Instant,
    done: Arc<AtomicU64>,
    total: Option<u64>,
    duration: Option<Duration>,
    mut stop: oneshot::Receiver<()>,
) {
    use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
    tokio::select! {
        _ = &mut stop => return,
        _ = tokio::time::sleep(Duration::from_secs(1)) => {}
    }
    // Time-bounded runs show time; counted runs show iterations.
    let (len, template) = match (duration, total) {
        (Some(d), _) => (
            d.as_millis() as u64,
            "{spinner} {elapsed:>4} [{bar:30}] {msg}",
        ),
        (None, Some(n)) => (
            n,
            "{spinner} {elapsed:>4} [{bar:30}] {pos}/{len} iterations {msg}",
        ),
        (None, None) => return,
    };
    let bar = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr_with_hz(10))
        .with_elapsed(t0.elapsed());
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style.progress_chars("=> "));
    }
    loop {
        let n = done.load(Ordering::Relaxed);
        let rate = n as f64 / t0.elapsed().as_secs_f64().max(1e-9);
        if duration.is_some() {
            bar.set_position((t0.elapsed().as_millis() as u64).min(len));
            bar.set_message(format!("{n} iterations ({rate:.0}/s)"));
        } else {
            bar.set_position(n.min(len));
            bar.set_message(format!("({rate:.0}/s)"));
        }
        tokio::select! {
            _ = &mut stop => break,
            _ = tokio::time::sleep(Duration::from_millis(100)) => {}
        }
    }
    bar.finish_and_clear();
}

/// App Store JWT signatures and Google token fetches so far: logged at the end of a run
/// (`RUST_LOG=iap_probe=info`), so a run proves it acquired each credential once.
fn credential_counts(engine: &Engine) -> (u64, u64) {
    (
        engine.apple.as_ref().map_or(0, |a| a.signatures()),
        engine.google.as_ref().map_or(0, |g| g.fetches()),
    )
}

/// Runs every probe of `engine` and collects the figures.
pub async fn run(engine: Arc<Engine>, opts: &RunOptions) -> RunOutcome {
    let run_id = new_run_id();
    let started = SystemTime::now();
    let (signed_before, fetched_before) = credential_counts(&engine);
    let t0 = Instant::now();
    let deadline = t0 + opts.deadline;
    let schedule = Schedule::new(opts, t0, deadline);
    let done = Arc::new(AtomicU64::new(0));
    let bar = opts.progress.then(|| {
        let (tx, rx) = oneshot::channel();
        let total = (opts.iterations != u64::MAX)
            .then(|| opts.iterations.saturating_mul(engine.probes.len() as u64));
        let task = tokio::spawn(progress(t0, done.clone(), total, opts.duration, rx));
        (tx, task)
    });
    let mut set = tokio::task::JoinSet::new();
    for i in 0..engine.probes.len() {
        set.spawn(run_probe(
            engine.clone(),
            i,
            run_id.clone(),
            opts.clone(),
            schedule,
            deadline,
            done.clone(),
        ));
    }
    let mut probes = Vec::new();
    while let Some(joined) = set.join_next().await {
        if let Ok(p) = joined {
            probes.push(p);
        }
    }
    if let Some((tx, task)) = bar {
        let _ = tx.send(());
        let _ = task.await;
    }
    let (signed, fetched) = credential_counts(&engine);
    tracing::info!(
        iterations = done.load(Ordering::Relaxed),
        app_store_jwt_signatures = signed - signed_before,
        google_token_fetches = fetched - fetched_before,
        "credentials acquired"
    );
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

#[cfg(test)]
mod tests {
    use super::*;

    fn schedule(iterations: u64, rate: Option<f64>, duration: Option<Duration>) -> Schedule {
        let opts = RunOptions {
            iterations,
            rate,
            duration,
            ..RunOptions::default()
        };
        let t0 = Instant::now();
        Schedule::new(&opts, t0, t0 + Duration::from_secs(120))
    }

    #[test]
    fn closed_loop_starts_now_until_the_count() {
        let s = schedule(3, None, None);
        let now = s.t0 + Duration::from_secs(5);
        assert_eq!(s.slot(0, now), Slot::At(now));
        assert_eq!(s.slot(2, now), Slot::At(now));
        assert_eq!(s.slot(3, now), Slot::Done);
    }

    #[test]
    fn open_loop_is_due_at_i_over_rate() {
        let s = schedule(100, Some(10.0), None);
        let at = |ms| s.t0 + Duration::from_millis(ms);
        assert_eq!(s.slot(5, at(0)), Slot::At(at(500)));
        // Within the timer's resolution: on time, measured from the real start.
        assert_eq!(s.slot(5, at(500) + LATE_TOLERANCE), Slot::At(at(500)));
        // Every worker was busy: measured from when it was due.
        assert_eq!(s.slot(5, at(520)), Slot::Late { due: at(500) });
        assert_eq!(s.slot(100, at(0)), Slot::Done);
    }

    #[test]
    fn duration_bounds_the_run_and_the_rate_bounds_the_count() {
        let s = schedule(u64::MAX, Some(100.0), Some(Duration::from_secs(2)));
        let now = s.t0;
        assert!(matches!(s.slot(199, now), Slot::At(_)));
        assert_eq!(s.slot(200, now), Slot::Done);
        let closed = schedule(u64::MAX, None, Some(Duration::from_secs(2)));
        assert!(matches!(closed.slot(1 << 40, closed.t0), Slot::At(_)));
        assert_eq!(
            closed.slot(0, closed.t0 + Duration::from_secs(2)),
            Slot::Done
        );
        // A rate so low that the offset overflows is past every bound, not a panic.
        let slow = schedule(u64::MAX, Some(1e-300), None);
        assert_eq!(slow.slot(u64::MAX - 1, slow.t0), Slot::Done);
    }
}
