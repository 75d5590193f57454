//! The machine outputs of a run, checked by the tools that consume them: JUnit XML by
//! xmllint (well-formed, and valid against our own schema of the Jenkins/Ant shape in
//! `tests/fixtures/junit/junit.xsd`) and roxmltree; the Prometheus text exposition by
//! `promtool check metrics`; `--push` by a real `prometheus-pushgateway` on a free
//! loopback port. Each test has its own sandbox, state folder and ports.

#[path = "fixtures/prober/support.rs"]
mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};
use support::*;

const SHIPPED: [&str; 5] = [
    "android-purchase",
    "entitlement-sync",
    "health",
    "ios-notifications",
    "ios-purchase",
];

/// The testsuite of the runbook's windowed alert rules (src/report/junit.rs).
const ALERTS_SUITE: &str = "runbook-alerts";

fn schema() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/junit/junit.xsd")
}

/// `xmllint --noout [--schema XSD] FILE`: (success, what it printed).
fn xmllint(file: &Path, xsd: Option<&Path>) -> (bool, String) {
    let mut cmd = Command::new("xmllint");
    cmd.arg("--noout");
    if let Some(x) = xsd {
        cmd.arg("--schema").arg(x);
    }
    let out = cmd
        .arg(file)
        .stdin(Stdio::null())
        .output()
        .expect("xmllint runs (apt-get install libxml2-utils)");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// Well-formed and valid against our JUnit schema.
fn assert_valid_junit(file: &Path) {
    let (ok, out) = xmllint(file, None);
    assert!(ok && out.trim().is_empty(), "xmllint --noout: {out}");
    let (ok, out) = xmllint(file, Some(&schema()));
    assert!(ok && out.contains("validates"), "xmllint --schema: {out}");
}

/// `promtool check metrics` on `body` (stdin): (exit code, everything it printed).
fn promtool(body: &str) -> (i32, String) {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool runs (apt-get install prometheus)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(body.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

fn assert_promtool_clean(body: &str) {
    assert!(!body.trim().is_empty(), "no metrics to check");
    let (code, out) = promtool(body);
    assert!(
        code == 0 && out.trim().is_empty(),
        "promtool check metrics exited {code}: {out}\n--- body ---\n{body}"
    );
}

/// One sample of the text exposition.
#[derive(Debug, Clone)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

fn parse_labels(s: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
        if key.is_empty() {
            return out;
        }
        assert_eq!(chars.next(), Some('"'), "label {key} in {s:?}");
        let mut value = String::new();
        loop {
            match chars.next() {
                Some('\\') => match chars.next() {
                    Some('n') => value.push('\n'),
                    Some(c) => value.push(c),
                    None => panic!("dangling escape in {s:?}"),
                },
                Some('"') => break,
                Some(c) => value.push(c),
                None => panic!("unterminated label value in {s:?}"),
            }
        }
        out.insert(key.trim().to_string(), value);
    }
}

fn parse_value(v: &str) -> f64 {
    match v {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        "NaN" => f64::NAN,
        _ => v
            .parse()
            .unwrap_or_else(|e| panic!("sample value {v:?}: {e}")),
    }
}

fn parse_metrics(text: &str) -> Vec<Sample> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (name, labels, rest) = match (l.find('{'), l.rfind('}')) {
                (Some(a), Some(b)) => (&l[..a], parse_labels(&l[a + 1..b]), &l[b + 1..]),
                _ => {
                    let (n, r) = l.split_once(' ').expect("name and value");
                    (n, BTreeMap::new(), r)
                }
            };
            let value = rest.split_whitespace().next().expect("a value");
            Sample {
                name: name.to_string(),
                labels,
                value: parse_value(value),
            }
        })
        .collect()
}

/// Samples named `name` whose labels include every pair of `want`.
fn find<'a>(samples: &'a [Sample], name: &str, want: &[(&str, &str)]) -> Vec<&'a Sample> {
    samples
        .iter()
        .filter(|s| {
            s.name == name
                && want
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .collect()
}

/// Exactly one sample matching, and its value.
fn one(samples: &[Sample], name: &str, want: &[(&str, &str)]) -> f64 {
    let found = find(samples, name, want);
    assert_eq!(
        found.len(),
        1,
        "want exactly one {name}{want:?}, found {found:#?}"
    );
    found[0].value
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

fn steps_of(probe: &Value) -> Vec<String> {
    probe["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| str_of(&s["name"]).to_string())
        .collect()
}

fn attr<'a>(n: roxmltree::Node<'a, '_>, name: &str) -> &'a str {
    n.attribute(name)
        .unwrap_or_else(|| panic!("<{}> has no {name}=", n.tag_name().name()))
}

fn children<'a, 'i>(n: roxmltree::Node<'a, 'i>, tag: &str) -> Vec<roxmltree::Node<'a, 'i>> {
    n.children().filter(|c| c.has_tag_name(tag)).collect()
}

fn properties(suite: roxmltree::Node<'_, '_>) -> BTreeMap<String, String> {
    children(suite, "properties")
        .into_iter()
        .flat_map(|p| children(p, "property"))
        .map(|p| (attr(p, "name").to_string(), attr(p, "value").to_string()))
        .collect()
}

fn suite_named<'a, 'i>(doc: &'a roxmltree::Document<'i>, name: &str) -> roxmltree::Node<'a, 'i> {
    children(doc.root_element(), "testsuite")
        .into_iter()
        .find(|s| s.attribute("name") == Some(name))
        .unwrap_or_else(|| panic!("no <testsuite name={name:?}>"))
}

fn case_named<'a, 'i>(suite: roxmltree::Node<'a, 'i>, name: &str) -> roxmltree::Node<'a, 'i> {
    children(suite, "testcase")
        .into_iter()
        .find(|c| c.attribute("name") == Some(name))
        .unwrap_or_else(|| panic!("no <testcase name={name:?}> in {}", attr(suite, "name")))
}

/// The JUnit document against the JSON report of the same run: a suite per probe with
/// its properties, a case per step (then one per probe-level SLO), counts that add up.
fn assert_junit_matches_report(xml: &str, r: &Value) {
    let doc = roxmltree::Document::parse(xml).expect("roxmltree parses the JUnit XML");
    let root = doc.root_element();
    assert_eq!(root.tag_name().name(), "testsuites");
    assert_eq!(root.attribute("name"), Some("iap-probe"));
    let all = children(root, "testsuite");
    let names: Vec<&str> = all.iter().map(|s| attr(*s, "name")).collect();
    let mut want_suites = probe_names(r);
    let alerts = r["alerts"].as_array().expect("alerts in the JSON report");
    if !alerts.is_empty() {
        want_suites.push(ALERTS_SUITE.to_string());
    }
    assert_eq!(
        names, want_suites,
        "a testsuite per probe, in report order, then the windowed rules"
    );
    let suites: Vec<_> = all
        .iter()
        .copied()
        .filter(|s| attr(*s, "name") != ALERTS_SUITE)
        .collect();
    let mut total = (0u64, 0u64, 0u64);
    for suite in &suites {
        let name = attr(*suite, "name");
        let p = probe_of(r, name);
        let props = properties(*suite);
        assert_eq!(props["platform"], str_of(&p["platform"]), "{name}");
        assert_eq!(props["environment"], str_of(&r["environment"]), "{name}");
        assert_eq!(props["verdict"], str_of(&p["verdict"]), "{name}");
        assert_eq!(props["run_id"], str_of(&r["run_id"]), "{name}");
        match r.get("incident").filter(|i| !i.is_null()) {
            Some(i) => {
                assert_eq!(
                    props.get("incident.type").map(String::as_str),
                    Some(str_of(&i["type"])),
                    "{name}: {props:?}\n{r:#}"
                );
                assert_eq!(props["incident.severity"], str_of(&i["severity"]), "{name}");
                let checks: Vec<&str> =
                    i["checks"].as_array().unwrap().iter().map(str_of).collect();
                assert_eq!(props["incident.checks"], checks.join(" | "), "{name}");
            }
            None => assert!(
                !props.keys().any(|k| k.starts_with("incident")),
                "{name}: {props:?}"
            ),
        }
        let cases = children(*suite, "testcase");
        let case_names: Vec<&str> = cases.iter().map(|c| attr(*c, "name")).collect();
        let mut want = steps_of(p);
        want.extend(
            p["slo"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| format!("slo {}", str_of(&c["figure"]))),
        );
        assert_eq!(
            case_names, want,
            "{name}: a testcase per step, then per probe SLO"
        );
        for c in &cases {
            assert_eq!(
                c.attribute("classname"),
                Some(&*format!("iap-probe.{name}"))
            );
        }
        for s in p["steps"].as_array().unwrap() {
            let c = case_named(*suite, str_of(&s["name"]));
            let failed = !children(c, "failure").is_empty();
            let skipped = !children(c, "skipped").is_empty();
            assert_eq!(
                failed,
                s["verdict"] == "fail" && s["attempts"] != 0,
                "{s:#}"
            );
            assert_eq!(skipped, s["attempts"] == 0 && s["skipped"] != 0, "{s:#}");
            if let Some(p50) = s["latency"]["p50"].as_f64() {
                let t: f64 = attr(c, "time").parse().unwrap();
                assert!((t - p50).abs() < 0.0015, "time {t} vs p50 {p50}");
            }
        }
        let count = |tag: &str| {
            cases
                .iter()
                .filter(|c| !children(**c, tag).is_empty())
                .count() as u64
        };
        let n = |a: &str| attr(*suite, a).parse::<u64>().unwrap();
        assert_eq!(n("tests"), cases.len() as u64, "{name}");
        assert_eq!(n("failures"), count("failure"), "{name}");
        assert_eq!(n("skipped"), count("skipped"), "{name}");
        assert_eq!(n("errors"), 0, "{name}");
        total.0 += n("tests");
        total.1 += n("failures");
        total.2 += n("skipped");
    }
    if !alerts.is_empty() {
        let suite = suite_named(&doc, ALERTS_SUITE);
        assert_alerts_match(suite, r);
        let n = |a: &str| attr(suite, a).parse::<u64>().unwrap();
        total.0 += n("tests");
        total.1 += n("failures");
    }
    let n = |a: &str| attr(root, a).parse::<u64>().unwrap();
    assert_eq!((n("tests"), n("failures"), n("skipped")), total);
}

/// `key=value` lines of an alert case's text.
fn figures(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The windowed rules' suite against the JSON report's `alerts`: a case per evaluated
/// rule, in order, with its state and figures.
fn assert_alerts_match(suite: roxmltree::Node<'_, '_>, r: &Value) {
    let alerts = r["alerts"].as_array().unwrap();
    let props = properties(suite);
    assert_eq!(props["run_id"], str_of(&r["run_id"]));
    assert_eq!(props["environment"], str_of(&r["environment"]));
    let cases = children(suite, "testcase");
    let names: Vec<&str> = cases.iter().map(|c| attr(*c, "name")).collect();
    let rules: Vec<&str> = alerts.iter().map(|a| str_of(&a["rule"])).collect();
    assert_eq!(names, rules, "a testcase per evaluated rule");
    // Firing rules judge the history, not this run: never a JUnit failure, so that
    // JUnit agrees with the exit code.
    assert_eq!(attr(suite, "failures"), "0");
    assert_eq!(attr(suite, "tests"), alerts.len().to_string());
    for (c, a) in cases.iter().zip(alerts) {
        let rule = str_of(&a["rule"]);
        assert_eq!(
            c.attribute("classname"),
            Some(&*format!("iap-probe.{ALERTS_SUITE}"))
        );
        assert!(children(*c, "failure").is_empty(), "{rule}: {a:#}");
        let out = children(*c, "system-out");
        assert_eq!(out.len(), 1, "{rule}: the rule's state and figures");
        let text = out[0].text().unwrap_or_default();
        let state = if a["firing"] == true {
            format!("FIRING ({}): ", str_of(&a["severity"]))
        } else {
            "quiet: ".to_string()
        };
        let text = text
            .strip_prefix(&state)
            .unwrap_or_else(|| panic!("{rule}: {text:?} starts with {state:?}"));
        assert!(text.starts_with(str_of(&a["message"])), "{rule}: {text}");
        let f = figures(text);
        assert_eq!(f["severity"], str_of(&a["severity"]), "{rule}");
        let num = |k: &str| {
            f[k].parse::<f64>()
                .unwrap_or_else(|e| panic!("{rule} {k}: {e}"))
        };
        assert_eq!(num("threshold"), a["threshold"].as_f64().unwrap(), "{rule}");
        assert_eq!(
            num("window_seconds"),
            a["window_seconds"].as_f64().unwrap(),
            "{rule}"
        );
        assert_eq!(num("samples"), a["samples"].as_f64().unwrap(), "{rule}");
        match a["value"].as_f64() {
            Some(v) => assert_eq!(num("value"), v, "{rule}"),
            None => assert_eq!(f["value"], "none", "{rule}"),
        }
    }
}

fn write_temp(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn junit_of_a_passing_run_is_valid_with_a_suite_per_probe_and_a_case_per_step() {
    let sb = Sb::start().await;
    let cfg = sb.config_str();

    // stdout itself is the JUnit document.
    let run = probe(&["run", "--config", &cfg, "--format", "junit"]).await;
    run.expect_code(0);
    assert!(
        run.stdout.starts_with("<?xml"),
        "not XML on stdout:\n{}",
        run.stdout
    );
    let file = write_temp(sb.dir.path(), "stdout.xml", &run.stdout);
    assert_valid_junit(&file);
    let doc = roxmltree::Document::parse(&run.stdout).unwrap();
    let suites: BTreeSet<&str> = children(doc.root_element(), "testsuite")
        .into_iter()
        .map(|s| attr(s, "name"))
        .collect();
    // The history is on by default: the windowed rules come after the probes.
    let mut want: BTreeSet<&str> = SHIPPED.into_iter().collect();
    want.insert(ALERTS_SUITE);
    assert_eq!(suites, want);
    assert!(
        children(doc.root_element(), "testsuite")
            .iter()
            .flat_map(|s| children(*s, "testcase"))
            .all(|c| children(c, "failure").is_empty() && children(c, "skipped").is_empty()),
        "a passing run has no failure or skipped element, and no rule fires:\n{}",
        run.stdout
    );
    let alerts = suite_named(&doc, ALERTS_SUITE);
    assert_eq!(attr(alerts, "failures"), "0");
    case_named(alerts, "purchase_success_critical");
    case_named(alerts, "complete_outage");

    // The same run as JSON and JUnit (--junit-output): they agree case by case.
    let junit = sb.path("report.xml");
    let run = probe(&[
        "run",
        "--config",
        &cfg,
        "--format",
        "json",
        "--junit-output",
        junit.to_str().unwrap(),
    ])
    .await;
    run.expect_code(0);
    let r = run.json();
    assert_valid_junit(&junit);
    let xml = std::fs::read_to_string(&junit).unwrap();
    assert_junit_matches_report(&xml, &r);
    let doc = roxmltree::Document::parse(&xml).unwrap();
    let ios = suite_named(&doc, "ios-purchase");
    for step in [
        "app-store-jwt",
        "health",
        "apple-transaction",
        "verify",
        "entitlement",
    ] {
        case_named(ios, step);
    }
    // Probe-level SLOs are cases too: a breach shows in the CI summary.
    case_named(ios, "slo completion_p99");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn junit_of_a_failing_run_carries_the_reason_and_the_incident() {
    let sb = Sb::start_with(faults(json!({
        "route": [{"path": "/iap/verify", "status": 503, "error_rate": 1.0}]
    })))
    .await;
    let junit = sb.path("failing.xml");
    let run = probe(&[
        "run",
        "--config",
        &sb.config_str(),
        "--format",
        "json",
        "--junit-output",
        junit.to_str().unwrap(),
    ])
    .await;
    run.expect_code(1);
    let r = run.json();
    assert!(r["incident"].is_object(), "{r:#}");
    assert_valid_junit(&junit);
    let xml = std::fs::read_to_string(&junit).unwrap();
    assert_junit_matches_report(&xml, &r);

    let doc = roxmltree::Document::parse(&xml).unwrap();
    for name in ["ios-purchase", "android-purchase"] {
        let p = probe_of(&r, name);
        let suite = suite_named(&doc, name);
        assert_eq!(attr(suite, "failures"), "1", "{name}");
        let verify = case_named(suite, "verify");
        let failure = children(verify, "failure");
        assert_eq!(failure.len(), 1, "{name}: {xml}");
        let failure = failure[0];
        let message = attr(failure, "message");
        let step = step_of(p, "verify");
        assert_eq!(message, str_of(&step["reason"]), "{name}");
        assert!(
            message.starts_with("verify") && message.contains("503"),
            "{message}"
        );
        assert_eq!(attr(failure, "type"), "assertion");
        let text = failure.text().unwrap_or_default();
        assert!(text.starts_with(message), "{text}");
        assert!(
            text.contains(&format!("check first: {}", str_of(&step["hint"]))),
            "{text}"
        );
        // The flow stopped at verify.
        let ent = case_named(suite, "entitlement");
        let skipped = children(ent, "skipped");
        assert_eq!(skipped.len(), 1, "{name}");
        assert!(attr(skipped[0], "message").contains("earlier step failed"));
        let props = properties(suite);
        assert_eq!(props["verdict"], "fail");
        assert_eq!(props["incident.type"], str_of(&r["incident"]["type"]));
        assert_eq!(
            props["incident.severity"],
            str_of(&r["incident"]["severity"])
        );
    }
    // Probes that passed carry the incident too (one run, one incident), and no failure.
    let health = suite_named(&doc, "health");
    assert_eq!(attr(health, "failures"), "0");
    assert!(properties(health).contains_key("incident.type"));

    // Every purchase failed: the critical 5-minute purchase rule fires, with its figures.
    let rule = case_named(suite_named(&doc, ALERTS_SUITE), "purchase_success_critical");
    assert!(children(rule, "failure").is_empty(), "{xml}");
    let out = children(rule, "system-out");
    let text = out[0].text().unwrap_or_default();
    assert!(text.starts_with("FIRING (critical): "), "{text}");
    let f = figures(text);
    assert_eq!(f["threshold"], "0.95", "{f:?}");
    assert_eq!(f["window_seconds"], "300", "{f:?}");
    assert_eq!(f["value"], "0", "{f:?}");
    assert_eq!(f["severity"], "critical", "{f:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn table_with_junit_output_prints_the_table_and_writes_the_file() {
    let sb = Sb::start().await;
    let junit = sb.path("ci/junit.xml");
    std::fs::create_dir_all(junit.parent().unwrap()).unwrap();
    let run = probe(&[
        "run",
        "--config",
        &sb.config_str(),
        "--format",
        "table",
        "--junit-output",
        junit.to_str().unwrap(),
    ])
    .await;
    run.expect_code(0);
    let out = &run.stdout;
    assert!(out.starts_with("iap-probe run "), "{out}");
    assert!(!out.contains("<testsuite"), "{out}");
    for name in SHIPPED {
        assert!(out.contains(&format!("PASS  {name} (")), "{name}: {out}");
    }
    assert!(
        out.contains("PASS  5 probes: 5 passed, 0 warned, 0 failed (exit 0)"),
        "{out}"
    );
    assert_valid_junit(&junit);
    let xml = std::fs::read_to_string(&junit).unwrap();
    let doc = roxmltree::Document::parse(&xml).unwrap();
    // Five probes and the windowed rules.
    assert_eq!(children(doc.root_element(), "testsuite").len(), 6);
    // The run in the table is the run in the file.
    let run_id = out
        .strip_prefix("iap-probe run ")
        .and_then(|s| s.split_whitespace().next())
        .unwrap();
    assert_eq!(properties(suite_named(&doc, "health"))["run_id"], run_id);

    // An unwritable --junit-output is an output error (exit 2), not a silent success.
    let run = probe(&[
        "run",
        "--config",
        &sb.config_str(),
        "--probe",
        "health",
        "--format",
        "table",
        "--junit-output",
        sb.path("no/such/dir/junit.xml").to_str().unwrap(),
    ])
    .await;
    run.expect_code(2);
    assert!(run.stderr.contains("junit.xml"), "{}", run.stderr);
}

#[test]
fn the_junit_schema_rejects_what_ci_readers_would_choke_on() {
    let dir = tempfile::tempdir().unwrap();
    let bad = [
        // A count that is not a number.
        r#"<testsuites tests="x" failures="0" errors="0"/>"#,
        // A suite without a name.
        r#"<testsuites tests="0" failures="0" errors="0"><testsuite tests="0" failures="0" errors="0"/></testsuites>"#,
        // Two outcomes on one case.
        r#"<testsuites tests="1" failures="1" errors="0"><testsuite name="s" tests="1" failures="1" errors="0"><testcase name="c"><failure message="m"/><skipped/></testcase></testsuite></testsuites>"#,
        // A negative time.
        r#"<testsuites tests="1" failures="0" errors="0"><testsuite name="s" tests="1" failures="0" errors="0"><testcase name="c" time="-1"/></testsuite></testsuites>"#,
    ];
    for (i, doc) in bad.iter().enumerate() {
        let f = write_temp(dir.path(), &format!("bad{i}.xml"), doc);
        let (ok, out) = xmllint(&f, Some(&schema()));
        assert!(!ok, "the schema accepted {doc}: {out}");
    }
    let good = r#"<?xml version="1.0" encoding="UTF-8"?>
<testsuites name="iap-probe" tests="2" skipped="1" failures="1" errors="0" time="0.5">
  <testsuite name="p" tests="2" skipped="1" errors="0" failures="1" time="0.25">
    <properties><property name="platform" value="ios"/></properties>
    <testcase name="a" classname="iap-probe.p" time="0.010"><failure message="m" type="assertion">m</failure></testcase>
    <testcase name="b" classname="iap-probe.p"><skipped message="not run"/></testcase>
  </testsuite>
</testsuites>"#;
    let f = write_temp(dir.path(), "good.xml", good);
    let (ok, out) = xmllint(&f, Some(&schema()));
    assert!(ok, "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_output_passes_promtool_with_slo_buckets() {
    let sb = Sb::start().await;
    // The health step's SLO bounds are not among the default buckets: they must be added.
    sb.edit("probes/health.toml", |s| {
        s.replace(
            "slo = { p99 = \"1s\", critical = \"5s\" }",
            "slo = { p99 = \"750ms\", critical = \"3s\" }",
        )
    });
    let before = unix_now();
    let run = probe(&[
        "run",
        "--config",
        &sb.config_str(),
        "--format",
        "prometheus",
    ])
    .await;
    run.expect_code(0);
    let body = &run.stdout;
    assert_promtool_clean(body);
    let m = parse_metrics(body);

    for (name, platform) in [
        ("ios-purchase", "ios"),
        ("android-purchase", "android"),
        ("entitlement-sync", "any"),
        ("health", "any"),
        ("ios-notifications", "ios"),
    ] {
        let v = one(
            &m,
            "iap_probe_success",
            &[
                ("probe", name),
                ("platform", platform),
                ("environment", "sandbox"),
            ],
        );
        assert_eq!(v, 1.0, "{name}");
    }
    assert_eq!(find(&m, "iap_probe_success", &[]).len(), 5);

    // Buckets: cumulative, include the step's SLO bounds, end in +Inf == _count.
    let health = [("probe", "health"), ("step", "health")];
    let buckets = find(&m, "iap_probe_step_duration_seconds_bucket", &health);
    let les: Vec<&str> = buckets.iter().map(|s| s.labels["le"].as_str()).collect();
    for le in ["0.75", "3", "+Inf", "1", "0.005"] {
        assert!(les.contains(&le), "le={le} missing: {les:?}");
    }
    let mut last = 0.0;
    let mut bounds = Vec::new();
    for b in &buckets {
        assert!(b.value >= last, "buckets not cumulative: {buckets:#?}");
        last = b.value;
        bounds.push(parse_value(&b.labels["le"]));
    }
    assert!(
        bounds.windows(2).all(|w| w[0] < w[1]),
        "le not increasing: {les:?}"
    );
    assert_eq!(last, 1.0);
    assert_eq!(
        one(&m, "iap_probe_step_duration_seconds_count", &health),
        1.0
    );
    let sum = one(&m, "iap_probe_step_duration_seconds_sum", &health);
    assert!(sum > 0.0 && sum < 0.75, "{sum}");
    // verify's p99 bound (2 s) on both platforms.
    for p in ["ios-purchase", "android-purchase"] {
        let v = one(
            &m,
            "iap_probe_step_duration_seconds_bucket",
            &[("probe", p), ("step", "verify"), ("le", "2")],
        );
        assert_eq!(v, 1.0, "{p}");
    }
    // SLO breaches: 0 for every judged figure of a passing run.
    assert_eq!(
        one(
            &m,
            "iap_probe_slo_breach",
            &[("probe", "health"), ("step", "health"), ("slo", "p99")]
        ),
        0.0
    );
    assert_eq!(
        one(
            &m,
            "iap_probe_slo_breach",
            &[
                ("probe", "ios-purchase"),
                ("step", "verify"),
                ("slo", "max")
            ]
        ),
        0.0
    );
    assert!(
        find(&m, "iap_probe_slo_breach", &[])
            .iter()
            .all(|s| s.value == 0.0)
    );
    // When the run started.
    let t = one(
        &m,
        "iap_probe_last_run_timestamp_seconds",
        &[("environment", "sandbox")],
    );
    assert!(
        t >= before - 1.0 && t <= unix_now() + 1.0,
        "{t} vs {before}"
    );
    // Credential time, by provider.
    let apple = one(
        &m,
        "iap_probe_token_seconds",
        &[("provider", "apple"), ("probe", "ios-purchase")],
    );
    assert!((0.0..5.0).contains(&apple), "{apple}");
    let google = one(
        &m,
        "iap_probe_token_seconds",
        &[("provider", "google"), ("probe", "android-purchase")],
    );
    assert!(google > 0.0 && google < 5.0, "{google}");
    // A passing run: no incident.
    assert!(find(&m, "iap_probe_incident", &[]).is_empty(), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_output_of_a_failing_run_names_the_breach_and_the_incident() {
    let sb = Sb::start_with(faults(json!({
        "route": [{"path": "/iap/verify", "status": 503, "error_rate": 1.0}]
    })))
    .await;
    let run = probe(&[
        "run",
        "--config",
        &sb.config_str(),
        "--platform",
        "ios",
        "--format",
        "prometheus",
    ])
    .await;
    run.expect_code(1);
    assert_promtool_clean(&run.stdout);
    let m = parse_metrics(&run.stdout);
    assert_eq!(
        one(&m, "iap_probe_success", &[("probe", "ios-purchase")]),
        0.0
    );
    assert_eq!(one(&m, "iap_probe_success", &[("probe", "health")]), 1.0);
    assert_eq!(
        one(
            &m,
            "iap_probe_step_success",
            &[("probe", "ios-purchase"), ("step", "verify")]
        ),
        0.0
    );
    assert_eq!(
        one(
            &m,
            "iap_probe_step_failures",
            &[("probe", "ios-purchase"), ("step", "verify")]
        ),
        1.0
    );
    let incident = find(&m, "iap_probe_incident", &[]);
    assert_eq!(incident.len(), 1, "{incident:#?}");
    assert_eq!(incident[0].value, 1.0);
    assert_eq!(incident[0].labels["severity"], "P1");
    assert_eq!(incident[0].labels["type"], "Purchase Flow Failure");
    // The history is on by default: the windowed rules are exported.
    assert_eq!(
        one(
            &m,
            "iap_probe_alert_firing",
            &[
                ("rule", "purchase_success_critical"),
                ("severity", "critical")
            ]
        ),
        1.0
    );
}

/// A `prometheus-pushgateway` on a free loopback port, killed on drop.
struct Gateway {
    child: Child,
    url: String,
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn start_gateway(dir: &Path) -> Gateway {
    let http = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    let mut last_log = String::new();
    for attempt in 0..5 {
        let port = free_port();
        let log = dir.join(format!("pushgateway-{attempt}.log"));
        let child = Command::new("prometheus-pushgateway")
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            // Debian's build persists to /var/lib/prometheus by default: keep each
            // test's gateway to itself.
            .arg("--persistence.file=")
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("prometheus-pushgateway runs (apt-get install prometheus-pushgateway)");
        let mut gw = Gateway {
            child,
            url: format!("http://127.0.0.1:{port}"),
        };
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(20) {
            if gw.child.try_wait().unwrap().is_some() {
                // Lost the port to someone else between bind and listen: try another.
                break;
            }
            if let Ok(r) = http.get(format!("{}/-/ready", gw.url)).send().await
                && r.status().is_success()
            {
                return gw;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        last_log = std::fs::read_to_string(&log).unwrap_or_default();
        drop(gw);
    }
    panic!("prometheus-pushgateway did not become ready:\n{last_log}");
}

async fn scrape(url: &str) -> String {
    let resp = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
        .get(format!("{url}/metrics"))
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success());
    resp.text().await.unwrap()
}

/// Only our families (HELP, TYPE and samples), for promtool.
fn ours(body: &str) -> String {
    body.lines()
        .filter(|l| {
            let l = l
                .trim_start_matches("# HELP ")
                .trim_start_matches("# TYPE ");
            l.starts_with("iap_probe_")
        })
        .map(|l| format!("{l}\n"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_reaches_a_real_pushgateway_with_grouping_labels() {
    let sb = Sb::start().await;
    let gw = start_gateway(sb.dir.path()).await;
    let cfg = sb.config_str();
    let run = probe(&[
        "run", "--config", &cfg, "--format", "json", "--push", &gw.url,
    ])
    .await;
    run.expect_code(0);
    assert!(!run.stderr.contains("warning"), "{}", run.stderr);
    let r = run.json();
    let body = scrape(&gw.url).await;
    let m = parse_metrics(&body);
    for p in r["probes"].as_array().unwrap() {
        let name = str_of(&p["name"]);
        let v = one(
            &m,
            "iap_probe_success",
            &[
                ("job", "iap_probe"),
                ("environment", "sandbox"),
                ("probe", name),
                ("platform", str_of(&p["platform"])),
            ],
        );
        assert_eq!(v, 1.0, "{name}");
        // The pushgateway's own bookkeeping for that group.
        one(
            &m,
            "push_time_seconds",
            &[("job", "iap_probe"), ("probe", name)],
        );
    }
    assert_eq!(find(&m, "iap_probe_success", &[]).len(), 5);
    // The run-level group.
    let t = one(
        &m,
        "iap_probe_last_run_timestamp_seconds",
        &[("job", "iap_probe"), ("environment", "sandbox")],
    );
    assert!(t > 0.0);
    // What the gateway serves for our metrics is valid exposition.
    let ours_body = ours(&body);
    assert!(ours_body.contains("iap_probe_step_duration_seconds_bucket"));
    assert_promtool_clean(&ours_body);

    // A second push of one failing probe replaces that probe's group only.
    sb.set_faults(json!({
        "route": [{"path": "/iap/verify", "status": 503, "error_rate": 1.0}]
    }))
    .await;
    let run = probe(&[
        "run",
        "--config",
        &cfg,
        "--probe",
        "ios-purchase",
        "--format",
        "json",
        "--push",
        &gw.url,
    ])
    .await;
    run.expect_code(1);
    let m = parse_metrics(&scrape(&gw.url).await);
    assert_eq!(
        one(
            &m,
            "iap_probe_success",
            &[("job", "iap_probe"), ("probe", "ios-purchase")]
        ),
        0.0
    );
    assert_eq!(
        one(
            &m,
            "iap_probe_success",
            &[("job", "iap_probe"), ("probe", "android-purchase")]
        ),
        1.0,
        "another probe's push must not erase this one"
    );
    drop(gw);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_that_fails_warns_and_keeps_the_probes_exit_code() {
    let sb = Sb::start().await;
    let run = probe(&[
        "run",
        "--config",
        &sb.config_str(),
        "--probe",
        "health",
        "--format",
        "json",
        "--push",
        "http://127.0.0.1:1",
    ])
    .await;
    run.expect_code(0);
    assert_eq!(run.json()["verdict"], "pass");
    assert!(
        run.stderr.contains("warning") && run.stderr.contains("127.0.0.1:1"),
        "{}",
        run.stderr
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn percentile_gauges_are_the_reports_hdr_percentiles() {
    let sb = Sb::start_with(faults(json!({
        // Spread verify's latencies so p50 and p99 differ and a swapped label shows.
        "seed": 7,
        "route": [{"path": "/iap/verify", "latency": {"min": "1ms", "max": "40ms"}}]
    })))
    .await;
    let gw = start_gateway(sb.dir.path()).await;
    // One run, both forms: JSON on stdout, the metrics through the pushgateway.
    let run = probe(&[
        "run",
        "--config",
        &sb.config_str(),
        "--probe",
        "ios-purchase",
        "--iterations",
        "30",
        "--format",
        "json",
        "--push",
        &gw.url,
    ])
    .await;
    run.expect_code(0);
    let r = run.json();
    let body = scrape(&gw.url).await;
    assert_promtool_clean(&ours(&body));
    let m = parse_metrics(&body);
    let p = probe_of(&r, "ios-purchase");
    for s in p["steps"].as_array().unwrap() {
        let step = str_of(&s["name"]);
        let lat = &s["latency"];
        let at = |q: &str| {
            one(
                &m,
                "iap_probe_step_latency_seconds",
                &[("probe", "ios-purchase"), ("step", step), ("percentile", q)],
            )
        };
        let (p50, p95, p99) = (at("50"), at("95"), at("99"));
        for (q, got) in [("p50", p50), ("p95", p95), ("p99", p99)] {
            let want = lat[q].as_f64().unwrap();
            assert!((got - want).abs() < 1e-9, "{step} {q}: {got} vs {want}");
        }
        assert!(p50 <= p95 && p95 <= p99, "{step}: {p50} {p95} {p99}");
        // The gauges and the histogram describe the same samples.
        let base = [("probe", "ios-purchase"), ("step", step)];
        assert_eq!(
            one(&m, "iap_probe_step_duration_seconds_count", &base),
            lat["samples"].as_f64().unwrap(),
            "{step}"
        );
    }
    let v = &step_of(p, "verify")["latency"];
    assert_eq!(v["samples"], 30);
    assert!(
        v["p99"].as_f64().unwrap() > v["p50"].as_f64().unwrap(),
        "spread latencies: {v:#}"
    );
    // Only the three exported percentiles.
    let qs: BTreeSet<&str> = find(&m, "iap_probe_step_latency_seconds", &[])
        .iter()
        .map(|s| s.labels["percentile"].as_str())
        .collect();
    assert_eq!(qs, ["50", "95", "99"].into_iter().collect());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_run_prints_the_table_writes_junit_and_pushes() {
    let sb = Sb::start().await;
    let gw = start_gateway(sb.dir.path()).await;
    let junit = sb.path("ci/junit.xml");
    std::fs::create_dir_all(junit.parent().unwrap()).unwrap();
    let run = probe(&[
        "run",
        "--config",
        &sb.config_str(),
        "--format",
        "table",
        "--junit-output",
        junit.to_str().unwrap(),
        "--push",
        &gw.url,
    ])
    .await;
    run.expect_code(0);
    assert!(!run.stderr.contains("warning"), "{}", run.stderr);

    // The human view on stdout.
    let out = &run.stdout;
    assert!(out.starts_with("iap-probe run "), "{out}");
    assert!(
        out.contains("PASS  5 probes: 5 passed, 0 warned, 0 failed (exit 0)"),
        "{out}"
    );
    let mut words = out.lines().next().unwrap().split_whitespace();
    let run_id = words.nth(2).unwrap();
    let started = out
        .lines()
        .next()
        .unwrap()
        .split("started ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .unwrap();
    let started = humantime::parse_rfc3339(started)
        .unwrap()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();

    // The file for the CI, of the same run.
    assert_valid_junit(&junit);
    let xml = std::fs::read_to_string(&junit).unwrap();
    let doc = roxmltree::Document::parse(&xml).unwrap();
    let suites = children(doc.root_element(), "testsuite");
    assert_eq!(suites.len(), SHIPPED.len() + 1, "{xml}");
    for s in &suites {
        assert_eq!(properties(*s)["run_id"], run_id, "{}", attr(*s, "name"));
    }

    // The metrics in the gateway, of the same run.
    let body = scrape(&gw.url).await;
    assert_promtool_clean(&ours(&body));
    let m = parse_metrics(&body);
    for name in SHIPPED {
        assert_eq!(
            one(
                &m,
                "iap_probe_success",
                &[("job", "iap_probe"), ("probe", name)]
            ),
            1.0,
            "{name}"
        );
    }
    let t = one(
        &m,
        "iap_probe_last_run_timestamp_seconds",
        &[("job", "iap_probe"), ("environment", "sandbox")],
    );
    assert!((t - started).abs() < 0.001, "pushed {t} vs table {started}");
}
