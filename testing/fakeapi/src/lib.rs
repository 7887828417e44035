//! In-process fake Kubernetes API server for tests.
//!
//! It speaks real HTTP/1.1 with real list/watch semantics (global resourceVersion,
//! history replay, 410 Gone after compaction, bookmarks, streaming lists, pagination,
//! metadata-only responses), so the unmodified kube-rs client and `kube_runtime::watcher`
//! can be pointed at it. It is at least as strict as kube-apiserver where edgevip depends
//! on it:
//!
//! - HTTPS with a certificate from a per-process CA ([`ca_pem`]); bearer tokens name the
//!   user ([`EDGEVIP_TOKEN`] is edgevip's ServiceAccount, [`ADMIN_TOKEN`] a cluster admin).
//! - RBAC from the shipped manifests ([`Rbac::shipped`]): anything they do not grant is a
//!   403 worded like the real server's (rbac.rs).
//! - Every object written, through the API or [`FakeApi::apply`], is decoded strictly into
//!   its k8s-openapi type (unknown fields refused) and validated (validation.rs); a Node
//!   without a Ready condition shows Ready=Unknown (admission.rs).
//! - The real field-selector allowlist per kind (selector.rs); resourceVersion
//!   preconditions on every update and patch, `/status` included (store.rs); JSON merge
//!   and JSON patch only: strategic merge and server-side apply are 415 (write.rs).
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! let api = edgevip_fakeapi::FakeApi::new();
//! let server = api.bind("127.0.0.1:0".parse().unwrap()).await?;
//! api.apply(serde_json::json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"}}));
//! // HTTPS as edgevip's ServiceAccount:
//! let client = kube::Client::try_from(server.kube_config()).unwrap();
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]

mod admission;
mod client;
mod list;
mod patch;
pub mod rbac;
mod request;
mod resources;
mod routes;
mod schema;
mod selector;
mod server;
mod status;
mod store;
mod tls;
mod validation;
mod watch;
mod write;

pub use client::{
    ADMIN_TOKEN, EDGEVIP_TOKEN, ca_pem, kube_config, kube_config_as, kubeconfig_yaml,
};
pub use rbac::{Rbac, User};
pub use resources::{RESOURCES, ResourceInfo};
pub use server::Server;
pub use status::ApiError;

use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use store::Store;

/// A failure injected into every request until reset with `Fault::None`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Fault {
    #[default]
    None,
    /// Answer with this HTTP code and a `Status` body (e.g. 500, 503, 429).
    Status(u16),
    /// Sleep, then answer normally.
    Delay(Duration),
    /// Accept the request but never answer (until the server shuts down).
    Hang,
}

/// One logged HTTP request. `status` is 0 for requests left unanswered by `Fault::Hang`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub method: String,
    pub path: String,
    /// Raw query string (may start with `&`, as kube-rs sends it).
    pub query: String,
    pub accept: Option<String>,
    pub status: u16,
    /// The authenticated user (`system:anonymous` without a token, empty for a bad one).
    pub user: String,
    /// Whether the request came over HTTPS.
    pub tls: bool,
    /// The `Status` message of a refused request (e.g. the 403's wording).
    pub error: Option<String>,
}

impl Request {
    /// Decoded value of a query parameter (last occurrence wins).
    pub fn param(&self, key: &str) -> Option<String> {
        request::parse_query(&self.query)
            .into_iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v)
    }

    /// Whether this was a watch request (`watch=true` / `watch=1`).
    pub fn is_watch(&self) -> bool {
        self.param("watch").is_some_and(|v| request::truthy(&v))
    }
}

struct State {
    store: Store,
    fault: Fault,
    requests: Vec<Request>,
    bookmark_interval: Duration,
    tokens: BTreeMap<String, User>,
    rbac: Rbac,
}

struct Inner {
    state: Mutex<State>,
    /// Latest resourceVersion; watch streams wake on every commit.
    changed: tokio::sync::watch::Sender<u64>,
    /// Generation bumped by `close_watches()`; streams end when it moves.
    closer: tokio::sync::watch::Sender<u64>,
}

/// Shared handle to the fake cluster state. Cheap to clone; every clone and every server
/// started from it see the same objects.
#[derive(Clone)]
pub struct FakeApi {
    inner: Arc<Inner>,
}

impl Default for FakeApi {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for FakeApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeApi")
            .field("resource_version", &self.resource_version())
            .finish_non_exhaustive()
    }
}

impl FakeApi {
    pub fn new() -> Self {
        Self {
            inner: Arc::new(Inner {
                state: Mutex::new(State {
                    store: Store::default(),
                    fault: Fault::None,
                    requests: Vec::new(),
                    bookmark_interval: Duration::from_secs(1),
                    tokens: client::default_tokens().into_iter().collect(),
                    rbac: Rbac::shipped(),
                }),
                changed: tokio::sync::watch::Sender::new(0),
                closer: tokio::sync::watch::Sender::new(0),
            }),
        }
    }

    /// A test that panicked while holding the lock must not wedge every other user.
    fn lock(&self) -> MutexGuard<'_, State> {
        self.inner.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Run a store mutation and wake watchers if it committed anything.
    fn mutate<T>(&self, f: impl FnOnce(&mut Store) -> T) -> T {
        let (out, rv) = {
            let mut st = self.lock();
            let out = f(&mut st.store);
            (out, st.store.rv())
        };
        self.inner.changed.send_if_modified(|cur| {
            let moved = *cur != rv;
            *cur = rv;
            moved
        });
        out
    }

    /// Serve HTTPS on an already bound listener (e.g. bound inside a network namespace),
    /// with a certificate from [`ca_pem`]'s CA for the listener's address. Must be called
    /// inside a tokio runtime. Panics if the listener cannot be registered with tokio; see
    /// [`FakeApi::try_serve`].
    pub fn serve(&self, listener: std::net::TcpListener) -> Server {
        self.try_serve(listener)
            .unwrap_or_else(|e| panic!("FakeApi::serve: cannot use listener: {e}"))
    }

    pub fn try_serve(&self, listener: std::net::TcpListener) -> std::io::Result<Server> {
        server::start(self.clone(), listener, true)
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
        server::start(self.clone(), listener, false)
    }

    /// Replace the authorization policy (the default is [`Rbac::shipped`]).
    pub fn set_rbac(&self, rbac: Rbac) {
        self.lock().rbac = rbac;
    }

    /// Accept `token` as `user` (the defaults are [`EDGEVIP_TOKEN`] and [`ADMIN_TOKEN`]).
    pub fn add_token(&self, token: &str, user: User) {
        self.lock().tokens.insert(token.to_string(), user);
    }

    /// Create or replace an object given as JSON (apiVersion, kind, metadata.name,
    /// optional metadata.namespace; namespaced kinds default to "default"). Stamps
    /// resourceVersion, uid, creationTimestamp and generation, emits ADDED/MODIFIED.
    /// Returns the new resourceVersion. Panics on an object without identity.
    pub fn apply(&self, obj: Value) -> u64 {
        self.try_apply(obj)
            .unwrap_or_else(|e| panic!("FakeApi::apply: {e}"))
    }

    pub fn try_apply(&self, obj: Value) -> Result<u64, ApiError> {
        self.mutate(|s| s.upsert(obj)).map(|o| store::rv_of(&o))
    }

    /// Delete an object; emits DELETED. False if it did not exist.
    pub fn delete(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
    ) -> bool {
        let (ty, key) = Self::ident(api_version, kind, namespace, name);
        self.mutate(|s| s.delete(ty, key)).is_some()
    }

    pub fn get(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
    ) -> Option<Value> {
        let (ty, key) = Self::ident(api_version, kind, namespace, name);
        self.lock().store.get(&ty, &key).cloned()
    }

    /// All objects of a type across namespaces, ordered by (namespace, name).
    pub fn list(&self, api_version: &str, kind: &str) -> Vec<Value> {
        let ty = (api_version.to_string(), kind.to_string());
        self.lock().store.objects(&ty).cloned().collect()
    }

    /// Current global resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.lock().store.rv()
    }

    /// Forget watch history: watches (and exact lists / continue tokens) from an older
    /// resourceVersion now get 410 Gone. Already open watches keep streaming.
    pub fn compact(&self) {
        self.lock().store.compact();
    }

    /// End every open watch stream cleanly (terminating chunk); clients must re-watch.
    pub fn close_watches(&self) {
        self.inner.closer.send_modify(|g| *g += 1);
    }

    pub fn set_fault(&self, fault: Fault) {
        self.lock().fault = fault;
    }

    pub fn requests(&self) -> Vec<Request> {
        self.lock().requests.clone()
    }

    pub fn clear_requests(&self) {
        self.lock().requests.clear();
    }

    /// Period of BOOKMARK events on watches that asked for `allowWatchBookmarks=true`.
    pub fn set_bookmark_interval(&self, d: std::time::Duration) {
        self.lock().bookmark_interval = d;
    }

    fn ident(
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
    ) -> (store::TypeKey, store::ObjKey) {
        // Same namespace normalisation as apply(), so get(.., None, ..) finds cluster-scoped
        // objects and namespaced ones default to "default".
        let ns = match resources::by_kind(api_version, kind) {
            Some(info) if !info.namespaced => String::new(),
            Some(_) => namespace.unwrap_or("default").to_string(),
            None => namespace.unwrap_or_default().to_string(),
        };
        (
            (api_version.to_string(), kind.to_string()),
            (ns, name.to_string()),
        )
    }
}
