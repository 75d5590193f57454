//! Slack incoming webhook: one message per run that has transitions — what started
//! failing (with the incident summary and the runbook section's first checks) and what
//! recovered. Nothing while the state is unchanged.
//! <https://api.slack.com/messaging/webhooks>, Block Kit text limits respected.

use std::collections::BTreeSet;

use serde_json::{Value, json};

use super::config::AlertingConfig;
use super::subject::{Subject, runbook_link};
use crate::report::Report;

/// Lines listed per part before "… and N more".
const MAX_LINES: usize = 15;

/// Escapes Slack's control characters in mrkdwn text.
fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn clip(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max - 1).collect();
    out.push('…');
    out
}

fn section(text: String) -> Value {
    json!({ "type": "section", "text": { "type": "mrkdwn", "text": clip(&text, 3000) } })
}

fn list(items: &[&Subject], line: impl Fn(&Subject) -> String) -> String {
    let mut out: Vec<String> = items.iter().take(MAX_LINES).map(|s| line(s)).collect();
    if items.len() > MAX_LINES {
        out.push(format!("… and {} more", items.len() - MAX_LINES));
    }
    out.join("\n")
}

/// The message for this run's transitions.
pub fn message(
    failing: &[&Subject],
    recovered: &[&Subject],
    cfg: &AlertingConfig,
    report: &Report,
) -> Value {
    let env = &report.environment;
    let title = match (failing.len(), recovered.len()) {
        (0, r) => format!("✅ IAP probe: {r} recovered in {env}"),
        (f, 0) => format!("🔴 IAP probe: {f} failing in {env}"),
        (f, r) => format!("🔴 IAP probe: {f} failing, {r} recovered in {env}"),
    };
    let mut blocks = vec![json!({
        "type": "header",
        "text": { "type": "plain_text", "text": clip(&title, 150), "emoji": true }
    })];
    let mut text = title.clone();
    if !failing.is_empty() {
        let lines = list(failing, |s| format!("• {}", esc(&s.summary)));
        text.push_str(&format!(" — {}", failing[0].summary));
        blocks.push(section(format!("*Failing*\n{lines}")));
        if let Some(i) = &report.incident {
            blocks.push(section(format!(
                "*Incident:* {} ({}) — {}",
                esc(i.kind),
                i.severity,
                esc(&i.summary)
            )));
        }
        let mut seen = BTreeSet::new();
        for s in failing {
            if !seen.insert(s.section) {
                continue;
            }
            let name = match runbook_link(cfg, s.section) {
                Some(url) => format!("<{url}|{}>", s.section),
                None => s.section.to_string(),
            };
            let checks: Vec<String> = s
                .first_checks
                .iter()
                .enumerate()
                .map(|(n, c)| format!("{}. `{}`", n + 1, esc(&c.replace('`', "'"))))
                .collect();
            blocks.push(section(format!(
                "*Runbook: {name}* — first checks:\n{}",
                checks.join("\n")
            )));
        }
    }
    if !recovered.is_empty() {
        let lines = list(recovered, |s| {
            format!("• {} ({}) recovered", esc(&s.name), esc(&s.platform))
        });
        blocks.push(section(format!("*Recovered*\n{lines}")));
    }
    blocks.push(json!({
        "type": "context",
        "elements": [{
            "type": "mrkdwn",
            "text": esc(&format!("run {} · {} · {}", report.run_id, report.started_at, cfg.source)),
        }]
    }));
    json!({ "text": clip(&esc(&text), 3000), "blocks": blocks })
}
