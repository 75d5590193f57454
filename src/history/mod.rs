//! Run history in a local SQLite file, so a cron job that runs once a minute can still be
//! judged over the runbook's 5, 15 and 30 minute windows. Histograms are stored in
//! hdrhistogram's V2 format and merged over a window: percentiles over a window are
//! percentiles of the merged data, never averages of percentiles.
//!
//! Concurrency: WAL journal, a busy timeout, and one `BEGIN IMMEDIATE` transaction per
//! run, so an overlapping cron or a run killed mid-write never corrupts the store.

pub mod render;
pub mod rules;
pub mod store;

pub use rules::{AlertRules, AlertState};
pub use store::{History, HistoryError, WindowSummary};
