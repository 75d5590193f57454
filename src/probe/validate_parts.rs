//! Validation helpers shared by requests, `expect` and `until`: template references,
//! TOML -> JSON conversion, JSONPath compilation and matcher operands.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;

use serde_json::Value;
use serde_json_path::JsonPath;
use toml::Spanned;

use super::definition::{ExpectDef, MatcherDef};
use super::diag::Sink;
use super::model::{Expect, JsonCheck, Matcher, is_singular_path};
use super::template::{Template, has_template, json_strings};

/// Per-step validation state.
pub(crate) struct Ctx<'s, 'a> {
    pub sink: &'s mut Sink<'a>,
    pub builtins: &'s [&'s str],
    /// Variables captured by earlier steps.
    pub captured: BTreeSet<String>,
    /// Variables captured by this or later steps -> the first step capturing them (for a
    /// better message when a step uses a value too early).
    pub captured_later: BTreeMap<String, String>,
    /// Variables referenced by the current step.
    pub used: BTreeSet<String>,
}

impl Ctx<'_, '_> {
    pub fn err(&mut self, span: &Range<usize>, key: &str, msg: impl Into<String>) {
        self.sink.at(span, key, msg);
    }

    fn is_known(&self, name: &str) -> bool {
        self.builtins.contains(&name)
            || (name.starts_with("fixture.") && name.len() > "fixture.".len())
            || self.captured.contains(name)
            // `verify_jws` exposes the verified payload's fields as `jws.<field>`.
            || (name.starts_with("jws.") && self.captured.contains("jws.*"))
    }

    /// Checks template syntax and that every variable is known here.
    pub fn template(&mut self, span: &Range<usize>, key: &str, s: &str) {
        if !has_template(s) {
            return;
        }
        let t = match Template::parse(s) {
            Ok(t) => t,
            Err(e) => return self.err(span, key, format!("bad template {s:?}: {e}")),
        };
        for name in t.variables() {
            if !self.is_known(&name) {
                let msg = match self.captured_later.get(&name) {
                    Some(step) => format!(
                        "variable `{name}` is captured by step {step:?}, which has not run \
                         yet here: a step can use captures of earlier steps only"
                    ),
                    None => {
                        let mut known: Vec<&str> = self.builtins.to_vec();
                        known.extend(self.captured.iter().map(String::as_str));
                        format!(
                            "unknown variable `{name}`: not a builtin, not `fixture.*`, and not \
                             captured by an earlier step (known here: {})",
                            known.join(", ")
                        )
                    }
                };
                self.err(span, key, msg);
            }
            self.used.insert(name);
        }
    }

    /// Converts a TOML value to JSON and checks the templates in its strings.
    pub fn json_value(&mut self, span: &Range<usize>, key: &str, v: &toml::Value) -> Value {
        let json = match toml_to_json(v) {
            Ok(j) => j,
            Err(e) => {
                self.err(span, key, e);
                return Value::Null;
            }
        };
        for s in json_strings(&json) {
            self.template(span, key, s);
        }
        json
    }

    /// Validates `expect` / `until`.
    pub fn expect(&mut self, def: &ExpectDef, key: &str) -> Expect {
        let mut out = Expect::default();
        if let Some(status) = &def.status {
            if status.get_ref().0.is_empty() {
                self.err(
                    &status.span(),
                    &format!("{key}.status"),
                    "empty status list",
                );
            }
            for &code in &status.get_ref().0 {
                match u16::try_from(code) {
                    Ok(c) if (100..=599).contains(&c) => out.status.push(c),
                    _ => self.err(
                        &status.span(),
                        &format!("{key}.status"),
                        format!("{code} is not an HTTP status (100-599)"),
                    ),
                }
            }
        }
        out.json = self.json_checks(&def.json, &format!("{key}.json"));
        out
    }

    /// Validates `"$.path" = matcher` lines (of `expect.json`, `verify_jws.expect`).
    pub fn json_checks(
        &mut self,
        def: &BTreeMap<Spanned<String>, Spanned<MatcherDef>>,
        key: &str,
    ) -> Vec<JsonCheck> {
        let mut out = Vec::new();
        for (path, matcher) in def {
            let k = format!("{key}.{}", path.get_ref());
            let compiled = self.json_path(&path.span(), &k, path.get_ref());
            let m = self.matcher(&matcher.span(), &k, matcher.get_ref());
            if let (Some(compiled), Some(matcher)) = (compiled, m) {
                out.push(JsonCheck {
                    path: path.get_ref().clone(),
                    singular: is_singular_path(path.get_ref()),
                    compiled,
                    matcher,
                });
            }
        }
        out
    }

    /// Compiles a JSONPath, reporting a parse error at `span`.
    pub fn json_path(&mut self, span: &Range<usize>, key: &str, path: &str) -> Option<JsonPath> {
        match JsonPath::parse(path) {
            Ok(p) => Some(p),
            Err(e) => {
                let hint = if path.starts_with('$') {
                    ""
                } else {
                    " (a JSONPath starts with `$`)"
                };
                self.err(span, key, format!("invalid JSONPath {path:?}: {e}{hint}"));
                None
            }
        }
    }

    fn matcher(&mut self, span: &Range<usize>, key: &str, def: &MatcherDef) -> Option<Matcher> {
        let before = self.sink.diags.len();
        let m = match def {
            MatcherDef::Equals(v) => Matcher::Equals(self.json_value(span, key, v)),
            MatcherDef::NotEquals(v) => Matcher::NotEquals(self.json_value(span, key, v)),
            MatcherDef::Contains(v) => Matcher::Contains(self.json_value(span, key, v)),
            MatcherDef::Exists(b) => Matcher::Exists(*b),
            MatcherDef::Gt(v) => Matcher::Gt(self.number(span, key, "gt", v)),
            MatcherDef::Gte(v) => Matcher::Gte(self.number(span, key, "gte", v)),
            MatcherDef::Lt(v) => Matcher::Lt(self.number(span, key, "lt", v)),
            MatcherDef::Lte(v) => Matcher::Lte(self.number(span, key, "lte", v)),
        };
        (self.sink.diags.len() == before).then_some(m)
    }

    fn number(&mut self, span: &Range<usize>, key: &str, op: &str, v: &toml::Value) -> Value {
        let json = self.json_value(span, key, v);
        match &json {
            Value::Number(_) => {}
            Value::String(s) if has_template(s) => {}
            other => self.err(
                span,
                key,
                format!("`{op}` needs a number (or a template giving one), got {other}"),
            ),
        }
        json
    }
}

/// TOML -> JSON: datetimes become strings; NaN and infinities are rejected.
pub fn toml_to_json(v: &toml::Value) -> Result<Value, String> {
    Ok(match v {
        toml::Value::String(s) => Value::String(s.clone()),
        toml::Value::Integer(i) => Value::from(*i),
        toml::Value::Float(f) => serde_json::Number::from_f64(*f)
            .map(Value::Number)
            .ok_or_else(|| format!("{f} cannot be represented in JSON"))?,
        toml::Value::Boolean(b) => Value::Bool(*b),
        toml::Value::Datetime(d) => Value::String(d.to_string()),
        toml::Value::Array(items) => {
            Value::Array(items.iter().map(toml_to_json).collect::<Result<_, _>>()?)
        }
        toml::Value::Table(t) => {
            let mut map = serde_json::Map::new();
            for (k, v) in t {
                map.insert(k.clone(), toml_to_json(v)?);
            }
            Value::Object(map)
        }
    })
}

/// `[a-z0-9-]+`: probe and step names (they appear in metrics labels and file names).
pub fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// `[A-Za-z_][A-Za-z0-9_]*`: names a step may capture into.
pub fn valid_var(s: &str) -> bool {
    let mut bytes = s.bytes();
    matches!(bytes.next(), Some(b) if b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converts_toml_to_json() {
        let t: toml::Table = toml::from_str("a = 1\nb = [true, \"x\"]\nc = { d = 1.5 }").unwrap();
        let j = toml_to_json(&toml::Value::Table(t)).unwrap();
        assert_eq!(
            j,
            serde_json::json!({"a": 1, "b": [true, "x"], "c": {"d": 1.5}})
        );
        assert!(toml_to_json(&toml::Value::Float(f64::NAN)).is_err());
    }

    #[test]
    fn names() {
        assert!(valid_name("ios-purchase-2"));
        assert!(!valid_name("IOS") && !valid_name("") && !valid_name("a_b"));
        assert!(valid_var("signed_2") && valid_var("_x"));
        assert!(!valid_var("2x") && !valid_var("a.b") && !valid_var(""));
    }
}
