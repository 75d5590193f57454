//! What can page: each probe of the run (failing = verdict `fail`) and each runbook alert
//! rule (failing = firing). Every subject has a deterministic dedup key:
//!
//! ```text
//! {source}/{environment}/{platform}/{probe}/{rule}
//! iap-probe/production/ios/ios-purchase/probe_failing
//! iap-probe/production/android+ios/runbook/purchase_success_critical
//! ```
//!
//! `platform` is the probe's own platform; for platform-independent probes (`any`) and for
//! the rules it is the run's platforms (`ios`, `android`, `android+ios`, or `any`), so a
//! CronJob per platform owns its own keys and one job's recovery never resolves another
//! job's incident.

use std::collections::BTreeSet;

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::config::{AlertingConfig, Flap};
use crate::report::Report;
use crate::slo::Verdict;

/// PagerDuty's limit on `dedup_key`.
const MAX_KEY: usize = 255;

#[derive(Debug, Clone)]
pub struct Subject {
    pub key: String,
    /// `probe` or `rule`.
    pub kind: &'static str,
    /// Probe or rule name.
    pub name: String,
    pub platform: String,
    pub failing: bool,
    /// PagerDuty severity: critical, error, warning or info.
    pub severity: &'static str,
    /// The runbook's P0–P3 (probes) or the rule's severity (rules).
    pub level: String,
    /// One line: what is wrong.
    pub summary: String,
    /// The runbook section to open.
    pub section: &'static str,
    pub first_checks: Vec<String>,
    /// `custom_details` (PagerDuty), facts only: no secrets.
    pub details: Value,
    pub flap: Flap,
}

/// The runbook's P0–P3 as PagerDuty severities.
pub fn pagerduty_severity(p: &str) -> &'static str {
    match p {
        "P0" => "critical",
        "P1" => "error",
        "P2" => "warning",
        _ => "info",
    }
}

/// Runbook section for an incident type (`report.incident.type`).
pub fn section_for_incident(kind: &str) -> &'static str {
    match kind {
        crate::report::incident::ENTITLEMENT_SYNC => "Entitlement Sync Issues",
        crate::report::incident::SERVER_VERIFICATION
        | crate::report::incident::NOTIFICATION_DELIVERY => "Server Verification Failures",
        _ => "Purchase Flow Failures",
    }
}

fn section_for_rule(rule: &str) -> &'static str {
    if rule.starts_with("verify_latency") || rule.starts_with("error_rate") {
        "Server Verification Failures"
    } else if rule.starts_with("cache") {
        "Entitlement Sync Issues"
    } else {
        "Purchase Flow Failures"
    }
}

/// The runbook's initial response for a section, when the run has no classified incident
/// of that type to take the checks from.
fn runbook_checks(section: &str) -> Vec<String> {
    let v: &[&str] = match section {
        "Entitlement Sync Issues" => &[
            "check the entitlement cache: GET /iap/cache/stats (hit/miss ratio, TTL, refresh policy)",
            "grep cache_refresh /var/log/iap/entitlements.log",
            "check an affected user: GET /iap/user/USER_ID/entitlements (admin token)",
        ],
        "Server Verification Failures" => &[
            "check verification success rates: grep verification_result /var/log/iap/verification.log",
            "test the platform APIs directly (probe token apple|google)",
            "check API quota and rate limits, JWT generation and service-account permissions",
        ],
        _ => &[
            "check service status: curl -f BACKEND/iap/health",
            "check App Store Connect and Google Play Console status",
            "review error logs and recent deployments; roll back if it started with one",
        ],
    };
    v.iter().map(|s| s.to_string()).collect()
}

/// A runbook link: `runbook_url#section-anchor`.
pub fn runbook_link(cfg: &AlertingConfig, section: &str) -> Option<String> {
    cfg.runbook_url.as_ref().map(|u| {
        let anchor: String = section
            .to_ascii_lowercase()
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .collect();
        format!("{}#{anchor}", u.split('#').next().unwrap_or(u))
    })
}

fn segment(s: &str) -> String {
    let s = s.trim().replace('/', "-");
    if s.is_empty() { "-".into() } else { s }
}

/// `{source}/{environment}/{platform}/{probe}/{rule}`, at most 255 bytes (longer keys keep
/// a prefix and a hash of the whole, so they stay unique and deterministic).
pub fn dedup_key(
    source: &str,
    environment: &str,
    platform: &str,
    probe: &str,
    rule: &str,
) -> String {
    let key = [source, environment, platform, probe, rule]
        .iter()
        .map(|s| segment(s))
        .collect::<Vec<_>>()
        .join("/");
    if key.len() <= MAX_KEY {
        return key;
    }
    let hash = Sha256::digest(key.as_bytes());
    let hex: String = hash.iter().take(8).map(|b| format!("{b:02x}")).collect();
    let mut cut = MAX_KEY - hex.len() - 1;
    while !key.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}#{hex}", &key[..cut])
}

/// The run's platforms: `ios`, `android`, `android+ios`, or `any`.
pub fn run_scope(report: &Report) -> String {
    let set: BTreeSet<&str> = report
        .probes
        .iter()
        .map(|p| p.platform.as_str())
        .filter(|p| *p != "any")
        .collect();
    if set.is_empty() {
        "any".into()
    } else {
        set.into_iter().collect::<Vec<_>>().join("+")
    }
}

/// Every subject of the run.
pub fn collect(cfg: &AlertingConfig, report: &Report) -> Vec<Subject> {
    let scope = run_scope(report);
    let env = report.environment.as_str();
    let incident = report.incident.as_ref();
    let mut out = Vec::new();
    for p in &report.probes {
        let platform = if p.platform == "any" {
            scope.clone()
        } else {
            p.platform.clone()
        };
        let failing = p.verdict == Verdict::Fail;
        let level = incident.map(|i| i.severity).unwrap_or("P2").to_string();
        let section = incident
            .map(|i| section_for_incident(i.kind))
            .unwrap_or("Purchase Flow Failures");
        let first_checks = incident
            .map(|i| i.checks.clone())
            .unwrap_or_else(|| runbook_checks(section));
        let failing_steps: Vec<Value> = p
            .steps
            .iter()
            .filter(|s| s.verdict == Verdict::Fail)
            .map(|s| {
                json!({
                    "step": s.name,
                    "reason": s.reason,
                    "hint": s.hint,
                    "last_status": s.last_status,
                    "failed": s.failed,
                    "attempts": s.attempts,
                    "failures": s.failures.iter().map(|f| json!({
                        "kind": f.kind, "reason": f.reason, "count": f.count
                    })).collect::<Vec<_>>(),
                })
            })
            .collect();
        let reason = p.reason.clone().unwrap_or_else(|| "failed".into());
        let flap = cfg.flap_for(&p.name);
        out.push(Subject {
            key: dedup_key(&cfg.source, env, &platform, &p.name, "probe_failing"),
            kind: "probe",
            name: p.name.clone(),
            platform: platform.clone(),
            failing,
            severity: pagerduty_severity(&level),
            summary: format!(
                "[{level}] {} failing in {env} ({platform}): {reason}",
                p.name
            ),
            section,
            details: json!({
                "probe": p.name,
                "platform": p.platform,
                "environment": env,
                "verdict": p.verdict,
                "reason": p.reason,
                "hint": p.hint,
                "iterations": p.iterations,
                "successes": p.successes,
                "failing_steps": failing_steps,
                "incident": incident.map(|i| json!({
                    "type": i.kind, "severity": i.severity, "summary": i.summary
                })),
                "runbook": {
                    "section": section,
                    "url": runbook_link(cfg, section),
                    "first_checks": first_checks,
                },
                "run_id": report.run_id,
                "started_at": report.started_at,
            }),
            first_checks,
            level,
            flap,
        });
    }
    let Some(rule_flap) = cfg.rules else {
        return out;
    };
    for a in &report.alerts {
        let section = section_for_rule(a.rule);
        let first_checks = incident
            .filter(|i| section_for_incident(i.kind) == section)
            .map(|i| i.checks.clone())
            .unwrap_or_else(|| runbook_checks(section));
        out.push(Subject {
            key: dedup_key(&cfg.source, env, &scope, "runbook", a.rule),
            kind: "rule",
            name: a.rule.to_string(),
            platform: scope.clone(),
            failing: a.firing,
            severity: if a.severity == "critical" {
                "critical"
            } else {
                "warning"
            },
            level: a.severity.to_string(),
            summary: format!(
                "[{}] {} in {env} ({scope}): {}",
                a.severity, a.rule, a.message
            ),
            section,
            details: json!({
                "rule": a.rule,
                "severity": a.severity,
                "environment": env,
                "platforms": scope,
                "value": a.value,
                "threshold": a.threshold,
                "window_seconds": a.window_seconds,
                "samples": a.samples,
                "message": a.message,
                "incident": incident.map(|i| json!({
                    "type": i.kind, "severity": i.severity, "summary": i.summary
                })),
                "runbook": {
                    "section": section,
                    "url": runbook_link(cfg, section),
                    "first_checks": first_checks,
                },
                "run_id": report.run_id,
                "started_at": report.started_at,
            }),
            first_checks,
            flap: rule_flap,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dedup_keys_are_deterministic_and_bounded() {
        assert_eq!(
            dedup_key(
                "iap-probe",
                "production",
                "ios",
                "ios-purchase",
                "probe_failing"
            ),
            "iap-probe/production/ios/ios-purchase/probe_failing"
        );
        assert_eq!(dedup_key("s", "a/b", "", "p", "r"), "s/a-b/-/p/r");
        let long = "x".repeat(300);
        let k = dedup_key("s", &long, "ios", "p", "r");
        assert_eq!(k.len(), 255);
        assert_eq!(k, dedup_key("s", &long, "ios", "p", "r"));
        assert_ne!(k, dedup_key("s", &long, "ios", "p", "other"));
    }

    #[test]
    fn severities_map_from_the_runbook() {
        assert_eq!(pagerduty_severity("P0"), "critical");
        assert_eq!(pagerduty_severity("P1"), "error");
        assert_eq!(pagerduty_severity("P2"), "warning");
        assert_eq!(pagerduty_severity("P3"), "info");
    }
}
