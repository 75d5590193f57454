//! Google's OAuth2 token endpoint (JWT-bearer grant) and the Play Developer API v3 fakes
//! over real HTTP.

mod common;

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::*;
use iap_probe::auth::GoogleTokenSource;
use reqwest::StatusCode;
use serde_json::{Value, json};

fn with(mut c: Value, key: &str, v: Value) -> Value {
    c[key] = v;
    c
}

/// Swaps the claims segment for other claims, keeping the original signature.
fn swap_claims(assertion: &str, claims: &Value) -> String {
    let parts: Vec<&str> = assertion.split('.').collect();
    let c = URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).unwrap());
    format!("{}.{c}.{}", parts[0], parts[2])
}

fn flip_signature(assertion: &str) -> String {
    let (head, sig) = assertion.rsplit_once('.').unwrap();
    let mut bytes = URL_SAFE_NO_PAD.decode(sig).unwrap();
    bytes[10] ^= 0x01;
    format!("{head}.{}", URL_SAFE_NO_PAD.encode(bytes))
}

#[tokio::test]
async fn token_endpoint_checks_the_assertion() {
    let sb = start().await;
    let kid = sb.service_account()["private_key_id"]
        .as_str()
        .unwrap()
        .to_string();
    let own = sb.token_uri();
    let now = unix_now();
    let good = sb.google_claims(&own);
    let signed_good = rs256_assertion(&sb, Some(&kid), &good);
    let padded = rs256_padded(&sb, &good);
    assert!(
        padded.contains('='),
        "the padded variant is padded: {padded}"
    );

    let cases: Vec<(&str, String, Option<&str>)> = vec![
        ("sandbox aud, with kid", signed_good.clone(), None),
        ("padded base64 (yup-oauth2)", padded, None),
        ("no kid", rs256_assertion(&sb, None, &good), None),
        (
            "Google's own aud",
            rs256_assertion(&sb, Some(&kid), &sb.google_claims(GOOGLE_TOKEN_AUD)),
            None,
        ),
        (
            "sub null and several scopes",
            rs256_assertion(
                &sb,
                None,
                &with(
                    good.clone(),
                    "scope",
                    json!(format!(
                        "https://www.googleapis.com/auth/cloud-platform {PLAY_SCOPE}"
                    )),
                ),
            ),
            None,
        ),
        (
            "lifetime exactly 3600 s",
            rs256_assertion(&sb, None, &with(good.clone(), "exp", json!(now + 3600))),
            None,
        ),
        (
            "wrong aud",
            rs256_assertion(&sb, None, &sb.google_claims("https://example.com/token")),
            Some("invalid_grant"),
        ),
        (
            "expired",
            rs256_assertion(
                &sb,
                None,
                &with(
                    with(good.clone(), "iat", json!(now - 4000)),
                    "exp",
                    json!(now - 400),
                ),
            ),
            Some("invalid_grant"),
        ),
        (
            "lifetime over 3600 s",
            rs256_assertion(&sb, None, &with(good.clone(), "exp", json!(now + 3601))),
            Some("invalid_grant"),
        ),
        (
            "iat in the future",
            rs256_assertion(
                &sb,
                None,
                &with(
                    with(good.clone(), "iat", json!(now + 1800)),
                    "exp",
                    json!(now + 3000),
                ),
            ),
            Some("invalid_grant"),
        ),
        (
            "wrong scope",
            rs256_assertion(
                &sb,
                None,
                &with(
                    good.clone(),
                    "scope",
                    json!("https://www.googleapis.com/auth/cloud-platform"),
                ),
            ),
            Some("invalid_scope"),
        ),
        (
            "wrong iss",
            rs256_assertion(
                &sb,
                None,
                &with(
                    good.clone(),
                    "iss",
                    json!("someone@else.iam.gserviceaccount.com"),
                ),
            ),
            Some("invalid_grant"),
        ),
        (
            "wrong kid",
            rs256_assertion(&sb, Some("0123456789abcdef"), &good),
            Some("invalid_grant"),
        ),
        (
            "bad signature (flipped bit)",
            flip_signature(&signed_good),
            Some("invalid_grant"),
        ),
        (
            "bad signature (claims swapped after signing)",
            swap_claims(
                &signed_good,
                &with(
                    good.clone(),
                    "iss",
                    json!("attacker@evil.iam.gserviceaccount.com"),
                ),
            ),
            Some("invalid_grant"),
        ),
        ("not a JWT", "abc".into(), Some("invalid_grant")),
    ];
    let mut wrong = Vec::new();
    for (name, assertion, refusal) in &cases {
        let resp = sb.token_request(assertion).await;
        let status = resp.status();
        let text = resp.text().await.unwrap();
        let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        match refusal {
            None => {
                let ok = status == StatusCode::OK
                    && v["access_token"].as_str().is_some_and(|t| !t.is_empty())
                    && v["token_type"] == "Bearer"
                    && v["expires_in"]
                        .as_u64()
                        .is_some_and(|e| e > 3000 && e <= 3600);
                if !ok {
                    wrong.push(format!("{name}: expected a token, got {status} {text}"));
                }
            }
            Some(error) => {
                let ok = status == StatusCode::BAD_REQUEST
                    && v["error"] == *error
                    && v["error_description"]
                        .as_str()
                        .is_some_and(|d| !d.is_empty());
                if !ok {
                    wrong.push(format!("{name}: expected 400 {error}, got {status} {text}"));
                }
            }
        }
    }
    // The grant type and the assertion parameter are required.
    let resp = sb
        .http
        .post(sb.url("/token"))
        .form(&[("grant_type", "client_credentials"), ("assertion", "x")])
        .send()
        .await
        .unwrap();
    let status = resp.status();
    let v: Value = resp.json().await.unwrap();
    if status != StatusCode::BAD_REQUEST || v["error"] != "unsupported_grant_type" {
        wrong.push(format!("wrong grant_type: {status} {v}"));
    }
    let resp = sb
        .http
        .post(sb.url("/token"))
        .form(&[("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer")])
        .send()
        .await
        .unwrap();
    let status = resp.status();
    let v: Value = resp.json().await.unwrap();
    if status != StatusCode::BAD_REQUEST || v["error"] != "invalid_request" {
        wrong.push(format!("no assertion: {status} {v}"));
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[tokio::test]
async fn yup_oauth2_token_source_gets_a_token_that_play_accepts() {
    let sb = start().await;
    let source = GoogleTokenSource::from_key_file(
        &sb.sb.state_dir.join("service-account.json"),
        Duration::from_secs(10),
    )
    .await
    .unwrap();
    assert_eq!(source.token_uri, sb.token_uri());
    let t = source.token().await.expect("yup-oauth2 obtains a token");
    let token = t.token.expose().to_string();
    assert!(!token.is_empty());
    let exp = t.expires_at.expect("an expiry");
    assert!(exp > std::time::SystemTime::now() + Duration::from_secs(3000));
    // Cached: the same token again.
    assert_eq!(source.token().await.unwrap().token.expose(), token);

    let (ptoken, product) = sb.android("product");
    let resp = sb
        .http
        .get(sb.product_url(&product, &ptoken))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);

    // After a revocation the cached token is refused; a forced refresh gets a new one.
    let resp = sb.admin_post("/sandbox/google/revoke", &json!({})).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let resp = sb
        .http
        .get(sb.product_url(&product, &ptoken))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let fresh = source.refresh().await.unwrap().token.expose().to_string();
    assert_ne!(fresh, token);
    let resp = sb
        .http
        .get(sb.product_url(&product, &ptoken))
        .bearer_auth(&fresh)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
}

#[tokio::test]
async fn token_source_reports_a_refused_grant() {
    let sb = start().await;
    // A service-account file whose token_uri is right but whose email is not.
    let mut key = sb.service_account();
    key["client_email"] = json!("nobody@iap-probe-sandbox.iam.gserviceaccount.com");
    let path = sb.dir.path().join("other-sa.json");
    std::fs::write(&path, serde_json::to_vec(&key).unwrap()).unwrap();
    let source = GoogleTokenSource::from_key_file(&path, Duration::from_secs(10))
        .await
        .unwrap();
    let err = source.token().await.err().expect("the grant is refused");
    let msg = err.to_string();
    assert!(msg.contains("invalid_grant"), "{msg}");
    assert!(!err.is_local());
}

#[tokio::test]
async fn play_product_purchase_has_googles_shape() {
    let sb = start().await;
    let token = sb.google_token().await;
    let (ptoken, product) = sb.android("product");
    let resp = sb
        .http
        .get(sb.product_url(&product, &ptoken))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["kind"], "androidpublisher#productPurchase");
    let ms: i64 = v["purchaseTimeMillis"]
        .as_str()
        .expect("purchaseTimeMillis is a string (int64 in JSON)")
        .parse()
        .unwrap();
    assert!(ms > 1_600_000_000_000 && ms < now_ms(), "{ms}");
    assert_eq!(v["purchaseType"], 0, "0 = test purchase");
    assert_eq!(v["purchaseState"], 0);
    assert_eq!(v["acknowledgementState"], 1);
    assert_eq!(v["productId"], product.as_str());
    assert!(v["orderId"].as_str().unwrap().starts_with("GPA."));
}

#[tokio::test]
async fn play_subscription_v2_has_googles_shape() {
    let sb = start().await;
    let token = sb.google_token().await;
    let (stoken, product) = sb.android("subscription");
    let resp = sb
        .http
        .get(sb.subscription_url(&stoken))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["kind"], "androidpublisher#subscriptionPurchaseV2");
    assert_eq!(v["subscriptionState"], "SUBSCRIPTION_STATE_ACTIVE");
    assert_eq!(v["testPurchase"], json!({}));
    assert!(v["latestOrderId"].as_str().unwrap().starts_with("GPA."));
    let start_time = humantime::parse_rfc3339(v["startTime"].as_str().unwrap()).unwrap();
    let item = &v["lineItems"][0];
    assert_eq!(item["productId"], product.as_str());
    let expiry = humantime::parse_rfc3339(item["expiryTime"].as_str().unwrap())
        .expect("expiryTime is RFC 3339");
    assert!(start_time < std::time::SystemTime::now());
    assert!(expiry > std::time::SystemTime::now());

    // A subscription token is not a one-time product, and the other way round.
    let (ptoken, _) = sb.android("product");
    let resp = sb
        .http
        .get(sb.subscription_url(&ptoken))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
}

async fn assert_envelope(resp: reqwest::Response, code: u16, status: &str) {
    assert_eq!(resp.status().as_u16(), code);
    let ctype = resp.headers()["content-type"].to_str().unwrap().to_string();
    assert!(ctype.starts_with("application/json"), "{ctype}");
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["error"]["code"], code, "{v}");
    assert_eq!(v["error"]["status"], status, "{v}");
    assert!(!v["error"]["message"].as_str().unwrap().is_empty());
    assert!(v["error"]["errors"][0]["reason"].is_string(), "{v}");
}

#[tokio::test]
async fn play_refuses_missing_foreign_and_revoked_tokens() {
    let sb = start().await;
    let (ptoken, product) = sb.android("product");
    let (stoken, _) = sb.android("subscription");
    let token = sb.google_token().await;

    // No token, and a token this sandbox never issued.
    for auth in [None, Some("ya29.a0AfH6SMforeign-token")] {
        for url in [
            sb.product_url(&product, &ptoken),
            sb.subscription_url(&stoken),
        ] {
            let mut req = sb.http.get(&url);
            if let Some(a) = auth {
                req = req.bearer_auth(a);
            }
            assert_envelope(req.send().await.unwrap(), 401, "UNAUTHENTICATED").await;
        }
    }

    // Unknown purchase token, unknown package, product id not the token's.
    for url in [
        sb.product_url(&product, "unknown-token"),
        sb.subscription_url("unknown-token"),
        sb.product_url("other_product", &ptoken),
        sb.url(&format!(
            "/androidpublisher/v3/applications/com.other.app/purchases/products/{product}/tokens/{ptoken}"
        )),
    ] {
        let resp = sb.http.get(&url).bearer_auth(&token).send().await.unwrap();
        assert_envelope(resp, 404, "NOT_FOUND").await;
    }

    // Revocation needs the admin token and then expires every token issued.
    let resp = sb
        .http
        .post(sb.url("/sandbox/google/revoke"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let resp = sb
        .http
        .get(sb.product_url(&product, &ptoken))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK, "not revoked without admin");

    let resp = sb.admin_post("/sandbox/google/revoke", &json!({})).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let v: Value = resp.json().await.unwrap();
    assert!(v["revoked"].as_u64().unwrap() >= 1, "{v}");
    for url in [
        sb.product_url(&product, &ptoken),
        sb.subscription_url(&stoken),
    ] {
        let resp = sb.http.get(&url).bearer_auth(&token).send().await.unwrap();
        assert_envelope(resp, 401, "UNAUTHENTICATED").await;
    }
    // A new grant works again.
    let again = sb.google_token().await;
    let resp = sb
        .http
        .get(sb.product_url(&product, &ptoken))
        .bearer_auth(&again)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
}

#[tokio::test]
async fn play_refuses_a_token_past_its_natural_expiry() {
    // Google's tokens live 3599 s; a one-second lifetime lets the test see one expire.
    let lifetime = Duration::from_secs(1);
    let sb = start_opts(iap_probe::sandbox::SandboxOptions {
        google_token_lifetime: lifetime,
        ..Default::default()
    })
    .await;
    let (ptoken, product) = sb.android("product");
    let (stoken, _) = sb.android("subscription");
    let urls = [
        sb.product_url(&product, &ptoken),
        sb.subscription_url(&stoken),
    ];
    let assertion = rs256_assertion(&sb, None, &sb.google_claims(&sb.token_uri()));
    let resp = sb.token_request(&assertion).await;
    // Taken after the answer: the sandbox issued the token before this instant.
    let issued = tokio::time::Instant::now();
    assert_eq!(resp.status(), StatusCode::OK);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(
        v["expires_in"], 1,
        "expires_in tells the real lifetime: {v}"
    );
    let token = v["access_token"].as_str().unwrap().to_string();
    for url in &urls {
        let resp = sb.http.get(url).bearer_auth(&token).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK, "valid before expiry: {url}");
    }

    // The passage of time is what is under test here, so waiting it out is the point.
    tokio::time::sleep_until(issued + lifetime + Duration::from_millis(20)).await;
    for url in &urls {
        let resp = sb.http.get(url).bearer_auth(&token).send().await.unwrap();
        assert_envelope(resp, 401, "UNAUTHENTICATED").await;
    }
    // Expiry is per token: a fresh grant is accepted.
    let again = sb.google_token().await;
    let resp = sb
        .http
        .get(&urls[0])
        .bearer_auth(&again)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
}
