//! The PROXY listener's bounds on loopback: per-frontend and overall caps, the first-byte
//! and idle timeouts, ejection of a dead backend (one failed connect per backoff, not one
//! per client connection), and the series of a removed backend dropped.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use edgevip_forward::proxy::{Limits, Proxies, ProxyMetrics};
use edgevip_forward::{ProxyHeader, ProxyService};
use prometheus_client::registry::Registry;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A backend that echoes and keeps connections open; counts accepted connections.
async fn echo() -> (SocketAddr, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let n = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let count = n.clone();
    tokio::spawn(async move {
        while let Ok((mut c, _)) = l.accept().await {
            count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            tokio::spawn(async move {
                let mut buf = [0u8; 1024];
                while let Ok(k) = c.read(&mut buf).await {
                    if k == 0 || c.write_all(&buf[..k]).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (addr, n)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn front() -> SocketAddr {
    SocketAddr::new("127.0.0.3".parse().unwrap(), free_port())
}

fn svc(front: SocketAddr, backends: Vec<SocketAddr>) -> ProxyService {
    ProxyService {
        vip: front.ip(),
        port: front.port(),
        backends,
        header: ProxyHeader::None,
    }
}

fn limits(per_frontend: usize, total: usize, first_byte_ms: u64, idle_ms: u64) -> Limits {
    Limits {
        total,
        per_frontend,
        first_byte: Duration::from_millis(first_byte_ms),
        idle: Duration::from_millis(idle_ms),
    }
}

fn text(m: &ProxyMetrics) -> String {
    let mut r = Registry::default();
    m.register(&mut r);
    let mut s = String::new();
    prometheus_client::encoding::text::encode(&mut s, &r).unwrap();
    s
}

/// Connects, sends a byte, and returns the stream once the echo came back (proxied).
async fn proxied(front: SocketAddr) -> Option<TcpStream> {
    let mut s = TcpStream::connect(front).await.ok()?;
    s.write_all(b"x").await.ok()?;
    let mut b = [0u8; 1];
    match tokio::time::timeout(Duration::from_secs(2), s.read(&mut b)).await {
        Ok(Ok(1)) => Some(s),
        _ => None,
    }
}

/// Whether the proxy closes `s` within `within`.
async fn closed_within(s: &mut TcpStream, within: Duration) -> bool {
    let mut b = [0u8; 1];
    matches!(
        tokio::time::timeout(within, s.read(&mut b)).await,
        Ok(Ok(0)) | Ok(Err(_))
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frontend_and_total_caps_refuse_past_the_cap_and_free_on_close() {
    let (b, _) = echo().await;
    let m = ProxyMetrics::default();
    let (f1, f2) = (front(), front());
    let mut p = Proxies::with_limits(m.clone(), limits(3, 4, 2000, 60_000));
    assert!(p.update(&[svc(f1, vec![b]), svc(f2, vec![b])]).is_empty());
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(proxied(f1).await.expect("under the frontend cap"));
    }
    assert!(proxied(f1).await.is_none(), "4th on f1: frontend cap");
    held.push(proxied(f2).await.expect("f2 has room, total 4"));
    assert!(proxied(f2).await.is_none(), "5th overall: total cap");
    let t = text(&m);
    assert!(t.contains("reason=\"frontend_cap\"} 1"), "{t}");
    assert!(t.contains("reason=\"total_cap\"} 1"), "{t}");
    drop(held.remove(0));
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        proxied(f1).await.is_some(),
        "a closed connection frees its slot"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_clients_are_closed_after_the_first_byte_timeout_without_a_backend() {
    let (b, accepted) = echo().await;
    let m = ProxyMetrics::default();
    let f = front();
    let mut p = Proxies::with_limits(m.clone(), limits(100, 100, 300, 60_000));
    p.update(&[svc(f, vec![b])]);
    let mut s = TcpStream::connect(f).await.unwrap();
    let t0 = Instant::now();
    assert!(closed_within(&mut s, Duration::from_secs(3)).await);
    let took = t0.elapsed();
    assert!(
        took >= Duration::from_millis(250) && took < Duration::from_secs(2),
        "{took:?}"
    );
    assert_eq!(
        accepted.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "no backend dialled"
    );
    assert!(text(&m).contains("reason=\"first_byte_timeout\"} 1"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_are_closed_after_the_idle_timeout() {
    let (b, _) = echo().await;
    let f = front();
    let mut p = Proxies::with_limits(ProxyMetrics::default(), limits(100, 100, 2000, 400));
    p.update(&[svc(f, vec![b])]);
    let mut s = proxied(f).await.unwrap();
    // Traffic keeps it open past the idle timeout...
    for _ in 0..4 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        s.write_all(b"y").await.unwrap();
        let mut b = [0u8; 1];
        s.read_exact(&mut b).await.unwrap();
    }
    // ...silence closes it.
    let t0 = Instant::now();
    assert!(closed_within(&mut s, Duration::from_secs(3)).await);
    assert!(
        t0.elapsed() >= Duration::from_millis(350),
        "{:?}",
        t0.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_backend_is_ejected_not_retried_on_every_connection() {
    let (live, _) = echo().await;
    let dead = SocketAddr::new("127.0.0.1".parse().unwrap(), free_port());
    let m = ProxyMetrics::default();
    let f = front();
    let mut p = Proxies::with_limits(m.clone(), limits(100, 100, 2000, 60_000));
    p.update(&[svc(f, vec![dead, live])]);
    for i in 0..20 {
        assert!(
            proxied(f).await.is_some(),
            "connection {i} reaches the live backend"
        );
    }
    let t = text(&m);
    let fails = format!("proxy_connect_failures_total{{frontend=\"{f}\",backend=\"{dead}\"}} 1\n");
    assert!(
        t.contains(&fails),
        "one failed connect within the backoff, not 10:\n{t}"
    );
    // The dead backend removed: its series go.
    p.update(&[svc(f, vec![live])]);
    let t = text(&m);
    assert!(
        !t.contains(&dead.to_string()),
        "series of the removed backend remain:\n{t}"
    );
    assert!(t.contains(&live.to_string()));
}
