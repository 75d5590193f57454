//! What people and machines read: the judged report ([`model`]), rendered as a table for
//! people ([`table`]) or JSON with a versioned schema ([`json`], `docs/report.schema.json`).

pub mod hints;
pub mod json;
pub mod model;
pub mod table;

pub use model::{ProbeReport, Report, StepReport, build};

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Table,
    Json,
}

pub fn render(report: &Report, format: Format, color: bool) -> String {
    match format {
        Format::Table => table::render(report, color),
        Format::Json => json::render(report),
    }
}
