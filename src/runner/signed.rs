//! A step's `verify_jws`: the captured value must be Apple signed data that verifies to
//! the configured trust anchors, for our bundle and our environment. Its payload's fields
//! become `jws.<field>` variables.

use super::context::Engine;
use crate::probe::{Response, Vars, VerifyJws, check_json};

/// Built-in checks on a verified payload: our bundle, our environment. Notifications
/// carry both under `data`. Absent counts as wrong: unscoped signed data proves nothing
/// about our app.
pub fn check_scope(
    payload: &serde_json::Value,
    bundle_id: &str,
    production: bool,
) -> Result<(), String> {
    let scope = if payload.get("data").is_some_and(|d| d.is_object()) {
        &payload["data"]
    } else {
        payload
    };
    match scope.get("bundleId").and_then(|b| b.as_str()) {
        None => {
            return Err(format!(
                "missing bundle: the signed payload has no bundleId (expected {bundle_id})"
            ));
        }
        Some(bid) if bid != bundle_id => {
            return Err(format!(
                "wrong bundle: signed for {bid}, expected {bundle_id}"
            ));
        }
        Some(_) => {}
    }
    let want = if production { "Production" } else { "Sandbox" };
    match scope.get("environment").and_then(|e| e.as_str()) {
        None => Err(format!(
            "missing environment: the signed payload has no environment (expected {want})"
        )),
        Some(env) if env != want => Err(format!(
            "wrong environment: {env} data in a {} probe",
            want.to_lowercase()
        )),
        Some(_) => Ok(()),
    }
}

/// Verifies `spec.var`, applies the built-in scope checks and `spec.expect`, then sets
/// `jws.<field>` for every top-level payload field.
pub fn verify_into(engine: &Engine, spec: &VerifyJws, vars: &mut Vars) -> Result<(), String> {
    let var = &spec.var;
    let value = vars
        .get(var)
        .ok_or_else(|| format!("verify_jws: variable `{var}` has no value"))?
        .to_string();
    let payload = crate::jws::verify(&value, &engine.anchors).map_err(|e| format!("{var}: {e}"))?;
    if let Some(apple) = &engine.config.apple {
        check_scope(&payload, &apple.bundle_id, apple.production)
            .map_err(|e| format!("{var}: {e}"))?;
    }
    let resp = Response {
        status: 200,
        json: Some(&payload),
        // Only described when there is no JSON; a verified payload always is JSON.
        body_snippet: "",
        content_type: None,
    };
    let failures = check_json(&spec.expect, &resp, vars);
    if !failures.is_empty() {
        let what: Vec<String> = failures.into_iter().map(|f| f.message).collect();
        return Err(format!(
            "{var}: verified, but the signed payload is not as expected: {}",
            what.join("; ")
        ));
    }
    if let Some(obj) = payload.as_object() {
        for (k, v) in obj {
            let text = match v {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            vars.set(format!("jws.{k}"), text);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::check_scope;
    use serde_json::json;

    const BID: &str = "com.example.app";

    #[test]
    fn scope_passes_for_our_bundle_and_environment() {
        let tx = json!({"bundleId": BID, "environment": "Sandbox"});
        assert_eq!(check_scope(&tx, BID, false), Ok(()));
        let n = json!({"notificationType": "TEST", "data": {"bundleId": BID, "environment": "Production"}});
        assert_eq!(check_scope(&n, BID, true), Ok(()));
    }

    #[test]
    fn each_scope_problem_has_its_own_reason() {
        let cases = [
            (json!({"environment": "Sandbox"}), "missing bundle:"),
            (
                json!({"bundleId": 7, "environment": "Sandbox"}),
                "missing bundle:",
            ),
            (
                json!({"data": {"environment": "Sandbox"}}),
                "missing bundle:",
            ),
            (json!({"bundleId": BID}), "missing environment:"),
            (json!({"data": {"bundleId": BID}}), "missing environment:"),
            (
                json!({"bundleId": "com.other", "environment": "Sandbox"}),
                "wrong bundle:",
            ),
            (
                json!({"bundleId": BID, "environment": "Production"}),
                "wrong environment:",
            ),
            (json!({}), "missing bundle:"),
        ];
        for (payload, reason) in cases {
            let got = check_scope(&payload, BID, false).expect_err(&payload.to_string());
            assert!(got.starts_with(reason), "{payload}: {got}");
        }
    }
}
