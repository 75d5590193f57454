//! Judging a response against `expect` / `until`. Failures are data (a list of readable
//! messages), not errors: a probe that fails an assertion is a result, and the report
//! needs every reason, in words an on-call engineer can act on.

use std::fmt;

use serde_json::Value;

use super::model::{Expect, JsonCheck, Matcher};
use super::template::{Vars, has_template, json_strings, render_json};

/// What the assertions look at.
#[derive(Debug, Clone, Copy)]
pub struct Response<'a> {
    pub status: u16,
    /// The parsed body, when it was JSON.
    pub json: Option<&'a Value>,
    /// The start of the raw body, shown when JSON was expected but absent.
    pub body_snippet: &'a str,
    /// The `Content-Type` header, named when the body is not JSON (`None`: absent).
    pub content_type: Option<&'a str>,
}

/// One failed assertion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssertionFailure {
    /// The JSONPath as written, or `None` for the status check.
    pub path: Option<String>,
    /// e.g. `status 401, expected 200` or `$.valid is false, expected true`.
    pub message: String,
}

impl fmt::Display for AssertionFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// Checks status and every JSON matcher; an empty list means the response passed.
pub fn check(expect: &Expect, resp: &Response<'_>, vars: &Vars) -> Vec<AssertionFailure> {
    let mut out = Vec::new();
    if let Some(msg) = status_failure(&expect.status, resp.status) {
        out.push(AssertionFailure {
            path: None,
            message: msg,
        });
    }
    out.extend(check_json(&expect.json, resp, vars));
    out
}

/// Checks JSON matchers only (no status rule), e.g. on a verified signed payload.
pub fn check_json(checks: &[JsonCheck], resp: &Response<'_>, vars: &Vars) -> Vec<AssertionFailure> {
    let mut out = Vec::new();
    for jc in checks {
        let message = match resp.json {
            None => Some(format!(
                "{}: no JSON body ({})",
                jc.path,
                describe_body(resp.content_type, resp.body_snippet)
            )),
            Some(json) => json_failure(jc, json, vars),
        };
        if let Some(message) = message {
            out.push(AssertionFailure {
                path: Some(jc.path.clone()),
                message,
            });
        }
    }
    out
}

fn status_failure(accepted: &[u16], status: u16) -> Option<String> {
    let ok = if accepted.is_empty() {
        (200..300).contains(&status)
    } else {
        accepted.contains(&status)
    };
    if ok {
        return None;
    }
    let expected = match accepted {
        [] => "2xx".to_string(),
        [one] => one.to_string(),
        many => {
            let list: Vec<String> = many.iter().map(u16::to_string).collect();
            format!("one of {}", list.join(", "))
        }
    };
    Some(format!("status {status}, expected {expected}"))
}

/// What came instead of JSON: the declared type (the usual clue: a proxy's or load
/// balancer's HTML page) and how the body starts.
fn describe_body(content_type: Option<&str>, snippet: &str) -> String {
    // Trimmed, capped and `None` when empty already (`runner::http::exchange`).
    let ctype = match content_type {
        Some(c) => format!("Content-Type {c}"),
        None => "no Content-Type".into(),
    };
    let s = snippet.trim();
    if s.is_empty() {
        return format!("{ctype}; empty body");
    }
    let short: String = s.chars().take(40).collect();
    let more = if short.len() < s.len() { "…" } else { "" };
    format!("{ctype}; starts \"{short}{more}\"")
}

fn json_failure(jc: &JsonCheck, json: &Value, vars: &Vars) -> Option<String> {
    let p = &jc.path;
    let operand = |v: &Value| -> Result<(Value, bool), String> {
        let templated = json_strings(v).into_iter().any(has_template);
        render_json(v, vars)
            .map(|r| (r, templated))
            .map_err(|e| format!("{p}: cannot render expected value: {e}"))
    };
    let nodes: Vec<(String, &Value)> = jc
        .compiled
        .query_located(json)
        .into_iter()
        .map(|n| (n.location().to_string(), n.node()))
        .collect();
    let missing = if jc.singular {
        "is missing"
    } else {
        "matched nothing"
    };
    // Names a failing node: the path for singular paths, path + location otherwise.
    let at = |loc: &str| {
        if jc.singular {
            p.clone()
        } else {
            format!("{p}: {loc}")
        }
    };

    match &jc.matcher {
        Matcher::Exists(true) if nodes.is_empty() => {
            Some(format!("{p} {missing}, expected it to exist"))
        }
        Matcher::Exists(false) => nodes
            .first()
            .map(|(loc, v)| format!("{} exists ({}), expected it to be absent", at(loc), show(v))),
        Matcher::Exists(true) => None,
        Matcher::Equals(op) | Matcher::NotEquals(op) => {
            let (op, templated) = match operand(op) {
                Ok(x) => x,
                Err(e) => return Some(e),
            };
            let want_eq = matches!(jc.matcher, Matcher::Equals(_));
            let expected = if want_eq {
                show(&op)
            } else {
                format!("anything but {}", show(&op))
            };
            if nodes.is_empty() {
                return Some(format!("{p} {missing}, expected {expected}"));
            }
            nodes
                .iter()
                .find(|(_, v)| json_eq(v, &op, templated) != want_eq)
                .map(|(loc, v)| format!("{} is {}, expected {expected}", at(loc), show(v)))
        }
        Matcher::Contains(op) => {
            let (op, templated) = match operand(op) {
                Ok(x) => x,
                Err(e) => return Some(e),
            };
            contains_failure(jc, &nodes, &op, templated)
        }
        Matcher::Gt(op) | Matcher::Gte(op) | Matcher::Lt(op) | Matcher::Lte(op) => {
            let (sym, cmp): (&str, fn(f64, f64) -> bool) = match jc.matcher {
                Matcher::Gt(_) => (">", |a, b| a > b),
                Matcher::Gte(_) => (">=", |a, b| a >= b),
                Matcher::Lt(_) => ("<", |a, b| a < b),
                _ => ("<=", |a, b| a <= b),
            };
            let bound = match operand(op) {
                Ok((v, _)) => match as_number(&v) {
                    Some(n) => n,
                    None => {
                        return Some(format!("{p}: expected value {} is not a number", show(&v)));
                    }
                },
                Err(e) => return Some(e),
            };
            if nodes.is_empty() {
                return Some(format!("{p} {missing}, expected {sym} {bound}"));
            }
            nodes.iter().find_map(|(loc, v)| match v.as_f64() {
                Some(n) if cmp(n, bound) => None,
                Some(_) => Some(format!(
                    "{} is {}, expected {sym} {bound}",
                    at(loc),
                    show(v)
                )),
                None => Some(format!(
                    "{} is {}, expected a number {sym} {bound}",
                    at(loc),
                    show(v)
                )),
            })
        }
    }
}

fn contains_failure(
    jc: &JsonCheck,
    nodes: &[(String, &Value)],
    op: &Value,
    templated: bool,
) -> Option<String> {
    let p = &jc.path;
    if !jc.singular {
        if nodes.iter().any(|(_, v)| json_eq(v, op, templated)) {
            return None;
        }
        if nodes.is_empty() {
            return Some(format!(
                "{p} matched nothing, expected an element equal to {}",
                show(op)
            ));
        }
        let seen: Vec<String> = nodes.iter().take(5).map(|(_, v)| show(v)).collect();
        let more = if nodes.len() > 5 { ", ..." } else { "" };
        return Some(format!(
            "{p} has no element equal to {} (matched {}: {}{more})",
            show(op),
            nodes.len(),
            seen.join(", ")
        ));
    }
    let Some((_, v)) = nodes.first() else {
        return Some(format!(
            "{p} is missing, expected it to contain {}",
            show(op)
        ));
    };
    match (v, op) {
        (Value::String(s), Value::String(sub)) if s.contains(sub.as_str()) => None,
        (Value::String(_), Value::String(_)) => Some(format!(
            "{p} is {}, expected it to contain {}",
            show(v),
            show(op)
        )),
        (Value::String(_), _) => Some(format!("{p} is a string; cannot contain {}", show(op))),
        (Value::Array(items), _) if items.iter().any(|i| json_eq(i, op, templated)) => None,
        (Value::Array(items), _) => Some(format!(
            "{p} has no element equal to {} ({} elements)",
            show(op),
            items.len()
        )),
        (Value::Object(map), Value::String(k)) if map.contains_key(k) => None,
        (Value::Object(_), _) => Some(format!("{p} has no key {}", show(op))),
        _ => Some(format!(
            "{p} is {}, expected a string, array or object containing {}",
            show(v),
            show(op)
        )),
    }
}

/// JSON equality where numbers compare by value (1 == 1.0). When the expected value came
/// from a template (always a string), a number or bool matches its text form.
fn json_eq(actual: &Value, expected: &Value, templated: bool) -> bool {
    match (actual, expected) {
        (Value::Number(a), Value::Number(b)) => match (a.as_i64(), b.as_i64()) {
            (Some(x), Some(y)) => x == y,
            _ => a.as_f64() == b.as_f64() && a.as_f64().is_some(),
        },
        (Value::Array(a), Value::Array(b)) => {
            a.len() == b.len() && a.iter().zip(b).all(|(x, y)| json_eq(x, y, templated))
        }
        (Value::Object(a), Value::Object(b)) => {
            a.len() == b.len()
                && a.iter()
                    .all(|(k, x)| b.get(k).is_some_and(|y| json_eq(x, y, templated)))
        }
        (Value::Number(_) | Value::Bool(_), Value::String(s)) if templated => {
            let text = actual.to_string();
            text == *s
        }
        _ => actual == expected,
    }
}

fn as_number(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse::<f64>().ok().filter(|f| f.is_finite()),
        _ => None,
    }
}

/// Compact JSON, cut to a readable length.
fn show(v: &Value) -> String {
    let s = v.to_string();
    if s.chars().count() <= 80 {
        return s;
    }
    let cut: String = s.chars().take(77).collect();
    format!("{cut}...")
}

#[cfg(test)]
#[path = "assert_tests.rs"]
mod tests;
