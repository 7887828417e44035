//! One receive path per interface and address family, shared by every virtual router on it
//! (keepalived's design): one raw socket, one reader task, datagrams routed to the router's
//! task by VRID before anything is decoded. A backup's work grows with the adverts on the
//! link, not with their square, and a flood of junk costs one lookup per datagram.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use edgevip_netio::{Family, RECV_BUF, Received, RecvError, VrrpSocket};
use tokio::sync::mpsc;
use vrrp::wire::VRID_OFFSET;

use crate::metrics::Metrics;

/// Datagrams queued per router before the reader drops (and counts) more: a router that
/// cannot keep up must not stall its neighbours on the link.
const QUEUE: usize = 256;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Key {
    ifindex: u32,
    family: Family,
}

#[derive(Debug, thiserror::Error)]
pub enum RegisterError {
    #[error("VRID {vrid} is already in use on this interface for {family}")]
    VridInUse { vrid: u8, family: &'static str },
    #[error("VRRP socket on {ifname}: {source}")]
    Socket {
        ifname: String,
        source: std::io::Error,
    },
}

/// Queued datagrams are boxed: a channel allocates slots in blocks of 32, and a block of
/// pointers instead of whole datagrams keeps an idle instance small.
pub type Queued = Box<Received>;

/// The routes of one receive path: VRID → the router's queue.
type Routes = Mutex<HashMap<u8, mpsc::Sender<Queued>>>;

struct Path {
    socket: Arc<VrrpSocket>,
    routes: Arc<Routes>,
    reader: tokio::task::JoinHandle<()>,
}

/// Every receive path of the daemon. Cheap to clone.
#[derive(Clone, Default)]
pub struct Receivers {
    paths: Arc<Mutex<HashMap<Key, Weak<Path>>>>,
}

/// A router's place on a receive path and the socket to send on. Dropping it frees the
/// VRID; the last one closes the socket.
pub struct Registration {
    pub socket: Arc<VrrpSocket>,
    vrid: u8,
    path: Arc<Path>,
}

/// The queue an instance receives its datagrams on (both families share it).
pub fn queue() -> (mpsc::Sender<Queued>, mpsc::Receiver<Queued>) {
    mpsc::channel(QUEUE)
}

impl Drop for Registration {
    fn drop(&mut self) {
        lock(&self.path.routes).remove(&self.vrid);
    }
}

impl Drop for Path {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding these locks cannot leave them inconsistent (single inserts and
    // removes): keep going rather than poison every later router.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Receivers {
    /// Joins the receive path of (`ifindex`, `family`), opening it if this is its first
    /// router; datagrams for `vrid` go to `tx`.
    pub fn register(
        &self,
        ifindex: u32,
        ifname: &str,
        family: Family,
        vrid: u8,
        tx: mpsc::Sender<Queued>,
        metrics: &Metrics,
    ) -> Result<Registration, RegisterError> {
        let key = Key { ifindex, family };
        let path = {
            let mut paths = lock(&self.paths);
            match paths.get(&key).and_then(Weak::upgrade) {
                Some(p) => p,
                None => {
                    let socket = VrrpSocket::open(family, ifindex, ifname).map_err(|source| {
                        RegisterError::Socket {
                            ifname: ifname.into(),
                            source,
                        }
                    })?;
                    let p = Arc::new(open_path(socket, ifname, family, metrics));
                    paths.retain(|_, w| w.strong_count() > 0);
                    paths.insert(key, Arc::downgrade(&p));
                    p
                }
            }
        };
        {
            let mut routes = lock(&path.routes);
            if routes.get(&vrid).is_some_and(|t| !t.is_closed()) {
                return Err(RegisterError::VridInUse {
                    vrid,
                    family: family_label(family),
                });
            }
            routes.insert(vrid, tx);
        }
        Ok(Registration {
            socket: path.socket.clone(),
            vrid,
            path,
        })
    }
}

pub fn family_label(f: Family) -> &'static str {
    match f {
        Family::V4 => "ipv4",
        Family::V6 => "ipv6",
    }
}

fn open_path(socket: VrrpSocket, ifname: &str, family: Family, metrics: &Metrics) -> Path {
    let socket = Arc::new(socket);
    let routes: Arc<Routes> = Arc::default();
    let reader = tokio::spawn(read_loop(
        socket.clone(),
        routes.clone(),
        RxCounters::new(metrics, ifname, family_label(family)),
    ));
    Path {
        socket,
        routes,
        reader,
    }
}

/// Drop counters of one receive path, resolved once.
struct RxCounters {
    metrics: Metrics,
    interface: String,
    family: &'static str,
}

impl RxCounters {
    fn new(metrics: &Metrics, interface: &str, family: &'static str) -> Self {
        RxCounters {
            metrics: metrics.clone(),
            interface: interface.into(),
            family,
        }
    }

    fn drop(&self, reason: &'static str) {
        self.metrics.rx_drop(&self.interface, self.family, reason);
    }
}

async fn read_loop(socket: Arc<VrrpSocket>, routes: Arc<Routes>, counters: RxCounters) {
    let mut buf = vec![0u8; RECV_BUF];
    let mut io_errors = 0u32;
    loop {
        let r = socket.recv(&mut buf).await;
        let d = match r {
            Ok(d) => {
                io_errors = 0;
                d
            }
            Err(RecvError::Bad(b)) => {
                counters.drop(b.as_str());
                continue;
            }
            Err(RecvError::Io(e)) => {
                // A socket error is not a datagram: back off briefly (bounded) so a broken
                // socket cannot spin, and say so once per streak.
                counters.drop("socket_error");
                if io_errors == 0 {
                    tracing::warn!(interface = %counters.interface, family = counters.family, error = %e, "VRRP receive failed");
                }
                io_errors = io_errors.saturating_add(1);
                tokio::time::sleep(Duration::from_millis(u64::from(io_errors.min(10)) * 10)).await;
                continue;
            }
        };
        let Some(&vrid) = d.payload.get(VRID_OFFSET) else {
            counters.drop("truncated");
            continue;
        };
        let refused = match lock(&routes).get(&vrid) {
            None => Some("unknown_vrid"),
            Some(tx) => tx.try_send(Box::new(d)).err().map(|_| "queue_full"),
        };
        if let Some(reason) = refused {
            counters.drop(reason);
        }
    }
}
