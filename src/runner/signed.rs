//! A step's `verify_jws`: the captured value must be Apple signed data that verifies to
//! the configured trust anchors, for our bundle and our environment. Its payload's fields
//! become `jws.<field>` variables.

use super::context::Engine;
use crate::probe::Vars;

/// Built-in checks on a verified payload: our bundle, our environment. Notifications
/// carry both under `data`.
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
    if let Some(bid) = scope.get("bundleId").and_then(|b| b.as_str())
        && bid != bundle_id
    {
        return Err(format!(
            "wrong bundle: signed for {bid}, expected {bundle_id}"
        ));
    }
    let want = if production { "Production" } else { "Sandbox" };
    if let Some(env) = scope.get("environment").and_then(|e| e.as_str())
        && env != want
    {
        return Err(format!(
            "wrong environment: {env} data in a {} probe",
            want.to_lowercase()
        ));
    }
    Ok(())
}

pub fn verify_into(engine: &Engine, var: &str, vars: &mut Vars) -> Result<(), String> {
    let value = vars
        .get(var)
        .ok_or_else(|| format!("verify_jws: variable `{var}` has no value"))?
        .to_string();
    let payload = crate::jws::verify(&value, &engine.anchors).map_err(|e| format!("{var}: {e}"))?;
    if let Some(apple) = &engine.config.apple {
        check_scope(&payload, &apple.bundle_id, apple.production)
            .map_err(|e| format!("{var}: {e}"))?;
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
