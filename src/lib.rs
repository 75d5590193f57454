//! iap-probe: a synthetic purchase-flow prober for mobile In-App Purchase backends.
//!
//! # Layout
//! - [`app`]: what each command does, from engine options to a report (no clap here).
//! - [`config`]: `probe.toml`, validated up front; errors name file, line and key.
//! - [`secret`]: secret values (redacted `Debug`) and where they come from (`env`, `file`).
//! - [`probe`]: declarative probe definitions from `probes/*.toml`: loading, templates,
//!   assertions and captures; [`shipped`] holds the shipped probe files.
//! - [`auth`]: App Store Server API JWTs (ES256) and Google OAuth2 service-account tokens.
//! - [`runner`]: executes probes — one HTTP client, timeouts, deadline, retries, polling,
//!   sampling workers.
//! - [`slo`]: HDR histograms per step, success ratios, verdicts against targets.
//! - [`report`]: the judged report, incident classification, table / JSON / JUnit /
//!   Prometheus, Pushgateway push.
//! - [`history`]: the SQLite run history and the runbook's windowed alert rules.
//! - [`alert`]: PagerDuty and Slack notifications on transitions, with flap control and retries.
//! - [`daemon`]: scheduled runs with `/metrics`, `/healthz` and `/results/latest`.
//! - [`jws`]: Apple signed-data (JWS + x5c chain) verification.
//! - [`sandbox`]: faithful local fakes of Apple, Google and a reference IAP backend.
//! - [`clock`]: wall-clock helpers (epoch milliseconds).

pub mod alert;
pub mod app;
pub mod auth;
pub mod clock;
pub mod config;
pub mod daemon;
pub mod history;
pub mod jws;
pub mod probe;
pub mod report;
pub mod runner;
pub mod sandbox;
pub mod secret;
pub mod shipped;
pub mod slo;
