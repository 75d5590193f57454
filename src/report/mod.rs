//! What people and machines read: the judged report ([`model`]), rendered as a table for
//! people ([`table`]), JSON with a versioned schema ([`json`], `docs/report.schema.json`),
//! JUnit XML for CI ([`junit`]) and Prometheus text for cron and daemons ([`prometheus`]).

pub mod hints;
pub mod incident;
pub mod json;
pub mod junit;
pub mod model;
pub mod prometheus;
pub mod push;
pub mod table;

pub use model::{ProbeReport, Report, StepReport, build};

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Table,
    Json,
    Junit,
    Prometheus,
}

pub fn render(report: &Report, format: Format, color: bool) -> String {
    match format {
        Format::Table => table::render(report, color),
        Format::Json => json::render(report),
        Format::Junit => junit::render(report),
        Format::Prometheus => prometheus::render(report),
    }
}
