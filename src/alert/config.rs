//! `[alerting]` in probe.toml: where to page (PagerDuty, Slack), flap control, delivery
//! limits. Parsed with the rest of the file by `crate::config`; the problems found here are
//! returned with their spans so the config's diagnostics name the line and the key.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use crate::probe::duration::Dur;
use crate::secret::SecretSource;

/// PagerDuty's Events API v2 endpoint (US service region; EU accounts use
/// `https://events.eu.pagerduty.com/v2/enqueue`).
pub const PAGERDUTY_URL: &str = "https://events.pagerduty.com/v2/enqueue";
/// The most runs flap control looks back over.
pub const MAX_RUNS: u32 = 50;

/// `[alerting]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertingDef {
    #[serde(default = "yes")]
    enabled: bool,
    #[serde(default)]
    source: Option<Spanned<String>>,
    #[serde(default)]
    runbook_url: Option<Spanned<String>>,
    #[serde(default)]
    alert_after: Option<Spanned<u32>>,
    #[serde(default)]
    within_runs: Option<Spanned<u32>>,
    #[serde(default)]
    resolve_after: Option<Spanned<u32>>,
    #[serde(default)]
    timeout: Option<Spanned<Dur>>,
    #[serde(default)]
    retries: Option<Spanned<u32>>,
    #[serde(default)]
    backoff: Option<Spanned<Dur>>,
    #[serde(default)]
    budget: Option<Spanned<Dur>>,
    #[serde(default)]
    pagerduty: Option<PagerDutyDef>,
    #[serde(default)]
    slack: Option<SlackDef>,
    #[serde(default)]
    rules: Option<RulesDef>,
    #[serde(default)]
    probes: BTreeMap<String, FlapDef>,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FlapDef {
    #[serde(default)]
    alert_after: Option<Spanned<u32>>,
    #[serde(default)]
    within_runs: Option<Spanned<u32>>,
    #[serde(default)]
    resolve_after: Option<Spanned<u32>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RulesDef {
    #[serde(default = "yes")]
    enabled: bool,
    #[serde(default)]
    alert_after: Option<Spanned<u32>>,
    #[serde(default)]
    within_runs: Option<Spanned<u32>>,
    #[serde(default)]
    resolve_after: Option<Spanned<u32>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PagerDutyDef {
    routing_key: Spanned<SecretSource>,
    #[serde(default)]
    url: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SlackDef {
    webhook_url: Spanned<SecretSource>,
}

/// Flap control: alert after `alert_after` failures in the last `within_runs` runs,
/// resolve after `resolve_after` passes in a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Flap {
    pub alert_after: u32,
    pub within_runs: u32,
    pub resolve_after: u32,
}

impl Flap {
    /// Probes: 2 failures in the last 3 runs page; 2 passes in a row resolve.
    pub const PROBE_DEFAULT: Flap = Flap {
        alert_after: 2,
        within_runs: 3,
        resolve_after: 2,
    };
    /// Runbook rules are already windowed (5/15/30 min): they page as soon as they fire.
    pub const RULE_DEFAULT: Flap = Flap {
        alert_after: 1,
        within_runs: 1,
        resolve_after: 1,
    };
}

#[derive(Debug, Clone)]
pub struct PagerDutyConfig {
    pub routing_key: SecretSource,
    pub url: String,
}

#[derive(Debug, Clone)]
pub struct SlackConfig {
    pub webhook_url: SecretSource,
}

/// The validated `[alerting]` section.
#[derive(Debug, Clone)]
pub struct AlertingConfig {
    /// The SQLite file the announcement state lives in (the history store).
    pub store: PathBuf,
    /// probe.toml's folder: secret files are relative to it.
    pub dir: PathBuf,
    /// PagerDuty `payload.source` and the first part of every dedup key.
    pub source: String,
    pub runbook_url: Option<String>,
    pub probes: Flap,
    pub probe_overrides: BTreeMap<String, Flap>,
    /// `None`: the runbook rules are not announced.
    pub rules: Option<Flap>,
    /// Per delivery attempt.
    pub timeout: Duration,
    /// Attempts after the first, on 429, 5xx and network errors.
    pub retries: u32,
    /// First retry delay; doubles each attempt (a Retry-After header wins).
    pub backoff: Duration,
    /// Most time all deliveries of one run may take; what does not fit waits for the
    /// next run.
    pub budget: Duration,
    pub pagerduty: Option<PagerDutyConfig>,
    pub slack: Option<SlackConfig>,
}

impl AlertingConfig {
    /// Flap control for a probe: its override, else the `[alerting]` default.
    pub fn flap_for(&self, probe: &str) -> Flap {
        self.probe_overrides
            .get(probe)
            .copied()
            .unwrap_or(self.probes)
    }
}

/// A problem found in `[alerting]`: where, which key, what.
pub type Problem = (Range<usize>, String, String);

fn flap(def: &FlapDef, base: Flap, key: &str, out: &mut Vec<Problem>) -> Flap {
    let get = |v: &Option<Spanned<u32>>, d: u32| v.as_ref().map(|s| *s.get_ref()).unwrap_or(d);
    let f = Flap {
        alert_after: get(&def.alert_after, base.alert_after),
        within_runs: get(&def.within_runs, base.within_runs),
        resolve_after: get(&def.resolve_after, base.resolve_after),
    };
    let span = |v: &Option<Spanned<u32>>| v.as_ref().map(|s| s.span());
    let any = span(&def.alert_after)
        .or(span(&def.within_runs))
        .or(span(&def.resolve_after))
        .unwrap_or(0..0);
    if f.within_runs == 0 || f.within_runs > MAX_RUNS {
        out.push((
            span(&def.within_runs).unwrap_or(any.clone()),
            format!("{key}within_runs"),
            format!("{} must be between 1 and {MAX_RUNS}", f.within_runs),
        ));
    }
    if f.alert_after == 0 || f.alert_after > f.within_runs {
        out.push((
            span(&def.alert_after).unwrap_or(any.clone()),
            format!("{key}alert_after"),
            format!(
                "{} must be between 1 and within_runs ({})",
                f.alert_after, f.within_runs
            ),
        ));
    }
    if f.resolve_after == 0 || f.resolve_after > MAX_RUNS {
        out.push((
            span(&def.resolve_after).unwrap_or(any),
            format!("{key}resolve_after"),
            format!("{} must be between 1 and {MAX_RUNS}", f.resolve_after),
        ));
    }
    f
}

fn url_problem(url: &Spanned<String>, key: &str, out: &mut Vec<Problem>) {
    match reqwest::Url::parse(url.get_ref()) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {}
        _ => out.push((
            url.span(),
            key.into(),
            format!("{:?} is not an http(s) URL", url.get_ref()),
        )),
    }
}

/// Validates `[alerting]`. `history` is the history store's path (`None` when
/// `[history] enabled = false`): the announcement state lives there.
pub fn resolve(
    def: Option<Spanned<AlertingDef>>,
    dir: &Path,
    history: Option<&Path>,
) -> (Option<AlertingConfig>, Vec<Problem>) {
    let mut out = Vec::new();
    let Some(def) = def else {
        return (None, out);
    };
    let span = def.span();
    let def = def.into_inner();
    let top = FlapDef {
        alert_after: def.alert_after.clone(),
        within_runs: def.within_runs.clone(),
        resolve_after: def.resolve_after.clone(),
    };
    let probes = flap(&top, Flap::PROBE_DEFAULT, "alerting.", &mut out);
    let mut probe_overrides = BTreeMap::new();
    for (name, d) in &def.probes {
        let f = flap(d, probes, &format!("alerting.probes.{name}."), &mut out);
        probe_overrides.insert(name.clone(), f);
    }
    let rules = match &def.rules {
        None => Some(Flap::RULE_DEFAULT),
        Some(r) => {
            let d = FlapDef {
                alert_after: r.alert_after.clone(),
                within_runs: r.within_runs.clone(),
                resolve_after: r.resolve_after.clone(),
            };
            let f = flap(&d, Flap::RULE_DEFAULT, "alerting.rules.", &mut out);
            r.enabled.then_some(f)
        }
    };
    let pagerduty = def.pagerduty.map(|p| {
        if let Err(e) = p.routing_key.get_ref().validate() {
            out.push((
                p.routing_key.span(),
                "alerting.pagerduty.routing_key".into(),
                e.to_string(),
            ));
        }
        let url = p
            .url
            .unwrap_or_else(|| Spanned::new(0..0, PAGERDUTY_URL.to_string()));
        url_problem(&url, "alerting.pagerduty.url", &mut out);
        PagerDutyConfig {
            routing_key: p.routing_key.into_inner(),
            url: url.into_inner(),
        }
    });
    let slack = def.slack.map(|s| {
        if let Err(e) = s.webhook_url.get_ref().validate() {
            out.push((
                s.webhook_url.span(),
                "alerting.slack.webhook_url".into(),
                e.to_string(),
            ));
        }
        SlackConfig {
            webhook_url: s.webhook_url.into_inner(),
        }
    });
    if let Some(u) = &def.runbook_url {
        url_problem(u, "alerting.runbook_url", &mut out);
    }
    let source = def
        .source
        .map(Spanned::into_inner)
        .unwrap_or_else(|| "iap-probe".into());
    if source.trim().is_empty() || source.contains('/') {
        out.push((
            span.clone(),
            "alerting.source".into(),
            "must be a non-empty name without '/' (it starts every dedup key)".into(),
        ));
    }
    let dur = |v: &Option<Spanned<Dur>>, d: u64| {
        v.as_ref()
            .map(|s| s.get_ref().0)
            .unwrap_or(Duration::from_millis(d))
    };
    let timeout = dur(&def.timeout, 10_000);
    let backoff = dur(&def.backoff, 1_000);
    let budget = dur(&def.budget, 30_000);
    for (v, key) in [(&def.timeout, "timeout"), (&def.budget, "budget")] {
        if let Some(s) = v
            && s.get_ref().0.is_zero()
        {
            out.push((
                s.span(),
                format!("alerting.{key}"),
                "must be above zero".into(),
            ));
        }
    }
    let retries = def.retries.as_ref().map(|r| *r.get_ref()).unwrap_or(3);
    if retries > 10
        && let Some(r) = &def.retries
    {
        out.push((
            r.span(),
            "alerting.retries".into(),
            "at most 10: a failed delivery is retried on the next run anyway".into(),
        ));
    }
    if !def.enabled {
        return (None, out);
    }
    if pagerduty.is_none() && slack.is_none() {
        out.push((
            span.clone(),
            "alerting".into(),
            "needs [alerting.pagerduty] or [alerting.slack] (or enabled = false)".into(),
        ));
    }
    let Some(store) = history else {
        out.push((
            span,
            "alerting".into(),
            "needs [history] enabled: the alert state (what was announced) is kept in the history store".into(),
        ));
        return (None, out);
    };
    let cfg = AlertingConfig {
        store: store.to_path_buf(),
        dir: dir.to_path_buf(),
        source,
        runbook_url: def.runbook_url.map(Spanned::into_inner),
        probes,
        probe_overrides,
        rules,
        timeout,
        retries,
        backoff,
        budget,
        pagerduty,
        slack,
    };
    (Some(cfg), out)
}
