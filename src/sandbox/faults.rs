//! Fault injection: what the sandbox does wrong, per route, on purpose.
//!
//! A fault file (TOML via `--faults`, JSON via `PUT /sandbox/faults`) lists route rules —
//! matched by path prefix (a `*` matches one path segment) and optional method — plus a
//! few behaviours that are not about one response: entitlement propagation delay, cache
//! hit degradation, and which JWS the Apple fake signs. With a `seed`, every random
//! choice is reproducible.

use std::time::Duration;

use rand::{Rng, SeedableRng, rngs::StdRng};
use serde::{Deserialize, Serialize};

use crate::probe::duration::Dur;
use crate::sandbox::pki::JwsMode;

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FaultSpec {
    /// Seed for every random choice (error rates, latency distributions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// Time between a grant and the entitlement becoming visible.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entitlement_delay: Option<Dur>,
    /// Fraction (0..=1) of would-be cache hits served as misses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_hit_degradation: Option<f64>,
    /// Which signed data the Apple fake hands out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jws: Option<JwsFault>,
    /// Where the Apple fake delivers notifications (default: the reference backend's
    /// `/iap/notifications/apple`): point it at a closed port, or at `https://` on the
    /// plain-HTTP sandbox, to make delivery fail as NO_RESPONSE or TLS_ISSUE.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notification_url: Option<String>,
    /// App Store key ids the Apple fake no longer accepts (a rotated or revoked key).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub revoked_apple_keys: Vec<String>,
    #[serde(default, rename = "route", skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<RouteFault>,
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum JwsFault {
    Expired,
    Untrusted,
    BadSignature,
}

impl From<Option<JwsFault>> for JwsMode {
    fn from(f: Option<JwsFault>) -> Self {
        match f {
            None => JwsMode::Valid,
            Some(JwsFault::Expired) => JwsMode::Expired,
            Some(JwsFault::Untrusted) => JwsMode::Untrusted,
            Some(JwsFault::BadSignature) => JwsMode::BadSignature,
        }
    }
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RouteFault {
    /// Path prefix, e.g. `/iap/verify` or `/inApps/v1/transactions/*`.
    pub path: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency: Option<Latency>,
    /// Probability (0..=1) that the request fails with `status`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_rate: Option<f64>,
    /// Status for injected errors (default 500; 429 adds Retry-After).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// Delay announced in Retry-After on a 429/503.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after: Option<Dur>,
    /// Announce `Retry-After` as an HTTP date instead of delta seconds (not under
    /// `/inApps/`, where Apple's absolute milliseconds are kept): RFC 9110 allows both.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub retry_after_date: bool,
    /// Never answer.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub hang: bool,
    /// Complete outage: every request gets a 503 HTML page, as from a load balancer.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub outage: bool,
    /// Answer with this body instead (e.g. an HTML error page with status 200).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    /// Content type for `body` / `body_bytes` (default text/html for `body`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    /// Answer with a body of this many bytes (a 100 MB answer, say).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_bytes: Option<u64>,
    /// Headers at once, then the body one byte a second, forever.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub trickle: bool,
    /// Headers and part of the body, then the connection is cut.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub reset: bool,
}

/// Added latency: a fixed duration, uniform between bounds, or normal (clamped at 0).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum Latency {
    Fixed(Dur),
    Uniform { min: Dur, max: Dur },
    Normal { mean: Dur, stddev: Dur },
}

impl FaultSpec {
    pub fn from_toml(text: &str) -> Result<Self, String> {
        let spec: FaultSpec = toml::from_str(text).map_err(|e| e.to_string())?;
        spec.validate()?;
        Ok(spec)
    }

    pub fn validate(&self) -> Result<(), String> {
        let frac = |name: &str, v: Option<f64>| match v {
            Some(x) if !(0.0..=1.0).contains(&x) => {
                Err(format!("{name} = {x}: must be between 0 and 1"))
            }
            _ => Ok(()),
        };
        frac("cache_hit_degradation", self.cache_hit_degradation)?;
        for (i, r) in self.routes.iter().enumerate() {
            if !r.path.starts_with('/') {
                return Err(format!("route[{i}].path {:?} must start with '/'", r.path));
            }
            frac(&format!("route[{i}].error_rate"), r.error_rate)?;
            let shaped = r.body.is_some() || r.body_bytes.is_some();
            if let Some(s) = r.status
                && !(400..=599).contains(&s)
                && !(shaped && (200..=599).contains(&s))
            {
                return Err(format!(
                    "route[{i}].status {s}: must be 400..=599 (200..=599 with body or body_bytes)"
                ));
            }
            if let Some(Latency::Uniform { min, max }) = &r.latency
                && min > max
            {
                return Err(format!("route[{i}].latency: min > max"));
            }
        }
        Ok(())
    }

    /// The first rule matching this request.
    pub fn route_for(&self, method: &str, path: &str) -> Option<&RouteFault> {
        self.routes.iter().find(|r| {
            r.method
                .as_deref()
                .is_none_or(|m| m.eq_ignore_ascii_case(method))
                && path_matches(&r.path, path)
        })
    }

    pub fn entitlement_delay(&self) -> Duration {
        self.entitlement_delay
            .map(Duration::from)
            .unwrap_or_default()
    }

    pub fn rng(&self) -> StdRng {
        match self.seed {
            Some(s) => StdRng::seed_from_u64(s),
            None => StdRng::from_os_rng(),
        }
    }
}

/// Prefix match by segments; `*` matches any single segment.
fn path_matches(pattern: &str, path: &str) -> bool {
    let mut pat = pattern.trim_end_matches('/').split('/');
    let mut segs = path.split('/');
    loop {
        match (pat.next(), segs.next()) {
            (None, _) => return true,
            (Some(_), None) => return false,
            (Some("*"), Some(_)) => {}
            (Some(p), Some(s)) if p == s => {}
            _ => return false,
        }
    }
}

/// What the middleware should do for one request.
#[derive(Debug, PartialEq)]
pub enum Action {
    Hang,
    Outage,
    /// A hostile answer: odd body, endless trickle, cut connection.
    Hostile(Hostile),
    Fail {
        status: u16,
        retry_after: Option<Duration>,
        /// `Retry-After` as an HTTP date.
        http_date: bool,
    },
    Pass,
}

/// How to misbehave in the answer itself.
#[derive(Debug, Clone, PartialEq)]
pub struct Hostile {
    pub status: u16,
    pub body: Option<String>,
    pub content_type: Option<String>,
    pub body_bytes: Option<u64>,
    pub trickle: bool,
    pub reset: bool,
}

impl RouteFault {
    /// Draws this request's latency and action.
    pub fn decide(&self, rng: &mut StdRng) -> (Duration, Action) {
        let latency = match &self.latency {
            None => Duration::ZERO,
            Some(Latency::Fixed(d)) => d.0,
            Some(Latency::Uniform { min, max }) => {
                let (a, b) = (min.0.as_secs_f64(), max.0.as_secs_f64());
                Duration::from_secs_f64(if b > a { rng.random_range(a..=b) } else { a })
            }
            Some(Latency::Normal { mean, stddev }) => {
                // Box-Muller: one normal draw from two uniforms.
                let u1: f64 = rng.random_range(f64::EPSILON..1.0);
                let u2: f64 = rng.random();
                let z = (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos();
                let v = mean.0.as_secs_f64() + z * stddev.0.as_secs_f64();
                Duration::from_secs_f64(v.max(0.0))
            }
        };
        let action = if self.outage {
            Action::Outage
        } else if self.hang {
            Action::Hang
        } else if self.trickle || self.reset || self.body.is_some() || self.body_bytes.is_some() {
            Action::Hostile(Hostile {
                status: self.status.unwrap_or(200),
                body: self.body.clone(),
                content_type: self.content_type.clone(),
                body_bytes: self.body_bytes,
                trickle: self.trickle,
                reset: self.reset,
            })
        } else if self
            .error_rate
            .is_some_and(|p| p > 0.0 && rng.random_bool(p.min(1.0)))
            || (self.error_rate.is_none() && self.status.is_some())
        {
            Action::Fail {
                status: self.status.unwrap_or(500),
                retry_after: self.retry_after.map(Duration::from),
                http_date: self.retry_after_date,
            }
        } else {
            Action::Pass
        };
        (latency, action)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_fault_file() {
        let spec = FaultSpec::from_toml(
            r#"
            seed = 7
            entitlement_delay = "5s"
            jws = "expired"
            [[route]]
            path = "/inApps/v1/transactions/*"
            latency = "20ms"
            [[route]]
            path = "/iap/verify"
            method = "POST"
            latency = { min = "10ms", max = "30ms" }
            error_rate = 0.5
            status = 503
            "#,
        )
        .unwrap();
        assert_eq!(spec.entitlement_delay(), Duration::from_secs(5));
        assert!(spec.route_for("GET", "/inApps/v1/transactions/1").is_some());
        assert!(spec.route_for("GET", "/inApps/v2/history/1").is_none());
        assert!(spec.route_for("GET", "/iap/verify").is_none());
        assert!(spec.route_for("POST", "/iap/verify").is_some());
    }

    #[test]
    fn rejects_bad_values() {
        assert!(FaultSpec::from_toml("[[route]]\npath = \"/x\"\nerror_rate = 2.0").is_err());
        assert!(FaultSpec::from_toml("[[route]]\npath = \"/x\"\nstatus = 200").is_err());
        assert!(FaultSpec::from_toml("bogus = 1").is_err());
    }

    #[test]
    fn seeded_choices_repeat() {
        let r = RouteFault {
            path: "/".into(),
            error_rate: Some(0.5),
            status: Some(503),
            ..Default::default()
        };
        let spec = FaultSpec {
            seed: Some(1),
            ..Default::default()
        };
        let draw = |mut rng: StdRng| (0..50).map(|_| r.decide(&mut rng).1).collect::<Vec<_>>();
        let a = draw(spec.rng());
        assert_eq!(a, draw(spec.rng()));
        let fails = a.iter().filter(|x| **x != Action::Pass).count();
        assert!((10..40).contains(&fails), "{fails} of 50");
    }
}
