//! Watch wire format checked at the HTTP level (what kube hides: bookmarks, replay order,
//! 410 events, stream termination), plus faults and shutdown.

mod common;

use common::*;
use edgevip_fakeapi::Fault;
use futures::StreamExt;
use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, WatchEvent, WatchParams};
use serde_json::json;
use std::time::{Duration, Instant};

/// Chunked-encoding terminator: the stream ended cleanly, not by a dropped connection.
const LAST_CHUNK: &str = "\r\n0\r\n\r\n";

fn types(events: &[serde_json::Value]) -> Vec<String> {
    events
        .iter()
        .map(|e| {
            let name = e["object"]["metadata"]["name"].as_str().unwrap_or("-");
            format!("{} {name}", e["type"].as_str().unwrap_or("?"))
        })
        .collect()
}

#[tokio::test]
async fn bookmarks_only_when_asked() {
    let env = env().await;
    env.api.set_bookmark_interval(Duration::from_millis(100));
    let rv = env.api.apply(node("a", json!({})));
    let addr = env.http.addr();
    let with = within(
        3,
        "bookmark",
        raw(
            addr,
            "GET",
            &format!("/api/v1/nodes?&watch=true&allowWatchBookmarks=true&resourceVersion={rv}"),
            &[],
            "",
            |s| s.contains("BOOKMARK"),
        ),
    )
    .await;
    let bm = events_of(&with);
    assert_eq!(bm.len(), 1, "{with}");
    assert_eq!(bm[0]["type"], "BOOKMARK");
    assert_eq!(
        bm[0]["object"],
        json!({"kind": "Node", "apiVersion": "v1",
        "metadata": {"resourceVersion": rv.to_string()}})
    );
    assert!(
        with.contains("Transfer-Encoding: chunked") || with.contains("transfer-encoding: chunked"),
        "{with}"
    );

    // Without allowWatchBookmarks: nothing but the clean end after timeoutSeconds.
    let start = Instant::now();
    let without = within(
        3,
        "timeout end",
        raw(
            addr,
            "GET",
            &format!("/api/v1/nodes?watch=1&timeoutSeconds=1&resourceVersion={rv}"),
            &[],
            "",
            eof,
        ),
    )
    .await;
    assert!(
        start.elapsed() >= Duration::from_millis(900),
        "ended too early"
    );
    assert!(events_of(&without).is_empty(), "{without}");
    assert!(without.ends_with("0\r\n\r\n"), "clean end: {without:?}");
}

#[tokio::test]
async fn replay_from_resource_version_with_selector_transitions() {
    let env = env().await;
    let rv1 = env.api.apply(node("a", json!({"edge": "true"})));
    env.api.apply(node("b", json!({"edge": "true"})));
    env.api.apply(node("a", json!({"edge": "true", "x": "1"})));
    env.api.apply(node("c", json!({})));
    env.api.apply(node("c", json!({"edge": "true"})));
    env.api.apply(node("a", json!({})));
    env.api.delete("v1", "Node", None, "b");
    let addr = env.http.addr();
    let resp = within(3, "replay", raw(addr, "GET",
        &format!("/api/v1/nodes?watch=true&timeoutSeconds=1&labelSelector=edge%3Dtrue&resourceVersion={rv1}"),
        &[], "", eof)).await;
    let ev = events_of(&resp);
    assert_eq!(
        types(&ev),
        ["ADDED b", "MODIFIED a", "ADDED c", "DELETED a", "DELETED b"],
        "{resp}"
    );
    let rvs: Vec<u64> = ev
        .iter()
        .map(|e| {
            e["object"]["metadata"]["resourceVersion"]
                .as_str()
                .and_then(|s| s.parse().ok())
                .unwrap_or(0)
        })
        .collect();
    assert_eq!(
        rvs,
        [2, 3, 5, 6, 7],
        "every event carries the RV of its change"
    );

    // resourceVersion=0: synthetic ADDED for the current state, then live events.
    let live = tokio::spawn(raw(
        addr,
        "GET",
        "/api/v1/nodes?watch=true&resourceVersion=0",
        &[],
        "",
        |s| s.contains("\"name\":\"late\""),
    ));
    eventually(3, "watch open", || {
        env.api.requests().iter().filter(|r| r.is_watch()).count() == 2
    })
    .await;
    env.api.apply(node("late", json!({})));
    let resp = within(3, "live", live).await.expect("join");
    assert_eq!(
        types(&events_of(&resp)),
        ["ADDED a", "ADDED c", "ADDED late"]
    );
}

#[tokio::test]
async fn expired_resource_version_gets_410_event() {
    let env = env().await;
    let old = env.api.apply(node("a", json!({})));
    env.api.apply(node("b", json!({})));
    env.api.compact();
    let resp = within(
        3,
        "410",
        raw(
            env.http.addr(),
            "GET",
            &format!("/api/v1/nodes?watch=true&resourceVersion={old}"),
            &[],
            "",
            eof,
        ),
    )
    .await;
    assert_eq!(status_of(&resp), 200);
    let ev = events_of(&resp);
    assert_eq!(ev.len(), 1, "{resp}");
    assert_eq!(ev[0]["type"], "ERROR");
    let st = &ev[0]["object"];
    assert_eq!(
        (
            st["kind"].as_str(),
            st["code"].as_u64(),
            st["reason"].as_str()
        ),
        (Some("Status"), Some(410), Some("Expired"))
    );
    assert!(
        st["message"]
            .as_str()
            .unwrap_or_default()
            .contains("too old resource version")
    );
    assert!(resp.ends_with(LAST_CHUNK), "stream ends after the error");

    // Exact list at a compacted RV is 410 as well; the current RV is fine.
    let gone = within(
        3,
        "exact",
        raw(
            env.http.addr(),
            "GET",
            &format!("/api/v1/nodes?resourceVersion={old}&resourceVersionMatch=Exact"),
            &[],
            "",
            eof,
        ),
    )
    .await;
    assert_eq!(status_of(&gone), 410);
    let cur = env.api.resource_version();
    let ok = within(
        3,
        "watch at current",
        raw(
            env.http.addr(),
            "GET",
            &format!("/api/v1/nodes?watch=true&timeoutSeconds=1&resourceVersion={cur}"),
            &[],
            "",
            eof,
        ),
    )
    .await;
    assert!(events_of(&ok).is_empty(), "{ok}");
}

#[tokio::test]
async fn streaming_list_and_metadata_only() {
    let env = env().await;
    env.api
        .apply(configmap("ns", "a", json!({"secret": "payload"})));
    env.api.apply(configmap("other", "b", json!({})));
    let resp = within(3, "initial events", raw(env.http.addr(), "GET",
        "/api/v1/namespaces/ns/configmaps?watch=true&allowWatchBookmarks=true&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&resourceVersion=",
        &[("Accept", "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1")], "",
        |s| s.contains("initial-events-end"))).await;
    let ev = events_of(&resp);
    assert_eq!(types(&ev), ["ADDED a", "BOOKMARK -"], "{resp}");
    assert_eq!(ev[0]["object"]["kind"], "PartialObjectMetadata");
    assert_eq!(ev[0]["object"]["apiVersion"], "meta.k8s.io/v1");
    assert!(ev[0]["object"].get("data").is_none(), "metadata only");
    assert_eq!(
        ev[1]["object"]["metadata"]["annotations"]["k8s.io/initial-events-end"],
        "true"
    );
    assert_eq!(
        ev[1]["object"]["metadata"]["resourceVersion"],
        env.api.resource_version().to_string()
    );

    let list = within(
        3,
        "meta list",
        raw(
            env.http.addr(),
            "GET",
            "/api/v1/configmaps",
            &[(
                "Accept",
                "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1",
            )],
            "",
            eof,
        ),
    )
    .await;
    let body = body_of(&list);
    assert_eq!(body["kind"], "PartialObjectMetadataList");
    assert_eq!(body["items"].as_array().map(Vec::len), Some(2));
    assert_eq!(body["items"][1]["metadata"]["namespace"], "other");
}

#[tokio::test]
async fn close_watches_ends_streams_cleanly() {
    let env = env().await;
    let addr = env.http.addr();
    let open = tokio::spawn(raw(
        addr,
        "GET",
        "/api/v1/nodes?watch=true&resourceVersion=0",
        &[],
        "",
        eof,
    ));
    eventually(3, "watch open", || {
        env.api.requests().iter().any(|r| r.is_watch())
    })
    .await;
    env.api.close_watches();
    let resp = within(3, "closed", open).await.expect("join");
    assert!(resp.ends_with("0\r\n\r\n"), "terminating chunk: {resp:?}");
    // The server keeps serving new watches.
    env.api.apply(node("a", json!({})));
    let again = within(
        3,
        "new watch",
        raw(addr, "GET", "/api/v1/nodes?watch=true", &[], "", |s| {
            s.contains("ADDED")
        }),
    )
    .await;
    assert_eq!(types(&events_of(&again)), ["ADDED a"]);
}

#[tokio::test]
async fn shutdown_ends_kube_watch_and_closes_port() {
    let env = env().await;
    let nodes: Api<Node> = Api::all(env.client.clone());
    let mut stream = within(3, "watch", nodes.watch(&WatchParams::default(), "0"))
        .await
        .expect("watch")
        .boxed();
    env.api.apply(node("a", json!({})));
    let first = within(3, "event", stream.next()).await;
    assert!(
        matches!(first, Some(Ok(WatchEvent::Added(ref n))) if n.metadata.name.as_deref() == Some("a"))
    );
    let addr = env.server.addr();
    within(3, "shutdown", env.server.shutdown_and_wait()).await;
    // The stream ends (or errors) instead of hanging, and nothing listens any more.
    let rest = within(3, "stream end", async {
        let mut n = 0;
        while let Some(item) = stream.next().await {
            assert!(item.is_err(), "no events after shutdown");
            n += 1;
        }
        n
    })
    .await;
    assert!(rest <= 1);
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "port closed"
    );
}

#[tokio::test]
async fn hang_and_delay_faults() {
    let env = env().await;
    let addr = env.http.addr();
    env.api.set_fault(Fault::Hang);
    let hung = tokio::time::timeout(
        Duration::from_millis(300),
        raw(addr, "GET", "/api/v1/nodes", &[], "", eof),
    )
    .await;
    assert!(hung.is_err(), "no answer while hanging");
    assert_eq!(env.api.requests().last().map(|r| r.status), Some(0));

    env.api.set_fault(Fault::Delay(Duration::from_millis(200)));
    let start = Instant::now();
    let resp = within(
        3,
        "delayed",
        raw(addr, "GET", "/api/v1/nodes", &[], "", eof),
    )
    .await;
    assert!(start.elapsed() >= Duration::from_millis(200));
    assert_eq!(status_of(&resp), 200);

    env.api.set_fault(Fault::Status(500));
    let resp = within(3, "500", raw(addr, "GET", "/healthz", &[], "", eof)).await;
    assert_eq!(
        (status_of(&resp), body_of(&resp)["reason"].clone()),
        (500, json!("InternalError"))
    );
    env.api.set_fault(Fault::None);
    let resp = within(3, "ok", raw(addr, "GET", "/api/v1/nodes", &[], "", eof)).await;
    assert_eq!(body_of(&resp)["kind"], "NodeList");
}
