//! Property tests (issue 6): whatever the input, the parsers and evaluators return a value
//! or an error — never a panic — and keep their promises:
//!
//! - probe definitions (`probe::load_str`) on arbitrary text, TOML-like text and mutated
//!   valid and invalid probe files: `Ok` or `Err`, and every error names the file;
//! - templates (`Template::parse`, `render`, `variables`): never panic; a template built
//!   from known variables renders to its parts and lists its variables;
//! - response checks (`probe::check`) with the JSONPaths and matchers of real probe files,
//!   and with arbitrary JSONPaths and matchers, on arbitrary JSON documents; `exists`,
//!   `equals`, `not_equals` and the comparisons agree with the document;
//! - Apple signed data (`jws::verify`) on arbitrary text, random three-part base64url, a
//!   genuine sandbox JWS with random character flips, and a genuine header and signature
//!   over arbitrary payloads: never panics, never accepts anything but the genuine JWS;
//! - `config::parse` on arbitrary text and mutated valid configs: errors name the file;
//! - `Retry-After` parsing on arbitrary text.
//!
//! 256 cases per property (a few seconds in a debug build). Run:
//! `cargo test --test properties` (more cases: `PROPTEST_CASES=5000 cargo test --release
//! --test properties`).

use std::path::Path;
use std::sync::OnceLock;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use iap_probe::jws::{self, TrustAnchors};
use iap_probe::probe::model::is_singular_path;
use iap_probe::probe::template::{Segment, Template};
use iap_probe::probe::{
    self, DEFAULT_BUILTINS, Expect, JsonCheck, LoadError, Matcher, Response, Vars,
};
use iap_probe::sandbox::pki::{JwsMode, SandboxCa};
use proptest::prelude::*;
use proptest::sample::Index;
use serde_json::{Value, json};
use serde_json_path::JsonPath;

fn config() -> ProptestConfig {
    ProptestConfig {
        // PROPTEST_CASES overrides, for longer runs.
        cases: std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(256),
        // A failure prints its shrunk input; no regression files in the tree.
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

// ---------------------------------------------------------------------------------------
// Inputs

/// A probe file with every feature once (matchers of every kind, captures, polling,
/// fail_if, verify_jws, record, retries, SLOs).
const RICH: &str = r#"name = "rich"
platform = "ios"
description = "every feature"
tags = ["purchase"]

[[step]]
name = "apple-transaction"
auth = "app-store"
timeout = "10s"
retry = { attempts = 2 }
request = { method = "GET", url = "{{apple}}/inApps/v1/transactions/{{ fixture.transaction_id }}", headers = { "X-Run" = "{{run_id}}" } }
expect = { status = 200, json = { "$.signedTransactionInfo" = { exists = true } } }
capture = { signed = "$.signedTransactionInfo", env = "$.environment", hits = "$.hits" }
verify_jws = "signed"
record = ["hits"]
slo = { p99 = "2s" }

[[step]]
name = "verify"
auth = "admin"
request = { method = "post", url = "{{backend}}/iap/verify", json = { userId = "{{user}}", items = ["{{fixture.product_id}}", 2.5] } }
expect = { status = [200, 201], json = { "$.valid" = true, "$.n" = { gte = 1 }, "$.count" = { lt = "{{fixture.max}}" }, "$.env" = { equals = "{{env}}" }, "$.error" = { exists = false }, "$.status" = { not_equals = "failed" }, "$.list[*].id" = { contains = "x" }, "$.score" = { gt = 0.5 }, "$.latency" = { lte = 100 }, "$.name" = { contains = "a" }, "$..id" = { equals = 1 }, "$.list[?@.id > 1].id" = { exists = true }, "$.obj" = { contains = "k" } } }
slo = { p50 = "1s", p95 = "2s", p99 = "2s", critical = "10s" }

[[step]]
name = "entitlement"
auth = "admin"
request = { url = "{{backend}}/iap/user/{{user}}/entitlements" }
poll = { every = "1s", within = "60s" }
until = { status = 200, json = { "$.entitlements[*].productId" = { contains = "{{fixture.product_id}}" } } }
fail_if = { json = { "$.state" = "FAILED" } }
slo = { p99 = "60s" }
"#;

/// A valid probe.toml touching every section.
const GOOD_CONFIG: &str = r#"environment = "staging"
probes_dir = "probes"

[backend]
base_url = "https://backend.example.com/"
admin_token = { env = "IAP_ADMIN_TOKEN" }

[apple]
issuer_id = "57246542-96fe-1a63-e053-0824d011072a"
key_id = "2X9R4HXF34"
bundle_id = "com.example.app"
private_key = { file = "AuthKey_2X9R4HXF34.p8" }
token_lifetime = "20m"
root_ca = ["AppleRootCA-G3.cer"]

[google]
package_name = "com.example.app"
service_account = { file = "service-account.json" }

[fixtures.ios]
transaction_id = 2000000000000001
product_id = "com.example.premium"

[fixtures.android]
purchase_token = "token"
product_id = "premium"

[slo]
purchase_success_rate = 0.99
purchase_completion = "30s"

[run]
timeout = "10s"
deadline = "2m"
concurrency = 2
max_body = 1048576

[history]
retention = "7d"

[alerts]
purchase_critical_below = 0.95
verify_critical_window = "5m"
"#;

/// Seeds for mutation: the shipped probes, RICH, and the bad-probe corpus.
fn probe_seeds() -> &'static [String] {
    static SEEDS: OnceLock<Vec<String>> = OnceLock::new();
    SEEDS.get_or_init(|| {
        let mut out: Vec<String> = iap_probe::shipped::PROBES
            .iter()
            .map(|(_, t)| t.to_string())
            .collect();
        out.push(RICH.to_string());
        let bad = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/probes_bad");
        let mut files: Vec<_> = std::fs::read_dir(bad)
            .unwrap()
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "toml"))
            .collect();
        files.sort();
        out.extend(files.iter().map(|p| std::fs::read_to_string(p).unwrap()));
        out
    })
}

/// Fragments that matter to the probe format, TOML and templates.
const TOKENS: &[&str] = &[
    "{{",
    "}}",
    "{{user}}",
    "{{ fixture.product_id }}",
    "{{nope}}",
    "{{a b}}",
    "$.",
    "$[*]",
    "$..",
    "[?@.a > 1]",
    "[[step]]\n",
    "[",
    "]",
    "=",
    "\"",
    "'",
    "'''",
    "\"\"\"",
    "\n",
    "{",
    "}",
    ",",
    "0",
    "-1",
    "1e400",
    "9999999999999999999999",
    "\"1s\"",
    "\"0s\"",
    "\"-1s\"",
    "true",
    "nan",
    "inf",
    "\u{0}",
    "é",
    "#",
    "\\",
    "\\u{",
    "name = \"x\"\n",
    "auth = \"admin\"\n",
    "auth = \"kerberos\"\n",
    "platform = \"any\"\n",
    "poll = { every = \"1s\", within = \"2s\" }\n",
    "until = { status = 200 }\n",
    "retry = { attempts = 4294967296 }\n",
    "timeout = \"1ns\"\n",
    "slo = { p99 = \"1ns\" }\n",
    "expect = { json = { \"$\" = { contains = [] } } }\n",
    "verify_jws = \"signed\"\n",
    "capture = { x = \"$.a\" }\n",
    "record = [\"x\"]\n",
    "status = 99999\n",
    "1979-05-27",
];

#[derive(Debug, Clone)]
enum Mutation {
    Delete(Index, usize),
    Insert(Index, String),
    Replace(Index, char),
    DuplicateLine(Index),
    SwapLines(Index, Index),
    Truncate(Index),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let text = prop_oneof![
        3 => prop::sample::select(TOKENS).prop_map(str::to_string),
        1 => any::<String>(),
    ];
    prop_oneof![
        (any::<Index>(), 1usize..40).prop_map(|(i, n)| Mutation::Delete(i, n)),
        (any::<Index>(), text).prop_map(|(i, t)| Mutation::Insert(i, t)),
        (any::<Index>(), any::<char>()).prop_map(|(i, c)| Mutation::Replace(i, c)),
        any::<Index>().prop_map(Mutation::DuplicateLine),
        (any::<Index>(), any::<Index>()).prop_map(|(a, b)| Mutation::SwapLines(a, b)),
        any::<Index>().prop_map(Mutation::Truncate),
    ]
}

/// Applies mutations on characters and lines (never splitting a UTF-8 sequence).
fn mutate(src: &str, muts: &[Mutation]) -> String {
    let mut chars: Vec<char> = src.chars().collect();
    for m in muts {
        let n = chars.len();
        match m {
            Mutation::Delete(i, len) if n > 0 => {
                let at = i.index(n);
                chars.drain(at..(at + len).min(n));
            }
            Mutation::Insert(i, t) => {
                let at = i.index(n + 1);
                chars.splice(at..at, t.chars());
            }
            Mutation::Replace(i, c) if n > 0 => chars[i.index(n)] = *c,
            Mutation::Truncate(i) => chars.truncate(i.index(n + 1)),
            Mutation::DuplicateLine(i) | Mutation::SwapLines(i, _) => {
                let text: String = chars.iter().collect();
                let mut lines: Vec<String> = text.split('\n').map(String::from).collect();
                let a = i.index(lines.len());
                match m {
                    Mutation::SwapLines(_, j) => {
                        let b = j.index(lines.len());
                        lines.swap(a, b);
                    }
                    _ => {
                        let l = lines[a].clone();
                        lines.insert(a, l);
                    }
                }
                chars = lines.join("\n").chars().collect();
            }
            _ => {}
        }
    }
    chars.into_iter().collect()
}

/// Text built from the format's own tokens and random bits: gets past the TOML parser
/// far more often than arbitrary strings.
fn toml_like() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            4 => prop::sample::select(TOKENS).prop_map(str::to_string),
            1 => "[a-z_.]{1,8}",
            1 => any::<String>(),
        ],
        0..40,
    )
    .prop_map(|v| v.concat())
}

fn vars() -> Vars {
    [
        ("backend", "http://b"),
        ("user", "u-1"),
        ("fixture.product_id", "com.x"),
        ("fixture.max", "10"),
        ("env", "Sandbox"),
        ("n", "3"),
    ]
    .into_iter()
    .collect()
}

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "valid",
            "n",
            "count",
            "env",
            "error",
            "status",
            "list",
            "id",
            "score",
            "latency",
            "name",
            "obj",
            "k",
            "entitlements",
            "productId",
            "state",
            "a",
            "signedDate",
        ])
        .prop_map(str::to_string),
        "[a-zA-Z0-9_ ]{0,6}",
    ]
}

fn json_leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<u64>().prop_map(|n| json!(n)),
        any::<f64>().prop_filter_map("finite", |f| serde_json::Number::from_f64(f)
            .map(Value::Number)),
        prop::sample::select(vec![
            "x", "a", "ok", "failed", "FAILED", "com.x", "Sandbox", "", "{{n}}", "{{"
        ])
        .prop_map(|s| Value::String(s.to_string())),
        any::<String>().prop_map(Value::String),
    ]
}

fn json_value() -> impl Strategy<Value = Value> {
    json_leaf().prop_recursive(4, 64, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(key(), inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn json_object() -> impl Strategy<Value = serde_json::Map<String, Value>> {
    prop::collection::btree_map(key(), json_value(), 1..6).prop_map(|m| m.into_iter().collect())
}

/// JSONPath-shaped text: mostly valid, sometimes not.
fn json_path() -> impl Strategy<Value = String> {
    let segment = prop_oneof![
        key().prop_map(|k| format!("['{k}']")),
        prop::sample::select(vec![
            ".a",
            ".list",
            ".entitlements",
            ".id",
            "[0]",
            "[-1]",
            "[1]",
            "[*]",
            ".*",
            "..a",
            "..*",
            "[0:2]",
            "[::-1]",
            "[1,0]",
            "[?@.id > 1]",
            "[?@.a == 'x']",
            "[?length(@) > 1]",
            "[?match(@.a, 'x.*')]",
            "[?search(@, '[')]",
            "[?count(@.*) == 2]",
            "[?@]",
            "[?!@.a]",
            "['a','b']",
            "[99999999999999999999]",
            "[?value(@..id) == 1]",
        ])
        .prop_map(str::to_string),
    ];
    prop_oneof![
        4 => prop::collection::vec(segment, 0..5).prop_map(|s| format!("${}", s.concat())),
        1 => any::<String>(),
    ]
}

fn operand() -> impl Strategy<Value = Value> {
    prop_oneof![
        3 => json_value(),
        1 => prop::sample::select(vec!["{{n}}", "{{nope}}", "{{", "{{fixture.max}}", "1e3", " 7 "])
            .prop_map(|s| Value::String(s.to_string())),
    ]
}

fn matcher() -> impl Strategy<Value = Matcher> {
    prop_oneof![
        operand().prop_map(Matcher::Equals),
        operand().prop_map(Matcher::NotEquals),
        operand().prop_map(Matcher::Contains),
        any::<bool>().prop_map(Matcher::Exists),
        operand().prop_map(Matcher::Gt),
        operand().prop_map(Matcher::Gte),
        operand().prop_map(Matcher::Lt),
        operand().prop_map(Matcher::Lte),
    ]
}

fn json_check(path: &str, matcher: Matcher) -> Option<JsonCheck> {
    Some(JsonCheck {
        path: path.to_string(),
        compiled: JsonPath::parse(path).ok()?,
        singular: is_singular_path(path),
        matcher,
    })
}

/// Every `expect` and `until` of RICH and the shipped probes.
fn real_expects() -> &'static [Expect] {
    static EXPECTS: OnceLock<Vec<Expect>> = OnceLock::new();
    EXPECTS.get_or_init(|| {
        let mut out = Vec::new();
        let seeds = probe_seeds();
        for src in &seeds[..iap_probe::shipped::PROBES.len() + 1] {
            let p = probe::load_str(src, Path::new("seed.toml"), DEFAULT_BUILTINS)
                .unwrap_or_else(|e| panic!("seed does not load: {e}"));
            for s in p.steps {
                out.push(s.expect);
                if let Some(poll) = s.poll {
                    out.push(poll.until);
                    out.extend(poll.fail_if);
                }
            }
        }
        assert!(out.iter().map(|e| e.json.len()).sum::<usize>() >= 15);
        out
    })
}

fn assert_errors_name(e: &LoadError, path: &Path) -> Result<(), TestCaseError> {
    let shown = e.to_string();
    prop_assert!(!shown.is_empty());
    for d in e.diagnostics() {
        prop_assert_eq!(&d.file, path);
        prop_assert!(
            d.to_string().starts_with(&path.display().to_string()),
            "{}",
            d
        );
    }
    prop_assert!(!e.diagnostics().is_empty(), "{}", shown);
    Ok(())
}

fn load_and_judge(src: &str) -> Result<(), TestCaseError> {
    let path = Path::new("probes/fuzzed.toml");
    match probe::load_str(src, path, DEFAULT_BUILTINS) {
        Ok(p) => {
            // Whatever loaded is usable: its checks run on any response without panicking.
            let doc = json!({"valid": true, "list": [{"id": 2}], "entitlements": []});
            for s in &p.steps {
                let _ = probe::check(
                    &s.expect,
                    &Response {
                        status: 200,
                        json: Some(&doc),
                        body_snippet: "",
                        content_type: None,
                    },
                    &vars(),
                );
                let _ = probe::render(&s.request.url, &vars());
            }
            prop_assert!(!p.steps.is_empty());
        }
        Err(e) => assert_errors_name(&e, path)?,
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Signed data

struct Genuine {
    jws: String,
    anchors: TrustAnchors,
    ca: SandboxCa,
}

fn genuine() -> &'static Genuine {
    static G: OnceLock<Genuine> = OnceLock::new();
    G.get_or_init(|| {
        let ca = SandboxCa::generate().unwrap();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64;
        let payload = json!({
            "transactionId": "2000000000000001",
            "bundleId": "com.example.iapprobe",
            "productId": "com.example.premium.monthly",
            "environment": "Sandbox",
            "signedDate": now,
        });
        let jws = ca.sign(&payload, JwsMode::Valid).unwrap();
        let anchors = TrustAnchors::from_bytes(ca.root_pem.as_bytes()).unwrap();
        let got = jws::verify(&jws, &anchors).expect("the genuine JWS verifies");
        assert_eq!(got, payload);
        Genuine { jws, anchors, ca }
    })
}

fn b64url_segment() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..200).prop_map(|b| URL_SAFE_NO_PAD.encode(b)),
        json_value().prop_map(|v| URL_SAFE_NO_PAD.encode(v.to_string())),
        Just(URL_SAFE_NO_PAD.encode(r#"{"alg":"ES256","x5c":["AAAA","AAAA","AAAA"]}"#)),
        Just(URL_SAFE_NO_PAD.encode(r#"{"alg":"none"}"#)),
        "[A-Za-z0-9_=-]{0,40}",
    ]
}

// ---------------------------------------------------------------------------------------
// Properties

proptest! {
    #![proptest_config(config())]

    #[test]
    fn probe_loader_never_panics_on_arbitrary_text(src in any::<String>()) {
        load_and_judge(&src)?;
    }

    #[test]
    fn probe_loader_never_panics_on_toml_like_text(src in toml_like()) {
        load_and_judge(&src)?;
    }

    #[test]
    fn probe_loader_survives_mutated_probe_files(
        seed in any::<Index>(),
        muts in prop::collection::vec(mutation(), 1..6),
    ) {
        let seeds = probe_seeds();
        let src = mutate(&seeds[seed.index(seeds.len())], &muts);
        load_and_judge(&src)?;
    }

    #[test]
    fn template_functions_never_panic(s in any::<String>(), t in toml_like()) {
        for text in [&s, &t] {
            let parsed = Template::parse(text);
            let rendered = probe::render(text, &vars());
            let names = probe::variables(text);
            match parsed {
                Ok(tpl) => {
                    prop_assert_eq!(tpl.variables(), names);
                    prop_assert_eq!(tpl.render(&vars()), rendered);
                }
                Err(_) => {
                    prop_assert!(names.is_empty());
                    prop_assert!(rendered.is_err());
                }
            }
            let _ = probe::render_json(&json!({ text.as_str(): [text, 1, {"k": text}] }), &vars());
        }
    }

    #[test]
    fn a_template_of_known_variables_renders_to_its_parts(
        parts in prop::collection::vec(
            prop_oneof![
                "[^{}]{1,12}".prop_map(|t| (false, t)),
                ("[A-Za-z0-9_.-]{1,10}", 0usize..3).prop_map(|(n, pad)| (true, format!("{}{n}{}", " ".repeat(pad), " ".repeat(pad)))),
            ],
            0..10,
        ),
        values in prop::collection::vec(any::<String>(), 10),
    ) {
        let mut vars = Vars::new();
        let mut source = String::new();
        let mut expected = String::new();
        let mut names: Vec<String> = Vec::new();
        for (i, (is_var, text)) in parts.iter().enumerate() {
            if *is_var {
                let name = text.trim().to_string();
                let value = vars.get(&name).map(str::to_string)
                    .unwrap_or_else(|| values[i % values.len()].clone());
                vars.set(name.clone(), value.clone());
                source.push_str(&format!("{{{{{text}}}}}"));
                expected.push_str(&value);
                if !names.contains(&name) {
                    names.push(name);
                }
            } else {
                source.push_str(text);
                expected.push_str(text);
            }
        }
        let tpl = Template::parse(&source).map_err(|e| TestCaseError::fail(format!("{source:?}: {e}")))?;
        prop_assert_eq!(tpl.render(&vars).unwrap(), expected.clone());
        prop_assert_eq!(probe::render(&source, &vars).unwrap(), expected);
        prop_assert_eq!(probe::variables(&source), names.clone());
        let vars_in_segments: Vec<&Segment> = tpl.segments.iter().filter(|s| matches!(s, Segment::Var(_))).collect();
        prop_assert_eq!(vars_in_segments.len(), parts.iter().filter(|(v, _)| *v).count());
        // One variable missing: an error naming it, never a partial render.
        if let Some(missing) = names.first() {
            let mut fewer = Vars::new();
            for (k, v) in vars.iter().filter(|(k, _)| k != missing) {
                fewer.set(k, v);
            }
            let e = probe::render(&source, &fewer).unwrap_err();
            prop_assert!(e.to_string().contains(missing.as_str()), "{}", e);
        }
    }

    #[test]
    fn real_checks_never_panic_on_any_response(
        doc in json_value(),
        status in any::<u16>(),
        snippet in any::<String>(),
        with_json in any::<bool>(),
    ) {
        for expect in real_expects() {
            let resp = Response { status, json: with_json.then_some(&doc), body_snippet: &snippet, content_type: None };
            let failures = probe::check(expect, &resp, &vars());
            for f in &failures {
                prop_assert!(!f.message.is_empty());
            }
            if !with_json {
                // Without a JSON body every JSON assertion fails, saying so.
                let json_failures = failures.iter().filter(|f| f.path.is_some()).count();
                prop_assert_eq!(json_failures, expect.json.len());
            }
        }
    }

    #[test]
    fn arbitrary_paths_and_matchers_never_panic(
        checks in prop::collection::vec((json_path(), matcher()), 1..5),
        doc in json_value(),
    ) {
        let json: Vec<JsonCheck> = checks.into_iter().filter_map(|(p, m)| json_check(&p, m)).collect();
        let expect = Expect { status: vec![], json };
        let resp = Response { status: 200, json: Some(&doc), body_snippet: "", content_type: None };
        let failures = probe::check(&expect, &resp, &vars());
        prop_assert!(failures.len() <= expect.json.len());
        for jc in &expect.json {
            if let Matcher::Exists(want) = jc.matcher {
                let found = !jc.compiled.query(&doc).all().is_empty();
                let failed = failures.iter().any(|f| f.path.as_deref() == Some(jc.path.as_str()));
                // Paths may repeat: only judge a path checked once.
                if expect.json.iter().filter(|c| c.path == jc.path).count() == 1 {
                    prop_assert_eq!(failed, found != want, "{} on {}", jc.path, doc);
                }
            }
        }
    }

    #[test]
    fn matchers_agree_with_the_document(obj in json_object(), pick in any::<Index>()) {
        let keys: Vec<&String> = obj.keys().collect();
        let key = keys[pick.index(keys.len())].clone();
        let value = obj[&key].clone();
        // Template-looking strings are rendered before comparing: not this property's job.
        prop_assume!(!value.to_string().contains("{{"));
        let doc = Value::Object(obj);
        let path = format!("$['{key}']");
        let run = |m: Matcher| {
            let expect = Expect { status: vec![], json: vec![json_check(&path, m).unwrap()] };
            probe::check(&expect, &Response { status: 200, json: Some(&doc), body_snippet: "", content_type: None }, &vars()).len()
        };
        prop_assert_eq!(run(Matcher::Exists(true)), 0);
        prop_assert_eq!(run(Matcher::Exists(false)), 1);
        prop_assert_eq!(run(Matcher::Equals(value.clone())), 0, "{} = {}", path, value);
        prop_assert_eq!(run(Matcher::NotEquals(value.clone())), 1);
        if let Some(n) = value.as_f64() {
            prop_assert_eq!(run(Matcher::Gte(value.clone())), 0);
            prop_assert_eq!(run(Matcher::Lte(value.clone())), 0);
            prop_assert_eq!(run(Matcher::Gt(value.clone())), 1);
            prop_assert_eq!(run(Matcher::Lt(value.clone())), 1);
            let lower = n - n.abs().max(1.0);
            if lower.is_finite() && lower < n {
                prop_assert_eq!(run(Matcher::Gt(json!(lower))), 0);
            }
        }
        match &value {
            Value::Array(items) if !items.is_empty() => {
                prop_assume!(!items[0].to_string().contains("{{"));
                prop_assert_eq!(run(Matcher::Contains(items[0].clone())), 0);
            }
            Value::String(s) if !s.is_empty() => {
                let sub: String = s.chars().take(2).collect();
                prop_assume!(!sub.contains('{'));
                prop_assert_eq!(run(Matcher::Contains(json!(sub))), 0);
            }
            _ => {}
        }
        // An absent key: every matcher but exists = false fails.
        let absent = "$['no such key at all']";
        let expect = Expect { status: vec![], json: vec![json_check(absent, Matcher::Exists(false)).unwrap()] };
        let resp = Response { status: 200, json: Some(&doc), body_snippet: "", content_type: None };
        let failures = probe::check(&expect, &resp, &vars());
        prop_assert!(failures.is_empty(), "{:?}", failures);
    }

    #[test]
    fn jws_verify_rejects_arbitrary_text(s in any::<String>(), t in toml_like()) {
        let g = genuine();
        prop_assert!(jws::verify(&s, &g.anchors).is_err());
        prop_assert!(jws::verify(&t, &g.anchors).is_err());
    }

    #[test]
    fn jws_verify_rejects_random_three_part_base64(
        h in b64url_segment(), p in b64url_segment(), s in b64url_segment(),
    ) {
        let g = genuine();
        let text = format!("{h}.{p}.{s}");
        let got = jws::verify(&text, &g.anchors);
        prop_assert!(got.is_err(), "{:?}", got);
    }

    #[test]
    fn jws_verify_rejects_every_mutation_of_a_genuine_jws(
        flips in prop::collection::vec((any::<Index>(), 0x20u8..0x7f), 1..4),
    ) {
        let g = genuine();
        let mut bytes = g.jws.clone().into_bytes();
        for (at, b) in &flips {
            let i = at.index(bytes.len());
            bytes[i] = *b;
        }
        let mutated = String::from_utf8(bytes).unwrap();
        prop_assume!(mutated != g.jws);
        let got = jws::verify(&mutated, &g.anchors);
        prop_assert!(got.is_err(), "a mutated JWS was accepted: {:?}", got);
    }

    #[test]
    fn jws_verify_rejects_any_other_payload_under_the_genuine_signature(
        payload in json_object(),
        signed_date in any::<i64>(),
    ) {
        let g = genuine();
        let mut payload = Value::Object(payload);
        payload["signedDate"] = json!(signed_date);
        let parts: Vec<&str> = g.jws.split('.').collect();
        let spliced = format!("{}.{}.{}", parts[0], URL_SAFE_NO_PAD.encode(payload.to_string()), parts[2]);
        prop_assert!(jws::verify(&spliced, &g.anchors).is_err());
        // Properly signed, but by a chain nobody trusts.
        let other = g.ca.sign(&payload, JwsMode::Untrusted).unwrap();
        prop_assert!(jws::verify(&other, &g.anchors).is_err());
    }

    #[test]
    fn config_parse_never_panics_and_errors_name_the_file(
        src in any::<String>(),
        like in toml_like(),
        muts in prop::collection::vec(mutation(), 1..6),
    ) {
        let path = Path::new("conf/probe.toml");
        for text in [src, like, mutate(GOOD_CONFIG, &muts)] {
            if let Err(e) = iap_probe::config::parse(&text, path) {
                let shown = e.to_string();
                prop_assert!(!shown.is_empty());
                for line in shown.lines() {
                    prop_assert!(line.starts_with("conf/probe.toml"), "{}", shown);
                }
            }
        }
    }

    #[test]
    fn retry_after_parsing_never_panics(s in any::<String>(), n in any::<u64>()) {
        let _ = iap_probe::runner::http::parse_retry_after(&s);
        let d = iap_probe::runner::http::parse_retry_after(&n.to_string());
        prop_assert!(d.is_some());
    }
}

#[test]
fn the_seeds_are_what_the_properties_think() {
    let path = Path::new("conf/probe.toml");
    iap_probe::config::parse(GOOD_CONFIG, path).expect("GOOD_CONFIG is valid");
    let seeds = probe_seeds();
    assert!(seeds.len() > 40);
    for s in &seeds[..iap_probe::shipped::PROBES.len() + 1] {
        probe::load_str(s, Path::new("seed.toml"), DEFAULT_BUILTINS).expect("a valid seed");
    }
    let _ = genuine();
    assert!(!real_expects().is_empty());
}
