//! Shared helpers for the sandbox integration tests: one sandbox per test on
//! `127.0.0.1:0` with its own state folder, a plain HTTP client, and hand-made credentials.
#![allow(dead_code)]

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE;
use iap_probe::auth::AppStoreSigner;
use iap_probe::jws::TrustAnchors;
use iap_probe::sandbox::{self, FaultSpec, RunningSandbox, SandboxOptions};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::StatusCode;
use serde_json::{Value, json};

pub const BUNDLE_ID: &str = "com.example.iapprobe";
pub const PLAY_SCOPE: &str = "https://www.googleapis.com/auth/androidpublisher";
pub const GOOGLE_TOKEN_AUD: &str = "https://oauth2.googleapis.com/token";

/// A running sandbox and what a test needs to talk to it.
pub struct Sb {
    pub sb: RunningSandbox,
    pub dir: tempfile::TempDir,
    pub http: reqwest::Client,
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

pub async fn start() -> Sb {
    start_with(FaultSpec::default()).await
}

pub async fn start_with(faults: FaultSpec) -> Sb {
    start_opts(SandboxOptions {
        faults,
        ..Default::default()
    })
    .await
}

pub async fn start_opts(options: SandboxOptions) -> Sb {
    let dir = tempfile::tempdir().unwrap();
    let sb = sandbox::start("127.0.0.1:0", dir.path(), options)
        .await
        .expect("sandbox starts");
    Sb {
        sb,
        dir,
        http: client(),
    }
}

/// Parses a fault spec written as JSON (the `PUT /sandbox/faults` form).
pub fn faults(spec: Value) -> FaultSpec {
    let f: FaultSpec = serde_json::from_value(spec).expect("fault spec parses");
    f.validate().expect("fault spec is valid");
    f
}

pub fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

impl Sb {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.sb.base_url)
    }

    pub fn admin(&self) -> String {
        let t = self.sb.admin_token();
        assert!(!t.is_empty(), "admin-token file is written");
        t
    }

    pub fn kid(&self) -> String {
        self.sb.manifest.apple["key_id"]
            .as_str()
            .unwrap()
            .to_string()
    }

    pub fn issuer(&self) -> String {
        self.sb.manifest.apple["issuer_id"]
            .as_str()
            .unwrap()
            .to_string()
    }

    pub fn p8_path(&self) -> PathBuf {
        self.sb.state_dir.join(format!("AuthKey_{}.p8", self.kid()))
    }

    pub fn p8_pem(&self) -> String {
        std::fs::read_to_string(self.p8_path()).unwrap()
    }

    pub fn service_account(&self) -> Value {
        let text = std::fs::read_to_string(self.sb.state_dir.join("service-account.json")).unwrap();
        serde_json::from_str(&text).unwrap()
    }

    pub fn token_uri(&self) -> String {
        self.sb.manifest.google["token_uri"]
            .as_str()
            .unwrap()
            .to_string()
    }

    pub fn anchors(&self) -> TrustAnchors {
        let pem = std::fs::read(self.sb.state_dir.join("sandbox-root-ca.pem")).unwrap();
        TrustAnchors::from_bytes(&pem).unwrap()
    }

    /// `(transaction_id, product_id)` of the iOS fixture whose product id contains `what`.
    pub fn ios(&self, what: &str) -> (String, String) {
        let list = self.sb.manifest.fixtures["ios"].as_array().unwrap();
        let f = list
            .iter()
            .find(|f| f["product_id"].as_str().unwrap().contains(what))
            .unwrap_or_else(|| panic!("no ios fixture like {what}: {list:?}"));
        (
            f["transaction_id"].as_str().unwrap().to_string(),
            f["product_id"].as_str().unwrap().to_string(),
        )
    }

    /// `(purchase_token, product_id)` of the Android fixture of `kind`.
    pub fn android(&self, kind: &str) -> (String, String) {
        let list = self.sb.manifest.fixtures["android"].as_array().unwrap();
        let f = list
            .iter()
            .find(|f| f["kind"] == kind)
            .unwrap_or_else(|| panic!("no android fixture of kind {kind}: {list:?}"));
        (
            f["purchase_token"].as_str().unwrap().to_string(),
            f["product_id"].as_str().unwrap().to_string(),
        )
    }

    /// An App Store token signed by the probe's own signer, from the state folder.
    pub fn apple_token(&self) -> String {
        let signer = AppStoreSigner::from_p8_file(
            &self.p8_path(),
            &self.kid(),
            &self.issuer(),
            BUNDLE_ID,
            Duration::from_secs(300),
        )
        .unwrap();
        signer.token().unwrap().token.expose().to_string()
    }

    pub async fn apple_get(&self, path: &str) -> reqwest::Response {
        self.http
            .get(self.url(path))
            .bearer_auth(self.apple_token())
            .send()
            .await
            .unwrap()
    }

    /// A Google access token from the token endpoint, by a hand-made assertion.
    pub async fn google_token(&self) -> String {
        let a = rs256_assertion(self, None, &self.google_claims(&self.token_uri()));
        let resp = self.token_request(&a).await;
        assert_eq!(resp.status(), StatusCode::OK);
        let body: Value = resp.json().await.unwrap();
        body["access_token"].as_str().unwrap().to_string()
    }

    pub async fn token_request(&self, assertion: &str) -> reqwest::Response {
        self.http
            .post(self.url("/token"))
            .form(&[
                ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"),
                ("assertion", assertion),
            ])
            .send()
            .await
            .unwrap()
    }

    /// Claims as yup-oauth2 sends them.
    pub fn google_claims(&self, aud: &str) -> Value {
        let now = unix_now();
        json!({
            "iss": self.service_account()["client_email"],
            "aud": aud,
            "exp": now + 3595,
            "iat": now,
            "sub": null,
            "scope": PLAY_SCOPE,
        })
    }

    pub fn product_url(&self, product: &str, token: &str) -> String {
        self.url(&format!(
            "/androidpublisher/v3/applications/{BUNDLE_ID}/purchases/products/{product}/tokens/{token}"
        ))
    }

    pub fn subscription_url(&self, token: &str) -> String {
        self.url(&format!(
            "/androidpublisher/v3/applications/{BUNDLE_ID}/purchases/subscriptionsv2/tokens/{token}"
        ))
    }

    pub async fn admin_get(&self, path: &str) -> reqwest::Response {
        self.http
            .get(self.url(path))
            .bearer_auth(self.admin())
            .send()
            .await
            .unwrap()
    }

    pub async fn admin_post(&self, path: &str, body: &Value) -> reqwest::Response {
        self.http
            .post(self.url(path))
            .bearer_auth(self.admin())
            .json(body)
            .send()
            .await
            .unwrap()
    }

    pub async fn put_faults(&self, spec: &Value) -> reqwest::Response {
        self.http
            .put(self.url("/sandbox/faults"))
            .bearer_auth(self.admin())
            .json(spec)
            .send()
            .await
            .unwrap()
    }

    /// Sets faults at run time and checks they were taken.
    pub async fn set_faults(&self, spec: Value) {
        let resp = self.put_faults(&spec).await;
        let status = resp.status();
        let text = resp.text().await.unwrap();
        assert_eq!(status, StatusCode::OK, "PUT /sandbox/faults: {text}");
    }

    pub async fn verify(&self, body: &Value) -> (StatusCode, Value) {
        let resp = self
            .http
            .post(self.url("/iap/verify"))
            .json(body)
            .send()
            .await
            .unwrap();
        let status = resp.status();
        let text = resp.text().await.unwrap();
        let v = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("verify answered non-JSON ({e}): {text}"));
        (status, v)
    }

    pub async fn verify_ios(&self, user: &str, what: &str) -> (StatusCode, Value) {
        let (tx, product) = self.ios(what);
        self.verify(&json!({
            "platform": "ios", "userId": user, "productId": product, "transactionId": tx,
        }))
        .await
    }

    /// Product ids in the user's entitlements, and whether the read was a cache hit.
    pub async fn entitlements(&self, user: &str) -> (Vec<String>, bool) {
        let resp = self
            .admin_get(&format!("/iap/user/{user}/entitlements"))
            .await;
        assert_eq!(resp.status(), StatusCode::OK);
        let v: Value = resp.json().await.unwrap();
        assert_eq!(v["userId"], user);
        let list = v["entitlements"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["productId"].as_str().unwrap().to_string())
            .collect();
        (list, v["cached"].as_bool().unwrap())
    }

    pub async fn cache_stats(&self) -> Value {
        let resp = self
            .http
            .get(self.url("/iap/cache/stats"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        resp.json().await.unwrap()
    }
}

/// An ES256 JWT with the given header pieces and claims, signed with `pem` (PKCS#8).
pub fn es256_jwt(pem: &str, kid: Option<&str>, claims: &Value) -> String {
    let mut h = Header::new(Algorithm::ES256);
    h.kid = kid.map(String::from);
    h.typ = Some("JWT".into());
    jsonwebtoken::encode(
        &h,
        claims,
        &EncodingKey::from_ec_pem(pem.as_bytes()).unwrap(),
    )
    .unwrap()
}

/// An RS256 assertion signed with the service account's key (jsonwebtoken: unpadded).
pub fn rs256_assertion(sb: &Sb, kid: Option<&str>, claims: &Value) -> String {
    let pem = sb.service_account()["private_key"]
        .as_str()
        .unwrap()
        .to_string();
    let mut h = Header::new(Algorithm::RS256);
    h.kid = kid.map(String::from);
    jsonwebtoken::encode(
        &h,
        claims,
        &EncodingKey::from_rsa_pem(pem.as_bytes()).unwrap(),
    )
    .unwrap()
}

/// An RS256 assertion encoded as yup-oauth2 does it: base64url *with* `=` padding, and the
/// signature over the padded segments.
pub fn rs256_padded(sb: &Sb, claims: &Value) -> String {
    use rsa::pkcs8::DecodePrivateKey;
    use rsa::signature::{SignatureEncoding, Signer};
    let pem = sb.service_account()["private_key"]
        .as_str()
        .unwrap()
        .to_string();
    let key = rsa::RsaPrivateKey::from_pkcs8_pem(&pem).unwrap();
    let signer = rsa::pkcs1v15::SigningKey::<sha2::Sha256>::new(key);
    let head = format!(
        "{}.{}",
        URL_SAFE.encode(br#"{"alg":"RS256","typ":"JWT"}"#),
        URL_SAFE.encode(serde_json::to_vec(claims).unwrap())
    );
    let sig = signer.sign(head.as_bytes()).to_bytes();
    format!("{head}.{}", URL_SAFE.encode(sig))
}

/// Polls `f` every 50 ms until it returns `Some`, for at most `within`.
pub async fn poll<T, F, Fut>(within: Duration, mut f: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if let Some(v) = f().await {
            return Some(v);
        }
        if tokio::time::Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
