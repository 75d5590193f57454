//! Delivery with bounded retries: 429, 5xx, timeouts and network errors are retried with
//! exponential backoff, and a `Retry-After` (seconds or an HTTP date) is honoured — never
//! retried sooner. What does not fit in the run's alerting budget is left for the next
//! run. Other answers (400, 403, 404...) are not retried. Error texts never carry the URL
//! (a Slack webhook URL is a secret).

use std::time::{Duration, Instant, SystemTime};

use reqwest::StatusCode;
use reqwest::header::RETRY_AFTER;
use serde_json::Value;

/// Retry policy of one run.
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    pub timeout: Duration,
    pub retries: u32,
    pub backoff: Duration,
    /// When the run's alerting budget ends.
    pub deadline: Instant,
}

/// Longest backoff between two attempts without a Retry-After.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Parses `Retry-After`: delay-seconds or an HTTP date.
pub fn retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let v = value.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    httpdate::parse_http_date(v)
        .ok()
        .map(|t| t.duration_since(now).unwrap_or(Duration::ZERO))
}

fn short(text: &str) -> String {
    let t = text.trim();
    let mut s: String = t.chars().take(200).collect();
    if s.len() < t.len() {
        s.push('…');
    }
    s.replace(['\n', '\r'], " ")
}

/// POSTs `body` as JSON until a 2xx; returns the attempts made, or why it gave up.
pub async fn post(
    client: &reqwest::Client,
    url: &str,
    body: &Value,
    policy: Policy,
) -> Result<u32, String> {
    let mut attempt: u32 = 0;
    loop {
        attempt += 1;
        let left = policy.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(format!(
                "alerting budget used up before attempt {attempt}; retried on the next run"
            ));
        }
        let result = client
            .post(url)
            .json(body)
            .timeout(policy.timeout.min(left))
            .send()
            .await;
        let (why, wait) = match result {
            Ok(resp) if resp.status().is_success() => return Ok(attempt),
            Ok(resp) => {
                let status = resp.status();
                let after = resp
                    .headers()
                    .get(RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| retry_after(v, SystemTime::now()));
                let text = resp.text().await.unwrap_or_default();
                let why = format!("HTTP {}: {}", status.as_u16(), short(&text));
                if status != StatusCode::TOO_MANY_REQUESTS && !status.is_server_error() {
                    return Err(format!("{why} (not retried)"));
                }
                (why, after)
            }
            Err(e) => (e.without_url().to_string(), None),
        };
        if attempt > policy.retries {
            return Err(format!("{why} after {attempt} attempts"));
        }
        let backoff = policy
            .backoff
            .saturating_mul(1 << (attempt - 1).min(16))
            .min(MAX_BACKOFF);
        let delay = wait.unwrap_or(backoff);
        if Instant::now() + delay > policy.deadline {
            return Err(format!(
                "{why}; next attempt due in {} is past the alerting budget, retried on the next run",
                humantime::format_duration(Duration::from_secs(delay.as_secs().max(1)))
            ));
        }
        tokio::time::sleep(delay).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_seconds_and_dates() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(retry_after("7", now), Some(Duration::from_secs(7)));
        let later = httpdate::fmt_http_date(now + Duration::from_secs(30));
        assert_eq!(retry_after(&later, now), Some(Duration::from_secs(30)));
        let past = httpdate::fmt_http_date(now - Duration::from_secs(30));
        assert_eq!(retry_after(&past, now), Some(Duration::ZERO));
        assert_eq!(retry_after("soon", now), None);
    }
}
