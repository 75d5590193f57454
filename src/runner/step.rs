//! Running one step: render the request, attach the credential, send (or poll until the
//! condition holds), judge, capture, verify signed data.

use std::time::{Duration, Instant};

use super::context::Engine;
use super::http::{Exchange, exchange};
use crate::probe::{Auth, Body, Expect, Response, Step, Vars, check, render, render_json};
use crate::slo::FailureKind;
use crate::slo::verdict::fmt_duration;

/// What one step did.
#[derive(Debug, Clone)]
pub struct StepResult {
    pub latency: Option<Duration>,
    pub failure: Option<(FailureKind, String)>,
    pub status: Option<u16>,
    pub retries: u32,
    /// Recorded numeric captures (`record = [...]`).
    pub values: Vec<(String, f64)>,
}

impl StepResult {
    fn fail(kind: FailureKind, reason: impl Into<String>, latency: Option<Duration>) -> Self {
        StepResult {
            latency,
            failure: Some((kind, reason.into())),
            status: None,
            retries: 0,
            values: Vec::new(),
        }
    }

    pub fn ok(&self) -> bool {
        self.failure.is_none()
    }
}

/// Remaining time before the run deadline, capped by `timeout`.
fn budget(timeout: Duration, deadline: Instant) -> Option<Duration> {
    let left = deadline.saturating_duration_since(Instant::now());
    (!left.is_zero()).then(|| timeout.min(left))
}

/// Acquires the credential `auth` needs, timed as its own step.
pub async fn credential(engine: &Engine, auth: Auth, deadline: Instant) -> StepResult {
    let start = Instant::now();
    let Some(timeout) = budget(engine.config.request_timeout, deadline) else {
        return StepResult::fail(FailureKind::Deadline, "run deadline reached", None);
    };
    let cut_by_deadline = timeout < engine.config.request_timeout;
    let outcome = match auth {
        Auth::AppStore => match &engine.apple {
            Some(s) => s.token().map(|_| ()).map_err(|e| e.to_string()),
            None => Err("no [apple] credentials".into()),
        },
        Auth::GooglePlay => match &engine.google {
            Some(g) => match tokio::time::timeout(timeout, g.token()).await {
                Ok(r) => r.map(|_| ()).map_err(|e| e.to_string()),
                Err(_) if cut_by_deadline => {
                    return StepResult::fail(
                        FailureKind::Deadline,
                        "run deadline reached while fetching the Google token",
                        Some(start.elapsed()),
                    );
                }
                Err(_) => Err(format!(
                    "token endpoint: timeout after {}",
                    fmt_duration(timeout)
                )),
            },
            None => Err("no [google] credentials".into()),
        },
        Auth::Admin | Auth::None => Ok(()),
    };
    let took = start.elapsed();
    match outcome {
        Ok(()) => StepResult {
            latency: Some(took),
            failure: None,
            status: None,
            retries: 0,
            values: Vec::new(),
        },
        Err(reason) => StepResult::fail(FailureKind::Credential, reason, Some(took)),
    }
}

async fn bearer(engine: &Engine, auth: Auth, refresh: bool) -> Result<Option<String>, String> {
    Ok(match auth {
        Auth::AppStore => {
            let s = engine.apple.as_ref().ok_or("no [apple] credentials")?;
            if refresh {
                s.invalidate();
            }
            Some(
                s.token()
                    .map_err(|e| e.to_string())?
                    .token
                    .expose()
                    .to_string(),
            )
        }
        Auth::GooglePlay => {
            let g = engine.google.as_ref().ok_or("no [google] credentials")?;
            let t = if refresh {
                g.refresh().await
            } else {
                g.token().await
            };
            Some(t.map_err(|e| e.to_string())?.token.expose().to_string())
        }
        Auth::Admin => Some(
            engine
                .admin
                .as_ref()
                .ok_or("no backend.admin_token")?
                .expose()
                .to_string(),
        ),
        Auth::None => None,
    })
}

/// What a step's bearer credential is called in messages.
fn credential_name(auth: Auth) -> &'static str {
    match auth {
        Auth::AppStore => "App Store JWT",
        Auth::GooglePlay => "Google token",
        Auth::Admin => "admin token",
        Auth::None => "credential",
    }
}

/// The rendered request, ready to send any number of times.
struct Prepared {
    method: reqwest::Method,
    url: String,
    headers: Vec<(String, String)>,
    body: Option<(Vec<u8>, &'static str)>,
}

fn prepare(step: &Step, vars: &Vars) -> Result<Prepared, String> {
    let url = render(&step.request.url, vars).map_err(|e| format!("url: {e}"))?;
    let mut headers = Vec::new();
    for (k, v) in &step.request.headers {
        headers.push((
            k.clone(),
            render(v, vars).map_err(|e| format!("header {k}: {e}"))?,
        ));
    }
    let body = match &step.request.body {
        Body::None => None,
        Body::Json(v) => {
            let v = render_json(v, vars).map_err(|e| format!("json body: {e}"))?;
            Some((
                serde_json::to_vec(&v).unwrap_or_default(),
                "application/json",
            ))
        }
        Body::Raw(s) => Some((
            render(s, vars)
                .map_err(|e| format!("body: {e}"))?
                .into_bytes(),
            "text/plain",
        )),
    };
    let method = reqwest::Method::from_bytes(step.request.method.as_str().as_bytes())
        .map_err(|e| e.to_string())?;
    Ok(Prepared {
        method,
        url,
        headers,
        body,
    })
}

async fn send(
    engine: &Engine,
    step: &Step,
    p: &Prepared,
    deadline: Instant,
    refresh: bool,
) -> Result<Exchange, (FailureKind, String, Option<Duration>)> {
    let configured = step.timeout.unwrap_or(engine.config.request_timeout);
    let mut req = engine.client.request(p.method.clone(), &p.url);
    for (k, v) in &p.headers {
        req = req.header(k, v);
    }
    if let Some((bytes, ctype)) = &p.body {
        req = req
            .header(reqwest::header::CONTENT_TYPE, *ctype)
            .body(bytes.clone());
    }
    // A token fetch (a refresh after a 401, an expired cache) can hang like any request,
    // and waits behind the other workers' fetches at the token source's gate: it gets the
    // same bound as the request, or C workers would overshoot the deadline C times over.
    let Some(cred_budget) = budget(configured, deadline) else {
        return Err((
            FailureKind::Deadline,
            "run deadline reached before this request".into(),
            None,
        ));
    };
    let cred_start = Instant::now();
    let sent = match tokio::time::timeout(cred_budget, bearer(engine, step.auth, refresh)).await {
        Ok(Ok(token)) => token,
        Ok(Err(e)) => return Err((FailureKind::Credential, e, None)),
        Err(_) => {
            let took = cred_start.elapsed();
            let what = credential_name(step.auth);
            return Err(if cred_budget < configured {
                (
                    FailureKind::Deadline,
                    format!(
                        "run deadline reached after {} while acquiring the {what}",
                        fmt_duration(took)
                    ),
                    Some(took),
                )
            } else {
                (
                    FailureKind::Credential,
                    format!("{what}: timeout after {}", fmt_duration(cred_budget)),
                    Some(took),
                )
            });
        }
    };
    if let Some(token) = &sent {
        req = req.bearer_auth(token);
    }
    // The request gets what is left after the credential.
    let Some(timeout) = budget(configured, deadline) else {
        return Err((
            FailureKind::Deadline,
            "run deadline reached before this request".into(),
            None,
        ));
    };
    let cut_by_deadline = timeout < configured;
    tracing::trace!(method = %p.method, url = %p.url, auth = step.auth.as_str(), timeout_ms = timeout.as_millis() as u64, "sending");
    let mut secrets: Vec<&str> = sent.iter().map(String::as_str).collect();
    if let Some(admin) = &engine.admin {
        secrets.push(admin.expose());
    }
    exchange(req, timeout, engine.config.max_body)
        .await
        // A server that echoes the credential back must not get it into a report.
        .map(|mut ex| {
            ex.redact(&secrets);
            ex
        })
        .map_err(|f| match f.kind {
            // The run's deadline, not the request timeout, ended it: say which.
            FailureKind::Timeout if cut_by_deadline => (
                FailureKind::Deadline,
                format!(
                    "run deadline reached after {} (request timeout {})",
                    fmt_duration(f.elapsed),
                    fmt_duration(configured)
                ),
                Some(f.elapsed),
            ),
            _ => (f.kind, f.reason, Some(f.elapsed)),
        })
}

/// Failure messages of `expect` against `ex`, with the status and body start when the
/// status itself was wrong.
fn judge(expect: &Expect, ex: &Exchange, vars: &Vars) -> Option<String> {
    let snippet = ex.snippet();
    let resp = Response {
        status: ex.status,
        json: ex.json.as_ref(),
        body_snippet: &snippet,
        content_type: ex.content_type.as_deref(),
    };
    let failures = check(expect, &resp, vars);
    if failures.is_empty() {
        return None;
    }
    let mut msg = failures
        .iter()
        .map(|f| f.message.clone())
        .collect::<Vec<_>>()
        .join("; ");
    if failures.iter().any(|f| f.path.is_none()) {
        let short: String = snippet.chars().take(80).collect();
        msg = format!("HTTP {} {short} ({msg})", ex.status);
    }
    Some(msg)
}

/// What a `fail_if` matched, for the reason: `$.path = "TIMED_OUT"`.
fn matched_values(expect: &Expect, ex: &Exchange) -> String {
    let Some(json) = &ex.json else {
        return format!("HTTP {}", ex.status);
    };
    let parts: Vec<String> = expect
        .json
        .iter()
        .map(|c| {
            let found: Vec<String> = c
                .compiled
                .query(json)
                .all()
                .iter()
                .map(|v| v.to_string())
                .collect();
            format!("{} = {}", c.path, found.join(", "))
        })
        .collect();
    if parts.is_empty() {
        format!("HTTP {}", ex.status)
    } else {
        parts.join("; ")
    }
}

/// Safe to send twice: the method is idempotent (RFC 9110 section 9.2.2).
fn idempotent(m: &reqwest::Method) -> bool {
    use reqwest::Method as M;
    [M::GET, M::HEAD, M::PUT, M::DELETE, M::OPTIONS, M::TRACE].contains(m)
}

/// Backoff before retry `n` (0-based): 200 ms doubling, capped at 5 s, with full jitter.
fn backoff(n: u32) -> Duration {
    let cap =
        Duration::from_millis(200u64.saturating_mul(1 << n.min(5))).min(Duration::from_secs(5));
    cap.mul_f64(rand::random_range(0.5..=1.0))
}

/// Sends with the step's retry policy. Retried: connection failures before any answer,
/// timeouts of idempotent requests, and 429/503 (the server asked for it) — never an
/// assertion failure. A 401 on a store credential refreshes it and retries once.
async fn send_with_retries(
    engine: &Engine,
    step: &Step,
    p: &Prepared,
    deadline: Instant,
    retries: &mut u32,
) -> Result<Exchange, (FailureKind, String, Option<Duration>)> {
    let mut refreshed = false;
    let mut attempt = 0u32;
    loop {
        let res = send(engine, step, p, deadline, false).await;
        if let Ok(ex) = &res
            && ex.status == 401
            && !refreshed
            && matches!(step.auth, Auth::AppStore | Auth::GooglePlay)
        {
            // An expired or rotated credential: refresh once (DESIGN: never loop).
            refreshed = true;
            *retries += 1;
            let again = send(engine, step, p, deadline, true).await;
            if !matches!(&again, Ok(ex) if matches!(ex.status, 429 | 503)) {
                return again;
            }
        }
        let (retryable, asked) = match &res {
            Ok(ex) if matches!(ex.status, 429 | 503) => (true, ex.retry_after),
            Ok(_) => (false, None),
            Err((FailureKind::Network, reason, _)) => (
                idempotent(&p.method)
                    || reason.starts_with("connection refused")
                    || reason.starts_with("DNS"),
                None,
            ),
            Err((FailureKind::Timeout, _, _)) => (idempotent(&p.method), None),
            Err(_) => (false, None),
        };
        if !retryable || attempt >= step.retry_attempts {
            return res;
        }
        let wait = asked.unwrap_or_default().max(backoff(attempt));
        if Instant::now() + wait >= deadline {
            return res;
        }
        tracing::debug!(step = %step.name, attempt, wait_ms = wait.as_millis() as u64, "retrying");
        tokio::time::sleep(wait).await;
        attempt += 1;
        *retries += 1;
    }
}

/// Runs one step, updating `vars` with its captures.
pub async fn run(engine: &Engine, step: &Step, vars: &mut Vars, deadline: Instant) -> StepResult {
    let prepared = match prepare(step, vars) {
        Ok(p) => p,
        Err(e) => return StepResult::fail(FailureKind::Template, e, None),
    };
    let start = Instant::now();
    let mut sent_retries = 0u32;
    let mut ex = match send_with_retries(engine, step, &prepared, deadline, &mut sent_retries).await
    {
        Ok(ex) => ex,
        Err((k, r, l)) => {
            let mut f = StepResult::fail(k, r, l);
            f.retries = sent_retries;
            return f;
        }
    };
    let mut retries = 0;
    let mut latency = ex.elapsed;
    if let Some(poll) = &step.poll {
        loop {
            if judge(&poll.until, &ex, vars).is_none() {
                latency = start.elapsed();
                break;
            }
            if let Some(f) = &poll.fail_if
                && judge(f, &ex, vars).is_none()
            {
                let mut r = StepResult::fail(
                    FailureKind::Rejected,
                    format!("gave up polling: {}", matched_values(f, &ex)),
                    Some(start.elapsed()),
                );
                r.status = Some(ex.status);
                return r;
            }
            let waited = start.elapsed();
            // A server that says when to come back is obeyed (never faster than `every`).
            let pause = match ex.retry_after {
                Some(ra) if matches!(ex.status, 429 | 503) => ra.max(poll.every),
                _ => poll.every,
            };
            // Apple rate-limits its API per endpoint: stay under it rather than ride 429s.
            let pause = match (&step.auth, &engine.config.apple) {
                (Auth::AppStore, Some(a)) => pause.max(a.poll_min_interval),
                _ => pause,
            };
            if waited + pause > poll.within {
                let last = judge(&poll.until, &ex, vars).unwrap_or_default();
                let mut r = StepResult::fail(
                    FailureKind::Poll,
                    format!(
                        "not satisfied within {} ({} polls; last: {last})",
                        fmt_duration(poll.within),
                        retries + 1
                    ),
                    Some(waited),
                );
                r.status = Some(ex.status);
                return r;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left <= pause {
                return StepResult::fail(
                    FailureKind::Deadline,
                    format!(
                        "run deadline reached while polling (after {})",
                        fmt_duration(waited)
                    ),
                    Some(waited),
                );
            }
            tokio::time::sleep(pause).await;
            retries += 1;
            ex = match send(engine, step, &prepared, deadline, false).await {
                Ok(ex) => ex,
                // A poll rides out transient errors until `within`.
                Err((FailureKind::Network | FailureKind::Timeout, _, _)) => continue,
                Err((k, r, l)) => return StepResult::fail(k, r, l),
            };
        }
    }
    let mut result = StepResult {
        latency: Some(latency),
        failure: None,
        status: Some(ex.status),
        retries: sent_retries,
        values: Vec::new(),
    };
    if let Some(msg) = judge(&step.expect, &ex, vars) {
        // The figure that failed the check is the one the windowed rules need most
        // (a 0.6 cache hit ratio): record what can be read, let the failure stand.
        let _ = crate::probe::capture(&step.capture, ex.json.as_ref(), vars);
        for name in &step.record {
            if let Some(Ok(v)) = vars.get(name).map(str::parse::<f64>)
                && v.is_finite()
            {
                result.values.push((name.clone(), v));
            }
        }
        // A store credential refused even after a refresh is a credential failure.
        let kind = if ex.status == 401 && matches!(step.auth, Auth::AppStore | Auth::GooglePlay) {
            FailureKind::Credential
        } else {
            FailureKind::Assertion
        };
        let msg = if kind == FailureKind::Credential {
            format!("credential refused after a refresh and retry: {msg}")
        } else {
            msg
        };
        result.failure = Some((kind, msg));
        return result;
    }
    if let Err(e) = crate::probe::capture(&step.capture, ex.json.as_ref(), vars) {
        result.failure = Some((FailureKind::Capture, e.to_string()));
        return result;
    }
    for name in &step.record {
        match vars.get(name).map(str::parse::<f64>) {
            Some(Ok(v)) if v.is_finite() => result.values.push((name.clone(), v)),
            _ => {
                result.failure = Some((
                    FailureKind::Capture,
                    format!("record `{name}`: captured value is not a number"),
                ));
                return result;
            }
        }
    }
    if let Some(var) = &step.verify_jws
        && let Err(reason) = super::signed::verify_into(engine, var, vars)
    {
        result.failure = Some((FailureKind::Signature, reason));
    }
    result
}
