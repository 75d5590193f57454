//! `probe sandbox` as a process: it prints where it listens, writes the state folder the
//! issue documents (sandbox.json and every file it names), serves, and stops cleanly on
//! SIGTERM. A bad `--faults` file is refused at start with exit 2, naming the file.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

/// Key generation (RSA 2048 among others) is slow on a loaded machine: generous.
const START_LIMIT: Duration = Duration::from_secs(90);

/// A `probe sandbox` child, SIGKILLed on drop if a test ends early.
struct SandboxProc {
    child: Child,
    lines: mpsc::Receiver<String>,
    log: PathBuf,
}

impl Drop for SandboxProc {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

impl SandboxProc {
    fn spawn(args: &[&str], log: &Path) -> SandboxProc {
        let mut child = Command::new(env!("CARGO_BIN_EXE_probe"))
            .arg("sandbox")
            .args(args)
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(log).unwrap())
            .spawn()
            .expect("the probe binary starts");
        // Stdout is read on a thread so the test can wait for a line with a bound.
        let out = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        SandboxProc {
            child,
            lines,
            log: log.to_path_buf(),
        }
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Stdout lines up to and including the first one starting with `last`.
    fn read_until(&self, last: &str, limit: Duration) -> Vec<String> {
        let deadline = Instant::now() + limit;
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    let done = line.starts_with(last);
                    seen.push(line);
                    if done {
                        return seen;
                    }
                }
                Err(e) => panic!(
                    "no {last:?} line on stdout ({e:?}) after {limit:?}\nstdout:\n{}\nstderr:\n{}",
                    seen.join("\n"),
                    self.stderr()
                ),
            }
        }
    }

    /// SIGTERM, as systemd, Docker and Kubernetes stop it.
    fn terminate(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success());
    }

    /// Waits (bounded) for the process to exit.
    fn exit_within(&mut self, limit: Duration) -> ExitStatus {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                start.elapsed() < limit,
                "the sandbox did not exit within {limit:?}\nstderr:\n{}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// The string at `pointer`, which must be present and non-empty.
fn field<'a>(v: &'a Value, pointer: &str) -> &'a str {
    let s = v
        .pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("sandbox.json has no string {pointer}: {v:#}"));
    assert!(!s.is_empty(), "sandbox.json {pointer} is empty");
    s
}

#[tokio::test]
async fn sandbox_command_serves_writes_its_manifest_and_stops_on_sigterm() {
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("state");
    let log = tmp.path().join("sandbox.log");
    let mut sb = SandboxProc::spawn(
        &[
            "--listen",
            "127.0.0.1:0",
            "--state-dir",
            state.to_str().unwrap(),
        ],
        &log,
    );
    let out = sb.read_until("Ctrl-C to stop.", START_LIMIT);
    let addr = out
        .iter()
        .find_map(|l| l.strip_prefix("sandbox listening on "))
        .unwrap_or_else(|| panic!("no listen address printed: {out:?}"))
        .trim()
        .to_string();
    let port: u16 = addr
        .strip_prefix("127.0.0.1:")
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("listen address {addr:?} is not 127.0.0.1:PORT"));
    assert_ne!(port, 0, "the real port is printed, not :0");
    let base = format!("http://{addr}");
    for part in ["/inApps/", "/token", "/androidpublisher/v3/", "/iap/"] {
        assert!(
            out.iter().any(|l| l.contains(&format!("{base}{part}"))),
            "{part} address not printed: {out:?}"
        );
    }

    let m: Value =
        serde_json::from_slice(&std::fs::read(state.join("sandbox.json")).unwrap()).unwrap();
    for p in ["/apple/base_url", "/google/base_url", "/backend/base_url"] {
        assert_eq!(field(&m, p), base, "{p}");
    }
    let key_id = field(&m, "/apple/key_id");
    field(&m, "/apple/issuer_id");
    assert_eq!(field(&m, "/apple/bundle_id"), "com.example.iapprobe");
    assert_eq!(field(&m, "/google/token_uri"), format!("{base}/token"));
    assert_eq!(field(&m, "/google/package_name"), "com.example.iapprobe");
    let ios = m["fixtures"]["ios"].as_array().expect("fixtures.ios");
    assert!(!ios.is_empty(), "no iOS fixtures");
    for (i, f) in ios.iter().enumerate() {
        field(f, "/transaction_id");
        field(f, "/product_id");
        assert!(
            f["transaction_id"]
                .as_str()
                .unwrap()
                .bytes()
                .all(|b| b.is_ascii_digit()),
            "ios[{i}] transaction id is not numeric as Apple's are: {f}"
        );
    }
    let android = m["fixtures"]["android"]
        .as_array()
        .expect("fixtures.android");
    assert!(!android.is_empty(), "no Android fixtures");
    for f in android {
        field(f, "/purchase_token");
        field(f, "/product_id");
        let kind = field(f, "/kind");
        assert!(["product", "subscription"].contains(&kind), "kind {kind}");
    }

    // Every file the issue lists, where the manifest says, with the right content.
    let p8 = std::fs::read_to_string(state.join(format!("AuthKey_{key_id}.p8"))).unwrap();
    assert!(p8.starts_with("-----BEGIN PRIVATE KEY-----"), "PKCS#8 PEM");
    let sa: Value =
        serde_json::from_slice(&std::fs::read(state.join("service-account.json")).unwrap())
            .unwrap();
    assert_eq!(sa["type"], "service_account");
    assert_eq!(sa["token_uri"], m["google"]["token_uri"]);
    let root = std::fs::read_to_string(state.join("sandbox-root-ca.pem")).unwrap();
    assert!(root.starts_with("-----BEGIN CERTIFICATE-----"));
    let admin_file = PathBuf::from(field(&m, "/backend/admin_token_file"));
    assert_eq!(admin_file, state.join("admin-token"));
    let admin = std::fs::read_to_string(&admin_file).unwrap();
    assert!(!admin.trim().is_empty(), "admin token is written");
    let toml = std::fs::read_to_string(state.join("probe.toml")).unwrap();
    assert!(toml.contains(&base), "probe.toml points at the sandbox");

    let http = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    let health = http
        .get(format!("{}/iap/health", field(&m, "/backend/base_url")))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    let body: Value = health.json().await.unwrap();
    assert_eq!(body["status"], "ok", "{body}");
    // The admin token from the file opens the admin endpoints.
    let faults = http
        .get(format!("{base}/sandbox/faults"))
        .bearer_auth(admin.trim())
        .send()
        .await
        .unwrap();
    assert_eq!(faults.status(), 200);

    sb.terminate();
    let status = sb.exit_within(Duration::from_secs(15));
    assert_eq!(status.code(), Some(0), "{status}\nstderr:\n{}", sb.stderr());
    assert!(sb.stderr().contains("sandbox stopped"), "{}", sb.stderr());
    // Stopped means stopped: the port no longer answers.
    assert!(
        http.get(format!("{base}/iap/health")).send().await.is_err(),
        "still answering after exit"
    );
}

#[test]
fn a_bad_faults_file_is_refused_with_exit_2_naming_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let invalid = tmp.path().join("faults-invalid.toml");
    std::fs::write(
        &invalid,
        "[[route]]\npath = \"/iap/verify\"\nerror_rate = 2.0\n",
    )
    .unwrap();
    let unparsable = tmp.path().join("faults-unparsable.toml");
    std::fs::write(&unparsable, "[[route]\npath = ").unwrap();
    let missing = tmp.path().join("no-such-faults.toml");
    for (i, (what, file)) in [
        ("a value out of range", &invalid),
        ("not TOML", &unparsable),
        ("missing", &missing),
    ]
    .into_iter()
    .enumerate()
    {
        let state = tmp.path().join(format!("state-{i}"));
        let out = Command::new(env!("CARGO_BIN_EXE_probe"))
            .args(["sandbox", "--listen", "127.0.0.1:0", "--state-dir"])
            .arg(&state)
            .arg("--faults")
            .arg(file)
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .output()
            .expect("the probe binary runs");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{what}: {}\n{stderr}",
            out.status
        );
        assert!(
            stderr.contains(&file.display().to_string()),
            "{what}: stderr does not name {}: {stderr}",
            file.display()
        );
        assert!(
            out.stdout.is_empty(),
            "{what}: nothing on stdout: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        assert!(
            !state.join("sandbox.json").exists(),
            "{what}: refused before writing a manifest"
        );
    }
}
