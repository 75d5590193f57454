//! The notification pipeline probe: Apple's TEST notification must reach the backend.
//! Each documented way delivery fails is made by the sandbox and named in the report.

#[path = "fixtures/prober/support.rs"]
mod support;

use serde_json::{Value, json};
use support::*;

/// The failing run's report.
async fn failing_report(sb: &Sb) -> Value {
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
    run.json()
}

async fn delivery_failure(sb: &Sb) -> Value {
    probe_of(&failing_report(sb).await, "ios-notifications").clone()
}

/// A failed send attempt is the backend's notification endpoint at fault, not Apple.
fn assert_backend_delivery_incident(report: &Value, result: &str) {
    let i = &report["incident"];
    assert_eq!(
        i["type"], "Notification Delivery Failure",
        "{result}: {i:#}"
    );
    assert_eq!(i["severity"], "P1", "{result}: {i:#}");
    let checks: Vec<&str> = i["checks"]
        .as_array()
        .unwrap_or_else(|| panic!("checks[]: {i:#}"))
        .iter()
        .map(str_of)
        .collect();
    assert!(
        checks[0].contains("/iap/notifications/apple") && checks[0].contains("reachable"),
        "{checks:?}"
    );
    assert!(
        checks.iter().any(|c| c.contains("TLS certificate")),
        "{checks:?}"
    );
    assert!(checks.iter().any(|c| c.contains("2xx")), "{checks:?}");
    assert!(str_of(&i["summary"]).contains(result), "{i:#}");
    let p = probe_of(report, "ios-notifications");
    assert_eq!(
        step_of(p, "delivery")["failures"][0]["kind"],
        "rejected",
        "{p:#}"
    );
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
        let report = failing_report(&sb).await;
        assert_backend_delivery_incident(&report, result);
        let p = probe_of(&report, "ios-notifications");
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
    let report = failing_report(&sb).await;
    assert_backend_delivery_incident(&report, "TIMED_OUT");
    let p = probe_of(&report, "ios-notifications");
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_payload_of_the_wrong_type_fails_with_the_field_named() {
    let sb = Sb::start().await;
    let dir = sb.path("probes-wrong-type");
    std::fs::create_dir_all(&dir).unwrap();
    let shipped = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("probes/ios-notifications.toml"),
    )
    .unwrap();
    let edited = shipped.replace(
        r#""$.notificationType" = "TEST""#,
        r#""$.notificationType" = "CONSUMPTION_REQUEST""#,
    );
    assert_ne!(
        shipped, edited,
        "the shipped probe expects notificationType TEST"
    );
    std::fs::write(dir.join("ios-notifications.toml"), edited).unwrap();
    sb.use_probes_dir(&dir);
    let p = delivery_failure(&sb).await;
    let delivery = step_of(&p, "delivery");
    assert_eq!(delivery["failures"][0]["kind"], "signature", "{delivery}");
    let reason = str_of(&delivery["reason"]);
    assert!(
        reason.contains("signed payload is not as expected")
            && reason.contains("$.notificationType")
            && reason.contains("TEST")
            && reason.contains("CONSUMPTION_REQUEST"),
        "{reason}"
    );
    assert_eq!(step_of(&p, "backend-received")["attempts"], 0, "{p:#}");
}
