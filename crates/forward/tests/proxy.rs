//! The PROXY-mode proxy on loopback: header to the backend, round robin, a dead backend
//! skipped, a removed one gets no new connections while an open one finishes.

use std::net::SocketAddr;
use std::time::Duration;

use edgevip_forward::proxy::{Proxies, ProxyMetrics};
use edgevip_forward::proxy_header::decode;
use edgevip_forward::{ProxyHeader, ProxyService};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A backend that answers `name <client seen in the PROXY header>`, then echoes what it
/// reads until the client closes the connection.
async fn backend(name: &'static str) -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut c, _)) = l.accept().await {
            tokio::spawn(async move {
                let mut buf = vec![0u8; 256];
                let mut n = 0;
                while n < buf.len() && !buf[..n].ends_with(b"\n") {
                    match c.read(&mut buf[n..]).await {
                        Ok(0) | Err(_) => return,
                        Ok(m) => n += m,
                    }
                    // The header is sent alone, before any client byte.
                    if decode(&buf[..n]).is_some() {
                        break;
                    }
                }
                let client = decode(&buf[..n]).map_or("none".to_string(), |(c, _)| c.to_string());
                let _ = c.write_all(format!("{name} {client}\n").as_bytes()).await;
                // Then an echo, so a test can make round trips on an open connection.
                while let Ok(m @ 1..) = c.read(&mut buf).await {
                    if c.write_all(&buf[..m]).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr
}

async fn ask(front: SocketAddr) -> Option<String> {
    let mut s = tokio::time::timeout(Duration::from_secs(2), TcpStream::connect(front))
        .await
        .ok()?
        .ok()?;
    s.write_all(b"hi\n").await.ok()?;
    let mut line = Vec::new();
    let mut b = [0u8; 1];
    while tokio::time::timeout(Duration::from_secs(2), s.read(&mut b))
        .await
        .ok()?
        .ok()?
        == 1
    {
        if b[0] == b'\n' {
            break;
        }
        line.push(b[0]);
    }
    Some(String::from_utf8_lossy(&line).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn header_round_robin_dead_backends_and_removal() {
    let a = backend("a").await;
    let b = backend("b").await;
    // A port nobody listens on: a dead endpoint still listed.
    let dead: SocketAddr = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    // 127.0.0.2 is not configured on lo in every setup; IP_FREEBIND lets us listen anyway
    // and loopback routes the whole 127/8 to us.
    let front: SocketAddr = "127.0.0.2:0".parse().unwrap();
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let front = SocketAddr::new(front.ip(), port);
    let mut p = Proxies::new(ProxyMetrics::default());
    let svc = |backends: Vec<SocketAddr>, header| ProxyService {
        vip: front.ip(),
        port: front.port(),
        backends,
        header,
    };
    assert!(
        p.update(&[svc(vec![a, dead, b], ProxyHeader::V1)])
            .is_empty()
    );
    let mut seen = std::collections::BTreeMap::new();
    for _ in 0..9 {
        let answer = ask(front)
            .await
            .expect("an answer despite the dead backend");
        let (name, client) = answer.split_once(' ').unwrap();
        assert!(
            client.starts_with("127.0.0.1:"),
            "the real client: {answer}"
        );
        *seen.entry(name.to_string()).or_insert(0) += 1;
    }
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert!(seen.values().all(|&n| n >= 3), "spread: {seen:?}");

    // v2 header, same client.
    p.update(&[svc(vec![a], ProxyHeader::V2)]);
    let answer = ask(front).await.unwrap();
    assert!(answer.starts_with("a 127.0.0.1:"), "{answer}");

    // An open connection to b survives b's removal; new ones go to a only.
    p.update(&[svc(vec![b], ProxyHeader::None)]);
    let mut open = TcpStream::connect(front).await.unwrap();
    open.write_all(b"hi\n").await.unwrap();
    let mut first = [0u8; 7];
    open.read_exact(&mut first).await.unwrap();
    assert_eq!(&first, b"b none\n");
    p.update(&[svc(vec![a], ProxyHeader::None)]);
    for _ in 0..3 {
        assert_eq!(ask(front).await.unwrap(), "a none");
    }
    // Drained, not cut: a full round trip through the proxy to b still works (a lone write
    // would succeed on a connection the proxy had closed too),
    // after a while, so a cut made a little after the removal is caught too.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut echo = [0u8; 5];
    let round_trip = async {
        open.write_all(b"ping\n").await?;
        open.read_exact(&mut echo).await
    };
    tokio::time::timeout(Duration::from_secs(2), round_trip)
        .await
        .expect("drained, not cut: no echo within 2 s")
        .expect("drained, not cut: the open connection was closed");
    assert_eq!(&echo, b"ping\n", "drained, not cut");

    // Removed altogether: the port closes.
    p.update(&[]);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(ask(front).await.is_none());
}
