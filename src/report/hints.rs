//! What to check first: the runbook's first moves for each kind of failure.

use crate::probe::Auth;
use crate::slo::FailureKind;

/// A short "check first" line for a failed step.
pub fn for_failure(
    step: &str,
    auth: Option<Auth>,
    credential: bool,
    kind: FailureKind,
    status: Option<u16>,
) -> String {
    use FailureKind::*;
    if credential {
        return match auth {
            Some(Auth::AppStore) => "App Store JWT could not be signed: check the .p8 key file, key id and issuer id (runbook: Server Verification Failures > Authentication Issues)".into(),
            _ => "Google token refused or unreachable: check the service-account key, its token_uri and Play Console API access (runbook: refresh Android access tokens)".into(),
        };
    }
    match (kind, status, auth) {
        (Assertion | Credential, Some(401), Some(Auth::AppStore)) => "Apple refused the JWT: check key id, issuer id and bundle id, and that the key is not revoked in App Store Connect".into(),
        (Assertion | Credential, Some(401), Some(Auth::GooglePlay)) => "Google refused the access token: check the service account's Play Console permissions and the androidpublisher scope".into(),
        (Assertion, Some(401 | 403), Some(Auth::Admin)) => "the backend refused the admin token: check backend.admin_token".into(),
        (Assertion, Some(s), _) if s >= 500 => format!("{step} answers HTTP {s}: check the service's error logs (grep ERROR /var/log/iap/verification.log) and recent deployments; roll back if it started with one"),
        (Assertion, Some(429), _) => "rate limited: check API quota and rate limits (runbook: API Status Verification)".into(),
        (Assertion, _, _) => format!("{step} answered, but not as expected: compare with the backend contract; check recent deployments and feature flags"),
        (Poll, _, _) => "entitlement did not appear in time: check /iap/cache/stats, cache refresh rates and entitlement propagation (runbook: Entitlement Sync Issues)".into(),
        (Timeout, _, _) | (Deadline, _, _) => format!("{step} is slow or hanging: check verification response times, database and platform API latency (runbook: Server Verification Failures)"),
        (Network, _, _) => format!("{step} unreachable: curl -f the health endpoint, check DNS, TLS certificates, firewall and proxy (runbook: Network and Infrastructure)"),
        // Apple reported the send attempt to the backend as failed (the notification probe).
        (Rejected, _, Some(Auth::AppStore)) => "App Store Server Notifications are not reaching the backend: check the notification URL in App Store Connect, the backend's /iap/notifications/apple endpoint, its TLS certificate and response codes".into(),
        (Rejected, _, _) => format!("{step} reported the awaited outcome as failed: the reason names what it reported"),
        (Signature, _, _) => "signed data did not verify: check the trust anchors (root_ca), the bundle id and the environment; a non-JWS body means the platform answered with an error page".into(),
        (Capture, _, _) => "a value the next step needs was missing: the response shape changed; compare with the contract".into(),
        (Body, _, _) => "the response body was unreadable or too large: check what the endpoint now returns".into(),
        (Credential, _, _) => "credential refused: refresh tokens (runbook: Authentication Refresh)".into(),
        (Template, _, _) => "a template variable had no value: check the fixtures in probe.toml".into(),
    }
}

/// For a latency SLO breach.
pub fn for_latency(step: &str) -> String {
    format!(
        "{step} is slow: check endpoint response times, database connectivity and platform API latency (runbook: Validate Server Components)"
    )
}
