//! Credentials the probes need: App Store Server API JWTs and Google OAuth2 access tokens.
//!
//! Both are cached and reused; acquiring one is timed by the runner as its own step.

pub mod apple;
pub mod google;

pub use apple::{AppStoreClaims, AppStoreSigner};
pub use google::GoogleTokenSource;

use std::path::PathBuf;

/// Why a credential could not be obtained. File and key errors are usage errors (exit 2);
/// a refused grant is a probe failure.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("cannot read key file {path}: {reason}")]
    KeyFile { path: PathBuf, reason: String },
    #[error("{path}: {reason}")]
    BadKey { path: PathBuf, reason: String },
    #[error("signing the App Store JWT failed: {0}")]
    Sign(String),
    #[error("token endpoint {uri}: {reason}")]
    Grant { uri: String, reason: String },
    #[error("token_uri {0} uses plain http to a non-loopback host; use https")]
    InsecureTokenUri(String),
}

impl AuthError {
    /// True when the problem is in local files (nothing was probed: exit 2).
    pub fn is_local(&self) -> bool {
        matches!(
            self,
            AuthError::KeyFile { .. } | AuthError::BadKey { .. } | AuthError::InsecureTokenUri(_)
        )
    }
}
