//! Verdicts: pass, warn or fail, each with its reason in words
//! (`verify p99 2.41 s > 2 s target`).

use std::time::Duration;

use serde::Serialize;

use super::stats::StepStats;
use crate::probe::Slo;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    #[default]
    Pass,
    Warn,
    Fail,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::Warn => "warn",
            Verdict::Fail => "fail",
        }
    }
}

/// One figure judged against one target.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SloCheck {
    /// `p50`, `p95`, `p99`, `max` (against `critical`), `success_ratio`, `completion_p99`.
    pub figure: String,
    /// Seconds for latencies, a ratio (0..1) for success.
    pub target: f64,
    pub actual: f64,
    pub verdict: Verdict,
    pub message: String,
}

/// "183 ms", "2.41 s", "2 s".
pub fn fmt_duration(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s < 1.0 {
        let ms = s * 1000.0;
        if ms < 10.0 {
            format!("{ms:.2} ms")
        } else {
            format!("{ms:.0} ms")
        }
    } else if s >= 120.0 && s.fract() == 0.0 && (s as u64).is_multiple_of(60) {
        format!("{} min", s as u64 / 60)
    } else {
        let t = format!("{s:.2}");
        let t = t.trim_end_matches('0').trim_end_matches('.');
        format!("{t} s")
    }
}

fn pct(r: f64) -> String {
    let t = format!("{:.2}", r * 100.0);
    format!("{}%", t.trim_end_matches('0').trim_end_matches('.'))
}

/// Judges a step's latency percentiles against its SLO. `warn_at` (e.g. 0.8) marks a
/// figure that has used most of its budget.
pub fn judge_latency(name: &str, slo: &Slo, stats: &StepStats, warn_at: f64) -> Vec<SloCheck> {
    let mut out = Vec::new();
    let targets = [
        ("p50", 0.50, slo.p50),
        ("p95", 0.95, slo.p95),
        ("p99", 0.99, slo.p99),
    ];
    for (figure, q, target) in targets {
        let (Some(target), Some(actual)) = (target, stats.quantile(q)) else {
            continue;
        };
        out.push(check(name, figure, actual, target, "target", warn_at));
    }
    if let (Some(critical), Some(max)) = (slo.critical, stats.max()) {
        out.push(check(name, "max", max, critical, "critical bound", 1.0));
    }
    out
}

fn check(
    name: &str,
    figure: &str,
    actual: Duration,
    target: Duration,
    what: &str,
    warn_at: f64,
) -> SloCheck {
    let (a, t) = (actual.as_secs_f64(), target.as_secs_f64());
    let (verdict, message) = if a > t {
        (
            Verdict::Fail,
            format!(
                "{name} {figure} {} > {} {what}",
                fmt_duration(actual),
                fmt_duration(target)
            ),
        )
    } else if warn_at < 1.0 && a > t * warn_at {
        (
            Verdict::Warn,
            format!(
                "{name} {figure} {} is over {} of the {} {what}",
                fmt_duration(actual),
                pct(warn_at),
                fmt_duration(target)
            ),
        )
    } else {
        (
            Verdict::Pass,
            format!(
                "{name} {figure} {} <= {} {what}",
                fmt_duration(actual),
                fmt_duration(target)
            ),
        )
    };
    SloCheck {
        figure: figure.to_string(),
        target: t,
        actual: a,
        verdict,
        message,
    }
}

/// Judges a success ratio: below `critical` fails, below `target` warns when there are
/// enough attempts to tell (a single failed run is judged by its steps, not here).
pub fn judge_ratio(
    name: &str,
    ok: u64,
    failed: u64,
    target: f64,
    critical: f64,
) -> Option<SloCheck> {
    let n = ok + failed;
    if n < 2 {
        return None;
    }
    let r = ok as f64 / n as f64;
    let (verdict, message) = if r < critical {
        (
            Verdict::Fail,
            format!(
                "{name} success {} ({ok}/{n}) < {} critical",
                pct(r),
                pct(critical)
            ),
        )
    } else if r < target {
        (
            Verdict::Warn,
            format!(
                "{name} success {} ({ok}/{n}) < {} target",
                pct(r),
                pct(target)
            ),
        )
    } else {
        (
            Verdict::Pass,
            format!(
                "{name} success {} ({ok}/{n}) >= {} target",
                pct(r),
                pct(target)
            ),
        )
    };
    Some(SloCheck {
        figure: "success_ratio".into(),
        target,
        actual: r,
        verdict,
        message,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats(ms: &[u64]) -> StepStats {
        let mut s = StepStats::default();
        for m in ms {
            s.record_latency(Duration::from_millis(*m));
        }
        s
    }

    #[test]
    fn p99_over_target_fails_with_the_figure() {
        let slo = Slo {
            p99: Some(Duration::from_secs(2)),
            ..Default::default()
        };
        let c = judge_latency("verify", &slo, &stats(&[2410]), 0.8);
        assert_eq!(c[0].verdict, Verdict::Fail);
        assert_eq!(c[0].message, "verify p99 2.41 s > 2 s target");
        let c = judge_latency("verify", &slo, &stats(&[1700]), 0.8);
        assert_eq!(c[0].verdict, Verdict::Warn);
        let c = judge_latency("verify", &slo, &stats(&[120]), 0.8);
        assert_eq!(c[0].verdict, Verdict::Pass);
        assert_eq!(c[0].message, "verify p99 120 ms <= 2 s target");
    }

    #[test]
    fn critical_bounds_the_max() {
        let slo = Slo {
            critical: Some(Duration::from_secs(10)),
            ..Default::default()
        };
        let c = judge_latency("verify", &slo, &stats(&[100, 11_000]), 0.8);
        assert_eq!(c[0].figure, "max");
        assert_eq!(c[0].verdict, Verdict::Fail);
    }

    #[test]
    fn ratios_follow_the_runbook() {
        assert!(judge_ratio("p", 0, 1, 0.99, 0.95).is_none());
        let f = judge_ratio("p", 94, 6, 0.99, 0.95).unwrap();
        assert_eq!(f.verdict, Verdict::Fail);
        assert!(f.message.contains("94%"), "{}", f.message);
        assert_eq!(
            judge_ratio("p", 98, 2, 0.99, 0.95).unwrap().verdict,
            Verdict::Warn
        );
        assert_eq!(
            judge_ratio("p", 100, 0, 0.99, 0.95).unwrap().verdict,
            Verdict::Pass
        );
    }
}
