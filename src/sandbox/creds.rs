//! Fresh credentials and fixtures for one sandbox run, and the state folder that hands
//! them to `probe run`: the `.p8` key, the service-account file, the root CA, the admin
//! token, a ready `probe.toml` and the machine-readable `sandbox.json` manifest.

use std::path::Path;

use rand::Rng;
use rand::distr::Alphanumeric;
use rsa::pkcs8::{EncodePrivateKey, LineEnding};
use serde::Serialize;

use crate::secret::Secret;

pub const BUNDLE_ID: &str = "com.example.iapprobe";
pub const PACKAGE_NAME: &str = "com.example.iapprobe";
pub const APP_APPLE_ID: i64 = 1234567890;

/// An App Store Connect API key the fake Apple accepts.
pub struct AppleKey {
    pub key_id: String,
    pub pkcs8_pem: String,
    pub public: p256::PublicKey,
}

pub struct Credentials {
    pub issuer_id: String,
    /// The probe's key (written to the state folder).
    pub probe_key: AppleKey,
    /// The reference backend's own key.
    pub backend_key: AppleKey,
    pub google_client_email: String,
    pub google_key_id: String,
    pub google_private_pem: String,
    pub google_public: rsa::RsaPublicKey,
    pub admin_token: Secret,
}

fn random_id(len: usize, upper: bool) -> String {
    let s: String = rand::rng()
        .sample_iter(&Alphanumeric)
        .take(len)
        .map(char::from)
        .collect();
    if upper { s.to_uppercase() } else { s }
}

fn apple_key() -> Result<AppleKey, String> {
    let kp =
        rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(|e| e.to_string())?;
    let public =
        p256::PublicKey::from_sec1_bytes(kp.public_key_raw()).map_err(|e| e.to_string())?;
    Ok(AppleKey {
        key_id: random_id(10, true),
        pkcs8_pem: kp.serialize_pem(),
        public,
    })
}

impl Credentials {
    pub fn generate() -> Result<Self, String> {
        let mut rng = rand_core_06::OsRng;
        let rsa_key = rsa::RsaPrivateKey::new(&mut rng, 2048).map_err(|e| e.to_string())?;
        let google_private_pem = rsa_key
            .to_pkcs8_pem(LineEnding::LF)
            .map_err(|e| e.to_string())?
            .to_string();
        let uuid = uuid::Uuid::new_v4().to_string();
        Ok(Credentials {
            issuer_id: uuid,
            probe_key: apple_key()?,
            backend_key: apple_key()?,
            google_client_email: "iap-probe@iap-probe-sandbox.iam.gserviceaccount.com".into(),
            google_key_id: random_id(40, false).to_lowercase(),
            google_public: rsa_key.to_public_key(),
            google_private_pem,
            admin_token: Secret::new(format!("sandbox-admin-{}", random_id(32, false))),
        })
    }

    /// Google's service-account key-file format, `token_uri` pointing at `token_uri`.
    pub fn service_account_json(&self, token_uri: &str) -> serde_json::Value {
        serde_json::json!({
            "type": "service_account",
            "project_id": "iap-probe-sandbox",
            "private_key_id": self.google_key_id,
            "private_key": self.google_private_pem,
            "client_email": self.google_client_email,
            "client_id": "100000000000000000001",
            "auth_uri": "https://accounts.google.com/o/oauth2/auth",
            "token_uri": token_uri,
            "auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs",
            "client_x509_cert_url": "https://www.googleapis.com/robot/v1/metadata/x509/iap-probe",
            "universe_domain": "googleapis.com"
        })
    }
}

/// A known sandbox purchase on iOS.
#[derive(Clone, Debug, Serialize)]
pub struct IosFixture {
    pub transaction_id: String,
    pub original_transaction_id: String,
    pub product_id: String,
    /// Apple's `type`: "Auto-Renewable Subscription", "Consumable", ...
    #[serde(rename = "type")]
    pub kind: String,
}

/// A known sandbox purchase on Android.
#[derive(Clone, Debug, Serialize)]
pub struct AndroidFixture {
    pub purchase_token: String,
    pub product_id: String,
    /// "product" (one-time) or "subscription".
    pub kind: String,
    pub order_id: String,
}

pub struct Fixtures {
    pub ios: Vec<IosFixture>,
    pub android: Vec<AndroidFixture>,
}

impl Fixtures {
    pub fn generate() -> Self {
        let token = || format!("{}.AO-J1O{}", random_id(24, false), random_id(96, false));
        Fixtures {
            ios: vec![
                IosFixture {
                    transaction_id: "2000000000000001".into(),
                    original_transaction_id: "2000000000000001".into(),
                    product_id: "com.example.premium.monthly".into(),
                    kind: "Auto-Renewable Subscription".into(),
                },
                IosFixture {
                    transaction_id: "2000000000000002".into(),
                    original_transaction_id: "2000000000000002".into(),
                    product_id: "com.example.coins.100".into(),
                    kind: "Consumable".into(),
                },
            ],
            android: vec![
                AndroidFixture {
                    purchase_token: token(),
                    product_id: "coins_100".into(),
                    kind: "product".into(),
                    order_id: "GPA.3300-0000-0000-00001".into(),
                },
                AndroidFixture {
                    purchase_token: token(),
                    product_id: "premium_monthly".into(),
                    kind: "subscription".into(),
                    order_id: "GPA.3300-0000-0000-00002".into(),
                },
            ],
        }
    }
}

/// Writes `path` readable by its owner only: it may hold a secret.
fn write_private(path: &Path, content: &[u8]) -> std::io::Result<()> {
    std::fs::write(path, content)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    }
    Ok(())
}

/// Everything a prober (or a person) needs to talk to this sandbox.
#[derive(Debug, Serialize)]
pub struct Manifest {
    pub apple: serde_json::Value,
    pub google: serde_json::Value,
    pub backend: serde_json::Value,
    pub fixtures: serde_json::Value,
}

pub fn write_state_dir(
    dir: &Path,
    base_url: &str,
    creds: &Credentials,
    fixtures: &Fixtures,
    root_pem: &str,
) -> std::io::Result<Manifest> {
    std::fs::create_dir_all(dir)?;
    let key_file = format!("AuthKey_{}.p8", creds.probe_key.key_id);
    let token_uri = format!("{base_url}/token");
    write_private(&dir.join(&key_file), creds.probe_key.pkcs8_pem.as_bytes())?;
    let sa = serde_json::to_vec_pretty(&creds.service_account_json(&token_uri))?;
    write_private(&dir.join("service-account.json"), &sa)?;
    write_private(
        &dir.join("admin-token"),
        creds.admin_token.expose().as_bytes(),
    )?;
    std::fs::write(dir.join("sandbox-root-ca.pem"), root_pem)?;
    let manifest = Manifest {
        apple: serde_json::json!({
            "base_url": base_url, "issuer_id": creds.issuer_id,
            "key_id": creds.probe_key.key_id, "bundle_id": BUNDLE_ID,
            "app_apple_id": APP_APPLE_ID, "private_key_file": dir.join(&key_file),
            "root_ca_file": dir.join("sandbox-root-ca.pem"),
        }),
        google: serde_json::json!({
            "base_url": base_url, "token_uri": token_uri, "package_name": PACKAGE_NAME,
            "service_account_file": dir.join("service-account.json"),
        }),
        backend: serde_json::json!({
            "base_url": base_url, "admin_token_file": dir.join("admin-token"),
        }),
        fixtures: serde_json::json!({ "ios": fixtures.ios, "android": fixtures.android }),
    };
    std::fs::write(
        dir.join("probe.toml"),
        probe_toml(base_url, creds, fixtures, &key_file),
    )?;
    crate::shipped::write_probes(&dir.join("probes"))?;
    // The manifest last, and atomically: its presence means the folder is complete.
    let tmp = dir.join(".sandbox.json.tmp");
    std::fs::write(&tmp, serde_json::to_vec_pretty(&manifest)?)?;
    std::fs::rename(&tmp, dir.join("sandbox.json"))?;
    Ok(manifest)
}

/// A ready `probe.toml` for `probe run --config DIR/probe.toml`.
fn probe_toml(base_url: &str, creds: &Credentials, fixtures: &Fixtures, key_file: &str) -> String {
    let ios = &fixtures.ios[0];
    let android = &fixtures.android[0];
    format!(
        r#"# Generated by `probe sandbox`: every path is relative to this file.
environment = "sandbox"
probes_dir = "probes"

[backend]
base_url = "{base_url}"
admin_token = {{ file = "admin-token" }}

[apple]
base_url = "{base_url}"
issuer_id = "{issuer}"
key_id = "{kid}"
bundle_id = "{BUNDLE_ID}"
private_key = {{ file = "{key_file}" }}
root_ca = ["sandbox-root-ca.pem"]
# The local fake has no rate limit; Apple's sandbox default is 10s.
poll_min_interval = "1s"

[google]
base_url = "{base_url}"
package_name = "{PACKAGE_NAME}"
service_account = {{ file = "service-account.json" }}

[fixtures.ios]
transaction_id = "{tid}"
product_id = "{ipid}"

[fixtures.android]
purchase_token = "{ptok}"
product_id = "{apid}"
"#,
        issuer = creds.issuer_id,
        kid = creds.probe_key.key_id,
        tid = ios.transaction_id,
        ipid = ios.product_id,
        ptok = android.purchase_token,
        apid = android.product_id,
    )
}
