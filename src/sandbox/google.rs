//! Google's OAuth2 token endpoint (JWT-bearer grant, RS256 assertion verified with the
//! service account's public key) and the Play Developer API v3 purchase lookups.

use std::time::{Duration, Instant};

use axum::extract::{Form, Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::Rng;
use rand::distr::Alphanumeric;
use rsa::pkcs1v15::{Signature, VerifyingKey};
use rsa::signature::Verifier;
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::Sha256;

use super::creds::{AndroidFixture, Fixtures, PACKAGE_NAME};
use super::{Map, Shared, now_ms};

pub const GRANT_TYPE: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
pub const GOOGLE_TOKEN_AUD: &str = "https://oauth2.googleapis.com/token";
const SCOPE: &str = "https://www.googleapis.com/auth/androidpublisher";
/// Google's access-token lifetime (`expires_in`).
pub const TOKEN_LIFETIME: Duration = Duration::from_secs(3599);

pub struct GoogleState {
    /// Issued access tokens and when they expire.
    tokens: Map<Instant>,
    /// Purchase time of every fixture, fixed at start-up.
    purchase_ms: i64,
    /// How long an issued access token lives (whole seconds: `expires_in` is an integer).
    token_lifetime: Duration,
}

impl GoogleState {
    pub fn new(_fixtures: &Fixtures, token_lifetime: Duration) -> Self {
        GoogleState {
            tokens: Default::default(),
            purchase_ms: now_ms() - 86_400_000,
            // Never more than expires_in says, so a client trusting it is never refused early.
            token_lifetime: Duration::from_secs(token_lifetime.as_secs().max(1)),
        }
    }

    pub fn revoke_all(&self) -> usize {
        let mut t = self.tokens.lock().unwrap_or_else(|p| p.into_inner());
        let n = t.len();
        let past = Instant::now();
        for exp in t.values_mut() {
            *exp = past;
        }
        n
    }

    fn valid(&self, token: &str) -> bool {
        self.tokens
            .lock()
            .map(|t| t.get(token).is_some_and(|exp| Instant::now() < *exp))
            .unwrap_or(false)
    }
}

pub fn routes() -> Router<Shared> {
    Router::new()
        .route("/token", post(token))
        .route(
            "/androidpublisher/v3/applications/{package}/purchases/products/{product}/tokens/{token}",
            get(product_purchase),
        )
        .route(
            "/androidpublisher/v3/applications/{package}/purchases/subscriptionsv2/tokens/{token}",
            get(subscription_purchase),
        )
}

/// Google's API error envelope.
pub fn error_envelope(status: StatusCode, message: &str) -> Value {
    let (reason, name) = match status.as_u16() {
        401 => ("authError", "UNAUTHENTICATED"),
        403 => ("forbidden", "PERMISSION_DENIED"),
        404 => ("notFound", "NOT_FOUND"),
        429 => ("rateLimitExceeded", "RESOURCE_EXHAUSTED"),
        400 => ("badRequest", "INVALID_ARGUMENT"),
        503 => ("backendError", "UNAVAILABLE"),
        _ => ("backendError", "INTERNAL"),
    };
    json!({"error": {
        "code": status.as_u16(),
        "message": message,
        "errors": [{"message": message, "domain": "global", "reason": reason}],
        "status": name,
    }})
}

fn api_error(status: StatusCode, message: &str) -> Response {
    (status, Json(error_envelope(status, message))).into_response()
}

fn grant_error(error: &str, description: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(json!({"error": error, "error_description": description})),
    )
        .into_response()
}

#[derive(Deserialize)]
struct TokenForm {
    grant_type: Option<String>,
    assertion: Option<String>,
}

#[derive(Deserialize)]
struct AssertionClaims {
    iss: Option<String>,
    scope: Option<String>,
    aud: Option<String>,
    exp: Option<i64>,
    iat: Option<i64>,
}

/// base64url, with or without `=` padding (yup-oauth2 pads; RFC 7515 does not).
fn b64(segment: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(segment.trim_end_matches('=')).ok()
}

/// Checks an assertion as Google's token endpoint does; `Err` is the error_description.
pub fn verify_assertion(state: &Shared, assertion: &str) -> Result<(), (&'static str, String)> {
    let bad = |d: &str| ("invalid_grant", d.to_string());
    let parts: Vec<&str> = assertion.split('.').collect();
    let [h, c, s] = parts[..] else {
        return Err(bad("Invalid JWT: not a three-part JWT."));
    };
    let header: Value = b64(h)
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or_else(|| bad("Invalid JWT header."))?;
    if header["alg"] != "RS256" {
        return Err(bad("Invalid JWT: alg must be RS256."));
    }
    if let Some(kid) = header.get("kid").and_then(Value::as_str)
        && kid != state.creds.google_key_id
    {
        return Err(bad("Invalid JWT Signature."));
    }
    let sig = b64(s).ok_or_else(|| bad("Invalid JWT Signature."))?;
    let signature =
        Signature::try_from(sig.as_slice()).map_err(|_| bad("Invalid JWT Signature."))?;
    let key = VerifyingKey::<Sha256>::new(state.creds.google_public.clone());
    // The signature covers the segments exactly as sent, padding included.
    key.verify(format!("{h}.{c}").as_bytes(), &signature)
        .map_err(|_| bad("Invalid JWT Signature."))?;
    let claims: AssertionClaims = b64(c)
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or_else(|| bad("Invalid JWT claims."))?;
    if claims.iss.as_deref() != Some(state.creds.google_client_email.as_str()) {
        return Err(bad("Invalid email or User ID"));
    }
    let own = format!("{}/token", state.base_url);
    match claims.aud.as_deref() {
        Some(a) if a == own || a == GOOGLE_TOKEN_AUD => {}
        _ => return Err(bad("Invalid JWT: Failed audience check.")),
    }
    let scopes = claims.scope.unwrap_or_default();
    if !scopes.split(' ').any(|s| s == SCOPE) {
        return Err((
            "invalid_scope",
            format!("Invalid OAuth scope or ID token audience provided: {SCOPE} is required."),
        ));
    }
    let now = now_ms() / 1000;
    let timeframe = "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe. Check your iat and exp values in the JWT claim.";
    match (claims.iat, claims.exp) {
        (Some(iat), Some(exp)) if exp > now && exp <= iat + 3600 && iat <= now + 300 => Ok(()),
        _ => Err(bad(timeframe)),
    }
}

async fn token(State(state): State<Shared>, Form(form): Form<TokenForm>) -> Response {
    if form.grant_type.as_deref() != Some(GRANT_TYPE) {
        return grant_error(
            "unsupported_grant_type",
            &format!(
                "Invalid grant_type: {}",
                form.grant_type.unwrap_or_default()
            ),
        );
    }
    let Some(assertion) = form.assertion else {
        return grant_error("invalid_request", "Missing required parameter: assertion");
    };
    if let Err((error, description)) = verify_assertion(&state, &assertion) {
        tracing::debug!(%description, "google assertion refused");
        return grant_error(error, &description);
    }
    let access: String = rand::rng()
        .sample_iter(&Alphanumeric)
        .take(120)
        .map(char::from)
        .collect();
    let access = format!("ya29.sandbox-{access}");
    if let Ok(mut t) = state.google.tokens.lock() {
        t.retain(|_, exp| *exp > Instant::now());
        t.insert(access.clone(), Instant::now() + state.google.token_lifetime);
    }
    Json(json!({
        "access_token": access,
        "expires_in": state.google.token_lifetime.as_secs(),
        "token_type": "Bearer",
    }))
    .into_response()
}

fn authorize(state: &Shared, headers: &HeaderMap) -> Result<(), Response> {
    let ok = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|t| state.google.valid(t));
    if ok {
        Ok(())
    } else {
        Err(api_error(
            StatusCode::UNAUTHORIZED,
            "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential.",
        ))
    }
}

fn find_purchase<'a>(
    state: &'a Shared,
    package: &str,
    token: &str,
    kind: &str,
) -> Result<&'a AndroidFixture, Response> {
    if package != PACKAGE_NAME {
        return Err(api_error(
            StatusCode::NOT_FOUND,
            "No application was found for the given package name.",
        ));
    }
    state
        .fixtures
        .android
        .iter()
        .find(|p| p.purchase_token == token && p.kind == kind)
        .ok_or_else(|| api_error(StatusCode::NOT_FOUND, "The purchase token was not found."))
}

async fn product_purchase(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path((package, product, token)): Path<(String, String, String)>,
) -> Response {
    if let Err(r) = authorize(&state, &headers) {
        return r;
    }
    let p = match find_purchase(&state, &package, &token, "product") {
        Ok(p) if p.product_id == product => p,
        Ok(_) => return api_error(StatusCode::NOT_FOUND, "The purchase token was not found."),
        Err(r) => return r,
    };
    Json(json!({
        "kind": "androidpublisher#productPurchase",
        "purchaseTimeMillis": state.google.purchase_ms.to_string(),
        "purchaseState": 0,
        "consumptionState": 0,
        "developerPayload": "",
        "orderId": p.order_id,
        "purchaseType": 0,
        "acknowledgementState": 1,
        "productId": p.product_id,
        "quantity": 1,
        "regionCode": "US",
    }))
    .into_response()
}

fn rfc3339(ms: i64) -> String {
    let t = std::time::UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64);
    humantime::format_rfc3339_millis(t).to_string()
}

async fn subscription_purchase(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path((package, token)): Path<(String, String)>,
) -> Response {
    if let Err(r) = authorize(&state, &headers) {
        return r;
    }
    let p = match find_purchase(&state, &package, &token, "subscription") {
        Ok(p) => p,
        Err(r) => return r,
    };
    let start = state.google.purchase_ms;
    Json(json!({
        "kind": "androidpublisher#subscriptionPurchaseV2",
        "regionCode": "US",
        "startTime": rfc3339(start),
        "subscriptionState": "SUBSCRIPTION_STATE_ACTIVE",
        "latestOrderId": p.order_id,
        "acknowledgementState": "ACKNOWLEDGEMENT_STATE_ACKNOWLEDGED",
        "testPurchase": {},
        "lineItems": [{
            "productId": p.product_id,
            "expiryTime": rfc3339(start + 30 * 86_400_000),
            "autoRenewingPlan": {"autoRenewEnabled": true},
            "offerDetails": {"basePlanId": "monthly"},
        }],
    }))
    .into_response()
}
