//! The runbook's alert thresholds, evaluated over the history at the end of every run.
//!
//! Critical: purchase success < 95% over 5 min, verification response time > 10 s over
//! 5 min, complete outage (immediate). Warning: purchase success < 99% over 15 min,
//! verification > 5 s over 15 min, cache hit ratio < 80% over 30 min, high error rates
//! over 15 min. Thresholds and windows come from `[alerts]` in probe.toml.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::store::{History, HistoryError};
use crate::probe::duration::Dur;
use crate::slo::verdict::fmt_duration;

/// `[alerts]` in probe.toml.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct AlertRules {
    pub purchase_critical_below: f64,
    pub purchase_critical_window: Dur,
    pub purchase_warning_below: f64,
    pub purchase_warning_window: Dur,
    /// The step whose latency is "verification response time".
    pub verify_step: String,
    /// Which percentile of the merged window histogram is judged.
    pub verify_percentile: f64,
    pub verify_critical_above: Dur,
    pub verify_critical_window: Dur,
    pub verify_warning_above: Dur,
    pub verify_warning_window: Dur,
    /// The recorded value holding the cache hit ratio.
    pub cache_value: String,
    pub cache_warning_below: f64,
    pub cache_warning_window: Dur,
    pub error_rate_warning_above: f64,
    pub error_rate_warning_window: Dur,
}

impl Default for AlertRules {
    fn default() -> Self {
        let m = |n: u64| Dur(Duration::from_secs(60 * n));
        AlertRules {
            purchase_critical_below: 0.95,
            purchase_critical_window: m(5),
            purchase_warning_below: 0.99,
            purchase_warning_window: m(15),
            verify_step: "verify".into(),
            verify_percentile: 0.99,
            verify_critical_above: Dur(Duration::from_secs(10)),
            verify_critical_window: m(5),
            verify_warning_above: Dur(Duration::from_secs(5)),
            verify_warning_window: m(15),
            cache_value: "cache_hit_ratio".into(),
            cache_warning_below: 0.80,
            cache_warning_window: m(30),
            error_rate_warning_above: 0.05,
            error_rate_warning_window: m(15),
        }
    }
}

/// One rule's state after a run.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct AlertState {
    pub rule: &'static str,
    /// `critical` or `warning`.
    pub severity: &'static str,
    pub firing: bool,
    /// The figure over the window; `None` without data.
    pub value: Option<f64>,
    pub threshold: f64,
    pub window_seconds: u64,
    /// Samples (iterations, requests, runs) behind the figure.
    pub samples: u64,
    pub message: String,
}

fn pct(x: f64) -> String {
    format!("{:.1}%", x * 100.0)
}

impl AlertRules {
    /// Evaluates every rule at `now_ms`.
    pub fn evaluate(&self, h: &History, now_ms: i64) -> Result<Vec<AlertState>, HistoryError> {
        let since = |w: &Dur| now_ms - w.0.as_millis() as i64;
        let mut out = Vec::new();

        for (rule, severity, below, window) in [
            (
                "purchase_success_critical",
                "critical",
                self.purchase_critical_below,
                &self.purchase_critical_window,
            ),
            (
                "purchase_success_warning",
                "warning",
                self.purchase_warning_below,
                &self.purchase_warning_window,
            ),
        ] {
            let (ok, n) = h.purchase_counts(since(window))?;
            let value = (n > 0).then(|| ok as f64 / n as f64);
            let firing = value.is_some_and(|v| v < below);
            out.push(AlertState {
                rule,
                severity,
                firing,
                value,
                threshold: below,
                window_seconds: window.0.as_secs(),
                samples: n,
                message: match value {
                    Some(v) => format!(
                        "purchase success {} over {} ({ok}/{n}) {} {}",
                        pct(v),
                        fmt_duration(window.0),
                        if firing { "<" } else { ">=" },
                        pct(below)
                    ),
                    None => format!(
                        "no purchase probe runs in the last {}",
                        fmt_duration(window.0)
                    ),
                },
            });
        }

        for (rule, severity, above, window) in [
            (
                "verify_latency_critical",
                "critical",
                &self.verify_critical_above,
                &self.verify_critical_window,
            ),
            (
                "verify_latency_warning",
                "warning",
                &self.verify_warning_above,
                &self.verify_warning_window,
            ),
        ] {
            let merged = h.merged_step(&self.verify_step, None, since(window))?;
            let value = (!merged.is_empty())
                .then(|| merged.value_at_quantile(self.verify_percentile) as f64 / 1e6);
            let limit = above.0.as_secs_f64();
            let firing = value.is_some_and(|v| v > limit);
            let p = format!("p{}", (self.verify_percentile * 100.0).round());
            out.push(AlertState {
                rule,
                severity,
                firing,
                value,
                threshold: limit,
                window_seconds: window.0.as_secs(),
                samples: merged.len(),
                message: match value {
                    Some(v) => format!(
                        "{} {p} {} over {} {} {}",
                        self.verify_step,
                        fmt_duration(Duration::from_secs_f64(v)),
                        fmt_duration(window.0),
                        if firing { ">" } else { "<=" },
                        fmt_duration(above.0)
                    ),
                    None => format!(
                        "no {} samples in the last {}",
                        self.verify_step,
                        fmt_duration(window.0)
                    ),
                },
            });
        }

        let w = &self.cache_warning_window;
        let (mean, n) = h.value_mean(&self.cache_value, since(w))?;
        let firing = mean.is_some_and(|v| v < self.cache_warning_below);
        out.push(AlertState {
            rule: "cache_hit_ratio_warning",
            severity: "warning",
            firing,
            value: mean,
            threshold: self.cache_warning_below,
            window_seconds: w.0.as_secs(),
            samples: n,
            message: match mean {
                Some(v) => format!(
                    "cache hit ratio {} over {} {} {}",
                    pct(v),
                    fmt_duration(w.0),
                    if firing { "<" } else { ">=" },
                    pct(self.cache_warning_below)
                ),
                None => format!(
                    "no {} recorded in the last {}",
                    self.cache_value,
                    fmt_duration(w.0)
                ),
            },
        });

        let w = &self.error_rate_warning_window;
        let (ok, failed) = h.step_counts(since(w))?;
        let n = ok + failed;
        let rate = (n > 0).then(|| failed as f64 / n as f64);
        let firing = rate.is_some_and(|r| r > self.error_rate_warning_above);
        out.push(AlertState {
            rule: "error_rate_warning",
            severity: "warning",
            firing,
            value: rate,
            threshold: self.error_rate_warning_above,
            window_seconds: w.0.as_secs(),
            samples: n,
            message: match rate {
                Some(r) => format!(
                    "step error rate {} over {} ({failed}/{n}) {} {}",
                    pct(r),
                    fmt_duration(w.0),
                    if firing { ">" } else { "<=" },
                    pct(self.error_rate_warning_above)
                ),
                None => format!("no steps in the last {}", fmt_duration(w.0)),
            },
        });

        let latest = h.latest_incident()?;
        let outage = latest.as_ref().is_some_and(|(_, sev)| sev == "P0");
        out.push(AlertState {
            rule: "complete_outage",
            severity: "critical",
            firing: outage,
            value: Some(outage as u8 as f64),
            threshold: 1.0,
            window_seconds: 0,
            samples: latest.is_some() as u64,
            message: match latest {
                Some((t, s)) if s == "P0" => format!("{s} {t} in the latest run"),
                _ => "no P0 incident in the latest run".into(),
            },
        });
        Ok(out)
    }
}
