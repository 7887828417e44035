//! The userspace TCP proxy for `:PROXY` entries: listens on VIP:port (IP_FREEBIND, so it
//! listens on every edge node before the node holds the VIP and the master answers from
//! its first packet), picks a backend per connection (round robin, skipping backends whose
//! connect fails), prepends the PROXY header so the ingress sees the real client, and
//! copies bytes both ways. A backend removed from the endpoints gets no new connections;
//! its open ones run to their end (drain).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use crate::proxy_header;
use crate::spec::{ProxyHeader, ProxyService};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// Proxied traffic runs on its own threads, one single-threaded runtime each with its own
/// SO_REUSEPORT listener per frontend (the kernel spreads connections; no cross-thread
/// wakeups): a busy proxy never delays VRRP adverts on the daemon's event loop.
const THREADS: usize = 2;

fn runtimes() -> &'static [tokio::runtime::Handle] {
    static RT: std::sync::OnceLock<Vec<tokio::runtime::Handle>> = std::sync::OnceLock::new();
    RT.get_or_init(|| {
        (0..THREADS)
            .map(|i| {
                let (tx, rx) = std::sync::mpsc::channel();
                std::thread::Builder::new()
                    .name(format!("edgevip-proxy-{i}"))
                    .spawn(move || {
                        let rt = tokio::runtime::Builder::new_current_thread()
                            .enable_all()
                            .build()
                            .expect("proxy runtime");
                        let _ = tx.send(rt.handle().clone());
                        rt.block_on(std::future::pending::<()>());
                    })
                    .expect("proxy thread");
                rx.recv().expect("proxy runtime handle")
            })
            .collect()
    })
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BackendLabels {
    pub frontend: String,
    pub backend: String,
}

/// Per-backend counters, registered in the daemon's registry.
#[derive(Clone, Default)]
pub struct ProxyMetrics {
    pub connections: Family<BackendLabels, Counter>,
    pub connect_failures: Family<BackendLabels, Counter>,
    pub active: Family<BackendLabels, Gauge>,
    pub bytes_to_backend: Family<BackendLabels, Counter>,
    pub bytes_to_client: Family<BackendLabels, Counter>,
}

impl ProxyMetrics {
    pub fn register(&self, r: &mut Registry) {
        r.register(
            "proxy_connections",
            "Proxied connections per backend",
            self.connections.clone(),
        );
        r.register(
            "proxy_connect_failures",
            "Backend connects that failed (the next backend was tried)",
            self.connect_failures.clone(),
        );
        r.register(
            "proxy_active_connections",
            "Open proxied connections",
            self.active.clone(),
        );
        r.register(
            "proxy_bytes_to_backend",
            "Bytes client to backend",
            self.bytes_to_backend.clone(),
        );
        r.register(
            "proxy_bytes_to_client",
            "Bytes backend to client",
            self.bytes_to_client.clone(),
        );
    }
}

struct Backends {
    list: Vec<SocketAddr>,
    header: ProxyHeader,
}

struct Frontend {
    backends: Arc<RwLock<Backends>>,
    tasks: Vec<JoinHandle<()>>,
}

/// The running proxies, one per VIP:port.
pub struct Proxies {
    frontends: HashMap<SocketAddr, Frontend>,
    metrics: ProxyMetrics,
}

impl Proxies {
    pub fn new(metrics: ProxyMetrics) -> Proxies {
        Proxies {
            frontends: HashMap::new(),
            metrics,
        }
    }

    /// Brings the listeners in line with `services`: new ones bound, removed ones closed
    /// (their open connections finish), backends swapped in place. Returns bind errors.
    pub fn update(&mut self, services: &[ProxyService]) -> Vec<String> {
        let wanted: HashMap<SocketAddr, &ProxyService> = services
            .iter()
            .map(|s| (SocketAddr::new(s.vip, s.port), s))
            .collect();
        self.frontends.retain(|addr, f| {
            let keep = wanted.contains_key(addr);
            if !keep {
                f.tasks.iter().for_each(JoinHandle::abort);
            }
            keep
        });
        let mut errors = Vec::new();
        for (addr, s) in wanted {
            let new = Backends {
                list: s.backends.clone(),
                header: s.header,
            };
            if let Some(f) = self.frontends.get(&addr) {
                *f.backends.write().expect("backends lock") = new;
                continue;
            }
            let backends = Arc::new(RwLock::new(new));
            let next = Arc::new(AtomicUsize::new(0));
            let mut tasks = Vec::new();
            for rt in runtimes() {
                let bound = {
                    let _g = rt.enter();
                    listen(addr)
                };
                match bound {
                    Ok(l) => tasks.push(rt.spawn(accept_loop(
                        l,
                        addr,
                        backends.clone(),
                        next.clone(),
                        self.metrics.clone(),
                    ))),
                    Err(e) => {
                        errors.push(format!("listen on {addr}: {e}"));
                        break;
                    }
                }
            }
            if tasks.len() == THREADS {
                self.frontends.insert(addr, Frontend { backends, tasks });
            } else {
                tasks.iter().for_each(JoinHandle::abort);
            }
        }
        errors
    }
}

impl Drop for Proxies {
    fn drop(&mut self) {
        for (_, f) in self.frontends.drain() {
            f.tasks.iter().for_each(JoinHandle::abort);
        }
    }
}

/// A listener on an address this node may not hold yet.
fn listen(addr: SocketAddr) -> std::io::Result<TcpListener> {
    use socket2::{Domain, Socket, Type};
    let s = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    s.set_reuse_address(true)?;
    s.set_reuse_port(true)?;
    match addr.ip() {
        IpAddr::V4(_) => s.set_freebind_v4(true)?,
        IpAddr::V6(_) => {
            s.set_only_v6(true)?;
            s.set_freebind_v6(true)?;
        }
    }
    s.set_nonblocking(true)?;
    s.bind(&addr.into())?;
    s.listen(1024)?;
    TcpListener::from_std(s.into())
}

async fn accept_loop(
    l: TcpListener,
    front: SocketAddr,
    backends: Arc<RwLock<Backends>>,
    next: Arc<AtomicUsize>,
    m: ProxyMetrics,
) {
    loop {
        match l.accept().await {
            Ok((c, peer)) => {
                let _ = c.set_nodelay(true);
                tokio::spawn(serve(
                    c,
                    peer,
                    front,
                    backends.clone(),
                    next.clone(),
                    m.clone(),
                ));
            }
            Err(e) => {
                tracing::warn!(%front, error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

async fn serve(
    mut client: TcpStream,
    peer: SocketAddr,
    front: SocketAddr,
    backends: Arc<RwLock<Backends>>,
    next: Arc<AtomicUsize>,
    m: ProxyMetrics,
) {
    let (list, header) = {
        let b = backends.read().expect("backends lock");
        (b.list.clone(), b.header)
    };
    if list.is_empty() {
        return;
    }
    let start = next.fetch_add(1, Ordering::Relaxed);
    for k in 0..list.len() {
        let b = list[(start + k) % list.len()];
        let labels = BackendLabels {
            frontend: front.to_string(),
            backend: b.to_string(),
        };
        let conn = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(b)).await;
        let mut upstream = match conn {
            Ok(Ok(s)) => s,
            _ => {
                m.connect_failures.get_or_create(&labels).inc();
                continue;
            }
        };
        let _ = upstream.set_nodelay(true);
        let h = proxy_header::encode(header, peer, front);
        if !h.is_empty() && upstream.write_all(&h).await.is_err() {
            m.connect_failures.get_or_create(&labels).inc();
            continue;
        }
        m.connections.get_or_create(&labels).inc();
        m.active.get_or_create(&labels).inc();
        if let Ok((up, down)) = tokio::io::copy_bidirectional(&mut client, &mut upstream).await {
            m.bytes_to_backend.get_or_create(&labels).inc_by(up);
            m.bytes_to_client.get_or_create(&labels).inc_by(down);
        }
        m.active.get_or_create(&labels).dec();
        return;
    }
    tracing::debug!(%front, %peer, "no backend accepted the connection");
}
