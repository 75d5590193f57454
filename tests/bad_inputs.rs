//! The bad-input corpus (issue 6): every case is one mistake in an otherwise valid state
//! folder — malformed TOML, unknown keys, wrong types, missing sections and fields, bad
//! durations, URLs and ratios, secrets written inline, broken `.p8` keys (empty, truncated,
//! garbage, DER, passphrase-protected), service-account files that are not one, a
//! production Apple host without `allow_production` — run through the real binary with
//! both `probe check` and `probe run`. Each must exit 2 with nothing on stdout, one clear
//! message on stderr naming the file, the line and the key where it has them, what is wrong
//! and what to do, never a panic, never a secret, and nothing probed.
//!
//! Together with `tests/fixtures/probes_bad/` (bad probe files, checked through the
//! library by `tests/probe_defs.rs`) and `tests/prober_errors.rs` this is the corpus the
//! issue asks for; the cases here do not repeat those.
//!
//! Run: `cargo test --test bad_inputs`.

#[path = "fixtures/prober/support.rs"]
mod support;

use std::io::ErrorKind;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use base64::Engine as _;
use iap_probe::sandbox::{Sandbox, SandboxOptions, creds};
use serde_json::json;
use support::*;

/// Key generation (RSA 2048) is the slow part: once per test binary.
fn generated() -> &'static Sandbox {
    static GEN: OnceLock<Sandbox> = OnceLock::new();
    GEN.get_or_init(|| Sandbox::generate(SandboxOptions::default()).expect("keys generate"))
}

/// A complete, valid state folder whose every URL points at a listener nobody serves.
struct Folder {
    dir: tempfile::TempDir,
    trip: TcpListener,
    base: String,
}

fn folder() -> Folder {
    let trip = TcpListener::bind("127.0.0.1:0").expect("bind tripwire");
    trip.set_nonblocking(true).unwrap();
    let base = format!("http://{}", trip.local_addr().unwrap());
    let dir = tempfile::Builder::new()
        .prefix("iap-probe-bad-")
        .tempdir()
        .unwrap();
    let g = generated();
    creds::write_state_dir(dir.path(), &base, &g.creds, &g.fixtures, &g.ca.root_pem)
        .expect("state folder written");
    Folder { dir, trip, base }
}

/// `$P8` in a case stands for the generated `AuthKey_<KEY_ID>.p8`.
fn resolve(rel: &str) -> String {
    rel.replace(
        "$P8",
        &format!("AuthKey_{}.p8", generated().creds.probe_key.key_id),
    )
}

impl Folder {
    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(resolve(rel))
    }

    fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.path(rel)).unwrap()
    }

    fn write(&self, rel: &str, content: impl AsRef<[u8]>) {
        std::fs::write(self.path(rel), content).unwrap();
    }

    fn replace(&self, rel: &str, from: &str, to: &str) {
        let before = self.read(rel);
        assert!(before.contains(from), "{from:?} not in {rel}:\n{before}");
        self.write(rel, before.replacen(from, to, 1));
    }

    fn append(&self, rel: &str, text: &str) {
        let before = self.read(rel);
        self.write(rel, format!("{before}\n{text}\n"));
    }

    fn service_account(&self) -> serde_json::Value {
        serde_json::from_str(&self.read("service-account.json")).unwrap()
    }

    fn edit_service_account(
        &self,
        f: impl FnOnce(&mut serde_json::Map<String, serde_json::Value>),
    ) {
        let mut sa = self.service_account();
        f(sa.as_object_mut().unwrap());
        self.write("service-account.json", sa.to_string());
    }

    /// Removes `[name]` and everything up to the next table header.
    fn drop_table(&self, name: &str) {
        let s = self.read("probe.toml");
        let header = format!("[{name}]\n");
        let start = s.find(&header).unwrap_or_else(|| panic!("no {header}"));
        let end = s[start + header.len()..]
            .find("\n[")
            .map_or(s.len(), |i| start + header.len() + i + 1);
        self.write("probe.toml", format!("{}{}", &s[..start], &s[end..]));
    }

    /// 1-based line of the first line of `rel` containing `needle`.
    fn line_of(&self, rel: &str, needle: &str) -> usize {
        self.read(rel)
            .lines()
            .position(|l| l.contains(needle))
            .map(|i| i + 1)
            .unwrap_or_else(|| panic!("{needle:?} not in {rel}"))
    }

    fn probed(&self) -> Option<String> {
        match self.trip.accept() {
            Err(e) if e.kind() == ErrorKind::WouldBlock => None,
            Ok((_, peer)) => Some(format!("a connection from {peer}")),
            Err(e) => Some(format!("tripwire: {e}")),
        }
    }
}

/// What a case breaks.
enum Edit {
    /// Replace the first occurrence in a file.
    Replace(&'static str, &'static str, &'static str),
    /// Append lines to a file.
    Append(&'static str, &'static str),
    /// Overwrite a file.
    Write(&'static str, &'static str),
    /// Anything else.
    With(fn(&Folder)),
}

struct Case {
    name: &'static str,
    edit: Edit,
    /// The file stderr must name (relative to the folder), when the problem is in one.
    file: Option<&'static str>,
    /// stderr must say `line N`, N being the first line of `file` containing this.
    line_of: Option<&'static str>,
    /// stderr must contain each: the key, what is wrong, what to do.
    says: &'static [&'static str],
    /// stderr must not contain any of these (secrets written in the wrong place).
    hidden: &'static [&'static str],
    /// Error lines expected (one per problem).
    lines: usize,
}

const fn case(name: &'static str, edit: Edit, file: &'static str) -> Case {
    Case {
        name,
        edit,
        file: Some(file),
        line_of: None,
        says: &[],
        hidden: &[],
        lines: 1,
    }
}

impl Case {
    const fn line(mut self, needle: &'static str) -> Self {
        self.line_of = Some(needle);
        self
    }
    const fn says(mut self, s: &'static [&'static str]) -> Self {
        self.says = s;
        self
    }
    const fn hides(mut self, s: &'static [&'static str]) -> Self {
        self.hidden = s;
        self
    }
    const fn no_file(mut self) -> Self {
        self.file = None;
        self
    }
    const fn lines(mut self, n: usize) -> Self {
        self.lines = n;
        self
    }
}

const CFG: &str = "probe.toml";
const P8: &str = "$P8";
const SA: &str = "service-account.json";
const GET_APPLE_KEY: &str = "App Store Connect";
const GET_GOOGLE_KEY: &str = "Service accounts";

fn pem_body(pem: &str) -> String {
    pem.lines()
        .filter(|l| !l.starts_with("-----"))
        .collect::<String>()
}

fn key_cases() -> Vec<Case> {
    use Edit::*;
    vec![
        // --- the App Store .p8 key ---
        case("empty .p8", Write(P8, ""), P8).says(&["empty", GET_APPLE_KEY]),
        case("blank .p8", Write(P8, "\n  \n"), P8).says(&["empty", GET_APPLE_KEY]),
        case(
            "passphrase-protected .p8",
            Write(
                P8,
                include_str!("fixtures/bad_inputs/encrypted.p8"),
            ),
            P8,
        )
        .says(&["passphrase-protected", "openssl pkcs8"]),
        case(
            "truncated .p8",
            With(|f| {
                let pem = f.read(P8);
                let lines: Vec<&str> = pem.lines().collect();
                f.write(
                    P8,
                    format!("{}\n{}\n-----END PRIVATE KEY-----\n", lines[0], lines[1]),
                );
            }),
            P8,
        )
        .says(&["unreadable PKCS#8", "truncated", "create a new one"]),
        case(
            "garbage inside the PEM armour",
            Write(
                P8,
                "-----BEGIN PRIVATE KEY-----\nnot base64 at all !!!\n-----END PRIVATE KEY-----\n",
            ),
            P8,
        )
        .says(&["unreadable PKCS#8", "damaged"]),
        case(
            "DER (binary) key saved as .p8",
            With(|f| {
                let der = base64::engine::general_purpose::STANDARD
                    .decode(pem_body(&f.read(P8)))
                    .unwrap();
                f.write(P8, der);
            }),
            P8,
        )
        .says(&["binary", "-inform DER"]),
        case(
            "a certificate saved as .p8",
            With(|f| f.write(P8, f.read("sandbox-root-ca.pem"))),
            P8,
        )
        .says(&["BEGIN PRIVATE KEY", GET_APPLE_KEY]),
        case(
            "private_key names a folder",
            Replace(CFG, "private_key = { file = \"AuthKey_", "private_key = { file = \"probes\" }\n# was: \"AuthKey_"),
            "probes",
        )
        .says(&["cannot read key file"]),
        // --- the Google service-account file ---
        case("empty service-account file", Write(SA, ""), SA)
            .says(&["empty", "service-account key", GET_GOOGLE_KEY]),
        case(
            "service account missing private_key",
            With(|f| f.edit_service_account(|m| {
                m.remove("private_key");
            })),
            SA,
        )
        .says(&["missing field `private_key`", GET_GOOGLE_KEY]),
        case(
            "service account missing client_email",
            With(|f| f.edit_service_account(|m| {
                m.remove("client_email");
            })),
            SA,
        )
        .says(&["missing field `client_email`", GET_GOOGLE_KEY]),
        case(
            "service account missing token_uri",
            With(|f| f.edit_service_account(|m| {
                m.remove("token_uri");
            })),
            SA,
        )
        .says(&["missing field `token_uri`", GET_GOOGLE_KEY]),
        case(
            "an OAuth client file instead of a service account",
            Write(
                SA,
                r#"{"installed":{"client_id":"1-x.apps.googleusercontent.com","client_secret":"GOCSPX-hunter2","auth_uri":"https://accounts.google.com/o/oauth2/auth","token_uri":"https://oauth2.googleapis.com/token","redirect_uris":["http://localhost"]}}"#,
            ),
            SA,
        )
        .says(&["OAuth client ID file", "not a service-account key", GET_GOOGLE_KEY])
        .hides(&["GOCSPX-hunter2"]),
        case(
            "a gcloud user credential instead of a service account",
            Write(
                SA,
                r#"{"type":"authorized_user","client_id":"1-x.apps.googleusercontent.com","client_secret":"d-hunter2","refresh_token":"1//hunter2-refresh"}"#,
            ),
            SA,
        )
        .says(&["\"authorized_user\" credential", GET_GOOGLE_KEY])
        .hides(&["hunter2"]),
        case("service account is a JSON array", Write(SA, "[1, 2, 3]"), SA)
            .says(&["JSON array", GET_GOOGLE_KEY]),
        case(
            "service account is a bare JSON string (never echoed)",
            Write(SA, "\"ya29.hunter2-pasted-token\""),
            SA,
        )
        .says(&["JSON string", GET_GOOGLE_KEY])
        .hides(&["hunter2", "ya29."]),
        case(
            "service-account private_key damaged",
            With(|f| f.edit_service_account(|m| {
                m.insert(
                    "private_key".into(),
                    json!("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"),
                );
            })),
            SA,
        )
        .says(&["private_key is not a usable RSA private key", GET_GOOGLE_KEY]),
        case(
            "service-account private_key is an EC key",
            With(|f| {
                let ec = f.read(P8);
                f.edit_service_account(|m| {
                    m.insert("private_key".into(), json!(ec));
                });
            }),
            SA,
        )
        .says(&["not a usable RSA private key"]),
        case(
            "service-account private_key in PKCS#1 form",
            With(|f| {
                f.edit_service_account(|m| {
                    m.insert(
                        "private_key".into(),
                        json!("-----BEGIN RSA PRIVATE KEY-----\nMIIEow\n-----END RSA PRIVATE KEY-----\n"),
                    );
                });
            }),
            SA,
        )
        .says(&["not a PKCS#8 PEM key", GET_GOOGLE_KEY]),
        case(
            "service-account private_key is not a string",
            With(|f| f.edit_service_account(|m| {
                m.insert("private_key".into(), json!(12345));
            })),
            SA,
        )
        .says(&["`private_key` is not a string"]),
    ]
}

fn config_cases() -> Vec<Case> {
    use Edit::*;
    vec![
        case("empty probe.toml", Write(CFG, ""), CFG).says(&[
            "line 1",
            "missing field `backend`",
            "add a [backend] section",
        ]),
        case(
            "no [backend] section",
            With(|f| f.drop_table("backend")),
            CFG,
        )
        .says(&["missing field `backend`", "add a [backend] section"]),
        case(
            "[backend] without base_url",
            With(|f| {
                let s = f.read(CFG);
                f.write(
                    CFG,
                    s.replacen(
                        &format!("[backend]\nbase_url = \"{}\"\n", f.base),
                        "[backend]\n",
                        1,
                    ),
                );
            }),
            CFG,
        )
        .line("[backend]")
        .says(&[
            "backend",
            "missing field `base_url`",
            "add base_url = ... under [backend]",
        ]),
        case(
            "[apple] without issuer_id",
            With(|f| {
                let s = f.read(CFG);
                let start = s.find("issuer_id = ").unwrap();
                let end = start + s[start..].find('\n').unwrap() + 1;
                f.write(CFG, format!("{}{}", &s[..start], &s[end..]));
            }),
            CFG,
        )
        .line("[apple]")
        .says(&["apple", "missing field `issuer_id`", "under [apple]"]),
        case(
            "[google] without package_name",
            With(|f| {
                let s = f.read(CFG);
                let start = s.find("package_name = ").unwrap();
                let end = start + s[start..].find('\n').unwrap() + 1;
                f.write(CFG, format!("{}{}", &s[..start], &s[end..]));
            }),
            CFG,
        )
        .line("[google]")
        .says(&["google", "missing field `package_name`", "under [google]"]),
        case(
            "probes_dir is a number",
            Replace(CFG, "probes_dir = \"probes\"", "probes_dir = 5"),
            CFG,
        )
        .line("probes_dir = 5")
        .says(&["probes_dir", "invalid type: integer"]),
        case(
            "allow_production is a string",
            Replace(CFG, "[apple]\n", "[apple]\nallow_production = \"yes\"\n"),
            CFG,
        )
        .line("allow_production")
        .says(&["apple.allow_production", "expected a boolean"]),
        case(
            "run.concurrency is a string",
            Append(CFG, "[run]\nconcurrency = \"many\""),
            CFG,
        )
        .line("concurrency = ")
        .says(&["run.concurrency", "invalid type: string"]),
        case(
            "unterminated string",
            Replace(CFG, "environment = \"sandbox\"", "environment = \"sandbox"),
            CFG,
        )
        .line("environment = ")
        .says(&["invalid basic string"]),
        case(
            "[backend] twice",
            Append(CFG, "[backend]\nbase_url = \"http://127.0.0.1:9\""),
            CFG,
        )
        .says(&["duplicate key"]),
        case(
            "bad duration",
            Append(CFG, "[run]\ntimeout = \"10 parsecs\""),
            CFG,
        )
        .line("10 parsecs")
        .says(&[
            "run.timeout",
            "invalid duration \"10 parsecs\"",
            "write e.g.",
        ]),
        case("zero timeout", Append(CFG, "[run]\ntimeout = \"0s\""), CFG)
            .line("timeout = ")
            .says(&["run.timeout", "above zero"]),
        case(
            "zero concurrency",
            Append(CFG, "[run]\nconcurrency = 0"),
            CFG,
        )
        .line("concurrency = 0")
        .says(&["run.concurrency", "at least 1"]),
        case(
            "negative max_body",
            Append(CFG, "[run]\nmax_body = -1"),
            CFG,
        )
        .line("max_body")
        .says(&["run.max_body", "-1"]),
        case(
            "unknown key in [run]",
            Append(CFG, "[run]\ntimeuot = \"5s\""),
            CFG,
        )
        .line("timeuot")
        .says(&["unknown field `timeuot`", "`timeout`"]),
        case(
            "ftp backend URL",
            With(|f| {
                let s = f.read(CFG);
                let from = format!("[backend]\nbase_url = \"{}\"", f.base);
                let to = format!(
                    "[backend]\nbase_url = \"{}\"",
                    f.base.replace("http://", "ftp://")
                );
                f.write(CFG, s.replacen(&from, &to, 1));
            }),
            CFG,
        )
        .line("ftp://")
        .says(&["backend.base_url", "scheme must be http or https"]),
        case(
            "relative apple URL",
            With(|f| {
                let s = f.read(CFG);
                let from = format!("[apple]\nbase_url = \"{}\"", f.base);
                f.write(CFG, s.replacen(&from, "[apple]\nbase_url = \"/inApps\"", 1));
            }),
            CFG,
        )
        .line("\"/inApps\"")
        .says(&["apple.base_url", "not a URL"]),
        case(
            "production Apple host without allow_production",
            With(|f| {
                let s = f.read(CFG);
                let from = format!("[apple]\nbase_url = \"{}\"", f.base);
                f.write(
                    CFG,
                    s.replacen(
                        &from,
                        "[apple]\nbase_url = \"https://api.storekit.itunes.apple.com\"",
                        1,
                    ),
                );
            }),
            CFG,
        )
        .line("api.storekit.itunes.apple.com")
        .says(&["apple.base_url", "production", "allow_production = true"]),
        case(
            "unknown apple environment",
            Replace(CFG, "[apple]\n", "[apple]\nenvironment = \"prod\"\n"),
            CFG,
        )
        .line("\"prod\"")
        .says(&["apple.environment", "\"sandbox\" or \"production\""]),
        case(
            "App Store token lifetime over an hour",
            Replace(CFG, "[apple]\n", "[apple]\ntoken_lifetime = \"2h\"\n"),
            CFG,
        )
        .line("token_lifetime")
        .says(&["apple.token_lifetime", "between 1m and 60m"]),
        case(
            "success rate as a percentage",
            Append(CFG, "[slo]\nsuccess_rate = 99.5"),
            CFG,
        )
        .line("success_rate")
        .says(&["slo.success_rate", "between 0 and 1", "0.995"]),
        case(
            "SLO duration as a number",
            Append(CFG, "[slo]\npurchase_completion = 30"),
            CFG,
        )
        .line("purchase_completion")
        .says(&["slo.purchase_completion", "duration string"]),
        case(
            "[history] enabled is a string",
            Append(CFG, "[history]\nenabled = \"yes\""),
            CFG,
        )
        .line("enabled = ")
        .says(&["history.enabled", "expected a boolean"]),
        case(
            "[history] retention not a duration",
            Append(CFG, "[history]\nretention = \"forever\""),
            CFG,
        )
        .line("forever")
        .says(&["history.retention", "invalid duration", "write e.g."]),
        case(
            "[history] retention zero",
            Append(CFG, "[history]\nretention = \"0s\""),
            CFG,
        )
        .line("retention")
        .says(&["history.retention", "above zero"]),
        case(
            "unknown key in [history]",
            Append(CFG, "[history]\nfile = \"h.sqlite\""),
            CFG,
        )
        .line("file = \"h.sqlite\"")
        .says(&["unknown field `file`", "`path`"]),
        case(
            "unknown key in [alerts]",
            Append(CFG, "[alerts]\npurchase_below = 0.9"),
            CFG,
        )
        .line("purchase_below")
        .says(&["unknown field `purchase_below`", "purchase_critical_below"]),
        case(
            "[alerts] ratio as a percentage",
            Append(CFG, "[alerts]\npurchase_critical_below = 95"),
            CFG,
        )
        .line("purchase_critical_below")
        .says(&["alerts.purchase_critical_below", "between 0 and 1"]),
        case(
            "[alerts] threshold is a string",
            Append(CFG, "[alerts]\ncache_warning_below = \"80%\""),
            CFG,
        )
        .line("cache_warning_below")
        .says(&["alerts.cache_warning_below", "invalid type: string"]),
        case(
            "[alerts] window not a duration",
            Append(CFG, "[alerts]\nverify_critical_window = \"soon\""),
            CFG,
        )
        .line("soon")
        .says(&["alerts.verify_critical_window", "invalid duration"]),
        case(
            "[alerts] window zero",
            Append(CFG, "[alerts]\ncache_warning_window = \"0s\""),
            CFG,
        )
        .line("cache_warning_window")
        .says(&["alerts.cache_warning_window", "above zero"]),
        case(
            "unknown key in [alerting]",
            Append(CFG, "[alerting]\npage_everyone = true"),
            CFG,
        )
        .line("page_everyone")
        .says(&["unknown field `page_everyone`"]),
        case(
            "admin token written inline (never echoed)",
            Replace(
                CFG,
                "admin_token = { file = \"admin-token\" }",
                "admin_token = \"sandbox-admin-hunter2hunter2\"",
            ),
            CFG,
        )
        .line("admin_token")
        .says(&[
            "backend.admin_token",
            "{ env = \"NAME\" } or { file = \"path\" }",
        ])
        .hides(&["hunter2"]),
        case(
            "inline value without insecure_inline",
            Replace(
                CFG,
                "admin_token = { file = \"admin-token\" }",
                "admin_token = { value = \"sandbox-admin-hunter2hunter2\" }",
            ),
            CFG,
        )
        .line("admin_token")
        .says(&["backend.admin_token", "insecure_inline = true"])
        .hides(&["hunter2"]),
        case(
            "inline value of the wrong type (never echoed)",
            Replace(
                CFG,
                "admin_token = { file = \"admin-token\" }",
                "admin_token = { value = 86753090, insecure_inline = true }",
            ),
            CFG,
        )
        .line("admin_token")
        .says(&["backend.admin_token.value", "must be a string"])
        .hides(&["86753090"]),
        case(
            "PagerDuty routing key written inline (never echoed)",
            Append(
                CFG,
                "[alerting.pagerduty]\nrouting_key = \"R0UTING-hunter2\"",
            ),
            CFG,
        )
        .line("routing_key")
        .says(&["alerting.pagerduty.routing_key", "{ env = \"NAME\" }"])
        .hides(&["hunter2"]),
        case(
            "a secret with both env and file",
            Replace(
                CFG,
                "admin_token = { file = \"admin-token\" }",
                "admin_token = { file = \"admin-token\", env = \"IAP_ADMIN_TOKEN\" }",
            ),
            CFG,
        )
        .line("admin_token")
        .says(&["backend.admin_token", "exactly one of `env` or `file`"]),
        case(
            "a secret in an unset environment variable",
            Replace(
                CFG,
                "admin_token = { file = \"admin-token\" }",
                "admin_token = { env = \"IAP_PROBE_BAD_INPUTS_UNSET\" }",
            ),
            CFG,
        )
        // Read when credentials load, after parsing: named by key, not by line.
        .no_file()
        .says(&[
            "backend.admin_token",
            "IAP_PROBE_BAD_INPUTS_UNSET",
            "export it",
        ]),
        case(
            "unknown fixture group",
            Append(CFG, "[fixtures.windows]\nsku = \"x\""),
            CFG,
        )
        .line("sku = ")
        .says(&["fixtures.windows", "[fixtures.ios]"]),
        case(
            "fixture of the wrong type",
            Replace(
                CFG,
                "product_id = \"coins_100\"",
                "product_id = [\"coins_100\"]",
            ),
            CFG,
        )
        .line("[\"coins_100\"]")
        .says(&["fixtures.android.product_id", "a string or an integer"]),
        case(
            "missing trust anchor file",
            Replace(
                CFG,
                "root_ca = [\"sandbox-root-ca.pem\"]",
                "root_ca = [\"nope.pem\"]",
            ),
            "nope.pem",
        )
        .says(&["trust anchor"]),
        case(
            "trust anchor is not a certificate",
            Write("sandbox-root-ca.pem", "garbage\n"),
            "sandbox-root-ca.pem",
        )
        .says(&["trust anchor", "no CERTIFICATE"]),
        case(
            "probes_dir does not exist",
            Replace(
                CFG,
                "probes_dir = \"probes\"",
                "probes_dir = \"no-such-probes\"",
            ),
            "no-such-probes",
        )
        .says(&["cannot read probe directory"]),
        case(
            "probe.toml is not text",
            With(|f| f.write(CFG, [0xff, 0xfe, 0x00, 0x81, 0x9c, 0x01])),
            CFG,
        )
        .says(&["cannot read config", "UTF-8"]),
        case(
            "no [apple] while probes use it",
            With(|f| f.drop_table("apple")),
            "probes/ios-purchase.toml",
        )
        .says(&["uses {{apple}}", "no [apple] section"])
        .lines(3),
    ]
}

/// Runs `probe ARGS` and checks the common promises; returns stderr or the problems.
fn refused(f: &Folder, c: &Case, args: &[&str], problems: &mut Vec<String>) -> String {
    let run = probe_sync(args);
    let what = format!("[{}] probe {}", c.name, args[0]);
    let err = run.stderr.clone();
    if run.code != 2 {
        problems.push(format!("{what}: exit {}, want 2\nstderr:\n{err}", run.code));
    }
    if !run.stdout.is_empty() {
        problems.push(format!("{what}: stdout not empty:\n{}", run.stdout));
    }
    if err.contains("panicked") || err.contains("internal error") || err.contains("RUST_BACKTRACE")
    {
        problems.push(format!("{what}: a panic:\n{err}"));
    }
    let lines: Vec<&str> = err.lines().filter(|l| !l.contains(" WARN ")).collect();
    if lines.len() != c.lines || !lines[0].starts_with("error: ") {
        problems.push(format!(
            "{what}: want {} error line(s), got:\n{err}",
            c.lines
        ));
    }
    if let Some(why) = f.probed() {
        problems.push(format!("{what}: something was probed ({why})"));
    }
    err
}

fn check_case(c: &Case, problems: &mut Vec<String>) {
    let f = folder();
    match &c.edit {
        Edit::Replace(file, from, to) => f.replace(file, from, to),
        Edit::Append(file, text) => f.append(file, text),
        Edit::Write(file, text) => f.write(file, text),
        Edit::With(edit) => edit(&f),
    }
    let cfg = f.path(CFG).display().to_string();
    let check = refused(&f, c, &["check", "--config", &cfg], problems);
    let run = refused(
        &f,
        c,
        &["run", "--config", &cfg, "--format", "json"],
        problems,
    );
    if check != run {
        problems.push(format!(
            "[{}] run and check disagree:\ncheck: {check}\nrun: {run}",
            c.name
        ));
    }
    let mut want: Vec<String> = c.says.iter().map(|s| s.to_string()).collect();
    if let Some(file) = c.file {
        want.push(f.path(file).display().to_string());
        if let Some(needle) = c.line_of {
            want.push(format!("line {}", f.line_of(file, needle)));
        }
    }
    for w in want {
        if !check.contains(&w) {
            problems.push(format!("[{}] {w:?} not in stderr:\n{check}", c.name));
        }
    }
    for h in c.hidden {
        if check.contains(h) || run.contains(h) {
            problems.push(format!(
                "[{}] stderr shows what it must not ({h:?})",
                c.name
            ));
        }
    }
    // Whatever the mistake, the real credentials never appear either.
    let g = generated();
    let secrets = [
        g.creds.admin_token.expose().to_string(),
        pem_body(&g.creds.probe_key.pkcs8_pem),
        pem_body(&g.creds.google_private_pem)[..64].to_string(),
    ];
    for s in secrets {
        if check.contains(&s) || run.contains(&s) {
            problems.push(format!("[{}] a credential leaked into stderr", c.name));
        }
    }
}

fn run_all(cases: &[Case]) {
    let mut problems = Vec::new();
    for c in cases {
        check_case(c, &mut problems);
    }
    assert!(
        problems.is_empty(),
        "{} problem(s):\n\n{}",
        problems.len(),
        problems.join("\n\n")
    );
}

#[test]
fn bad_keys_and_service_accounts_exit_2_with_a_clear_message() {
    run_all(&key_cases());
}

#[test]
fn bad_configs_exit_2_with_file_line_key_and_advice() {
    run_all(&config_cases());
}

#[test]
fn the_corpus_is_large_enough() {
    let here = key_cases().len() + config_cases().len();
    let probe_files =
        std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/probes_bad"))
            .unwrap()
            .count();
    assert!(here >= 60, "{here} cases here");
    assert!(here + probe_files >= 100, "{here} + {probe_files}");
}

/// A readable secret file is a warning (ConfigMaps mount 0644), not a refusal.
#[cfg(unix)]
#[test]
fn a_world_readable_secret_file_warns_and_still_loads() {
    use std::os::unix::fs::PermissionsExt;
    let f = folder();
    for rel in ["admin-token", P8, SA] {
        std::fs::set_permissions(f.path(rel), std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    let run = probe_sync(&["check", "--config", &f.path(CFG).display().to_string()]);
    run.expect_code(0);
    let warnings: Vec<&str> = run
        .stderr
        .lines()
        .filter(|l| l.contains("readable by other users") && l.contains("chmod 600"))
        .collect();
    for rel in ["admin-token", P8, SA] {
        let path = f.path(rel).display().to_string();
        assert!(
            warnings.iter().any(|l| l.contains(&path)),
            "no warning for {path}:\n{}",
            run.stderr
        );
    }
    assert!(f.probed().is_none());
}
