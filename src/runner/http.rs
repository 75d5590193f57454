//! One HTTP exchange: send, read the body up to a cap, time it, and classify failures
//! (network, timeout, body) so the report says where to look.

use std::time::{Duration, Instant};

use crate::slo::FailureKind;

/// A response as the assertions see it.
pub struct Exchange {
    pub status: u16,
    /// How long the server asked us to wait (`Retry-After`), if it did.
    pub retry_after: Option<Duration>,
    pub body: Vec<u8>,
    pub json: Option<serde_json::Value>,
    /// The `Content-Type` header as sent (`None`: absent or empty), for messages: the body
    /// is judged by what it is, not by what it claims.
    pub content_type: Option<String>,
    pub elapsed: Duration,
}

impl Exchange {
    /// Replaces every occurrence of each secret in the body with `[redacted]` (and
    /// re-reads the JSON), before anything quotes or captures it.
    pub fn redact(&mut self, secrets: &[&str]) {
        let mut changed = false;
        for s in secrets.iter().filter(|s| s.len() >= 8) {
            let needle = s.as_bytes();
            let mut out = Vec::with_capacity(self.body.len());
            let mut i = 0;
            while i < self.body.len() {
                if self.body[i..].starts_with(needle) {
                    out.extend_from_slice(b"[redacted]");
                    i += needle.len();
                    changed = true;
                } else {
                    out.push(self.body[i]);
                    i += 1;
                }
            }
            self.body = out;
        }
        if changed {
            self.json = serde_json::from_slice(&self.body).ok();
        }
    }

    /// The start of the body as text, for messages.
    pub fn snippet(&self) -> String {
        let text = String::from_utf8_lossy(&self.body[..self.body.len().min(200)]);
        text.split_whitespace().collect::<Vec<_>>().join(" ")
    }
}

#[derive(Debug)]
pub struct HttpFailure {
    pub kind: FailureKind,
    pub reason: String,
    pub elapsed: Duration,
}

/// Describes a reqwest error without its URL (which may carry a token in a query).
pub fn describe(e: &reqwest::Error, timeout: Duration) -> (FailureKind, String) {
    if e.is_timeout() {
        return (
            FailureKind::Timeout,
            format!(
                "timeout after {}",
                crate::slo::verdict::fmt_duration(timeout)
            ),
        );
    }
    let mut chain = Vec::new();
    let mut src: Option<&dyn std::error::Error> = std::error::Error::source(e);
    while let Some(s) = src {
        chain.push(s.to_string());
        src = s.source();
    }
    let detail = chain
        .last()
        .cloned()
        .unwrap_or_else(|| "request failed".into());
    let all = chain.join(": ").to_lowercase();
    let has = |words: &[&str]| words.iter().any(|w| all.contains(w));
    let https = e.url().is_some_and(|u| u.scheme() == "https");
    let what = if has(&["dns", "resolve", "lookup", "name or service"]) {
        "DNS lookup failed"
    } else if has(&[
        "certificate",
        "tls",
        "handshake",
        "corrupt message",
        "alert",
    ]) || (https && e.is_connect() && !has(&["refused"]))
    {
        "TLS handshake failed"
    } else if has(&["refused"]) {
        "connection refused"
    } else if e.is_body()
        || e.is_decode()
        || has(&[
            "connection closed",
            "reset",
            "broken pipe",
            "incomplete",
            "unexpected eof",
        ])
    {
        "connection dropped while reading the response"
    } else if e.is_connect() {
        "connection failed"
    } else {
        "request failed"
    };
    (FailureKind::Network, format!("{what}: {detail}"))
}

/// `Retry-After` as delta seconds, an HTTP date, or — as Apple sends it — an absolute
/// UNIX time in milliseconds.
pub fn parse_retry_after(v: &str) -> Option<Duration> {
    let v = v.trim();
    if let Ok(n) = v.parse::<u64>() {
        // Anything past 2001 in epoch milliseconds is a timestamp, not a delay.
        if n > 1_000_000_000_000 {
            let now = crate::clock::now_ms().max(0) as u64;
            return Some(Duration::from_millis(n.saturating_sub(now)));
        }
        return Some(Duration::from_secs(n));
    }
    let at = httpdate::parse_http_date(v).ok()?;
    Some(
        at.duration_since(std::time::SystemTime::now())
            .unwrap_or_default(),
    )
}

/// Sends `req` and reads at most `max_body` bytes of the answer within `timeout`.
pub async fn exchange(
    req: reqwest::RequestBuilder,
    timeout: Duration,
    max_body: usize,
) -> Result<Exchange, HttpFailure> {
    let start = Instant::now();
    let fail = |kind, reason| HttpFailure {
        kind,
        reason,
        elapsed: start.elapsed(),
    };
    let work = async {
        let mut resp = req.timeout(timeout).send().await.map_err(|e| {
            let (k, r) = describe(&e, timeout);
            fail(k, r)
        })?;
        let status = resp.status().as_u16();
        let retry_after = resp
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_retry_after);
        let content_type = resp
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            // A hostile server's header is quoted, not its essay.
            .map(|v| {
                String::from_utf8_lossy(v.as_bytes())
                    .trim()
                    .chars()
                    .take(80)
                    .collect::<String>()
            })
            .filter(|c| !c.is_empty());
        let mut body = Vec::new();
        loop {
            match resp.chunk().await {
                Ok(Some(chunk)) => {
                    if body.len() + chunk.len() > max_body {
                        return Err(fail(
                            FailureKind::Body,
                            format!(
                                "HTTP {status}: body larger than {max_body} bytes (run.max_body)"
                            ),
                        ));
                    }
                    body.extend_from_slice(&chunk);
                }
                Ok(None) => break,
                Err(e) => {
                    let (k, r) = describe(&e, timeout);
                    return Err(fail(k, format!("HTTP {status}: {r}")));
                }
            }
        }
        let elapsed = start.elapsed();
        let json = serde_json::from_slice(&body).ok();
        Ok(Exchange {
            status,
            retry_after,
            body,
            json,
            content_type,
            elapsed,
        })
    };
    // reqwest's timeout covers the body too; this outer bound is a belt for slow trickles.
    match tokio::time::timeout(timeout + Duration::from_millis(50), work).await {
        Ok(r) => r,
        Err(_) => Err(fail(
            FailureKind::Timeout,
            format!(
                "timeout after {}",
                crate::slo::verdict::fmt_duration(timeout)
            ),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::parse_retry_after;
    use std::time::{Duration, SystemTime};

    #[test]
    fn retry_after_in_delta_seconds() {
        assert_eq!(parse_retry_after("120"), Some(Duration::from_secs(120)));
        assert_eq!(parse_retry_after(" 0 "), Some(Duration::ZERO));
    }

    #[test]
    fn retry_after_as_apple_absolute_unix_ms() {
        let at = crate::clock::now_ms() + 1_500;
        let d = parse_retry_after(&at.to_string()).unwrap();
        assert!(
            d <= Duration::from_millis(1_500) && d >= Duration::from_millis(1_000),
            "{d:?}"
        );
        // A moment already past means "now", not a huge or negative wait.
        let past = crate::clock::now_ms() - 5_000;
        assert_eq!(parse_retry_after(&past.to_string()), Some(Duration::ZERO));
    }

    #[test]
    fn retry_after_as_http_date() {
        let at = SystemTime::now() + Duration::from_secs(30);
        let d = parse_retry_after(&httpdate::fmt_http_date(at)).unwrap();
        // HTTP dates have whole seconds.
        assert!(
            d <= Duration::from_secs(30) && d >= Duration::from_secs(28),
            "{d:?}"
        );
        let past = httpdate::fmt_http_date(SystemTime::now() - Duration::from_secs(60));
        assert_eq!(parse_retry_after(&past), Some(Duration::ZERO));
    }

    #[test]
    fn unreadable_retry_after_is_ignored() {
        for v in ["", "soon", "-5", "1.5", "Mon, 99 Foo 2024"] {
            assert_eq!(parse_retry_after(v), None, "{v:?}");
        }
    }
}
