//! The fault-injection layer and the sandbox's own admin endpoints.
//!
//! Injected errors look like the real service's errors: Apple's `{errorCode, errorMessage}`
//! (429 with `Retry-After` in absolute UNIX milliseconds), Google's error envelope, the
//! backend's `{"error": ...}`. An outage is a load balancer's HTML 503.

use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use super::faults::{Action, FaultSpec};
use super::{Shared, now_ms};

/// Sleeps `d` to within a fraction of a millisecond. tokio's timer wheel has millisecond
/// ticks and fires a tick or two late (+1.5 ms on 20 ms, seen by every client alike), which
/// would blur the injected latency that fidelity tests and benchmarks compare against; the
/// last stretch is slept on a blocking thread, whose `nanosleep` is precise to tens of µs.
async fn precise_sleep(d: Duration) {
    const SLACK: Duration = Duration::from_millis(3);
    let until = tokio::time::Instant::now() + d;
    if d > SLACK {
        tokio::time::sleep_until(until - SLACK).await;
    }
    let rest = until.saturating_duration_since(tokio::time::Instant::now());
    if !rest.is_zero() {
        // The blocking pool is only held for the last few ms of each delay.
        let _ = tokio::task::spawn_blocking(move || std::thread::sleep(rest)).await;
    }
}

pub async fn inject_faults(State(state): State<Shared>, req: Request, next: Next) -> Response {
    let path = req.uri().path().to_string();
    if path.starts_with("/sandbox/") {
        return next.run(req).await;
    }
    let decision = {
        let faults = state.faults.read();
        let rule = faults
            .as_ref()
            .ok()
            .and_then(|f| f.route_for(req.method().as_str(), &path).cloned());
        rule.map(|r| match state.rng.lock() {
            Ok(mut rng) => r.decide(&mut rng),
            Err(_) => (Duration::ZERO, Action::Pass),
        })
    };
    let Some((latency, action)) = decision else {
        return next.run(req).await;
    };
    if !latency.is_zero() {
        tokio::select! {
            _ = precise_sleep(latency) => {}
            _ = state.shutting_down() => return unavailable(),
        }
    }
    match action {
        Action::Pass => next.run(req).await,
        Action::Hang => {
            state.shutting_down().await;
            unavailable()
        }
        Action::Outage => unavailable(),
        Action::Hostile(h) => hostile(&state, h),
        Action::Fail {
            status,
            retry_after,
            http_date,
        } => injected_error(&path, status, retry_after, http_date),
    }
}

/// Odd answers: a body that is not what the client expects, one that never ends, one
/// that is cut halfway.
fn hostile(state: &Shared, h: super::faults::Hostile) -> Response {
    use axum::body::Body;
    use futures_util::stream;
    let status = StatusCode::from_u16(h.status).unwrap_or(StatusCode::OK);
    let ctype = h.content_type.clone().unwrap_or_else(|| {
        if h.body.is_some() {
            "text/html"
        } else {
            "application/json"
        }
        .to_string()
    });
    let mut resp = if h.trickle {
        let state = state.clone();
        // One byte a second until the sandbox stops.
        let s = stream::unfold(state, |state| async move {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                _ = state.shutting_down() => return None,
            }
            Some((
                Ok::<_, std::io::Error>(axum::body::Bytes::from_static(b" ")),
                state,
            ))
        });
        let first = stream::iter([Ok::<_, std::io::Error>(axum::body::Bytes::from_static(
            b"{",
        ))]);
        Response::new(Body::from_stream(futures_util::StreamExt::chain(first, s)))
    } else if h.reset {
        let parts = [
            Ok(axum::body::Bytes::from_static(b"{\"valid\": tr")),
            Err(std::io::Error::new(
                std::io::ErrorKind::ConnectionReset,
                "injected reset",
            )),
        ];
        let mut r = Response::new(Body::from_stream(stream::iter(parts)));
        r.headers_mut()
            .insert(header::CONTENT_LENGTH, HeaderValue::from(1024u64));
        r
    } else if let Some(n) = h.body_bytes {
        const CHUNK: usize = 64 * 1024;
        let chunk = axum::body::Bytes::from(vec![b' '; CHUNK]);
        let s = stream::unfold(n, move |left| {
            let chunk = chunk.clone();
            async move {
                (left > 0).then(|| {
                    let take = left.min(CHUNK as u64);
                    (
                        Ok::<_, std::io::Error>(chunk.slice(..take as usize)),
                        left - take,
                    )
                })
            }
        });
        let mut r = Response::new(Body::from_stream(s));
        r.headers_mut()
            .insert(header::CONTENT_LENGTH, HeaderValue::from(n));
        r
    } else {
        Response::new(Body::from(h.body.clone().unwrap_or_default()))
    };
    *resp.status_mut() = status;
    if let Ok(v) = HeaderValue::from_str(&ctype) {
        resp.headers_mut().insert(header::CONTENT_TYPE, v);
    }
    resp
}

fn unavailable() -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        [(header::CONTENT_TYPE, "text/html")],
        "<html><head><title>503 Service Temporarily Unavailable</title></head>\
         <body><center><h1>503 Service Temporarily Unavailable</h1></center></body></html>",
    )
        .into_response()
}

fn injected_error(
    path: &str,
    status: u16,
    retry_after: Option<Duration>,
    http_date: bool,
) -> Response {
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let wait = retry_after.unwrap_or(Duration::from_secs(1));
    let mut headers = HeaderMap::new();
    let body = if path.starts_with("/inApps/") {
        if code == StatusCode::TOO_MANY_REQUESTS {
            // Apple: Retry-After is an absolute UNIX time in milliseconds.
            let at = now_ms() + wait.as_millis() as i64;
            headers.insert("retry-after", HeaderValue::from(at));
        }
        super::apple::error_body(code)
    } else {
        if matches!(code.as_u16(), 429 | 503) {
            // Delta seconds, rounded up: a client must not come back early.
            let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            if http_date {
                // Whole seconds too: one more, so the truncated date is not early.
                let at = std::time::SystemTime::now() + Duration::from_secs(secs.max(1) + 1);
                if let Ok(v) = HeaderValue::from_str(&httpdate::fmt_http_date(at)) {
                    headers.insert("retry-after", v);
                }
            } else {
                headers.insert("retry-after", HeaderValue::from(secs.max(1)));
            }
        }
        if path == "/token" {
            // The OAuth2 token endpoint answers in RFC 6749's shape, not the API envelope.
            let error = if code.is_server_error() {
                "temporarily_unavailable"
            } else {
                "invalid_request"
            };
            serde_json::json!({"error": error, "error_description": "Injected fault."})
        } else if path.starts_with("/androidpublisher/") {
            super::google::error_envelope(code, "Injected fault.")
        } else {
            serde_json::json!({"error": format!("injected fault: HTTP {status}")})
        }
    };
    (code, headers, Json(body)).into_response()
}

/// Is this request carrying the sandbox admin token?
pub fn is_admin(state: &Shared, headers: &HeaderMap) -> bool {
    let expected = format!("Bearer {}", state.creds.admin_token.expose());
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| constant_time_eq(v.as_bytes(), expected.as_bytes()))
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

pub fn forbidden() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, "Bearer")],
        Json(serde_json::json!({"error": "admin token required"})),
    )
        .into_response()
}

pub fn admin_routes() -> Router<Shared> {
    Router::new()
        .route("/sandbox/faults", get(get_faults).put(put_faults))
        .route("/sandbox/google/revoke", post(revoke_google_tokens))
}

async fn get_faults(State(state): State<Shared>, headers: HeaderMap) -> Response {
    if !is_admin(&state, &headers) {
        return forbidden();
    }
    Json(state.faults()).into_response()
}

async fn put_faults(State(state): State<Shared>, headers: HeaderMap, body: String) -> Response {
    if !is_admin(&state, &headers) {
        return forbidden();
    }
    let spec: FaultSpec = match serde_json::from_str(&body) {
        Ok(s) => s,
        Err(e) => {
            return (
                StatusCode::BAD_REQUEST,
                Json(serde_json::json!({"error": format!("invalid fault spec: {e}")})),
            )
                .into_response();
        }
    };
    if let Err(e) = spec.validate() {
        return (
            StatusCode::BAD_REQUEST,
            Json(serde_json::json!({"error": e})),
        )
            .into_response();
    }
    if let Ok(mut rng) = state.rng.lock() {
        *rng = spec.rng();
    }
    if let Ok(mut f) = state.faults.write() {
        *f = spec.clone();
    }
    Json(spec).into_response()
}

/// Expires every access token issued so far (a revoked or rotated credential).
async fn revoke_google_tokens(State(state): State<Shared>, headers: HeaderMap) -> Response {
    if !is_admin(&state, &headers) {
        return forbidden();
    }
    let n = state.google.revoke_all();
    Json(serde_json::json!({"revoked": n})).into_response()
}
