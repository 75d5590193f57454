//! Google OAuth2 access tokens for a service account (JWT-bearer grant), via yup-oauth2.
//!
//! The key file's `token_uri` is honoured (that is how the sandbox is reached); plain
//! `http` is allowed only to loopback addresses. yup-oauth2 caches the token in memory
//! and refreshes it shortly before expiry.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use yup_oauth2::ServiceAccountKey;
use yup_oauth2::authenticator::Authenticator;

use super::AuthError;
use crate::secret::Secret;

pub const ANDROID_PUBLISHER_SCOPE: &str = "https://www.googleapis.com/auth/androidpublisher";

/// A cached source of access tokens for one service account.
pub struct GoogleTokenSource {
    auth: Authenticator<HttpsConnector<HttpConnector>>,
    pub client_email: String,
    pub token_uri: String,
    /// Tokens obtained from the token endpoint (not yup-oauth2's cache) so far.
    fetches: AtomicU64,
    /// A hash of the last token handed out — never the token — to tell a fetch from a
    /// cache hit.
    last: AtomicU64,
    /// One acquisition at a time: yup-oauth2 does not coalesce concurrent requests, so
    /// without this every sampling worker that starts on an empty cache fetches its own.
    gate: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for GoogleTokenSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GoogleTokenSource")
            .field("client_email", &self.client_email)
            .field("token_uri", &self.token_uri)
            .finish_non_exhaustive()
    }
}

/// A token, its expiry, and whether the token endpoint was called for it.
pub struct AccessToken {
    pub token: Secret,
    pub expires_at: Option<std::time::SystemTime>,
}

/// Is `uri` https, or http to a loopback address?
pub fn check_token_uri(uri: &str) -> Result<(), AuthError> {
    let url = reqwest::Url::parse(uri).map_err(|e| AuthError::Grant {
        uri: uri.to_string(),
        reason: format!("invalid token_uri: {e}"),
    })?;
    match url.scheme() {
        "https" => Ok(()),
        "http" if is_loopback(&url) => Ok(()),
        _ => Err(AuthError::InsecureTokenUri(uri.to_string())),
    }
}

pub fn is_loopback(url: &reqwest::Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(d)) => d == "localhost",
        None => false,
    }
}

/// Where a service-account key comes from, for messages.
const GET_A_KEY: &str = "create a JSON key under IAM & Admin > Service accounts > Keys";

/// Parses Google's service-account key-file format. The message says what the file is
/// instead (an OAuth client, a user credential, ...) and never quotes its content: serde
/// would echo a bare JSON string, which may be the secret itself.
pub fn parse_key(bytes: &[u8]) -> Result<ServiceAccountKey, String> {
    let value: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| {
        let what = if bytes.iter().all(u8::is_ascii_whitespace) {
            "the file is empty".to_string()
        } else {
            // Syntax errors name a place, never the text.
            format!("not JSON ({e})")
        };
        format!("{what}: not a Google service-account key file; {GET_A_KEY}")
    })?;
    let Some(obj) = value.as_object() else {
        return Err(format!(
            "a JSON {}, not a service-account key object; {GET_A_KEY}",
            match value {
                serde_json::Value::Array(_) => "array",
                serde_json::Value::String(_) => "string",
                serde_json::Value::Number(_) => "number",
                serde_json::Value::Bool(_) => "boolean",
                _ => "null",
            }
        ));
    };
    let kind = obj.get("type").and_then(|t| t.as_str()).unwrap_or("");
    let other = if obj.contains_key("installed") || obj.contains_key("web") {
        Some("an OAuth client ID file (client_secret.json)".to_string())
    } else if !kind.is_empty() && kind != "service_account" {
        Some(format!("a {kind:?} credential"))
    } else {
        None
    };
    if let Some(other) = other {
        return Err(format!(
            "this is {other}, not a service-account key; {GET_A_KEY}"
        ));
    }
    for field in ["private_key", "client_email", "token_uri"] {
        if !obj.contains_key(field) {
            return Err(format!(
                "missing field `{field}`: not a complete service-account key; {GET_A_KEY}"
            ));
        }
    }
    let optional = [
        "type",
        "project_id",
        "private_key_id",
        "client_id",
        "auth_uri",
        "auth_provider_x509_cert_url",
        "client_x509_cert_url",
    ];
    for (field, v) in obj {
        let required = matches!(field.as_str(), "private_key" | "client_email" | "token_uri");
        let is_string = v.is_string() || (v.is_null() && !required);
        if (required || optional.contains(&field.as_str())) && !is_string {
            return Err(format!(
                "`{field}` is not a string; use the key file exactly as Google issued it, or {GET_A_KEY}"
            ));
        }
    }
    serde_json::from_value(value)
        .map_err(|_| format!("not a Google service-account key file; {GET_A_KEY}"))
}

impl GoogleTokenSource {
    /// Reads a service-account key file (Google's JSON format).
    pub async fn from_key_file(path: &Path, timeout: Duration) -> Result<Self, AuthError> {
        let text = std::fs::read(path).map_err(|e| AuthError::KeyFile {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        crate::secret::warn_if_world_readable(path);
        let key = parse_key(&text).map_err(|reason| AuthError::BadKey {
            path: path.to_path_buf(),
            reason,
        })?;
        Self::from_key(key, timeout).await.map_err(|e| match e {
            AuthError::BadKey { reason, .. } => AuthError::BadKey {
                path: path.to_path_buf(),
                reason,
            },
            AuthError::InsecureTokenUri(uri) => AuthError::BadKey {
                path: path.to_path_buf(),
                reason: format!(
                    "token_uri {uri} uses plain http to a non-loopback host; use https"
                ),
            },
            AuthError::Grant { uri, reason } => AuthError::BadKey {
                path: path.to_path_buf(),
                reason: format!("token_uri {uri}: {reason}"),
            },
            other => other,
        })
    }

    pub async fn from_key(key: ServiceAccountKey, timeout: Duration) -> Result<Self, AuthError> {
        check_token_uri(&key.token_uri)?;
        if !key.private_key.contains("BEGIN PRIVATE KEY") {
            return Err(AuthError::BadKey {
                path: "<memory>".into(),
                reason: format!(
                    "private_key is not a PKCS#8 PEM key (-----BEGIN PRIVATE KEY-----); use the key file exactly as Google issued it, or {GET_A_KEY}"
                ),
            });
        }
        let client_email = key.client_email.clone();
        let token_uri = key.token_uri.clone();
        let auth = yup_oauth2::ServiceAccountAuthenticator::builder(key)
            .with_timeout(timeout)
            .build()
            .await
            .map_err(|e| AuthError::BadKey {
                path: "<memory>".into(),
                reason: format!(
                    "private_key is not a usable RSA private key ({e}); the file is damaged or was edited: {GET_A_KEY}"
                ),
            })?;
        Ok(GoogleTokenSource {
            auth,
            client_email,
            token_uri,
            fetches: AtomicU64::new(0),
            last: AtomicU64::new(0),
            gate: tokio::sync::Mutex::new(()),
        })
    }

    /// How many tokens came from the token endpoint (not the cache) so far.
    pub fn fetches(&self) -> u64 {
        self.fetches.load(Ordering::Relaxed)
    }

    /// An access token for the Android Publisher scope: cached, or fetched now.
    pub async fn token(&self) -> Result<AccessToken, AuthError> {
        // Workers that start together wait for the first one's token (then a cache hit)
        // instead of each calling the token endpoint.
        let _one_at_a_time = self.gate.lock().await;
        let t = self
            .auth
            .token(&[ANDROID_PUBLISHER_SCOPE])
            .await
            .map_err(|e| self.grant_error(e))?;
        self.wrap(t)
    }

    /// Drops the cached token and fetches a new one (after a 401).
    pub async fn refresh(&self) -> Result<AccessToken, AuthError> {
        let _one_at_a_time = self.gate.lock().await;
        let t = self
            .auth
            .force_refreshed_token(&[ANDROID_PUBLISHER_SCOPE])
            .await
            .map_err(|e| self.grant_error(e))?;
        self.wrap(t)
    }

    fn wrap(&self, t: yup_oauth2::AccessToken) -> Result<AccessToken, AuthError> {
        let token = t.token().ok_or_else(|| AuthError::Grant {
            uri: self.token_uri.clone(),
            reason: "the response carried no access_token".into(),
        })?;
        // yup-oauth2 fetches behind its cache: a token not seen last time was fetched.
        let mut h = DefaultHasher::new();
        token.hash(&mut h);
        let h = h.finish() | 1;
        if self.last.swap(h, Ordering::Relaxed) != h {
            self.fetches.fetch_add(1, Ordering::Relaxed);
        }
        Ok(AccessToken {
            token: Secret::new(token),
            expires_at: t.expiration_time().map(std::time::SystemTime::from),
        })
    }

    fn grant_error(&self, e: yup_oauth2::Error) -> AuthError {
        let reason = match e {
            yup_oauth2::Error::AuthError(a) => match a.error_description {
                Some(d) => format!("{}: {d}", a.error.as_str()),
                None => a.error.as_str().to_string(),
            },
            yup_oauth2::Error::HttpError(e) => format!("connection failed: {}", causes(&e)),
            yup_oauth2::Error::HttpClientError(e) => format!("request failed: {}", causes(&e)),
            other => other.to_string(),
        };
        AuthError::Grant {
            uri: self.token_uri.clone(),
            reason,
        }
    }
}

/// An error and its causes, innermost last ("client error (Connect): Connection refused").
fn causes(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        let t = s.to_string();
        if !out.contains(&t) {
            out.push_str(": ");
            out.push_str(&t);
        }
        src = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_http_only_to_loopback() {
        assert!(check_token_uri("https://oauth2.googleapis.com/token").is_ok());
        assert!(check_token_uri("http://127.0.0.1:8080/token").is_ok());
        assert!(check_token_uri("http://[::1]:8080/token").is_ok());
        assert!(matches!(
            check_token_uri("http://oauth2.googleapis.com/token"),
            Err(AuthError::InsecureTokenUri(_))
        ));
    }
}
