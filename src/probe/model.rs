//! The validated form of a probe: what the runner executes and `probe list` shows.
//!
//! Everything here has been checked by `load`: names are well formed, JSONPaths are
//! compiled, templates reference only known variables, durations are sane. The runner
//! never re-validates and never sees raw TOML.

use std::collections::BTreeSet;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;
use serde_json_path::JsonPath;

pub use super::definition::{Auth, Platform};

/// A loaded, validated probe.
#[derive(Debug, Clone, PartialEq)]
pub struct Probe {
    pub name: String,
    pub platform: Platform,
    pub description: Option<String>,
    pub tags: Vec<String>,
    pub steps: Vec<Step>,
    /// The file it came from (as given to the loader).
    pub source: PathBuf,
}

impl Probe {
    /// Every `fixture.*` name the probe's templates reference, so callers can check the
    /// config supplies them before anything is probed.
    pub fn fixtures_used(&self) -> BTreeSet<String> {
        self.steps
            .iter()
            .flat_map(|s| s.variables.iter())
            .filter(|v| v.starts_with("fixture."))
            .cloned()
            .collect()
    }
}

/// One HTTP step.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    pub name: String,
    pub auth: Auth,
    /// Per-request timeout; `None` means the runner's default.
    pub timeout: Option<Duration>,
    /// Reserved: number of retries after a failed attempt.
    pub retry_attempts: u32,
    pub request: Request,
    pub expect: Expect,
    pub capture: Vec<Capture>,
    pub poll: Option<Poll>,
    pub slo: Slo,
    /// Apple signed data (JWS + x5c) that must verify after this step.
    pub verify_jws: Option<VerifyJws>,
    /// Captures of this step recorded as numeric figures.
    pub record: Vec<String>,
    /// Every variable the step's templates reference (sorted, deduplicated).
    pub variables: Vec<String>,
    /// 1-based line of the step in its file, for messages.
    pub line: usize,
}

/// `verify_jws`: which variable holds the signed data, and what its verified payload
/// must say (the built-in bundle and environment checks come on top).
#[derive(Debug, Clone, PartialEq)]
pub struct VerifyJws {
    pub var: String,
    pub expect: Vec<JsonCheck>,
}

/// HTTP methods a probe may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Method {
    Get,
    Post,
    Put,
    Patch,
    Delete,
    Head,
    Options,
}

impl Method {
    pub const ALL: [Method; 7] = [
        Method::Get,
        Method::Post,
        Method::Put,
        Method::Patch,
        Method::Delete,
        Method::Head,
        Method::Options,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Patch => "PATCH",
            Method::Delete => "DELETE",
            Method::Head => "HEAD",
            Method::Options => "OPTIONS",
        }
    }

    /// Case-insensitive.
    pub fn parse(s: &str) -> Option<Method> {
        Self::ALL
            .into_iter()
            .find(|m| m.as_str().eq_ignore_ascii_case(s))
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The request; strings are templates rendered at run time.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    pub method: Method,
    pub url: String,
    /// Header name -> value template, in name order.
    pub headers: Vec<(String, String)>,
    pub body: Body,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Body {
    None,
    /// Sent as `application/json` after [`super::template::render_json`].
    Json(Value),
    /// Sent as is after [`super::template::render`].
    Raw(String),
}

/// Assertions on a response: `expect`, and a poll's `until`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Expect {
    /// Accepted statuses; empty means any 2xx.
    pub status: Vec<u16>,
    pub json: Vec<JsonCheck>,
}

/// One `"$.path" = matcher` line.
#[derive(Debug, Clone, PartialEq)]
pub struct JsonCheck {
    /// The path as written, for messages.
    pub path: String,
    pub compiled: JsonPath,
    /// Whether the path can select at most one node (no wildcard, slice, filter, union or
    /// descendant segment); decides how `contains` reads.
    pub singular: bool,
    pub matcher: Matcher,
}

/// A matcher; string operands are templates rendered at check time.
#[derive(Debug, Clone, PartialEq)]
pub enum Matcher {
    Equals(Value),
    NotEquals(Value),
    /// Singular path: substring of a string, element of an array, or key of an object.
    /// Multi-match path (`[*]`): some matched value equals the operand.
    Contains(Value),
    Exists(bool),
    /// Numeric comparisons; the operand is a number or a template rendering to one.
    Gt(Value),
    Gte(Value),
    Lt(Value),
    Lte(Value),
}

/// `var = "$.path"`: the first match's value is stored in `var`.
#[derive(Debug, Clone, PartialEq)]
pub struct Capture {
    pub var: String,
    pub path: String,
    pub compiled: JsonPath,
}

/// Repeat the request every `every` until `until` holds, for at most `within`.
#[derive(Debug, Clone, PartialEq)]
pub struct Poll {
    pub every: Duration,
    pub within: Duration,
    pub until: Expect,
    /// Ends the poll as a failure when satisfied.
    pub fail_if: Option<Expect>,
}

/// Latency targets for the step; `critical` bounds any single sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Slo {
    pub p50: Option<Duration>,
    pub p95: Option<Duration>,
    pub p99: Option<Duration>,
    pub critical: Option<Duration>,
}

/// Whether a JSONPath (as written; already known to parse) selects at most one node.
pub fn is_singular_path(path: &str) -> bool {
    let mut chars = path.chars().peekable();
    let mut quote: Option<char> = None;
    let mut in_bracket = false;
    let mut prev = '\0';
    while let Some(c) = chars.next() {
        if let Some(q) = quote {
            if c == '\\' {
                chars.next();
            } else if c == q {
                quote = None;
            }
            continue;
        }
        match c {
            '\'' | '"' if in_bracket => quote = Some(c),
            '[' => in_bracket = true,
            ']' => in_bracket = false,
            '*' | '?' => return false,
            ':' | ',' if in_bracket => return false,
            '.' if prev == '.' => return false,
            _ => {}
        }
        prev = c;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn singular_paths() {
        for p in ["$.a", "$.a.b[0]", "$['a*b']", "$[\"x,y\"].z", "$.a[-1]"] {
            assert!(is_singular_path(p), "{p}");
        }
        for p in [
            "$.a[*].b",
            "$..a",
            "$.a[0:2]",
            "$.a[?@.x == 1]",
            "$.a[0,1]",
            "$.*",
        ] {
            assert!(!is_singular_path(p), "{p}");
        }
    }

    #[test]
    fn methods() {
        assert_eq!(Method::parse("post"), Some(Method::Post));
        assert_eq!(Method::parse("FETCH"), None);
        assert_eq!(Method::Delete.to_string(), "DELETE");
    }
}
