//! The API's listener. Bounded in every dimension a client controls: at most
//! `max_connections` open (a new one evicts the oldest, so a flood of idle connections can
//! never lock the kubelet's probe out), headers within `header_timeout`, one request per
//! connection (no keep-alive) and the whole connection within `connection_deadline`,
//! request headers within 16 KiB. A listener on the unspecified address (an operator's
//! choice) refuses connections made to a VIP: `/status` is never served on a VIP.

use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;
use tokio::sync::oneshot;

use super::{ApiState, router};
use crate::status::Board;

#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_connections: usize,
    pub header_timeout: Duration,
    pub connection_deadline: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 256,
            header_timeout: Duration::from_secs(5),
            connection_deadline: Duration::from_secs(10),
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RefusedLabels {
    pub reason: String,
}

/// Connections the API closed without serving: `evicted` (the oldest, to admit a new one
/// at the cap), `vip_address` (made to a VIP), `accept_error` (e.g. out of descriptors).
#[derive(Clone, Default)]
pub struct ApiMetrics {
    pub refused: Family<RefusedLabels, Counter>,
}

impl ApiMetrics {
    pub fn register(&self, r: &mut Registry) {
        r.register(
            "api_connections_refused",
            "API connections closed unserved, by reason (evicted, vip_address, accept_error)",
            self.refused.clone(),
        );
    }

    fn refuse(&self, reason: &str) {
        self.refused
            .get_or_create(&RefusedLabels {
                reason: reason.into(),
            })
            .inc();
    }
}

/// Binds, then serves on a thread of its own until the process ends: a busy API never
/// delays the VRRP event loop (and `/healthz` still tells when that loop stalls).
pub fn serve(
    listen: SocketAddr,
    state: ApiState,
    detail: bool,
    limits: Limits,
) -> std::io::Result<()> {
    let std_listener = std::net::TcpListener::bind(listen)?;
    std_listener.set_nonblocking(true)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    tracing::info!(%listen, status = detail, max_connections = limits.max_connections, "API listening");
    std::thread::Builder::new()
        .name("edgevip-api".into())
        .spawn(move || rt.block_on(accept_loop(std_listener, listen, state, detail, limits)))?;
    Ok(())
}

async fn accept_loop(
    std_listener: std::net::TcpListener,
    listen: SocketAddr,
    state: ApiState,
    detail: bool,
    limits: Limits,
) {
    let listener = match tokio::net::TcpListener::from_std(std_listener) {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(%listen, error = %e, "API listener unusable");
            return;
        }
    };
    let board = state.board.clone();
    let metrics = state.metrics.api.clone();
    let app = router(state, detail);
    let slots = Arc::new(Mutex::new(Slots::new(limits.max_connections)));
    {
        loop {
            let stream = match listener.accept().await {
                Ok((s, _)) => s,
                Err(e) => {
                    metrics.refuse("accept_error");
                    tracing::debug!(%listen, error = %e, "API accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            if listen.ip().is_unspecified()
                && let Ok(local) = stream.local_addr()
                && is_vip(local.ip(), &board)
            {
                metrics.refuse("vip_address");
                continue;
            }
            let (id, close, evicted) = slots.lock().expect("slots").admit();
            if let Some(old) = evicted {
                metrics.refuse("evicted");
                let _ = old.send(());
            }
            let (app, slots) = (app.clone(), slots.clone());
            tokio::spawn(async move {
                let conn = http1::Builder::new()
                    .timer(TokioTimer::new())
                    .header_read_timeout(limits.header_timeout)
                    .keep_alive(false)
                    .max_buf_size(16 * 1024)
                    .serve_connection(TokioIo::new(stream), TowerToHyperService::new(app));
                tokio::select! {
                    _ = tokio::time::timeout(limits.connection_deadline, conn) => {}
                    _ = close => {}
                }
                slots.lock().expect("slots").release(id);
            });
        }
    }
}

/// Whether `ip` is one of the VIPs this node serves (loopback never is).
fn is_vip(ip: IpAddr, board: &Board) -> bool {
    !ip.is_loopback()
        && board.snapshot().instances.iter().any(|i| {
            i.vips
                .iter()
                .any(|v| v.split('/').next().and_then(|a| a.parse::<IpAddr>().ok()) == Some(ip))
        })
}

/// The open connections, oldest first; each with the sender that closes it.
struct Slots {
    cap: usize,
    next: u64,
    open: VecDeque<(u64, oneshot::Sender<()>)>,
}

impl Slots {
    fn new(cap: usize) -> Slots {
        Slots {
            cap: cap.max(1),
            next: 0,
            open: VecDeque::new(),
        }
    }

    /// A slot for a new connection: its id, the receiver that closes it, and at the cap the
    /// oldest connection's closer (the caller fires it).
    fn admit(&mut self) -> (u64, oneshot::Receiver<()>, Option<oneshot::Sender<()>>) {
        let evicted = if self.open.len() >= self.cap {
            self.open.pop_front().map(|(_, tx)| tx)
        } else {
            None
        };
        let (tx, rx) = oneshot::channel();
        let id = self.next;
        self.next += 1;
        self.open.push_back((id, tx));
        (id, rx, evicted)
    }

    fn release(&mut self, id: u64) {
        if let Some(i) = self.open.iter().position(|(k, _)| *k == id) {
            self.open.remove(i);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_the_cap_the_oldest_connection_is_closed_for_the_new_one() {
        let mut s = Slots::new(2);
        let (a, mut ra, e) = s.admit();
        assert!(e.is_none());
        let (_, mut rb, e) = s.admit();
        assert!(e.is_none());
        let (_, _rc, e) = s.admit();
        e.expect("the oldest is evicted").send(()).unwrap();
        assert!(ra.try_recv().is_ok(), "the oldest (a) got the close");
        assert!(rb.try_recv().is_err(), "b stays open");
        assert_eq!(s.open.len(), 2);
        // A released slot frees room: no eviction for the next one.
        s.release(a); // already evicted: no effect
        let (b_id, _, _) = (1, (), ());
        s.release(b_id);
        let (_, _, e) = s.admit();
        assert!(e.is_none());
    }
}
