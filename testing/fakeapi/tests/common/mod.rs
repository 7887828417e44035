//! Shared helpers: a fake server on 127.0.0.1:0 (HTTPS for the real kube client, plain HTTP
//! for a tiny raw HTTP/1.1 client that checks what kube hides) and bounded waits. Both
//! clients act as a cluster admin unless a test says otherwise: these tests are about the
//! API mechanics; RBAC has its own tests.
#![allow(dead_code)]

use edgevip_fakeapi::{FakeApi, Server};
use serde_json::{Value, json};
use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub struct Env {
    pub api: FakeApi,
    /// HTTPS, for `client`.
    pub server: Server,
    /// Plain HTTP on another port of the same FakeApi, for `raw`.
    pub http: Server,
    pub client: kube::Client,
}

pub async fn env() -> Env {
    let api = FakeApi::new();
    let any: SocketAddr = "127.0.0.1:0".parse().expect("addr");
    let server = api.bind(any).await.expect("bind");
    let http = api.bind_http(any).await.expect("bind http");
    let client = client_for(server.addr());
    Env {
        api,
        server,
        http,
        client,
    }
}

/// A kube client over HTTPS as a cluster admin.
pub fn client_for(addr: SocketAddr) -> kube::Client {
    client_with(addr, |_| {})
}

/// Same with a tweaked config, e.g. `default_retry = false`: kube 5 retries 429/503/504
/// internally (up to 15 times, exponential from 5ms), which hides those faults from callers.
pub fn client_with(addr: SocketAddr, tweak: impl FnOnce(&mut kube::Config)) -> kube::Client {
    let mut config = edgevip_fakeapi::kube_config_as(addr, edgevip_fakeapi::ADMIN_TOKEN);
    tweak(&mut config);
    kube::Client::try_from(config).expect("client")
}

/// Every wait in the tests is bounded.
pub async fn within<F: Future>(secs: u64, what: &str, f: F) -> F::Output {
    match tokio::time::timeout(Duration::from_secs(secs), f).await {
        Ok(v) => v,
        Err(_) => panic!("timed out after {secs}s waiting for {what}"),
    }
}

/// Poll `cond` every 20ms until it holds (bounded by `secs`).
pub async fn eventually(secs: u64, what: &str, mut cond: impl FnMut() -> bool) {
    within(secs, what, async {
        while !cond() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
}

/// A Node as a kubelet reports it: Ready (the server marks one without the condition
/// Unknown, as a cluster does).
pub fn node(name: &str, labels: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "labels": labels},
        "status": {"conditions": [{"type": "Ready", "status": "True"}]}})
}

pub fn configmap(ns: &str, name: &str, data: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap",
           "metadata": {"name": name, "namespace": ns}, "data": data})
}

/// Send one request with `Connection: close`; read until `done(text so far)` or EOF.
/// Returns the raw response text (status line, headers, body; chunk framing left in).
pub async fn raw(
    addr: SocketAddr,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: &str,
    done: impl Fn(&str) -> bool,
) -> String {
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let mut req = format!("{method} {target} HTTP/1.1\r\nHost: fake\r\nConnection: close\r\n");
    if !headers
        .iter()
        .any(|(k, _)| k.eq_ignore_ascii_case("authorization"))
    {
        req.push_str(&format!(
            "Authorization: Bearer {}\r\n",
            edgevip_fakeapi::ADMIN_TOKEN
        ));
    }
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    s.write_all(req.as_bytes()).await.expect("write");
    let mut out = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        let n = s.read(&mut buf).await.expect("read");
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
        if done(&String::from_utf8_lossy(&out)) {
            break;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Until EOF (non-streaming responses).
pub fn eof(_: &str) -> bool {
    false
}

/// HTTP status code of a raw response.
pub fn status_of(resp: &str) -> u16 {
    resp.split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

/// JSON body of a raw, non-chunked response.
pub fn body_of(resp: &str) -> Value {
    let body = resp.split_once("\r\n\r\n").map(|x| x.1).unwrap_or_default();
    serde_json::from_str(body).unwrap_or_else(|e| panic!("body {body:?}: {e}"))
}

/// Watch event lines (`{"type":..}`) found in a raw chunked response.
pub fn events_of(resp: &str) -> Vec<Value> {
    resp.lines()
        .filter(|l| l.starts_with("{\"type\""))
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}
