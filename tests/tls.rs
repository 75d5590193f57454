//! TLS is verified, always: a backend with a certificate nobody vouches for fails as
//! network trouble (TLS), and `[run] ca_bundle` lets a private CA in without turning
//! verification off.

#[path = "fixtures/prober/support.rs"]
mod support;

use std::sync::Arc;

use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// An HTTPS health endpoint on 127.0.0.1 with a freshly made self-signed certificate.
async fn tls_backend() -> (String, String) {
    let key = rcgen::KeyPair::generate().unwrap();
    let params = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()]).unwrap();
    let cert = params.self_signed(&key).unwrap();
    let pem = cert.pem();
    let _ = tokio_rustls::rustls::crypto::ring::default_provider().install_default();
    let config = ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(
            vec![CertificateDer::from(cert.der().to_vec())],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        )
        .unwrap();
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let mut buf = [0u8; 4096];
                let _ = tls.read(&mut buf).await;
                let body = r#"{"status":"ok"}"#;
                let resp = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = tls.write_all(resp.as_bytes()).await;
                let _ = tls.shutdown().await;
            });
        }
    });
    (format!("https://{addr}"), pem)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn self_signed_backends_fail_unless_their_ca_is_configured() {
    let (url, pem) = tls_backend().await;
    let sb = Sb::start().await;
    sb.edit("probe.toml", |s| {
        s.replacen(
            &format!("[backend]\nbase_url = \"{}\"", sb.sb.base_url),
            &format!("[backend]\nbase_url = \"{url}\""),
            1,
        )
    });
    let cfg = sb.config_str();
    let run = probe(&[
        "run", "--config", &cfg, "--probe", "health", "--format", "json",
    ])
    .await;
    run.expect_code(1);
    let report = run.json();
    let health = step_of(probe_of(&report, "health"), "health");
    assert_eq!(health["failures"][0]["kind"], "network", "{health}");
    assert!(
        health["reason"]
            .as_str()
            .unwrap()
            .contains("TLS handshake failed"),
        "{health}"
    );

    std::fs::write(sb.path("backend-ca.pem"), pem).unwrap();
    sb.set_run("ca_bundle = \"backend-ca.pem\"");
    let run = probe(&[
        "run", "--config", &cfg, "--probe", "health", "--format", "json",
    ])
    .await;
    run.expect_code(0);
    assert_eq!(probe_of(&run.json(), "health")["verdict"], "pass");
}
