//! The probes: plain HTTP GET, TCP connect, exec. Each is bounded by the check's timeout.

use std::net::SocketAddr;
use std::time::Duration;

use edgevip_config::Probe;
use http_body_util::Empty;
use hyper::body::Bytes;

pub async fn run_probe(probe: &Probe, timeout: Duration) -> Result<(), String> {
    match tokio::time::timeout(timeout, attempt(probe)).await {
        Ok(r) => r,
        Err(_) => Err(format!("timed out after {timeout:?}")),
    }
}

async fn attempt(probe: &Probe) -> Result<(), String> {
    match probe {
        Probe::Tcp { addr } => tokio::net::TcpStream::connect(addr)
            .await
            .map(|_| ())
            .map_err(|e| format!("connect {addr}: {e}")),
        Probe::Http { url, expect_status } => http_get(url, *expect_status).await,
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

/// `http://host[:port][/path]` → (host header, socket address candidates, path).
fn split_url(url: &str) -> Result<(String, String), String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| format!("{url:?} is not an http:// URL"))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    Ok((authority.to_string(), path.to_string()))
}

async fn http_get(url: &str, expect: u16) -> Result<(), String> {
    let (authority, path) = split_url(url)?;
    let target = if authority
        .rsplit_once(':')
        .is_some_and(|(_, p)| !p.contains(']'))
    {
        authority.clone()
    } else {
        format!("{authority}:80")
    };
    let addr: SocketAddr = match target.parse() {
        Ok(a) => a,
        Err(_) => tokio::net::lookup_host(&target)
            .await
            .map_err(|e| format!("{target}: {e}"))?
            .next()
            .ok_or_else(|| format!("{target}: no address"))?,
    };
    let stream = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect {addr}: {e}"))?;
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .map_err(|e| e.to_string())?;
    let conn = tokio::spawn(conn);
    let req = hyper::Request::get(path.as_str())
        .header(hyper::header::HOST, authority)
        .header(hyper::header::USER_AGENT, "edgevip-health-check")
        .body(Empty::<Bytes>::new())
        .map_err(|e| e.to_string())?;
    let resp = sender.send_request(req).await.map_err(|e| e.to_string());
    conn.abort();
    let code = resp?.status().as_u16();
    if code == expect {
        Ok(())
    } else {
        Err(format!("GET {url}: HTTP {code}, expected {expect}"))
    }
}

#[cfg(test)]
mod tests {
    use super::split_url;

    #[test]
    fn urls_split_into_authority_and_path() {
        assert_eq!(
            split_url("http://127.0.0.1:10254/healthz").unwrap(),
            ("127.0.0.1:10254".into(), "/healthz".into())
        );
        assert_eq!(
            split_url("http://localhost").unwrap(),
            ("localhost".into(), "/".into())
        );
        assert!(split_url("https://x/").is_err());
    }
}
