//! The reference IAP backend over real HTTP: verification really goes through the fake
//! Apple and Google APIs, entitlements appear, the cache keeps honest statistics, and the
//! admin endpoints need the admin token.

mod common;

use common::*;
use reqwest::StatusCode;
use serde_json::{Value, json};

#[tokio::test]
async fn health_answers_ok() {
    let sb = start().await;
    let resp = sb.http.get(sb.url("/iap/health")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["status"], "ok");
}

#[tokio::test]
async fn ios_verify_grants_the_entitlement() {
    let sb = start().await;
    let (tx, product) = sb.ios("premium");
    let (before, _) = sb.entitlements("ios-user").await;
    assert!(before.is_empty());
    let (status, v) = sb.verify_ios("ios-user", "premium").await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["valid"], true);
    assert_eq!(v["userId"], "ios-user");
    assert_eq!(v["productId"], product.as_str());
    assert_eq!(v["transactionId"], tx.as_str());
    assert_eq!(v["environment"], "Sandbox");
    assert!(v["expiresDate"].as_i64().unwrap() > now_ms());
    let (list, _) = sb.entitlements("ios-user").await;
    assert_eq!(list, vec![product]);
    // Someone else's entitlements are untouched.
    assert!(sb.entitlements("other-user").await.0.is_empty());
}

#[tokio::test]
async fn android_verify_grants_product_and_subscription() {
    let sb = start().await;
    let (ptoken, product) = sb.android("product");
    let (stoken, sub) = sb.android("subscription");
    let (status, v) = sb
        .verify(
            &json!({"platform": "android", "userId": "droid", "productId": product,
                        "purchaseToken": ptoken}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["valid"], true);
    assert!(v["orderId"].as_str().unwrap().starts_with("GPA."));
    let (status, v) = sb
        .verify(
            &json!({"platform": "android", "userId": "droid", "productId": sub,
                        "purchaseToken": stoken, "type": "subscription"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert!(humantime::parse_rfc3339(v["expiryTime"].as_str().unwrap()).is_ok());
    let (mut list, _) = sb.entitlements("droid").await;
    list.sort();
    let mut want = vec![product, sub];
    want.sort();
    assert_eq!(list, want);
}

#[tokio::test]
async fn android_verify_survives_a_revoked_google_token() {
    let sb = start().await;
    let (ptoken, product) = sb.android("product");
    let body = json!({"platform": "android", "userId": "u", "productId": product,
                      "purchaseToken": ptoken});
    assert_eq!(sb.verify(&body).await.0, StatusCode::OK);
    let resp = sb.admin_post("/sandbox/google/revoke", &json!({})).await;
    assert_eq!(resp.status(), StatusCode::OK);
    // The backend's cached access token is now refused; it fetches a new one, as
    // Google's client libraries do on a 401.
    let (status, v) = sb.verify(&body).await;
    assert_eq!(status, StatusCode::OK, "{v}");
}

#[tokio::test]
async fn verify_refuses_what_the_platforms_refuse() {
    let sb = start().await;
    let (tx, _) = sb.ios("premium");
    let (_, coins) = sb.ios("coins");
    let (ptoken, product) = sb.android("product");
    let cases = [
        (
            "ios: product is not the transaction's",
            json!({"platform": "ios", "userId": "u", "productId": coins, "transactionId": tx}),
            "not",
        ),
        (
            "ios: unknown transaction",
            json!({"platform": "ios", "userId": "u", "productId": coins,
                   "transactionId": "9999999999999999"}),
            "does not know",
        ),
        (
            "ios: non-numeric transaction",
            json!({"platform": "ios", "userId": "u", "productId": coins,
                   "transactionId": "abc"}),
            "does not know",
        ),
        (
            "android: unknown purchase token",
            json!({"platform": "android", "userId": "u", "productId": product,
                   "purchaseToken": "nope"}),
            "does not know",
        ),
        (
            "android: product is not the token's",
            json!({"platform": "android", "userId": "u", "productId": "other",
                   "purchaseToken": ptoken}),
            "does not know",
        ),
    ];
    for (name, body, reason) in cases {
        let (status, v) = sb.verify(&body).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{name}: {v}");
        assert_eq!(v["valid"], false, "{name}: {v}");
        let err = v["error"].as_str().unwrap();
        assert!(err.contains(reason), "{name}: {err}");
    }
    assert!(sb.entitlements("u").await.0.is_empty(), "nothing granted");
}

#[tokio::test]
async fn bad_verify_bodies_get_a_reason() {
    let sb = start().await;
    let (tx, product) = sb.ios("premium");
    let cases: [(&str, String, &str); 9] = [
        ("not JSON", "{oops".into(), "JSON"),
        (
            "no userId",
            json!({"platform": "ios", "productId": product, "transactionId": tx}).to_string(),
            "userId",
        ),
        (
            "no productId",
            json!({"platform": "ios", "userId": "u", "transactionId": tx}).to_string(),
            "productId",
        ),
        (
            "unknown platform",
            json!({"platform": "windows", "userId": "u", "productId": product,
                   "transactionId": tx})
            .to_string(),
            "platform",
        ),
        (
            "ios without transactionId",
            json!({"platform": "ios", "userId": "u", "productId": product}).to_string(),
            "transactionId",
        ),
        (
            "android without purchaseToken",
            json!({"platform": "android", "userId": "u", "productId": product}).to_string(),
            "purchaseToken",
        ),
        (
            "empty userId",
            json!({"platform": "ios", "userId": "", "productId": product, "transactionId": tx})
                .to_string(),
            "userId",
        ),
        (
            "blank transactionId",
            json!({"platform": "ios", "userId": "u", "productId": product,
                   "transactionId": " "})
            .to_string(),
            "transactionId",
        ),
        (
            "userId not a string",
            json!({"platform": "ios", "userId": 7, "productId": product, "transactionId": tx})
                .to_string(),
            "JSON",
        ),
    ];
    for (name, body, reason) in cases {
        let resp = sb
            .http
            .post(sb.url("/iap/verify"))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        let status = resp.status();
        assert!(status.is_client_error(), "{name}: {status}");
        let v: Value = resp.json().await.unwrap();
        assert_eq!(v["valid"], false, "{name}: {v}");
        assert!(v["error"].as_str().unwrap().contains(reason), "{name}: {v}");
    }
}

#[tokio::test]
async fn admin_endpoints_need_the_admin_token() {
    let sb = start().await;
    let calls: [(&str, &str, Value); 8] = [
        ("GET", "/iap/user/u/entitlements", Value::Null),
        ("POST", "/iap/cache/refresh/u", Value::Null),
        (
            "POST",
            "/iap/entitlements/grant",
            json!({"userId": "u", "productId": "p", "reason": "r"}),
        ),
        (
            "POST",
            "/iap/entitlements/batch-refresh",
            json!({"userIds": ["u"], "forceRefresh": true}),
        ),
        ("GET", "/iap/notifications/apple/recent", Value::Null),
        ("GET", "/sandbox/faults", Value::Null),
        ("PUT", "/sandbox/faults", json!({})),
        ("POST", "/sandbox/google/revoke", Value::Null),
    ];
    let admin = sb.admin();
    for (method, path, body) in &calls {
        for auth in [None, Some("Bearer wrong-token"), Some(admin.as_str())] {
            let mut req = sb
                .http
                .request(method.parse().unwrap(), sb.url(path))
                .json(body);
            if let Some(a) = auth {
                req = req.header("authorization", a);
            }
            let resp = req.send().await.unwrap();
            // The bare token (no "Bearer ") is refused too.
            assert_eq!(
                resp.status(),
                StatusCode::UNAUTHORIZED,
                "{method} {path} with {:?}",
                auth.map(|a| a.len())
            );
        }
        let resp = sb
            .http
            .request(method.parse().unwrap(), sb.url(path))
            .bearer_auth(&admin)
            .json(body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK, "{method} {path} as admin");
    }
    // Nothing was granted by the refused calls.
    let (list, _) = sb.entitlements("u").await;
    assert_eq!(list, vec!["p".to_string()], "only the admin grant");
}

/// Cache figures of this backend's own lookups (the stats add a simulated population).
fn own(stats: &Value) -> (u64, u64) {
    let sim = &stats["simulated"];
    (
        stats["hits"].as_u64().unwrap() - sim["hits"].as_u64().unwrap(),
        stats["misses"].as_u64().unwrap() - sim["misses"].as_u64().unwrap(),
    )
}

#[tokio::test]
async fn cache_counts_hits_misses_and_refreshes() {
    let sb = start().await;
    let s0 = sb.cache_stats().await;
    for k in ["hits", "misses", "size", "refreshes", "ttlSeconds"] {
        assert!(s0[k].is_u64(), "{k} in {s0}");
    }
    let ratio = s0["hitRatio"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&ratio));
    assert_eq!(own(&s0), (0, 0));
    assert_eq!(s0["size"], 0);

    assert!(!sb.entitlements("c").await.1, "first read is a miss");
    assert_eq!(own(&sb.cache_stats().await), (0, 1));
    assert!(sb.entitlements("c").await.1, "second read is a hit");
    let s = sb.cache_stats().await;
    assert_eq!(own(&s), (1, 1));
    assert_eq!(s["size"], 1);

    // A grant invalidates the cached list: the next read sees it.
    let resp = sb
        .admin_post(
            "/iap/entitlements/grant",
            &json!({"userId": "c", "productId": "gift", "reason": "incident_resolution"}),
        )
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["granted"], true);
    assert_eq!(v["entitlement"]["source"], "manual-grant");
    let (list, hit) = sb.entitlements("c").await;
    assert_eq!(list, vec!["gift".to_string()]);
    assert!(!hit, "a stale entry is not served");
    assert_eq!(own(&sb.cache_stats().await), (1, 2));

    // A refresh re-reads and counts; the next read is a hit.
    let resp = sb.admin_post("/iap/cache/refresh/c", &json!(null)).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["refreshed"], true);
    assert_eq!(v["entitlements"], 1);
    let s = sb.cache_stats().await;
    assert_eq!(s["refreshes"], 1);
    assert_eq!(own(&s), (1, 3));
    assert!(sb.entitlements("c").await.1);
    assert_eq!(own(&sb.cache_stats().await), (2, 3));
}

#[tokio::test]
async fn batch_refresh_fills_the_cache() {
    let sb = start().await;
    let resp = sb
        .admin_post(
            "/iap/entitlements/batch-refresh",
            &json!({"userIds": ["a", "b", "c"], "forceRefresh": true}),
        )
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["refreshed"], 3);
    assert_eq!(v["forceRefresh"], true);
    let s = sb.cache_stats().await;
    assert_eq!(s["size"], 3);
    assert_eq!(own(&s), (0, 3));
    // Cached now: reads are hits.
    assert!(sb.entitlements("b").await.1);

    for bad in [
        json!({"forceRefresh": true}),
        json!({"userIds": "a"}),
        json!([1, 2]),
    ] {
        let resp = sb.admin_post("/iap/entitlements/batch-refresh", &bad).await;
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "{bad}");
        let v: Value = resp.json().await.unwrap();
        assert!(v["error"].as_str().unwrap().contains("userIds"), "{v}");
    }
}

#[tokio::test]
async fn grant_refuses_a_bad_body() {
    let sb = start().await;
    for bad in [
        json!({"userId": "u", "productId": "p"}),
        json!({"userId": "u", "reason": "r"}),
        json!("grant"),
    ] {
        let resp = sb.admin_post("/iap/entitlements/grant", &bad).await;
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "{bad}");
        let v: Value = resp.json().await.unwrap();
        assert!(v["error"].as_str().unwrap().contains("reason"), "{v}");
    }
    assert!(sb.entitlements("u").await.0.is_empty());
}

#[tokio::test]
async fn cache_entries_expire_after_the_ttl() {
    let ttl = std::time::Duration::from_millis(500);
    let sb = start_opts(iap_probe::sandbox::SandboxOptions {
        cache_ttl: ttl,
        ..Default::default()
    })
    .await;
    assert_eq!(sb.cache_stats().await["ttlSeconds"], 0);
    let t0 = std::time::Instant::now();
    assert!(!sb.entitlements("t").await.1);
    // Hits while fresh, then a miss once the entry is older than the TTL.
    let missed_at = poll(std::time::Duration::from_secs(10), || async {
        let (_, hit) = sb.entitlements("t").await;
        (!hit).then(std::time::Instant::now)
    })
    .await
    .expect("the entry expires");
    assert!(missed_at - t0 >= ttl, "expired after {:?}", missed_at - t0);
}
