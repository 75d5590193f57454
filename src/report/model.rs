//! The judged report: figures from the runner, verdicts from `slo`, hints for people.
//! Its JSON form is versioned (`schema_version`) and documented in
//! `docs/report.schema.json`.

use std::time::Duration;

use serde::Serialize;

use super::hints;
use crate::config::SloTargets;
use crate::probe::Slo;
use crate::runner::{ProbeRun, RunOutcome};
use crate::slo::stats::StepStats;
use crate::slo::verdict::{judge_latency, judge_ratio};
use crate::slo::{FailureKind, SloCheck, Verdict};

pub const SCHEMA_VERSION: u32 = 1;

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub schema_version: u32,
    pub run_id: String,
    /// RFC 3339.
    pub started_at: String,
    pub duration_seconds: f64,
    pub environment: String,
    pub verdict: Verdict,
    pub exit_code: u8,
    pub deadline_seconds: f64,
    pub deadline_hit: bool,
    pub summary: Summary,
    /// The runbook incident this run looks like, when something failed.
    pub incident: Option<super::incident::Incident>,
    /// The runbook's windowed alert rules, evaluated over the run history.
    pub alerts: Vec<crate::history::AlertState>,
    pub probes: Vec<ProbeReport>,
    /// PagerDuty / Slack deliveries of this run (`[alerting]`): metrics and stderr only.
    #[serde(skip)]
    pub alerting: Vec<crate::alert::ChannelStatus>,
}

#[derive(Debug, Clone, Serialize, Default)]
pub struct Summary {
    pub probes: usize,
    pub passed: usize,
    pub warned: usize,
    pub failed: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct ProbeReport {
    pub name: String,
    pub platform: String,
    pub verdict: Verdict,
    /// Why it failed or warned, in words.
    pub reason: Option<String>,
    /// What to check first.
    pub hint: Option<String>,
    pub iterations: u64,
    pub successes: u64,
    pub success_ratio: Option<f64>,
    /// Whole-iteration time of successful iterations.
    pub completion: Option<Latency>,
    pub slo: Vec<SloCheck>,
    /// Recorded figures (`record = [...]` in the probe file), e.g. the cache hit ratio.
    pub values: std::collections::BTreeMap<String, crate::slo::stats::ValueStats>,
    /// Tagged `purchase`: judged against the purchase success and completion targets.
    #[serde(skip)]
    pub purchase: bool,
    pub steps: Vec<StepReport>,
}

#[derive(Debug, Clone, Serialize)]
pub struct StepReport {
    pub name: String,
    /// `credential` (token acquisition) or `http`.
    pub kind: &'static str,
    pub verdict: Verdict,
    pub attempts: u64,
    pub ok: u64,
    pub failed: u64,
    pub skipped: u64,
    pub retries: u64,
    pub last_status: Option<u16>,
    pub latency: Option<Latency>,
    pub slo: Vec<SloCheck>,
    pub reason: Option<String>,
    pub hint: Option<String>,
    pub failures: Vec<FailureCount>,
    /// Which service the step talks to: backend, apple, google, credential or other.
    #[serde(skip)]
    pub target: String,
    /// Whether the step polls (time to entitlement and the like).
    #[serde(skip)]
    pub polls: bool,
    /// The raw latencies, for histogram exports (Prometheus) — not part of the JSON.
    #[serde(skip)]
    pub histogram: hdrhistogram::Histogram<u64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct FailureCount {
    pub kind: FailureKind,
    pub reason: String,
    pub count: u64,
}

/// Seconds.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Latency {
    pub samples: u64,
    pub min: f64,
    pub mean: f64,
    pub p50: f64,
    pub p90: f64,
    pub p95: f64,
    pub p99: f64,
    pub max: f64,
}

fn latency(s: &StepStats) -> Option<Latency> {
    let h = &s.latency;
    if h.is_empty() {
        return None;
    }
    let sec = |micros: u64| micros as f64 / 1e6;
    Some(Latency {
        samples: h.len(),
        min: sec(h.min()),
        mean: (h.mean()).round() / 1e6,
        p50: sec(h.value_at_quantile(0.50)),
        p90: sec(h.value_at_quantile(0.90)),
        p95: sec(h.value_at_quantile(0.95)),
        p99: sec(h.value_at_quantile(0.99)),
        max: sec(h.max()),
    })
}

fn worst(checks: &[SloCheck]) -> Verdict {
    checks.iter().map(|c| c.verdict).max().unwrap_or_default()
}

fn first_breach(checks: &[SloCheck]) -> Option<&SloCheck> {
    let w = worst(checks);
    checks.iter().find(|c| c.verdict == w && w != Verdict::Pass)
}

fn step_report(run: &ProbeRun, i: usize, targets: &SloTargets) -> StepReport {
    let info = &run.steps[i];
    let stats = &run.stats.steps[i];
    let step = info.index.map(|x| &run.probe.steps[x]);
    let auth = info.credential.or(step.map(|s| s.auth));
    let slo = step.map(|s| s.slo).unwrap_or_default();
    let checks = judge_latency(&info.name, &slo, stats, targets.warn_at);
    let mut verdict = worst(&checks);
    let mut reason = first_breach(&checks).map(|c| c.message.clone());
    let mut hint = reason.as_ref().map(|_| hints::for_latency(&info.name));
    if stats.failed > 0 {
        let ratio = stats.success_ratio().unwrap_or(0.0);
        let v = if stats.attempts() == 1 || ratio < targets.purchase_success_critical {
            Verdict::Fail
        } else {
            Verdict::Warn
        };
        if v >= verdict {
            verdict = v;
            if let Some((r, kind)) = stats.top_reason() {
                reason = Some(if stats.failed > 1 {
                    format!(
                        "{}: {r} ({} of {} attempts)",
                        info.name,
                        stats.failed,
                        stats.attempts()
                    )
                } else {
                    format!("{}: {r}", info.name)
                });
                hint = Some(hints::for_failure(
                    &info.name,
                    auth,
                    info.credential.is_some(),
                    kind,
                    stats.last_status,
                ));
            }
        }
    }
    StepReport {
        name: info.name.clone(),
        kind: if info.credential.is_some() {
            "credential"
        } else {
            "http"
        },
        verdict,
        attempts: stats.attempts(),
        ok: stats.ok,
        failed: stats.failed,
        skipped: stats.skipped,
        retries: stats.retries,
        last_status: stats.last_status,
        latency: latency(stats),
        slo: checks,
        reason,
        hint,
        failures: stats
            .reasons
            .iter()
            .map(|(r, (n, k))| FailureCount {
                kind: *k,
                reason: r.clone(),
                count: *n,
            })
            .collect(),
        histogram: stats.latency.clone(),
        target: target(
            info.credential.is_some(),
            step.map(|s| s.request.url.as_str()),
        ),
        polls: step.is_some_and(|s| s.poll.is_some()),
    }
}

/// The service a step's URL template points at.
fn target(credential: bool, url: Option<&str>) -> String {
    if credential {
        return "credential".into();
    }
    let url = url.unwrap_or_default().replace(' ', "");
    for t in ["backend", "apple", "google"] {
        if url.starts_with(&format!("{{{{{t}}}}}")) {
            return t.into();
        }
    }
    "other".into()
}

fn probe_report(run: &ProbeRun, targets: &SloTargets) -> ProbeReport {
    let steps: Vec<StepReport> = (0..run.steps.len())
        .map(|i| step_report(run, i, targets))
        .collect();
    let purchase = run.probe.tags.iter().any(|t| t == "purchase");
    let total = &run.stats.total;
    let (target, critical) = if purchase {
        (
            targets.purchase_success_rate,
            targets.purchase_success_critical,
        )
    } else {
        (targets.success_rate, targets.purchase_success_critical)
    };
    let mut checks: Vec<SloCheck> =
        judge_ratio(&run.probe.name, total.ok, total.failed, target, critical)
            .into_iter()
            .collect();
    if purchase {
        let slo = Slo {
            p99: Some(targets.purchase_completion.0),
            ..Default::default()
        };
        for mut c in judge_latency("purchase completion", &slo, total, targets.warn_at) {
            c.figure = "completion_p99".into();
            checks.push(c);
        }
    }
    let step_worst = steps.iter().map(|s| s.verdict).max().unwrap_or_default();
    let mut verdict = step_worst.max(worst(&checks));
    if total.attempts() == 1 && total.failed == 1 {
        verdict = Verdict::Fail;
    }
    // The reason: where the flow stopped, else the worst SLO figure.
    let stopped = steps
        .iter()
        .find(|s| s.verdict == verdict && s.failed > 0)
        .or_else(|| {
            steps
                .iter()
                .find(|s| s.verdict == verdict && s.reason.is_some())
        });
    let (reason, hint) = match (stopped, first_breach(&checks)) {
        (Some(s), _) if verdict != Verdict::Pass => (s.reason.clone(), s.hint.clone()),
        (_, Some(c)) => (Some(c.message.clone()), None),
        _ => (None, None),
    };
    ProbeReport {
        name: run.probe.name.clone(),
        platform: run.probe.platform.to_string(),
        verdict,
        reason,
        hint,
        iterations: total.attempts(),
        successes: total.ok,
        success_ratio: total.success_ratio(),
        completion: latency(total),
        slo: checks,
        values: run.stats.values.clone(),
        purchase,
        steps,
    }
}

fn rfc3339(t: std::time::SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}

/// Judges a run and classifies its incident (`backend` is the base URL, for the checks).
pub fn build_with_backend(
    outcome: &RunOutcome,
    environment: &str,
    targets: &SloTargets,
    backend: &str,
) -> Report {
    let mut r = build(outcome, environment, targets);
    r.incident = super::incident::classify(&r, backend);
    r
}

/// Judges a run.
pub fn build(outcome: &RunOutcome, environment: &str, targets: &SloTargets) -> Report {
    let probes: Vec<ProbeReport> = outcome
        .probes
        .iter()
        .map(|p| probe_report(p, targets))
        .collect();
    let verdict = probes.iter().map(|p| p.verdict).max().unwrap_or_default();
    let count = |v| probes.iter().filter(|p| p.verdict == v).count();
    Report {
        schema_version: SCHEMA_VERSION,
        run_id: outcome.run_id.clone(),
        started_at: rfc3339(outcome.started),
        duration_seconds: round(outcome.elapsed),
        environment: environment.to_string(),
        verdict,
        exit_code: if verdict == Verdict::Fail { 1 } else { 0 },
        deadline_seconds: outcome.deadline.as_secs_f64(),
        deadline_hit: outcome.deadline_hit,
        summary: Summary {
            probes: probes.len(),
            passed: count(Verdict::Pass),
            warned: count(Verdict::Warn),
            failed: count(Verdict::Fail),
        },
        incident: None,
        alerts: Vec::new(),
        probes,
        alerting: Vec::new(),
    }
}

fn round(d: Duration) -> f64 {
    (d.as_secs_f64() * 1000.0).round() / 1000.0
}
