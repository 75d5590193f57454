//! Faithful local fakes of the App Store Server API, Google's OAuth2 token endpoint and
//! Play Developer API v3, and a reference IAP backend — all on one listener, on the real
//! paths, so only base URLs differ from production.
//!
//! `serve(listener, shutdown, sandbox)` is the library entry; [`start`] binds loopback,
//! writes the state folder and spawns it (what `probe sandbox`, `probe demo` and the tests use).

// Handlers return `Result<_, Response>`: the error is the HTTP answer itself.
#[allow(clippy::result_large_err)]
pub mod apple;
pub mod backend;
pub mod creds;
pub mod faults;
#[allow(clippy::result_large_err)]
pub mod google;
pub mod middleware;
pub mod pki;

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use axum::Router;
use rand::rngs::StdRng;
use tokio::net::TcpListener;
use tokio::sync::watch;

pub use creds::{Credentials, Fixtures, Manifest};
pub use faults::FaultSpec;
pub use pki::SandboxCa;

#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("generating sandbox credentials: {0}")]
    Keys(String),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
    #[error("cannot write the state folder {path}: {source}")]
    StateDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("fault file {path}: {reason}")]
    Faults { path: PathBuf, reason: String },
}

/// Knobs of the reference backend.
#[derive(Clone, Debug)]
pub struct SandboxOptions {
    pub faults: FaultSpec,
    /// How long an entitlement cache entry stays fresh.
    pub cache_ttl: Duration,
    /// Lifetime of Google access tokens (Google's is 3599 s; tests shorten it to see
    /// natural expiry). Whole seconds, at least one.
    pub google_token_lifetime: Duration,
}

impl Default for SandboxOptions {
    fn default() -> Self {
        SandboxOptions {
            faults: FaultSpec::default(),
            cache_ttl: Duration::from_secs(300),
            google_token_lifetime: google::TOKEN_LIFETIME,
        }
    }
}

/// Generated, not yet serving: keys, CA and fixtures.
pub struct Sandbox {
    pub creds: Credentials,
    pub ca: SandboxCa,
    pub fixtures: Fixtures,
    pub options: SandboxOptions,
}

impl Sandbox {
    pub fn generate(options: SandboxOptions) -> Result<Self, SandboxError> {
        Ok(Sandbox {
            creds: Credentials::generate().map_err(SandboxError::Keys)?,
            ca: SandboxCa::generate().map_err(|e| SandboxError::Keys(e.to_string()))?,
            fixtures: Fixtures::generate(),
            options,
        })
    }
}

/// Shared state of the running sandbox.
pub struct State {
    pub base_url: String,
    pub creds: Credentials,
    pub ca: SandboxCa,
    pub fixtures: Fixtures,
    pub cache_ttl: Duration,
    pub faults: RwLock<FaultSpec>,
    pub rng: Mutex<StdRng>,
    /// Flips to true on shutdown, so hung handlers let go.
    pub shutdown: watch::Receiver<bool>,
    pub apple: apple::AppleState,
    pub google: google::GoogleState,
    pub backend: backend::BackendState,
}

pub type Shared = Arc<State>;

impl State {
    pub fn faults(&self) -> FaultSpec {
        self.faults.read().map(|f| f.clone()).unwrap_or_default()
    }

    pub fn jws_mode(&self) -> pki::JwsMode {
        self.faults.read().map(|f| f.jws.into()).unwrap_or_default()
    }

    /// Resolves when the sandbox shuts down.
    pub async fn shutting_down(&self) {
        let mut rx = self.shutdown.clone();
        let _ = rx.wait_for(|v| *v).await;
    }
}

fn router(state: Shared) -> Router {
    Router::new()
        .merge(apple::routes())
        .merge(google::routes())
        .merge(backend::routes())
        .merge(middleware::admin_routes())
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            middleware::inject_faults,
        ))
        .with_state(state)
}

/// Serves the sandbox on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
    sandbox: Sandbox,
) -> std::io::Result<()> {
    let addr = listener.local_addr()?;
    let (tx, rx) = watch::channel(false);
    let state = Arc::new(build_state(sandbox, &base_url(addr), rx)?);
    let app = router(state);
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            shutdown.await;
            let _ = tx.send(true);
        })
        .await
}

fn base_url(addr: SocketAddr) -> String {
    format!("http://{addr}")
}

fn build_state(
    sandbox: Sandbox,
    base_url: &str,
    shutdown: watch::Receiver<bool>,
) -> std::io::Result<State> {
    let faults = sandbox.options.faults.clone();
    let rng = faults.rng();
    let backend =
        backend::BackendState::new(&sandbox.creds, base_url).map_err(std::io::Error::other)?;
    backend.trust(sandbox.ca.root_der.clone());
    let google = google::GoogleState::new(&sandbox.fixtures, sandbox.options.google_token_lifetime);
    Ok(State {
        base_url: base_url.to_string(),
        apple: apple::AppleState::default(),
        google,
        backend,
        creds: sandbox.creds,
        ca: sandbox.ca,
        fixtures: sandbox.fixtures,
        cache_ttl: sandbox.options.cache_ttl,
        faults: RwLock::new(faults),
        rng: Mutex::new(rng),
        shutdown,
    })
}

/// A sandbox serving in the background of this process.
pub struct RunningSandbox {
    pub addr: SocketAddr,
    pub base_url: String,
    pub state_dir: PathBuf,
    pub manifest: Manifest,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl RunningSandbox {
    /// Stops serving and waits for in-flight requests (hung ones are released).
    pub async fn stop(mut self) {
        self.shutdown().await;
    }

    async fn shutdown(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }

    /// The admin token, for tests that call admin endpoints.
    pub fn admin_token(&self) -> String {
        std::fs::read_to_string(self.state_dir.join("admin-token")).unwrap_or_default()
    }
}

impl Drop for RunningSandbox {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }
}

/// Generates credentials, binds `listen` (e.g. `127.0.0.1:0`), writes `state_dir` and
/// serves in a background task.
pub async fn start(
    listen: &str,
    state_dir: &Path,
    options: SandboxOptions,
) -> Result<RunningSandbox, SandboxError> {
    let sandbox = tokio::task::spawn_blocking(move || Sandbox::generate(options))
        .await
        .map_err(|e| SandboxError::Keys(e.to_string()))??;
    let listener = TcpListener::bind(listen)
        .await
        .map_err(|source| SandboxError::Bind {
            addr: listen.to_string(),
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| SandboxError::Bind {
        addr: listen.to_string(),
        source,
    })?;
    let base = base_url(addr);
    let manifest = creds::write_state_dir(
        state_dir,
        &base,
        &sandbox.creds,
        &sandbox.fixtures,
        &sandbox.ca.root_pem,
    )
    .map_err(|source| SandboxError::StateDir {
        path: state_dir.to_path_buf(),
        source,
    })?;
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(serve(
        listener,
        async move {
            let _ = rx.await;
        },
        sandbox,
    ));
    Ok(RunningSandbox {
        addr,
        base_url: base,
        state_dir: state_dir.to_path_buf(),
        manifest,
        stop: Some(tx),
        task: Some(task),
    })
}

/// Reads a `--faults` file.
pub fn load_faults(path: &Path) -> Result<FaultSpec, SandboxError> {
    let text = std::fs::read_to_string(path).map_err(|e| SandboxError::Faults {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    FaultSpec::from_toml(&text).map_err(|reason| SandboxError::Faults {
        path: path.to_path_buf(),
        reason,
    })
}

pub(crate) use crate::clock::now_ms;

pub(crate) type Map<V> = Mutex<HashMap<String, V>>;
