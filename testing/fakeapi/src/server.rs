//! Accept loop and per-connection HTTP/1.1 serving. We own the connection tasks (instead
//! of `axum::serve`) so that shutdown can abort every connection, including keep-alive
//! ones a pooled client would otherwise keep using, and every open watch.

use crate::api::{FakeApi, Fault, Request};
use crate::request::{self, Body};
use crate::routes;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::net::SocketAddr;
use tokio::sync::watch;
use tokio::task::JoinSet;

/// A running server. Dropping it (or `shutdown()`) stops accepting and aborts all open
/// connections and watch streams.
#[derive(Debug)]
pub struct Server {
    addr: SocketAddr,
    tls: bool,
    stop: watch::Sender<bool>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Server {
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `https://ip:port` (or `http://` for [`FakeApi::serve_http`]).
    pub fn url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }

    /// Whether the server speaks HTTPS.
    pub fn is_tls(&self) -> bool {
        self.tls
    }

    /// A kube config for this server as edgevip's ServiceAccount (HTTPS servers only).
    pub fn kube_config(&self) -> kube::Config {
        crate::client::kube_config(self.addr)
    }

    /// A kube config for this server with another bearer token (e.g. `ADMIN_TOKEN`).
    pub fn kube_config_as(&self, token: &str) -> kube::Config {
        crate::client::kube_config_as(self.addr, token)
    }

    /// Stop the server. Takes effect at the next scheduling point of its tasks; use
    /// [`Server::shutdown_and_wait`] to be sure the port is closed.
    pub fn shutdown(self) {
        drop(self);
    }

    /// Stop the server and wait until the listener and all connections are closed.
    pub async fn shutdown_and_wait(mut self) {
        self.stop.send_replace(true);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.send_replace(true);
    }
}

impl FakeApi {
    /// Serve HTTPS on an already bound listener (e.g. bound inside a network namespace),
    /// with a certificate from [`ca_pem`]'s CA for the listener's address. Must be called
    /// inside a tokio runtime. Panics if the listener cannot be registered with tokio; see
    /// [`FakeApi::try_serve`].
    pub fn serve(&self, listener: std::net::TcpListener) -> Server {
        self.try_serve(listener)
            .unwrap_or_else(|e| panic!("FakeApi::serve: cannot use listener: {e}"))
    }

    pub fn try_serve(&self, listener: std::net::TcpListener) -> std::io::Result<Server> {
        start(self.clone(), listener, true)
    }

    /// HTTPS on `addr`; clients from [`Server::kube_config`] act as edgevip's ServiceAccount.
    pub async fn bind(&self, addr: std::net::SocketAddr) -> std::io::Result<Server> {
        let listener = std::net::TcpListener::bind(addr)?;
        self.try_serve(listener)
    }

    /// Plain HTTP, for tests of the wire protocol below TLS (raw requests). Authentication
    /// and authorization are the same: send `Authorization: Bearer <token>`.
    pub async fn bind_http(&self, addr: std::net::SocketAddr) -> std::io::Result<Server> {
        let listener = std::net::TcpListener::bind(addr)?;
        start(self.clone(), listener, false)
    }
}

fn start(api: FakeApi, listener: std::net::TcpListener, tls: bool) -> std::io::Result<Server> {
    listener.set_nonblocking(true)?;
    let listener = tokio::net::TcpListener::from_std(listener)?;
    let addr = listener.local_addr()?;
    let acceptor =
        tls.then(|| tokio_rustls::TlsAcceptor::from(crate::tls::server_config(addr.ip())));
    let (stop, stop_rx) = watch::channel(false);
    let task = tokio::spawn(accept_loop(api, listener, acceptor, stop_rx));
    Ok(Server {
        addr,
        tls,
        stop,
        task: Some(task),
    })
}

async fn accept_loop(
    api: FakeApi,
    listener: tokio::net::TcpListener,
    acceptor: Option<tokio_rustls::TlsAcceptor>,
    mut stop: watch::Receiver<bool>,
) {
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            // Err means the Server was dropped without signalling: stop as well.
            _ = async { let _ = stop.wait_for(|s| *s).await; } => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let _ = stream.set_nodelay(true);
                    let api = api.clone();
                    match acceptor.clone() {
                        None => conns.spawn(serve_conn(api, stream, false)),
                        // The handshake runs in the connection's task: a client that
                        // stalls in it holds up nobody else.
                        Some(acc) => conns.spawn(async move {
                            match acc.accept(stream).await {
                                Ok(tls) => serve_conn(api, tls, true).await,
                                Err(e) => tracing::debug!("fakeapi TLS handshake failed: {e}"),
                            }
                        }),
                    };
                }
                Err(e) => {
                    // E.g. EMFILE: back off instead of spinning.
                    tracing::warn!("fakeapi accept failed: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
            },
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
    drop(listener);
    conns.shutdown().await;
}

async fn serve_conn<S>(api: FakeApi, stream: S, tls: bool)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let svc = hyper::service::service_fn(move |req| {
        let api = api.clone();
        async move { Ok::<_, Infallible>(handle(api, req, tls).await) }
    });
    if let Err(e) = hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(stream), svc)
        .await
    {
        tracing::debug!("fakeapi connection ended: {e}");
    }
}

/// Fault injection and request logging around the router.
async fn handle(api: FakeApi, req: hyper::Request<Incoming>, tls: bool) -> hyper::Response<Body> {
    let user = crate::routes::authenticate(&api, req.headers());
    let mut entry = Request {
        tls,
        user: match &user {
            Ok(u) => u.name.clone(),
            Err(_) => String::new(),
        },
        method: req.method().to_string(),
        path: req.uri().path().to_string(),
        query: req.uri().query().unwrap_or_default().to_string(),
        accept: req
            .headers()
            .get(hyper::header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
        status: 0,
        error: None,
    };
    let fault = api.lock().fault.clone();
    let result = match fault {
        Fault::None => routes::route(&api, req, user).await,
        Fault::Delay(d) => {
            tokio::time::sleep(d).await;
            routes::route(&api, req, user).await
        }
        Fault::Status(code) => Err(crate::ApiError::from_code(code)),
        Fault::Hang => {
            api.lock().requests.push(entry);
            // Dropped together with the connection when the server shuts down.
            return std::future::pending().await;
        }
    };
    let resp = match result {
        Ok(resp) => resp,
        Err(e) => {
            let resp = request::error_response(&e);
            entry.error = Some(e.message);
            resp
        }
    };
    entry.status = resp.status().as_u16();
    tracing::debug!(method = %entry.method, path = %entry.path, query = %entry.query, status = entry.status, "fakeapi");
    api.lock().requests.push(entry);
    resp
}
