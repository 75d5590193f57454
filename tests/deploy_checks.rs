//! `deploy/` is checked like code: runs `.ci/deploy-checks.sh` (promtool check + test
//! rules, the Kubernetes manifests rendered offline and validated against the Kubernetes
//! schemas, every probe.toml in the ConfigMaps parsed by this build's `probe`, hadolint,
//! the example workflow's schema). Needs python3 with venv and promtool, as `.ci/run`
//! installs them; the validators come from PyPI into a venv under target/.

use std::path::Path;
use std::process::Command;

#[test]
fn deploy_manifests_rules_and_dockerfile_pass_their_checks() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = Command::new("bash")
        .arg(root.join(".ci/deploy-checks.sh"))
        .env("PROBE_BIN", env!("CARGO_BIN_EXE_probe"))
        .current_dir(root)
        .output()
        .expect("bash runs .ci/deploy-checks.sh");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        ".ci/deploy-checks.sh failed ({})\nstdout:\n{stdout}\nstderr:\n{stderr}",
        out.status
    );
    for expected in [
        "SUCCESS: 14 rules found",
        "Unit Testing:  deploy/prometheus/rules.test.yaml\n  SUCCESS",
        "rendered objects valid against Kubernetes",
        "ok   deploy/kubernetes/overlays/eu-west-1",
        "ok   Dockerfile",
        "deploy-checks: all passed",
    ] {
        assert!(
            stdout.contains(expected),
            "missing {expected:?} in:\n{stdout}\n{stderr}"
        );
    }
}
