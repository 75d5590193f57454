//! The App Store Server API fake: JWT checked exactly as Apple documents it, signed
//! transactions, history, subscription statuses and TEST notifications really delivered.

use std::time::Duration;

use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use p256::elliptic_curve::sec1::ToEncodedPoint;
use serde_json::{Value, json};

use super::creds::{APP_APPLE_ID, BUNDLE_ID, IosFixture};
use super::{Map, Shared, now_ms};
use crate::auth::apple::{AUDIENCE, AppStoreClaims};

#[derive(Default)]
pub struct AppleState {
    pub test_notifications: Map<TestNotification>,
}

#[derive(Clone)]
pub struct TestNotification {
    pub signed_payload: String,
    pub attempts: Vec<Value>,
}

pub fn routes() -> Router<Shared> {
    Router::new()
        .route("/inApps/v1/transactions/{id}", get(transaction))
        .route("/inApps/v2/history/{id}", get(history))
        .route("/inApps/v1/subscriptions/{id}", get(subscription_statuses))
        .route(
            "/inApps/v1/notifications/test",
            post(request_test_notification),
        )
        .route(
            "/inApps/v1/notifications/test/{token}",
            get(test_notification_status),
        )
}

/// Apple's error JSON for a status code.
pub fn error_body(status: StatusCode) -> Value {
    let (code, message) = match status.as_u16() {
        400 => (4000006, "Invalid transaction id."),
        404 => (4040010, "Transaction id not found."),
        429 => (4290000, "Rate limit exceeded."),
        503 => (5000001, "An unknown error occurred. Please try again."),
        _ => (5000000, "An unknown error occurred."),
    };
    json!({"errorCode": code, "errorMessage": message})
}

fn apple_error(status: StatusCode, code: i64, message: &str) -> Response {
    (
        status,
        Json(json!({"errorCode": code, "errorMessage": message})),
    )
        .into_response()
}

fn unauthenticated() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        [(header::CONTENT_TYPE, "text/plain")],
        "Unauthenticated",
    )
        .into_response()
}

/// Why a token was refused (for the sandbox's own log; Apple says only "Unauthenticated").
pub fn check_jwt(state: &Shared, headers: &HeaderMap) -> Result<(), String> {
    let auth = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .ok_or("no Authorization header")?;
    let token = auth.strip_prefix("Bearer ").ok_or("not a Bearer token")?;
    let head = jsonwebtoken::decode_header(token).map_err(|e| format!("bad header: {e}"))?;
    if head.alg != Algorithm::ES256 {
        return Err(format!("alg {:?} is not ES256", head.alg));
    }
    // Apple documents typ "JWT" in the header; its libraries and jsonwebtoken send it.
    if head.typ.as_deref() != Some("JWT") {
        return Err(format!("typ {:?} is not JWT", head.typ));
    }
    let kid = head.kid.ok_or("no kid")?;
    let key = [&state.creds.probe_key, &state.creds.backend_key]
        .into_iter()
        .find(|k| k.key_id == kid && !state.apple_key_revoked(&k.key_id))
        .ok_or_else(|| format!("unknown kid {kid}"))?;
    let point = key.public.to_encoded_point(false);
    let decoding = DecodingKey::from_ec_der(point.as_bytes());
    let mut v = Validation::new(Algorithm::ES256);
    v.leeway = 0;
    v.set_audience(&[AUDIENCE]);
    v.set_issuer(&[&state.creds.issuer_id]);
    v.set_required_spec_claims(&["exp", "aud", "iss"]);
    let data = jsonwebtoken::decode::<AppStoreClaims>(token, &decoding, &v)
        .map_err(|e| format!("rejected: {e}"))?;
    let c = data.claims;
    if c.bid != BUNDLE_ID {
        return Err(format!("bid {} is not {BUNDLE_ID}", c.bid));
    }
    // Without iat the lifetime is measured from now: a missing iat must not let a token
    // live longer than 60 minutes.
    let from = c.iat.unwrap_or_else(|| (now_ms() / 1000).max(0) as u64);
    if c.exp > from + 3600 {
        return Err("lifetime over 60 minutes".into());
    }
    Ok(())
}

impl super::State {
    fn apple_key_revoked(&self, key_id: &str) -> bool {
        self.faults
            .read()
            .map(|f| f.revoked_apple_keys.iter().any(|k| k == key_id))
            .unwrap_or(false)
    }
}

macro_rules! authenticate {
    ($state:expr, $headers:expr) => {
        if let Err(why) = check_jwt(&$state, &$headers) {
            tracing::debug!(%why, "app store jwt refused");
            return unauthenticated();
        }
    };
}

fn find_transaction<'a>(state: &'a Shared, id: &str) -> Result<&'a IosFixture, Response> {
    if id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()) {
        return Err(apple_error(
            StatusCode::BAD_REQUEST,
            4000006,
            "Invalid transaction id.",
        ));
    }
    state
        .fixtures
        .ios
        .iter()
        .find(|t| t.transaction_id == id || t.original_transaction_id == id)
        .ok_or_else(|| apple_error(StatusCode::NOT_FOUND, 4040010, "Transaction id not found."))
}

const DAY_MS: i64 = 86_400_000;

/// JWSTransactionDecodedPayload, with Apple's field names and types.
pub fn transaction_payload(t: &IosFixture) -> Value {
    let now = now_ms();
    let purchase = now - DAY_MS;
    let mut p = json!({
        "transactionId": t.transaction_id,
        "originalTransactionId": t.original_transaction_id,
        "bundleId": BUNDLE_ID,
        "productId": t.product_id,
        "purchaseDate": purchase,
        "originalPurchaseDate": purchase,
        "quantity": 1,
        "type": t.kind,
        "inAppOwnershipType": "PURCHASED",
        "signedDate": now,
        "environment": "Sandbox",
        "transactionReason": "PURCHASE",
        "storefront": "USA",
        "storefrontId": "143441",
        "price": 9990,
        "currency": "USD",
        "appTransactionId": "704289572311031585",
    });
    if t.kind == "Auto-Renewable Subscription" {
        p["expiresDate"] = json!(purchase + 30 * DAY_MS);
        p["webOrderLineItemId"] = json!("2000000000900001");
        p["subscriptionGroupIdentifier"] = json!("21000001");
    }
    p
}

fn sign(state: &Shared, payload: &Value) -> Result<String, Response> {
    state.ca.sign(payload, state.jws_mode()).map_err(|e| {
        tracing::error!(error = %e, "signing failed");
        apple_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            5000000,
            "An unknown error occurred.",
        )
    })
}

async fn transaction(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    authenticate!(state, headers);
    let t = match find_transaction(&state, &id) {
        Ok(t) => t,
        Err(r) => return r,
    };
    match sign(&state, &transaction_payload(t)) {
        Ok(jws) => Json(json!({"signedTransactionInfo": jws})).into_response(),
        Err(r) => r,
    }
}

/// The transaction `type` a history `productType` filter selects.
fn product_type(filter: &str) -> Option<&'static str> {
    Some(match filter {
        "AUTO_RENEWABLE" => "Auto-Renewable Subscription",
        "NON_RENEWABLE" => "Non-Renewing Subscription",
        "CONSUMABLE" => "Consumable",
        "NON_CONSUMABLE" => "Non-Consumable",
        _ => return None,
    })
}

async fn history(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
) -> Response {
    authenticate!(state, headers);
    if let Err(r) = find_transaction(&state, &id) {
        return r;
    }
    let mut products = Vec::new();
    let mut types: Vec<&'static str> = Vec::new();
    let mut descending = false;
    let mut revoked = None;
    for (k, v) in url::form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        match k.as_ref() {
            "productId" => products.push(v.to_string()),
            "productType" => match product_type(&v) {
                Some(t) => types.push(t),
                None => {
                    return apple_error(StatusCode::BAD_REQUEST, 4000022, "Invalid product type.");
                }
            },
            "sort" => match v.as_ref() {
                "ASCENDING" => descending = false,
                "DESCENDING" => descending = true,
                _ => return apple_error(StatusCode::BAD_REQUEST, 4000021, "Invalid sort."),
            },
            // Apple's Python library sends str(bool): "True"/"False"; Java/Node send "true".
            "revoked" => match v.to_ascii_lowercase().as_str() {
                "true" => revoked = Some(true),
                "false" => revoked = Some(false),
                _ => return apple_error(StatusCode::BAD_REQUEST, 4000030, "Invalid revoked."),
            },
            // Accepted and not needed by a single-page fake.
            _ => {}
        }
    }
    let mut list: Vec<&IosFixture> = state
        .fixtures
        .ios
        .iter()
        .filter(|t| products.is_empty() || products.contains(&t.product_id))
        .filter(|t| types.is_empty() || types.contains(&t.kind.as_str()))
        .filter(|_| revoked != Some(true))
        .collect();
    if descending {
        list.reverse();
    }
    let mut signed = Vec::new();
    for t in list {
        match sign(&state, &transaction_payload(t)) {
            Ok(s) => signed.push(s),
            Err(r) => return r,
        }
    }
    Json(json!({
        "revision": "1_2000000000000002",
        "hasMore": false,
        "bundleId": BUNDLE_ID,
        "appAppleId": APP_APPLE_ID,
        "environment": "Sandbox",
        "signedTransactions": signed,
    }))
    .into_response()
}

async fn subscription_statuses(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    authenticate!(state, headers);
    let t = match find_transaction(&state, &id) {
        Ok(t) => t,
        Err(r) => return r,
    };
    let mut data = Vec::new();
    if t.kind == "Auto-Renewable Subscription" {
        let tx = transaction_payload(t);
        let renewal = json!({
            "originalTransactionId": t.original_transaction_id,
            "autoRenewProductId": t.product_id,
            "productId": t.product_id,
            "autoRenewStatus": 1,
            "signedDate": now_ms(),
            "environment": "Sandbox",
            "recentSubscriptionStartDate": tx["purchaseDate"],
            "renewalDate": tx["expiresDate"],
        });
        let (stx, sren) = match (sign(&state, &tx), sign(&state, &renewal)) {
            (Ok(a), Ok(b)) => (a, b),
            (Err(r), _) | (_, Err(r)) => return r,
        };
        data.push(json!({
            "subscriptionGroupIdentifier": "21000001",
            "lastTransactions": [{
                "originalTransactionId": t.original_transaction_id,
                "status": 1,
                "signedTransactionInfo": stx,
                "signedRenewalInfo": sren,
            }]
        }));
    }
    Json(json!({
        "environment": "Sandbox",
        "bundleId": BUNDLE_ID,
        "appAppleId": APP_APPLE_ID,
        "data": data,
    }))
    .into_response()
}

async fn request_test_notification(State(state): State<Shared>, headers: HeaderMap) -> Response {
    authenticate!(state, headers);
    let uuid = uuid::Uuid::new_v4().to_string();
    let payload = json!({
        "notificationType": "TEST",
        "notificationUUID": uuid,
        "data": {"bundleId": BUNDLE_ID, "appAppleId": APP_APPLE_ID, "environment": "Sandbox"},
        "version": "2.0",
        "signedDate": now_ms(),
    });
    let signed = match sign(&state, &payload) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let token = format!("{uuid}_{}", now_ms());
    if let Ok(mut m) = state.apple.test_notifications.lock() {
        m.insert(
            token.clone(),
            TestNotification {
                signed_payload: signed.clone(),
                attempts: Vec::new(),
            },
        );
    }
    tokio::spawn(deliver(state.clone(), token.clone(), signed));
    Json(json!({"testNotificationToken": token})).into_response()
}

/// Apple's `sendAttemptResult` for a failed delivery.
fn attempt_result(e: &reqwest::Error, https: bool) -> &'static str {
    let mut chain = String::new();
    let mut io_kind = None;
    let mut src: Option<&dyn std::error::Error> = Some(e);
    while let Some(s) = src {
        chain.push_str(&s.to_string().to_lowercase());
        chain.push('\n');
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            io_kind.get_or_insert(io.kind());
        }
        src = s.source();
    }
    if e.is_timeout() {
        "TIMED_OUT"
    } else if e.is_redirect() {
        "CIRCULAR_REDIRECT"
    } else if e.is_builder() {
        "OTHER"
    } else if e.is_connect() {
        // hyper-util names TCP-level failures "tcp connect error" (DNS: "dns error"); on
        // https, any other connect failure is the TLS handshake.
        let socket = chain.contains("tcp connect error") || chain.contains("dns error");
        if io_kind == Some(std::io::ErrorKind::ConnectionRefused) || chain.contains("refused") {
            // Nothing listening: no server answered at all.
            "NO_RESPONSE"
        } else if https && !socket {
            "TLS_ISSUE"
        } else {
            // Unreachable network or host, address not available, ...
            "SOCKET_ISSUE"
        }
    } else if chain.contains("invalid http") || chain.contains("message head") {
        // hyper's parse errors: what came back is not HTTP.
        "INVALID_RESPONSE"
    } else {
        // Connected and sent, then the connection ended (closed or reset) before a full
        // response: status line, headers and the whole body.
        "PREMATURE_CLOSE"
    }
}

/// POSTs the notification to the backend as Apple would, and records the attempt.
async fn deliver(state: Shared, token: String, signed: String) {
    // The App Store Connect notification URL; a fault can point it elsewhere.
    let url = state
        .faults
        .read()
        .ok()
        .and_then(|f| f.notification_url.clone())
        .unwrap_or_else(|| format!("{}/iap/notifications/apple", state.base_url));
    let https = url.starts_with("https://");
    let request = state
        .backend
        .client
        .post(&url)
        .timeout(Duration::from_secs(5))
        .json(&json!({"signedPayload": signed}));
    // The attempt is over only when the whole response is in: a status line followed by a
    // cut body is not a delivery. Chunks are dropped as read, so a huge body costs no memory.
    let sent = async move {
        let mut resp = request.send().await?;
        while resp.chunk().await?.is_some() {}
        Ok::<_, reqwest::Error>(resp.status())
    };
    let result = tokio::select! {
        r = sent => match r {
            Ok(status) if status.is_success() => "SUCCESS",
            Ok(_) => "UNSUCCESSFUL_HTTP_RESPONSE_CODE",
            Err(e) => attempt_result(&e, https),
        },
        _ = state.shutting_down() => "NO_RESPONSE",
    };
    if let Ok(mut m) = state.apple.test_notifications.lock()
        && let Some(n) = m.get_mut(&token)
    {
        n.attempts
            .push(json!({"attemptDate": now_ms(), "sendAttemptResult": result}));
    }
}

async fn test_notification_status(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path(token): Path<String>,
) -> Response {
    authenticate!(state, headers);
    let found = state
        .apple
        .test_notifications
        .lock()
        .ok()
        .and_then(|m| m.get(&token).cloned());
    match found {
        Some(n) => Json(json!({
            "signedPayload": n.signed_payload,
            "sendAttempts": n.attempts,
        }))
        .into_response(),
        None => apple_error(
            StatusCode::NOT_FOUND,
            4040008,
            "Test notification not found.",
        ),
    }
}
