//! Prometheus text exposition (version 0.0.4) of a report: what a CronJob pushes to a
//! Pushgateway and the daemon serves on `/metrics`. Step latencies are histograms with
//! buckets around the SLO bounds, plus exact percentile gauges from the HDR histogram.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::model::Report;
use crate::slo::Verdict;

/// Default buckets (seconds); each step's own SLO bounds are added to them.
const BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0,
];

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn labels(pairs: &[(&str, &str)]) -> String {
    let inner: Vec<String> = pairs
        .iter()
        .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
        .collect();
    format!("{{{}}}", inner.join(","))
}

fn num(v: f64) -> String {
    if v.is_infinite() {
        if v > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        }
    } else if v.is_nan() {
        "NaN".into()
    } else {
        format!("{v}")
    }
}

/// Metric families in a fixed order, each with HELP and TYPE once.
#[derive(Default)]
struct Families {
    order: Vec<&'static str>,
    meta: BTreeMap<&'static str, (&'static str, &'static str)>,
    samples: BTreeMap<&'static str, Vec<String>>,
}

impl Families {
    fn family(&mut self, name: &'static str, kind: &'static str, help: &'static str) {
        if !self.meta.contains_key(name) {
            self.order.push(name);
            self.meta.insert(name, (kind, help));
        }
    }

    fn add(&mut self, family: &'static str, suffix: &str, labels: String, value: f64) {
        self.samples
            .entry(family)
            .or_default()
            .push(format!("{family}{suffix}{labels} {}", num(value)));
    }

    fn render(self) -> String {
        let mut out = String::new();
        for name in &self.order {
            let Some(samples) = self.samples.get(name) else {
                continue;
            };
            let (kind, help) = self.meta[name];
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} {kind}");
            for s in samples {
                let _ = writeln!(out, "{s}");
            }
        }
        out
    }
}

/// Which metrics to render.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    All,
    /// One probe's metrics (by index): a Pushgateway grouping key per probe, so one
    /// probe's push does not erase another's.
    Probe(usize),
    /// The run-level metrics only.
    Run,
}

/// Every metric of the run.
pub fn render(report: &Report) -> String {
    render_part(report, Part::All)
}

pub fn render_part(report: &Report, part: Part) -> String {
    let mut f = Families::default();
    f.family(
        "iap_probe_success",
        "gauge",
        "1 if the probe passed (or warned) in the last run, 0 if it failed.",
    );
    f.family(
        "iap_probe_warning",
        "gauge",
        "1 if the probe passed with a warning in the last run.",
    );
    f.family(
        "iap_probe_iterations",
        "gauge",
        "Iterations of the probe in the last run.",
    );
    f.family(
        "iap_probe_iterations_failed",
        "gauge",
        "Failed iterations of the probe in the last run.",
    );
    f.family(
        "iap_probe_completion_seconds",
        "gauge",
        "Whole-probe time of successful iterations (purchase completion), by percentile.",
    );
    f.family(
        "iap_probe_step_success",
        "gauge",
        "1 if the step passed (or warned) in the last run.",
    );
    f.family(
        "iap_probe_step_failures",
        "gauge",
        "Failed attempts of the step in the last run.",
    );
    f.family(
        "iap_probe_step_retries",
        "gauge",
        "Retries of the step in the last run.",
    );
    f.family(
        "iap_probe_step_duration_seconds",
        "histogram",
        "Step latency; buckets include the step's SLO bounds.",
    );
    f.family(
        "iap_probe_step_latency_seconds",
        "gauge",
        "Step latency percentiles from the HDR histogram.",
    );
    f.family(
        "iap_probe_slo_breach",
        "gauge",
        "1 if the figure breached its SLO target in the last run.",
    );
    f.family(
        "iap_probe_token_seconds",
        "gauge",
        "Time to acquire a credential (App Store JWT, Google token), median of the last run.",
    );
    f.family("iap_probe_value", "gauge", "Figures recorded by probes (record = [...]), e.g. the cache hit ratio; last value of the run.");
    f.family(
        "iap_probe_alert_firing",
        "gauge",
        "1 if the runbook alert rule fires over the run history.",
    );
    f.family(
        "iap_probe_incident",
        "gauge",
        "1 for the runbook incident type and severity the last run was classified as.",
    );
    f.family(
        "iap_probe_alert_delivery_failures",
        "gauge",
        "Alert notifications (PagerDuty events, Slack messages) the last run could not deliver; retried on the next run.",
    );
    f.family(
        "iap_probe_run_duration_seconds",
        "gauge",
        "Wall time of the last run.",
    );
    f.family(
        "iap_probe_last_run_timestamp_seconds",
        "gauge",
        "UNIX time the last run started.",
    );

    let env = report.environment.as_str();
    for (i, p) in report.probes.iter().enumerate() {
        let wanted = match part {
            Part::All => true,
            Part::Probe(o) => o == i,
            Part::Run => false,
        };
        if !wanted {
            continue;
        }
        let base = [
            ("probe", p.name.as_str()),
            ("platform", p.platform.as_str()),
            ("environment", env),
        ];
        let pass = (p.verdict != Verdict::Fail) as u8 as f64;
        f.add("iap_probe_success", "", labels(&base), pass);
        f.add(
            "iap_probe_warning",
            "",
            labels(&base),
            (p.verdict == Verdict::Warn) as u8 as f64,
        );
        f.add(
            "iap_probe_iterations",
            "",
            labels(&base),
            p.iterations as f64,
        );
        f.add(
            "iap_probe_iterations_failed",
            "",
            labels(&base),
            (p.iterations - p.successes) as f64,
        );
        if let Some(c) = &p.completion {
            for (q, v) in [("50", c.p50), ("95", c.p95), ("99", c.p99)] {
                let mut l = base.to_vec();
                l.push(("percentile", q));
                f.add("iap_probe_completion_seconds", "", labels(&l), v);
            }
        }
        for (name, v) in &p.values {
            let mut l = base.to_vec();
            l.push(("name", name.as_str()));
            f.add("iap_probe_value", "", labels(&l), v.last);
        }
        for c in &p.slo {
            let mut l = base.to_vec();
            l.extend([("step", ""), ("slo", c.figure.as_str())]);
            f.add(
                "iap_probe_slo_breach",
                "",
                labels(&l),
                (c.verdict == Verdict::Fail) as u8 as f64,
            );
        }
        for s in &p.steps {
            let mut l = base.to_vec();
            l.push(("step", s.name.as_str()));
            f.add(
                "iap_probe_step_success",
                "",
                labels(&l),
                (s.verdict != Verdict::Fail && s.attempts > 0) as u8 as f64,
            );
            f.add("iap_probe_step_failures", "", labels(&l), s.failed as f64);
            f.add("iap_probe_step_retries", "", labels(&l), s.retries as f64);
            for c in &s.slo {
                let mut l2 = l.clone();
                l2.push(("slo", c.figure.as_str()));
                f.add(
                    "iap_probe_slo_breach",
                    "",
                    labels(&l2),
                    (c.verdict == Verdict::Fail) as u8 as f64,
                );
            }
            let h = &s.histogram;
            if !h.is_empty() {
                let mut bounds: Vec<f64> = BUCKETS.to_vec();
                bounds.extend(s.slo.iter().map(|c| c.target));
                bounds.sort_by(f64::total_cmp);
                bounds.dedup();
                for b in bounds {
                    let micros = (b * 1e6) as u64;
                    let n = h.count_between(0, micros);
                    let le = num(b);
                    let mut l2 = l.clone();
                    l2.push(("le", le.as_str()));
                    f.add(
                        "iap_probe_step_duration_seconds",
                        "_bucket",
                        labels(&l2),
                        n as f64,
                    );
                }
                let mut l2 = l.clone();
                l2.push(("le", "+Inf"));
                f.add(
                    "iap_probe_step_duration_seconds",
                    "_bucket",
                    labels(&l2),
                    h.len() as f64,
                );
                f.add(
                    "iap_probe_step_duration_seconds",
                    "_sum",
                    labels(&l),
                    h.mean() * h.len() as f64 / 1e6,
                );
                f.add(
                    "iap_probe_step_duration_seconds",
                    "_count",
                    labels(&l),
                    h.len() as f64,
                );
            }
            if let Some(lat) = &s.latency {
                for (q, v) in [("50", lat.p50), ("95", lat.p95), ("99", lat.p99)] {
                    let mut l2 = l.clone();
                    l2.push(("percentile", q));
                    f.add("iap_probe_step_latency_seconds", "", labels(&l2), v);
                }
                if s.kind == "credential" {
                    let provider = if s.name.starts_with("app-store") {
                        "apple"
                    } else {
                        "google"
                    };
                    f.add(
                        "iap_probe_token_seconds",
                        "",
                        labels(&[
                            ("provider", provider),
                            ("probe", p.name.as_str()),
                            ("environment", env),
                        ]),
                        lat.p50,
                    );
                }
            }
        }
    }
    if matches!(part, Part::Probe(_)) {
        return f.render();
    }
    for a in &report.alerts {
        f.add(
            "iap_probe_alert_firing",
            "",
            labels(&[
                ("environment", env),
                ("rule", a.rule),
                ("severity", a.severity),
            ]),
            a.firing as u8 as f64,
        );
    }
    if let Some(i) = &report.incident {
        f.add(
            "iap_probe_incident",
            "",
            labels(&[
                ("environment", env),
                ("type", i.kind),
                ("severity", i.severity),
            ]),
            1.0,
        );
    }
    for c in &report.alerting {
        f.add(
            "iap_probe_alert_delivery_failures",
            "",
            labels(&[("environment", env), ("channel", c.channel)]),
            c.failed as f64,
        );
    }
    f.add(
        "iap_probe_run_duration_seconds",
        "",
        labels(&[("environment", env)]),
        report.duration_seconds,
    );
    let started = humantime::parse_rfc3339(&report.started_at)
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0);
    f.add(
        "iap_probe_last_run_timestamp_seconds",
        "",
        labels(&[("environment", env)]),
        started,
    );
    f.render()
}
