//! `probe.toml`: where the backend and the stores are, which credentials to use, the
//! fixtures (known sandbox purchases), SLO targets and run limits. Validated up front;
//! every error names the file, the line and the key.
//!
//! Apple's production App Store Server API is refused unless `allow_production = true`:
//! a prober that buys things must not touch production by accident.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use crate::probe::diag::{Diagnostic, line_col};
use crate::probe::duration::Dur;
use crate::secret::SecretSource;

pub const APPLE_SANDBOX_URL: &str = "https://api.storekit-sandbox.itunes.apple.com";
pub const APPLE_PRODUCTION_HOST: &str = "api.storekit.itunes.apple.com";
pub const GOOGLE_PLAY_URL: &str = "https://androidpublisher.googleapis.com";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    #[serde(default)]
    probes_dir: Option<PathBuf>,
    /// A label for reports and metrics, e.g. "staging".
    #[serde(default)]
    environment: Option<String>,
    backend: BackendDef,
    #[serde(default)]
    apple: Option<AppleDef>,
    #[serde(default)]
    google: Option<GoogleDef>,
    #[serde(default)]
    fixtures: BTreeMap<String, BTreeMap<String, Spanned<toml::Value>>>,
    #[serde(default)]
    slo: SloTargets,
    #[serde(default)]
    run: RunDef,
    #[serde(default)]
    history: HistoryDef,
    #[serde(default)]
    alerts: crate::history::AlertRules,
    #[serde(default)]
    alerting: Option<Spanned<crate::alert::config::AlertingDef>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct HistoryDef {
    enabled: bool,
    path: PathBuf,
    retention: Dur,
}

impl Default for HistoryDef {
    fn default() -> Self {
        HistoryDef {
            enabled: true,
            path: "probe-history.sqlite".into(),
            retention: Dur(Duration::from_secs(7 * 86_400)),
        }
    }
}

/// Where runs are recorded, and for how long.
#[derive(Debug, Clone)]
pub struct HistoryConfig {
    pub path: PathBuf,
    pub retention: Duration,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BackendDef {
    base_url: Spanned<String>,
    #[serde(default)]
    admin_token: Option<Spanned<SecretSource>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AppleDef {
    #[serde(default)]
    base_url: Option<Spanned<String>>,
    #[serde(default)]
    environment: Option<Spanned<String>>,
    #[serde(default)]
    allow_production: bool,
    issuer_id: String,
    key_id: String,
    bundle_id: String,
    private_key: Spanned<SecretSource>,
    #[serde(default)]
    token_lifetime: Option<Spanned<Dur>>,
    /// Shortest gap between two polls of an App Store Server API endpoint.
    #[serde(default)]
    poll_min_interval: Option<Spanned<Dur>>,
    /// Trust anchors for signed data (PEM or DER files).
    #[serde(default)]
    root_ca: Vec<PathBuf>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct GoogleDef {
    #[serde(default)]
    base_url: Option<Spanned<String>>,
    package_name: String,
    service_account: Spanned<SecretSource>,
}

/// The runbook's targets (DESIGN.md, "SLO defaults"). Per-step latency bounds live in the
/// probe files; these judge whole probes and success ratios.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct SloTargets {
    /// Purchase probes (tag `purchase`): success ratio target, and the critical floor.
    pub purchase_success_rate: f64,
    pub purchase_success_critical: f64,
    /// Other probes' success ratio target.
    pub success_rate: f64,
    /// Whole purchase probe, first request to entitlement.
    pub purchase_completion: Dur,
    /// Share of the target at which a figure is reported as a warning.
    pub warn_at: f64,
}

impl Default for SloTargets {
    fn default() -> Self {
        SloTargets {
            purchase_success_rate: 0.99,
            purchase_success_critical: 0.95,
            success_rate: 0.995,
            purchase_completion: Dur(Duration::from_secs(30)),
            warn_at: 0.8,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RunDef {
    timeout: Dur,
    deadline: Dur,
    concurrency: usize,
    max_body: usize,
    /// Extra trusted CA certificates (PEM) for the backend and platform APIs.
    ca_bundle: Option<PathBuf>,
}

impl Default for RunDef {
    fn default() -> Self {
        RunDef {
            timeout: Dur(Duration::from_secs(10)),
            deadline: Dur(Duration::from_secs(120)),
            concurrency: 1,
            max_body: 10 * 1024 * 1024,
            ca_bundle: None,
        }
    }
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub path: PathBuf,
    pub dir: PathBuf,
    pub probes_dir: PathBuf,
    pub environment: String,
    pub backend_url: String,
    pub admin_token: Option<SecretSource>,
    pub apple: Option<AppleConfig>,
    pub google: Option<GoogleConfig>,
    /// platform ("ios", "android", "common") -> name -> value.
    pub fixtures: BTreeMap<String, BTreeMap<String, String>>,
    pub slo: SloTargets,
    pub request_timeout: Duration,
    pub deadline: Duration,
    pub concurrency: usize,
    pub max_body: usize,
    /// Extra trusted CA certificates (PEM), resolved against the config's folder.
    pub ca_bundle: Option<PathBuf>,
    /// `None` when `[history] enabled = false`.
    pub history: Option<HistoryConfig>,
    pub alerts: crate::history::AlertRules,
    /// `None` without `[alerting]` (or with `enabled = false`).
    pub alerting: Option<crate::alert::AlertingConfig>,
}

#[derive(Debug, Clone)]
pub struct AppleConfig {
    pub base_url: String,
    pub production: bool,
    pub issuer_id: String,
    pub key_id: String,
    pub bundle_id: String,
    pub private_key: SecretSource,
    pub token_lifetime: Duration,
    /// Polls of an App Store Server API endpoint (steps with `auth = "app-store"`) are
    /// never closer than this, whatever the probe's `every` says.
    pub poll_min_interval: Duration,
    pub root_ca: Vec<PathBuf>,
}

#[derive(Debug, Clone)]
pub struct GoogleConfig {
    pub base_url: String,
    pub package_name: String,
    pub service_account: SecretSource,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{}: cannot read config: {source} (pass --config PATH, or run `probe demo` to try the sandbox)", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}", .0.iter().map(|d| d.to_string()).collect::<Vec<_>>().join("\n"))]
    Invalid(Vec<Diagnostic>),
}

struct Diags<'a> {
    path: &'a Path,
    src: &'a str,
    out: Vec<Diagnostic>,
}

impl Diags<'_> {
    fn at(&mut self, span: std::ops::Range<usize>, key: &str, msg: impl Into<String>) {
        let (line, column) = line_col(self.src, span.start);
        self.out.push(Diagnostic {
            file: self.path.to_path_buf(),
            line: Some(line),
            column: Some(column),
            key: Some(key.to_string()),
            message: msg.into(),
        });
    }
}

fn check_url(d: &mut Diags<'_>, url: &Spanned<String>, key: &str) {
    match reqwest::Url::parse(url.get_ref()) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {}
        Ok(u) => d.at(
            url.span(),
            key,
            format!("{:?}: scheme must be http or https", u.as_str()),
        ),
        Err(e) => d.at(
            url.span(),
            key,
            format!("{:?} is not a URL: {e}", url.get_ref()),
        ),
    }
}

fn check_secret(d: &mut Diags<'_>, s: &Spanned<SecretSource>, key: &str) {
    if let Err(e) = s.get_ref().validate() {
        d.at(s.span(), key, e.to_string());
    }
}

/// Loads and validates `probe.toml`.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let src = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    parse(&src, path)
}

pub fn parse(src: &str, path: &Path) -> Result<Config, ConfigError> {
    let mut d = Diags {
        path,
        src,
        out: Vec::new(),
    };
    let file: ConfigFile = match toml::from_str(src) {
        Ok(f) => f,
        Err(e) => return Err(ConfigError::Invalid(vec![toml_diagnostic(src, path, &e)])),
    };
    let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
    check_url(&mut d, &file.backend.base_url, "backend.base_url");
    if let Some(t) = &file.backend.admin_token {
        check_secret(&mut d, t, "backend.admin_token");
    }
    let apple = file.apple.map(|a| {
        let base = a
            .base_url
            .clone()
            .unwrap_or_else(|| Spanned::new(0..0, APPLE_SANDBOX_URL.to_string()));
        check_url(&mut d, &base, "apple.base_url");
        let env_prod = match &a.environment {
            None => false,
            Some(e) => match e.get_ref().to_ascii_lowercase().as_str() {
                "sandbox" => false,
                "production" => true,
                other => {
                    d.at(
                        e.span(),
                        "apple.environment",
                        format!("{other:?}: expected \"sandbox\" or \"production\""),
                    );
                    false
                }
            },
        };
        let host_prod = reqwest::Url::parse(base.get_ref())
            .ok()
            .and_then(|u| u.host_str().map(|h| h == APPLE_PRODUCTION_HOST))
            .unwrap_or(false);
        if (env_prod || host_prod) && !a.allow_production {
            let span = a
                .environment
                .as_ref()
                .filter(|_| env_prod)
                .map(|e| e.span())
                .unwrap_or(base.span());
            d.at(
                span,
                if env_prod { "apple.environment" } else { "apple.base_url" },
                "Apple's production App Store Server API is refused: probes make purchases. Set allow_production = true in [apple] if you really mean it",
            );
        }
        check_secret(&mut d, &a.private_key, "apple.private_key");
        let lifetime = a
            .token_lifetime
            .as_ref()
            .map(|l| l.get_ref().0)
            .unwrap_or(crate::auth::apple::DEFAULT_LIFETIME);
        if (lifetime > crate::auth::apple::MAX_LIFETIME || lifetime < Duration::from_secs(60))
            && let Some(l) = &a.token_lifetime
        {
            d.at(
                l.span(),
                "apple.token_lifetime",
                "must be between 1m and 60m (Apple refuses tokens living over an hour)",
            );
        }
        // Apple's rate limit on Get Test Notification Status: about one request a second
        // in production and a tenth of that in the sandbox.
        let poll_min_interval = a.poll_min_interval.as_ref().map_or(
            if env_prod || host_prod {
                Duration::from_secs(1)
            } else {
                Duration::from_secs(10)
            },
            |m| m.get_ref().0,
        );
        AppleConfig {
            base_url: base.into_inner().trim_end_matches('/').to_string(),
            production: env_prod || host_prod,
            poll_min_interval,
            issuer_id: a.issuer_id,
            key_id: a.key_id,
            bundle_id: a.bundle_id,
            private_key: a.private_key.into_inner(),
            token_lifetime: lifetime,
            root_ca: a.root_ca.iter().map(|p| dir.join(p)).collect(),
        }
    });
    let google = file.google.map(|g| {
        let base = g
            .base_url
            .unwrap_or_else(|| Spanned::new(0..0, GOOGLE_PLAY_URL.to_string()));
        check_url(&mut d, &base, "google.base_url");
        check_secret(&mut d, &g.service_account, "google.service_account");
        GoogleConfig {
            base_url: base.into_inner().trim_end_matches('/').to_string(),
            package_name: g.package_name,
            service_account: g.service_account.into_inner(),
        }
    });
    let mut fixtures = BTreeMap::new();
    for (platform, values) in file.fixtures {
        if !matches!(platform.as_str(), "ios" | "android" | "common") {
            let span = values.values().next().map(|v| v.span()).unwrap_or(0..0);
            d.at(
                span,
                &format!("fixtures.{platform}"),
                "fixture groups are [fixtures.ios], [fixtures.android] and [fixtures.common]",
            );
            continue;
        }
        let mut out = BTreeMap::new();
        for (name, v) in values {
            let key = format!("fixtures.{platform}.{name}");
            let text = match v.get_ref() {
                toml::Value::String(s) => s.clone(),
                toml::Value::Integer(i) => i.to_string(),
                _ => {
                    d.at(v.span(), &key, "a fixture is a string or an integer");
                    continue;
                }
            };
            out.insert(name, text);
        }
        fixtures.insert(platform, out);
    }
    let slo = file.slo;
    for (name, v) in [
        ("slo.purchase_success_rate", slo.purchase_success_rate),
        (
            "slo.purchase_success_critical",
            slo.purchase_success_critical,
        ),
        ("slo.success_rate", slo.success_rate),
        ("slo.warn_at", slo.warn_at),
        (
            "alerts.purchase_critical_below",
            file.alerts.purchase_critical_below,
        ),
        (
            "alerts.purchase_warning_below",
            file.alerts.purchase_warning_below,
        ),
        ("alerts.verify_percentile", file.alerts.verify_percentile),
        (
            "alerts.cache_warning_below",
            file.alerts.cache_warning_below,
        ),
        (
            "alerts.error_rate_warning_above",
            file.alerts.error_rate_warning_above,
        ),
    ] {
        if !(0.0..=1.0).contains(&v) {
            d.out.push(Diagnostic {
                file: path.to_path_buf(),
                line: find_key_line(src, name.rsplit('.').next().unwrap_or(name)),
                column: None,
                key: Some(name.to_string()),
                message: format!("{v} must be between 0 and 1 (a ratio: write 0.995 for 99.5%)"),
            });
        }
    }
    let a = &file.alerts;
    for (name, v) in [
        (
            "alerts.purchase_critical_window",
            a.purchase_critical_window,
        ),
        ("alerts.purchase_warning_window", a.purchase_warning_window),
        ("alerts.verify_critical_window", a.verify_critical_window),
        ("alerts.verify_warning_window", a.verify_warning_window),
        ("alerts.cache_warning_window", a.cache_warning_window),
        (
            "alerts.error_rate_warning_window",
            a.error_rate_warning_window,
        ),
        ("history.retention", file.history.retention),
        ("run.timeout", file.run.timeout),
        ("run.deadline", file.run.deadline),
    ] {
        if v.0.is_zero() {
            d.out.push(Diagnostic {
                file: path.to_path_buf(),
                line: find_key_line(src, name.rsplit('.').next().unwrap_or(name)),
                column: None,
                key: Some(name.to_string()),
                message: "must be above zero (write e.g. \"5m\")".into(),
            });
        }
    }
    if file.run.concurrency == 0 {
        d.out.push(Diagnostic {
            file: path.to_path_buf(),
            line: find_key_line(src, "concurrency"),
            column: None,
            key: Some("run.concurrency".into()),
            message: "must be at least 1".into(),
        });
    }
    let history = file.history.enabled.then(|| HistoryConfig {
        path: dir.join(&file.history.path),
        retention: file.history.retention.0,
    });
    let (alerting, problems) = crate::alert::config::resolve(
        file.alerting,
        &dir,
        history.as_ref().map(|h| h.path.as_path()),
    );
    for (span, key, msg) in problems {
        d.at(span, &key, msg);
    }
    if !d.out.is_empty() {
        return Err(ConfigError::Invalid(d.out));
    }
    let ca_bundle = file.run.ca_bundle.as_ref().map(|p| dir.join(p));
    Ok(Config {
        path: path.to_path_buf(),
        probes_dir: dir.join(file.probes_dir.unwrap_or_else(|| "probes".into())),
        dir,
        environment: file.environment.unwrap_or_else(|| "sandbox".into()),
        backend_url: file
            .backend
            .base_url
            .into_inner()
            .trim_end_matches('/')
            .to_string(),
        admin_token: file.backend.admin_token.map(Spanned::into_inner),
        apple,
        google,
        fixtures,
        slo,
        request_timeout: file.run.timeout.0,
        deadline: file.run.deadline.0,
        concurrency: file.run.concurrency,
        max_body: file.run.max_body,
        ca_bundle,
        history,
        alerts: file.alerts,
        alerting,
    })
}

/// A TOML or type error: file, line, column, the key path when toml knows it, and what
/// to do about a missing section or key. Only toml's message is used, never the source
/// line it would quote (it may hold a secret).
fn toml_diagnostic(src: &str, path: &Path, e: &toml::de::Error) -> Diagnostic {
    let (line, column) = e
        .span()
        .map(|s| line_col(src, s.start))
        .map_or((None, None), |(l, c)| (Some(l), Some(c)));
    // Without its input, toml's Display ends with "in `a.b.c`": the key path.
    let mut bare = e.clone();
    bare.set_input(None);
    let key = bare
        .to_string()
        .lines()
        .find_map(|l| l.strip_prefix("in `").and_then(|l| l.strip_suffix('`')))
        .map(str::to_string);
    let mut message = e.message().trim().replace('\n', "; ");
    if let Some(field) = message
        .strip_prefix("missing field `")
        .and_then(|r| r.split('`').next())
        .map(str::to_string)
    {
        match key.as_deref() {
            None | Some("") => message.push_str(&format!(
                " (add a [{field}] section; `probe sandbox` writes a complete probe.toml to start from)"
            )),
            Some(table) => message.push_str(&format!(" (add {field} = ... under [{table}])")),
        }
    }
    Diagnostic {
        file: path.to_path_buf(),
        line,
        column,
        key,
        message,
    }
}

/// Line of the first `key =` in `src`, for keys without a span.
fn find_key_line(src: &str, key: &str) -> Option<usize> {
    src.lines()
        .position(|l| {
            let t = l.trim_start();
            t.starts_with(key) && t[key.len()..].trim_start().starts_with('=')
        })
        .map(|i| i + 1)
}

impl Config {
    /// Fixture variables for a probe of `platform` (`fixture.NAME`): common, then the
    /// platform's own.
    pub fn fixture_vars(&self, platform: crate::probe::Platform) -> BTreeMap<String, String> {
        let mut out = self.fixtures.get("common").cloned().unwrap_or_default();
        let own = match platform {
            crate::probe::Platform::Ios => self.fixtures.get("ios"),
            crate::probe::Platform::Android => self.fixtures.get("android"),
            crate::probe::Platform::Any => None,
        };
        if let Some(own) = own {
            out.extend(own.clone());
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
[backend]
base_url = "http://127.0.0.1:9/"
admin_token = { env = "IAP_ADMIN_TOKEN" }

[apple]
issuer_id = "i"
key_id = "K"
bundle_id = "com.x"
private_key = { file = "AuthKey_K.p8" }

[fixtures.ios]
transaction_id = 2000000000000001
"#;

    fn parse_str(s: &str) -> Result<Config, ConfigError> {
        parse(s, Path::new("conf/probe.toml"))
    }

    #[test]
    fn defaults_are_the_runbooks() {
        let c = parse_str(GOOD).unwrap();
        assert_eq!(c.backend_url, "http://127.0.0.1:9");
        assert_eq!(c.apple.as_ref().unwrap().base_url, APPLE_SANDBOX_URL);
        assert_eq!(c.probes_dir, Path::new("conf/probes"));
        assert_eq!(c.slo.purchase_completion.0, Duration::from_secs(30));
        assert_eq!(c.fixtures["ios"]["transaction_id"], "2000000000000001");
    }

    #[test]
    fn production_refused_without_opt_in() {
        let s = GOOD.replace("[apple]\n", "[apple]\nenvironment = \"production\"\n");
        let e = parse_str(&s).unwrap_err().to_string();
        assert!(e.contains("conf/probe.toml: line 7"), "{e}");
        assert!(e.contains("allow_production"), "{e}");
        let s = GOOD.replace(
            "[apple]\n",
            "[apple]\nbase_url = \"https://api.storekit.itunes.apple.com\"\n",
        );
        assert!(parse_str(&s).is_err());
        let s = GOOD.replace(
            "[apple]\n",
            "[apple]\nenvironment = \"production\"\nallow_production = true\n",
        );
        assert!(parse_str(&s).unwrap().apple.unwrap().production);
    }

    #[test]
    fn errors_name_line_and_key() {
        let s = GOOD.replace("base_url = \"http://127.0.0.1:9/\"", "base_url = \"nope\"");
        let e = parse_str(&s).unwrap_err().to_string();
        assert!(
            e.contains("line 3") && e.contains("backend.base_url"),
            "{e}"
        );
        let s = GOOD.replace("[apple]\n", "[apple]\nbogus = 1\n");
        let e = parse_str(&s).unwrap_err().to_string();
        assert!(e.contains("line 7") && e.contains("bogus"), "{e}");
        let s = GOOD.replace("{ env = \"IAP_ADMIN_TOKEN\" }", "{ value = \"hunter2\" }");
        let e = parse_str(&s).unwrap_err().to_string();
        assert!(
            e.contains("backend.admin_token") && !e.contains("hunter2"),
            "{e}"
        );
    }
}
