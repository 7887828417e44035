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

/// Binds, then serves on a thread of its own until the process ends: a busy API never
/// delays the VRRP event loop (and `/healthz` still tells when that loop stalls). Returns
/// the bound address.
pub fn serve(
    listen: SocketAddr,
    state: ApiState,
    detail: bool,
    limits: Limits,
) -> std::io::Result<SocketAddr> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    // A backlog of 1,024: a burst of connections waits in the kernel, not in SYN retries.
    // Registered with the API's own runtime (entered, not blocked on: the caller may be
    // inside the daemon's runtime).
    let bound = {
        let _g = rt.enter();
        bind(listen).and_then(|l| Ok((l.local_addr()?, l)))
    };
    // On an error the runtime must not be dropped here: dropping a runtime inside the
    // caller's (the daemon's) runtime panics. Shut it down without blocking instead.
    let (listen, listener) = match bound {
        Ok(b) => b,
        Err(e) => {
            rt.shutdown_background();
            return Err(e);
        }
    };
    tracing::info!(%listen, status = detail, max_connections = limits.max_connections, "API listening");
    std::thread::Builder::new()
        .name("edgevip-api".into())
        .spawn(move || rt.block_on(accept_loop(listener, listen, state, detail, limits)))?;
    Ok(listen)
}

fn bind(listen: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    let s = if listen.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    s.set_reuseaddr(true)?;
    s.bind(listen)?;
    s.listen(1024)
}

async fn accept_loop(
    listener: tokio::net::TcpListener,
    listen: SocketAddr,
    state: ApiState,
    detail: bool,
    limits: Limits,
) {
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
    let is = |v: &String| v.split('/').next().and_then(|a| a.parse::<IpAddr>().ok()) == Some(ip);
    let snap = board.snapshot();
    !ip.is_loopback()
        && (snap.instances.iter().any(|i| i.vips.iter().any(is))
            || snap
                .bgp
                .iter()
                .flat_map(|b| &b.instances)
                .any(|i| i.vips.iter().any(is)))
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
    use crate::engine::{Clock, Heartbeat};
    use crate::metrics::Metrics;

    fn get(addr: SocketAddr, path: &str) -> String {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        let mut t = String::new();
        let _ = s.read_to_string(&mut t);
        t
    }

    /// A fresh, ready state without Kubernetes.
    fn state() -> ApiState {
        ApiState {
            board: Board::default(),
            metrics: Metrics::new(),
            heartbeat: Heartbeat::default(),
            clock: Clock::new(),
            ready: tokio::sync::watch::channel(true).1,
            kubernetes: None,
        }
    }

    // Async: `serve` is called from inside the daemon's runtime.
    #[tokio::test]
    async fn the_probe_listener_keeps_status_off_unless_asked_and_bounds_header_time() {
        let state = state();
        let limits = Limits {
            header_timeout: Duration::from_millis(300),
            ..Limits::default()
        };
        let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let state_board = state.board.clone();
        let probe = serve(any, state.clone(), false, limits).unwrap();
        let full = serve(any, state, true, limits).unwrap();
        assert!(get(probe, "/readyz").starts_with("HTTP/1.1 200"));
        assert!(
            get(probe, "/status").starts_with("HTTP/1.1 404"),
            "no detail on the probe listener"
        );
        assert!(get(full, "/status").starts_with("HTTP/1.1 200"));
        // An instance that cannot start makes the node unready, and says which and why.
        state_board.set(crate::status::InstanceStatus {
            state: "failed".into(),
            error: Some("interface eth9: not found".into()),
            ..serde_json::from_value(serde_json::json!({
                "name": "ingress", "state": "init", "priority": 100, "effective_priority": 100,
                "master": null, "vips": [], "transitions": 0, "since": "", "interface": "eth9",
                "vrid": 1, "version": 3, "routers": []}))
            .unwrap()
        });
        let r = get(probe, "/readyz");
        assert!(r.starts_with("HTTP/1.1 503"), "{r}");
        assert!(
            r.contains("instance ingress failed: interface eth9: not found"),
            "{r}"
        );
        state_board.remove("ingress");
        assert!(get(probe, "/readyz").starts_with("HTTP/1.1 200"));
        // Half a request line, then silence: closed after the header timeout.
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(probe).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.write_all(b"GET /hea").unwrap();
        let t0 = std::time::Instant::now();
        let mut buf = Vec::new();
        let _ = s.read_to_end(&mut buf);
        assert!(t0.elapsed() < Duration::from_secs(2), "{:?}", t0.elapsed());
    }

    // Inside a runtime, as the daemon calls it: a bind failure is an error, not a panic
    // from dropping the API's runtime within the daemon's.
    #[tokio::test]
    async fn a_bind_failure_inside_the_daemons_runtime_is_an_error_not_a_panic() {
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = taken.local_addr().unwrap();
        let state = state();
        let e = serve(addr, state, true, Limits::default()).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::AddrInUse, "{e}");
    }

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
        // Releasing an evicted slot changes nothing; releasing an open one frees room.
        s.release(a);
        assert_eq!(s.open.len(), 2);
        s.release(1);
        let (_, _, e) = s.admit();
        assert!(e.is_none(), "room after a release");
    }
}
