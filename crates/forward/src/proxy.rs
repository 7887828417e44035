//! The userspace TCP proxy for `:PROXY` entries: listens on VIP:port (IP_FREEBIND, so it
//! listens on every edge node before the node holds the VIP and the master answers from
//! its first packet), picks a backend per connection (round robin, skipping ejected
//! backends: `eject`), prepends the PROXY header so the ingress sees the real client, and
//! copies bytes both ways. A backend removed from the endpoints gets no new connections;
//! its open ones run to their end (drain), and its metric series are removed.
//!
//! Exposed to the internet, so bounded (`Limits`): connections per frontend and overall
//! (past a cap a new connection is accepted and closed at once, counted), the client must
//! send its first byte within `first_byte` (only then is a backend dialled: an idle flood
//! costs one descriptor per connection and no backend connection; ingress protocols, HTTP
//! and TLS, are client-first), and a connection idle both ways for `idle` is closed. The
//! overall cap is derived from the descriptor limit minus a reserve for VRRP and the API.

mod eject;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use crate::proxy_header;
use crate::spec::{ProxyHeader, ProxyService};

pub use eject::{Health, MAX_ATTEMPTS};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// Descriptors kept free of proxied connections: VRRP sockets, netlink, the API (its own
/// cap), the Kubernetes client, nft and hook processes.
pub const FD_RESERVE: u64 = 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Open connections over all frontends.
    pub total: usize,
    pub per_frontend: usize,
    pub first_byte: Duration,
    pub idle: Duration,
}

impl Limits {
    /// Caps from the descriptor limit: each proxied connection holds two descriptors, and
    /// `FD_RESERVE` stays free. A cap given (non-zero) is taken, but never past that.
    pub fn from_fd_limit(
        nofile: u64,
        total: usize,
        per_frontend: usize,
        first_byte: Duration,
        idle: Duration,
    ) -> Limits {
        let budget = usize::try_from(nofile.saturating_sub(FD_RESERVE) / 2)
            .unwrap_or(usize::MAX)
            .max(16);
        let total = if total == 0 {
            budget
        } else {
            total.min(budget)
        };
        let per_frontend = if per_frontend == 0 {
            total
        } else {
            per_frontend.min(total)
        };
        Limits {
            total,
            per_frontend,
            first_byte,
            idle,
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits::from_fd_limit(
            1024 + 2 * 4096,
            0,
            0,
            Duration::from_secs(10),
            Duration::from_secs(600),
        )
    }
}

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

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RefusedLabels {
    pub frontend: String,
    pub reason: String,
}

/// Per-backend counters, registered in the daemon's registry.
#[derive(Clone, Default)]
pub struct ProxyMetrics {
    pub connections: Family<BackendLabels, Counter>,
    pub connect_failures: Family<BackendLabels, Counter>,
    pub active: Family<BackendLabels, Gauge>,
    pub bytes_to_backend: Family<BackendLabels, Counter>,
    pub bytes_to_client: Family<BackendLabels, Counter>,
    /// Ejections of a backend after a failed connect.
    pub ejections: Family<BackendLabels, Counter>,
    /// Client connections closed unproxied: `frontend_cap`, `total_cap`,
    /// `first_byte_timeout`, `no_backend`, `accept_error`.
    pub refused: Family<RefusedLabels, Counter>,
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
        r.register(
            "proxy_backend_ejections",
            "Backends ejected (skipped for a doubling backoff) after a failed connect",
            self.ejections.clone(),
        );
        r.register(
            "proxy_refused_connections",
            "Client connections closed unproxied, by reason (frontend_cap, total_cap, first_byte_timeout, no_backend, accept_error)",
            self.refused.clone(),
        );
    }

    fn refuse(&self, front: SocketAddr, reason: &str) {
        self.refused
            .get_or_create(&RefusedLabels {
                frontend: front.to_string(),
                reason: reason.into(),
            })
            .inc();
    }

    /// Drops the series of a backend that is gone, so /metrics does not grow with churn.
    fn forget(&self, front: SocketAddr, backend: SocketAddr) {
        let l = BackendLabels {
            frontend: front.to_string(),
            backend: backend.to_string(),
        };
        self.connections.remove(&l);
        self.connect_failures.remove(&l);
        self.active.remove(&l);
        self.bytes_to_backend.remove(&l);
        self.bytes_to_client.remove(&l);
        self.ejections.remove(&l);
    }
}

struct Backends {
    list: Vec<SocketAddr>,
    header: ProxyHeader,
}

/// What every connection of one frontend shares.
struct Shared {
    front: SocketAddr,
    backends: RwLock<Backends>,
    health: Mutex<Health>,
    next: AtomicUsize,
    open: AtomicUsize,
    total: Arc<AtomicUsize>,
    limits: Limits,
    metrics: ProxyMetrics,
}

struct Frontend {
    shared: Arc<Shared>,
    tasks: Vec<JoinHandle<()>>,
}

/// The running proxies, one per VIP:port.
pub struct Proxies {
    frontends: HashMap<SocketAddr, Frontend>,
    metrics: ProxyMetrics,
    limits: Limits,
    total: Arc<AtomicUsize>,
}

impl Proxies {
    pub fn new(metrics: ProxyMetrics) -> Proxies {
        Proxies::with_limits(metrics, Limits::default())
    }

    pub fn with_limits(metrics: ProxyMetrics, limits: Limits) -> Proxies {
        Proxies {
            frontends: HashMap::new(),
            metrics,
            limits,
            total: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// Brings the listeners in line with `services`: new ones bound, removed ones closed
    /// (their open connections finish), backends swapped in place. Returns bind errors.
    pub fn update(&mut self, services: &[ProxyService]) -> Vec<String> {
        let wanted: HashMap<SocketAddr, &ProxyService> = services
            .iter()
            .map(|s| (SocketAddr::new(s.vip, s.port), s))
            .collect();
        let metrics = &self.metrics;
        self.frontends.retain(|addr, f| {
            let keep = wanted.contains_key(addr);
            if !keep {
                f.tasks.iter().for_each(JoinHandle::abort);
                let b = f.shared.backends.read().expect("backends lock");
                b.list.iter().for_each(|&b| metrics.forget(*addr, b));
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
                let mut b = f.shared.backends.write().expect("backends lock");
                for gone in b.list.iter().filter(|x| !new.list.contains(x)) {
                    self.metrics.forget(addr, *gone);
                }
                f.shared
                    .health
                    .lock()
                    .expect("health lock")
                    .retain(&new.list);
                *b = new;
                continue;
            }
            let shared = Arc::new(Shared {
                front: addr,
                backends: RwLock::new(new),
                health: Mutex::new(Health::default()),
                next: AtomicUsize::new(0),
                open: AtomicUsize::new(0),
                total: self.total.clone(),
                limits: self.limits,
                metrics: self.metrics.clone(),
            });
            let mut tasks = Vec::new();
            for rt in runtimes() {
                let bound = {
                    let _g = rt.enter();
                    listen(addr)
                };
                match bound {
                    Ok(l) => tasks.push(rt.spawn(accept_loop(l, shared.clone()))),
                    Err(e) => {
                        errors.push(format!("listen on {addr}: {e}"));
                        break;
                    }
                }
            }
            if tasks.len() == THREADS {
                self.frontends.insert(addr, Frontend { shared, tasks });
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

async fn accept_loop(l: TcpListener, sh: Arc<Shared>) {
    loop {
        match l.accept().await {
            Ok((c, peer)) => {
                let Some(slot) = Slot::take(&sh) else {
                    continue;
                };
                let _ = c.set_nodelay(true);
                tokio::spawn(serve(c, peer, sh.clone(), slot));
            }
            Err(e) => {
                // Out of descriptors (EMFILE) or a connection reset before accept.
                sh.metrics.refuse(sh.front, "accept_error");
                tracing::debug!(front = %sh.front, error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// One connection's place under the caps; released on drop.
struct Slot(Arc<Shared>);

impl Slot {
    fn take(sh: &Arc<Shared>) -> Option<Slot> {
        if sh.open.fetch_add(1, Ordering::AcqRel) >= sh.limits.per_frontend {
            sh.open.fetch_sub(1, Ordering::AcqRel);
            sh.metrics.refuse(sh.front, "frontend_cap");
            return None;
        }
        if sh.total.fetch_add(1, Ordering::AcqRel) >= sh.limits.total {
            sh.total.fetch_sub(1, Ordering::AcqRel);
            sh.open.fetch_sub(1, Ordering::AcqRel);
            sh.metrics.refuse(sh.front, "total_cap");
            return None;
        }
        Some(Slot(sh.clone()))
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::AcqRel);
        self.0.total.fetch_sub(1, Ordering::AcqRel);
    }
}

async fn serve(mut client: TcpStream, peer: SocketAddr, sh: Arc<Shared>, _slot: Slot) {
    let front = sh.front;
    let m = &sh.metrics;
    // Client-first: no backend is dialled for a client that never speaks.
    let mut probe = [0u8; 1];
    match tokio::time::timeout(sh.limits.first_byte, client.peek(&mut probe)).await {
        Ok(Ok(n)) if n > 0 => {}
        Ok(_) => return,
        Err(_) => {
            m.refuse(front, "first_byte_timeout");
            return;
        }
    }
    let (list, header) = {
        let b = sh.backends.read().expect("backends lock");
        (b.list.clone(), b.header)
    };
    if list.is_empty() {
        m.refuse(front, "no_backend");
        return;
    }
    let start = sh.next.fetch_add(1, Ordering::Relaxed);
    let candidates =
        sh.health
            .lock()
            .expect("health lock")
            .candidates(&list, start, Instant::now());
    for b in candidates {
        let labels = BackendLabels {
            frontend: front.to_string(),
            backend: b.to_string(),
        };
        let conn = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(b)).await;
        let h = proxy_header::encode(header, peer, front);
        let upstream = match conn {
            Ok(Ok(mut s)) => (h.is_empty() || s.write_all(&h).await.is_ok()).then_some(s),
            _ => None,
        };
        let mut upstream = match upstream {
            Some(s) => s,
            None => {
                m.connect_failures.get_or_create(&labels).inc();
                let backoff = sh
                    .health
                    .lock()
                    .expect("health lock")
                    .failed(b, Instant::now());
                m.ejections.get_or_create(&labels).inc();
                tracing::debug!(%front, backend = %b, ?backoff, "backend ejected");
                continue;
            }
        };
        sh.health.lock().expect("health lock").succeeded(b);
        let _ = upstream.set_nodelay(true);
        // Series handles taken once: a backend removed meanwhile keeps no series.
        m.connections.get_or_create(&labels).inc();
        let active = m.active.get_or_create(&labels).clone();
        let (to_backend, to_client) = (
            m.bytes_to_backend.get_or_create(&labels).clone(),
            m.bytes_to_client.get_or_create(&labels).clone(),
        );
        active.inc();
        let (up, down) = copy_both(&mut client, &mut upstream, sh.limits.idle).await;
        to_backend.inc_by(up);
        to_client.inc_by(down);
        active.dec();
        return;
    }
    m.refuse(front, "no_backend");
    tracing::debug!(%front, %peer, "no backend accepted the connection");
}

/// Copies both ways until both ends closed, an error, or no byte either way for `idle`.
/// Returns the bytes copied client→backend and backend→client.
async fn copy_both(client: &mut TcpStream, upstream: &mut TcpStream, idle: Duration) -> (u64, u64) {
    let start = Instant::now();
    let last = AtomicU64::new(0);
    let (cr, cw) = client.split();
    let (ur, uw) = upstream.split();
    let (up, down) = (AtomicU64::new(0), AtomicU64::new(0));
    let _ = tokio::try_join!(
        pipe(cr, uw, idle, start, &last, &up),
        pipe(ur, cw, idle, start, &last, &down),
    );
    (up.into_inner(), down.into_inner())
}

async fn pipe(
    mut r: impl AsyncRead + Unpin,
    mut w: impl AsyncWrite + Unpin,
    idle: Duration,
    start: Instant,
    last: &AtomicU64,
    count: &AtomicU64,
) -> std::io::Result<()> {
    let timed_out = || std::io::Error::from(std::io::ErrorKind::TimedOut);
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        match tokio::time::timeout(idle, r.read(&mut buf)).await {
            Ok(Ok(0)) => {
                let _ = w.shutdown().await;
                return Ok(());
            }
            Ok(Ok(n)) => {
                tokio::time::timeout(idle, w.write_all(&buf[..n]))
                    .await
                    .map_err(|_| timed_out())??;
                count.fetch_add(n as u64, Ordering::Relaxed);
                last.store(start.elapsed().as_millis() as u64, Ordering::Relaxed);
            }
            Ok(Err(e)) => return Err(e),
            Err(_) => {
                // Idle this way; the other way may be busy (a download).
                let quiet = start.elapsed().as_millis() as u64 - last.load(Ordering::Relaxed);
                if quiet >= idle.as_millis() as u64 {
                    return Err(timed_out());
                }
            }
        }
    }
}
