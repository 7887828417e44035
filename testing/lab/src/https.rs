//! A stand-in for a control-plane node's kube-apiserver: a private CA (like kubeadm's
//! `/etc/kubernetes/pki/ca.crt`), a server certificate with the names kubeadm gives the
//! apiserver's (`kubernetes`, … and the addresses passed, not 127.0.0.1), and a small
//! blocking HTTPS server answering `GET /readyz` with 200 `ok` (any other path: 404).
//! It runs on a thread that has entered a lab namespace, and stops (closing its listener
//! and every connection) on `stop` or drop.

use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose,
    SanType,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// A CA and what it signs.
pub struct Pki {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

impl Pki {
    pub fn new(name: &str) -> Pki {
        let key = KeyPair::generate().expect("CA key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        Pki {
            issuer: CertifiedIssuer::self_signed(params, key).expect("self-signed CA"),
        }
    }

    /// The CA certificate, PEM (the content of a `ca_file`).
    pub fn ca_pem(&self) -> String {
        self.issuer.pem()
    }

    /// A server configuration with a fresh certificate for `names` and `ips`.
    pub fn server_config(&self, names: &[&str], ips: &[IpAddr]) -> Arc<rustls::ServerConfig> {
        let key = KeyPair::generate().expect("server key");
        let mut params =
            CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .expect("server params");
        params
            .subject_alt_names
            .extend(ips.iter().map(|a| SanType::IpAddress(*a)));
        params
            .distinguished_name
            .push(DnType::CommonName, "kube-apiserver");
        let cert = params.signed_by(&key, &self.issuer).expect("sign");
        let chain = vec![CertificateDer::from(cert.der().to_vec())];
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("TLS versions")
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .expect("server certificate");
        cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
        Arc::new(cfg)
    }

    /// The certificate names kubeadm gives kube-apiserver (and `ips`: node, VIP).
    pub fn apiserver_config(&self, ips: &[IpAddr]) -> Arc<rustls::ServerConfig> {
        self.server_config(
            &[
                "kubernetes",
                "kubernetes.default",
                "kubernetes.default.svc",
                "kubernetes.default.svc.cluster.local",
            ],
            ips,
        )
    }

    /// A client trusting only this CA.
    pub fn client_config(&self) -> Arc<rustls::ClientConfig> {
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(CertificateDer::from(self.issuer.der().to_vec()))
            .expect("CA as root");
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        Arc::new(
            rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .expect("TLS versions")
                .with_root_certificates(roots)
                .with_no_client_auth(),
        )
    }
}

/// A running server; stops on drop.
pub struct HttpsServer {
    stop: Arc<AtomicBool>,
    addr: SocketAddr,
    thread: Option<std::thread::JoinHandle<Option<()>>>,
}

impl HttpsServer {
    /// Listens on `addr` inside namespace `ns` (`None`: this thread's namespace). The
    /// listener is bound before this returns. `port 0` picks one: see [`HttpsServer::addr`].
    pub fn start(
        ns: Option<&str>,
        addr: SocketAddr,
        config: Arc<rustls::ServerConfig>,
    ) -> io::Result<HttpsServer> {
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, rx) = std::sync::mpsc::channel();
        let flag = stop.clone();
        let serve = move || {
            let listener = match TcpListener::bind(addr).and_then(|l| {
                l.set_nonblocking(true)?;
                Ok(l)
            }) {
                Ok(l) => l,
                Err(e) => {
                    let _ = tx.send(Err(e));
                    return;
                }
            };
            let _ = tx.send(listener.local_addr());
            let mut open: Vec<std::thread::JoinHandle<()>> = Vec::new();
            while !flag.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((s, _)) => {
                        let (config, flag) = (config.clone(), flag.clone());
                        open.push(std::thread::spawn(move || serve_one(s, config, &flag)));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(2)),
                }
                open.retain(|t| !t.is_finished());
            }
            drop(listener);
            for t in open {
                let _ = t.join();
            }
        };
        let thread = match ns {
            Some(ns) => crate::in_netns(ns, serve)?,
            None => std::thread::spawn(move || {
                serve();
                Some(())
            }),
        };
        let addr = rx
            .recv()
            .map_err(|_| io::Error::other("server thread died"))??;
        Ok(HttpsServer {
            stop,
            addr,
            thread: Some(thread),
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Closes the listener and every open connection, and waits for that.
    pub fn stop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for HttpsServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// One connection: requests (keep-alive) until the client closes or the server stops.
fn serve_one(s: TcpStream, config: Arc<rustls::ServerConfig>, stop: &AtomicBool) {
    let _ = s.set_read_timeout(Some(Duration::from_millis(50)));
    let Ok(conn) = rustls::ServerConnection::new(config) else {
        return;
    };
    let mut tls = rustls::StreamOwned::new(conn, s);
    let mut buf = Vec::new();
    let mut chunk = [0u8; 2048];
    while !stop.load(Ordering::Relaxed) {
        match tls.read(&mut chunk) {
            Ok(0) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                continue;
            }
            Err(_) => return,
        }
        while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).into_owned();
            buf.drain(..end + 4);
            let path = head.split_whitespace().nth(1).unwrap_or("");
            let (status, body) = if path == "/readyz" {
                ("200 OK", "ok")
            } else {
                ("404 Not Found", "not found")
            };
            let reply = format!(
                "HTTP/1.1 {status}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            );
            if tls
                .write_all(reply.as_bytes())
                .and_then(|()| tls.flush())
                .is_err()
            {
                return;
            }
        }
    }
}

/// `GET path` over HTTPS to `addr` as `name` from namespace `ns` (HTTP/1.0, a fresh
/// connection), trusting `client`: (status code, body), or why not.
pub fn https_get(
    ns: &str,
    addr: SocketAddr,
    name: &str,
    path: &str,
    client: Arc<rustls::ClientConfig>,
    timeout: Duration,
) -> Result<(u16, String), String> {
    let (name, path) = (name.to_string(), path.to_string());
    let t = crate::in_netns(ns, move || -> Result<(u16, String), String> {
        let server = rustls::pki_types::ServerName::try_from(name).map_err(|e| e.to_string())?;
        let s = TcpStream::connect_timeout(&addr, timeout).map_err(|e| e.to_string())?;
        s.set_read_timeout(Some(timeout))
            .map_err(|e| e.to_string())?;
        s.set_write_timeout(Some(timeout))
            .map_err(|e| e.to_string())?;
        let conn = rustls::ClientConnection::new(client, server).map_err(|e| e.to_string())?;
        let mut tls = rustls::StreamOwned::new(conn, s);
        tls.write_all(format!("GET {path} HTTP/1.0\r\nHost: kubernetes\r\n\r\n").as_bytes())
            .map_err(|e| e.to_string())?;
        let mut text = Vec::new();
        // The server keeps the connection open: read the head and the announced body.
        let mut chunk = [0u8; 1024];
        loop {
            let n = tls.read(&mut chunk).map_err(|e| e.to_string())?;
            if n == 0 {
                break;
            }
            text.extend_from_slice(&chunk[..n]);
            let t = String::from_utf8_lossy(&text);
            if let Some((head, body)) = t.split_once("\r\n\r\n") {
                let len: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("Content-Length: "))
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap_or(0);
                if body.len() >= len {
                    break;
                }
            }
        }
        let t = String::from_utf8_lossy(&text).into_owned();
        let code = t
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .ok_or_else(|| format!("no status line in {t:?}"))?;
        let body = t.split_once("\r\n\r\n").map(|x| x.1.to_string());
        Ok((code, body.unwrap_or_default()))
    })
    .map_err(|e| e.to_string())?;
    t.join()
        .map_err(|_| "client thread panicked".to_string())?
        .ok_or_else(|| "namespace not entered".to_string())?
}
