//! Latency and success figures, and the verdicts they earn.
//!
//! Every sample goes into an HDR histogram per (probe, step) — constant memory whatever
//! the number of samples, mergeable across workers — and is judged against the step's
//! latency SLO and the runbook's success-ratio targets.

pub mod stats;
pub mod verdict;

pub use stats::{FailureKind, ProbeStats, StepStats};
pub use verdict::{SloCheck, Verdict};
