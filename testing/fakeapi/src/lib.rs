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
//! - CustomResourceDefinitions (crd.rs): creating one serves its resources (discovery,
//!   every verb, the status subresource, RBAC by group/resource), checked against the
//!   CRD's structural schema (pruning, defaults, types, required, enum, pattern, bounds);
//!   deleting it deletes them.
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
mod api;
mod client;
mod crd;
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

pub use api::{FakeApi, Fault, Request};
pub use client::{
    ADMIN_TOKEN, EDGEVIP_TOKEN, ca_pem, kube_config, kube_config_as, kubeconfig_yaml,
};
pub use rbac::{Rbac, SHIPPED_MANIFESTS, User};
pub use resources::{RESOURCES, ResourceInfo};
pub use server::Server;
pub use status::ApiError;
