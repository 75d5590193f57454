//! iap-probe: a synthetic purchase-flow prober for mobile In-App Purchase backends.
//!
//! # Layout
//! - [`secret`]: secret values (redacted `Debug`) and where they come from (`env`, `file`).
//! - [`config`]: `probe.toml`, validated up front; errors name file, line and key.
//! - [`probe`]: declarative probe definitions from `probes/*.toml`: loading, templates,
//!   assertions and captures.
//! - [`auth`]: App Store Server API JWTs (ES256) and Google OAuth2 service-account tokens.
//! - [`jws`]: Apple signed-data (JWS + x5c chain) verification.
//! - [`sandbox`]: faithful local fakes of Apple, Google and a reference IAP backend.
//! - [`alert`]: PagerDuty and Slack notifications on transitions, with flap control and retries.
pub mod probe;

pub mod alert;
pub mod app;
pub mod auth;
pub mod clock;
pub mod config;
pub mod daemon;
pub mod history;
pub mod jws;
pub mod report;
pub mod runner;
pub mod sandbox;
pub mod secret;
pub mod shipped;
pub mod slo;
