//! App Store Server API JWTs (Apple, "Generating JSON Web Tokens for API requests").
//!
//! Header: alg ES256, kid, typ JWT. Claims: iss (issuer id), iat, exp (at most 60 minutes
//! after iat), aud `appstoreconnect-v1`, bid (bundle id). A token is reused until it is
//! within a margin of its expiry, so sampling mode signs once per run.

use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use p256::pkcs8::DecodePrivateKey;
use serde::{Deserialize, Serialize};

use super::AuthError;
use crate::secret::Secret;

pub const AUDIENCE: &str = "appstoreconnect-v1";
/// Apple refuses tokens that live longer than this.
pub const MAX_LIFETIME: Duration = Duration::from_secs(3600);
pub const DEFAULT_LIFETIME: Duration = Duration::from_secs(300);

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct AppStoreClaims {
    pub iss: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iat: Option<u64>,
    pub exp: u64,
    pub aud: String,
    pub bid: String,
}

/// Signs and caches App Store Server API tokens.
pub struct AppStoreSigner {
    key: EncodingKey,
    pub key_id: String,
    pub issuer_id: String,
    pub bundle_id: String,
    lifetime: Duration,
    cache: Mutex<Option<Cached>>,
    /// Tokens signed (not served from the cache) since this signer was made.
    signatures: AtomicU64,
}

struct Cached {
    token: Secret,
    claims: AppStoreClaims,
    renew_at: Instant,
}

/// A token and whether it was signed now (false: reused from the cache).
pub struct SignedToken {
    pub token: Secret,
    pub claims: AppStoreClaims,
    pub fresh: bool,
}

impl std::fmt::Debug for AppStoreSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppStoreSigner")
            .field("key", &"[redacted]")
            .field("key_id", &self.key_id)
            .field("issuer_id", &self.issuer_id)
            .field("bundle_id", &self.bundle_id)
            .finish()
    }
}

const EC_OID: &str = "1.2.840.10045.2.1";
const P256_OID: &str = "1.2.840.10045.3.1.7";
const RSA_OID: &str = "1.2.840.113549.1.1.1";

/// Where an App Store key comes from, for messages.
const GET_A_KEY: &str = "App Store Connect > Users and Access > Integrations > In-App Purchase";

/// Reads a `.p8` key as App Store Connect issues it: PKCS#8, EC P-256.
pub fn load_p8(path: &Path) -> Result<EncodingKey, AuthError> {
    let bytes = std::fs::read(path).map_err(|e| AuthError::KeyFile {
        path: path.to_path_buf(),
        reason: format!("{e} (download the key from {GET_A_KEY})"),
    })?;
    crate::secret::warn_if_world_readable(path);
    let bad = |reason: String| AuthError::BadKey {
        path: path.to_path_buf(),
        reason,
    };
    let text = String::from_utf8(bytes).map_err(|_| {
        bad("a binary file, not a PEM text key (a DER key? convert it: openssl pkcs8 -topk8 -nocrypt -inform DER -in key.der -out AuthKey.p8)".into())
    })?;
    parse_p8(&text).map_err(bad)
}

fn parse_p8(text: &str) -> Result<EncodingKey, String> {
    if text.trim().is_empty() {
        return Err(format!(
            "the key file is empty (download the .p8 key from {GET_A_KEY})"
        ));
    }
    if text.contains("BEGIN ENCRYPTED PRIVATE KEY") {
        return Err("this key is passphrase-protected (encrypted PKCS#8); App Store keys are not. Decrypt it: openssl pkcs8 -in encrypted.p8 -out AuthKey.p8 (asks for the passphrase)".into());
    }
    if text.contains("BEGIN EC PRIVATE KEY") {
        return Err("this is a SEC1 EC key; App Store keys are PKCS#8. Convert it: openssl pkcs8 -topk8 -nocrypt -in key.pem -out AuthKey.p8".into());
    }
    if text.contains("BEGIN RSA PRIVATE KEY") {
        return Err("this is an RSA key; the App Store Server API needs the EC P-256 .p8 key from App Store Connect".into());
    }
    if !text.contains("BEGIN PRIVATE KEY") {
        return Err(format!(
            "not a PEM private key (expected -----BEGIN PRIVATE KEY-----): use the AuthKey_<KEY_ID>.p8 file from {GET_A_KEY}"
        ));
    }
    // A .p8 can be downloaded only once: a damaged one means a new key.
    let damaged = "the file is damaged or truncated: restore it, or revoke the key and create a new one in App Store Connect";
    let (_, doc) = p256::pkcs8::SecretDocument::from_pem(text)
        .map_err(|e| format!("unreadable PKCS#8 PEM ({e}); {damaged}"))?;
    let info = p256::pkcs8::PrivateKeyInfo::try_from(doc.as_bytes())
        .map_err(|e| format!("unreadable PKCS#8 key ({e}); {damaged}"))?;
    let alg = info.algorithm.oid.to_string();
    if alg == RSA_OID {
        return Err("this is an RSA key; the App Store Server API needs the EC P-256 .p8 key from App Store Connect".into());
    }
    if alg != EC_OID {
        return Err(format!(
            "key algorithm {alg} is not EC; use the App Store Connect .p8 key"
        ));
    }
    let curve = info
        .algorithm
        .parameters_oid()
        .map(|o| o.to_string())
        .unwrap_or_default();
    if curve != P256_OID {
        return Err(format!(
            "EC key on curve {curve}, but ES256 needs P-256 (1.2.840.10045.3.1.7): download the .p8 key from {GET_A_KEY}"
        ));
    }
    p256::SecretKey::from_pkcs8_der(doc.as_bytes())
        .map_err(|e| format!("invalid P-256 key: {e}"))?;
    Ok(EncodingKey::from_ec_der(doc.as_bytes()))
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl AppStoreSigner {
    pub fn new(
        key: EncodingKey,
        key_id: impl Into<String>,
        issuer_id: impl Into<String>,
        bundle_id: impl Into<String>,
        lifetime: Duration,
    ) -> Self {
        AppStoreSigner {
            key,
            key_id: key_id.into(),
            issuer_id: issuer_id.into(),
            bundle_id: bundle_id.into(),
            lifetime: lifetime.min(MAX_LIFETIME),
            cache: Mutex::new(None),
            signatures: AtomicU64::new(0),
        }
    }

    pub fn from_p8_file(
        path: &Path,
        key_id: &str,
        issuer_id: &str,
        bundle_id: &str,
        lifetime: Duration,
    ) -> Result<Self, AuthError> {
        Ok(Self::new(
            load_p8(path)?,
            key_id,
            issuer_id,
            bundle_id,
            lifetime,
        ))
    }

    /// Parses a PKCS#8 PEM held in memory (the sandbox's own backend uses this).
    pub fn from_pem(
        pem: &str,
        key_id: &str,
        issuer_id: &str,
        bundle_id: &str,
    ) -> Result<Self, AuthError> {
        Self::from_pem_with_lifetime(pem, key_id, issuer_id, bundle_id, DEFAULT_LIFETIME)
    }

    /// Like [`Self::from_pem`], with a token lifetime (capped at 60 minutes).
    pub fn from_pem_with_lifetime(
        pem: &str,
        key_id: &str,
        issuer_id: &str,
        bundle_id: &str,
        lifetime: Duration,
    ) -> Result<Self, AuthError> {
        let key = parse_p8(pem).map_err(|reason| AuthError::BadKey {
            path: "<memory>".into(),
            reason,
        })?;
        Ok(Self::new(key, key_id, issuer_id, bundle_id, lifetime))
    }

    pub fn lifetime(&self) -> Duration {
        self.lifetime
    }

    /// How many tokens were signed (not reused from the cache) so far.
    pub fn signatures(&self) -> u64 {
        self.signatures.load(Ordering::Relaxed)
    }

    /// Forgets the cached token (after a 401, to retry once with a fresh one).
    pub fn invalidate(&self) {
        if let Ok(mut c) = self.cache.lock() {
            *c = None;
        }
    }

    /// A token valid for at least the renewal margin: cached, or signed now.
    pub fn token(&self) -> Result<SignedToken, AuthError> {
        let mut cache = self
            .cache
            .lock()
            .map_err(|_| AuthError::Sign("token cache poisoned".into()))?;
        if let Some(c) = cache.as_ref()
            && Instant::now() < c.renew_at
        {
            return Ok(SignedToken {
                token: c.token.clone(),
                claims: c.claims.clone(),
                fresh: false,
            });
        }
        let iat = unix_now();
        let claims = AppStoreClaims {
            iss: self.issuer_id.clone(),
            iat: Some(iat),
            exp: iat + self.lifetime.as_secs(),
            aud: AUDIENCE.to_string(),
            bid: self.bundle_id.clone(),
        };
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(self.key_id.clone());
        header.typ = Some("JWT".into());
        let token = jsonwebtoken::encode(&header, &claims, &self.key)
            .map_err(|e| AuthError::Sign(e.to_string()))?;
        // Renew with a fifth of the lifetime (at most a minute) to spare.
        let margin = (self.lifetime / 5).min(Duration::from_secs(60));
        let token = Secret::new(token);
        self.signatures.fetch_add(1, Ordering::Relaxed);
        *cache = Some(Cached {
            token: token.clone(),
            claims: claims.clone(),
            renew_at: Instant::now() + self.lifetime.saturating_sub(margin),
        });
        Ok(SignedToken {
            token,
            claims,
            fresh: true,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pkcs8_p256() -> String {
        rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
            .unwrap()
            .serialize_pem()
    }

    #[test]
    fn a_wrong_curve_says_where_to_get_the_right_key() {
        let p384 = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384)
            .unwrap()
            .serialize_pem();
        let e = parse_p8(&p384).err().unwrap();
        assert!(e.contains("needs P-256"), "{e}");
        assert!(e.contains("download the .p8 key from App Store Connect > Users and Access > Integrations > In-App Purchase"), "{e}");
    }

    #[test]
    fn rejects_wrong_key_kinds_with_advice() {
        // A genuine P-256 key in SEC1 form, made here: `openssl ecparam -genkey` output.
        let sec1 = p256::SecretKey::random(&mut rand_core_06::OsRng)
            .to_sec1_pem(p256::pkcs8::LineEnding::LF)
            .unwrap();
        assert!(parse_p8(&sec1).err().unwrap().contains("openssl pkcs8"));
        let p384 = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384)
            .unwrap()
            .serialize_pem();
        assert!(parse_p8(&p384).err().unwrap().contains("P-256"));
        assert!(parse_p8("hello").err().unwrap().contains("not a PEM"));
    }

    #[test]
    fn token_is_reused_until_near_expiry() {
        let s = AppStoreSigner::from_pem(&pkcs8_p256(), "KID", "iss", "com.x").unwrap();
        let a = s.token().unwrap();
        let b = s.token().unwrap();
        assert!(a.fresh && !b.fresh);
        assert_eq!(s.signatures(), 1);
        assert_eq!(a.token, b.token);
        assert_eq!(a.claims.exp - a.claims.iat.unwrap(), 300);
        s.invalidate();
        assert!(s.token().unwrap().fresh);
        assert_eq!(s.signatures(), 2);
    }

    #[test]
    fn lifetime_capped_at_an_hour() {
        let key = parse_p8(&pkcs8_p256()).unwrap();
        let s = AppStoreSigner::new(key, "K", "i", "b", Duration::from_secs(7200));
        let t = s.token().unwrap();
        assert_eq!(t.claims.exp - t.claims.iat.unwrap(), 3600);
    }
}
