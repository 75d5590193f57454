//! `probe history` output: the window as a table for people or JSON.

use std::fmt::Write as _;
use std::time::Duration;

use serde::Serialize;

use super::rules::AlertState;
use super::store::WindowSummary;
use crate::slo::verdict::fmt_duration;

#[derive(Serialize)]
struct HistoryJson<'a> {
    schema_version: u32,
    #[serde(flatten)]
    summary: &'a WindowSummary,
    alerts: &'a [AlertState],
}

pub fn json(summary: &WindowSummary, alerts: &[AlertState]) -> String {
    let doc = HistoryJson {
        schema_version: 1,
        summary,
        alerts,
    };
    let mut s = serde_json::to_string_pretty(&doc).unwrap_or_default();
    s.push('\n');
    s
}

fn secs(v: Option<f64>) -> String {
    v.map(|s| fmt_duration(Duration::from_secs_f64(s.max(0.0))))
        .unwrap_or_else(|| "-".into())
}

pub fn table(summary: &WindowSummary, alerts: &[AlertState]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "history over the last {}: {} runs",
        fmt_duration(Duration::from_secs(summary.window_seconds)),
        summary.runs
    );
    for p in &summary.probes {
        let ratio = p
            .success_ratio
            .map(|r| format!("{:.2}%", r * 100.0))
            .unwrap_or_else(|| "-".into());
        let _ = writeln!(
            out,
            "\n{} ({}): {} runs, {}/{} iterations passed ({ratio})",
            p.probe, p.platform, p.runs, p.successes, p.iterations
        );
        let _ = writeln!(
            out,
            "    {:<20} {:>6} {:>6} {:>9} {:>9} {:>9}",
            "step", "ok", "failed", "p50", "p95", "p99"
        );
        for s in &p.steps {
            let _ = writeln!(
                out,
                "    {:<20} {:>6} {:>6} {:>9} {:>9} {:>9}",
                s.step,
                s.ok,
                s.failed,
                secs(s.p50),
                secs(s.p95),
                secs(s.p99)
            );
        }
    }
    let _ = writeln!(out, "\nalert rules (runbook thresholds):");
    for a in alerts {
        let state = if a.firing { "FIRING" } else { "ok" };
        let _ = writeln!(
            out,
            "  {state:<6} {:<8} {:<26} {}",
            a.severity, a.rule, a.message
        );
    }
    out
}
