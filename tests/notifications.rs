//! The notification pipeline probe: Apple's TEST notification must reach the backend.
//! Each documented way delivery fails is made by the sandbox and named in the report.

#[path = "fixtures/prober/support.rs"]
mod support;

use serde_json::{Value, json};
use support::*;

async fn delivery_failure(sb: &Sb) -> Value {
    let cfg = sb.config_str();
    let run = probe(&[
        "run",
        "--config",
        &cfg,
        "--probe",
        "ios-notifications",
        "--format",
        "json",
    ])
    .await;
    run.expect_code(1);
    let report = run.json();
    probe_of(&report, "ios-notifications").clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_delivery_failure_is_named() {
    let sb = Sb::start().await;
    let https = sb.sb.base_url.replace("http://", "https://");
    let cases = [
        (
            json!({"notification_url": "http://127.0.0.1:1/iap/notifications/apple"}),
            "NO_RESPONSE",
        ),
        (
            json!({"notification_url": format!("{https}/iap/notifications/apple")}),
            "TLS_ISSUE",
        ),
        (
            json!({"route": [{"path": "/iap/notifications/apple", "status": 500}]}),
            "UNSUCCESSFUL_HTTP_RESPONSE_CODE",
        ),
        // The backend refuses a notification whose signature does not verify.
        (
            json!({"jws": "bad-signature"}),
            "UNSUCCESSFUL_HTTP_RESPONSE_CODE",
        ),
    ];
    for (fault, result) in cases {
        sb.set_faults(fault.clone()).await;
        let p = delivery_failure(&sb).await;
        let reason = p["reason"].as_str().unwrap_or_default();
        assert!(reason.starts_with("delivery:"), "{fault}: {reason}");
        assert!(reason.contains(result), "{fault}: {reason}");
        let hint = p["hint"].as_str().unwrap_or_default();
        assert!(
            hint.contains("Notifications are not reaching the backend"),
            "{hint}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_that_hangs_times_the_delivery_out() {
    let sb = Sb::start_with(faults(
        json!({"route": [{"path": "/iap/notifications/apple", "hang": true}]}),
    ))
    .await;
    let p = delivery_failure(&sb).await;
    let reason = p["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("TIMED_OUT"), "{reason}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delivered_notification_is_verified_and_found_in_the_backend() {
    let sb = Sb::start().await;
    let cfg = sb.config_str();
    let run = probe(&[
        "run",
        "--config",
        &cfg,
        "--probe",
        "ios-notifications",
        "--format",
        "json",
    ])
    .await;
    run.expect_code(0);
    let report = run.json();
    let p = probe_of(&report, "ios-notifications");
    for step in [
        "app-store-jwt",
        "request-test",
        "delivery",
        "backend-received",
    ] {
        assert_eq!(step_of(p, step)["verdict"], "pass", "{step}: {p}");
    }
    // Expired signing certificate: the probe's own verification names it.
    sb.set_faults(json!({"jws": "expired", "route": [{"path": "/iap/notifications/apple", "status": 200, "body": "{}", "content_type": "application/json"}]})).await;
    let p = delivery_failure(&sb).await;
    let delivery = step_of(&p, "delivery");
    assert_eq!(delivery["failures"][0]["kind"], "signature", "{delivery}");
    assert!(
        delivery["reason"]
            .as_str()
            .unwrap()
            .contains("not valid at signedDate"),
        "{delivery}"
    );
}
