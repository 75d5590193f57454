//! The reference IAP backend: the contract in DESIGN.md. `/iap/verify` really calls the
//! fake Apple or Google API over HTTP with its own credentials, verifies Apple's signed
//! data, and grants the entitlement, which becomes visible after the propagation delay.
//! Entitlement reads go through a TTL cache whose statistics `/iap/cache/stats` reports.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use rand::Rng;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::OnceCell;

use super::creds::{BUNDLE_ID, Credentials, PACKAGE_NAME};
use super::middleware::{forbidden, is_admin};
use super::{Map, Shared, now_ms};
use crate::auth::{AppStoreSigner, GoogleTokenSource};
use crate::jws::TrustAnchors;

/// Cache traffic of the users the sandbox does not model one by one, so the hit ratio
/// reads like production's: lookups per second and the healthy hit ratio.
const POPULATION_LOOKUPS_PER_SEC: f64 = 20.0;
const POPULATION_HIT_RATIO: f64 = 0.95;
/// The population has been running this long when the sandbox starts, so the first
/// figures (and a freshly started `probe demo`) read like a warm cache, not like the
/// handful of misses of the first requests.
const POPULATION_WARMUP_SECS: f64 = 60.0;

pub struct BackendState {
    pub client: reqwest::Client,
    apple: AppStoreSigner,
    google_key: Value,
    google: OnceCell<GoogleTokenSource>,
    anchors: Mutex<TrustAnchors>,
    grants: Map<Vec<Grant>>,
    cache: Mutex<Cache>,
    notifications: Mutex<Vec<Value>>,
    started: Instant,
}

#[derive(Clone)]
struct Grant {
    entitlement: Value,
    visible_at: Instant,
}

#[derive(Default)]
struct Cache {
    entries: HashMap<String, (Vec<Value>, Instant)>,
    hits: u64,
    misses: u64,
    refreshes: u64,
}

impl BackendState {
    pub fn new(creds: &Credentials, base_url: &str) -> Result<Self, String> {
        let apple = AppStoreSigner::from_pem(
            &creds.backend_key.pkcs8_pem,
            &creds.backend_key.key_id,
            &creds.issuer_id,
            BUNDLE_ID,
        )
        .map_err(|e| e.to_string())?;
        // It only ever calls this sandbox's own listener: an HTTP(S)_PROXY in the
        // environment must not send those calls elsewhere.
        let client = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| e.to_string())?;
        Ok(BackendState {
            client,
            apple,
            google_key: creds.service_account_json(&format!("{base_url}/token")),
            google: OnceCell::new(),
            anchors: Mutex::new(TrustAnchors::default()),
            grants: Default::default(),
            cache: Default::default(),
            notifications: Default::default(),
            started: Instant::now(),
        })
    }

    pub fn trust(&self, root_der: Vec<u8>) {
        if let Ok(mut a) = self.anchors.lock() {
            *a = TrustAnchors(vec![root_der]);
        }
    }

    fn anchors(&self) -> TrustAnchors {
        self.anchors.lock().map(|a| a.clone()).unwrap_or_default()
    }
}

pub fn routes() -> Router<Shared> {
    Router::new()
        .route("/iap/health", get(health))
        .route("/iap/verify", post(verify))
        .route("/iap/user/{user}/entitlements", get(entitlements))
        .route("/iap/cache/stats", get(cache_stats))
        .route("/iap/cache/refresh/{user}", post(cache_refresh))
        .route("/iap/entitlements/grant", post(grant))
        .route("/iap/entitlements/batch-refresh", post(batch_refresh))
        .route("/iap/notifications/apple", post(apple_notification))
        .route("/iap/notifications/apple/recent", get(recent_notifications))
}

fn reply(status: StatusCode, body: Value) -> Response {
    (status, Json(body)).into_response()
}

fn invalid(status: StatusCode, reason: impl Into<String>) -> Response {
    reply(status, json!({"valid": false, "error": reason.into()}))
}

async fn health(State(state): State<Shared>) -> Response {
    reply(
        StatusCode::OK,
        json!({
            "status": "ok",
            "service": "iap-backend (sandbox)",
            "uptimeSeconds": state.backend.started.elapsed().as_secs(),
            "checks": {"apple": "configured", "google": "configured", "cache": "ok"},
        }),
    )
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct VerifyRequest {
    platform: Option<String>,
    user_id: Option<String>,
    product_id: Option<String>,
    transaction_id: Option<String>,
    purchase_token: Option<String>,
    /// Android only: "product" (default) or "subscription".
    #[serde(rename = "type")]
    kind: Option<String>,
}

async fn verify(State(state): State<Shared>, body: String) -> Response {
    let req: VerifyRequest = match serde_json::from_str(&body) {
        Ok(r) => r,
        Err(e) => return invalid(StatusCode::BAD_REQUEST, format!("invalid JSON body: {e}")),
    };
    let present = |v: &Option<String>| v.clone().filter(|s| !s.trim().is_empty());
    let (Some(user), Some(product)) = (present(&req.user_id), present(&req.product_id)) else {
        return invalid(StatusCode::BAD_REQUEST, "userId and productId are required");
    };
    let verified = match req.platform.as_deref() {
        Some("ios") => match &present(&req.transaction_id) {
            Some(id) => verify_ios(&state, id, &product).await,
            None => return invalid(StatusCode::BAD_REQUEST, "transactionId is required for ios"),
        },
        Some("android") => match &present(&req.purchase_token) {
            Some(t) => verify_android(&state, t, &product, req.kind.as_deref()).await,
            None => {
                return invalid(
                    StatusCode::BAD_REQUEST,
                    "purchaseToken is required for android",
                );
            }
        },
        _ => return invalid(StatusCode::BAD_REQUEST, "platform must be ios or android"),
    };
    let mut entitlement = match verified {
        Ok(e) => e,
        Err(r) => return r,
    };
    entitlement["productId"] = json!(product);
    entitlement["source"] = json!("purchase");
    entitlement["grantedAt"] = json!(now_ms());
    let delay = state.faults().entitlement_delay();
    add_grant(&state, &user, entitlement.clone(), delay);
    let mut out = json!({"valid": true, "userId": user, "environment": "Sandbox"});
    if let (Some(o), Some(e)) = (out.as_object_mut(), entitlement.as_object()) {
        for (k, v) in e {
            o.entry(k.clone()).or_insert(v.clone());
        }
    }
    reply(StatusCode::OK, out)
}

fn add_grant(state: &Shared, user: &str, entitlement: Value, delay: Duration) {
    if let Ok(mut g) = state.backend.grants.lock() {
        g.entry(user.to_string()).or_default().push(Grant {
            entitlement,
            visible_at: Instant::now() + delay,
        });
    }
}

fn upstream(platform: &str, status: reqwest::StatusCode, body: &str) -> Response {
    let snippet: String = body.chars().take(200).collect();
    invalid(
        StatusCode::BAD_GATEWAY,
        format!(
            "{platform} API answered HTTP {}: {snippet}",
            status.as_u16()
        ),
    )
}

async fn verify_ios(
    state: &Shared,
    transaction_id: &str,
    product: &str,
) -> Result<Value, Response> {
    let token = state
        .backend
        .apple
        .token()
        .map_err(|e| invalid(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    let url = format!("{}/inApps/v1/transactions/{transaction_id}", state.base_url);
    let resp = state
        .backend
        .client
        .get(&url)
        .bearer_auth(token.token.expose())
        .send()
        .await
        .map_err(|e| {
            invalid(
                StatusCode::BAD_GATEWAY,
                format!("apple API unreachable: {e}"),
            )
        })?;
    let status = resp.status();
    let text = resp.text().await.unwrap_or_default();
    match status.as_u16() {
        200 => {}
        400 | 404 => {
            return Err(invalid(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("apple does not know transaction {transaction_id}"),
            ));
        }
        _ => return Err(upstream("apple", status, &text)),
    }
    let signed = serde_json::from_str::<Value>(&text)
        .ok()
        .and_then(|v| v["signedTransactionInfo"].as_str().map(String::from))
        .ok_or_else(|| upstream("apple", status, &text))?;
    let payload = crate::jws::verify(&signed, &state.backend.anchors()).map_err(|e| {
        invalid(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("signed transaction rejected: {e}"),
        )
    })?;
    if payload["bundleId"] != BUNDLE_ID || payload["environment"] != "Sandbox" {
        return Err(invalid(
            StatusCode::UNPROCESSABLE_ENTITY,
            "transaction belongs to another app or environment",
        ));
    }
    if payload["productId"] != product {
        return Err(invalid(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("transaction is for {}, not {product}", payload["productId"]),
        ));
    }
    Ok(json!({
        "platform": "ios",
        "transactionId": transaction_id,
        "originalTransactionId": payload["originalTransactionId"],
        "expiresDate": payload.get("expiresDate").cloned().unwrap_or(Value::Null),
    }))
}

/// The backend's Google access token: cached, or (`refresh`) fetched anew after a 401.
async fn google_token(state: &Shared, refresh: bool) -> Result<String, Response> {
    let source = state
        .backend
        .google
        .get_or_try_init(|| async {
            let key: yup_oauth2::ServiceAccountKey =
                serde_json::from_value(state.backend.google_key.clone())
                    .map_err(|e| e.to_string())?;
            GoogleTokenSource::from_key(key, Duration::from_secs(10))
                .await
                .map_err(|e| e.to_string())
        })
        .await
        .map_err(|e| invalid(StatusCode::BAD_GATEWAY, format!("google credentials: {e}")))?;
    let t = if refresh {
        source.refresh().await
    } else {
        source.token().await
    };
    let t = t.map_err(|e| invalid(StatusCode::BAD_GATEWAY, format!("google token: {e}")))?;
    Ok(t.token.expose().to_string())
}

async fn verify_android(
    state: &Shared,
    token: &str,
    product: &str,
    kind: Option<&str>,
) -> Result<Value, Response> {
    let subscription = kind == Some("subscription");
    let base = format!(
        "{}/androidpublisher/v3/applications/{PACKAGE_NAME}/purchases",
        state.base_url
    );
    let url = if subscription {
        format!("{base}/subscriptionsv2/tokens/{token}")
    } else {
        format!("{base}/products/{product}/tokens/{token}")
    };
    let lookup = |access: String| state.backend.client.get(&url).bearer_auth(access).send();
    let unreachable = |e: reqwest::Error| {
        invalid(
            StatusCode::BAD_GATEWAY,
            format!("google API unreachable: {e}"),
        )
    };
    let mut resp = lookup(google_token(state, false).await?)
        .await
        .map_err(unreachable)?;
    if resp.status() == reqwest::StatusCode::UNAUTHORIZED {
        // A revoked or expired token: get a new one and retry once, as Google's client
        // libraries do.
        resp = lookup(google_token(state, true).await?)
            .await
            .map_err(unreachable)?;
    }
    let status = resp.status();
    let text = resp.text().await.unwrap_or_default();
    if status == reqwest::StatusCode::NOT_FOUND {
        return Err(invalid(
            StatusCode::UNPROCESSABLE_ENTITY,
            "google does not know this purchase token",
        ));
    }
    if !status.is_success() {
        return Err(upstream("google", status, &text));
    }
    let p: Value = serde_json::from_str(&text).map_err(|_| upstream("google", status, &text))?;
    if subscription {
        let active = matches!(
            p["subscriptionState"].as_str(),
            Some("SUBSCRIPTION_STATE_ACTIVE" | "SUBSCRIPTION_STATE_IN_GRACE_PERIOD")
        );
        let item = p["lineItems"]
            .as_array()
            .and_then(|l| l.iter().find(|i| i["productId"] == product));
        match (active, item) {
            (true, Some(i)) => Ok(json!({
                "platform": "android",
                "orderId": p["latestOrderId"],
                "expiryTime": i["expiryTime"],
            })),
            _ => Err(invalid(
                StatusCode::UNPROCESSABLE_ENTITY,
                "subscription is not active for this product",
            )),
        }
    } else if p["purchaseState"] == 0 {
        Ok(json!({"platform": "android", "orderId": p["orderId"]}))
    } else {
        Err(invalid(
            StatusCode::UNPROCESSABLE_ENTITY,
            "purchase is not in the purchased state",
        ))
    }
}

/// Visible entitlements of `user`, through the cache.
fn lookup(state: &Shared, user: &str, force: bool) -> (Vec<Value>, bool) {
    let now = Instant::now();
    let (visible, last_change) = {
        let grants = state
            .backend
            .grants
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let list = grants.get(user).cloned().unwrap_or_default();
        let vis: Vec<&Grant> = list.iter().filter(|g| g.visible_at <= now).collect();
        let last = vis.iter().map(|g| g.visible_at).max();
        (
            vis.iter()
                .map(|g| g.entitlement.clone())
                .collect::<Vec<_>>(),
            last,
        )
    };
    let degraded = state
        .faults()
        .cache_hit_degradation
        .filter(|p| *p > 0.0)
        .is_some_and(|p| {
            state
                .rng
                .lock()
                .map(|mut r| r.random_bool(p.min(1.0)))
                .unwrap_or(false)
        });
    let mut cache = state
        .backend
        .cache
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    if !force
        && !degraded
        && let Some((list, at)) = cache.entries.get(user)
        && now < *at + state.cache_ttl
        && last_change.is_none_or(|c| c <= *at)
    {
        let list = list.clone();
        cache.hits += 1;
        return (list, true);
    }
    cache.misses += 1;
    cache
        .entries
        .insert(user.to_string(), (visible.clone(), now));
    (visible, false)
}

async fn entitlements(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path(user): Path<String>,
) -> Response {
    if !is_admin(&state, &headers) {
        return forbidden();
    }
    let (list, hit) = lookup(&state, &user, false);
    reply(
        StatusCode::OK,
        json!({"userId": user, "entitlements": list, "cached": hit}),
    )
}

async fn cache_stats(State(state): State<Shared>) -> Response {
    let degradation = state.faults().cache_hit_degradation.unwrap_or(0.0);
    let lookups = (state.backend.started.elapsed().as_secs_f64() + POPULATION_WARMUP_SECS)
        * POPULATION_LOOKUPS_PER_SEC;
    let pop_hits = (lookups * POPULATION_HIT_RATIO * (1.0 - degradation)).floor() as u64;
    let pop_misses = lookups.floor() as u64 - pop_hits.min(lookups.floor() as u64);
    let c = state
        .backend
        .cache
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    let hits = c.hits + pop_hits;
    let misses = c.misses + pop_misses;
    let ratio = if hits + misses == 0 {
        // No traffic yet: the healthy figure, degraded as configured.
        POPULATION_HIT_RATIO * (1.0 - degradation)
    } else {
        hits as f64 / (hits + misses) as f64
    };
    reply(
        StatusCode::OK,
        json!({
            "hits": hits,
            "misses": misses,
            "hitRatio": (ratio * 10_000.0).round() / 10_000.0,
            "size": c.entries.len(),
            "refreshes": c.refreshes,
            "ttlSeconds": state.cache_ttl.as_secs(),
            // The share of hits and misses above that comes from the simulated population
            // (not from requests to this sandbox).
            "simulated": {"hits": pop_hits, "misses": pop_misses},
        }),
    )
}

async fn cache_refresh(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path(user): Path<String>,
) -> Response {
    if !is_admin(&state, &headers) {
        return forbidden();
    }
    let (list, _) = lookup(&state, &user, true);
    if let Ok(mut c) = state.backend.cache.lock() {
        c.refreshes += 1;
    }
    reply(
        StatusCode::OK,
        json!({"userId": user, "refreshed": true, "entitlements": list.len()}),
    )
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct GrantRequest {
    user_id: String,
    product_id: String,
    reason: String,
}

async fn grant(State(state): State<Shared>, headers: HeaderMap, body: String) -> Response {
    if !is_admin(&state, &headers) {
        return forbidden();
    }
    let req: GrantRequest = match serde_json::from_str(&body) {
        Ok(r) => r,
        Err(e) => {
            return reply(
                StatusCode::BAD_REQUEST,
                json!({"error": format!("expected {{userId, productId, reason}}: {e}")}),
            );
        }
    };
    let entitlement = json!({
        "productId": req.product_id, "source": "manual-grant",
        "reason": req.reason, "grantedAt": now_ms(),
    });
    add_grant(&state, &req.user_id, entitlement.clone(), Duration::ZERO);
    tracing::info!(user = %req.user_id, product = %req.product_id, reason = %req.reason, "audit: manual entitlement grant");
    reply(
        StatusCode::OK,
        json!({"granted": true, "userId": req.user_id, "entitlement": entitlement}),
    )
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct BatchRequest {
    user_ids: Vec<String>,
    #[serde(default)]
    force_refresh: bool,
}

async fn batch_refresh(State(state): State<Shared>, headers: HeaderMap, body: String) -> Response {
    if !is_admin(&state, &headers) {
        return forbidden();
    }
    let req: BatchRequest = match serde_json::from_str(&body) {
        Ok(r) => r,
        Err(e) => {
            return reply(
                StatusCode::BAD_REQUEST,
                json!({"error": format!("expected {{userIds, forceRefresh}}: {e}")}),
            );
        }
    };
    for u in &req.user_ids {
        lookup(&state, u, req.force_refresh);
    }
    reply(
        StatusCode::OK,
        json!({"refreshed": req.user_ids.len(), "forceRefresh": req.force_refresh}),
    )
}

async fn apple_notification(State(state): State<Shared>, body: String) -> Response {
    let signed = serde_json::from_str::<Value>(&body)
        .ok()
        .and_then(|v| v["signedPayload"].as_str().map(String::from));
    let Some(signed) = signed else {
        return reply(
            StatusCode::BAD_REQUEST,
            json!({"error": "expected {\"signedPayload\": JWS}"}),
        );
    };
    let payload = match crate::jws::verify(&signed, &state.backend.anchors()) {
        Ok(p) => p,
        Err(e) => {
            return reply(
                StatusCode::BAD_REQUEST,
                json!({"error": format!("notification rejected: {e}")}),
            );
        }
    };
    if payload["data"]["bundleId"] != BUNDLE_ID {
        return reply(
            StatusCode::BAD_REQUEST,
            json!({"error": "notification for another bundle"}),
        );
    }
    let summary = json!({
        "notificationUUID": payload["notificationUUID"],
        "notificationType": payload["notificationType"],
        "environment": payload["data"]["environment"],
        "signedDate": payload["signedDate"],
        "receivedAt": now_ms(),
    });
    if let Ok(mut n) = state.backend.notifications.lock() {
        n.push(summary);
        let excess = n.len().saturating_sub(100);
        n.drain(..excess);
    }
    reply(StatusCode::OK, json!({"received": true}))
}

async fn recent_notifications(State(state): State<Shared>, headers: HeaderMap) -> Response {
    if !is_admin(&state, &headers) {
        return forbidden();
    }
    let list = state
        .backend
        .notifications
        .lock()
        .map(|n| n.clone())
        .unwrap_or_default();
    reply(StatusCode::OK, json!({"notifications": list}))
}
