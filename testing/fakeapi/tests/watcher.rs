//! `kube_runtime::watcher` / `metadata_watcher` / reflectors against the fake.

mod common;

use common::*;
use edgevip_fakeapi::{FakeApi, Fault};
use futures::{Stream, StreamExt};
use k8s_openapi::api::core::v1::{ConfigMap, Node};
use kube::api::Api;
#[allow(deprecated)]
use kube_runtime::metadata_watcher;
use kube_runtime::reflector::{self, Store};
use kube_runtime::{WatchStreamExt, watcher};
use serde_json::json;
use std::sync::{Arc, Mutex};
use std::time::Duration;

type Log = Arc<Mutex<Vec<String>>>;

/// Drive a watcher stream in the background, recording a short description of each item.
fn drive<S, T, E>(stream: S) -> (Log, tokio::task::JoinHandle<()>)
where
    S: Stream<Item = Result<T, E>> + Send + 'static,
    T: std::fmt::Debug,
    E: std::fmt::Display,
{
    let log: Log = Arc::default();
    let l = log.clone();
    let task = tokio::spawn(async move {
        let mut stream = std::pin::pin!(stream);
        while let Some(item) = stream.next().await {
            let s = match item {
                Ok(ev) => format!("ok {ev:?}"),
                Err(e) => format!("err {e}"),
            };
            l.lock().expect("log").push(s);
        }
    });
    (log, task)
}

fn names<K>(store: &Store<K>) -> Vec<String>
where
    K: kube::Resource + Clone + 'static,
    K::DynamicType: Eq + std::hash::Hash + Clone,
{
    let mut v: Vec<String> = store
        .state()
        .iter()
        .filter_map(|o| o.meta().name.clone())
        .collect();
    v.sort();
    v
}

fn label(store: &Store<Node>, name: &str, key: &str) -> Option<String> {
    store
        .state()
        .iter()
        .find(|n| n.metadata.name.as_deref() == Some(name))
        .and_then(|n| n.metadata.labels.as_ref()?.get(key).cloned())
}

fn list_requests(api: &FakeApi, path: &str) -> usize {
    api.requests()
        .iter()
        .filter(|r| r.method == "GET" && r.path == path && !r.is_watch())
        .count()
}

#[tokio::test]
async fn label_watcher_sees_add_modify_delete_and_unlabel() {
    let env = env().await;
    env.api.apply(node("edge-a", json!({"edgenode": "true"})));
    env.api.apply(node("worker", json!({})));
    let nodes: Api<Node> = Api::all(env.client.clone());
    let (store, writer) = reflector::store();
    let stream = reflector::reflector(
        writer,
        watcher(nodes, watcher::Config::default().labels("edgenode=true")),
    );
    let (_log, task) = drive(stream);

    within(5, "initial list", store.wait_until_ready())
        .await
        .expect("ready");
    assert_eq!(names(&store), ["edge-a"]);

    env.api.apply(node("edge-b", json!({"edgenode": "true"})));
    eventually(5, "edge-b added", || names(&store) == ["edge-a", "edge-b"]).await;

    env.api
        .apply(node("edge-b", json!({"edgenode": "true", "zone": "z1"})));
    eventually(5, "edge-b modified", || {
        label(&store, "edge-b", "zone").as_deref() == Some("z1")
    })
    .await;

    // Labelled into the selector: appears; labelled out: disappears.
    env.api.apply(node("worker", json!({"edgenode": "true"})));
    eventually(5, "worker joins", || {
        names(&store).contains(&"worker".to_string())
    })
    .await;
    env.api.apply(node("edge-a", json!({"role": "gone"})));
    eventually(5, "edge-a unlabelled", || {
        names(&store) == ["edge-b", "worker"]
    })
    .await;

    assert!(env.api.delete("v1", "Node", None, "edge-b"));
    eventually(5, "edge-b deleted", || names(&store) == ["worker"]).await;

    // It really watched: one list, then watch requests with the selector and bookmarks.
    let reqs = env.api.requests();
    assert_eq!(list_requests(&env.api, "/api/v1/nodes"), 1, "{reqs:?}");
    let w = reqs.iter().find(|r| r.is_watch()).expect("a watch request");
    assert_eq!(w.param("labelSelector").as_deref(), Some("edgenode=true"));
    assert_eq!(w.param("allowWatchBookmarks").as_deref(), Some("true"));
    task.abort();
}

#[tokio::test]
async fn relist_after_compaction_410() {
    let env = env().await;
    for n in ["a", "b", "c"] {
        env.api.apply(node(n, json!({"edgenode": "true"})));
    }
    let nodes: Api<Node> = Api::all(env.client.clone());
    let (store, writer) = reflector::store();
    let stream = reflector::reflector(writer, watcher(nodes, watcher::Config::default()));
    let (log, task) = drive(stream);
    within(5, "ready", store.wait_until_ready())
        .await
        .expect("ready");
    eventually(5, "watch open", || {
        env.api.requests().iter().any(|r| r.is_watch())
    })
    .await;

    // Delay the re-watch so the changes and the compaction happen while the client is
    // disconnected: its resourceVersion is then older than the history and it gets 410.
    env.api.set_fault(Fault::Delay(Duration::from_millis(300)));
    env.api.close_watches();
    env.api.delete("v1", "Node", None, "a");
    env.api.apply(node("b", json!({"edgenode": "false"})));
    env.api.apply(node("d", json!({})));
    env.api.compact();
    env.api.set_fault(Fault::None);

    eventually(5, "relisted", || names(&store) == ["b", "c", "d"]).await;
    assert_eq!(label(&store, "b", "edgenode").as_deref(), Some("false"));
    assert!(
        log.lock()
            .expect("log")
            .iter()
            .any(|l| l.starts_with("err") && l.contains("Expired")),
        "watcher must have seen the 410: {:?}",
        log.lock().expect("log")
    );
    assert_eq!(
        list_requests(&env.api, "/api/v1/nodes"),
        2,
        "exactly one re-list"
    );
    task.abort();
}

#[tokio::test]
async fn paged_initial_list() {
    let env = env().await;
    for i in 0..5 {
        env.api.apply(node(&format!("n{i}"), json!({})));
    }
    let nodes: Api<Node> = Api::all(env.client.clone());
    let (store, writer) = reflector::store();
    let stream = reflector::reflector(
        writer,
        watcher(nodes, watcher::Config::default().page_size(2)),
    );
    let (_log, task) = drive(stream);
    within(5, "ready", store.wait_until_ready())
        .await
        .expect("ready");
    assert_eq!(names(&store), ["n0", "n1", "n2", "n3", "n4"]);
    let lists: Vec<_> = env
        .api
        .requests()
        .into_iter()
        .filter(|r| r.path == "/api/v1/nodes" && !r.is_watch())
        .collect();
    assert_eq!(lists.len(), 3, "{lists:?}");
    assert!(
        lists
            .iter()
            .all(|r| r.param("limit").as_deref() == Some("2"))
    );
    assert_eq!(
        lists
            .iter()
            .filter(|r| r.param("continue").is_some())
            .count(),
        2
    );
    // And it keeps watching after paging.
    env.api.apply(node("n5", json!({})));
    eventually(5, "n5", || names(&store).len() == 6).await;
    task.abort();
}

#[tokio::test]
async fn streaming_list_watcher() {
    let env = env().await;
    env.api.apply(node("a", json!({})));
    env.api.apply(node("b", json!({})));
    let nodes: Api<Node> = Api::all(env.client.clone());
    let (store, writer) = reflector::store();
    let stream = reflector::reflector(
        writer,
        watcher(nodes, watcher::Config::default().streaming_lists()),
    );
    let (_log, task) = drive(stream);
    within(5, "ready", store.wait_until_ready())
        .await
        .expect("ready");
    assert_eq!(names(&store), ["a", "b"]);
    env.api.delete("v1", "Node", None, "a");
    eventually(5, "a deleted", || names(&store) == ["b"]).await;
    let reqs = env.api.requests();
    assert_eq!(
        list_requests(&env.api, "/api/v1/nodes"),
        0,
        "no list with streaming lists"
    );
    assert!(
        reqs.iter()
            .any(|r| r.param("sendInitialEvents").as_deref() == Some("true"))
    );
    task.abort();
}

#[tokio::test]
#[allow(deprecated)] // metadata_watcher is what the brief asks for; the new form is tested below
async fn metadata_watcher_gets_partial_objects() {
    let env = env().await;
    env.api
        .apply(configmap("m", "one", json!({"big": "payload"})));
    let cms: Api<ConfigMap> = Api::namespaced(env.client.clone(), "m");
    let (store, writer) = reflector::store();
    let stream = reflector::reflector(
        writer,
        metadata_watcher(cms.clone(), watcher::Config::default()),
    );
    let (_log, task) = drive(stream);
    within(5, "ready", store.wait_until_ready())
        .await
        .expect("ready");
    assert_eq!(names(&store), ["one"]);
    env.api
        .apply(json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "two", "namespace": "m", "labels": {"x": "y"}}}));
    eventually(5, "two", || names(&store) == ["one", "two"]).await;
    let two = store
        .state()
        .into_iter()
        .find(|o| o.metadata.name.as_deref() == Some("two"))
        .expect("two");
    assert_eq!(
        two.metadata
            .labels
            .as_ref()
            .and_then(|l| l.get("x"))
            .map(String::as_str),
        Some("y")
    );
    assert_eq!(
        two.types.as_ref().map(|t| t.kind.as_str()),
        Some("PartialObjectMetadata")
    );

    let reqs = env.api.requests();
    let accept = |watch: bool| {
        reqs.iter()
            .find(|r| r.is_watch() == watch)
            .and_then(|r| r.accept.clone())
            .unwrap_or_default()
    };
    assert!(
        accept(false).contains("as=PartialObjectMetadataList"),
        "{reqs:?}"
    );
    assert!(
        accept(true).contains("as=PartialObjectMetadata"),
        "{reqs:?}"
    );
    let list = within(5, "list_metadata", cms.list_metadata(&Default::default()))
        .await
        .expect("list");
    assert_eq!(list.items.len(), 2);
    task.abort();
}

#[tokio::test]
async fn watcher_recovers_from_503_with_backoff() {
    let env = env().await;
    env.api.apply(node("a", json!({})));
    env.api.set_fault(Fault::Status(503));
    // Without kube's built-in retry layer the 503 surfaces as a watcher error.
    let client = client_with(env.server.addr(), |c| c.default_retry = false);
    let nodes: Api<Node> = Api::all(client);
    let (store, writer) = reflector::store();
    let stream =
        reflector::reflector(writer, watcher(nodes, watcher::Config::default())).default_backoff();
    let (log, task) = drive(stream);
    eventually(5, "a 503 error", || {
        log.lock()
            .expect("log")
            .iter()
            .any(|l| l.starts_with("err"))
    })
    .await;
    assert!(store.state().is_empty());
    let reqs = env.api.requests();
    assert!(
        !reqs.is_empty() && reqs.iter().all(|r| r.status == 503),
        "{reqs:?}"
    );
    env.api.set_fault(Fault::None);
    within(5, "recovered", store.wait_until_ready())
        .await
        .expect("ready");
    assert_eq!(names(&store), ["a"]);
    env.api.apply(node("b", json!({})));
    eventually(5, "live after recovery", || names(&store) == ["a", "b"]).await;
    task.abort();
}

#[tokio::test]
async fn default_client_retries_503_transparently() {
    let env = env().await;
    env.api.apply(node("a", json!({})));
    env.api.set_fault(Fault::Status(503));
    let nodes: Api<Node> = Api::all(env.client.clone());
    let (store, writer) = reflector::store();
    let stream = reflector::reflector(writer, watcher(nodes, watcher::Config::default()));
    let (log, task) = drive(stream);
    eventually(5, "retried 503s", || {
        env.api
            .requests()
            .iter()
            .filter(|r| r.status == 503)
            .count()
            >= 2
    })
    .await;
    env.api.set_fault(Fault::None);
    within(5, "ready", store.wait_until_ready())
        .await
        .expect("ready");
    assert_eq!(names(&store), ["a"]);
    assert!(
        !log.lock()
            .expect("log")
            .iter()
            .any(|l| l.starts_with("err")),
        "retry layer hides 503"
    );
    task.abort();
}

#[tokio::test]
async fn partial_object_meta_api_watcher() {
    use kube::core::PartialObjectMeta;
    let env = env().await;
    env.api.apply(node("a", json!({"edgenode": "true"})));
    let nodes: Api<PartialObjectMeta<Node>> = Api::all(env.client.clone());
    let (store, writer) = reflector::store();
    let stream = reflector::reflector(
        writer,
        watcher(nodes, watcher::Config::default().labels("edgenode")),
    );
    let (_log, task) = drive(stream);
    within(5, "ready", store.wait_until_ready())
        .await
        .expect("ready");
    assert_eq!(names(&store), ["a"]);
    env.api.apply(node("a", json!({})));
    eventually(5, "a unlabelled", || names(&store).is_empty()).await;
    task.abort();
}
