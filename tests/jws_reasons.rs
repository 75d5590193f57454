//! Apple signed-data verification: the genuine sandbox chain passes, and each way it can
//! be wrong fails with its own reason — untrusted root, tampered payload, two-certificate
//! chain, a leaf without Apple's OID, an expired certificate, an HTML page, a wrong alg,
//! and (after verification) the wrong bundle or environment.

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use iap_probe::jws::{JwsError, TrustAnchors, verify};
use iap_probe::runner::signed::check_scope;
use iap_probe::sandbox::pki::{INTERMEDIATE_OID, JwsMode, LEAF_OID, SandboxCa};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rcgen::{
    BasicConstraints, CertificateParams, CustomExtension, DnType, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, PKCS_ECDSA_P256_SHA256,
};
use serde_json::{Value, json};

fn payload() -> Value {
    json!({
        "transactionId": "2000000000000001", "bundleId": "com.example.iapprobe",
        "productId": "com.example.coins.100", "environment": "Sandbox",
        "signedDate": iap_probe::clock::now_ms(),
    })
}

fn sandbox() -> (SandboxCa, TrustAnchors) {
    let ca = SandboxCa::generate().unwrap();
    let anchors = TrustAnchors::from_bytes(ca.root_pem.as_bytes()).unwrap();
    (ca, anchors)
}

/// A chain of our own making, to break one property at a time.
struct Chain {
    root: Vec<u8>,
    intermediate: Vec<u8>,
    leaf: Vec<u8>,
    leaf_key: KeyPair,
}

fn ca(cn: &str, path_len: Option<u8>) -> CertificateParams {
    let mut p = CertificateParams::default();
    p.distinguished_name = rcgen::DistinguishedName::new();
    p.distinguished_name.push(DnType::CommonName, cn);
    p.is_ca = IsCa::Ca(match path_len {
        Some(n) => BasicConstraints::Constrained(n),
        None => BasicConstraints::Unconstrained,
    });
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    p
}

fn chain(leaf_oid: bool, intermediate_oid: bool) -> Chain {
    let root_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
    let root_params = ca("Test Root", None);
    let root = root_params.self_signed(&root_key).unwrap();
    let int_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
    let mut int_params = ca("Test Intermediate", Some(0));
    if intermediate_oid {
        int_params.custom_extensions = vec![CustomExtension::from_oid_content(
            INTERMEDIATE_OID,
            vec![5, 0],
        )];
    }
    let intermediate = int_params
        .signed_by(&int_key, &Issuer::from_params(&root_params, &root_key))
        .unwrap();
    let leaf_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
    let mut leaf_params = CertificateParams::default();
    leaf_params
        .distinguished_name
        .push(DnType::CommonName, "Test Leaf");
    if leaf_oid {
        leaf_params.custom_extensions =
            vec![CustomExtension::from_oid_content(LEAF_OID, vec![5, 0])];
    }
    let leaf = leaf_params
        .signed_by(&leaf_key, &Issuer::from_params(&int_params, &int_key))
        .unwrap();
    Chain {
        root: root.der().to_vec(),
        intermediate: intermediate.der().to_vec(),
        leaf: leaf.der().to_vec(),
        leaf_key,
    }
}

fn sign(c: &Chain, x5c: Vec<&[u8]>, body: &Value) -> String {
    let mut h = Header::new(Algorithm::ES256);
    h.typ = None;
    h.x5c = Some(x5c.into_iter().map(|d| STANDARD.encode(d)).collect());
    jsonwebtoken::encode(
        &h,
        body,
        &EncodingKey::from_ec_der(c.leaf_key.serialized_der()),
    )
    .unwrap()
}

#[test]
fn the_genuine_sandbox_chain_passes() {
    let (ca, anchors) = sandbox();
    let jws = ca.sign(&payload(), JwsMode::Valid).unwrap();
    let decoded = verify(&jws, &anchors).unwrap();
    assert_eq!(decoded["productId"], "com.example.coins.100");
    assert!(check_scope(&decoded, "com.example.iapprobe", false).is_ok());
}

#[test]
fn each_defect_has_its_own_reason() {
    let (ca, anchors) = sandbox();
    // A second CA nobody trusts.
    let jws = ca.sign(&payload(), JwsMode::Untrusted).unwrap();
    assert_eq!(verify(&jws, &anchors), Err(JwsError::UnknownRoot));
    // The payload changed after signing.
    let jws = ca.sign(&payload(), JwsMode::BadSignature).unwrap();
    assert_eq!(verify(&jws, &anchors), Err(JwsError::BadSignature));
    // A leaf that expired before signedDate.
    let jws = ca.sign(&payload(), JwsMode::Expired).unwrap();
    assert!(
        matches!(verify(&jws, &anchors), Err(JwsError::Expired("leaf", _))),
        "{:?}",
        verify(&jws, &anchors)
    );
    // Not a JWS at all: the HTML page an outage serves with status 200.
    let html = "<html><head><title>503</title></head><body>Service Unavailable</body></html>";
    match verify(html, &anchors) {
        Err(JwsError::NotJws(why)) => assert!(why.contains("HTML page"), "{why}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn chain_shape_and_markers_are_checked() {
    let c = chain(true, true);
    let anchors = TrustAnchors::from_bytes(&c.root).unwrap();
    let good = sign(&c, vec![&c.leaf, &c.intermediate, &c.root], &payload());
    assert!(
        verify(&good, &anchors).is_ok(),
        "{:?}",
        verify(&good, &anchors)
    );
    let two = sign(&c, vec![&c.leaf, &c.intermediate], &payload());
    assert_eq!(verify(&two, &anchors), Err(JwsError::ChainLength(2)));
    let c = chain(false, true);
    let anchors = TrustAnchors::from_bytes(&c.root).unwrap();
    let no_leaf_oid = sign(&c, vec![&c.leaf, &c.intermediate, &c.root], &payload());
    assert!(matches!(
        verify(&no_leaf_oid, &anchors),
        Err(JwsError::MissingOid("leaf", _))
    ));
    let c = chain(true, false);
    let anchors = TrustAnchors::from_bytes(&c.root).unwrap();
    let no_int_oid = sign(&c, vec![&c.leaf, &c.intermediate, &c.root], &payload());
    assert!(matches!(
        verify(&no_int_oid, &anchors),
        Err(JwsError::MissingOid("intermediate", _))
    ));
}

#[test]
fn the_root_the_message_carries_is_not_trusted_by_itself() {
    // x5c[2] is an attacker's own root: the anchor decides, not the message.
    let c = chain(true, true);
    let (_, sandbox_anchors) = sandbox();
    let jws = sign(&c, vec![&c.leaf, &c.intermediate, &c.root], &payload());
    assert_eq!(verify(&jws, &sandbox_anchors), Err(JwsError::UnknownRoot));
}

#[test]
fn only_es256_is_accepted() {
    let (ca, anchors) = sandbox();
    let jws = ca.sign(&payload(), JwsMode::Valid).unwrap();
    let mut parts: Vec<String> = jws.split('.').map(String::from).collect();
    let mut header: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(&parts[0]).unwrap()).unwrap();
    header["alg"] = json!("none");
    parts[0] = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&header).unwrap());
    assert_eq!(
        verify(&parts.join("."), &anchors),
        Err(JwsError::Alg("none".into()))
    );
}

#[test]
fn bundle_and_environment_are_checked_after_verification() {
    let p = payload();
    let e = check_scope(&p, "com.other.app", false).unwrap_err();
    assert!(e.contains("wrong bundle"), "{e}");
    let e = check_scope(&p, "com.example.iapprobe", true).unwrap_err();
    assert!(
        e.contains("wrong environment: Sandbox data in a production probe"),
        "{e}"
    );
    let mut prod = payload();
    prod["environment"] = json!("Production");
    let e = check_scope(&prod, "com.example.iapprobe", false).unwrap_err();
    assert!(e.contains("Production data in a sandbox probe"), "{e}");
    // Notifications keep both under `data`.
    let n = json!({"notificationType": "TEST", "data": {"bundleId": "com.other", "environment": "Sandbox"}});
    assert!(check_scope(&n, "com.example.iapprobe", false).is_err());
}

#[test]
fn a_verified_payload_without_bundle_or_environment_fails() {
    let (ca, anchors) = sandbox();
    for (field, reason) in [
        ("bundleId", "missing bundle:"),
        ("environment", "missing environment:"),
    ] {
        let mut p = payload();
        p.as_object_mut().unwrap().remove(field);
        // Genuinely signed: only the scope check can catch it.
        let decoded = verify(&ca.sign(&p, JwsMode::Valid).unwrap(), &anchors).unwrap();
        let e = check_scope(&decoded, "com.example.iapprobe", false).unwrap_err();
        assert!(e.starts_with(reason), "{field}: {e}");
    }
}
