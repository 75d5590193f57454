//! `verify_jws` at probe level: the sandbox hands out bad signed data (expired leaf,
//! untrusted root, bad signature, not a JWS at all) and the shipped probes' verifying
//! steps fail with kind `signature` and the specific reason.

#[path = "fixtures/prober/support.rs"]
mod support;

use serde_json::{Value, json};
use support::*;

/// Each fault and the reason it must produce.
const JWS_FAULTS: [(&str, &str); 3] = [
    ("expired", "leaf certificate is not valid at signedDate"),
    (
        "untrusted",
        "chain does not lead to a trusted root (unknown root)",
    ),
    (
        "bad-signature",
        "bad signature: the payload was not signed by the leaf key",
    ),
];

async fn failing_step(sb: &Sb, probe_name: &str, step: &str) -> Value {
    let cfg = sb.config_str();
    let run = probe(&[
        "run", "--config", &cfg, "--probe", probe_name, "--format", "json",
    ])
    .await;
    run.expect_code(1);
    let report = run.json();
    step_of(probe_of(&report, probe_name), step).clone()
}

fn assert_signature_failure(step: &Value, var: &str, reason: &str, case: &str) {
    assert_eq!(step["verdict"], "fail", "{case}: {step:#}");
    assert_eq!(step["failures"][0]["kind"], "signature", "{case}: {step:#}");
    let got = str_of(&step["reason"]);
    assert!(
        got.contains(&format!("{var}: {reason}")),
        "{case}: want {reason:?} in {got:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_purchase_probe_names_each_signed_data_defect() {
    let sb = Sb::start().await;
    for (fault, reason) in JWS_FAULTS {
        sb.set_faults(json!({"jws": fault})).await;
        let step = failing_step(&sb, "ios-purchase", "apple-transaction").await;
        assert_signature_failure(&step, "signed", reason, fault);
    }
    // An HTML error page where the signed data should be.
    sb.set_faults(json!({"route": [{
        "path": "/inApps/v1/transactions/*", "status": 200, "content_type": "application/json",
        "body": "{\"signedTransactionInfo\": \"<html><body>Service Unavailable</body></html>\"}",
    }]}))
    .await;
    let step = failing_step(&sb, "ios-purchase", "apple-transaction").await;
    assert_signature_failure(&step, "signed", "not a JWS", "html");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_notification_probe_names_each_signed_data_defect() {
    let sb = Sb::start().await;
    for (fault, reason) in JWS_FAULTS {
        // The backend accepts whatever arrives, so only the probe's own check stands
        // between a bad signedPayload and a green run.
        sb.set_faults(json!({"jws": fault, "route": [{
            "path": "/iap/notifications/apple", "status": 200, "body": "{}",
            "content_type": "application/json",
        }]}))
        .await;
        let step = failing_step(&sb, "ios-notifications", "delivery").await;
        assert_signature_failure(&step, "payload", reason, fault);
    }
}
