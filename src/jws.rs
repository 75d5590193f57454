//! Apple signed-data verification, as Apple's `SignedDataVerifier` does it (online checks
//! off): compact JWS, ES256 only, `x5c` of exactly three certificates, the chain verified
//! leaf -> intermediate -> a configured trust anchor (never the root the message carries),
//! Apple's marker OIDs, validity at the payload's `signedDate`, and the signature checked
//! with the leaf key.

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use p256::ecdsa::signature::Verifier;
use serde_json::Value;
use x509_parser::prelude::*;

pub const LEAF_OID: &str = "1.2.840.113635.100.6.11.1";
pub const INTERMEDIATE_OID: &str = "1.2.840.113635.100.6.2.1";

/// Why signed data was not accepted. Each failure has its own reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwsError {
    #[error("not a JWS: {0}")]
    NotJws(String),
    #[error("JWS header: {0}")]
    Header(String),
    #[error("JWS alg {0} is not ES256")]
    Alg(String),
    #[error("x5c holds {0} certificates, expected 3")]
    ChainLength(usize),
    #[error("certificate {0} in x5c is not valid DER: {1}")]
    Certificate(usize, String),
    #[error("chain does not lead to a trusted root (unknown root)")]
    UnknownRoot,
    #[error("leaf certificate is not signed by the intermediate")]
    BrokenChain,
    #[error("intermediate certificate is not a CA")]
    NotCa,
    #[error("{0} certificate lacks Apple's marker extension {1}")]
    MissingOid(&'static str, &'static str),
    #[error("{0} certificate is not valid at signedDate {1} ms (expired or not yet valid)")]
    Expired(&'static str, i64),
    #[error("bad signature: the payload was not signed by the leaf key")]
    BadSignature,
    #[error("JWS payload is not a JSON object: {0}")]
    Payload(String),
}

/// Trusted roots, as DER.
#[derive(Clone, Debug, Default)]
pub struct TrustAnchors(pub Vec<Vec<u8>>);

impl TrustAnchors {
    /// Reads PEM (one or more certificates) or DER.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, String> {
        // A DER certificate is a SEQUENCE (0x30); anything else is taken as PEM. (Looking
        // for a '-' is not enough: Apple's own root, as the .cer Apple distributes, holds
        // 0x2D in its serial number and in "Apple Root CA - G3".)
        if bytes.first() != Some(&0x30) {
            let mut out = Vec::new();
            for pem in Pem::iter_from_buffer(bytes) {
                let pem = pem.map_err(|e| format!("invalid PEM: {e}"))?;
                if pem.label == "CERTIFICATE" {
                    out.push(pem.contents);
                }
            }
            if out.is_empty() {
                return Err("no CERTIFICATE in PEM".into());
            }
            return Ok(TrustAnchors(out));
        }
        parse_x509_certificate(bytes).map_err(|e| format!("invalid DER certificate: {e}"))?;
        Ok(TrustAnchors(vec![bytes.to_vec()]))
    }
}

fn describe_non_jws(s: &str) -> String {
    let t = s.trim_start();
    if t.starts_with('<') {
        let snippet: String = t.chars().take(40).collect();
        format!("an HTML page ({snippet}...)")
    } else if t.is_empty() {
        "an empty value".into()
    } else {
        format!(
            "{} characters that are not three base64url segments",
            s.len()
        )
    }
}

fn has_ext(cert: &X509Certificate<'_>, oid: &str) -> bool {
    cert.extensions()
        .iter()
        .any(|e| e.oid.to_id_string() == oid)
}

/// Verifies `jws` and returns its decoded payload.
pub fn verify(jws: &str, anchors: &TrustAnchors) -> Result<Value, JwsError> {
    let parts: Vec<&str> = jws.trim().split('.').collect();
    let [h, p, s] = parts[..] else {
        return Err(JwsError::NotJws(describe_non_jws(jws)));
    };
    let decode = |seg: &str| URL_SAFE_NO_PAD.decode(seg.trim_end_matches('='));
    let header: Value = decode(h)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or_else(|| JwsError::NotJws(describe_non_jws(jws)))?;
    let alg = header["alg"].as_str().unwrap_or("none");
    if alg != "ES256" {
        return Err(JwsError::Alg(alg.to_string()));
    }
    let x5c = header["x5c"]
        .as_array()
        .ok_or_else(|| JwsError::Header("no x5c chain".into()))?;
    if x5c.len() != 3 {
        return Err(JwsError::ChainLength(x5c.len()));
    }
    let payload_bytes = decode(p).map_err(|e| JwsError::Payload(format!("not base64url: {e}")))?;
    let payload: Value =
        serde_json::from_slice(&payload_bytes).map_err(|e| JwsError::Payload(e.to_string()))?;
    if !payload.is_object() {
        return Err(JwsError::Payload("not an object".into()));
    }
    let ders: Vec<Vec<u8>> = x5c
        .iter()
        .enumerate()
        .map(|(i, c)| {
            c.as_str()
                .and_then(|c| STANDARD.decode(c).ok())
                .ok_or_else(|| JwsError::Certificate(i, "not base64".into()))
        })
        .collect::<Result<_, _>>()?;
    let parse = |i: usize| {
        parse_x509_certificate(&ders[i])
            .map(|(_, c)| c)
            .map_err(|e| JwsError::Certificate(i, e.to_string()))
    };
    let leaf = parse(0)?;
    let intermediate = parse(1)?;

    // Apple's library checks validity at signedDate when online checks are off.
    let signed_ms = payload["signedDate"]
        .as_i64()
        .unwrap_or_else(crate::clock::now_ms);
    let at = ASN1Time::from_timestamp(signed_ms / 1000)
        .map_err(|_| JwsError::Payload("signedDate out of range".into()))?;

    let mut root_found = None;
    for der in &anchors.0 {
        if let Ok((_, anchor)) = parse_x509_certificate(der)
            && intermediate.issuer() == anchor.subject()
            && intermediate
                .verify_signature(Some(anchor.public_key()))
                .is_ok()
        {
            root_found = Some(anchor);
            break;
        }
    }
    let root = root_found.ok_or(JwsError::UnknownRoot)?;
    if leaf.issuer() != intermediate.subject()
        || leaf
            .verify_signature(Some(intermediate.public_key()))
            .is_err()
    {
        return Err(JwsError::BrokenChain);
    }
    if !intermediate.is_ca() {
        return Err(JwsError::NotCa);
    }
    if !has_ext(&leaf, LEAF_OID) {
        return Err(JwsError::MissingOid("leaf", LEAF_OID));
    }
    if !has_ext(&intermediate, INTERMEDIATE_OID) {
        return Err(JwsError::MissingOid("intermediate", INTERMEDIATE_OID));
    }
    for (name, cert) in [
        ("leaf", &leaf),
        ("intermediate", &intermediate),
        ("root", &root),
    ] {
        if !cert.validity().is_valid_at(at) {
            return Err(JwsError::Expired(name, signed_ms));
        }
    }
    let point = &leaf.public_key().subject_public_key.data;
    let key =
        p256::ecdsa::VerifyingKey::from_sec1_bytes(point).map_err(|_| JwsError::BadSignature)?;
    let sig_bytes = decode(s).map_err(|_| JwsError::BadSignature)?;
    let sig = p256::ecdsa::Signature::from_slice(&sig_bytes).map_err(|_| JwsError::BadSignature)?;
    key.verify(format!("{h}.{p}").as_bytes(), &sig)
        .map_err(|_| JwsError::BadSignature)?;
    Ok(payload)
}
