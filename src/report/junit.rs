//! JUnit XML for CI (GitHub Actions, GitLab, Jenkins): a testsuite per probe, a testcase
//! per step, failures carrying the reason and what to check, durations in seconds.
//! The runbook's windowed alert rules, evaluated over the run history, are one more
//! testsuite ([`ALERTS_SUITE`]) with a testcase per rule: its state and figures, never a
//! failure (the rules judge the history; JUnit failures agree with the run's exit code).
//! Written with quick-junit (nextest's writer), so escaping is not ours to get wrong.

use std::time::Duration;

use quick_junit::{
    NonSuccessKind, Property, Report as JReport, TestCase, TestCaseStatus, TestSuite,
};

use super::model::{ProbeReport, Report, StepReport};
use crate::history::AlertState;
use crate::slo::Verdict;

/// The testsuite holding the windowed alert rules.
pub const ALERTS_SUITE: &str = "runbook-alerts";

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s.max(0.0))
}

fn case(p: &ProbeReport, s: &StepReport) -> TestCase {
    let status = if s.attempts == 0 && s.skipped > 0 {
        let mut st = TestCaseStatus::skipped();
        st.set_message("not run: an earlier step failed");
        st
    } else if s.verdict == Verdict::Fail {
        let mut st = TestCaseStatus::non_success(NonSuccessKind::Failure);
        let reason = s.reason.clone().unwrap_or_else(|| "failed".into());
        st.set_message(reason.clone());
        st.set_type(
            s.failures
                .first()
                .map(|f| format!("{:?}", f.kind).to_lowercase())
                .unwrap_or_else(|| "slo".into()),
        );
        let mut text = reason;
        if let Some(h) = &s.hint {
            text.push_str("\ncheck first: ");
            text.push_str(h);
        }
        st.set_description(text);
        st
    } else {
        TestCaseStatus::success()
    };
    let mut tc = TestCase::new(s.name.clone(), status);
    tc.set_classname(format!("iap-probe.{}", p.name));
    if let Some(l) = &s.latency {
        tc.set_time(secs(l.p50));
    }
    if s.verdict == Verdict::Warn
        && let Some(r) = &s.reason
    {
        tc.set_system_out(format!("warning: {r}"));
    }
    tc
}

/// The rule's figures as `key=value` lines named like the JSON report's fields, so a CI
/// reader shows threshold, window and observed value without the JSON beside it.
fn alert_figures(a: &AlertState) -> String {
    let value = a.value.map_or_else(|| "none".into(), |v| v.to_string());
    format!(
        "severity={}\nthreshold={}\nwindow_seconds={}\nvalue={value}\nsamples={}",
        a.severity, a.threshold, a.window_seconds, a.samples
    )
}

fn alert_case(a: &AlertState) -> TestCase {
    // A firing rule is not a JUnit failure: the windowed rules judge the history, not
    // this run, and JUnit failures must agree with the exit code (1 only when this run
    // failed), or a CI reporter would fail a deployment the run itself passed.
    let mut tc = TestCase::new(a.rule, TestCaseStatus::success());
    tc.set_classname(format!("iap-probe.{ALERTS_SUITE}"));
    let state = if a.firing {
        format!("FIRING ({})", a.severity)
    } else {
        "quiet".into()
    };
    tc.set_system_out(format!("{state}: {}\n{}", a.message, alert_figures(a)));
    tc
}

pub fn render(report: &Report) -> String {
    let mut out = JReport::new("iap-probe");
    out.set_time(secs(report.duration_seconds));
    for p in &report.probes {
        let mut suite = TestSuite::new(p.name.clone());
        if let Some(i) = &report.incident {
            suite.add_property(Property::new("incident.type", i.kind));
            suite.add_property(Property::new("incident.severity", i.severity));
            suite.add_property(Property::new("incident.checks", i.checks.join(" | ")));
        }
        suite.add_property(Property::new("platform", p.platform.clone()));
        suite.add_property(Property::new("environment", report.environment.clone()));
        suite.add_property(Property::new("verdict", p.verdict.as_str()));
        suite.add_property(Property::new("run_id", report.run_id.clone()));
        if let Some(c) = &p.completion {
            suite.set_time(secs(c.p50));
        }
        for s in &p.steps {
            suite.add_test_case(case(p, s));
        }
        // Probe-level SLOs (success ratio, completion time) are test cases too, so a
        // breach shows up in the CI summary.
        for c in &p.slo {
            let status = if c.verdict == Verdict::Fail {
                let mut st = TestCaseStatus::non_success(NonSuccessKind::Failure);
                st.set_message(c.message.clone());
                st.set_type("slo");
                st
            } else {
                TestCaseStatus::success()
            };
            let mut tc = TestCase::new(format!("slo {}", c.figure), status);
            tc.set_classname(format!("iap-probe.{}", p.name));
            suite.add_test_case(tc);
        }
        out.add_test_suite(suite);
    }
    // No history store, no evaluated rules: then there is nothing to report, not a pass.
    if !report.alerts.is_empty() {
        let mut suite = TestSuite::new(ALERTS_SUITE);
        suite.add_property(Property::new("environment", report.environment.clone()));
        suite.add_property(Property::new("run_id", report.run_id.clone()));
        for a in &report.alerts {
            suite.add_test_case(alert_case(a));
        }
        out.add_test_suite(suite);
    }
    out.to_string()
        .unwrap_or_else(|e| format!("<!-- cannot serialise the JUnit report: {e} -->\n"))
}
