//! The sandbox must be faithful: Apple's official `app-store-server-library` and Google's
//! `google-auth` (Python, from PyPI) run against it in `.ci/compat.sh`. This test runs that
//! script with the binary cargo just built, so `cargo test` covers it.

use std::process::Command;

#[test]
fn official_client_libraries_accept_the_sandbox() {
    let root = env!("CARGO_MANIFEST_DIR");
    let out = Command::new("bash")
        .arg(format!("{root}/.ci/compat.sh"))
        .env("PROBE_BIN", env!("CARGO_BIN_EXE_probe"))
        .current_dir(root)
        .output()
        .expect("bash runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "official libraries rejected the sandbox (needs python3 and PyPI):\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains(" 0 failed"), "{stdout}");
}
