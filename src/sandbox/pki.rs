//! The sandbox's certificate authority and Apple-style JWS signer.
//!
//! Apple signs transactions and notifications as compact JWS (ES256) whose header carries
//! `x5c` = [leaf, intermediate, root]. The leaf carries OID 1.2.840.113635.100.6.11.1 and the
//! intermediate 1.2.840.113635.100.6.2.1. We mint the same shape at start-up, with the CA
//! extensions a strict verifier (OpenSSL's X509_STRICT, as Apple's Python library uses) needs.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rcgen::{
    BasicConstraints, CertificateParams, CustomExtension, DnType, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, PKCS_ECDSA_P256_SHA256,
};
use serde::Serialize;
use time::{Duration, OffsetDateTime};

/// OID arcs of Apple's marker extensions.
pub const LEAF_OID: &[u64] = &[1, 2, 840, 113635, 100, 6, 11, 1];
pub const INTERMEDIATE_OID: &[u64] = &[1, 2, 840, 113635, 100, 6, 2, 1];

#[derive(Debug, thiserror::Error)]
#[error("sandbox PKI: {0}")]
pub struct PkiError(String);

fn err(e: impl std::fmt::Display) -> PkiError {
    PkiError(e.to_string())
}

/// A root, an intermediate and the signing leaves the sandbox hands out.
pub struct SandboxCa {
    pub root_pem: String,
    pub root_der: Vec<u8>,
    good: Signer,
    expired: Signer,
    /// A chain from a second CA nobody trusts: the "wrongly signed" fault.
    untrusted: Signer,
}

/// One leaf key and its x5c chain.
struct Signer {
    key: EncodingKey,
    x5c: Vec<String>,
}

/// Which signer a fault asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum JwsMode {
    #[default]
    Valid,
    /// Leaf certificate expired long before `signedDate`.
    Expired,
    /// Chain from an untrusted root.
    Untrusted,
    /// Valid chain, but the signature does not match the payload.
    BadSignature,
}

fn ext_null(oid: &[u64]) -> CustomExtension {
    // Apple's marker extensions carry an ASN.1 NULL.
    CustomExtension::from_oid_content(oid, vec![0x05, 0x00])
}

fn ca_params(cn: &str, path_len: Option<u8>) -> CertificateParams {
    let mut p = CertificateParams::default();
    p.distinguished_name = rcgen::DistinguishedName::new();
    p.distinguished_name.push(DnType::CommonName, cn);
    p.distinguished_name
        .push(DnType::OrganizationName, "iap-probe sandbox");
    p.distinguished_name.push(DnType::CountryName, "US");
    p.is_ca = IsCa::Ca(match path_len {
        Some(n) => BasicConstraints::Constrained(n),
        None => BasicConstraints::Unconstrained,
    });
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let now = OffsetDateTime::now_utc();
    p.not_before = now - Duration::days(1);
    p.not_after = now + Duration::days(3650);
    p
}

struct Chain {
    root_der: Vec<u8>,
    root_pem: String,
    intermediate_der: Vec<u8>,
    issuer_key: KeyPair,
    intermediate_params: CertificateParams,
}

fn chain(root_cn: &str) -> Result<Chain, PkiError> {
    let root_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(err)?;
    let root_params = ca_params(root_cn, None);
    let root = root_params.self_signed(&root_key).map_err(err)?;
    let root_issuer = Issuer::from_params(&root_params, &root_key);

    let int_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(err)?;
    let mut int_params = ca_params(&format!("{root_cn} - Intermediate"), Some(0));
    int_params.use_authority_key_identifier_extension = true;
    int_params.custom_extensions = vec![ext_null(INTERMEDIATE_OID)];
    let intermediate = int_params.signed_by(&int_key, &root_issuer).map_err(err)?;
    Ok(Chain {
        root_der: root.der().to_vec(),
        root_pem: root.pem(),
        intermediate_der: intermediate.der().to_vec(),
        issuer_key: int_key,
        intermediate_params: int_params,
    })
}

fn leaf(chain: &Chain, expired: bool) -> Result<Signer, PkiError> {
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(err)?;
    let mut p = CertificateParams::default();
    p.distinguished_name = rcgen::DistinguishedName::new();
    p.distinguished_name.push(
        DnType::CommonName,
        "Prod ECC Mac App Store and iTunes Store Receipt Signing",
    );
    p.distinguished_name
        .push(DnType::OrganizationName, "iap-probe sandbox");
    p.is_ca = IsCa::ExplicitNoCa;
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    p.use_authority_key_identifier_extension = true;
    p.custom_extensions = vec![ext_null(LEAF_OID)];
    let now = OffsetDateTime::now_utc();
    if expired {
        p.not_before = now - Duration::days(400);
        p.not_after = now - Duration::days(30);
    } else {
        p.not_before = now - Duration::days(1);
        p.not_after = now + Duration::days(365);
    }
    let issuer = Issuer::from_params(&chain.intermediate_params, &chain.issuer_key);
    let cert = p.signed_by(&key, &issuer).map_err(err)?;
    let encoding = EncodingKey::from_ec_der(key.serialized_der());
    Ok(Signer {
        key: encoding,
        x5c: vec![
            STANDARD.encode(cert.der()),
            STANDARD.encode(&chain.intermediate_der),
            STANDARD.encode(&chain.root_der),
        ],
    })
}

impl SandboxCa {
    /// Generates fresh keys and certificates (a few milliseconds).
    pub fn generate() -> Result<Self, PkiError> {
        let trusted = chain("iap-probe Sandbox Root CA - G3")?;
        let good = leaf(&trusted, false)?;
        let expired = leaf(&trusted, true)?;
        let other = chain("Untrusted Root CA")?;
        let untrusted = leaf(&other, false)?;
        Ok(SandboxCa {
            root_pem: trusted.root_pem.clone(),
            root_der: trusted.root_der.clone(),
            good,
            expired,
            untrusted,
        })
    }

    /// Signs `payload` as Apple does: compact JWS, ES256, `x5c` chain, no `typ`.
    pub fn sign<T: Serialize>(&self, payload: &T, mode: JwsMode) -> Result<String, PkiError> {
        let signer = match mode {
            JwsMode::Valid | JwsMode::BadSignature => &self.good,
            JwsMode::Expired => &self.expired,
            JwsMode::Untrusted => &self.untrusted,
        };
        let mut header = Header::new(Algorithm::ES256);
        header.typ = None;
        header.x5c = Some(signer.x5c.clone());
        let jws = jsonwebtoken::encode(&header, payload, &signer.key).map_err(err)?;
        if mode == JwsMode::BadSignature {
            return Ok(tamper(&jws));
        }
        Ok(jws)
    }
}

/// Swaps the payload for a different one under the original signature.
fn tamper(jws: &str) -> String {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let mut parts = jws.splitn(3, '.');
    let (h, p, s) = match (parts.next(), parts.next(), parts.next()) {
        (Some(h), Some(p), Some(s)) => (h, p, s),
        _ => return jws.to_string(),
    };
    let mut payload = URL_SAFE_NO_PAD.decode(p).unwrap_or_default();
    payload.extend_from_slice(b" ");
    format!("{h}.{}.{s}", URL_SAFE_NO_PAD.encode(payload))
}
