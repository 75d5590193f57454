//! Fault injection over real HTTP: each kind of fault does what the runbook's symptom
//! looks like, and the fault API itself is guarded and validated.

mod common;

use std::time::{Duration, Instant};

use common::*;
use iap_probe::jws::{self, JwsError};
use reqwest::StatusCode;
use serde_json::{Value, json};

#[tokio::test]
async fn fixed_latency_delays_the_matching_route() {
    let sb = start_with(faults(json!({
        "route": [{"path": "/iap/health", "latency": "400ms"}]
    })))
    .await;
    let t = Instant::now();
    let resp = sb.http.get(sb.url("/iap/health")).send().await.unwrap();
    let took = t.elapsed();
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(took >= Duration::from_millis(400), "took {took:?}");

    // Set at run time, on a wildcard path, for one method only.
    sb.set_faults(json!({
        "route": [{"path": "/inApps/v1/transactions/*", "method": "GET", "latency": "300ms"}]
    }))
    .await;
    let (tx, _) = sb.ios("premium");
    let t = Instant::now();
    let resp = sb.apple_get(&format!("/inApps/v1/transactions/{tx}")).await;
    let took = t.elapsed();
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(took >= Duration::from_millis(300), "took {took:?}");
}

#[tokio::test]
async fn error_rate_one_fails_every_request_like_the_real_service() {
    let sb = start_with(faults(json!({"route": [
        {"path": "/iap/health", "error_rate": 1.0, "status": 500},
        {"path": "/inApps/v1/transactions/*", "error_rate": 1.0, "status": 500},
        {"path": "/androidpublisher/v3", "error_rate": 1.0, "status": 403},
        {"path": "/iap/cache/stats", "error_rate": 0.0, "status": 500},
    ]})))
    .await;
    let (tx, _) = sb.ios("premium");
    let (ptoken, product) = sb.android("product");
    let gtoken = sb.google_token().await;
    for _ in 0..10 {
        let resp = sb.http.get(sb.url("/iap/health")).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let v: Value = resp.json().await.unwrap();
        assert!(v["error"].as_str().unwrap().contains("500"), "{v}");

        let resp = sb.apple_get(&format!("/inApps/v1/transactions/{tx}")).await;
        assert_eq!(resp.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let v: Value = resp.json().await.unwrap();
        assert_eq!(v["errorCode"], 5000000, "Apple's error shape: {v}");

        let resp = sb
            .http
            .get(sb.product_url(&product, &ptoken))
            .bearer_auth(&gtoken)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::FORBIDDEN);
        let v: Value = resp.json().await.unwrap();
        assert_eq!(
            v["error"]["status"], "PERMISSION_DENIED",
            "Google's envelope: {v}"
        );

        let resp = sb
            .http
            .get(sb.url("/iap/cache/stats"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK, "error_rate 0 never fails");
    }
    // The backend's verification sees Apple's failure and says so.
    let (status, v) = sb.verify_ios("u", "premium").await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{v}");
    assert_eq!(v["valid"], false);
    assert!(v["error"].as_str().unwrap().contains("HTTP 500"), "{v}");
}

#[tokio::test]
async fn rate_limit_carries_retry_after_in_each_services_unit() {
    let sb = start_with(faults(json!({"route": [
        {"path": "/inApps/v1/transactions/*", "status": 429, "retry_after": "30s"},
        {"path": "/iap/verify", "method": "POST", "status": 429, "retry_after": "30s"},
        {"path": "/iap/health", "status": 429, "retry_after": "1500ms"},
    ]})))
    .await;
    let (tx, _) = sb.ios("premium");
    let before = now_ms();
    let resp = sb.apple_get(&format!("/inApps/v1/transactions/{tx}")).await;
    let after = now_ms();
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    let at: i64 = resp.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .expect("Apple's Retry-After is an integer");
    // Absolute UNIX milliseconds, 30 s after the response was made.
    assert!(
        at >= before + 30_000 && at <= after + 30_000,
        "{at} vs now {after}"
    );
    assert!(at > now_ms(), "in the future");
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["errorCode"], 4290000);

    let (tx, product) = sb.ios("premium");
    let resp = sb
        .http
        .post(sb.url("/iap/verify"))
        .json(
            &json!({"platform": "ios", "userId": "u", "productId": product,
                      "transactionId": tx}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(resp.headers()["retry-after"], "30", "delta seconds");

    // Seconds round up: a client must not come back before the announced time.
    let resp = sb.http.get(sb.url("/iap/health")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(resp.headers()["retry-after"], "2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hang_never_answers_and_shutdown_releases_it() {
    let Sb { sb, dir, http } = start_with(faults(json!({"route": [
        {"path": "/iap/health", "hang": true},
        {"path": "/iap/cache/stats", "latency": "1h"},
    ]})))
    .await;
    let health = format!("{}/iap/health", sb.base_url);
    let stats = format!("{}/iap/cache/stats", sb.base_url);
    let short = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let err = short
        .get(&health)
        .send()
        .await
        .expect_err("a hung route never answers");
    assert!(err.is_timeout(), "{err}");
    // Other routes still answer.
    let resp = http
        .get(format!("{}/iap/verify", sb.base_url))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::METHOD_NOT_ALLOWED);

    // Verification leaves the backend's own pooled connections to the listener open.
    let (tx, product) = {
        let list = sb.manifest.fixtures["ios"].as_array().unwrap();
        (
            list[0]["transaction_id"].as_str().unwrap().to_string(),
            list[0]["product_id"].as_str().unwrap().to_string(),
        )
    };
    let resp = http
        .post(format!("{}/iap/verify", sb.base_url))
        .json(
            &json!({"platform": "ios", "userId": "u", "productId": product,
                      "transactionId": tx}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);

    // Requests in flight at shutdown: a hang and a one-hour latency.
    let mut hung = tokio::spawn(client().get(&health).send());
    let mut slow = tokio::spawn(client().get(&stats).send());
    for pending in [&mut hung, &mut slow] {
        assert!(
            tokio::time::timeout(Duration::from_millis(500), pending)
                .await
                .is_err(),
            "still pending after 500 ms"
        );
    }
    tokio::time::timeout(Duration::from_secs(10), sb.stop())
        .await
        .expect("stop() returns although requests were hung");
    for pending in [hung, slow] {
        let resp = tokio::time::timeout(Duration::from_secs(10), pending)
            .await
            .expect("released by the shutdown")
            .unwrap()
            .expect("answered");
        assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    }
    // Stopped means stopped: nothing answers any more.
    let err = client()
        .get(&health)
        .send()
        .await
        .expect_err("listener closed");
    assert!(err.is_connect(), "{err}");
    drop(dir);
}

#[tokio::test]
async fn outage_is_a_load_balancer_503_page() {
    let sb = start().await;
    sb.set_faults(json!({"route": [{"path": "/inApps", "outage": true}]}))
        .await;
    let (tx, _) = sb.ios("premium");
    for path in [
        format!("/inApps/v1/transactions/{tx}"),
        format!("/inApps/v2/history/{tx}"),
    ] {
        let resp = sb.apple_get(&path).await;
        assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE, "{path}");
        let ctype = resp.headers()["content-type"].to_str().unwrap().to_string();
        assert!(ctype.starts_with("text/html"), "{ctype}");
        let body = resp.text().await.unwrap();
        assert!(
            body.contains("503 Service Temporarily Unavailable"),
            "{body}"
        );
    }
    // The whole prefix is down, including paths no route serves, as behind a load balancer.
    let resp = sb.apple_get("/inApps/v9/unknown").await;
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    // Google and the backend's own endpoints are up; its iOS verification is not.
    let resp = sb.http.get(sb.url("/iap/health")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let (status, v) = sb.verify_ios("u", "premium").await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{v}");
    assert!(v["error"].as_str().unwrap().contains("HTTP 503"), "{v}");
}

#[tokio::test]
async fn entitlement_delay_holds_the_entitlement_back() {
    let delay = Duration::from_secs(3);
    let sb = start_with(faults(json!({"entitlement_delay": "3s"}))).await;
    let (_, product) = sb.ios("premium");
    let t0 = Instant::now();
    let (status, v) = sb.verify_ios("late", "premium").await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["valid"], true, "verification itself is not delayed");
    let (list, _) = sb.entitlements("late").await;
    assert!(
        list.is_empty() || t0.elapsed() >= delay,
        "absent right after verify: {list:?}"
    );
    let seen = poll(Duration::from_secs(20), || async {
        let (list, _) = sb.entitlements("late").await;
        list.contains(&product).then(Instant::now)
    })
    .await
    .expect("the entitlement appears");
    assert!(seen - t0 >= delay, "appeared after {:?}", seen - t0);

    // A manual grant is not delayed.
    let resp = sb
        .admin_post(
            "/iap/entitlements/grant",
            &json!({"userId": "late", "productId": "gift", "reason": "test"}),
        )
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(
        sb.entitlements("late")
            .await
            .0
            .contains(&"gift".to_string())
    );
}

#[tokio::test]
async fn cache_hit_degradation_drops_the_hit_ratio() {
    let sb = start().await;
    sb.entitlements("c").await;
    assert!(
        sb.entitlements("c").await.1,
        "healthy: second read is a hit"
    );
    let healthy = sb.cache_stats().await["hitRatio"].as_f64().unwrap();
    assert!(healthy >= 0.85, "healthy ratio {healthy}");

    sb.set_faults(json!({"cache_hit_degradation": 1.0})).await;
    for _ in 0..5 {
        assert!(
            !sb.entitlements("c").await.1,
            "every would-be hit is a miss"
        );
    }
    let degraded = sb.cache_stats().await["hitRatio"].as_f64().unwrap();
    assert!(degraded < 0.8, "degraded ratio {degraded}");

    sb.set_faults(json!({})).await;
    sb.entitlements("c").await;
    assert!(sb.entitlements("c").await.1, "healthy again");
}

#[tokio::test]
async fn jws_faults_fail_verification_with_the_right_reason() {
    let sb = start().await;
    let anchors = sb.anchors();
    let (tx, _) = sb.ios("premium");
    let signed = |v: Value| v["signedTransactionInfo"].as_str().unwrap().to_string();
    type Check = fn(&JwsError) -> bool;
    let cases: [(&str, Check); 3] = [
        ("expired", |e| matches!(e, JwsError::Expired("leaf", _))),
        ("untrusted", |e| matches!(e, JwsError::UnknownRoot)),
        ("bad-signature", |e| matches!(e, JwsError::BadSignature)),
    ];
    for (mode, check) in cases {
        sb.set_faults(json!({ "jws": mode })).await;
        let resp = sb.apple_get(&format!("/inApps/v1/transactions/{tx}")).await;
        assert_eq!(resp.status(), StatusCode::OK);
        let jws_text = signed(resp.json().await.unwrap());
        let err = jws::verify(&jws_text, &anchors).expect_err(mode);
        assert!(check(&err), "{mode}: wrong reason {err:?}");

        let (status, v) = sb.verify_ios(&format!("user-{mode}"), "premium").await;
        assert!(status.is_client_error(), "{mode}: {status} {v}");
        assert_eq!(v["valid"], false, "{mode}: {v}");
        assert!(
            v["error"].as_str().unwrap().contains("rejected"),
            "{mode}: {v}"
        );
        assert!(
            sb.entitlements(&format!("user-{mode}")).await.0.is_empty(),
            "{mode}: nothing granted"
        );
    }

    // A TEST notification signed wrongly is refused by the backend, and Apple records it.
    let resp = sb
        .http
        .post(sb.url("/inApps/v1/notifications/test"))
        .bearer_auth(sb.apple_token())
        .send()
        .await
        .unwrap();
    let token = resp.json::<Value>().await.unwrap()["testNotificationToken"]
        .as_str()
        .unwrap()
        .to_string();
    let result = poll(Duration::from_secs(15), || async {
        let v: Value = sb
            .apple_get(&format!("/inApps/v1/notifications/test/{token}"))
            .await
            .json()
            .await
            .ok()?;
        v["sendAttempts"][0]["sendAttemptResult"]
            .as_str()
            .map(String::from)
    })
    .await
    .expect("a send attempt is recorded");
    assert_eq!(result, "UNSUCCESSFUL_HTTP_RESPONSE_CODE");

    // Back to valid signatures.
    sb.set_faults(json!({})).await;
    let resp = sb.apple_get(&format!("/inApps/v1/transactions/{tx}")).await;
    assert!(jws::verify(&signed(resp.json().await.unwrap()), &anchors).is_ok());
    let (status, v) = sb.verify_ios("user-ok", "premium").await;
    assert_eq!(status, StatusCode::OK, "{v}");
}

#[tokio::test]
async fn revoked_apple_key_is_refused() {
    let sb = start().await;
    let (tx, _) = sb.ios("premium");
    let path = format!("/inApps/v1/transactions/{tx}");
    assert_eq!(sb.apple_get(&path).await.status(), StatusCode::OK);
    sb.set_faults(json!({"revoked_apple_keys": [sb.kid()]}))
        .await;
    let resp = sb.apple_get(&path).await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(resp.text().await.unwrap(), "Unauthenticated");
    // The backend signs with its own key, which is still good.
    let (status, v) = sb.verify_ios("u", "premium").await;
    assert_eq!(status, StatusCode::OK, "{v}");
    sb.set_faults(json!({})).await;
    assert_eq!(sb.apple_get(&path).await.status(), StatusCode::OK);
}

async fn statuses(sb: &Sb, n: usize) -> Vec<u16> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let resp = sb.http.get(sb.url("/iap/health")).send().await.unwrap();
        out.push(resp.status().as_u16());
    }
    out
}

#[tokio::test]
async fn seeded_error_rate_is_reproducible() {
    let spec = json!({"seed": 42, "route": [
        {"path": "/iap/health", "error_rate": 0.5, "status": 503}
    ]});
    let a = start_with(faults(spec.clone())).await;
    let first = statuses(&a, 40).await;
    let fails = first.iter().filter(|s| **s == 503).count();
    assert!((5..=35).contains(&fails), "about half fail: {first:?}");
    assert!(first.iter().all(|s| *s == 200 || *s == 503), "{first:?}");

    // The same seed, set again at run time, replays the same sequence...
    a.set_faults(spec.clone()).await;
    assert_eq!(statuses(&a, 40).await, first);
    // ...and so does another sandbox started with it.
    let b = start_with(faults(spec)).await;
    assert_eq!(statuses(&b, 40).await, first);
    // Another seed draws another sequence.
    a.set_faults(json!({"seed": 43, "route": [
        {"path": "/iap/health", "error_rate": 0.5, "status": 503}
    ]}))
    .await;
    assert_ne!(statuses(&a, 40).await, first);
}

#[tokio::test]
async fn fault_api_is_guarded_and_validated() {
    let sb = start().await;
    let good = json!({"route": [{"path": "/iap/health", "status": 500}]});
    sb.set_faults(good.clone()).await;

    // Without the admin token: refused, and nothing changes.
    for auth in [None, Some("Bearer nope")] {
        let mut req = sb.http.put(sb.url("/sandbox/faults")).json(&json!({}));
        if let Some(a) = auth {
            req = req.header("authorization", a);
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    }
    let resp = sb.http.get(sb.url("/sandbox/faults")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);

    for (bad, mentions) in [
        (
            json!({"route": [{"path": "/x", "error_rate": 2.0}]}),
            "error_rate",
        ),
        (json!({"route": [{"path": "/x", "status": 200}]}), "status"),
        (json!({"route": [{"path": "x"}]}), "path"),
        (json!({"route": [{"path": "/x", "latency": "fast"}]}), ""),
        (
            json!({"cache_hit_degradation": -0.5}),
            "cache_hit_degradation",
        ),
        (json!({"jws": "forged"}), "forged"),
        (json!({"bogus": true}), "bogus"),
    ] {
        let resp = sb.put_faults(&bad).await;
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "{bad}");
        let v: Value = resp.json().await.unwrap();
        let err = v["error"].as_str().unwrap();
        assert!(err.contains(mentions), "{bad}: {err}");
    }
    let resp = sb
        .http
        .put(sb.url("/sandbox/faults"))
        .bearer_auth(sb.admin())
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);

    // The good spec is still in force.
    let v: Value = sb.admin_get("/sandbox/faults").await.json().await.unwrap();
    assert_eq!(v, good);
    let resp = sb.http.get(sb.url("/iap/health")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::INTERNAL_SERVER_ERROR);
}

#[tokio::test]
async fn complete_outage_answers_every_request() {
    let sb = start_with(faults(json!({"route": [{"path": "/", "outage": true}]}))).await;
    for (method, path) in [
        ("GET", "/iap/health"),
        ("POST", "/iap/verify"),
        ("POST", "/token"),
        ("GET", "/no/such/path"),
        ("DELETE", "/iap/health"),
    ] {
        let resp = sb
            .http
            .request(method.parse().unwrap(), sb.url(path))
            .send()
            .await
            .unwrap();
        assert_eq!(
            resp.status(),
            StatusCode::SERVICE_UNAVAILABLE,
            "{method} {path}"
        );
        let ctype = resp.headers()["content-type"].to_str().unwrap().to_string();
        assert!(ctype.starts_with("text/html"), "{method} {path}: {ctype}");
    }
    // The sandbox's own control endpoints stay reachable, so the outage can be ended.
    sb.set_faults(json!({})).await;
    let resp = sb.http.get(sb.url("/iap/health")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let resp = sb.http.get(sb.url("/no/such/path")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
}

/// The latencies a sandbox seeded with `spec` adds to the first `n` requests matching its
/// single rule: the same draws the middleware makes, from the same seeded generator.
fn seeded_draws(spec: &Value, n: usize) -> Vec<Duration> {
    let spec = faults(spec.clone());
    assert_eq!(spec.routes.len(), 1, "one rule, so every draw is for it");
    let mut rng = spec.rng();
    (0..n).map(|_| spec.routes[0].decide(&mut rng).0).collect()
}

/// Client-side time of `n` sequential GET /iap/health.
async fn health_times(sb: &Sb, n: usize) -> Vec<Duration> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        let resp = sb.http.get(sb.url("/iap/health")).send().await.unwrap();
        resp.bytes().await.unwrap();
        out.push(t.elapsed());
    }
    out
}

fn mean(d: &[Duration]) -> Duration {
    d.iter().sum::<Duration>() / d.len() as u32
}

/// Checks each measured time against its seeded draw: never below it (the sandbox sleeps at
/// least that long), and not absurdly above (loose: a loaded 2-core machine is slow).
fn check_against_draws(measured: &[Duration], draws: &[Duration]) {
    let slack = Duration::from_secs(2);
    for (i, (m, d)) in measured.iter().zip(draws).enumerate() {
        assert!(
            m >= d,
            "request {i}: took {m:?}, less than its drawn latency {d:?}"
        );
        assert!(*m <= *d + slack, "request {i}: took {m:?}, drawn {d:?}");
    }
    // Tighter on average than one by one, and enough to catch a fixed worst case.
    assert!(
        mean(measured) <= mean(draws) + Duration::from_millis(250),
        "mean {:?} vs drawn mean {:?}",
        mean(measured),
        mean(draws)
    );
}

#[tokio::test]
async fn uniform_latency_falls_between_its_bounds() {
    let (min, max) = (Duration::from_millis(50), Duration::from_millis(650));
    let spec = json!({"seed": 11, "route": [
        {"path": "/iap/health", "latency": {"min": "50ms", "max": "650ms"}}
    ]});
    let draws = seeded_draws(&spec, 20);
    assert!(draws.iter().all(|d| (min..=max).contains(d)), "{draws:?}");
    // A real spread, not one value: the distribution is sampled per request.
    let (lo, hi) = (draws.iter().min().unwrap(), draws.iter().max().unwrap());
    assert!(*hi - *lo >= Duration::from_millis(300), "{draws:?}");

    let sb = start_with(faults(spec.clone())).await;
    let measured = health_times(&sb, 20).await;
    assert!(measured.iter().all(|m| *m >= min), "{measured:?}");
    check_against_draws(&measured, &draws);

    // Set at run time, the same seed replays the same draws.
    sb.set_faults(spec).await;
    check_against_draws(&health_times(&sb, 20).await, &draws);
}

#[tokio::test]
async fn normal_latency_centres_on_its_mean() {
    let spec = json!({"seed": 5, "route": [
        {"path": "/iap/health", "latency": {"mean": "200ms", "stddev": "40ms"}}
    ]});
    let draws = seeded_draws(&spec, 20);
    // Within 4 sigma one by one; the mean of 20 within ~4 standard errors (9 ms each).
    let (lo, hi) = (Duration::from_millis(40), Duration::from_millis(360));
    assert!(draws.iter().all(|d| (lo..=hi).contains(d)), "{draws:?}");
    let m = mean(&draws);
    assert!(
        (Duration::from_millis(165)..=Duration::from_millis(235)).contains(&m),
        "mean {m:?}: {draws:?}"
    );
    assert!(draws.windows(2).any(|w| w[0] != w[1]), "{draws:?}");

    let sb = start_with(faults(spec)).await;
    let measured = health_times(&sb, 20).await;
    assert!(measured.iter().all(|m| *m >= lo), "{measured:?}");
    check_against_draws(&measured, &draws);
}
