//! A credential that dies mid-run: a Google token revoked by the sandbox, an Apple key
//! rotated away. One refresh and retry; then, if still refused, a credential failure.

#[path = "fixtures/prober/support.rs"]
mod support;

use std::time::{Duration, Instant};

use iap_probe::app::{self, Selection};
use iap_probe::probe::{Auth, Platform, Vars};
use iap_probe::runner::{Engine, step};
use iap_probe::slo::FailureKind;
use serde_json::json;
use support::*;

async fn engine_for(sb: &Sb, probe: &str) -> std::sync::Arc<Engine> {
    let (config, probes) = app::load(&sb.config()).unwrap();
    let probes = app::select(
        probes,
        &Selection {
            platform: None,
            probes: vec![probe.to_string()],
        },
    )
    .unwrap();
    Engine::new(config, probes).await.unwrap()
}

fn vars(engine: &Engine, platform: Platform) -> Vars {
    let c = &engine.config;
    let mut v = Vars::new();
    v.set("backend", c.backend_url.clone());
    v.set("user", "refresh-test-user");
    if let Some(a) = &c.apple {
        v.set("apple", a.base_url.clone());
        v.set("bundle_id", a.bundle_id.clone());
    }
    if let Some(g) = &c.google {
        v.set("google", g.base_url.clone());
        v.set("package_name", g.package_name.clone());
    }
    for (k, val) in c.fixture_vars(platform) {
        v.set(format!("fixture.{k}"), val);
    }
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_google_token_is_refreshed_once_and_the_step_passes() {
    let sb = Sb::start().await;
    let engine = engine_for(&sb, "android-purchase").await;
    let deadline = Instant::now() + Duration::from_secs(30);
    let cred = step::credential(&engine, Auth::GooglePlay, deadline).await;
    assert!(cred.ok(), "{:?}", cred.failure);
    // The sandbox revokes every token it issued: the cached one is now dead.
    let resp = reqwest::Client::builder()
        .no_proxy()
        .build()
        .unwrap()
        .post(format!("{}/sandbox/google/revoke", sb.sb.base_url))
        .bearer_auth(sb.admin_token())
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success());
    let probe = &engine.probes[0];
    let play = probe
        .steps
        .iter()
        .find(|s| s.name == "play-purchase")
        .unwrap();
    let mut v = vars(&engine, Platform::Android);
    let r = step::run(&engine, play, &mut v, deadline).await;
    assert!(r.ok(), "{:?}", r.failure);
    assert_eq!(r.retries, 1, "exactly one refresh and retry");
    assert_eq!(r.status, Some(200));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_apple_key_is_a_credential_failure_after_one_retry() {
    let sb = Sb::start().await;
    let kid = str_of(&sb.sb.manifest.apple["key_id"]).to_string();
    let engine = engine_for(&sb, "ios-purchase").await;
    let deadline = Instant::now() + Duration::from_secs(30);
    sb.set_faults(json!({"revoked_apple_keys": [kid]})).await;
    let probe = &engine.probes[0];
    let lookup = probe
        .steps
        .iter()
        .find(|s| s.name == "apple-transaction")
        .unwrap();
    let mut v = vars(&engine, Platform::Ios);
    let r = step::run(&engine, lookup, &mut v, deadline).await;
    assert_eq!(r.retries, 1, "one refresh and retry, no loop");
    let (kind, reason) = r.failure.expect("refused");
    assert_eq!(kind, FailureKind::Credential);
    assert!(
        reason.contains("401") && reason.contains("after a refresh"),
        "{reason}"
    );
}
