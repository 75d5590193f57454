//! Alerting from the prober (`[alerting]`): PagerDuty Events API v2 and Slack incoming
//! webhooks, through the real `probe` binary against the sandbox, with local receivers
//! that check every payload against the documented formats (and answer 400 like the real
//! services when one is wrong). Transitions, dedup keys, flap control, retries with
//! Retry-After, failed deliveries retried on the next run, and no secrets in payloads.

#[path = "fixtures/prober/support.rs"]
mod support;

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};
use support::*;

/// A 32-character integration key, like PagerDuty's.
const ROUTING_KEY: &str = "R0UT1NGKEYa1b2c3d4e5f6a7b8c9d0e1";
const SLACK_PATH: &str = "/services/T0TEST/B0TEST/s3cretW3bh00kT0ken";
const HEALTH_KEY: &str = "iap-probe/sandbox/any/health/probe_failing";

// ---------------------------------------------------------------------------------------
// Receivers

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    PagerDuty,
    Slack,
}

#[derive(Default)]
struct Inner {
    /// Valid requests, in order, with when they came.
    got: Vec<(Instant, Value)>,
    /// Requests that broke the documented format.
    invalid: Vec<String>,
    /// Scripted answers (status, Retry-After); then success.
    script: VecDeque<(u16, Option<&'static str>)>,
}

#[derive(Clone)]
struct Receiver {
    kind: Kind,
    inner: Arc<Mutex<Inner>>,
    url: String,
}

impl Receiver {
    async fn start(kind: Kind) -> Receiver {
        let inner: Arc<Mutex<Inner>> = Arc::default();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let path = match kind {
            Kind::PagerDuty => "/v2/enqueue",
            Kind::Slack => SLACK_PATH,
        };
        let r = Receiver {
            kind,
            inner,
            url: format!("http://{addr}{path}"),
        };
        let app = Router::new()
            .route(path, post(receive))
            .with_state(r.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        r
    }

    fn fail_next(&self, answers: &[(u16, Option<&'static str>)]) {
        self.inner
            .lock()
            .unwrap()
            .script
            .extend(answers.iter().copied());
    }

    fn requests(&self) -> Vec<Value> {
        let i = self.inner.lock().unwrap();
        assert!(i.invalid.is_empty(), "invalid payloads: {:#?}", i.invalid);
        i.got.iter().map(|(_, v)| v.clone()).collect()
    }

    fn times(&self) -> Vec<Instant> {
        self.inner
            .lock()
            .unwrap()
            .got
            .iter()
            .map(|(t, _)| *t)
            .collect()
    }

    /// Requests since the last call (by count).
    fn since(&self, seen: &mut usize) -> Vec<Value> {
        let all = self.requests();
        let new = all[*seen..].to_vec();
        *seen = all.len();
        new
    }
}

async fn receive(State(r): State<Receiver>, headers: HeaderMap, body: String) -> Response {
    let ct = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let parsed: Result<Value, _> = serde_json::from_str(&body);
    let errors = match (&parsed, ct.starts_with("application/json")) {
        (Ok(v), true) => match r.kind {
            Kind::PagerDuty => pagerduty_errors(v),
            Kind::Slack => slack_errors(v),
        },
        (_, false) => vec![format!("content-type {ct:?}")],
        (Err(e), _) => vec![format!("not JSON: {e}")],
    };
    let mut i = r.inner.lock().unwrap();
    if !errors.is_empty() {
        i.invalid.push(format!("{errors:?} in {body}"));
        return match r.kind {
            Kind::PagerDuty => (
                StatusCode::BAD_REQUEST,
                axum::Json(json!({"status": "invalid event", "message": "Event object is invalid", "errors": errors})),
            )
                .into_response(),
            Kind::Slack => (StatusCode::BAD_REQUEST, "invalid_payload").into_response(),
        };
    }
    let v = parsed.unwrap();
    i.got.push((Instant::now(), v.clone()));
    if let Some((status, retry_after)) = i.script.pop_front() {
        let mut resp = (
            StatusCode::from_u16(status).unwrap(),
            match r.kind {
                Kind::PagerDuty => r#"{"status":"throttled"}"#,
                Kind::Slack => "rate_limited",
            },
        )
            .into_response();
        if let Some(s) = retry_after {
            resp.headers_mut()
                .insert("retry-after", HeaderValue::from_static(s));
        }
        return resp;
    }
    match r.kind {
        Kind::PagerDuty => (
            StatusCode::ACCEPTED,
            axum::Json(json!({"status": "success", "message": "Event processed", "dedup_key": v["dedup_key"]})),
        )
            .into_response(),
        Kind::Slack => (StatusCode::OK, "ok").into_response(),
    }
}

/// PagerDuty Events API v2 (`/v2/enqueue`), as documented.
fn pagerduty_errors(v: &Value) -> Vec<String> {
    let mut e = Vec::new();
    let Some(o) = v.as_object() else {
        return vec!["not an object".into()];
    };
    for k in o.keys() {
        if ![
            "routing_key",
            "event_action",
            "dedup_key",
            "payload",
            "images",
            "links",
            "client",
            "client_url",
        ]
        .contains(&k.as_str())
        {
            e.push(format!("unknown field {k}"));
        }
    }
    if v["routing_key"].as_str().map(str::len) != Some(32) {
        e.push("routing_key must be a 32-character string".into());
    }
    let action = v["event_action"].as_str().unwrap_or_default();
    if !["trigger", "acknowledge", "resolve"].contains(&action) {
        e.push(format!("event_action {action:?}"));
    }
    match v["dedup_key"].as_str() {
        Some(k) if !k.is_empty() && k.len() <= 255 => {}
        _ => e.push("dedup_key: 1..=255 characters (we always send one)".into()),
    }
    if action == "trigger" {
        let p = &v["payload"];
        match p["summary"].as_str() {
            Some(s) if !s.is_empty() && s.chars().count() <= 1024 => {}
            _ => e.push("payload.summary: 1..=1024 characters".into()),
        }
        if p["source"].as_str().is_none_or(str::is_empty) {
            e.push("payload.source is required".into());
        }
        let sev = p["severity"].as_str().unwrap_or_default();
        if !["critical", "error", "warning", "info"].contains(&sev) {
            e.push(format!("payload.severity {sev:?}"));
        }
        if let Some(t) = p.get("timestamp")
            && t.as_str()
                .is_none_or(|t| humantime::parse_rfc3339(t).is_err())
        {
            e.push(format!("payload.timestamp {t} is not ISO 8601"));
        }
        for k in ["component", "group", "class"] {
            if p.get(k).is_some_and(|x| !x.is_string()) {
                e.push(format!("payload.{k} must be a string"));
            }
        }
        if p.get("custom_details").is_some_and(|x| !x.is_object()) {
            e.push("payload.custom_details must be an object".into());
        }
        if let Some(links) = v.get("links") {
            let ok = links
                .as_array()
                .is_some_and(|l| l.iter().all(|x| x["href"].is_string()));
            if !ok {
                e.push("links: [{href, text}]".into());
            }
        }
    }
    e
}

/// Slack incoming webhook message with Block Kit blocks, as documented.
fn slack_errors(v: &Value) -> Vec<String> {
    let mut e = Vec::new();
    let Some(o) = v.as_object() else {
        return vec!["not an object".into()];
    };
    for k in o.keys() {
        if ![
            "text",
            "blocks",
            "attachments",
            "thread_ts",
            "mrkdwn",
            "unfurl_links",
            "unfurl_media",
        ]
        .contains(&k.as_str())
        {
            e.push(format!("unknown field {k}"));
        }
    }
    if v["text"].as_str().is_none_or(str::is_empty) {
        e.push("text (the notification fallback) is required".into());
    }
    let blocks = v["blocks"].as_array().cloned().unwrap_or_default();
    if blocks.len() > 50 {
        e.push("at most 50 blocks".into());
    }
    for b in &blocks {
        let text_ok = |t: &Value, max: usize, plain: bool| {
            let ty = t["type"].as_str().unwrap_or_default();
            (ty == "plain_text" || (!plain && ty == "mrkdwn"))
                && t["text"]
                    .as_str()
                    .is_some_and(|s| !s.is_empty() && s.chars().count() <= max)
        };
        let ok = match b["type"].as_str().unwrap_or_default() {
            "header" => text_ok(&b["text"], 150, true),
            "section" => text_ok(&b["text"], 3000, false),
            "context" => b["elements"].as_array().is_some_and(|els| {
                !els.is_empty() && els.len() <= 10 && els.iter().all(|t| text_ok(t, 3000, false))
            }),
            "divider" => true,
            _ => false,
        };
        if !ok {
            e.push(format!("bad block {b}"));
        }
    }
    e
}

// ---------------------------------------------------------------------------------------
// Helpers

struct Setup {
    sb: Sb,
    pd: Receiver,
    slack: Receiver,
}

/// A sandbox whose probe.toml pages the local receivers; `extra` is appended to
/// `[alerting]` (before its sub-tables).
async fn setup(extra: &str) -> Setup {
    let sb = Sb::start().await;
    let pd = Receiver::start(Kind::PagerDuty).await;
    let slack = Receiver::start(Kind::Slack).await;
    std::fs::write(sb.path("slack-webhook-url"), format!("{}\n", slack.url)).unwrap();
    sb.edit("probe.toml", |s| {
        format!(
            "{s}\n[alerting]\nrunbook_url = \"https://wiki.example.com/iap/runbook\"\nbackoff = \"50ms\"\n{extra}\n\
             [alerting.pagerduty]\nrouting_key = {{ env = \"TEST_PD_ROUTING_KEY\" }}\nurl = \"{}\"\n\
             [alerting.slack]\nwebhook_url = {{ file = \"slack-webhook-url\" }}\n",
            pd.url
        )
    });
    Setup { sb, pd, slack }
}

impl Setup {
    async fn run(&self, extra: &[&str]) -> Run {
        let cfg = self.sb.config_str();
        let mut args = vec!["run", "--config", &cfg, "--probe", "health"];
        args.extend_from_slice(extra);
        let run = probe_env(&args, &[("TEST_PD_ROUTING_KEY", ROUTING_KEY)]).await;
        // Secrets never reach the output.
        let all = run.all_output();
        assert!(!all.contains(ROUTING_KEY), "routing key leaked:\n{all}");
        assert!(!all.contains("s3cretW3bh00k"), "webhook URL leaked:\n{all}");
        run
    }

    async fn outage(&self, on: bool) {
        let spec = if on {
            json!({"route": [{"path": "/iap/health", "outage": true}]})
        } else {
            json!({})
        };
        self.sb.set_faults(spec).await;
    }
}

fn actions(events: &[Value]) -> Vec<(String, String)> {
    events
        .iter()
        .map(|e| {
            (
                e["event_action"].as_str().unwrap().to_string(),
                e["dedup_key"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn event_for<'a>(events: &'a [Value], action: &str, key: &str) -> &'a Value {
    events
        .iter()
        .find(|e| e["event_action"] == action && e["dedup_key"] == key)
        .unwrap_or_else(|| panic!("no {action} for {key} in {events:#?}"))
}

fn metric(text: &str, name_and_labels: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name_and_labels))
        .and_then(|v| v.trim().parse().ok())
}

// ---------------------------------------------------------------------------------------
// Tests

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_once_per_transition_and_resolves_with_the_same_key() {
    let s = setup("alert_after = 1\nwithin_runs = 1\nresolve_after = 1").await;
    let (mut pd_seen, mut sl_seen) = (0, 0);

    // A fresh store knows nothing: passing subjects are resolved (a no-op for PagerDuty,
    // and what closes an incident a forgotten run opened); Slack hears nothing.
    s.run(&[]).await.expect_code(0);
    let first = s.pd.since(&mut pd_seen);
    assert!(!first.is_empty());
    assert!(
        first.iter().all(|e| e["event_action"] == "resolve"),
        "{first:#?}"
    );
    assert!(first.iter().any(|e| e["dedup_key"] == HEALTH_KEY));
    assert!(first.iter().all(|e| e.get("payload").is_none()));
    assert_eq!(s.slack.since(&mut sl_seen), Vec::<Value>::new());

    // Nothing changed: nothing is said.
    s.run(&[]).await.expect_code(0);
    assert_eq!(s.pd.since(&mut pd_seen), Vec::<Value>::new());
    assert_eq!(s.slack.since(&mut sl_seen), Vec::<Value>::new());

    // The backend goes down: one trigger per subject, one Slack message.
    s.outage(true).await;
    s.run(&[]).await.expect_code(1);
    let down = s.pd.since(&mut pd_seen);
    assert!(
        down.iter().all(|e| e["event_action"] == "trigger"),
        "{down:#?}"
    );
    let health = event_for(&down, "trigger", HEALTH_KEY);
    let p = &health["payload"];
    assert_eq!(p["severity"], "critical", "P0 outage -> critical: {p:#}");
    assert_eq!(p["source"], "iap-probe");
    assert_eq!(p["component"], "health");
    assert!(
        str_of(&p["summary"]).starts_with("[P0] health failing in sandbox"),
        "{p:#}"
    );
    let d = &p["custom_details"];
    assert_eq!(d["failing_steps"][0]["step"], "health", "{d:#}");
    assert_eq!(d["failing_steps"][0]["last_status"], 503, "{d:#}");
    assert!(d["failing_steps"][0]["reason"].is_string(), "{d:#}");
    assert_eq!(d["incident"]["severity"], "P0");
    assert_eq!(d["runbook"]["section"], "Purchase Flow Failures");
    assert!(
        str_of(&d["runbook"]["first_checks"][0]).contains("/iap/health"),
        "{d:#}"
    );
    assert_eq!(
        health["links"][0]["href"],
        "https://wiki.example.com/iap/runbook#purchase-flow-failures"
    );
    let outage_key = "iap-probe/sandbox/any/runbook/complete_outage";
    assert_eq!(
        event_for(&down, "trigger", outage_key)["payload"]["severity"],
        "critical"
    );
    // No secret in any payload (the admin token, the webhook URL).
    let everything = serde_json::to_string(&s.pd.requests()).unwrap()
        + &serde_json::to_string(&s.slack.requests()).unwrap();
    assert!(!everything.contains(&s.sb.admin_token()));
    assert!(!everything.contains("s3cretW3bh00k"));
    let msgs = s.slack.since(&mut sl_seen);
    assert_eq!(msgs.len(), 1, "{msgs:#?}");
    let text = msgs[0].to_string();
    assert!(text.contains("failing in sandbox"), "{text}");
    assert!(text.contains("health failing"), "{text}");
    assert!(text.contains("Purchase Flow Failures"), "{text}");
    assert!(text.contains("curl -f"), "{text}");

    // Still down: PagerDuty already has the incident, Slack already said it.
    s.run(&[]).await.expect_code(1);
    assert_eq!(s.pd.since(&mut pd_seen), Vec::<Value>::new());
    assert_eq!(s.slack.since(&mut sl_seen), Vec::<Value>::new());

    // Back up: resolved with the very keys that were triggered; Slack says recovered.
    s.outage(false).await;
    s.run(&[]).await.expect_code(0);
    let up = s.pd.since(&mut pd_seen);
    let resolved = actions(&up);
    assert!(resolved.iter().all(|(a, _)| a == "resolve"), "{resolved:?}");
    let triggered: Vec<String> = actions(&down).into_iter().map(|(_, k)| k).collect();
    for key in [HEALTH_KEY, outage_key] {
        assert!(
            resolved.iter().any(|(_, k)| k == key),
            "{key} not resolved: {resolved:?}"
        );
    }
    for (_, k) in &resolved {
        assert!(
            triggered.contains(k),
            "resolved {k} that was never triggered"
        );
    }
    let msgs = s.slack.since(&mut sl_seen);
    assert_eq!(msgs.len(), 1, "{msgs:#?}");
    let text = msgs[0].to_string();
    assert!(text.contains("recovered"), "{text}");
    assert!(text.contains("health (any) recovered"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flap_control_pages_after_f_of_n_and_resolves_after_m_passes() {
    // Everything pages at once by default here; the health probe's override (2 of 3,
    // 2 passes) must win. Rules are off so only the probe speaks.
    let s = setup(
        "alert_after = 1\nwithin_runs = 1\nresolve_after = 1\n\
         [alerting.rules]\nenabled = false\n\
         [alerting.probes.health]\nalert_after = 2\nwithin_runs = 3\nresolve_after = 2",
    )
    .await;
    let mut seen = 0;
    let mut said = Vec::new();
    for (n, down) in [false, true, false, true, true, false, false]
        .into_iter()
        .enumerate()
    {
        s.outage(down).await;
        s.run(&[]).await.expect_code(if down { 1 } else { 0 });
        let events = actions(&s.pd.since(&mut seen));
        assert!(events.iter().all(|(_, k)| k == HEALTH_KEY), "{events:?}");
        let a: Vec<&str> = events.iter().map(|(a, _)| a.as_str()).collect();
        said.push(format!("{n}:{}", a.join("+")));
    }
    // P F P F(2 of 3: page) F P(1 pass: hold) P(2 passes: resolve)
    assert_eq!(
        said,
        [
            "0:resolve",
            "1:",
            "2:",
            "3:trigger",
            "4:",
            "5:",
            "6:resolve"
        ]
    );
    // Slack heard the failing and the recovery, once each.
    let msgs = s.slack.requests();
    assert_eq!(msgs.len(), 2, "{msgs:#?}");
    assert!(msgs[0].to_string().contains("failing"));
    assert!(msgs[1].to_string().contains("recovered"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_deliveries_are_reported_and_retried_on_the_next_run() {
    let s = setup(
        "alert_after = 1\nwithin_runs = 1\nresolve_after = 1\nretries = 2\n\
         [alerting.rules]\nenabled = false",
    )
    .await;
    s.outage(true).await;
    // PagerDuty is down for the whole run (3 attempts); Slack fails once, then takes it.
    s.pd.fail_next(&[(503, None), (502, None), (500, None)]);
    s.slack.fail_next(&[(500, None)]);
    let run = s.run(&["--format", "prometheus"]).await;
    run.expect_code(1); // the probe's verdict, untouched by the delivery failure
    assert!(
        run.stderr.contains("alert delivery to PagerDuty failed")
            && run.stderr.contains("after 3 attempts")
            && run.stderr.contains("retried on the next run"),
        "{}",
        run.stderr
    );
    assert_eq!(
        metric(
            &run.stdout,
            r#"iap_probe_alert_delivery_failures{environment="sandbox",channel="pagerduty"}"#
        ),
        Some(1.0),
        "{}",
        run.stdout
    );
    assert_eq!(
        metric(
            &run.stdout,
            r#"iap_probe_alert_delivery_failures{environment="sandbox",channel="slack"}"#
        ),
        Some(0.0)
    );
    let pd = s.pd.requests();
    assert_eq!(pd.len(), 3, "{pd:#?}");
    assert!(
        pd.iter().all(|e| e == &pd[0]),
        "retries send the same event"
    );
    let sl = s.slack.requests();
    assert_eq!(sl.len(), 2);
    assert_eq!(sl[0], sl[1]);

    // PagerDuty recovers but throttles once with Retry-After: 1 — honoured.
    s.pd.fail_next(&[(429, Some("1"))]);
    let run = s.run(&["--format", "prometheus"]).await;
    run.expect_code(1);
    let times = s.pd.times();
    assert_eq!(
        times.len(),
        5,
        "the unannounced trigger is retried this run"
    );
    assert!(
        times[4] - times[3] >= Duration::from_millis(950),
        "Retry-After not honoured: {:?}",
        times[4] - times[3]
    );
    let pd = s.pd.requests();
    assert_eq!(pd[4]["event_action"], "trigger");
    assert_eq!(pd[4]["dedup_key"], HEALTH_KEY);
    assert_eq!(
        metric(
            &run.stdout,
            r#"iap_probe_alert_delivery_failures{environment="sandbox",channel="pagerduty"}"#
        ),
        Some(0.0)
    );
    assert_eq!(s.slack.requests().len(), 2, "Slack was already told");

    // Announced now: the next run is quiet.
    s.run(&[]).await.expect_code(1);
    assert_eq!(s.pd.requests().len(), 5);
    assert_eq!(s.slack.requests().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_or_refusing_receivers_never_break_the_run() {
    let s = setup(
        "alert_after = 1\nwithin_runs = 1\nresolve_after = 1\nretries = 1\n\
         [alerting.rules]\nenabled = false",
    )
    .await;
    // Point PagerDuty at a closed port; Slack answers 404 (a deleted webhook: not retried).
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let pd_url = s.pd.url.clone();
    s.sb.edit("probe.toml", |t| {
        t.replace(&pd_url, &format!("http://{closed}/v2/enqueue"))
    });
    s.slack.fail_next(&[(404, None)]);
    s.outage(true).await;
    let run = s.run(&["--format", "prometheus"]).await;
    run.expect_code(1);
    assert!(run.stderr.contains("PagerDuty failed"), "{}", run.stderr);
    assert!(
        run.stderr.contains("Slack failed") && run.stderr.contains("HTTP 404"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("not retried"), "{}", run.stderr);
    for channel in ["pagerduty", "slack"] {
        let m = format!(
            r#"iap_probe_alert_delivery_failures{{environment="sandbox",channel="{channel}"}}"#
        );
        assert_eq!(metric(&run.stdout, &m), Some(1.0), "{}", run.stdout);
    }
    assert_eq!(s.slack.requests().len(), 1, "a 404 is not retried");

    // A missing routing key is a delivery failure too, not a crash (and not exit 2).
    let cfg = s.sb.config_str();
    let run = probe(&["run", "--config", &cfg, "--probe", "health"]).await;
    run.expect_code(1);
    assert!(
        run.stderr.contains("TEST_PD_ROUTING_KEY"),
        "names the missing variable: {}",
        run.stderr
    );
}

// ---------------------------------------------------------------------------------------
// Configuration

const BASE: &str = r#"
[backend]
base_url = "http://127.0.0.1:9/"
"#;

fn parse(extra: &str) -> Result<iap_probe::config::Config, String> {
    iap_probe::config::parse(
        &format!("{BASE}{extra}"),
        std::path::Path::new("conf/probe.toml"),
    )
    .map_err(|e| e.to_string())
}

#[test]
fn alerting_config_defaults_and_overrides() {
    let c = parse(
        "[alerting]\nsource = \"iap-probe-eu\"\n[alerting.pagerduty]\nrouting_key = { env = \"PD\" }\n\
         [alerting.probes.health]\nalert_after = 1\nwithin_runs = 1\n",
    )
    .unwrap();
    let a = c.alerting.expect("[alerting] configured");
    assert_eq!(a.source, "iap-probe-eu");
    assert_eq!(a.probes, iap_probe::alert::Flap::PROBE_DEFAULT);
    assert_eq!(
        (
            a.probes.alert_after,
            a.probes.within_runs,
            a.probes.resolve_after
        ),
        (2, 3, 2)
    );
    let h = a.flap_for("health");
    assert_eq!((h.alert_after, h.within_runs, h.resolve_after), (1, 1, 2));
    assert_eq!(a.rules, Some(iap_probe::alert::Flap::RULE_DEFAULT));
    assert_eq!(
        a.pagerduty.unwrap().url,
        "https://events.pagerduty.com/v2/enqueue"
    );
    assert!(a.slack.is_none());
    assert_eq!(a.store, std::path::Path::new("conf/probe-history.sqlite"));
    assert!(parse("").unwrap().alerting.is_none());
    assert!(
        parse("[alerting]\nenabled = false\n")
            .unwrap()
            .alerting
            .is_none()
    );
}

#[test]
fn alerting_config_errors_name_line_and_key() {
    // The state lives in the history store.
    let e = parse(
        "[history]\nenabled = false\n[alerting]\n[alerting.slack]\nwebhook_url = { env = \"W\" }\n",
    )
    .unwrap_err();
    assert!(
        e.contains("needs [history] enabled") && e.contains("alerting"),
        "{e}"
    );
    // Secrets are env or file, and never echoed.
    let e = parse("[alerting]\n[alerting.slack]\nwebhook_url = { value = \"https://hooks.slack.com/services/SECRET\" }\n")
        .unwrap_err();
    assert!(
        e.contains("line 6") && e.contains("alerting.slack.webhook_url"),
        "{e}"
    );
    assert!(!e.contains("SECRET"), "{e}");
    // Flap control must make sense.
    let e = parse(
        "[alerting]\n[alerting.pagerduty]\nrouting_key = { env = \"PD\" }\n[alerting.probes.health]\nalert_after = 4\nwithin_runs = 3\n",
    )
    .unwrap_err();
    assert!(
        e.contains("line 8") && e.contains("alerting.probes.health.alert_after"),
        "{e}"
    );
    // A channel is required, and unknown keys are refused.
    let e = parse("[alerting]\nalert_after = 1\n").unwrap_err();
    assert!(
        e.contains("needs [alerting.pagerduty] or [alerting.slack]"),
        "{e}"
    );
    let e = parse("[alerting]\npager = 1\n").unwrap_err();
    assert!(e.contains("pager"), "{e}");
}
