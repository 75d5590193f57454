//! Probe-definition loading, end to end through files: a corpus of bad probe files (one
//! mistake each) must each give exactly one diagnostic naming the file, the right line and
//! the key; a good file exercising every feature must load into the expected model.
//!
//! Each bad file declares its expectations: `# expect: TEXT` lines (the diagnostic must
//! contain TEXT) and a `# <-` marker on the line the diagnostic must point at.

use std::path::{Path, PathBuf};
use std::time::Duration;

use iap_probe::probe::{
    self, Auth, Body, DEFAULT_BUILTINS, LoadError, Matcher, Method, Platform, Response, Vars,
};
use serde_json::json;

fn bad_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/probes_bad")
}

fn bad_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(bad_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    files
}

#[test]
fn every_bad_file_names_file_line_and_key() {
    let files = bad_files();
    assert!(files.len() >= 30, "corpus went missing: {files:?}");
    let mut problems = Vec::new();
    for file in &files {
        let src = std::fs::read_to_string(file).unwrap();
        let expects: Vec<&str> = src
            .lines()
            .filter_map(|l| l.strip_prefix("# expect: "))
            .collect();
        let marker = src.lines().position(|l| l.contains("# <-")).map(|i| i + 1);
        assert!(
            !expects.is_empty() && marker.is_some(),
            "{}: no expectations",
            file.display()
        );
        let diags = match probe::load_file(file, DEFAULT_BUILTINS) {
            Ok(p) => {
                problems.push(format!(
                    "{}: loaded ({}), expected an error",
                    file.display(),
                    p.name
                ));
                continue;
            }
            Err(e) => e.diagnostics().to_vec(),
        };
        if diags.len() != 1 {
            problems.push(format!(
                "{}: {} diagnostics: {diags:#?}",
                file.display(),
                diags.len()
            ));
            continue;
        }
        let d = &diags[0];
        let shown = d.to_string();
        if d.file != *file || !shown.starts_with(&file.display().to_string()) {
            problems.push(format!("{}: wrong file in {shown}", file.display()));
        }
        if d.line != marker {
            problems.push(format!(
                "{}: line {:?}, expected {marker:?}: {shown}",
                file.display(),
                d.line
            ));
        }
        if !shown.contains(&format!("line {}", marker.unwrap_or(0))) {
            problems.push(format!("{}: no line in {shown}", file.display()));
        }
        for want in expects {
            if !shown.contains(want) {
                problems.push(format!("{}: missing {want:?} in {shown}", file.display()));
            }
        }
    }
    assert!(problems.is_empty(), "\n{}", problems.join("\n"));
}

#[test]
fn load_dir_collects_every_file_and_keeps_order() {
    let err = probe::load_dir(&bad_dir(), DEFAULT_BUILTINS).unwrap_err();
    let files: Vec<&Path> = err.diagnostics().iter().map(|d| d.file.as_path()).collect();
    assert_eq!(files.len(), bad_files().len());
    assert!(
        files.windows(2).all(|w| w[0] < w[1]),
        "sorted, one per file"
    );
    // Display: one diagnostic per line.
    assert_eq!(err.to_string().lines().count(), files.len());
}

#[test]
fn duplicate_probe_names_across_files_name_both() {
    let dir = bad_dir().join("dup-names");
    let err = probe::load_dir(&dir, DEFAULT_BUILTINS).unwrap_err();
    let [d] = err.diagnostics() else {
        panic!("{err}")
    };
    assert_eq!(d.file, dir.join("b.toml"));
    assert_eq!(d.line, Some(2));
    let shown = d.to_string();
    assert!(
        shown.contains("name: duplicate probe name \"health\""),
        "{shown}"
    );
    assert!(
        shown.contains(&dir.join("a.toml").display().to_string()),
        "{shown}"
    );
}

#[test]
fn all_errors_of_a_file_are_reported() {
    let src = r#"name = "Bad Name"
platform = "ios"

[[step]]
name = "a"
request = { url = "{{nope}}/x", json = { a = 1 }, body = "x" }
poll = { every = "1s", within = "5s" }

[[step]]
name = "a"
request = { url = "{{backend}}/x" }
"#;
    let err = probe::load_str(src, Path::new("inline.toml"), DEFAULT_BUILTINS).unwrap_err();
    let lines: Vec<(Option<usize>, String)> = err
        .diagnostics()
        .iter()
        .map(|d| (d.line, d.key.clone().unwrap_or_default()))
        .collect();
    // Every problem, sorted by position.
    assert_eq!(
        lines,
        [
            (Some(1), "name".to_string()),
            (Some(6), "step.a.request.url".to_string()),
            (Some(6), "step.a.request.body".to_string()),
            (Some(7), "step.a.poll".to_string()),
            (Some(10), "step.a.name".to_string()),
        ],
        "{err}"
    );
}

#[test]
fn missing_dir_and_unreadable_file() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("nope");
    assert!(matches!(
        probe::load_dir(&missing, DEFAULT_BUILTINS),
        Err(LoadError::Dir { .. })
    ));
    let f = tmp.path().join("x.toml");
    std::fs::write(&f, [0xff, 0xfe, 0x00]).unwrap();
    let err = probe::load_dir(tmp.path(), DEFAULT_BUILTINS).unwrap_err();
    assert!(
        err.to_string().starts_with(&f.display().to_string()),
        "{err}"
    );
    // Other extensions and dotfiles are ignored; an empty directory is no probes.
    std::fs::remove_file(&f).unwrap();
    std::fs::write(tmp.path().join("notes.md"), "# not a probe").unwrap();
    std::fs::write(tmp.path().join(".hidden.toml"), "garbage =").unwrap();
    assert!(
        probe::load_dir(tmp.path(), DEFAULT_BUILTINS)
            .unwrap()
            .is_empty()
    );
}

#[test]
fn garbage_never_panics() {
    let inputs = [
        "",
        "\u{0}",
        "[[step]]",
        "step = 5",
        "name = 1",
        "[[step]]\nrequest = 5",
        "name=\"a\"\nplatform=\"ios\"\n[[step]]\nname=\"a\"\nrequest={url=\"{{\"}",
        "name=\"a\"\nplatform=\"ios\"\nstep=[{name=\"a\",request={url=\"http://x\"},expect={json={\"$\"={}}}}]",
        "name=\"a\"\nplatform=\"ios\"\n[[step]]\nname=\"a\"\nrequest={url=\"http://x\"}\nexpect={json={\"$.a\"=1979-05-27}}",
    ];
    for src in inputs {
        assert!(
            probe::load_str(src, Path::new("g.toml"), DEFAULT_BUILTINS).is_err(),
            "{src:?}"
        );
    }
}

const GOOD: &str = r#"# Every feature of the probe format, once.
name = "ios-purchase"
platform = "ios"
description = "A sandbox purchase is verified and the entitlement appears"
tags = ["purchase", "critical"]

[[step]]
name = "apple-transaction"
auth = "app-store"
timeout = "10s"
retry = { attempts = 2 }
request = { method = "GET", url = "{{apple}}/inApps/v1/transactions/{{ fixture.transaction_id }}", headers = { "X-Run" = "{{run_id}}", Accept = "application/json" } }
expect = { status = 200, json = { "$.signedTransactionInfo" = { exists = true } } }
capture = { signed = "$.signedTransactionInfo", env = "$.environment" }
verify_jws = "signed"
slo = { p99 = "2s" }

[[step]]
name = "verify"
auth = "admin"
request = { method = "post", url = "{{backend}}/iap/verify", json = { platform = "ios", userId = "{{user}}", n = 1, ok = true, items = ["{{fixture.product_id}}", 2.5], nested = { signed = "{{signed}}" } } }
expect = { status = [200, 201], json = { "$.valid" = true, "$.n" = { gte = 1 }, "$.count" = { lt = "{{fixture.max}}" }, "$.env" = { equals = "{{env}}" }, "$.error" = { exists = false }, "$.status" = { not_equals = "failed" }, "$.list[*].id" = { contains = "x" }, "$.score" = { gt = 0.5 }, "$.latency" = { lte = 100 } } }
slo = { p50 = "1s", p95 = "2s", p99 = "2s", critical = "10s" }

[[step]]
name = "entitlement"
auth = "admin"
request = { url = "{{backend}}/iap/user/{{user}}/entitlements" }
poll = { every = "1s", within = "60s" }
until = { status = 200, json = { "$.entitlements[*].productId" = { contains = "{{fixture.product_id}}" } } }
slo = { p99 = "60s" }

[[step]]
name = "notify"
request = { method = "POST", url = "https://example.test/iap/notifications/apple", body = "{\"signedPayload\":\"{{signed}}\"}" }
"#;

#[test]
fn good_file_loads_every_feature() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("ios-purchase.toml");
    std::fs::write(&path, GOOD).unwrap();
    let probes = probe::load_dir(tmp.path(), DEFAULT_BUILTINS).unwrap_or_else(|e| panic!("{e}"));
    let [p] = probes.as_slice() else {
        panic!("one probe")
    };
    assert_eq!(
        (p.name.as_str(), p.platform, p.source.as_path()),
        ("ios-purchase", Platform::Ios, path.as_path())
    );
    assert_eq!(p.tags, ["purchase", "critical"]);
    assert!(p.description.as_deref().unwrap().starts_with("A sandbox"));
    assert_eq!(p.steps.len(), 4);
    let fixtures: Vec<String> = p.fixtures_used().into_iter().collect();
    assert_eq!(
        fixtures,
        [
            "fixture.max",
            "fixture.product_id",
            "fixture.transaction_id"
        ]
    );

    let s = &p.steps[0];
    assert_eq!(
        (s.auth, s.timeout, s.retry_attempts, s.line),
        (Auth::AppStore, Some(Duration::from_secs(10)), 2, 7)
    );
    assert_eq!(s.request.method, Method::Get);
    assert_eq!(
        s.request.headers,
        [
            ("Accept".to_string(), "application/json".to_string()),
            ("X-Run".to_string(), "{{run_id}}".to_string())
        ]
    );
    assert_eq!(
        s.capture.iter().map(|c| c.var.as_str()).collect::<Vec<_>>(),
        ["env", "signed"]
    );
    let v = s.verify_jws.as_ref().expect("verify_jws");
    assert_eq!((v.var.as_str(), v.expect.len()), ("signed", 0));
    assert_eq!(s.slo.p99, Some(Duration::from_secs(2)));
    assert_eq!(s.variables, ["apple", "fixture.transaction_id", "run_id"]);

    let s = &p.steps[1];
    assert_eq!((s.auth, s.request.method), (Auth::Admin, Method::Post));
    assert_eq!(s.expect.status, [200, 201]);
    assert_eq!(s.expect.json.len(), 9);
    assert_eq!(s.slo.critical, Some(Duration::from_secs(10)));
    assert_eq!(s.slo.p50, Some(Duration::from_secs(1)));
    let Body::Json(body) = &s.request.body else {
        panic!("json body")
    };
    assert_eq!(body["items"], json!(["{{fixture.product_id}}", 2.5]));
    let mut vars: Vars = [
        ("user", "u-1"),
        ("fixture.product_id", "com.x"),
        ("signed", "eyJ"),
    ]
    .into_iter()
    .collect();
    let rendered = probe::render_json(body, &vars).unwrap();
    assert_eq!(rendered["userId"], "u-1");
    assert_eq!(rendered["nested"]["signed"], "eyJ");

    let s = &p.steps[2];
    let poll = s.poll.as_ref().unwrap();
    assert_eq!(
        (poll.every, poll.within),
        (Duration::from_secs(1), Duration::from_secs(60))
    );
    assert!(matches!(poll.until.json[0].matcher, Matcher::Contains(_)));
    let resp = json!({"entitlements": [{"productId": "com.y"}, {"productId": "com.x"}]});
    let r = Response {
        status: 200,
        json: Some(&resp),
        body_snippet: "",
        content_type: None,
    };
    assert!(probe::check(&poll.until, &r, &vars).is_empty());

    let s = &p.steps[3];
    assert_eq!(s.auth, Auth::None);
    assert!(matches!(&s.request.body, Body::Raw(b) if b.contains("{{signed}}")));

    // Capture then assert, as the runner will.
    let body = json!({"signedTransactionInfo": "eyJ.sig", "environment": "Sandbox"});
    probe::capture(&p.steps[0].capture, Some(&body), &mut vars).unwrap();
    assert_eq!(vars.get("env"), Some("Sandbox"));
    let r = Response {
        status: 200,
        json: Some(&body),
        body_snippet: "",
        content_type: None,
    };
    assert!(probe::check(&p.steps[0].expect, &r, &vars).is_empty());
}

#[test]
fn builtins_are_the_callers_choice() {
    let src = "name = \"h\"\nplatform = \"any\"\n[[step]]\nname = \"h\"\nrequest = { url = \"{{base}}/health\" }\n";
    assert!(probe::load_str(src, Path::new("h.toml"), DEFAULT_BUILTINS).is_err());
    assert!(probe::load_str(src, Path::new("h.toml"), &["base"]).is_ok());
}

#[test]
fn verify_jws_table_form_compiles_payload_expectations() {
    let src = r#"
name = "n"
platform = "ios"

[[step]]
name = "a"
request = { url = "{{apple}}/x" }
capture = { payload = "$.signedPayload" }
verify_jws = { capture = "payload", expect = { "$.notificationType" = "TEST", "$.data.bundleId" = "{{bundle_id}}" } }

[[step]]
name = "b"
request = { url = "{{backend}}/{{jws.notificationUUID}}" }
"#;
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("n.toml");
    std::fs::write(&path, src).unwrap();
    let p = probe::load_file(&path, DEFAULT_BUILTINS).unwrap_or_else(|e| panic!("{e}"));
    let v = p.steps[0].verify_jws.as_ref().expect("verify_jws");
    assert_eq!(v.var, "payload");
    let paths: Vec<&str> = v.expect.iter().map(|c| c.path.as_str()).collect();
    assert_eq!(paths, ["$.data.bundleId", "$.notificationType"]);
    assert_eq!(v.expect[1].matcher, Matcher::Equals(json!("TEST")));
}
