//! Daemon mode: the same engine on a schedule, with `/metrics` (Prometheus), `/healthz`
//! and `/results/latest` (the JSON report). Runs never overlap: the next one starts an
//! interval (plus jitter) after the previous one started, or right after it ends if it
//! overran. On shutdown the run in flight finishes within its deadline, then we stop.

use std::future::Future;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use rand::Rng;
use tokio::net::TcpListener;

use crate::app::{self, RunRequest};
use crate::report::{Report, json, prometheus};

#[derive(Debug, Clone)]
pub struct DaemonOptions {
    pub config: PathBuf,
    pub interval: Duration,
    /// Fraction of the interval (0..1) added at random, so fleets don't probe in lockstep.
    pub jitter: f64,
    pub request: RunRequest,
}

#[derive(Default)]
struct Latest {
    report: Option<Report>,
    /// Why the last run could not run at all (config error and the like).
    error: Option<String>,
    runs: u64,
}

type Shared = Arc<RwLock<Latest>>;

async fn metrics(State(s): State<Shared>) -> Response {
    let latest = s
        .read()
        .map(|l| (l.report.clone(), l.error.clone(), l.runs));
    let Ok((report, error, runs)) = latest else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let mut body = report.as_ref().map(prometheus::render).unwrap_or_default();
    body.push_str("# HELP iap_probe_daemon_runs_total Runs since the daemon started.\n");
    body.push_str("# TYPE iap_probe_daemon_runs_total counter\n");
    body.push_str(&format!("iap_probe_daemon_runs_total {runs}\n"));
    body.push_str("# HELP iap_probe_daemon_run_error 1 if the last run could not run at all (config or credential error).\n");
    body.push_str("# TYPE iap_probe_daemon_run_error gauge\n");
    body.push_str(&format!(
        "iap_probe_daemon_run_error {}\n",
        error.is_some() as u8
    ));
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        body,
    )
        .into_response()
}

async fn healthz(State(s): State<Shared>) -> Response {
    match s.read() {
        Ok(l) if l.error.is_none() => (StatusCode::OK, "ok\n").into_response(),
        Ok(l) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "last run could not start: {}\n",
                l.error.clone().unwrap_or_default()
            ),
        )
            .into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

async fn latest(State(s): State<Shared>) -> Response {
    match s.read().map(|l| l.report.clone()) {
        Ok(Some(r)) => (
            [(header::CONTENT_TYPE, "application/json")],
            json::render(&r),
        )
            .into_response(),
        Ok(None) => (StatusCode::NOT_FOUND, "no run has finished yet\n").into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

/// Serves and runs until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    opts: DaemonOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let state: Shared = Arc::default();
    let app = Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/results/latest", get(latest))
        .with_state(state.clone());
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let server = {
        let mut rx = stop_rx.clone();
        tokio::spawn(
            axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = rx.wait_for(|v| *v).await;
                })
                .into_future(),
        )
    };
    let scheduler = tokio::spawn(schedule(opts, state, stop_rx));
    shutdown.await;
    let _ = stop_tx.send(true);
    let _ = scheduler.await;
    server.await.map_err(std::io::Error::other)?
}

async fn schedule(
    opts: DaemonOptions,
    state: Shared,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        let started = Instant::now();
        // A run is never interrupted: it ends by its own deadline.
        let result = app::run(&opts.config, &opts.request).await;
        if let Ok(mut l) = state.write() {
            l.runs += 1;
            match result {
                Ok(r) => {
                    l.report = Some(r);
                    l.error = None;
                }
                Err(e) => {
                    tracing::error!("run could not start: {e}");
                    l.error = Some(e.to_string());
                }
            }
        }
        if *stop.borrow() {
            return;
        }
        let jitter = if opts.jitter > 0.0 {
            opts.interval
                .mul_f64(rand::rng().random_range(0.0..opts.jitter.min(1.0)))
        } else {
            Duration::ZERO
        };
        let next = (opts.interval + jitter).saturating_sub(started.elapsed());
        tokio::select! {
            _ = tokio::time::sleep(next) => {}
            _ = stop.wait_for(|v| *v) => return,
        }
    }
}
