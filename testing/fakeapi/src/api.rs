//! The shared state of one fake cluster: objects (store.rs), the authorization policy and
//! tokens, fault injection and the request log, behind one lock, with the channels that
//! wake watch streams. Serving it over the network is server.rs's job.

use crate::client;
use crate::rbac::{Rbac, User};
use crate::request;
use crate::status::ApiError;
use crate::store::{self, Store};
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

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

pub(crate) struct State {
    pub(crate) store: Store,
    pub(crate) fault: Fault,
    pub(crate) requests: Vec<Request>,
    pub(crate) bookmark_interval: Duration,
    pub(crate) tokens: BTreeMap<String, User>,
    pub(crate) rbac: Rbac,
}

pub(crate) struct Inner {
    pub(crate) state: Mutex<State>,
    /// Latest resourceVersion; watch streams wake on every commit.
    pub(crate) changed: tokio::sync::watch::Sender<u64>,
    /// Generation bumped by `close_watches()`; streams end when it moves.
    pub(crate) closer: tokio::sync::watch::Sender<u64>,
}

/// Shared handle to the fake cluster state. Cheap to clone; every clone and every server
/// started from it see the same objects.
#[derive(Clone)]
pub struct FakeApi {
    pub(crate) inner: Arc<Inner>,
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
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.inner.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Run a store mutation and wake watchers if it committed anything.
    pub(crate) fn mutate<T>(&self, f: impl FnOnce(&mut Store) -> T) -> T {
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
        let (ty, key) = self.ident(api_version, kind, namespace, name);
        self.mutate(|s| s.delete(ty, key)).is_some()
    }

    pub fn get(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
    ) -> Option<Value> {
        let (ty, key) = self.ident(api_version, kind, namespace, name);
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
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
    ) -> (store::TypeKey, store::ObjKey) {
        // Same namespace normalisation as apply(), so get(.., None, ..) finds cluster-scoped
        // objects and namespaced ones default to "default".
        let info = self.lock().store.resource_by_kind(api_version, kind);
        let ns = match info {
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
