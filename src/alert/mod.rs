//! Alerting from the prober itself, for teams without Alertmanager: PagerDuty Events API v2
//! and Slack incoming webhooks (`[alerting]` in probe.toml).
//!
//! After each run (and its windowed rules), every probe and every runbook rule is a
//! subject ([`subject`]) with a deterministic dedup key. Flap control ([`state`]) turns
//! the run's outcome into a state — failing after `alert_after` failures in the last
//! `within_runs` runs, ok again after `resolve_after` passes in a row — kept in the history
//! store (table `alert_state`). Only transitions are announced: PagerDuty `trigger` /
//! `resolve` per subject ([`pagerduty`]), one Slack message per run ([`slack`]).
//!
//! Delivery ([`deliver`]) retries 429/5xx/network errors with backoff and Retry-After,
//! within a per-run budget. A failed delivery never fails the run: it is a warning on
//! stderr and `iap_probe_alert_delivery_failures{channel}` in the metrics, and since the
//! channel was not told, the next run tells it (if the state has not changed back).

pub mod config;
pub mod deliver;
pub mod pagerduty;
pub mod slack;
pub mod state;
pub mod subject;

use std::time::{Duration, Instant};

pub use config::{AlertingConfig, Flap};
use state::{Action, Observation, Phase, Planned, Store};
use subject::Subject;

use crate::report::Report;
use crate::secret::Secret;

/// One channel's deliveries in a run (metrics; not part of the JSON report).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelStatus {
    /// `pagerduty` or `slack`.
    pub channel: &'static str,
    /// Events / messages delivered this run.
    pub sent: u64,
    /// Events / messages that could not be delivered (retried on the next run).
    pub failed: u64,
}

fn client(timeout: Duration) -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .user_agent(concat!("iap-probe/", env!("CARGO_PKG_VERSION")))
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(10)))
        .build()
        .map_err(|e| e.to_string())
}

/// When the state store cannot be read, a pager must still page: failing subjects are
/// triggered (the dedup key keeps that to one incident); nothing is resolved and Slack
/// is not told, since nobody knows what was said before.
fn fallback(subjects: &[Subject]) -> Vec<Planned> {
    subjects
        .iter()
        .map(|s| Planned {
            key: s.key.clone(),
            row: state::Row {
                recent: if s.failing { "F" } else { "P" }.into(),
                state: if s.failing { Phase::Failing } else { Phase::Ok },
                since_ms: 0,
                pagerduty: None,
                slack: None,
            },
            before: None,
            pagerduty: s.failing.then_some(Action::Trigger),
            slack: None,
        })
        .collect()
}

/// Announces this run's transitions and records the delivery outcomes in `report`
/// (`report.alerting`). Never fails: problems are warnings.
pub async fn announce(cfg: Option<&AlertingConfig>, report: &mut Report) {
    let Some(cfg) = cfg else {
        return;
    };
    for name in cfg.probe_overrides.keys() {
        if !report.probes.iter().any(|p| &p.name == name) {
            tracing::debug!("[alerting.probes.{name}]: no such probe in this run");
        }
    }
    let subjects = subject::collect(cfg, report);
    let observations: Vec<Observation> = subjects
        .iter()
        .map(|s| Observation {
            key: s.key.clone(),
            kind: s.kind,
            name: s.name.clone(),
            failing: s.failing,
            flap: s.flap,
        })
        .collect();
    let (pd_on, slack_on) = (cfg.pagerduty.is_some(), cfg.slack.is_some());
    let path = cfg.store.clone();
    let now = crate::clock::now_ms();
    let planned = tokio::task::spawn_blocking(move || {
        Store::open(&path)?.observe(&observations, now, pd_on, slack_on)
    })
    .await
    .map_err(|e| e.to_string())
    .and_then(|r| r);
    let (planned, stateful) = match planned {
        Ok(p) => (p, true),
        Err(e) => {
            tracing::warn!("{e}; paging failing subjects without flap control this run");
            (fallback(&subjects), false)
        }
    };
    let policy = deliver::Policy {
        timeout: cfg.timeout,
        retries: cfg.retries,
        backoff: cfg.backoff,
        deadline: Instant::now() + cfg.budget,
    };
    let http = client(cfg.timeout);
    let mut results: Vec<(String, &'static str, Result<Phase, String>)> = Vec::new();
    let mut statuses = Vec::new();

    if let Some(pd) = &cfg.pagerduty {
        let mut status = ChannelStatus {
            channel: "pagerduty",
            sent: 0,
            failed: 0,
        };
        let key: Result<Secret, String> = pd.routing_key.load(&cfg.dir).map_err(|e| e.to_string());
        // Triggers first: they matter most when the budget is short.
        let mut todo: Vec<(&Planned, &Subject, Action)> = planned
            .iter()
            .zip(&subjects)
            .filter_map(|(p, s)| p.pagerduty.map(|a| (p, s, a)))
            .collect();
        todo.sort_by_key(|(_, _, a)| *a != Action::Trigger);
        for (p, s, action) in todo {
            let outcome = match (&key, &http) {
                (Err(e), _) => Err(format!("routing key: {e}")),
                (_, Err(e)) => Err(e.clone()),
                (Ok(k), Ok(client)) => {
                    let event = match action {
                        Action::Trigger => {
                            pagerduty::trigger(k.expose(), s, cfg, report, &p.row.recent)
                        }
                        Action::Resolve => pagerduty::resolve(k.expose(), &s.key),
                    };
                    deliver::post(client, &pd.url, &event, policy).await
                }
            };
            let verb = match action {
                Action::Trigger => "trigger",
                Action::Resolve => "resolve",
            };
            match outcome {
                Ok(attempts) => {
                    status.sent += 1;
                    tracing::info!(
                        "pagerduty: {verb} {} delivered ({attempts} attempts)",
                        s.key
                    );
                    results.push((s.key.clone(), "pagerduty", Ok(action.phase())));
                }
                Err(e) => {
                    status.failed += 1;
                    tracing::warn!(
                        "alert delivery to PagerDuty failed ({verb} {}): {e}; it will be retried on the next run",
                        s.key
                    );
                    results.push((s.key.clone(), "pagerduty", Err(e)));
                }
            }
        }
        statuses.push(status);
    }

    if let Some(sl) = &cfg.slack {
        let mut status = ChannelStatus {
            channel: "slack",
            sent: 0,
            failed: 0,
        };
        let pick = |want: Action| -> Vec<(&Planned, &Subject)> {
            planned
                .iter()
                .zip(&subjects)
                .filter(|(p, _)| p.slack == Some(want))
                .collect()
        };
        let failing = pick(Action::Trigger);
        let recovered = pick(Action::Resolve);
        if !failing.is_empty() || !recovered.is_empty() {
            let f: Vec<&Subject> = failing.iter().map(|(_, s)| *s).collect();
            let r: Vec<&Subject> = recovered.iter().map(|(_, s)| *s).collect();
            let outcome = match (sl.webhook_url.load(&cfg.dir), &http) {
                (Err(e), _) => Err(format!("webhook URL: {e}")),
                (_, Err(e)) => Err(e.clone()),
                (Ok(url), Ok(client)) => {
                    let msg = slack::message(&f, &r, cfg, report);
                    deliver::post(client, url.expose(), &msg, policy).await
                }
            };
            match outcome {
                Ok(_) => status.sent += 1,
                Err(e) => {
                    status.failed += 1;
                    tracing::warn!(
                        "alert delivery to Slack failed ({} failing, {} recovered): {e}; it will be retried on the next run",
                        f.len(),
                        r.len()
                    );
                }
            }
            let ok = status.failed == 0;
            for (p, s) in failing.iter().chain(&recovered) {
                let told = match p.slack {
                    Some(a) if ok => Ok(a.phase()),
                    _ => Err("message not delivered".to_string()),
                };
                results.push((s.key.clone(), "slack", told));
            }
        }
        statuses.push(status);
    }

    if stateful && !results.is_empty() {
        let path = cfg.store.clone();
        let saved = tokio::task::spawn_blocking(move || {
            let mut st = Store::open(&path)?;
            for (key, channel, told) in &results {
                st.delivered(
                    key,
                    channel,
                    told.as_ref().map(|p| *p).map_err(|e| e.as_str()),
                )?;
            }
            Ok::<_, String>(())
        })
        .await
        .map_err(|e| e.to_string())
        .and_then(|r| r);
        if let Err(e) = saved {
            tracing::warn!("{e}; deliveries of this run may be repeated on the next run");
        }
    }
    report.alerting = statuses;
}
