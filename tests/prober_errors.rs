//! Bad input gets a precise error and exit 2, and nothing is probed.
//!
//! Each test writes a complete, valid state folder (what `probe sandbox` writes: probe.toml,
//! the .p8 key, the service account, the admin token, the shipped probes) whose every URL
//! points at a "tripwire" listener that nobody serves, then breaks one thing. After the
//! run, the tripwire must have seen no connection: the error came before any probing.

#[path = "fixtures/prober/support.rs"]
mod support;

use std::io::ErrorKind;
use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::OnceLock;

use iap_probe::sandbox::{Sandbox, SandboxOptions, creds};
use serde_json::json;
use support::*;

/// Key generation (RSA 2048) is the slow part: once per test binary.
fn generated() -> &'static Sandbox {
    static GEN: OnceLock<Sandbox> = OnceLock::new();
    GEN.get_or_init(|| Sandbox::generate(SandboxOptions::default()).expect("keys generate"))
}

/// A valid state folder aimed at a listener nobody answers.
struct Offline {
    dir: tempfile::TempDir,
    trip: TcpListener,
}

fn offline() -> Offline {
    let trip = TcpListener::bind("127.0.0.1:0").expect("bind tripwire");
    trip.set_nonblocking(true).unwrap();
    let base = format!("http://{}", trip.local_addr().unwrap());
    let dir = tempfile::Builder::new()
        .prefix("iap-probe-errors-")
        .tempdir()
        .unwrap();
    let g = generated();
    creds::write_state_dir(dir.path(), &base, &g.creds, &g.fixtures, &g.ca.root_pem)
        .expect("state folder written");
    Offline { dir, trip }
}

impl Offline {
    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn config(&self) -> String {
        self.path("probe.toml").display().to_string()
    }

    fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.path(rel)).unwrap()
    }

    fn write(&self, rel: &str, text: &str) {
        std::fs::write(self.path(rel), text).unwrap();
    }

    /// Rewrites a file; the edit must change something.
    fn edit(&self, rel: &str, f: impl FnOnce(&str) -> String) {
        let before = self.read(rel);
        let after = f(&before);
        assert_ne!(before, after, "editing {rel} changed nothing");
        self.write(rel, &after);
    }

    /// The 1-based line of the first line of `rel` containing `needle`.
    fn line_of(&self, rel: &str, needle: &str) -> usize {
        self.read(rel)
            .lines()
            .position(|l| l.contains(needle))
            .map(|i| i + 1)
            .unwrap_or_else(|| panic!("{needle:?} not in {rel}"))
    }

    fn p8(&self) -> String {
        format!("AuthKey_{}.p8", generated().creds.probe_key.key_id)
    }

    fn assert_nothing_probed(&self) {
        match self.trip.accept() {
            Err(e) if e.kind() == ErrorKind::WouldBlock => {}
            Ok((_, peer)) => panic!("something was probed (a connection from {peer})"),
            Err(e) => panic!("tripwire: {e}"),
        }
    }

    /// `probe ARGS` exits 2 with no report; returns stderr.
    fn usage_error(&self, args: &[&str]) -> String {
        let run = probe_sync(args);
        run.expect_code(2);
        assert!(
            run.stdout.is_empty(),
            "no report on a usage error: {}",
            run.stdout
        );
        assert!(
            !run.stderr.contains("panicked") && !run.stderr.contains("internal error"),
            "{}",
            run.stderr
        );
        self.assert_nothing_probed();
        run.stderr
    }

    /// Both `probe run` and `probe check` refuse the folder with exit 2; returns stderr.
    fn refused(&self) -> String {
        let cfg = self.config();
        let run = self.usage_error(&["run", "--config", &cfg, "--format", "json"]);
        let check = self.usage_error(&["check", "--config", &cfg]);
        assert_eq!(run, check, "run and check share one loading path");
        run
    }
}

fn contains_all(stderr: &str, needles: &[&str]) {
    for n in needles {
        assert!(stderr.contains(n), "{n:?} not in stderr:\n{stderr}");
    }
}

#[test]
fn check_accepts_the_generated_folder_offline() {
    let o = offline();
    let run = probe_sync(&["check", "--config", &o.config()]);
    run.expect_code(0);
    contains_all(&run.stdout, &["ok", "5 probes"]);
    let run = probe_sync(&["list", "--config", &o.config()]);
    run.expect_code(0);
    contains_all(
        &run.stdout,
        &["ios-purchase", "android-purchase", "app-store-jwt"],
    );
    o.assert_nothing_probed();
}

#[test]
fn missing_config_file() {
    let o = offline();
    let missing = o.path("nope.toml").display().to_string();
    let err = o.usage_error(&["run", "--config", &missing]);
    contains_all(&err, &[&missing, "cannot read config"]);
    let err = o.usage_error(&["check", "--config", &missing]);
    contains_all(&err, &[&missing]);
}

#[test]
fn config_with_an_unknown_key() {
    let o = offline();
    o.edit("probe.toml", |s| {
        s.replacen("[backend]\n", "[backend]\nbase_ulr = \"http://x\"\n", 1)
    });
    let line = o.line_of("probe.toml", "base_ulr");
    let err = o.refused();
    contains_all(&err, &[&o.config(), &format!("line {line}"), "base_ulr"]);
}

#[test]
fn config_with_a_bad_url() {
    let o = offline();
    o.edit("probe.toml", |s| {
        let start = s.find("[backend]\nbase_url = ").unwrap() + "[backend]\n".len();
        let end = start + s[start..].find('\n').unwrap();
        format!("{}base_url = \"not a url\"{}", &s[..start], &s[end..])
    });
    let line = o.line_of("probe.toml", "not a url");
    let err = o.refused();
    contains_all(
        &err,
        &[
            &o.config(),
            &format!("line {line}"),
            "backend.base_url",
            "not a url",
        ],
    );
}

#[test]
fn apple_production_needs_allow_production() {
    let o = offline();
    o.edit("probe.toml", |s| {
        s.replacen("[apple]\n", "[apple]\nenvironment = \"production\"\n", 1)
    });
    let line = o.line_of("probe.toml", "environment = \"production\"");
    let err = o.refused();
    contains_all(
        &err,
        &[
            &o.config(),
            &format!("line {line}"),
            "apple.environment",
            "allow_production",
        ],
    );
    // Explicitly allowed, the same folder is valid.
    o.edit("probe.toml", |s| {
        s.replacen("[apple]\n", "[apple]\nallow_production = true\n", 1)
    });
    probe_sync(&["check", "--config", &o.config()]).expect_code(0);
    o.assert_nothing_probed();
}

#[test]
fn probe_file_with_an_unknown_key() {
    let o = offline();
    o.edit("probes/health.toml", |s| {
        s.replacen("expect = {", "exepct = {", 1)
    });
    let line = o.line_of("probes/health.toml", "exepct");
    let err = o.refused();
    contains_all(&err, &["health.toml", &format!("line {line}"), "exepct"]);
}

#[test]
fn probe_referencing_an_unknown_variable() {
    let o = offline();
    o.edit("probes/ios-purchase.toml", |s| {
        s.replacen("{{fixture.product_id}}", "{{produkt}}", 1)
    });
    let line = o.line_of("probes/ios-purchase.toml", "{{produkt}}");
    let err = o.refused();
    contains_all(
        &err,
        &[
            "ios-purchase.toml",
            &format!("line {line}"),
            "step.verify",
            "unknown variable",
            "produkt",
        ],
    );
}

#[test]
fn fixture_missing_from_the_config() {
    let o = offline();
    let ios_product = &generated().fixtures.ios[0].product_id;
    o.edit("probe.toml", |s| {
        s.replacen(&format!("product_id = \"{ios_product}\"\n"), "", 1)
    });
    let err = o.refused();
    contains_all(
        &err,
        &[
            "ios-purchase.toml",
            "fixture.product_id",
            &o.config(),
            "[fixtures.ios]",
        ],
    );
    // Only the iOS group lost it: android is not blamed.
    assert!(!err.contains("android-purchase"), "{err}");
}

#[test]
fn missing_p8_file() {
    let o = offline();
    let p8 = o.path(&o.p8());
    std::fs::remove_file(&p8).unwrap();
    let err = o.refused();
    contains_all(&err, &[&p8.display().to_string(), "cannot read key file"]);
}

fn write_p8(o: &Offline, pem: &str) -> String {
    o.write(&o.p8(), pem);
    o.path(&o.p8()).display().to_string()
}

#[test]
fn sec1_ec_key_as_p8() {
    use p256::pkcs8::DecodePrivateKey;
    let o = offline();
    let key = p256::SecretKey::from_pkcs8_pem(&o.read(&o.p8())).unwrap();
    let sec1 = key.to_sec1_pem(p256::pkcs8::LineEnding::LF).unwrap();
    assert!(sec1.contains("BEGIN EC PRIVATE KEY"));
    let path = write_p8(&o, &sec1);
    let err = o.refused();
    contains_all(&err, &[&path, "SEC1", "PKCS#8", "openssl pkcs8"]);
}

#[test]
fn rsa_key_as_p8() {
    use rsa::pkcs1::EncodeRsaPrivateKey;
    use rsa::pkcs8::DecodePrivateKey;
    let o = offline();
    // PKCS#8 RSA: right container, wrong algorithm.
    let sa: serde_json::Value = serde_json::from_str(&o.read("service-account.json")).unwrap();
    let pkcs8_rsa = str_of(&sa["private_key"]).to_string();
    assert!(pkcs8_rsa.contains("BEGIN PRIVATE KEY"));
    let path = write_p8(&o, &pkcs8_rsa);
    let err = o.refused();
    contains_all(&err, &[&path, "RSA", "P-256"]);
    // PKCS#1 RSA.
    let key = rsa::RsaPrivateKey::from_pkcs8_pem(&pkcs8_rsa).unwrap();
    let pkcs1 = key.to_pkcs1_pem(rsa::pkcs8::LineEnding::LF).unwrap();
    assert!(pkcs1.contains("BEGIN RSA PRIVATE KEY"));
    write_p8(&o, &pkcs1);
    let err = o.refused();
    contains_all(&err, &[&path, "RSA"]);
}

#[test]
fn p384_key_as_p8() {
    let o = offline();
    let p384 = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384)
        .unwrap()
        .serialize_pem();
    assert!(p384.contains("BEGIN PRIVATE KEY"));
    let path = write_p8(&o, &p384);
    let err = o.refused();
    contains_all(&err, &[&path, "P-256"]);
}

#[test]
fn not_a_key_at_all_as_p8() {
    let o = offline();
    let path = write_p8(&o, "hello\n");
    let err = o.refused();
    contains_all(&err, &[&path, "BEGIN PRIVATE KEY"]);
}

#[test]
fn unreadable_service_account_and_admin_token() {
    let o = offline();
    o.write("service-account.json", "{ not json");
    let err = o.refused();
    contains_all(&err, &["service-account.json", "service-account key"]);

    let o = offline();
    let mut sa: serde_json::Value = serde_json::from_str(&o.read("service-account.json")).unwrap();
    sa["token_uri"] = json!("http://oauth2.example.com/token");
    o.write("service-account.json", &sa.to_string());
    let err = o.refused();
    contains_all(&err, &["http://oauth2.example.com/token", "https"]);

    let o = offline();
    std::fs::remove_file(o.path("admin-token")).unwrap();
    let err = o.refused();
    contains_all(&err, &["backend.admin_token", "admin-token"]);
}

#[test]
fn bad_command_line_values() {
    let o = offline();
    let cfg = o.config();
    let err = o.usage_error(&["run", "--config", &cfg, "--iterations", "0"]);
    contains_all(&err, &["--iterations"]);
    let err = o.usage_error(&["run", "--config", &cfg, "--deadline", "abc"]);
    contains_all(&err, &["--deadline", "abc"]);
    let err = o.usage_error(&["run", "--config", &cfg, "--platform", "windows"]);
    contains_all(&err, &["--platform", "windows"]);
    let err = o.usage_error(&["--config", &cfg, "--iterations", "0"]);
    contains_all(&err, &["--iterations"]);
}

#[test]
fn bad_token_uri_names_the_service_account_file() {
    for uri in ["http://oauth2.example.com/token", "not a url"] {
        let o = offline();
        let mut sa: serde_json::Value =
            serde_json::from_str(&o.read("service-account.json")).unwrap();
        sa["token_uri"] = json!(uri);
        o.write("service-account.json", &sa.to_string());
        let file = o.path("service-account.json").display().to_string();
        let err = o.refused();
        contains_all(&err, &[&file, "token_uri", uri]);
    }
}
