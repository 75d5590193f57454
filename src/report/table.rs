//! The table for people: one block per probe, a line per step, the reason and what to
//! check first under anything that did not pass.

use std::fmt::Write as _;
use std::time::Duration;

use super::model::{Latency, ProbeReport, Report, StepReport};
use crate::slo::Verdict;
use crate::slo::verdict::fmt_duration;

fn word(v: Verdict, color: bool) -> String {
    let (w, code) = match v {
        Verdict::Pass => ("PASS", "32"),
        Verdict::Warn => ("WARN", "33"),
        Verdict::Fail => ("FAIL", "31"),
    };
    if color {
        format!("\x1b[1;{code}m{w}\x1b[0m")
    } else {
        w.to_string()
    }
}

fn secs(s: f64) -> String {
    fmt_duration(Duration::from_secs_f64(s.max(0.0)))
}

fn step_result(s: &StepReport) -> &'static str {
    if s.attempts == 0 && s.skipped > 0 {
        "skipped"
    } else {
        s.verdict.as_str()
    }
}

fn slo_text(s: &StepReport) -> String {
    s.slo
        .iter()
        .map(|c| {
            let op = if c.verdict == Verdict::Fail {
                ">"
            } else {
                "<="
            };
            let target = secs(c.target);
            format!("{} {op} {target}", c.figure)
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn lat(l: &Option<Latency>, f: impl Fn(&Latency) -> f64) -> String {
    l.as_ref().map(|l| secs(f(l))).unwrap_or_else(|| "-".into())
}

fn probe_block(out: &mut String, p: &ProbeReport, color: bool) {
    let completion = p
        .completion
        .as_ref()
        .map(|c| format!(", completion p50 {}", secs(c.p50)))
        .unwrap_or_default();
    let _ = writeln!(
        out,
        "{}  {} ({})  {}/{} iterations passed{completion}",
        word(p.verdict, color),
        p.name,
        p.platform,
        p.successes,
        p.iterations
    );
    let rows: Vec<[String; 8]> = p
        .steps
        .iter()
        .map(|s| {
            [
                s.name.clone(),
                step_result(s).to_string(),
                s.attempts.to_string(),
                lat(&s.latency, |l| l.p50),
                lat(&s.latency, |l| l.p95),
                lat(&s.latency, |l| l.p99),
                lat(&s.latency, |l| l.max),
                slo_text(s),
            ]
        })
        .collect();
    let header = ["step", "result", "n", "p50", "p95", "p99", "max", "slo"];
    let mut widths = header.map(str::len);
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: &[String]| {
        let mut l = String::from("   ");
        for (i, c) in cells.iter().enumerate() {
            let pad = widths[i].saturating_sub(c.chars().count());
            // Numbers right-aligned, words left-aligned.
            if (2..=6).contains(&i) {
                let _ = write!(l, " {}{c}", " ".repeat(pad));
            } else {
                let _ = write!(l, " {c}{}", " ".repeat(pad));
            }
        }
        l.trim_end().to_string()
    };
    let _ = writeln!(out, "{}", line(&header.map(String::from)));
    for r in &rows {
        let _ = writeln!(out, "{}", line(r));
    }
    // Failures behind the figures, even when a latency breach is the headline.
    for s in p.steps.iter().filter(|s| s.failed > 0 && p.iterations > 1) {
        for f in &s.failures {
            let _ = writeln!(out, "    {} failed {}x: {}", s.name, f.count, f.reason);
        }
    }
    for c in p.slo.iter().filter(|c| c.verdict != Verdict::Pass) {
        let _ = writeln!(
            out,
            "    {} {}",
            word(c.verdict, color).to_lowercase(),
            c.message
        );
    }
    if p.verdict != Verdict::Pass {
        if let Some(r) = &p.reason {
            let _ = writeln!(out, "    reason: {r}");
        }
        if let Some(h) = &p.hint {
            let _ = writeln!(out, "    check:  {h}");
        }
    }
}

pub fn render(report: &Report, color: bool) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "iap-probe run {}  environment {}  started {}  took {}",
        report.run_id,
        report.environment,
        report.started_at,
        secs(report.duration_seconds)
    );
    for p in &report.probes {
        out.push('\n');
        probe_block(&mut out, p, color);
    }
    if let Some(i) = &report.incident {
        let _ = writeln!(out, "\nINCIDENT  {} {}: {}", i.severity, i.kind, i.summary);
        let _ = writeln!(out, "  check first:");
        for (n, c) in i.checks.iter().enumerate() {
            let _ = writeln!(out, "    {}. {c}", n + 1);
        }
    }
    let firing: Vec<_> = report.alerts.iter().filter(|a| a.firing).collect();
    if !firing.is_empty() {
        let _ = writeln!(
            out,
            "\nALERTS firing (runbook thresholds over the run history):"
        );
        for a in firing {
            let _ = writeln!(out, "  {:<8} {}: {}", a.severity, a.rule, a.message);
        }
    }
    if report.deadline_hit {
        let _ = writeln!(
            out,
            "\nrun deadline of {} reached: unfinished steps are reported as failed",
            secs(report.deadline_seconds)
        );
    }
    let s = &report.summary;
    let _ = writeln!(
        out,
        "\n{}  {} {}: {} passed, {} warned, {} failed (exit {})",
        word(report.verdict, color),
        s.probes,
        if s.probes == 1 { "probe" } else { "probes" },
        s.passed,
        s.warned,
        s.failed,
        report.exit_code
    );
    out
}
