//! The JSON report keeps its documented shape: real reports from the binary (a passing
//! demo, a demo failing under injected faults, a sampling run) and hand-built ones
//! (`report_fixtures`: warnings, credential failures, mixed failure kinds, a deadline)
//! validate against `docs/report.schema.json`, and reports that break the schema do not.

mod report_fixtures;

use std::process::Command;
use std::sync::OnceLock;

use iap_probe::report::{self, Format, Report};
use iap_probe::slo::{FailureKind, Verdict};
use serde_json::{Value, json};

const SCHEMA_PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/report.schema.json");

fn schema() -> &'static Value {
    static SCHEMA: OnceLock<Value> = OnceLock::new();
    SCHEMA.get_or_init(|| {
        let text = std::fs::read_to_string(SCHEMA_PATH).expect("docs/report.schema.json");
        serde_json::from_str(&text).expect("the schema is JSON")
    })
}

fn validator() -> &'static jsonschema::Validator {
    static V: OnceLock<jsonschema::Validator> = OnceLock::new();
    V.get_or_init(|| {
        jsonschema::draft202012::options()
            .should_validate_formats(true)
            .build(schema())
            .expect("the schema compiles")
    })
}

/// Every violation, one per line, with where it is in the report.
fn violations(report: &Value) -> Vec<String> {
    validator()
        .iter_errors(report)
        .map(|e| format!("{}: {e}", e.instance_path()))
        .collect()
}

fn assert_valid(what: &str, report: &Value) {
    let errors = violations(report);
    assert!(
        errors.is_empty(),
        "{what} does not match docs/report.schema.json:\n{}\n\nreport:\n{report:#}",
        errors.join("\n")
    );
}

fn assert_invalid(what: &str, report: &Value) {
    assert!(
        !validator().is_valid(report),
        "the schema accepted a report with {what}"
    );
}

/// Runs the binary; returns its exit code and the JSON it printed.
fn probe(args: &[&str]) -> (i32, Value) {
    let out = Command::new(env!("CARGO_BIN_EXE_probe"))
        .args(args)
        .env("NO_COLOR", "1")
        .output()
        .expect("run probe");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let report = serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!(
            "probe {args:?} printed no JSON report ({e}); exit {:?}\nstdout:\n{stdout}\nstderr:\n{}",
            out.status.code(),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code().unwrap_or(-1), report)
}

/// One passing demo run, shared by the tests that need a real report.
fn passing_demo() -> &'static Value {
    static R: OnceLock<Value> = OnceLock::new();
    R.get_or_init(|| {
        let (code, report) = probe(&["demo", "--format", "json"]);
        assert_eq!(code, 0, "demo should pass:\n{report:#}");
        report
    })
}

fn to_json(r: &Report) -> Value {
    serde_json::from_str(&report::render(r, Format::Json, false)).expect("the report is JSON")
}

#[test]
fn the_schema_is_valid_draft_2020_12() {
    if let Err(e) = jsonschema::meta::validate(schema()) {
        panic!("docs/report.schema.json is not a valid JSON Schema: {e}");
    }
    assert_eq!(
        schema()["$schema"],
        "https://json-schema.org/draft/2020-12/schema"
    );
}

#[test]
fn the_schema_version_is_the_reports() {
    assert_eq!(
        schema()["properties"]["schema_version"]["const"],
        json!(report::model::SCHEMA_VERSION)
    );
}

/// The schema's enums are exactly what the code serialises. The `match`es are exhaustive:
/// a new variant does not compile until it is listed here (and then in the schema).
#[test]
fn the_schema_enums_are_the_codes() {
    fn all_kinds() -> Vec<FailureKind> {
        use FailureKind::*;
        let all = vec![
            Network, Timeout, Deadline, Credential, Assertion, Poll, Capture, Signature, Rejected,
            Body, Template,
        ];
        for k in &all {
            match k {
                Network | Timeout | Deadline | Credential | Assertion | Poll | Capture
                | Signature | Rejected | Body | Template => {}
            }
        }
        all
    }
    fn all_verdicts() -> Vec<Verdict> {
        let all = vec![Verdict::Pass, Verdict::Warn, Verdict::Fail];
        for v in &all {
            match v {
                Verdict::Pass | Verdict::Warn | Verdict::Fail => {}
            }
        }
        all
    }
    let names = |values: Vec<Value>| {
        let mut v: Vec<String> = values
            .into_iter()
            .map(|x| x.as_str().expect("a string").to_string())
            .collect();
        v.sort();
        v
    };
    let schema_enum = |def: &str| {
        names(
            schema()["$defs"][def]["enum"]
                .as_array()
                .unwrap_or_else(|| panic!("$defs.{def}.enum"))
                .clone(),
        )
    };
    let kinds = all_kinds()
        .into_iter()
        .map(|k| serde_json::to_value(k).unwrap())
        .collect();
    assert_eq!(schema_enum("failure_kind"), names(kinds));
    let verdicts = all_verdicts()
        .into_iter()
        .map(|v| serde_json::to_value(v).unwrap())
        .collect();
    assert_eq!(schema_enum("verdict"), names(verdicts));
}

#[test]
fn a_passing_demo_run_matches() {
    let report = passing_demo();
    assert_valid("a passing `probe demo` report", report);
    assert_eq!(report["verdict"], "pass");
    let probes = report["probes"].as_array().unwrap();
    assert!(probes.len() >= 5, "every shipped probe runs: {report:#}");
    // Both step kinds are exercised.
    let kinds: Vec<&Value> = probes
        .iter()
        .flat_map(|p| p["steps"].as_array().unwrap())
        .map(|s| &s["kind"])
        .collect();
    assert!(kinds.contains(&&json!("credential")) && kinds.contains(&&json!("http")));
}

#[test]
fn a_failing_demo_run_matches() {
    let dir = tempfile::tempdir().unwrap();
    let faults = dir.path().join("faults.toml");
    std::fs::write(
        &faults,
        "[[route]]\npath = \"/iap/verify\"\nstatus = 503\nerror_rate = 1.0\n",
    )
    .unwrap();
    let (code, report) = probe(&[
        "demo",
        "--faults",
        faults.to_str().unwrap(),
        "--format",
        "json",
    ]);
    assert_valid("a failing `probe demo --faults` report", &report);
    assert_eq!(code, 1, "{report:#}");
    assert_eq!(
        (&report["verdict"], &report["exit_code"]),
        (&json!("fail"), &json!(1))
    );
    // The verify steps failed on the injected 503, and what came after was skipped.
    let verify: Vec<&Value> = report["probes"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["steps"].as_array().unwrap())
        .filter(|s| s["name"] == "verify")
        .collect();
    assert!(!verify.is_empty(), "{report:#}");
    for s in verify {
        assert_eq!(s["verdict"], "fail", "{s:#}");
        assert_eq!(s["last_status"], 503, "{s:#}");
        assert_eq!(s["failures"][0]["kind"], "assertion", "{s:#}");
    }
}

#[test]
fn a_sampling_run_matches() {
    let (code, report) = probe(&[
        "demo",
        "--iterations",
        "5",
        "--probe",
        "health",
        "--format",
        "json",
    ]);
    assert_valid("a sampling report", &report);
    assert_eq!(code, 0, "{report:#}");
    let probes = report["probes"].as_array().unwrap();
    assert_eq!(probes.len(), 1, "{report:#}");
    assert_eq!(probes[0]["iterations"], 5);
    assert_eq!(probes[0]["completion"]["samples"], 5);
    // With more than one iteration the success ratio is judged.
    assert_eq!(probes[0]["slo"][0]["figure"], "success_ratio");
}

/// Warnings, credential failures, skipped steps, every sampling figure, the deadline.
#[test]
fn hand_built_reports_match() {
    for (what, r) in [
        ("all-pass", report_fixtures::all_pass()),
        ("one-shot pass/fail/warn", report_fixtures::one_shot()),
        ("sampling with mixed failures", report_fixtures::sampling()),
        ("deadline", report_fixtures::deadline()),
    ] {
        assert_valid(what, &to_json(&r));
    }
}

/// The schema is exact: each of these breaks it and must be refused, so the tests above
/// can fail.
#[test]
fn reports_that_break_the_schema_are_rejected() {
    let base = passing_demo().clone();
    let failing = to_json(&report_fixtures::sampling());
    type Mutation = (&'static str, fn(&mut Value));
    let mutations: &[Mutation] = &[
        ("verdict \"maybe\"", |r| r["verdict"] = json!("maybe")),
        ("an extra top-level field", |r| r["extra"] = json!(1)),
        ("a missing summary", |r| {
            r.as_object_mut().unwrap().remove("summary");
        }),
        ("schema_version 2", |r| r["schema_version"] = json!(2)),
        ("a started_at that is not a date-time", |r| {
            r["started_at"] = json!("yesterday")
        }),
        ("exit code 1 on a passing run", |r| {
            r["exit_code"] = json!(1)
        }),
        ("an extra field in a summary", |r| {
            r["summary"]["skipped"] = json!(0)
        }),
        ("an extra field in a probe", |r| {
            r["probes"][0]["owner"] = json!("team-iap")
        }),
        ("platform \"web\"", |r| {
            r["probes"][0]["platform"] = json!("web")
        }),
        ("success_ratio as text", |r| {
            r["probes"][0]["success_ratio"] = json!("100%")
        }),
        ("success_ratio over 1", |r| {
            r["probes"][0]["success_ratio"] = json!(1.5)
        }),
        ("a missing reason", |r| {
            r["probes"][0].as_object_mut().unwrap().remove("reason");
        }),
        ("an extra field in a step", |r| {
            r["probes"][0]["steps"][0]["url"] = json!("http://x")
        }),
        ("step kind \"grpc\"", |r| {
            r["probes"][0]["steps"][0]["kind"] = json!("grpc")
        }),
        ("a step name with a space", |r| {
            r["probes"][0]["steps"][0]["name"] = json!("my step")
        }),
        ("a negative attempt count", |r| {
            r["probes"][0]["steps"][0]["attempts"] = json!(-1)
        }),
        ("last_status as text", |r| {
            r["probes"][0]["steps"][1]["last_status"] = json!("200")
        }),
        ("an extra latency figure", |r| {
            r["probes"][0]["steps"][1]["latency"]["p999"] = json!(0.1)
        }),
        ("a latency without samples", |r| {
            r["probes"][0]["steps"][1]["latency"]
                .as_object_mut()
                .unwrap()
                .remove("samples");
        }),
        ("an unknown SLO figure", |r| {
            r["probes"][0]["steps"][1]["slo"][0]["figure"] = json!("p42")
        }),
        ("an SLO verdict \"ok\"", |r| {
            r["probes"][0]["steps"][1]["slo"][0]["verdict"] = json!("ok")
        }),
        ("an incident of severity P5", |r| {
            r["incident"] = json!({
                "type": "Purchase Flow Failure", "severity": "P5", "summary": "x", "checks": []
            })
        }),
        ("an alert of an unknown rule", |r| {
            r["alerts"] = json!([{
                "rule": "made_up", "severity": "warning", "firing": false, "value": null,
                "threshold": 0.5, "window_seconds": 60, "samples": 0, "message": "x"
            }])
        }),
        ("a recorded value with a bad name", |r| {
            r["probes"][0]["values"] = json!({
                "cache hit": { "count": 1, "last": 0.9, "min": 0.9, "max": 0.9, "mean": 0.9 }
            })
        }),
    ];
    for (what, mutate) in mutations {
        let mut r = base.clone();
        mutate(&mut r);
        assert_ne!(r, base, "mutation {what} changed nothing");
        assert_invalid(what, &r);
    }

    // The optional parts, well formed, are accepted.
    let mut r = base.clone();
    r["incident"] = json!({
        "type": "Entitlement Sync Issue", "severity": "P1", "summary": "x", "checks": ["y"]
    });
    r["alerts"] = json!([{
        "rule": "cache_hit_ratio_warning", "severity": "warning", "firing": true, "value": 0.7,
        "threshold": 0.8, "window_seconds": 1800, "samples": 12, "message": "x"
    }]);
    r["probes"][0]["values"] = json!({
        "cache_hit_ratio": { "count": 2, "last": 0.9, "min": 0.85, "max": 0.9, "mean": 0.875 }
    });
    assert_valid("a report with an incident, alerts and recorded values", &r);

    // Failure entries, from the hand-built sampling report (verify is step 3).
    assert_valid("the sampling report", &failing);
    let failure_mutations: &[Mutation] = &[
        ("failure kind \"oops\"", |r| {
            r["probes"][0]["steps"][3]["failures"][0]["kind"] = json!("oops")
        }),
        ("a failure counted 0 times", |r| {
            r["probes"][0]["steps"][3]["failures"][0]["count"] = json!(0)
        }),
        ("an extra field in a failure", |r| {
            r["probes"][0]["steps"][3]["failures"][0]["first_seen"] = json!("now")
        }),
        ("exit code 0 on a failing run", |r| {
            r["exit_code"] = json!(0)
        }),
    ];
    for (what, mutate) in failure_mutations {
        let mut r = failing.clone();
        mutate(&mut r);
        assert_ne!(r, failing, "mutation {what} changed nothing");
        assert_invalid(what, &r);
    }
}
