//! The probes: HTTP(S) GET, TCP connect, exec. Each attempt is bounded by the check's
//! timeout. An https check builds its TLS client once (reading `ca_file` or the system's
//! roots, off the event loop and outside the timeout) and keeps it; while that fails (the
//! CA file is not there yet: kubeadm writes it during `init`) every attempt fails with the
//! reason and the next one tries again.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use edgevip_config::{HttpTls, Probe};
use http_body_util::Empty;
use hyper::body::Bytes;
use tokio::io::{AsyncRead, AsyncWrite};

use super::tls;

/// One check's probe with what it keeps between attempts (the TLS client of https).
pub struct Prober {
    probe: Probe,
    tls: Option<Arc<rustls::ClientConfig>>,
}

impl Prober {
    pub fn new(probe: Probe) -> Prober {
        Prober { probe, tls: None }
    }

    /// One attempt: `Ok` when the probe passes, or why not.
    pub async fn run(&mut self, timeout: Duration) -> Result<(), String> {
        if let Probe::Http { url, tls, .. } = &self.probe
            && url.starts_with("https://")
            && self.tls.is_none()
        {
            let settings = tls.clone();
            let built = tokio::task::spawn_blocking(move || tls::client_config(&settings))
                .await
                .map_err(|e| e.to_string())??;
            self.tls = Some(built);
        }
        match tokio::time::timeout(timeout, attempt(&self.probe, self.tls.clone())).await {
            Ok(r) => r,
            Err(_) => Err(format!("timed out after {timeout:?}")),
        }
    }
}

/// One attempt of `probe`, from scratch (an https probe reads its CA again).
pub async fn run_probe(probe: &Probe, timeout: Duration) -> Result<(), String> {
    Prober::new(probe.clone()).run(timeout).await
}

async fn attempt(probe: &Probe, client: Option<Arc<rustls::ClientConfig>>) -> Result<(), String> {
    match probe {
        Probe::Tcp { addr } => tokio::net::TcpStream::connect(addr)
            .await
            .map(|_| ())
            .map_err(|e| format!("connect {addr}: {e}")),
        Probe::Http {
            url,
            expect_status,
            tls,
        } => http_get(url, *expect_status, tls, client).await,
        Probe::Exec { argv } => {
            let status = tokio::process::Command::new(&argv[0])
                .args(&argv[1..])
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .kill_on_drop(true)
                .status()
                .await
                .map_err(|e| format!("{}: {e}", argv[0]))?;
            if status.success() {
                Ok(())
            } else {
                Err(format!("{} exited with {status}", argv[0]))
            }
        }
    }
}

/// The parts of an `http[s]://authority[/path]` URL.
#[derive(Debug, PartialEq, Eq)]
struct Url {
    https: bool,
    /// `host[:port]` as written (the Host header).
    authority: String,
    /// The host without port and brackets.
    host: String,
    port: u16,
    path: String,
}

fn split_url(url: &str) -> Result<Url, String> {
    let (https, rest) = if let Some(r) = url.strip_prefix("https://") {
        (true, r)
    } else if let Some(r) = url.strip_prefix("http://") {
        (false, r)
    } else {
        return Err(format!("{url:?} is not an http:// or https:// URL"));
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let default_port = if https { 443 } else { 80 };
    let bad_port = |p: &str| format!("{url:?}: port {p:?} is not a number");
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (h, after) = v6
            .split_once(']')
            .ok_or_else(|| format!("{url:?}: unclosed ["))?;
        let port = match after.strip_prefix(':') {
            Some(p) => p.parse().map_err(|_| bad_port(p))?,
            None => default_port,
        };
        (h, port)
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, p.parse().map_err(|_| bad_port(p))?),
            None => (authority, default_port),
        }
    };
    Ok(Url {
        https,
        authority: authority.to_string(),
        host: host.to_string(),
        port,
        path: path.to_string(),
    })
}

async fn http_get(
    url: &str,
    expect: u16,
    settings: &HttpTls,
    client: Option<Arc<rustls::ClientConfig>>,
) -> Result<(), String> {
    let u = split_url(url)?;
    let addr: SocketAddr = match u.host.parse() {
        Ok(ip) => SocketAddr::new(ip, u.port),
        Err(_) => tokio::net::lookup_host((u.host.as_str(), u.port))
            .await
            .map_err(|e| format!("{}: {e}", u.authority))?
            .next()
            .ok_or_else(|| format!("{}: no address", u.authority))?,
    };
    let stream = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect {addr}: {e}"))?;
    let code = if u.https {
        let client = client.ok_or("https without a TLS client")?;
        let name = tls::server_name(settings, &u.host)?;
        let stream = tokio_rustls::TlsConnector::from(client)
            .connect(name, stream)
            .await
            .map_err(|e| format!("TLS handshake with {addr}: {e}"))?;
        exchange(stream, &u).await?
    } else {
        exchange(stream, &u).await?
    };
    if code == expect {
        Ok(())
    } else {
        Err(format!("GET {url}: HTTP {code}, expected {expect}"))
    }
}

/// `GET path` over an open connection: the status code.
async fn exchange<S>(stream: S, u: &Url) -> Result<u16, String>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .map_err(|e| e.to_string())?;
    let conn = tokio::spawn(conn);
    let req = hyper::Request::get(u.path.as_str())
        .header(hyper::header::HOST, u.authority.as_str())
        .header(hyper::header::USER_AGENT, "edgevip-health-check")
        .body(Empty::<Bytes>::new())
        .map_err(|e| e.to_string())?;
    let resp = sender.send_request(req).await.map_err(|e| e.to_string());
    conn.abort();
    Ok(resp?.status().as_u16())
}

#[cfg(test)]
mod tests {
    use super::{Url, split_url};

    fn url(https: bool, authority: &str, host: &str, port: u16, path: &str) -> Url {
        Url {
            https,
            authority: authority.into(),
            host: host.into(),
            port,
            path: path.into(),
        }
    }

    #[test]
    fn urls_split_into_scheme_authority_host_port_and_path() {
        assert_eq!(
            split_url("http://127.0.0.1:10254/healthz").unwrap(),
            url(false, "127.0.0.1:10254", "127.0.0.1", 10254, "/healthz")
        );
        assert_eq!(
            split_url("http://localhost").unwrap(),
            url(false, "localhost", "localhost", 80, "/")
        );
        assert_eq!(
            split_url("https://[2001:db8::1]/readyz").unwrap(),
            url(true, "[2001:db8::1]", "2001:db8::1", 443, "/readyz")
        );
        assert_eq!(split_url("https://[::1]:6443/readyz").unwrap().port, 6443);
        assert!(split_url("ftp://x/").is_err());
        assert!(split_url("http://x:port/").is_err());
    }
}
