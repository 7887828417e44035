//! `edgevip status`: fetches `/status` from a running daemon and prints it.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;

use crate::status::{Status, table};

pub async fn fetch(api: SocketAddr, path: &str) -> Result<(u16, Vec<u8>), String> {
    let stream = tokio::time::timeout(Duration::from_secs(3), tokio::net::TcpStream::connect(api))
        .await
        .map_err(|_| format!("{api}: connect timed out"))?
        .map_err(|e| format!("{api}: {e}"))?;
    let io = hyper_util::rt::TokioIo::new(stream);
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|e| format!("{api}: {e}"))?;
    tokio::spawn(conn);
    let req = hyper::Request::get(path)
        .header(hyper::header::HOST, api.to_string())
        .body(Empty::<Bytes>::new())
        .map_err(|e| e.to_string())?;
    let resp = tokio::time::timeout(Duration::from_secs(5), sender.send_request(req))
        .await
        .map_err(|_| format!("{api}{path}: timed out"))?
        .map_err(|e| format!("{api}{path}: {e}"))?;
    let code = resp.status().as_u16();
    let body = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    Ok((code, body.to_vec()))
}

pub async fn status(api: SocketAddr, json: bool) -> ExitCode {
    match fetch(api, "/status").await {
        Ok((200, body)) => {
            if json {
                println!("{}", String::from_utf8_lossy(&body));
                return ExitCode::SUCCESS;
            }
            match serde_json::from_slice::<Status>(&body) {
                Ok(s) => {
                    print!("{}", table(&s));
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("edgevip status: unexpected answer from {api}: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Ok((code, _)) => {
            eprintln!("edgevip status: {api} answered HTTP {code}");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("edgevip status: {e}");
            ExitCode::FAILURE
        }
    }
}
