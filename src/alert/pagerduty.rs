//! PagerDuty Events API v2 (`POST /v2/enqueue`): `trigger` with a deterministic
//! `dedup_key` when a subject starts failing, `resolve` with the same key when it
//! recovers. <https://developer.pagerduty.com/docs/events-api-v2/trigger-events/>

use serde_json::{Value, json};

use super::config::AlertingConfig;
use super::subject::{Subject, runbook_link};
use crate::report::Report;

/// `payload.summary` is at most 1024 characters.
const MAX_SUMMARY: usize = 1024;

fn clip(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max - 1).collect();
    out.push('…');
    out
}

/// A `trigger` event. `recent`: the subject's latest outcomes (flap control), oldest first.
pub fn trigger(
    routing_key: &str,
    s: &Subject,
    cfg: &AlertingConfig,
    report: &Report,
    recent: &str,
) -> Value {
    let mut details = s.details.clone();
    if let Some(d) = details.as_object_mut() {
        d.insert(
            "flap_control".into(),
            json!({
                "alert_after": s.flap.alert_after,
                "within_runs": s.flap.within_runs,
                "resolve_after": s.flap.resolve_after,
                "recent_runs": recent,
            }),
        );
        d.insert("dedup_key".into(), json!(s.key));
    }
    let mut event = json!({
        "routing_key": routing_key,
        "event_action": "trigger",
        "dedup_key": s.key,
        "client": "iap-probe",
        "payload": {
            "summary": clip(&s.summary, MAX_SUMMARY),
            "source": cfg.source,
            "severity": s.severity,
            "timestamp": report.started_at,
            "component": s.name,
            "group": format!("{}/{}", report.environment, s.platform),
            "class": report.incident.as_ref().filter(|_| s.kind == "probe").map(|i| i.kind).unwrap_or(s.section),
            "custom_details": details,
        },
    });
    if let Some(url) = runbook_link(cfg, s.section) {
        event["client_url"] = json!(url);
        event["links"] = json!([{ "href": url, "text": format!("Runbook: {}", s.section) }]);
    }
    event
}

/// A `resolve` event for `dedup_key`.
pub fn resolve(routing_key: &str, dedup_key: &str) -> Value {
    json!({
        "routing_key": routing_key,
        "event_action": "resolve",
        "dedup_key": dedup_key,
    })
}
