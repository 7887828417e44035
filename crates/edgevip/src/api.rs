//! The HTTP API: `/healthz`, `/readyz`, `/status` (JSON), `/metrics` (Prometheus text).
//!
//! A probe endpoint on a node at the cluster's front door: it must never answer on a VIP,
//! never hold more than a bounded number of connections (each with a bounded life), and
//! never be the reason VRRP starves of file descriptors or memory. See `limits`.

use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::engine::{Clock, Heartbeat};
use crate::metrics::Metrics;
use crate::status::Board;

#[derive(Clone)]
pub struct ApiState {
    pub board: Board,
    pub metrics: Metrics,
    pub heartbeat: Heartbeat,
    pub clock: Clock,
    /// `/readyz`: true once the desired state is known (file loaded, or caches synced).
    pub ready: tokio::sync::watch::Receiver<bool>,
    /// Extra `/status` section (Kubernetes mode).
    pub kubernetes: Option<tokio::sync::watch::Receiver<serde_json::Value>>,
}

/// `detail`: also serve `/status` (Service names, VIPs, backend addresses). The probe
/// listener on the node's address leaves it off unless the operator asks.
pub fn router(state: ApiState, detail: bool) -> Router {
    let r = Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics));
    let r = if detail {
        r.route("/status", get(status))
    } else {
        r
    };
    r.with_state(state)
}

/// Healthy while the engine's loop turned within the last few seconds.
async fn healthz(State(s): State<ApiState>) -> Response {
    let age = s.clock.now_ms().saturating_sub(s.heartbeat.last_ms());
    if age <= Duration::from_secs(5).as_millis() as u64 {
        (StatusCode::OK, "ok\n").into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("event loop stalled for {age} ms\n"),
        )
            .into_response()
    }
}

/// Ready once the desired state is known (in Kubernetes mode, after the first full list of
/// the ConfigMap and the edge nodes) and every instance runs: a rolling update waits for
/// it before the next node, so a version that cannot start an instance stops the rollout.
async fn readyz(State(s): State<ApiState>) -> Response {
    if !*s.ready.borrow() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: desired state not known yet\n",
        )
            .into_response();
    }
    let failed = s.board.failed();
    if failed.is_empty() {
        return (StatusCode::OK, "ready\n").into_response();
    }
    let mut body = String::from("not ready:\n");
    for (name, error) in failed {
        body.push_str(&format!("instance {name} failed: {error}\n"));
    }
    (StatusCode::SERVICE_UNAVAILABLE, body).into_response()
}

async fn status(State(s): State<ApiState>) -> Response {
    let mut st = s.board.snapshot();
    st.kubernetes = s.kubernetes.as_ref().map(|k| k.borrow().clone());
    axum::Json(st).into_response()
}

async fn metrics(State(s): State<ApiState>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        s.metrics.encode(),
    )
        .into_response()
}

mod serve;
pub use serve::{Limits, serve};
