//! What people and machines read, pinned: the table and the JSON rendered from
//! hand-built, deterministic runs (`report_fixtures`). A change to either output shows up
//! here as a snapshot diff to review; accept it with `INSTA_UPDATE=always cargo test
//! --test report_snapshots` (or `cargo insta review`) and commit `tests/snapshots/`.
//! Under CI (`CI=true`) insta never writes snapshots: a missing or different one fails.

mod report_fixtures;

use iap_probe::report::{self, Format, Report};
use iap_probe::slo::Verdict;

fn table(r: &Report) -> String {
    report::render(r, Format::Table, false)
}

fn json(r: &Report) -> String {
    report::render(r, Format::Json, false)
}

#[test]
fn all_pass() {
    let r = report_fixtures::all_pass();
    assert_eq!((r.verdict, r.exit_code), (Verdict::Pass, 0));
    insta::assert_snapshot!("table_all_pass", table(&r));
    insta::assert_snapshot!("json_all_pass", json(&r));
}

/// A pass, a credential failure (everything after it skipped) and a latency warning.
#[test]
fn one_shot_pass_fail_warn() {
    let r = report_fixtures::one_shot();
    let verdicts: Vec<Verdict> = r.probes.iter().map(|p| p.verdict).collect();
    assert_eq!(verdicts, [Verdict::Pass, Verdict::Fail, Verdict::Warn]);
    assert_eq!((r.verdict, r.exit_code), (Verdict::Fail, 1));
    insta::assert_snapshot!("table_one_shot", table(&r));
    insta::assert_snapshot!("json_one_shot", json(&r));
}

/// 200 iterations: 503s, timeouts past the critical bound, one entitlement that never
/// appeared.
#[test]
fn sampling_with_mixed_failures() {
    let r = report_fixtures::sampling();
    let p = &r.probes[0];
    assert_eq!((p.iterations, p.successes), (200, 193));
    assert_eq!(p.verdict, Verdict::Fail);
    insta::assert_snapshot!("table_sampling", table(&r));
    insta::assert_snapshot!("json_sampling", json(&r));
}

#[test]
fn deadline_reached() {
    let r = report_fixtures::deadline();
    assert!(r.deadline_hit);
    insta::assert_snapshot!("table_deadline", table(&r));
}

/// On a terminal the verdicts are coloured; nothing else changes.
#[test]
fn colour_only_adds_escape_codes() {
    let r = report_fixtures::one_shot();
    let coloured = report::render(&r, Format::Table, true);
    assert!(coloured.contains("\x1b[1;32mPASS\x1b[0m"), "{coloured}");
    assert!(coloured.contains("\x1b[1;31mFAIL\x1b[0m"), "{coloured}");
    assert!(coloured.contains("\x1b[1;33mWARN\x1b[0m"), "{coloured}");
    assert_eq!(strip_ansi(&coloured), table(&r));
    // JSON never carries colour.
    assert_eq!(report::render(&r, Format::Json, true), json(&r));
}

fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            for c in chars.by_ref() {
                if c == 'm' {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}
