//! The sandbox's backend calls its own fake Apple and Google over loopback; a proxy set in
//! the environment (as on many CI runners) must not divert those calls. Its own test
//! binary, because it sets process environment variables.

mod common;

use common::*;
use reqwest::StatusCode;
use serde_json::json;

#[tokio::test]
async fn backend_ignores_proxy_environment_variables() {
    // SAFETY: the only test in this binary; set before the sandbox or any client starts.
    unsafe {
        for var in [
            "HTTP_PROXY",
            "http_proxy",
            "HTTPS_PROXY",
            "https_proxy",
            "ALL_PROXY",
            "all_proxy",
        ] {
            // Port 9 (discard) on loopback: nothing listens, a proxied call fails.
            std::env::set_var(var, "http://127.0.0.1:9");
        }
        std::env::remove_var("NO_PROXY");
        std::env::remove_var("no_proxy");
    }
    let sb = start().await;
    let (status, v) = sb.verify_ios("p", "premium").await;
    assert_eq!(status, StatusCode::OK, "{v}");
    let (ptoken, product) = sb.android("product");
    let (status, v) = sb
        .verify(
            &json!({"platform": "android", "userId": "p", "productId": product,
                        "purchaseToken": ptoken}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{v}");
}
