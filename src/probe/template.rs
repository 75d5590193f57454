//! `{{var}}` templates in URLs, headers, bodies and matcher operands.
//!
//! Probe files are data; the only dynamic part is variable substitution. Names are
//! builtins (`backend`, `user`, ...), `fixture.*` values from the config, or values captured
//! by an earlier step. Parsing is separate from rendering so that `probe check` can list
//! every referenced name up front.

use std::collections::BTreeMap;

use serde_json::Value;

/// Why a template could not be parsed or rendered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error("unknown variable `{0}`")]
    UnknownVariable(String),
    #[error("unterminated `{{{{` at byte {0}")]
    Unterminated(usize),
    #[error("invalid variable name `{0}` (use letters, digits, `_`, `-` and `.`)")]
    BadName(String),
}

/// Variable values available to templates.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Vars(BTreeMap<String, String>);

impl Vars {
    pub fn new() -> Self {
        Self::default()
    }
    /// Sets (or replaces) a variable.
    pub fn set(&mut self, name: impl Into<String>, value: impl Into<String>) {
        self.0.insert(name.into(), value.into());
    }
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }
    pub fn contains(&self, name: &str) -> bool {
        self.0.contains_key(name)
    }
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }
    pub fn len(&self) -> usize {
        self.0.len()
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl<K: Into<String>, V: Into<String>> FromIterator<(K, V)> for Vars {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        Vars(
            iter.into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        )
    }
}

/// One piece of a parsed template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    Text(String),
    Var(String),
}

/// A parsed template string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    pub segments: Vec<Segment>,
}

impl Template {
    /// Parses `{{ name }}` references; whitespace inside the braces is ignored.
    pub fn parse(s: &str) -> Result<Self, TemplateError> {
        let mut segments = Vec::new();
        let mut rest = s;
        let mut offset = 0;
        while let Some(open) = rest.find("{{") {
            if open > 0 {
                segments.push(Segment::Text(rest[..open].to_string()));
            }
            let after = &rest[open + 2..];
            let close = after
                .find("}}")
                .ok_or(TemplateError::Unterminated(offset + open))?;
            let name = after[..close].trim();
            if !valid_name(name) {
                return Err(TemplateError::BadName(name.to_string()));
            }
            segments.push(Segment::Var(name.to_string()));
            let consumed = open + 2 + close + 2;
            offset += consumed;
            rest = &rest[consumed..];
        }
        if !rest.is_empty() {
            segments.push(Segment::Text(rest.to_string()));
        }
        Ok(Template { segments })
    }

    /// Names referenced, in order of appearance (duplicates kept once).
    pub fn variables(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for seg in &self.segments {
            if let Segment::Var(n) = seg
                && !out.contains(n)
            {
                out.push(n.clone());
            }
        }
        out
    }

    /// Substitutes every variable; an unknown one is an error naming it.
    pub fn render(&self, vars: &Vars) -> Result<String, TemplateError> {
        let mut out = String::new();
        for seg in &self.segments {
            match seg {
                Segment::Text(t) => out.push_str(t),
                Segment::Var(n) => out.push_str(
                    vars.get(n)
                        .ok_or_else(|| TemplateError::UnknownVariable(n.clone()))?,
                ),
            }
        }
        Ok(out)
    }
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

/// Whether `s` contains any `{{`.
pub fn has_template(s: &str) -> bool {
    s.contains("{{")
}

/// Renders `s` with `vars`.
pub fn render(s: &str, vars: &Vars) -> Result<String, TemplateError> {
    if !has_template(s) {
        return Ok(s.to_string());
    }
    Template::parse(s)?.render(vars)
}

/// Renders every string (values and object keys) in a JSON value, recursively.
/// A rendered string stays a string: `"{{n}}"` with `n = 5` gives `"5"`, not `5`.
pub fn render_json(value: &Value, vars: &Vars) -> Result<Value, TemplateError> {
    Ok(match value {
        Value::String(s) => Value::String(render(s, vars)?),
        Value::Array(items) => Value::Array(
            items
                .iter()
                .map(|v| render_json(v, vars))
                .collect::<Result<_, _>>()?,
        ),
        Value::Object(map) => {
            let mut out = serde_json::Map::new();
            for (k, v) in map {
                out.insert(render(k, vars)?, render_json(v, vars)?);
            }
            Value::Object(out)
        }
        other => other.clone(),
    })
}

/// Variable names referenced by `s` (best effort: stops at a syntax error; use
/// [`Template::parse`] to see the error).
pub fn variables(s: &str) -> Vec<String> {
    Template::parse(s)
        .map(|t| t.variables())
        .unwrap_or_default()
}

/// Every string inside a JSON value (keys included), for up-front validation.
pub fn json_strings(value: &Value) -> Vec<&str> {
    let mut out = Vec::new();
    collect_strings(value, &mut out);
    out
}

fn collect_strings<'a>(value: &'a Value, out: &mut Vec<&'a str>) {
    match value {
        Value::String(s) => out.push(s),
        Value::Array(items) => items.iter().for_each(|v| collect_strings(v, out)),
        Value::Object(map) => {
            for (k, v) in map {
                out.push(k);
                collect_strings(v, out);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn vars() -> Vars {
        [
            ("backend", "http://b"),
            ("fixture.transaction_id", "t-1"),
            ("n", "5"),
        ]
        .into_iter()
        .collect()
    }

    #[test]
    fn renders_variables_with_whitespace() {
        let s = "{{backend}}/tx/{{ fixture.transaction_id }}?n={{n}}";
        assert_eq!(render(s, &vars()).unwrap(), "http://b/tx/t-1?n=5");
        assert_eq!(render("plain } { text", &vars()).unwrap(), "plain } { text");
    }

    #[test]
    fn unknown_and_unterminated_are_errors() {
        let e = render("{{backend}}/{{nope}}", &vars()).unwrap_err();
        assert_eq!(e, TemplateError::UnknownVariable("nope".into()));
        assert!(e.to_string().contains("nope"));
        let e = render("ab{{backend", &vars()).unwrap_err();
        assert_eq!(e, TemplateError::Unterminated(2));
        assert!(e.to_string().contains("unterminated `{{`"), "{e}");
        assert!(matches!(
            render("{{}}", &vars()),
            Err(TemplateError::BadName(_))
        ));
        assert!(matches!(
            render("{{a b}}", &vars()),
            Err(TemplateError::BadName(_))
        ));
    }

    #[test]
    fn lists_variables() {
        assert_eq!(
            variables("{{a}}{{ fixture.x }}{{a}}"),
            vec!["a".to_string(), "fixture.x".to_string()]
        );
        assert!(variables("none").is_empty());
    }

    #[test]
    fn renders_json_recursively_keeping_strings() {
        let v =
            json!({"url": "{{backend}}", "n": "{{n}}", "list": ["{{n}}", 1, true], "{{n}}": null});
        let out = render_json(&v, &vars()).unwrap();
        assert_eq!(
            out,
            json!({"url": "http://b", "n": "5", "list": ["5", 1, true], "5": null})
        );
        assert_eq!(json_strings(&v).len(), 7); // 4 keys, 3 values
    }

    #[test]
    fn multibyte_text_is_safe() {
        assert_eq!(render("é{{n}}ü", &vars()).unwrap(), "é5ü");
        assert!(render("é{{ü", &vars()).is_err());
    }
}
