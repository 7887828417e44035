//! Non-watch verbs through the real kube client (and raw HTTP where kube hides details).

mod common;

use common::*;
use k8s_openapi::api::core::v1::{ConfigMap, Service};
use k8s_openapi::api::events::v1::Event as K8sEvent;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube_runtime::events::{Event, EventType, Recorder, Reporter};
use serde_json::json;
use std::collections::BTreeMap;

fn cm(name: &str, k: &str, v: &str) -> ConfigMap {
    ConfigMap {
        metadata: kube::api::ObjectMeta {
            name: Some(name.into()),
            labels: Some(BTreeMap::from([("app".to_string(), "web".to_string())])),
            ..Default::default()
        },
        data: Some(BTreeMap::from([(k.to_string(), v.to_string())])),
        ..Default::default()
    }
}

fn api_code(e: kube::Error) -> (u16, String) {
    match e {
        kube::Error::Api(s) => (s.code, s.reason),
        other => panic!("expected an API error, got {other:?}"),
    }
}

#[tokio::test]
async fn configmap_lifecycle() {
    let env = env().await;
    let cms: Api<ConfigMap> = Api::namespaced(env.client.clone(), "ns1");
    within(5, "crud", async {
        let created = cms
            .create(&PostParams::default(), &cm("a", "k", "1"))
            .await
            .expect("create");
        let rv1 = created.metadata.resource_version.clone().expect("rv");
        assert_eq!(created.metadata.namespace.as_deref(), Some("ns1"));
        assert!(created.metadata.uid.is_some() && created.metadata.creation_timestamp.is_some());
        assert_eq!(created.metadata.generation, Some(1));

        let dup = cms.create(&PostParams::default(), &cm("a", "k", "1")).await;
        assert_eq!(
            api_code(dup.expect_err("duplicate")),
            (409, "AlreadyExists".into())
        );

        let got = cms.get("a").await.expect("get");
        assert_eq!(
            got.data
                .as_ref()
                .and_then(|d| d.get("k"))
                .map(String::as_str),
            Some("1")
        );
        assert_eq!(api_code(cms.get("nope").await.expect_err("404")).0, 404);
        assert!(cms.get_opt("nope").await.expect("get_opt").is_none());

        // replace with the current RV works, with a stale RV conflicts.
        let mut next = got.clone();
        next.data = Some(BTreeMap::from([("k".into(), "2".into())]));
        let replaced = cms
            .replace("a", &PostParams::default(), &next)
            .await
            .expect("replace");
        assert_ne!(
            replaced.metadata.resource_version.as_deref(),
            Some(rv1.as_str())
        );
        assert_eq!(replaced.metadata.generation, Some(2));
        let stale = cms.replace("a", &PostParams::default(), &next).await;
        assert_eq!(
            api_code(stale.expect_err("stale")),
            (409, "Conflict".into())
        );

        let patched = cms
            .patch(
                "a",
                &PatchParams::default(),
                &Patch::Merge(
                    json!({"data": {"k": null, "x": "y"}, "metadata": {"labels": {"p": "q"}}}),
                ),
            )
            .await
            .expect("merge patch");
        assert_eq!(
            patched.data,
            Some(BTreeMap::from([("x".into(), "y".into())]))
        );
        assert_eq!(
            patched
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get("p"))
                .map(String::as_str),
            Some("q")
        );
        assert_eq!(
            patched.metadata.uid, created.metadata.uid,
            "identity survives patches"
        );

        // Strategic merge and server-side apply are not implemented: 415, never a silent
        // plain merge a real server would not do.
        let apply = cms
            .patch(
                "a",
                &PatchParams::apply("test").force(),
                &Patch::Apply(json!({"apiVersion": "v1", "kind": "ConfigMap",
                                        "metadata": {"name": "a"}, "data": {"z": "1"}})),
            )
            .await;
        assert_eq!(api_code(apply.expect_err("apply")).0, 415);
        let strategic = cms
            .patch(
                "a",
                &PatchParams::default(),
                &Patch::Strategic(json!({"data": {"z": "1"}})),
            )
            .await;
        assert_eq!(api_code(strategic.expect_err("strategic")).0, 415);
        cms.create(&PostParams::default(), &cm("b", "z", "1"))
            .await
            .expect("create b");

        let all = cms.list(&ListParams::default()).await.expect("list");
        let names: Vec<_> = all
            .items
            .iter()
            .filter_map(|c| c.metadata.name.clone())
            .collect();
        assert_eq!(names, ["a", "b"]);
        let labelled = cms
            .list(&ListParams::default().labels("p=q"))
            .await
            .expect("list labels");
        assert_eq!(labelled.items.len(), 1);
        let by_field = cms
            .list(&ListParams::default().fields("metadata.name!=a"))
            .await
            .expect("fields");
        assert_eq!(
            by_field
                .items
                .iter()
                .filter_map(|c| c.metadata.name.as_deref())
                .collect::<Vec<_>>(),
            ["b"]
        );
        assert_eq!(
            all.metadata.resource_version,
            Some(env.api.resource_version().to_string())
        );

        let deleted = cms
            .delete("a", &DeleteParams::default())
            .await
            .expect("delete");
        assert!(
            deleted
                .left()
                .is_some_and(|c| c.metadata.name.as_deref() == Some("a"))
        );
        assert!(env.api.get("v1", "ConfigMap", Some("ns1"), "a").is_none());
        assert_eq!(
            api_code(
                cms.delete("a", &DeleteParams::default())
                    .await
                    .expect_err("gone")
            )
            .0,
            404
        );
    })
    .await;
}

#[tokio::test]
async fn json_patch_and_errors_over_raw_http() {
    let env = env().await;
    env.api
        .apply(configmap("ns", "c", json!({"a": "1", "b": "2"})));
    let addr = env.http.addr();
    within(5, "raw requests", async {
        let patch = r#"[{"op":"replace","path":"/data/a","value":"9"},{"op":"remove","path":"/data/b"},{"op":"add","path":"/data/c","value":"3"}]"#;
        let resp = raw(addr, "PATCH", "/api/v1/namespaces/ns/configmaps/c",
                       &[("Content-Type", "application/json-patch+json")], patch, eof).await;
        assert_eq!(status_of(&resp), 200, "{resp}");
        assert_eq!(body_of(&resp)["data"], json!({"a": "9", "c": "3"}));

        // A failing op leaves the object untouched and answers with a Status.
        let resp = raw(addr, "PATCH", "/api/v1/namespaces/ns/configmaps/c",
                       &[("Content-Type", "application/json-patch+json")],
                       r#"[{"op":"remove","path":"/data/zzz"}]"#, eof).await;
        assert_eq!(status_of(&resp), 422);
        let st = body_of(&resp);
        assert_eq!((st["kind"].as_str(), st["status"].as_str(), st["code"].as_u64()),
                   (Some("Status"), Some("Failure"), Some(422)));
        let cur = env.api.get("v1", "ConfigMap", Some("ns"), "c").expect("still there");
        assert_eq!(cur["data"], json!({"a": "9", "c": "3"}));

        // Bad input never panics the server.
        for (method, path, ct, body, code) in [
            ("POST", "/api/v1/namespaces/ns/configmaps", "application/json", "{not json", 400),
            ("POST", "/api/v1/namespaces/ns/configmaps", "application/json", "[]", 400),
            ("POST", "/api/v1/namespaces/ns/configmaps", "application/json", r#"{"metadata":{}}"#, 422),
            ("GET", "/api/v1/namespaces/ns/widgets", "", "", 404),
            ("GET", "/api/v1/nodes?labelSelector=a%20b%20c", "", "", 400),
            ("GET", "/api/v1/nodes?watch=1&resourceVersion=abc", "", "", 400),
            ("GET", "/api/v1/nodes?continue=zz", "", "", 400),
            ("PATCH", "/api/v1/namespaces/ns/configmaps/c", "text/plain", "{}", 415),
            ("PUT", "/api/v1/namespaces/ns/configmaps/zz", "application/json", "{}", 404),
            ("GET", "/api/v1/namespaces/ns/nodes", "", "", 404),
            ("GET", "/nope", "", "", 404),
        ] {
            let resp = raw(addr, method, path, &[("Content-Type", ct)], body, eof).await;
            assert_eq!(status_of(&resp), code, "{method} {path}: {resp}");
            assert_eq!(body_of(&resp)["kind"], "Status", "{method} {path}");
        }
        let v = raw(addr, "GET", "/version", &[], "", eof).await;
        assert_eq!(body_of(&v)["major"], "1");
        assert_eq!(status_of(&raw(addr, "GET", "/healthz", &[], "", eof).await), 200);
    })
    .await;
    let server_alive = env
        .client
        .apiserver_version()
        .await
        .expect("version via kube");
    assert_eq!(server_alive.minor, "33");
}

#[tokio::test]
async fn service_status_subresource() {
    let env = env().await;
    env.api.apply(json!({"apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "ingress", "namespace": "edge"},
        "spec": {"type": "LoadBalancer", "ports": [{"port": 80}]}}));
    let svcs: Api<Service> = Api::namespaced(env.client.clone(), "edge");
    within(5, "status", async {
        let st = json!({"status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.100"}]}},
                        "spec": {"type": "ClusterIP"}});
        let out = svcs
            .patch_status("ingress", &PatchParams::default(), &Patch::Merge(&st))
            .await
            .expect("patch_status");
        let ip = out
            .status
            .and_then(|s| s.load_balancer)
            .and_then(|l| l.ingress)
            .and_then(|i| i.into_iter().next())
            .and_then(|i| i.ip);
        assert_eq!(ip.as_deref(), Some("192.0.2.100"));
        assert_eq!(
            out.spec.and_then(|s| s.type_).as_deref(),
            Some("LoadBalancer"),
            "a /status write must not change spec"
        );
        // ...and a main-resource write must not change status.
        let svc = svcs
            .patch(
                "ingress",
                &PatchParams::default(),
                &Patch::Merge(json!({"status": null, "metadata": {"labels": {"a": "b"}}})),
            )
            .await
            .expect("patch");
        assert!(svc.status.and_then(|s| s.load_balancer).is_some());
    })
    .await;
    let stored = env
        .api
        .get("v1", "Service", Some("edge"), "ingress")
        .expect("svc");
    assert_eq!(
        stored["status"]["loadBalancer"]["ingress"][0]["ip"],
        "192.0.2.100"
    );
}

#[tokio::test]
async fn paginated_list_is_a_consistent_snapshot() {
    let env = env().await;
    for i in 0..5 {
        env.api.apply(configmap(
            "p",
            &format!("c{i}"),
            json!({"i": i.to_string()}),
        ));
    }
    let cms: Api<ConfigMap> = Api::namespaced(env.client.clone(), "p");
    within(5, "pages", async {
        let first = cms
            .list(&ListParams::default().limit(2))
            .await
            .expect("page 1");
        assert_eq!(first.items.len(), 2);
        let tok = first.metadata.continue_.clone().expect("continue token");
        // Changes after the first page must not leak into the later pages.
        env.api.apply(configmap("p", "c3", json!({"i": "changed"})));
        env.api.delete("v1", "ConfigMap", Some("p"), "c4");
        let mut rest = Vec::new();
        let mut next = Some(tok);
        while let Some(t) = next {
            let page = cms
                .list(&ListParams::default().limit(2).continue_token(&t))
                .await
                .expect("page");
            assert_eq!(
                page.metadata.resource_version,
                first.metadata.resource_version
            );
            rest.extend(page.items);
            next = page.metadata.continue_.filter(|s| !s.is_empty());
        }
        let names: Vec<_> = rest
            .iter()
            .filter_map(|c| c.metadata.name.clone())
            .collect();
        assert_eq!(names, ["c2", "c3", "c4"]);
        assert_eq!(
            rest[1]
                .data
                .as_ref()
                .and_then(|d| d.get("i"))
                .map(String::as_str),
            Some("3")
        );

        // After compaction the old token is refused with 410, as etcd would.
        env.api.compact();
        let tok = first.metadata.continue_.clone().expect("token");
        let gone = cms
            .list(&ListParams::default().limit(2).continue_token(&tok))
            .await;
        assert_eq!(
            api_code(gone.expect_err("expired")),
            (410, "Expired".into())
        );
    })
    .await;
}

#[tokio::test]
async fn recorder_event_lands_in_events_k8s_io() {
    let env = env().await;
    env.api.apply(json!({"apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "ingress", "namespace": "edge"}}));
    let svcs: Api<Service> = Api::namespaced(env.client.clone(), "edge");
    let reporter = Reporter {
        controller: "edgevip".into(),
        instance: Some("node-a".into()),
    };
    let recorder = Recorder::new(env.client.clone(), reporter);
    within(5, "events", async {
        let svc = svcs.get("ingress").await.expect("svc");
        let reference = kube::Resource::object_ref(&svc, &());
        let ev = Event {
            type_: EventType::Normal,
            reason: "VipAcquired".into(),
            note: Some("became master".into()),
            action: "Failover".into(),
            secondary: None,
        };
        recorder.publish(&ev, &reference).await.expect("publish");
        // The second identical event becomes a series (a merge PATCH on the first).
        recorder
            .publish(&ev, &reference)
            .await
            .expect("publish again");
    })
    .await;
    let events = env.api.list("events.k8s.io/v1", "Event");
    assert_eq!(events.len(), 1, "{events:?}");
    let e = &events[0];
    assert_eq!(e["reason"], "VipAcquired");
    assert_eq!(e["note"], "became master");
    assert_eq!(e["reportingController"], "edgevip");
    assert_eq!(e["regarding"]["name"], "ingress");
    assert_eq!(e["metadata"]["namespace"], "edge");
    assert_eq!(e["series"]["count"], 2);
    assert!(
        env.api.list("v1", "Event").is_empty(),
        "core/v1 events are a different resource"
    );
    let typed: Api<K8sEvent> = Api::namespaced(env.client.clone(), "edge");
    let listed = within(5, "list events", typed.list(&ListParams::default()))
        .await
        .expect("list");
    assert_eq!(listed.items.len(), 1);
}
