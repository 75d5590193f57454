//! The App Store Server API fake over real HTTP: the JWT is checked as Apple documents it,
//! and the endpoints answer with Apple's shapes and signed data that verifies against the
//! sandbox root in the state folder.

mod common;

use std::time::Duration;

use common::*;
use iap_probe::jws;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::StatusCode;
use serde_json::{Value, json};

async fn call_with(sb: &Sb, token: Option<&str>) -> (StatusCode, Option<String>, String) {
    let (tx, _) = sb.ios("premium");
    let mut req = sb
        .http
        .get(sb.url(&format!("/inApps/v1/transactions/{tx}")));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status();
    let ctype = resp
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string());
    (status, ctype, resp.text().await.unwrap())
}

fn claims(sb: &Sb) -> Value {
    let now = unix_now();
    json!({
        "iss": sb.issuer(), "iat": now, "exp": now + 600,
        "aud": "appstoreconnect-v1", "bid": BUNDLE_ID,
    })
}

/// Like `es256_jwt`, with the header's `typ` chosen (or left out).
fn es256_typ(pem: &str, kid: &str, typ: Option<&str>, claims: &Value) -> String {
    let mut h = Header::new(Algorithm::ES256);
    h.kid = Some(kid.into());
    h.typ = typ.map(String::from);
    jsonwebtoken::encode(
        &h,
        claims,
        &EncodingKey::from_ec_pem(pem.as_bytes()).unwrap(),
    )
    .unwrap()
}

fn with(mut c: Value, key: &str, v: Value) -> Value {
    c[key] = v;
    c
}

fn without(mut c: Value, key: &str) -> Value {
    c.as_object_mut().unwrap().remove(key);
    c
}

#[tokio::test]
async fn app_store_jwt_is_checked_as_apple_documents_it() {
    let sb = start().await;
    let pem = sb.p8_pem();
    let kid = sb.kid();
    let now = unix_now();
    let other_key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
        .unwrap()
        .serialize_pem();
    let hs256 = {
        let mut h = Header::new(Algorithm::HS256);
        h.kid = Some(kid.clone());
        h.typ = Some("JWT".into());
        jsonwebtoken::encode(&h, &claims(&sb), &EncodingKey::from_secret(pem.as_bytes())).unwrap()
    };
    let base = claims(&sb);
    let cases: Vec<(&str, String, bool)> = vec![
        ("probe's own signer", sb.apple_token(), true),
        ("hand-made valid", es256_jwt(&pem, Some(&kid), &base), true),
        (
            "missing iat",
            es256_jwt(&pem, Some(&kid), &without(base.clone(), "iat")),
            true,
        ),
        (
            "lifetime exactly 60 min",
            es256_jwt(
                &pem,
                Some(&kid),
                &with(base.clone(), "exp", json!(now + 3600)),
            ),
            true,
        ),
        ("wrong alg (HS256)", hs256, false),
        (
            "wrong kid",
            es256_jwt(&pem, Some("ZZZZZZZZZZ"), &base),
            false,
        ),
        ("no kid", es256_jwt(&pem, None, &base), false),
        (
            "bad signature (another P-256 key)",
            es256_jwt(&other_key, Some(&kid), &base),
            false,
        ),
        (
            "wrong aud",
            es256_jwt(
                &pem,
                Some(&kid),
                &with(base.clone(), "aud", json!("appstoreconnect-v2")),
            ),
            false,
        ),
        (
            "missing aud",
            es256_jwt(&pem, Some(&kid), &without(base.clone(), "aud")),
            false,
        ),
        (
            "wrong iss",
            es256_jwt(
                &pem,
                Some(&kid),
                &with(
                    base.clone(),
                    "iss",
                    json!("57246542-96fe-1a63-e053-0824d011072a"),
                ),
            ),
            false,
        ),
        (
            "wrong bid",
            es256_jwt(
                &pem,
                Some(&kid),
                &with(base.clone(), "bid", json!("com.example.other")),
            ),
            false,
        ),
        (
            "bid differs in case",
            es256_jwt(
                &pem,
                Some(&kid),
                &with(base.clone(), "bid", json!("com.Example.IapProbe")),
            ),
            false,
        ),
        (
            "missing bid",
            es256_jwt(&pem, Some(&kid), &without(base.clone(), "bid")),
            false,
        ),
        (
            "expired",
            es256_jwt(
                &pem,
                Some(&kid),
                &json!({"iss": sb.issuer(), "iat": now - 900, "exp": now - 300,
                        "aud": "appstoreconnect-v1", "bid": BUNDLE_ID}),
            ),
            false,
        ),
        (
            "lifetime over 60 min",
            es256_jwt(
                &pem,
                Some(&kid),
                &with(base.clone(), "exp", json!(now + 3601)),
            ),
            false,
        ),
        (
            "no iat and exp over 60 min away",
            es256_jwt(
                &pem,
                Some(&kid),
                &with(without(base.clone(), "iat"), "exp", json!(now + 7200)),
            ),
            false,
        ),
        (
            "missing exp",
            es256_jwt(&pem, Some(&kid), &without(base.clone(), "exp")),
            false,
        ),
        ("no typ", es256_typ(&pem, &kid, None, &base), false),
        (
            "typ JOSE",
            es256_typ(&pem, &kid, Some("JOSE"), &base),
            false,
        ),
        ("not a JWT", "not-a-jwt".to_string(), false),
    ];
    let mut wrong = Vec::new();
    for (name, token, ok) in &cases {
        let (status, ctype, body) = call_with(&sb, Some(token)).await;
        if *ok {
            if status != StatusCode::OK {
                wrong.push(format!("{name}: expected 200, got {status} {body}"));
            }
        } else if status != StatusCode::UNAUTHORIZED
            || body != "Unauthenticated"
            || !ctype.as_deref().unwrap_or("").starts_with("text/plain")
        {
            wrong.push(format!(
                "{name}: expected 401 text/plain Unauthenticated, got {status} {ctype:?} {body:?}"
            ));
        }
    }
    let (status, _, body) = call_with(&sb, None).await;
    if status != StatusCode::UNAUTHORIZED || body != "Unauthenticated" {
        wrong.push(format!("no Authorization: got {status} {body}"));
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[tokio::test]
async fn transaction_is_signed_by_the_sandbox_ca_with_apple_fields() {
    let sb = start().await;
    let anchors = sb.anchors();
    for what in ["premium", "coins"] {
        let (tx, product) = sb.ios(what);
        let resp = sb.apple_get(&format!("/inApps/v1/transactions/{tx}")).await;
        assert_eq!(resp.status(), StatusCode::OK);
        let body: Value = resp.json().await.unwrap();
        let signed = body["signedTransactionInfo"].as_str().unwrap();
        let p = jws::verify(signed, &anchors).expect("signed transaction verifies");
        assert_eq!(p["transactionId"], tx.as_str());
        assert_eq!(p["originalTransactionId"], tx.as_str());
        assert_eq!(p["productId"], product.as_str());
        assert_eq!(p["bundleId"], BUNDLE_ID);
        assert_eq!(p["environment"], "Sandbox");
        assert_eq!(p["inAppOwnershipType"], "PURCHASED");
        assert_eq!(p["quantity"], 1);
        for ms in ["purchaseDate", "originalPurchaseDate", "signedDate"] {
            let v = p[ms].as_i64().unwrap_or_else(|| panic!("{ms} is epoch ms"));
            assert!(v > 1_600_000_000_000 && v <= now_ms(), "{ms} = {v}");
        }
        if what == "premium" {
            assert_eq!(p["type"], "Auto-Renewable Subscription");
            assert!(p["expiresDate"].as_i64().unwrap() > now_ms());
        } else {
            assert_eq!(p["type"], "Consumable");
            assert!(p.get("expiresDate").is_none());
        }
    }
    // Not the root the JWS carries: a verifier trusting another root refuses it.
    let (tx, _) = sb.ios("premium");
    let body: Value = sb
        .apple_get(&format!("/inApps/v1/transactions/{tx}"))
        .await
        .json()
        .await
        .unwrap();
    let apple_root = jws::TrustAnchors::from_bytes(
        &rcgen::CertificateParams::new(vec!["x".into()])
            .unwrap()
            .self_signed(&rcgen::KeyPair::generate().unwrap())
            .unwrap()
            .pem()
            .into_bytes(),
    )
    .unwrap();
    assert_eq!(
        jws::verify(body["signedTransactionInfo"].as_str().unwrap(), &apple_root),
        Err(jws::JwsError::UnknownRoot)
    );
}

#[tokio::test]
async fn apple_errors_have_apple_codes() {
    let sb = start().await;
    for (path, status, code) in [
        ("/inApps/v1/transactions/9999999999999999", 404, 4040010),
        ("/inApps/v1/transactions/abc", 400, 4000006),
        ("/inApps/v2/history/9999999999999999", 404, 4040010),
        ("/inApps/v2/history/12ab", 400, 4000006),
        ("/inApps/v1/subscriptions/9999999999999999", 404, 4040010),
        ("/inApps/v1/subscriptions/x", 400, 4000006),
    ] {
        let resp = sb.apple_get(path).await;
        assert_eq!(resp.status().as_u16(), status, "{path}");
        let ctype = resp.headers()["content-type"].to_str().unwrap().to_string();
        assert!(ctype.starts_with("application/json"), "{path}: {ctype}");
        let v: Value = resp.json().await.unwrap();
        assert_eq!(v["errorCode"], code, "{path}: {v}");
        assert!(
            !v["errorMessage"].as_str().unwrap().is_empty(),
            "{path}: {v}"
        );
    }
}

#[tokio::test]
async fn history_v2_lists_signed_transactions_and_filters_by_product() {
    let sb = start().await;
    let anchors = sb.anchors();
    let (tx, _) = sb.ios("premium");
    let (_, coins) = sb.ios("coins");

    let resp = sb.apple_get(&format!("/inApps/v2/history/{tx}")).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["hasMore"], false);
    assert!(v["revision"].is_string(), "{v}");
    assert_eq!(v["bundleId"], BUNDLE_ID);
    assert!(v["appAppleId"].is_i64(), "{v}");
    assert_eq!(v["environment"], "Sandbox");
    let all: Vec<Value> = v["signedTransactions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| jws::verify(s.as_str().unwrap(), &anchors).unwrap())
        .collect();
    assert_eq!(all.len(), 2, "both fixtures in the history");

    let resp = sb
        .apple_get(&format!("/inApps/v2/history/{tx}?productId={coins}"))
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    let v: Value = resp.json().await.unwrap();
    let list = v["signedTransactions"].as_array().unwrap();
    assert_eq!(list.len(), 1, "{v}");
    let p = jws::verify(list[0].as_str().unwrap(), &anchors).unwrap();
    assert_eq!(p["productId"], coins.as_str());

    let v: Value = sb
        .apple_get(&format!(
            "/inApps/v2/history/{tx}?productId=com.example.none"
        ))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(v["signedTransactions"].as_array().unwrap().len(), 0);

    // productType filters by Apple's type; DESCENDING reverses the order.
    for (ptype, want) in [
        ("CONSUMABLE", &coins),
        ("AUTO_RENEWABLE", &sb.ios("premium").1),
    ] {
        let v: Value = sb
            .apple_get(&format!("/inApps/v2/history/{tx}?productType={ptype}"))
            .await
            .json()
            .await
            .unwrap();
        let list = v["signedTransactions"].as_array().unwrap();
        assert_eq!(list.len(), 1, "{ptype}: {v}");
        let p = jws::verify(list[0].as_str().unwrap(), &anchors).unwrap();
        assert_eq!(p["productId"], want.as_str(), "{ptype}");
    }
    let ids = |v: &Value| -> Vec<String> {
        v["signedTransactions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| {
                jws::verify(s.as_str().unwrap(), &anchors).unwrap()["transactionId"].to_string()
            })
            .collect()
    };
    let asc: Value = sb
        .apple_get(&format!("/inApps/v2/history/{tx}?sort=ASCENDING"))
        .await
        .json()
        .await
        .unwrap();
    let desc: Value = sb
        .apple_get(&format!("/inApps/v2/history/{tx}?sort=DESCENDING"))
        .await
        .json()
        .await
        .unwrap();
    let mut reversed = ids(&asc);
    reversed.reverse();
    assert_eq!(ids(&desc), reversed);

    for (query, code) in [("sort=SIDEWAYS", 4000021), ("productType=GADGET", 4000022)] {
        let resp = sb
            .apple_get(&format!("/inApps/v2/history/{tx}?{query}"))
            .await;
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "{query}");
        let v: Value = resp.json().await.unwrap();
        assert_eq!(v["errorCode"], code, "{query}: {v}");
    }
}

#[tokio::test]
async fn subscription_statuses_have_the_status_response_shape() {
    let sb = start().await;
    let anchors = sb.anchors();
    let (tx, product) = sb.ios("premium");
    let resp = sb
        .apple_get(&format!("/inApps/v1/subscriptions/{tx}"))
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["environment"], "Sandbox");
    assert_eq!(v["bundleId"], BUNDLE_ID);
    assert!(v["appAppleId"].is_i64());
    let data = v["data"].as_array().unwrap();
    assert_eq!(data.len(), 1, "{v}");
    assert!(data[0]["subscriptionGroupIdentifier"].is_string());
    let last = &data[0]["lastTransactions"][0];
    assert_eq!(last["originalTransactionId"], tx.as_str());
    assert_eq!(last["status"], 1, "1 = active");
    let t = jws::verify(last["signedTransactionInfo"].as_str().unwrap(), &anchors).unwrap();
    assert_eq!(t["productId"], product.as_str());
    let r = jws::verify(last["signedRenewalInfo"].as_str().unwrap(), &anchors).unwrap();
    assert_eq!(r["autoRenewProductId"], product.as_str());
    assert_eq!(r["environment"], "Sandbox");

    // A consumable has no subscription group.
    let (coins, _) = sb.ios("coins");
    let v: Value = sb
        .apple_get(&format!("/inApps/v1/subscriptions/{coins}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(v["data"].as_array().unwrap().len(), 0, "{v}");
}

#[tokio::test]
async fn test_notification_is_delivered_to_the_backend() {
    let sb = start().await;
    let resp = sb
        .http
        .post(sb.url("/inApps/v1/notifications/test"))
        .bearer_auth(sb.apple_token())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let v: Value = resp.json().await.unwrap();
    let token = v["testNotificationToken"].as_str().unwrap().to_string();

    let status = poll(Duration::from_secs(15), || async {
        let v: Value = sb
            .apple_get(&format!("/inApps/v1/notifications/test/{token}"))
            .await
            .json()
            .await
            .ok()?;
        let done = v["sendAttempts"]
            .as_array()?
            .iter()
            .any(|a| a["sendAttemptResult"] == "SUCCESS");
        done.then_some(v)
    })
    .await
    .expect("a SUCCESS send attempt within 15 s");
    let attempt = &status["sendAttempts"][0];
    assert!(attempt["attemptDate"].as_i64().unwrap() > 1_600_000_000_000);
    let payload = jws::verify(status["signedPayload"].as_str().unwrap(), &sb.anchors()).unwrap();
    assert_eq!(payload["notificationType"], "TEST");
    assert_eq!(payload["data"]["bundleId"], BUNDLE_ID);
    let uuid = payload["notificationUUID"].as_str().unwrap();

    // The backend received and verified it.
    let recent: Value = sb
        .admin_get("/iap/notifications/apple/recent")
        .await
        .json()
        .await
        .unwrap();
    let found = recent["notifications"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["notificationUUID"] == uuid)
        .unwrap_or_else(|| panic!("{uuid} not in {recent}"));
    assert_eq!(found["notificationType"], "TEST");
    assert_eq!(found["environment"], "Sandbox");

    // The status endpoint needs the JWT too, and an unknown token is a 404.
    let resp = sb
        .http
        .get(sb.url(&format!("/inApps/v1/notifications/test/{token}")))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let resp = sb.apple_get("/inApps/v1/notifications/test/nope_1").await;
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn backend_refuses_a_forged_notification() {
    let sb = start().await;
    // A bare ES256 JWS with no x5c chain: not Apple's signed data.
    let forged = es256_jwt(
        &sb.p8_pem(),
        None,
        &json!({"notificationType": "TEST", "notificationUUID": "forged",
                "data": {"bundleId": BUNDLE_ID}, "signedDate": now_ms()}),
    );
    let resp = sb
        .http
        .post(sb.url("/iap/notifications/apple"))
        .json(&json!({"signedPayload": forged}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let v: Value = resp.json().await.unwrap();
    assert!(v["error"].as_str().unwrap().contains("rejected"), "{v}");
    let resp = sb
        .http
        .post(sb.url("/iap/notifications/apple"))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let recent: Value = sb
        .admin_get("/iap/notifications/apple/recent")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(recent["notifications"].as_array().unwrap().len(), 0);
    let resp = sb
        .http
        .get(sb.url("/iap/notifications/apple/recent"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
}

/// Apple Root CA - G3, as published by Apple.
const APPLE_ROOT_CA_G3_PEM: &str = "-----BEGIN CERTIFICATE-----
MIICQzCCAcmgAwIBAgIILcX8iNLFS5UwCgYIKoZIzj0EAwMwZzEbMBkGA1UEAwwS
QXBwbGUgUm9vdCBDQSAtIEczMSYwJAYDVQQLDB1BcHBsZSBDZXJ0aWZpY2F0aW9u
IEF1dGhvcml0eTETMBEGA1UECgwKQXBwbGUgSW5jLjELMAkGA1UEBhMCVVMwHhcN
MTQwNDMwMTgxOTA2WhcNMzkwNDMwMTgxOTA2WjBnMRswGQYDVQQDDBJBcHBsZSBS
b290IENBIC0gRzMxJjAkBgNVBAsMHUFwcGxlIENlcnRpZmljYXRpb24gQXV0aG9y
aXR5MRMwEQYDVQQKDApBcHBsZSBJbmMuMQswCQYDVQQGEwJVUzB2MBAGByqGSM49
AgEGBSuBBAAiA2IABJjpLz1AcqTtkyJygRMc3RCV8cWjTnHcFBbZDuWmBSp3ZHtf
TjjTuxxEtX/1H7YyYl3J6YRbTzBPEVoA/VhYDKX1DyxNB0cTddqXl5dvMVztK517
IDvYuVTZXpmkOlEKMaNCMEAwHQYDVR0OBBYEFLuw3qFYM4iapIqZ3r6966/ayySr
MA8GA1UdEwEB/wQFMAMBAf8wDgYDVR0PAQH/BAQDAgEGMAoGCCqGSM49BAMDA2gA
MGUCMQCD6cHEFl4aXTQY2e3v9GwOAEZLuN+yRhHFD/3meoyhpmvOwgPUnPWTxnS4
at+qIxUCMG1mihDK1A3UT82NQz60imOlM27jbdoXt2QfyFMm+YhidDkLF1vLUagM
6BgD56KyKA==
-----END CERTIFICATE-----
";

fn pem_to_der(pem: &str) -> Vec<u8> {
    use base64::Engine as _;
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    base64::engine::general_purpose::STANDARD
        .decode(body)
        .unwrap()
}

#[tokio::test]
async fn trust_anchors_read_pem_and_der() {
    // Apple's root as PEM and as the DER .cer Apple distributes (which holds '-' bytes).
    let pem = jws::TrustAnchors::from_bytes(APPLE_ROOT_CA_G3_PEM.as_bytes()).unwrap();
    let der_bytes = pem_to_der(APPLE_ROOT_CA_G3_PEM);
    assert!(der_bytes[..64].contains(&b'-'));
    let der = jws::TrustAnchors::from_bytes(&der_bytes).expect("Apple's DER root loads");
    assert_eq!(pem.0, der.0);

    // The sandbox root as DER verifies the sandbox's signed data like the PEM does.
    let sb = start().await;
    let root_pem = std::fs::read_to_string(sb.sb.state_dir.join("sandbox-root-ca.pem")).unwrap();
    let anchors = jws::TrustAnchors::from_bytes(&pem_to_der(&root_pem)).unwrap();
    let (tx, _) = sb.ios("coins");
    let body: Value = sb
        .apple_get(&format!("/inApps/v1/transactions/{tx}"))
        .await
        .json()
        .await
        .unwrap();
    assert!(jws::verify(body["signedTransactionInfo"].as_str().unwrap(), &anchors).is_ok());

    assert!(jws::TrustAnchors::from_bytes(b"not a certificate").is_err());
    assert!(jws::TrustAnchors::from_bytes(&[0x30, 0x03, 0x02, 0x01, 0x01]).is_err());
}

/// Requests a TEST notification and waits (bounded) for its first send attempt's result.
async fn first_send_attempt(sb: &Sb) -> String {
    let resp = sb
        .http
        .post(sb.url("/inApps/v1/notifications/test"))
        .bearer_auth(sb.apple_token())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let v: Value = resp.json().await.unwrap();
    let token = v["testNotificationToken"].as_str().unwrap().to_string();
    // Apple's status endpoint is the only signal: poll it.
    poll(Duration::from_secs(20), || async {
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
    .expect("a send attempt is recorded within 20 s")
}

/// What a one-connection raw TCP server does after reading the whole request.
#[derive(Clone, Copy)]
enum Raw {
    /// Close without a byte of response.
    Close,
    /// Answer something that is not HTTP.
    Garbage,
}

/// Serves one connection on a fresh loopback port; returns its notification URL.
async fn raw_server(behaviour: Raw) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut conn, _) = listener.accept().await.unwrap();
        // Read the request to its end, so closing sends FIN, not RST over unread data.
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            let n = conn.read(&mut chunk).await.unwrap();
            if n == 0 {
                break;
            }
            buf.extend_from_slice(&chunk[..n]);
            let text = String::from_utf8_lossy(&buf).to_lowercase();
            if let Some(end) = text.find("\r\n\r\n") {
                let len: usize = text
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap_or(0);
                if buf.len() >= end + 4 + len {
                    break;
                }
            }
        }
        if let Raw::Garbage = behaviour {
            conn.write_all(b"SSH-2.0-OpenSSH_9.6\r\n\r\n")
                .await
                .unwrap();
        }
        conn.shutdown().await.ok();
    });
    format!("http://{addr}/iap/notifications/apple")
}

#[tokio::test]
async fn each_delivery_failure_is_recorded_as_apple_names_it() {
    let sb = start().await;
    let closed_port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let https = sb.sb.base_url.replace("http://", "https://");
    let route = |fault: Value| {
        let mut r = json!({"path": "/iap/notifications/apple"});
        r.as_object_mut()
            .unwrap()
            .extend(fault.as_object().unwrap().clone());
        json!({"route": [r]})
    };
    let cases: Vec<(&str, Value, &str)> = vec![
        (
            "a 200 cut halfway through its body",
            route(json!({"reset": true})),
            "PREMATURE_CLOSE",
        ),
        (
            "a 500 cut halfway through its body",
            route(json!({"reset": true, "status": 500})),
            "PREMATURE_CLOSE",
        ),
        (
            "closed after the request, no response",
            json!({"notification_url": raw_server(Raw::Close).await}),
            "PREMATURE_CLOSE",
        ),
        (
            "an answer that is not HTTP",
            json!({"notification_url": raw_server(Raw::Garbage).await}),
            "INVALID_RESPONSE",
        ),
        (
            "nothing listening",
            json!({"notification_url": format!("http://127.0.0.1:{closed_port}/")}),
            "NO_RESPONSE",
        ),
        (
            // Linux refuses a TCP connect(2) to the broadcast address (ENETUNREACH): a
            // socket error before any server is reached.
            "a socket error on connect",
            json!({"notification_url": "http://255.255.255.255:9/iap/notifications/apple"}),
            "SOCKET_ISSUE",
        ),
        (
            "TLS to a plain-HTTP server",
            json!({"notification_url": format!("{https}/iap/notifications/apple")}),
            "TLS_ISSUE",
        ),
        (
            "a complete 200 with a large body",
            route(json!({"status": 200, "body_bytes": 300_000, "content_type": "text/plain"})),
            "SUCCESS",
        ),
        (
            "headers, then a body that never ends",
            route(json!({"trickle": true})),
            "TIMED_OUT",
        ),
    ];
    let mut wrong = Vec::new();
    for (what, fault, expected) in cases {
        sb.set_faults(fault).await;
        let got = first_send_attempt(&sb).await;
        if got != expected {
            wrong.push(format!("{what}: expected {expected}, got {got}"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}
