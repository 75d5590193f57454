//! `bench-floor reqwest|hyper URL N C`: N GETs on C workers, each body parsed as JSON and
//! `status == "ok"` checked; prints `MODE OK SECONDS REQ_PER_S`.
//!
//! `reqwest`: the client exactly as probe builds it (src/runner/context.rs), a per-request
//! timeout, the body read chunk by chunk — probe's HTTP path with none of its templating,
//! assertions or bookkeeping. `hyper`: one `hyper::client::conn::http1` connection per
//! worker, no pool — how oha drives its connections.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use http_body_util::BodyExt;

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, mode, url, n, c] = &args[..] else {
        eprintln!("usage: bench-floor reqwest|hyper URL N C");
        std::process::exit(2);
    };
    let (n, c): (u64, usize) = (n.parse().expect("N"), c.parse().expect("C"));
    let client = reqwest::Client::builder()
        .user_agent("iap-probe/bench-floor")
        .timeout(Duration::from_secs(10))
        .connect_timeout(Duration::from_secs(10))
        .pool_idle_timeout(Duration::from_secs(30))
        .build()
        .expect("client");
    let next = Arc::new(AtomicU64::new(0));
    let t0 = Instant::now();
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..c {
        let (next, client, url, mode) = (next.clone(), client.clone(), url.clone(), mode.clone());
        set.spawn(async move {
            let mut ok = 0u64;
            if mode == "hyper" {
                let uri: hyper::Uri = url.parse().expect("url");
                let authority = uri.authority().expect("host:port").clone();
                let stream = tokio::net::TcpStream::connect(authority.as_str())
                    .await
                    .expect("connect");
                stream.set_nodelay(true).expect("nodelay");
                let io = hyper_util::rt::TokioIo::new(stream);
                let (mut send, conn) = hyper::client::conn::http1::handshake(io)
                    .await
                    .expect("handshake");
                tokio::spawn(conn);
                while next.fetch_add(1, Ordering::Relaxed) < n {
                    let req = hyper::Request::get(uri.path())
                        .header("host", authority.as_str())
                        .body(http_body_util::Empty::<bytes::Bytes>::new())
                        .expect("request");
                    let resp = send.send_request(req).await.expect("send");
                    let body = resp.into_body().collect().await.expect("body").to_bytes();
                    let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
                    ok += u64::from(v["status"] == "ok");
                }
            } else {
                while next.fetch_add(1, Ordering::Relaxed) < n {
                    let mut resp = client
                        .get(&url)
                        .timeout(Duration::from_secs(10))
                        .send()
                        .await
                        .expect("send");
                    let mut body = Vec::new();
                    while let Some(chunk) = resp.chunk().await.expect("body") {
                        body.extend_from_slice(&chunk);
                    }
                    let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
                    ok += u64::from(v["status"] == "ok");
                }
            }
            ok
        });
    }
    let mut ok = 0;
    while let Some(r) = set.join_next().await {
        ok += r.expect("worker");
    }
    let s = t0.elapsed().as_secs_f64();
    println!("{mode} {ok} {s:.4} {:.1}", ok as f64 / s);
}
