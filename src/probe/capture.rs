//! Captures: copy values out of a step's JSON response into variables for later steps
//! (a transaction's signed payload, a purchase token). A missing value is a step failure
//! with a message, not a panic or an empty string.

use serde_json::Value;

use super::model::Capture;
use super::template::Vars;

/// A capture that could not be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("capture `{var}` from {path}: {reason}")]
pub struct CaptureFailure {
    pub var: String,
    pub path: String,
    pub reason: String,
}

/// Stores each capture's first match: strings raw, other values as their JSON text.
/// Stops at the first capture that cannot be made.
pub fn capture(
    captures: &[Capture],
    json: Option<&Value>,
    vars: &mut Vars,
) -> Result<(), CaptureFailure> {
    for c in captures {
        let fail = |reason: &str| CaptureFailure {
            var: c.var.clone(),
            path: c.path.clone(),
            reason: reason.to_string(),
        };
        let json = json.ok_or_else(|| fail("the response has no JSON body"))?;
        let value = c
            .compiled
            .query(json)
            .first()
            .ok_or_else(|| fail("no match in the response"))?;
        let text = match value {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        vars.set(c.var.clone(), text);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use serde_json_path::JsonPath;

    fn cap(var: &str, path: &str) -> Capture {
        Capture {
            var: var.into(),
            path: path.into(),
            compiled: JsonPath::parse(path).unwrap(),
        }
    }

    #[test]
    fn captures_first_match_raw_or_as_json() {
        let body = json!({"signed": "eyJ.a.b", "n": 3, "list": [{"id": "a"}, {"id": "b"}], "o": {"k": true}});
        let caps = [
            cap("signed", "$.signed"),
            cap("n", "$.n"),
            cap("id", "$.list[*].id"),
            cap("o", "$.o"),
        ];
        let mut vars = Vars::new();
        capture(&caps, Some(&body), &mut vars).unwrap();
        assert_eq!(vars.get("signed"), Some("eyJ.a.b"));
        assert_eq!(vars.get("n"), Some("3"));
        assert_eq!(vars.get("id"), Some("a"));
        assert_eq!(vars.get("o"), Some("{\"k\":true}"));
    }

    #[test]
    fn missing_path_or_body_is_a_failure() {
        let mut vars = Vars::new();
        let e = capture(&[cap("t", "$.token")], Some(&json!({})), &mut vars).unwrap_err();
        assert_eq!(
            e.to_string(),
            "capture `t` from $.token: no match in the response"
        );
        let e = capture(&[cap("t", "$.token")], None, &mut vars).unwrap_err();
        assert!(e.to_string().contains("no JSON body"));
        assert!(vars.is_empty());
    }
}
