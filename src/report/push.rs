//! Pushing metrics to a Prometheus Pushgateway: one grouping key per probe
//! (job, environment, probe, platform) and one for the run (job, environment), each
//! replaced by `PUT` so a probe that stops running leaves its last figures, not a mix.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE;

use super::model::Report;
use super::prometheus::{Part, render_part};

pub const JOB: &str = "iap_probe";

/// A grouping-key path segment; values with `/` (or empty) use the base64 form.
fn segment(name: &str, value: &str) -> String {
    if value.is_empty() || value.contains('/') {
        format!("{name}@base64/{}", URL_SAFE.encode(value))
    } else {
        format!(
            "{name}/{}",
            url::form_urlencoded::byte_serialize(value.as_bytes()).collect::<String>()
        )
    }
}

#[derive(Debug, thiserror::Error)]
#[error("push to {url}: {reason}")]
pub struct PushError {
    pub url: String,
    pub reason: String,
}

async fn put(client: &reqwest::Client, url: String, body: String) -> Result<(), PushError> {
    let resp = client
        .put(&url)
        .header("content-type", "text/plain; version=0.0.4")
        .body(body)
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .map_err(|e| PushError {
            url: url.clone(),
            reason: e.to_string(),
        })?;
    if !resp.status().is_success() {
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        return Err(PushError {
            url,
            reason: format!("HTTP {status}: {}", text.trim()),
        });
    }
    Ok(())
}

/// Pushes every probe's metrics and the run's to `gateway` (e.g. `http://pushgateway:9091`).
pub async fn push(
    client: &reqwest::Client,
    gateway: &str,
    report: &Report,
) -> Result<(), PushError> {
    let base = format!(
        "{}/metrics/job/{JOB}/{}",
        gateway.trim_end_matches('/'),
        segment("environment", &report.environment)
    );
    for (i, p) in report.probes.iter().enumerate() {
        let url = format!(
            "{base}/{}/{}",
            segment("probe", &p.name),
            segment("platform", &p.platform)
        );
        put(client, url, render_part(report, Part::Probe(i))).await?;
    }
    // Run-level figures are keyed by the platforms the run covered, so an iOS CronJob and
    // an Android one do not overwrite each other's.
    let mut platforms: Vec<&str> = report
        .probes
        .iter()
        .map(|p| p.platform.as_str())
        .filter(|p| *p != "any")
        .collect();
    platforms.sort();
    platforms.dedup();
    let platforms = if platforms.is_empty() {
        "any".to_string()
    } else {
        platforms.join("+")
    };
    put(
        client,
        format!("{base}/{}", segment("run_platforms", &platforms)),
        render_part(report, Part::Run),
    )
    .await
}
