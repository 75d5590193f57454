//! Incident classification: which of the runbook's incident types a failing run looks
//! like, its severity (P0–P3), and the runbook's first checks for it.
//!
//! Decided from which steps failed, on which platforms, against which service — the
//! same reasoning an on-call engineer does in the first five minutes.

use serde::Serialize;

use super::model::{ProbeReport, Report, StepReport};
use crate::slo::{FailureKind, Verdict};

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Incident {
    /// The runbook's incident type.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// P0 (critical) .. P3 (low).
    pub severity: &'static str,
    pub summary: String,
    /// The runbook's first checks for this type, in order.
    pub checks: Vec<String>,
}

pub const PURCHASE_FLOW: &str = "Purchase Flow Failure";
pub const ENTITLEMENT_SYNC: &str = "Entitlement Sync Issue";
pub const SERVER_VERIFICATION: &str = "Server Verification Failure";
/// Apple could not deliver a server notification: the backend's endpoint is at fault
/// (a Server Verification Failure in the runbook's terms, owned by the backend team).
pub const NOTIFICATION_DELIVERY: &str = "Notification Delivery Failure";

fn checks(kind: &str, backend: &str) -> Vec<String> {
    let v: &[&str] = match kind {
        PURCHASE_FLOW => &[
            "curl -f {backend}/iap/health",
            "check App Store Connect and Google Play Console status",
            "tail -f /var/log/iap/verification.log | grep ERROR",
            "review recent deployments, config updates and feature flags; roll back if it started with one",
        ],
        ENTITLEMENT_SYNC => &[
            "curl {backend}/iap/cache/stats (hit/miss ratio, TTL, refresh policy)",
            "grep cache_refresh /var/log/iap/entitlements.log",
            "curl -H \"Authorization: Bearer $ADMIN_TOKEN\" {backend}/iap/user/USER_ID/entitlements",
            "force a refresh: POST {backend}/iap/cache/refresh/USER_ID",
        ],
        NOTIFICATION_DELIVERY => &[
            "is {backend}/iap/notifications/apple reachable from the internet (Apple posts from 17.0.0.0/8): check DNS, firewall, load balancer and WAF rules",
            "is its TLS certificate valid (unexpired, full chain, matching host; TLS 1.2+): openssl s_client -connect HOST:443 -servername HOST",
            "does it answer 2xx fast: curl -sS -o /dev/null -w '%{http_code} %{time_total}s' -X POST -d '{}' {backend}/iap/notifications/apple",
            "check the notification URL in App Store Connect and the backend's notification log for signature or parse errors",
        ],
        _ => &[
            "check verification success rates: grep verification_result /var/log/iap/verification.log",
            "test the platform APIs directly (probe token apple|google, then the Apple/Google steps)",
            "validate JWT generation (key id, issuer id, bundle id) and the service account's permissions",
            "check network, TLS certificates, firewall and proxy to the platform APIs",
        ],
    };
    v.iter().map(|c| c.replace("{backend}", backend)).collect()
}

fn failed(s: &StepReport) -> bool {
    s.verdict == Verdict::Fail
}

/// Some of the step's requests failed outright. A step that failed only its latency SLO
/// answered correctly: that is degradation, never an outage or a failed verification.
fn broken(s: &StepReport) -> bool {
    failed(s) && s.failed > 0
}

fn failed_kind(s: &StepReport, kinds: &[FailureKind]) -> bool {
    failed(s) && s.failures.iter().any(|f| kinds.contains(&f.kind))
}

fn make(kind: &'static str, severity: &'static str, summary: String, backend: &str) -> Incident {
    Incident {
        kind,
        severity,
        summary,
        checks: checks(kind, backend),
    }
}

/// Classifies a report; `None` when nothing failed.
pub fn classify(report: &Report, backend: &str) -> Option<Incident> {
    let failing: Vec<&ProbeReport> = report
        .probes
        .iter()
        .filter(|p| p.verdict == Verdict::Fail)
        .collect();
    if failing.is_empty() {
        return None;
    }
    let steps = |p: &'_ ProbeReport| p.steps.clone();
    let backend_steps: Vec<(&ProbeReport, StepReport)> = report
        .probes
        .iter()
        .flat_map(|p| steps(p).into_iter().map(move |s| (p, s)))
        .filter(|(_, s)| s.target == "backend" && s.attempts > 0)
        .collect();
    let unreachable = |s: &StepReport| {
        failed_kind(
            s,
            &[
                FailureKind::Network,
                FailureKind::Timeout,
                FailureKind::Deadline,
            ],
        ) || (failed(s) && s.last_status.is_some_and(|c| c >= 500))
    };
    // Every probe that reached the backend found it down (no backend step of theirs
    // answered): a complete outage.
    if !backend_steps.is_empty() {
        let probes_hitting: Vec<&str> =
            backend_steps.iter().map(|(p, _)| p.name.as_str()).collect();
        let all_down = probes_hitting.iter().all(|name| {
            backend_steps
                .iter()
                .filter(|(p, _)| p.name == *name)
                .all(|(_, s)| unreachable(s))
        });
        if all_down {
            return Some(make(
                PURCHASE_FLOW,
                "P0",
                "complete outage: the backend is unreachable or failing for every probe".into(),
                backend,
            ));
        }
    }
    let platforms_failing_verify: Vec<&str> = failing
        .iter()
        .filter(|p| {
            p.steps
                .iter()
                .any(|s| broken(s) && s.target == "backend" && s.name.contains("verify"))
        })
        .map(|p| p.platform.as_str())
        .collect();
    let purchase_platforms: Vec<&str> = report
        .probes
        .iter()
        .filter(|p| p.steps.iter().any(|s| s.name.contains("verify")))
        .map(|p| p.platform.as_str())
        .collect();
    if !platforms_failing_verify.is_empty()
        && purchase_platforms.len() > 1
        && platforms_failing_verify.len() == purchase_platforms.len()
    {
        return Some(make(
            SERVER_VERIFICATION,
            "P0",
            "verification fails on every platform: revenue-impacting".into(),
            backend,
        ));
    }
    for p in &failing {
        if let Some(s) = p.steps.iter().find(|s| {
            failed(s) && (s.kind == "credential" || failed_kind(s, &[FailureKind::Credential]))
        }) {
            let summary = if s.kind == "credential" {
                format!(
                    "authentication: {} could not obtain a credential ({}); refresh the JWT key or service account",
                    p.name, s.name
                )
            } else {
                let who = match s.target.as_str() {
                    "apple" => "Apple's App Store Server API",
                    "google" => "the Google Play Developer API",
                    _ => "the service",
                };
                format!(
                    "authentication ({}): {who} refused the probe's credential at {} even after a refresh, while the backend is healthy; rotate or re-issue the key",
                    p.platform, s.name
                )
            };
            return Some(make(SERVER_VERIFICATION, "P1", summary, backend));
        }
    }
    // Apple answered and reported its send attempt to the backend as failed: the
    // backend's problem, not Apple's.
    for p in &failing {
        if let Some(s) = p
            .steps
            .iter()
            .find(|s| s.target == "apple" && failed_kind(s, &[FailureKind::Rejected]))
        {
            return Some(make(
                NOTIFICATION_DELIVERY,
                "P1",
                format!(
                    "notification delivery ({}): Apple could not deliver to the backend's notification endpoint ({}); the backend must accept Apple's POST",
                    p.platform,
                    s.reason.clone().unwrap_or_else(|| s.name.clone())
                ),
                backend,
            ));
        }
    }
    for p in &failing {
        if let Some(s) = p
            .steps
            .iter()
            .find(|s| failed(s) && matches!(s.target.as_str(), "apple" | "google"))
        {
            let who = if s.target == "apple" {
                "Apple's App Store Server API"
            } else {
                "Google Play Developer API"
            };
            return Some(make(
                SERVER_VERIFICATION,
                "P1",
                format!(
                    "platform-specific ({}): {who} step {} failed while the backend is healthy; check the platform's status",
                    p.platform, s.name
                ),
                backend,
            ));
        }
    }
    if let Some(p) = failing.iter().find(|p| {
        !platforms_failing_verify.is_empty()
            && platforms_failing_verify.contains(&p.platform.as_str())
    }) {
        return Some(make(
            PURCHASE_FLOW,
            "P1",
            format!("platform-specific: verification fails on {}", p.platform),
            backend,
        ));
    }
    for p in &failing {
        if p.steps.iter().any(|s| failed(s) && s.polls) {
            return Some(make(
                ENTITLEMENT_SYNC,
                "P1",
                format!(
                    "entitlement sync: {} — entitlements do not appear in time",
                    p.name
                ),
                backend,
            ));
        }
    }
    for p in &failing {
        if let Some(s) = p
            .steps
            .iter()
            .find(|s| failed(s) && s.name.contains("cache"))
        {
            return Some(make(
                ENTITLEMENT_SYNC,
                "P2",
                format!(
                    "cache problem: {} {} — {}",
                    p.name,
                    s.name,
                    s.reason.clone().unwrap_or_default()
                ),
                backend,
            ));
        }
    }
    for p in &failing {
        if let Some(s) = p
            .steps
            .iter()
            .find(|s| s.slo.iter().any(|c| c.verdict == Verdict::Fail))
        {
            let critical = s
                .slo
                .iter()
                .any(|c| c.verdict == Verdict::Fail && c.figure == "max");
            return Some(make(
                SERVER_VERIFICATION,
                if critical { "P1" } else { "P2" },
                format!(
                    "performance degradation: {}",
                    s.reason.clone().unwrap_or_else(|| s.name.clone())
                ),
                backend,
            ));
        }
    }
    let p = failing[0];
    Some(make(
        PURCHASE_FLOW,
        "P2",
        format!(
            "{}: {}",
            p.name,
            p.reason.clone().unwrap_or_else(|| "failed".into())
        ),
        backend,
    ))
}
