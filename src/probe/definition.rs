//! The probe file format as serde types: exactly what a `probes/*.toml` file may say.
//!
//! Every table denies unknown keys, so a typo (`exepct`) is an error with a line number
//! rather than a silently skipped assertion. Fields that later validation must point at
//! are `toml::Spanned`, so semantic errors also carry a line. These raw types are turned
//! into the checked [`crate::probe::Probe`] by `validate`.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};
use toml::Spanned;

use super::duration::Dur;

/// Which store a probe exercises; `probe --platform` selects on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Platform {
    Ios,
    Android,
    Any,
}

impl Platform {
    pub fn as_str(self) -> &'static str {
        match self {
            Platform::Ios => "ios",
            Platform::Android => "android",
            Platform::Any => "any",
        }
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The credential a step's request carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Auth {
    /// App Store Server API JWT (ES256).
    AppStore,
    /// Google OAuth2 access token for the service account.
    GooglePlay,
    /// The backend's admin bearer token.
    Admin,
    #[default]
    None,
}

impl Auth {
    pub fn as_str(self) -> &'static str {
        match self {
            Auth::AppStore => "app-store",
            Auth::GooglePlay => "google-play",
            Auth::Admin => "admin",
            Auth::None => "none",
        }
    }
}

/// A whole probe file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProbeDef {
    pub name: Spanned<String>,
    pub platform: Platform,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default)]
    pub step: Vec<Spanned<StepDef>>,
}

/// One `[[step]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepDef {
    pub name: Spanned<String>,
    #[serde(default)]
    pub auth: Auth,
    #[serde(default)]
    pub timeout: Option<Spanned<Dur>>,
    #[serde(default)]
    pub retry: Option<RetryDef>,
    pub request: Spanned<RequestDef>,
    #[serde(default)]
    pub expect: Option<Spanned<ExpectDef>>,
    /// Variable name -> JSONPath.
    #[serde(default)]
    pub capture: BTreeMap<Spanned<String>, Spanned<String>>,
    #[serde(default)]
    pub poll: Option<Spanned<PollDef>>,
    #[serde(default)]
    pub until: Option<Spanned<ExpectDef>>,
    /// While polling: a response that satisfies this ends the poll as a failure at once
    /// (e.g. a notification send attempt that did not succeed).
    #[serde(default)]
    pub fail_if: Option<Spanned<ExpectDef>>,
    #[serde(default)]
    pub slo: Option<Spanned<SloDef>>,
    /// Apple signed data (JWS with an x5c chain) in a variable captured by this or an
    /// earlier step, that must verify, optionally with expectations on its payload.
    #[serde(default)]
    pub verify_jws: Option<Spanned<VerifyJwsDef>>,
    /// Numeric captures of this step to record as figures (history, metrics), e.g.
    /// `record = ["cache_hit_ratio"]`.
    #[serde(default)]
    pub record: Vec<Spanned<String>>,
}

/// `verify_jws = "var"`, or `verify_jws = { capture = "var", expect = { "$.path" = matcher } }`
/// with the usual matchers applied to the verified payload.
#[derive(Debug)]
pub struct VerifyJwsDef {
    pub capture: Spanned<String>,
    pub expect: BTreeMap<Spanned<String>, Spanned<MatcherDef>>,
}

/// The table form of [`VerifyJwsDef`]; its own type so unknown keys are refused.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct VerifyJwsTable {
    capture: Spanned<String>,
    #[serde(default)]
    expect: BTreeMap<Spanned<String>, Spanned<MatcherDef>>,
}

impl<'de> Deserialize<'de> for VerifyJwsDef {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = VerifyJwsDef;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a variable name, or a table with `capture` and `expect`")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<VerifyJwsDef, E> {
                // A bare string has no span of its own; the step's `verify_jws` span
                // is used for messages about it.
                Ok(VerifyJwsDef {
                    capture: Spanned::new(0..0, v.to_string()),
                    expect: BTreeMap::new(),
                })
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<VerifyJwsDef, A::Error> {
                let t = VerifyJwsTable::deserialize(de::value::MapAccessDeserializer::new(map))?;
                Ok(VerifyJwsDef {
                    capture: t.capture,
                    expect: t.expect,
                })
            }
        }
        d.deserialize_any(V)
    }
}

/// `retry = { attempts = N }` (reserved: parsed and validated, policy is the runner's).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetryDef {
    pub attempts: u32,
}

/// `request = { method, url, headers, json | body }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestDef {
    #[serde(default)]
    pub method: Option<Spanned<String>>,
    pub url: Spanned<String>,
    #[serde(default)]
    pub headers: BTreeMap<Spanned<String>, Spanned<String>>,
    #[serde(default)]
    pub json: Option<Spanned<toml::Value>>,
    #[serde(default)]
    pub body: Option<Spanned<String>>,
}

/// `expect` and `until`: a status rule and JSONPath matchers.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpectDef {
    #[serde(default)]
    pub status: Option<Spanned<StatusDef>>,
    #[serde(default)]
    pub json: BTreeMap<Spanned<String>, Spanned<MatcherDef>>,
}

/// `poll = { every, within }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PollDef {
    pub every: Spanned<Dur>,
    pub within: Spanned<Dur>,
}

/// `slo = { p50, p95, p99, critical }`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SloDef {
    pub p50: Option<Dur>,
    pub p95: Option<Dur>,
    pub p99: Option<Dur>,
    pub critical: Option<Dur>,
}

/// `status = 200` or `status = [200, 204]`; range-checked during validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusDef(pub Vec<i64>);

impl<'de> Deserialize<'de> for StatusDef {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = StatusDef;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an HTTP status code or a list of them")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<StatusDef, E> {
                Ok(StatusDef(vec![v]))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<StatusDef, E> {
                Ok(StatusDef(vec![i64::try_from(v).unwrap_or(i64::MAX)]))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<StatusDef, A::Error> {
                let mut out = Vec::new();
                while let Some(v) = seq.next_element::<i64>()? {
                    out.push(v);
                }
                Ok(StatusDef(out))
            }
        }
        d.deserialize_any(V)
    }
}

/// A matcher as written: a bare value (equals) or a one-key operator table.
#[derive(Debug, Clone, PartialEq)]
pub enum MatcherDef {
    Equals(toml::Value),
    NotEquals(toml::Value),
    Contains(toml::Value),
    Exists(bool),
    Gt(toml::Value),
    Gte(toml::Value),
    Lt(toml::Value),
    Lte(toml::Value),
}

/// The operator keys a matcher table may use.
pub const MATCHER_OPS: &[&str] = &[
    "equals",
    "not_equals",
    "contains",
    "exists",
    "gt",
    "gte",
    "lt",
    "lte",
];

impl<'de> Deserialize<'de> for MatcherDef {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = MatcherDef;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a value to equal, or a table with one of ")?;
                f.write_str(&MATCHER_OPS.join(", "))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<MatcherDef, E> {
                Ok(MatcherDef::Equals(toml::Value::Boolean(v)))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<MatcherDef, E> {
                Ok(MatcherDef::Equals(toml::Value::Integer(v)))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<MatcherDef, E> {
                Ok(MatcherDef::Equals(toml::Value::Float(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<MatcherDef, E> {
                Ok(MatcherDef::Equals(toml::Value::String(v.to_string())))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<MatcherDef, A::Error> {
                let mut out = Vec::new();
                while let Some(v) = seq.next_element::<toml::Value>()? {
                    out.push(v);
                }
                Ok(MatcherDef::Equals(toml::Value::Array(out)))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<MatcherDef, A::Error> {
                let Some(op) = map.next_key::<String>()? else {
                    return Err(de::Error::custom(format!(
                        "empty matcher table, expected one of {}",
                        MATCHER_OPS.join(", ")
                    )));
                };
                let m = match op.as_str() {
                    "equals" => MatcherDef::Equals(map.next_value()?),
                    "not_equals" => MatcherDef::NotEquals(map.next_value()?),
                    "contains" => MatcherDef::Contains(map.next_value()?),
                    "exists" => MatcherDef::Exists(map.next_value()?),
                    "gt" => MatcherDef::Gt(map.next_value()?),
                    "gte" => MatcherDef::Gte(map.next_value()?),
                    "lt" => MatcherDef::Lt(map.next_value()?),
                    "lte" => MatcherDef::Lte(map.next_value()?),
                    other => return Err(de::Error::unknown_field(other, MATCHER_OPS)),
                };
                if let Some(extra) = map.next_key::<String>()? {
                    return Err(de::Error::custom(format!(
                        "a matcher has exactly one operator, found `{op}` and `{extra}`"
                    )));
                }
                Ok(m)
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    struct M {
        m: MatcherDef,
    }

    fn m(src: &str) -> Result<MatcherDef, String> {
        toml::from_str::<M>(src)
            .map(|m| m.m)
            .map_err(|e| e.message().to_string())
    }

    #[test]
    fn matcher_forms() {
        assert_eq!(
            m("m = true").unwrap(),
            MatcherDef::Equals(toml::Value::Boolean(true))
        );
        assert_eq!(
            m("m = { gte = 1 }").unwrap(),
            MatcherDef::Gte(toml::Value::Integer(1))
        );
        assert_eq!(
            m("m = { exists = false }").unwrap(),
            MatcherDef::Exists(false)
        );
        assert!(
            m("m = { matches = \"x\" }")
                .unwrap_err()
                .contains("unknown field `matches`")
        );
        assert!(
            m("m = { gt = 1, lt = 2 }")
                .unwrap_err()
                .contains("exactly one operator")
        );
        assert!(m("m = {}").unwrap_err().contains("empty matcher"));
        assert!(m("m = { exists = 1 }").is_err());
    }

    #[test]
    fn status_forms() {
        #[derive(Deserialize)]
        struct S {
            s: StatusDef,
        }
        assert_eq!(
            toml::from_str::<S>("s = 200").unwrap().s,
            StatusDef(vec![200])
        );
        assert_eq!(
            toml::from_str::<S>("s = [200, 204]").unwrap().s.0,
            vec![200, 204]
        );
        assert!(toml::from_str::<S>("s = \"200\"").is_err());
    }

    #[test]
    fn enums_use_file_spelling() {
        #[derive(Deserialize)]
        struct A {
            a: Auth,
            p: Platform,
        }
        let a: A = toml::from_str("a = \"google-play\"\np = \"ios\"").unwrap();
        assert_eq!((a.a, a.p), (Auth::GooglePlay, Platform::Ios));
        assert!(toml::from_str::<A>("a = \"basic\"\np = \"ios\"").is_err());
    }
}
