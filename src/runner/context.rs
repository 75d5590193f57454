//! What a run shares: the config, the probes, one HTTP client (connection reuse) and the
//! credentials, loaded once — file and key problems surface here, before anything is
//! probed (exit 2).

use std::sync::Arc;
use std::time::Duration;

use crate::auth::{AppStoreSigner, AuthError, GoogleTokenSource};
use crate::config::Config;
use crate::jws::TrustAnchors;
use crate::probe::{Auth, Probe};
use crate::secret::Secret;

/// Apple Root CA - G3, the trust anchor of App Store signed data (public).
pub const APPLE_ROOT_CA_G3: &[u8] = include_bytes!("../../certs/AppleRootCA-G3.pem");

#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error("{what}: {reason}")]
    Secret { what: &'static str, reason: String },
    #[error("probes use `{auth}` auth, but probe.toml has no {section}")]
    Missing {
        auth: &'static str,
        section: &'static str,
    },
    #[error("trust anchor {path}: {reason}")]
    Anchor { path: String, reason: String },
    #[error("cannot build the HTTP client: {0}")]
    Client(String),
}

/// Everything the runner needs, shared by all workers.
pub struct Engine {
    pub config: Config,
    pub probes: Vec<Probe>,
    pub client: reqwest::Client,
    pub apple: Option<AppStoreSigner>,
    pub google: Option<GoogleTokenSource>,
    pub admin: Option<Secret>,
    pub anchors: TrustAnchors,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("probes", &self.probes.len())
            .field("apple", &self.apple)
            .field("google", &self.google)
            .field("admin", &self.admin)
            .finish_non_exhaustive()
    }
}

fn uses(probes: &[Probe], auth: Auth) -> bool {
    probes
        .iter()
        .any(|p| p.steps.iter().any(|s| s.auth == auth))
}

pub fn http_client(timeout: Duration) -> Result<reqwest::Client, SetupError> {
    client_with_roots(timeout, None)
}

/// The run's client. Certificate verification is always on; `ca_bundle` adds roots
/// (a private CA in front of a staging backend) — it never turns checking off.
pub fn client_with_roots(
    timeout: Duration,
    ca_bundle: Option<&std::path::Path>,
) -> Result<reqwest::Client, SetupError> {
    let mut b = reqwest::Client::builder()
        .user_agent(concat!("iap-probe/", env!("CARGO_PKG_VERSION")))
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(10)))
        .pool_idle_timeout(Duration::from_secs(30))
        .dns_resolver(Arc::new(SpecialNames));
    if let Some(path) = ca_bundle {
        let pem = std::fs::read(path).map_err(|e| SetupError::Anchor {
            path: path.display().to_string(),
            reason: format!("cannot read run.ca_bundle: {e}"),
        })?;
        let certs =
            reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| SetupError::Anchor {
                path: path.display().to_string(),
                reason: format!("run.ca_bundle is not a PEM certificate bundle: {e}"),
            })?;
        if certs.is_empty() {
            return Err(SetupError::Anchor {
                path: path.display().to_string(),
                reason: "run.ca_bundle holds no certificate".into(),
            });
        }
        for c in certs {
            b = b.add_root_certificate(c);
        }
    }
    b.build().map_err(|e| SetupError::Client(e.to_string()))
}

/// The system resolver, except that names under `.invalid` fail at once (RFC 6761 section
/// 6.4): glibc would ask the configured DNS server about them, sending traffic for a name
/// that by definition never resolves.
struct SpecialNames;

impl reqwest::dns::Resolve for SpecialNames {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = name.as_str().trim_end_matches('.').to_ascii_lowercase();
        Box::pin(async move {
            if host == "invalid" || host.ends_with(".invalid") {
                return Err(format!(
                    "no such host {host}: .invalid names never resolve (RFC 6761)"
                )
                .into());
            }
            let addrs: Vec<std::net::SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

impl Engine {
    /// Loads the credentials the selected probes need.
    pub async fn new(config: Config, probes: Vec<Probe>) -> Result<Arc<Self>, SetupError> {
        let base = config.dir.clone();
        let apple = if uses(&probes, Auth::AppStore) {
            let a = config.apple.as_ref().ok_or(SetupError::Missing {
                auth: "app-store",
                section: "[apple] section",
            })?;
            let signer = match a.private_key.file_path(&base) {
                Some(path) => AppStoreSigner::from_p8_file(
                    &path,
                    &a.key_id,
                    &a.issuer_id,
                    &a.bundle_id,
                    a.token_lifetime,
                )?,
                None => {
                    let pem = a.private_key.load(&base).map_err(|e| SetupError::Secret {
                        what: "apple.private_key",
                        reason: e.to_string(),
                    })?;
                    AppStoreSigner::from_pem_with_lifetime(
                        pem.expose(),
                        &a.key_id,
                        &a.issuer_id,
                        &a.bundle_id,
                        a.token_lifetime,
                    )?
                }
            };
            Some(signer)
        } else {
            None
        };
        let google = if uses(&probes, Auth::GooglePlay) {
            let g = config.google.as_ref().ok_or(SetupError::Missing {
                auth: "google-play",
                section: "[google] section",
            })?;
            let source = match g.service_account.file_path(&base) {
                Some(path) => {
                    GoogleTokenSource::from_key_file(&path, config.request_timeout).await?
                }
                None => {
                    let text = g
                        .service_account
                        .load(&base)
                        .map_err(|e| SetupError::Secret {
                            what: "google.service_account",
                            reason: e.to_string(),
                        })?;
                    // Never serde's message: it would echo a bare JSON string.
                    let key = crate::auth::google::parse_key(text.expose().as_bytes()).map_err(
                        |reason| SetupError::Secret {
                            what: "google.service_account",
                            reason,
                        },
                    )?;
                    GoogleTokenSource::from_key(key, config.request_timeout).await?
                }
            };
            Some(source)
        } else {
            None
        };
        let admin = if uses(&probes, Auth::Admin) {
            let src = config.admin_token.as_ref().ok_or(SetupError::Missing {
                auth: "admin",
                section: "backend.admin_token",
            })?;
            Some(src.load(&base).map_err(|e| SetupError::Secret {
                what: "backend.admin_token",
                reason: e.to_string(),
            })?)
        } else {
            None
        };
        let anchors = load_anchors(&config)?;
        let client = client_with_roots(config.request_timeout, config.ca_bundle.as_deref())?;
        Ok(Arc::new(Engine {
            config,
            probes,
            client,
            apple,
            google,
            admin,
            anchors,
        }))
    }
}

fn load_anchors(config: &Config) -> Result<TrustAnchors, SetupError> {
    let paths = config
        .apple
        .as_ref()
        .map(|a| a.root_ca.clone())
        .unwrap_or_default();
    if paths.is_empty() {
        return TrustAnchors::from_bytes(APPLE_ROOT_CA_G3).map_err(|reason| SetupError::Anchor {
            path: "embedded Apple Root CA - G3".into(),
            reason,
        });
    }
    let mut all = Vec::new();
    for p in paths {
        let bytes = std::fs::read(&p).map_err(|e| SetupError::Anchor {
            path: p.display().to_string(),
            reason: e.to_string(),
        })?;
        let a = TrustAnchors::from_bytes(&bytes).map_err(|reason| SetupError::Anchor {
            path: p.display().to_string(),
            reason,
        })?;
        all.extend(a.0);
    }
    Ok(TrustAnchors(all))
}
