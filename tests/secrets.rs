//! Secrets never leak (issue 6): private keys, the JWTs, Google access tokens and the
//! admin token appear in no byte the prober writes — stdout, stderr at `RUST_LOG=trace`,
//! every report format (table, JSON, JUnit, Prometheus, `--junit-output`, `--output`),
//! metrics pushed to a Pushgateway, the SQLite history (main file and WAL), `probe
//! history`, `probe token`, `probe check`, `probe list`, `probe demo` — healthy, under
//! faults (revoked Apple key, revoked Google tokens, 401/503 token endpoint, 429/503 with
//! Retry-After, a hang cut by the deadline), and in error messages about broken keys.
//! `Debug` of every credential-holding type redacts.
//!
//! Each scan looks for the exact secrets (the admin token and its base64 forms, every line
//! of both PEM bodies, the whole bodies, the P-256 scalar in base64 and hex) and for their
//! shapes (`eyJ` — any JWT or JWS; `ya29.` — any Google access token; PKCS#8 headers;
//! `sandbox-admin-`), so the credentials of `probe demo`'s private sandbox are covered too.
//! A failure says where a secret appeared, never the secret.
//!
//! Run: `cargo test --test secrets`.

#[path = "fixtures/prober/support.rs"]
mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use serde_json::{Value, json};
use support::*;

/// What must never appear, each with a name for messages.
struct Secrets {
    exact: Vec<(String, Vec<u8>)>,
}

/// Shapes of secrets whoever made them: a JWT/JWS, a Google access token, PKCS#8 key
/// headers (EC P-256, RSA), PEM armour, the sandbox admin token prefix.
const SHAPES: &[(&str, &str)] = &[
    ("a JWT or JWS (eyJ...)", "eyJ"),
    ("a Google access token (ya29.)", "ya29."),
    ("a P-256 PKCS#8 key", "MIGHAgEAMBMGByqGSM49"),
    ("an RSA PKCS#8 key", "BgkqhkiG9w0BAQEFAASC"),
    ("PEM private-key armour", "PRIVATE KEY-----"),
    ("a sandbox admin token", "sandbox-admin-"),
];

/// What `fragment` looks like inside a longer base64 or base64url text, at each of the
/// three alignments: only the characters that depend on the fragment alone.
fn base64_forms(fragment: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for (name, engine) in [("base64", &STANDARD), ("base64url", &URL_SAFE)] {
        for offset in 0..3 {
            let mut padded = vec![0u8; offset];
            padded.extend_from_slice(fragment);
            let enc = engine.encode(&padded);
            let start = if offset == 0 { 0 } else { 4 };
            let end = (padded.len() / 3) * 4;
            assert!(end >= start + 8, "fragment too short to look for");
            out.push((
                format!("{name}, offset {offset}"),
                enc.as_bytes()[start..end].to_vec(),
            ));
        }
    }
    out
}

#[test]
fn base64_forms_find_a_fragment_anywhere_in_an_encoded_text() {
    let fragment = b"ya29.sandbox-Zq8";
    for prefix in ["", "x", "xy", "Bearer "] {
        let text = [prefix.as_bytes(), fragment, b" and more"].concat();
        for engine in [&STANDARD, &URL_SAFE, &STANDARD_NO_PAD, &URL_SAFE_NO_PAD] {
            let enc = engine.encode(&text);
            assert!(
                base64_forms(fragment)
                    .iter()
                    .any(|(_, n)| find(enc.as_bytes(), n).is_some()),
                "{prefix:?}: {enc}"
            );
        }
    }
}

fn pem_lines(pem: &str) -> Vec<String> {
    pem.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("-----"))
        .map(String::from)
        .collect()
}

impl Secrets {
    async fn of(sb: &Sb) -> Secrets {
        let mut exact: Vec<(String, Vec<u8>)> = Vec::new();
        let mut add = |name: &str, v: &[u8]| exact.push((name.to_string(), v.to_vec()));
        let admin = sb.admin_token();
        assert!(admin.len() > 16);
        add("the admin token", admin.as_bytes());
        for (n, e) in [
            ("base64", STANDARD.encode(&admin)),
            ("base64 (no pad)", STANDARD_NO_PAD.encode(&admin)),
            ("base64url", URL_SAFE.encode(&admin)),
            ("base64url (no pad)", URL_SAFE_NO_PAD.encode(&admin)),
            ("base64 Bearer", STANDARD.encode(format!("Bearer {admin}"))),
        ] {
            add(&format!("the admin token ({n})"), e.as_bytes());
        }
        let p8 = std::fs::read_to_string(sb.p8_path()).unwrap();
        let lines = pem_lines(&p8);
        assert!(!lines.is_empty());
        for (i, l) in lines.iter().enumerate() {
            add(&format!("line {} of the .p8 key", i + 1), l.as_bytes());
        }
        add("the .p8 key's base64 body", lines.concat().as_bytes());
        use p256::pkcs8::DecodePrivateKey;
        let scalar = p256::SecretKey::from_pkcs8_pem(&p8).unwrap().to_bytes();
        add(
            "the P-256 scalar (base64url)",
            URL_SAFE_NO_PAD.encode(scalar).as_bytes(),
        );
        add(
            "the P-256 scalar (base64)",
            STANDARD_NO_PAD.encode(scalar).as_bytes(),
        );
        let hex: String = scalar.iter().map(|b| format!("{b:02x}")).collect();
        add("the P-256 scalar (hex)", hex.as_bytes());
        let sa = sb.service_account();
        let rsa = str_of(&sa["private_key"]).to_string();
        let lines = pem_lines(&rsa);
        assert!(lines.len() > 10);
        for (i, l) in lines.iter().enumerate() {
            add(
                &format!("line {} of the service-account key", i + 1),
                l.as_bytes(),
            );
        }
        add(
            "the service-account key's base64 body",
            lines.concat().as_bytes(),
        );
        // As it sits in the JSON file, newlines escaped.
        let escaped = serde_json::to_string(&rsa).unwrap();
        add(
            "the service-account private_key (JSON-escaped)",
            &escaped.as_bytes()[40..120],
        );
        // The JWTs and access tokens are minted inside each `probe` process, so their
        // base64 forms (a token inside an encoded blob: a Basic header, a pushed payload)
        // are looked for by what every one of them starts with: the App Store JWT's
        // header segment (fixed by the key id) and the sandbox's `ya29.sandbox-` prefix.
        let (config, probes) = iap_probe::app::load(&sb.config()).unwrap();
        let engine = iap_probe::runner::Engine::new(config, probes)
            .await
            .unwrap();
        let jwt = engine.apple.as_ref().unwrap().token().unwrap();
        let header = jwt.token.expose().split('.').next().unwrap().to_string();
        assert!(header.starts_with("eyJ") && header.len() > 20, "{header}");
        for (what, fragment) in [
            ("the App Store JWT", format!("{header}.")),
            ("a Google access token", "ya29.sandbox-".to_string()),
        ] {
            for (form, needle) in base64_forms(fragment.as_bytes()) {
                exact.push((format!("{what} ({form})"), needle));
            }
        }
        Secrets { exact }
    }

    /// Problems found in `bytes` (labelled `what`); shows only what comes before a hit.
    fn scan(&self, what: &str, bytes: &[u8]) -> Vec<String> {
        let mut needles: Vec<&[u8]> = self.exact.iter().map(|(_, n)| n.as_slice()).collect();
        needles.extend(SHAPES.iter().map(|(_, s)| s.as_bytes()));
        let mut out = Vec::new();
        for (name, needle) in &self.exact {
            if let Some(at) = find(bytes, needle) {
                out.push(format!(
                    "{what}: {name} leaked after: {}[...]",
                    context(bytes, at, &needles)
                ));
            }
        }
        out.extend(scan_shapes(what, bytes, &needles));
        out
    }
}

fn scan_shapes(what: &str, bytes: &[u8], needles: &[&[u8]]) -> Vec<String> {
    let mut out = Vec::new();
    for (name, shape) in SHAPES {
        if let Some(at) = find(bytes, shape.as_bytes()) {
            out.push(format!(
                "{what}: {name} leaked after: {}[...]",
                context(bytes, at, needles)
            ));
        }
    }
    out
}

/// Up to 120 printable characters before `at`, starting after any other secret or
/// shape in that stretch: a failure message never shows a secret itself.
fn context(bytes: &[u8], at: usize, needles: &[&[u8]]) -> String {
    let longest = needles.iter().map(|n| n.len()).max().unwrap_or(0);
    let mut from = at.saturating_sub(120);
    let window_start = from.saturating_sub(longest);
    for n in needles {
        let mut pos = window_start;
        while let Some(i) = find(&bytes[pos..at], n) {
            from = from.max(pos + i + n.len());
            pos += i + 1;
        }
    }
    bytes[from.min(at)..at]
        .iter()
        .map(|&b| {
            if b.is_ascii_graphic() || b == b' ' {
                b as char
            } else {
                '.'
            }
        })
        .collect()
}

fn shape_needles() -> Vec<&'static [u8]> {
    SHAPES.iter().map(|(_, s)| s.as_bytes()).collect()
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() || needle.len() > hay.len() {
        return None;
    }
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Everything one test collected: (what, bytes).
#[derive(Default)]
struct Collected(Vec<(String, Vec<u8>)>);

impl Collected {
    fn add(&mut self, what: impl Into<String>, bytes: impl Into<Vec<u8>>) {
        self.0.push((what.into(), bytes.into()));
    }

    fn run(&mut self, run: &Run) {
        let what = format!("`probe {}`", run.args.join(" "));
        self.add(format!("{what} stdout"), run.stdout.as_bytes());
        self.add(format!("{what} stderr"), run.stderr.as_bytes());
    }

    /// Asserts nothing leaked, listing every leak at once.
    fn assert_clean(&self, secrets: &Secrets) {
        let mut problems = Vec::new();
        for (what, bytes) in &self.0 {
            problems.extend(secrets.scan(what, bytes));
        }
        assert!(
            problems.is_empty(),
            "{} leak(s):\n{}",
            problems.len(),
            problems.join("\n")
        );
        let total: usize = self.0.iter().map(|(_, b)| b.len()).sum();
        assert!(total > 10_000, "too little output scanned: {total} bytes");
    }
}

const TRACE: &[(&str, &str)] = &[("RUST_LOG", "trace")];

/// Trace logging really happened: the scan looked at real log output.
fn assert_traced(run: &Run) {
    assert!(
        run.stderr.contains("TRACE") && run.stderr.lines().count() > 4,
        "`probe {}` logged too little at trace level:\n{}",
        run.args.join(" "),
        run.stderr
    );
}

/// `probe run` in every format, at trace level, every byte collected.
async fn run_every_format(sb: &Sb, c: &mut Collected, extra: &[&str], expect: Option<i32>) {
    let cfg = sb.config_str();
    let out = tempfile::tempdir().unwrap();
    let junit = out.path().join("junit.xml");
    let report = out.path().join("report.prom");
    let junit_s = junit.display().to_string();
    let report_s = report.display().to_string();
    let shapes: [&[&str]; 4] = [
        &["--format", "json", "--junit-output", &junit_s],
        &["--format", "table"],
        &["--format", "junit"],
        &["--format", "prometheus"],
    ];
    for (i, shape) in shapes.iter().enumerate() {
        let mut args = vec!["run", "--config", &cfg];
        args.extend_from_slice(shape);
        args.extend_from_slice(extra);
        let run = probe_env(&args, TRACE).await;
        if let Some(code) = expect {
            run.expect_code(code);
        }
        assert_traced(&run);
        c.run(&run);
        if i == 0 {
            c.add("--junit-output file", std::fs::read(&junit).unwrap());
        }
    }
    // --output: the report to a file (prometheus) and the table on stdout.
    let mut args = vec![
        "run",
        "--config",
        &cfg,
        "--format",
        "prometheus",
        "--output",
        &report_s,
    ];
    args.extend_from_slice(extra);
    let run = probe_env(&args, TRACE).await;
    c.run(&run);
    c.add("--output file", std::fs::read(&report).unwrap());
}

/// The history store's raw bytes, main file and write-ahead log alike.
fn collect_history(sb: &Sb, c: &mut Collected) {
    let mut all = Vec::new();
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let p = sb.path(&format!("probe-history.sqlite{suffix}"));
        if let Ok(bytes) = std::fs::read(&p) {
            all.extend_from_slice(&bytes);
            c.add(format!("{} (raw bytes)", p.display()), bytes);
        }
    }
    // The scan reads the records themselves, not an empty file.
    assert!(
        find(&all, b"entitlement-sync").is_some(),
        "no run recorded in the history store"
    );
}

async fn history_and_friends(sb: &Sb, c: &mut Collected) {
    let cfg = sb.config_str();
    for args in [
        vec!["history", "--config", &cfg, "--format", "json"],
        vec!["history", "--config", &cfg, "--format", "table"],
        vec!["check", "--config", &cfg],
        vec!["list", "--config", &cfg],
    ] {
        let run = probe_env(&args, TRACE).await;
        run.expect_code(0);
        c.run(&run);
    }
    collect_history(sb, c);
}

/// A Pushgateway stand-in that keeps every request it gets, headers and body.
async fn capture_server() -> (String, Arc<Mutex<Vec<u8>>>) {
    use axum::body::Bytes;
    use axum::http::{HeaderMap, Method, Uri};
    let seen: Arc<Mutex<Vec<u8>>> = Arc::default();
    let keep = seen.clone();
    let app = axum::Router::new().fallback(
        move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
            let keep = keep.clone();
            async move {
                let mut k = keep.lock().unwrap();
                k.extend_from_slice(format!("{method} {uri}\n{headers:?}\n").as_bytes());
                k.extend_from_slice(&body);
                k.push(b'\n');
                "ok"
            }
        },
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (url, seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_healthy_run_leaks_nothing_anywhere() {
    let sb = Sb::start().await;
    let secrets = Secrets::of(&sb).await;
    let mut c = Collected::default();
    run_every_format(&sb, &mut c, &[], Some(0)).await;
    // Metrics pushed to a Pushgateway.
    let (gateway, pushed) = capture_server().await;
    let cfg = sb.config_str();
    let run = probe_env(
        &[
            "run", "--config", &cfg, "--format", "json", "--push", &gateway,
        ],
        TRACE,
    )
    .await;
    run.expect_code(0);
    c.run(&run);
    let pushed = pushed.lock().unwrap().clone();
    assert!(
        String::from_utf8_lossy(&pushed).contains("iap_probe"),
        "nothing pushed"
    );
    c.add("the Pushgateway requests", pushed);
    // Sampling mode: many tokens reused and logged about.
    let run = probe_env(
        &[
            "run",
            "--config",
            &cfg,
            "--format",
            "json",
            "--iterations",
            "5",
            "--concurrency",
            "2",
        ],
        TRACE,
    )
    .await;
    run.expect_code(0);
    c.run(&run);
    for which in ["apple", "google"] {
        let run = probe_env(&["token", which, "--config", &cfg], TRACE).await;
        run.expect_code(0);
        assert!(run.stdout.contains("(not shown)"), "{}", run.stdout);
        c.run(&run);
    }
    history_and_friends(&sb, &mut c).await;
    c.assert_clean(&secrets);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoked_and_refused_credentials_leak_nothing() {
    let sb = Sb::start().await;
    let secrets = Secrets::of(&sb).await;
    let mut c = Collected::default();
    let key_id = sb
        .p8_path()
        .file_stem()
        .unwrap()
        .to_string_lossy()
        .trim_start_matches("AuthKey_")
        .to_string();
    // Apple no longer accepts the key: 401, one refresh, 401 again.
    sb.set_faults(json!({"revoked_apple_keys": [key_id]})).await;
    run_every_format(&sb, &mut c, &["--platform", "ios"], Some(1)).await;
    let run = probe_env(&["token", "apple", "--config", &sb.config_str()], TRACE).await;
    c.run(&run);
    // Google's token endpoint refuses (401) and is down (503 + Retry-After).
    for status in [401, 503] {
        sb.set_faults(
            json!({"route": [{"path": "/token", "status": status, "retry_after": "1s"}]}),
        )
        .await;
        run_every_format(&sb, &mut c, &["--platform", "android"], Some(1)).await;
        let run = probe_env(&["token", "google", "--config", &sb.config_str()], TRACE).await;
        run.expect_code(2);
        c.run(&run);
    }
    // Access tokens revoked while a sampling run uses them: 401, refresh, retry.
    sb.set_faults(json!({})).await;
    let done = AtomicBool::new(false);
    let cfg = sb.config_str();
    let run = async {
        let r = probe_env(
            &[
                "run",
                "--config",
                &cfg,
                "--probe",
                "android-purchase",
                "--iterations",
                "30",
                "--format",
                "json",
            ],
            TRACE,
        )
        .await;
        done.store(true, Ordering::SeqCst);
        r
    };
    let revoker = async {
        let client = reqwest::Client::builder().no_proxy().build().unwrap();
        let mut revoked = 0u64;
        while !done.load(Ordering::SeqCst) {
            let r = client
                .post(format!("{}/sandbox/google/revoke", sb.sb.base_url))
                .bearer_auth(sb.admin_token())
                .send()
                .await
                .unwrap();
            let body: Value = r.json().await.unwrap();
            revoked += body["revoked"].as_u64().unwrap_or(0);
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        revoked
    };
    let (run, revoked) = tokio::join!(run, revoker);
    assert!(revoked > 0, "no token was revoked during the run");
    assert_traced(&run);
    let report = run.json();
    let retried: u64 = probe_of(&report, "android-purchase")["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["retries"].as_u64().unwrap_or(0))
        .sum();
    assert!(retried > 0, "no 401 was refreshed and retried:\n{report:#}");
    c.run(&run);
    history_and_friends(&sb, &mut c).await;
    c.assert_clean(&secrets);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_trouble_and_deadlines_leak_nothing() {
    let sb = Sb::start().await;
    let secrets = Secrets::of(&sb).await;
    let mut c = Collected::default();
    // 503 with Retry-After from Apple and the backend, 429 from Google's API.
    sb.set_faults(json!({"route": [
        {"path": "/iap/verify", "status": 503, "retry_after": "1s"},
        {"path": "/inApps/v1/transactions/*", "status": 503},
        {"path": "/androidpublisher/", "status": 429, "retry_after": "1s"},
    ]}))
    .await;
    run_every_format(&sb, &mut c, &[], Some(1)).await;
    // A hang, cut by a short deadline (the JSON and JUnit file; Prometheus and the table).
    sb.set_faults(json!({"route": [
        {"path": "/iap/verify", "hang": true},
        {"path": "/token", "hang": true},
    ]}))
    .await;
    let cfg = sb.config_str();
    let out = tempfile::tempdir().unwrap();
    let junit = out.path().join("junit.xml").display().to_string();
    let prom = out.path().join("report.prom").display().to_string();
    for args in [
        vec![
            "run",
            "--config",
            &cfg,
            "--deadline",
            "2s",
            "--format",
            "json",
            "--junit-output",
            &junit,
        ],
        vec![
            "run",
            "--config",
            &cfg,
            "--deadline",
            "2s",
            "--format",
            "prometheus",
            "--output",
            &prom,
        ],
    ] {
        let run = probe_env(&args, TRACE).await;
        run.expect_code(1);
        assert_traced(&run);
        c.run(&run);
    }
    let report: Value = serde_json::from_slice(&c.0[c.0.len() - 4].1).unwrap();
    assert_eq!(report["deadline_hit"], true, "{report:#}");
    c.add("--junit-output file", std::fs::read(&junit).unwrap());
    c.add("--output file", std::fs::read(&prom).unwrap());
    history_and_friends(&sb, &mut c).await;
    c.assert_clean(&secrets);
}

/// `probe demo` runs its own sandbox in-process, with credentials nobody else sees: the
/// shapes (JWT, access token, key headers, admin-token prefix) must not appear either.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_at_trace_level_leaks_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let faults = dir.path().join("faults.toml");
    std::fs::write(
        &faults,
        r#"
[[route]]
path = "/iap/verify"
status = 503
retry_after = "1s"

[[route]]
path = "/token"
status = 401
"#,
    )
    .unwrap();
    let faults = faults.display().to_string();
    let mut problems = Vec::new();
    for (args, code) in [
        (vec!["demo", "--format", "json"], 0),
        (vec!["demo", "--format", "table"], 0),
        (vec!["demo", "--format", "junit", "--faults", &faults], 1),
        (
            vec!["demo", "--format", "prometheus", "--faults", &faults],
            1,
        ),
    ] {
        let run = probe_env(&args, TRACE).await;
        run.expect_code(code);
        assert_traced(&run);
        let what = format!("`probe {}`", args.join(" "));
        for (part, bytes) in [("stdout", &run.stdout), ("stderr", &run.stderr)] {
            problems.extend(scan_shapes(
                &format!("{what} {part}"),
                bytes.as_bytes(),
                &shape_needles(),
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// Errors about broken keys describe the problem, never the key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_about_broken_keys_quote_no_key_material() {
    let sb = Sb::start().await;
    let cfg = sb.config_str();
    let p8 = std::fs::read_to_string(sb.p8_path()).unwrap();
    let sa = sb.service_account();
    let rsa = str_of(&sa["private_key"]).to_string();
    let mut problems = Vec::new();
    let mut check = |label: &str, run: &Run, keep: &[String]| {
        run.expect_code(2);
        let out = run.all_output();
        for (i, line) in keep.iter().enumerate() {
            if out.contains(line.as_str()) {
                problems.push(format!("{label}: line {} of the key leaked", i + 1));
            }
        }
        problems.extend(scan_shapes(
            label,
            out.replace("-----BEGIN PRIVATE KEY-----", "").as_bytes(),
            &shape_needles(),
        ));
    };
    // A .p8 with one line damaged, one missing, or a byte flipped in the DER.
    let lines: Vec<&str> = p8.lines().collect();
    let body = pem_lines(&p8);
    for (label, broken) in [
        (
            "damaged .p8 line",
            p8.replacen(&body[1], &body[1].replace('A', "!"), 1),
        ),
        (
            "truncated .p8",
            format!("{}\n{}\n{}\n", lines[0], lines[1], lines[lines.len() - 1]),
        ),
        ("flipped .p8", p8.replacen(&body[0][10..14], "AAAA", 1)),
    ] {
        if broken == p8 {
            continue;
        }
        std::fs::write(sb.p8_path(), &broken).unwrap();
        for cmd in ["check", "run"] {
            let run = probe_env(&[cmd, "--config", &cfg], TRACE).await;
            check(label, &run, &body);
        }
    }
    std::fs::write(sb.p8_path(), &p8).unwrap();
    // A service account whose key lost lines, or is not a key at all.
    let rsa_body = pem_lines(&rsa);
    let cut: Vec<&str> = rsa.lines().take(5).chain(rsa.lines().last()).collect();
    for (label, key) in [
        ("truncated service-account key", json!(cut.join("\n"))),
        (
            "service-account key in PKCS#1 armour",
            json!(rsa.replace("PRIVATE KEY", "RSA PRIVATE KEY")),
        ),
    ] {
        let mut broken = sa.clone();
        broken["private_key"] = key;
        sb.write_service_account(&broken);
        for cmd in ["check", "run"] {
            let run = probe_env(&[cmd, "--config", &cfg], TRACE).await;
            check(label, &run, &rsa_body);
        }
    }
    // The whole key file replaced by a pasted token, or by the key itself.
    for (label, text) in [
        (
            "a token pasted as the key file",
            format!("{:?}", sb.admin_token()),
        ),
        ("a bare PEM as the key file", rsa.clone()),
    ] {
        std::fs::write(sb.path("service-account.json"), &text).unwrap();
        let run = probe_env(&["check", "--config", &cfg], TRACE).await;
        check(label, &run, &rsa_body);
        assert!(!run.all_output().contains(&sb.admin_token()), "{label}");
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// `Debug` of every type holding a credential redacts, with the tokens cached inside.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn debug_output_of_credential_types_redacts() {
    use iap_probe::auth::{AppStoreSigner, GoogleTokenSource};
    use iap_probe::probe::{DEFAULT_BUILTINS, load_dir};
    use iap_probe::runner::Engine;
    use iap_probe::secret::{Secret, SecretSource};

    let sb = Sb::start().await;
    let secrets = Secrets::of(&sb).await;
    let config = iap_probe::config::load(&sb.config()).unwrap();
    let probes = load_dir(&config.probes_dir, DEFAULT_BUILTINS).unwrap();
    let engine = Engine::new(config.clone(), probes).await.unwrap();
    // Fill the caches: a signed JWT and an access token now live inside.
    let jwt = engine.apple.as_ref().unwrap().token().unwrap().token;
    let access = engine.google.as_ref().unwrap().token().await.unwrap().token;
    assert!(jwt.expose().starts_with("eyJ"));
    assert!(access.expose().starts_with("ya29."));

    let a = config.apple.as_ref().unwrap();
    let signer = AppStoreSigner::from_p8_file(
        &sb.p8_path(),
        &a.key_id,
        &a.issuer_id,
        &a.bundle_id,
        a.token_lifetime,
    )
    .unwrap();
    let signed = signer.token().unwrap();
    let google = GoogleTokenSource::from_key_file(
        &sb.path("service-account.json"),
        std::time::Duration::from_secs(5),
    )
    .await
    .unwrap();
    let admin = Secret::new(sb.admin_token());
    let inline = SecretSource {
        env: None,
        file: None,
        value: Some(sb.admin_token()),
        insecure_inline: true,
    };
    let pem = SecretSource {
        value: Some(std::fs::read_to_string(sb.p8_path()).unwrap()),
        ..inline.clone()
    };
    let mut inline_config = config.clone();
    inline_config.admin_token = Some(inline.clone());
    if let Some(apple) = inline_config.apple.as_mut() {
        apple.private_key = pem.clone();
    }

    let mut shown = vec![
        ("Engine", format!("{engine:?}")),
        ("Engine (pretty)", format!("{engine:#?}")),
        ("AppStoreSigner", format!("{signer:?}")),
        ("AppStoreSigner (pretty)", format!("{signer:#?}")),
        ("GoogleTokenSource", format!("{google:?}")),
        ("GoogleTokenSource (pretty)", format!("{google:#?}")),
        ("Secret", format!("{admin:?}")),
        ("Secret (Display)", format!("{admin}")),
        ("Secret (JWT)", format!("{jwt:?} {jwt}")),
        ("Secret (access token)", format!("{access:?} {access}")),
        ("Secret (signed)", format!("{:?}", signed.token)),
        ("SecretSource (inline)", format!("{inline:?} {inline:#?}")),
        ("SecretSource (inline PEM)", format!("{pem:?}")),
        ("Config", format!("{config:?}")),
        ("Config (inline secrets)", format!("{inline_config:#?}")),
    ];
    // A secret inside an error message is redacted the same way.
    shown.push((
        "an error message",
        format!("signing with {jwt} failed for {admin:?}: {inline:?}"),
    ));

    let mut problems = Vec::new();
    for (what, text) in &shown {
        problems.extend(secrets.scan(what, text.as_bytes()));
        for (name, token) in [
            ("the JWT", jwt.expose()),
            ("the access token", access.expose()),
        ] {
            if text.contains(token) {
                problems.push(format!("{what}: {name} leaked"));
            }
        }
        if what.starts_with("Secret") && !text.contains("redacted") {
            problems.push(format!("{what}: does not say it is redacted: {text}"));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    // Useful without the secrets: what a credential is, not what it holds.
    assert!(shown[2].1.contains(&a.key_id), "{}", shown[2].1);
    assert!(
        shown[4].1.contains("iam.gserviceaccount.com"),
        "{}",
        shown[4].1
    );
}

/// A backend that echoes the caller's credential in an error body: the failure reason
/// quotes the start of the body, so the echo is redacted first (`Exchange::redact`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_echoing_the_credential_is_not_quoted() {
    let sb = Sb::start().await;
    let secrets = Secrets::of(&sb).await;
    let admin = sb.admin_token();
    sb.set_faults(json!({"route": [{
        "path": "/iap/cache/refresh",
        "status": 401,
        "content_type": "text/plain",
        "body": format!("invalid token: Bearer {admin}"),
    }]}))
    .await;
    let mut c = Collected::default();
    run_every_format(&sb, &mut c, &["--probe", "entitlement-sync"], Some(1)).await;
    history_and_friends(&sb, &mut c).await;
    c.assert_clean(&secrets);
}

/// `probe daemon`'s `/metrics` and `/results/latest`, and the alert payloads sent to
/// PagerDuty and Slack (local receivers), with failing probes whose reasons are quoted
/// everywhere — one behind a backend that echoes the admin token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn daemon_endpoints_and_alert_payloads_leak_nothing() {
    use std::time::{Duration, Instant};
    let sb = Sb::start().await;
    let secrets = Secrets::of(&sb).await;
    let admin = sb.admin_token();
    let (pagerduty, paged) = capture_server().await;
    let (slack, posted) = capture_server().await;
    std::fs::write(
        sb.path("slack-webhook-url"),
        format!("{slack}/services/T0TEST/B0TEST/hook\n"),
    )
    .unwrap();
    sb.edit("probe.toml", |s| {
        format!(
            "{s}\n[alerting]\nbackoff = \"50ms\"\nalert_after = 1\nwithin_runs = 1\nresolve_after = 1\n\
             [alerting.pagerduty]\nrouting_key = {{ env = \"TEST_PD_ROUTING_KEY\" }}\nurl = \"{pagerduty}/v2/enqueue\"\n\
             [alerting.slack]\nwebhook_url = {{ file = \"slack-webhook-url\" }}\n"
        )
    });
    sb.set_faults(json!({"route": [
        {"path": "/iap/cache/refresh", "status": 401, "content_type": "text/plain",
         "body": format!("invalid token: Bearer {admin}")},
        {"path": "/iap/verify", "outage": true},
    ]}))
    .await;
    const KEY: (&str, &str) = ("TEST_PD_ROUTING_KEY", "R0UT1NGKEYa1b2c3d4e5f6a7b8c9d0e1");
    let mut c = Collected::default();
    let cfg = sb.config_str();
    let run = probe_env(
        &["run", "--config", &cfg, "--format", "json"],
        &[TRACE[0], KEY],
    )
    .await;
    run.expect_code(1);
    c.run(&run);

    // The daemon: one scheduled run, then its endpoints.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let log = sb.path("daemon.log");
    let mut daemon = std::process::Command::new(env!("CARGO_BIN_EXE_probe"))
        .args(["daemon", "--config", &cfg, "--interval", "1s", "--listen"])
        .arg(format!("127.0.0.1:{port}"))
        .env("RUST_LOG", "trace")
        .env(KEY.0, KEY.1)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("the probe binary starts");
    let http = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let start = Instant::now();
    // A bounded poll for the condition: a run has finished.
    let metrics = loop {
        if let Ok(r) = http.get(format!("{base}/metrics")).send().await
            && r.status() == 200
            && let Ok(body) = r.text().await
            && body
                .lines()
                .any(|l| l.starts_with("iap_probe_daemon_runs_total ") && !l.ends_with(" 0"))
        {
            break body;
        }
        if start.elapsed() > Duration::from_secs(30) || daemon.try_wait().unwrap().is_some() {
            let _ = daemon.kill();
            let _ = daemon.wait();
            panic!(
                "no daemon run within 30 s:\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let latest = http
        .get(format!("{base}/results/latest"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let _ = daemon.kill();
    let _ = daemon.wait();
    assert!(metrics.contains("iap_probe_"), "{metrics}");
    assert!(latest.contains("entitlement-sync"), "{latest}");
    c.add("the daemon's /metrics", metrics);
    c.add("the daemon's /results/latest", latest);
    c.add("the daemon's stderr (trace)", std::fs::read(&log).unwrap());

    let paged = paged.lock().unwrap().clone();
    let posted = posted.lock().unwrap().clone();
    assert!(
        String::from_utf8_lossy(&paged).contains("\"trigger\""),
        "nothing paged: {}",
        String::from_utf8_lossy(&paged)
    );
    assert!(!posted.is_empty(), "nothing posted to Slack");
    c.add("the PagerDuty events", paged);
    c.add("the Slack messages", posted);
    c.assert_clean(&secrets);
}
