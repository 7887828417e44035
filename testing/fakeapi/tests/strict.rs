//! The fake is at least as strict as kube-apiserver where edgevip depends on it: TLS and
//! bearer tokens, RBAC from the shipped manifests, strict field validation, Event
//! validation, the field-selector allowlist, resourceVersion preconditions on status
//! writes, and the Ready condition of Nodes.

mod common;

use common::*;
use edgevip_fakeapi::{ADMIN_TOKEN, EDGEVIP_TOKEN, FakeApi, Rbac, User};
use k8s_openapi::api::core::v1::{ConfigMap, Node, Service};
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;

fn api_err(e: kube::Error) -> (u16, String) {
    match e {
        kube::Error::Api(s) => (s.code, s.message),
        other => panic!("expected an API error, got {other:?}"),
    }
}

fn as_token(env: &Env, token: &str) -> kube::Client {
    kube::Client::try_from(env.server.kube_config_as(token)).expect("client")
}

#[tokio::test]
async fn rbac_from_the_shipped_manifests() {
    let env = env().await;
    let sa = as_token(&env, EDGEVIP_TOKEN);
    within(5, "rbac", async {
        // Granted by the ClusterRole: Nodes cluster-wide.
        Api::<Node>::all(sa.clone())
            .list(&ListParams::default())
            .await
            .expect("list nodes");
        // Granted by the Role: ConfigMaps, only in edgevip's namespace.
        Api::<ConfigMap>::namespaced(sa.clone(), "edgevip")
            .list(&ListParams::default())
            .await
            .expect("list configmaps in edgevip");
        let other = Api::<ConfigMap>::namespaced(sa.clone(), "default")
            .get("vips")
            .await;
        assert_eq!(
            api_err(other.expect_err("403")),
            (
                403,
                "configmaps \"vips\" is forbidden: User \"system:serviceaccount:edgevip:edgevip\" \
                 cannot get resource \"configmaps\" in API group \"\" in the namespace \"default\""
                    .into()
            )
        );
        // Read-only Services: updating one is refused before anything changes.
        env.api.apply(json!({"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "web", "namespace": "edgevip"}, "spec": {"ports": [{"port": 80}]}}));
        let rv = env.api.resource_version();
        let patch = Api::<Service>::namespaced(sa.clone(), "edgevip")
            .patch(
                "web",
                &PatchParams::default(),
                &Patch::Merge(json!({"metadata": {"labels": {"x": "y"}}})),
            )
            .await;
        let (code, msg) = api_err(patch.expect_err("403"));
        assert_eq!(code, 403);
        assert!(msg.contains("cannot patch resource \"services\""), "{msg}");
        assert_eq!(env.api.resource_version(), rv, "nothing written");
        // Anonymous: 403 naming system:anonymous; an unknown token: 401.
        let anon = kube::Client::try_from({
            let mut c = edgevip_fakeapi::kube_config(env.server.addr());
            c.auth_info = Default::default();
            c
        })
        .expect("client");
        let (code, msg) = api_err(
            Api::<Node>::all(anon)
                .list(&ListParams::default())
                .await
                .expect_err("anonymous"),
        );
        assert_eq!(code, 403);
        assert!(msg.contains("User \"system:anonymous\""), "{msg}");
        let bad = as_token(&env, "not-a-token");
        let (code, _) = api_err(
            Api::<Node>::all(bad)
                .list(&ListParams::default())
                .await
                .expect_err("401"),
        );
        assert_eq!(code, 401);
    })
    .await;
    // Every request was logged with its user, over TLS.
    let log = env.api.requests();
    assert!(log.iter().all(|r| r.tls));
    assert!(
        log.iter()
            .any(|r| r.user == "system:serviceaccount:edgevip:edgevip")
    );
    assert!(log.iter().filter(|r| r.status == 403).all(|r| {
        r.error
            .as_deref()
            .is_some_and(|e| e.contains("is forbidden"))
    }));
}

#[tokio::test]
async fn a_policy_without_the_binding_grants_nothing() {
    let env = env().await;
    // The shipped documents without the ClusterRoleBinding.
    let docs: Vec<_> = Rbac::shipped_documents()
        .into_iter()
        .filter(|(_, d)| d["kind"] != "ClusterRoleBinding")
        .collect();
    env.api
        .set_rbac(Rbac::from_documents(&docs).expect("policy"));
    let sa = as_token(&env, EDGEVIP_TOKEN);
    let r = within(5, "list", Api::<Node>::all(sa).list(&ListParams::default())).await;
    assert_eq!(api_err(r.expect_err("403")).0, 403);
    // A user of our own: system:masters is never restricted by RBAC.
    env.api.add_token(
        "dev",
        User {
            name: "dev".into(),
            groups: vec!["system:masters".into()],
        },
    );
    let dev = as_token(&env, "dev");
    within(
        5,
        "admin",
        Api::<Node>::all(dev).list(&ListParams::default()),
    )
    .await
    .expect("system:masters may");
}

#[tokio::test]
async fn tls_is_verified_and_plain_http_is_not_spoken_on_it() {
    let env = env().await;
    // A client without the fake's CA does not trust the server.
    let mut c = kube::Config::new(env.server.url().parse().expect("url"));
    c.auth_info = env.server.kube_config_as(ADMIN_TOKEN).auth_info;
    let stranger = kube::Client::try_from(c).expect("client");
    let r = within(
        5,
        "untrusted",
        Api::<Node>::all(stranger).list(&ListParams::default()),
    )
    .await;
    assert!(
        !matches!(r, Ok(_) | Err(kube::Error::Api(_))),
        "an unknown CA must fail the handshake: {r:?}"
    );
    // Plain HTTP to the HTTPS port gets no HTTP answer.
    let resp = within(
        3,
        "plain",
        raw(env.server.addr(), "GET", "/version", &[], "", eof),
    )
    .await;
    assert_eq!(status_of(&resp), 0, "{resp:?}");
    assert!(env.server.url().starts_with("https://"));
}

#[tokio::test]
async fn unknown_fields_are_refused_unless_asked_to_drop_them() {
    let env = env().await;
    let addr = env.http.addr();
    let body = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"},
        "data": {"k": "v"}, "spec": {"x": 1}})
    .to_string();
    let ct = [("Content-Type", "application/json")];
    let path = "/api/v1/namespaces/ns/configmaps";
    let resp = within(3, "strict", raw(addr, "POST", path, &ct, &body, eof)).await;
    assert_eq!(status_of(&resp), 400, "{resp}");
    assert_eq!(
        body_of(&resp)["message"],
        "ConfigMap in version \"v1\" cannot be handled as a ConfigMap: strict decoding error: \
         unknown field \"spec\""
    );
    assert!(env.api.list("v1", "ConfigMap").is_empty());
    // fieldValidation=Ignore drops the field, as the real server does.
    let resp = within(
        3,
        "ignore",
        raw(
            addr,
            "POST",
            &format!("{path}?fieldValidation=Ignore"),
            &ct,
            &body,
            eof,
        ),
    )
    .await;
    assert_eq!(status_of(&resp), 201, "{resp}");
    assert!(body_of(&resp).get("spec").is_none());
    // An unknown field smuggled in through a merge patch is refused too.
    let resp = within(
        3,
        "patch",
        raw(
            addr,
            "PATCH",
            &format!("{path}/a"),
            &[("Content-Type", "application/merge-patch+json")],
            r#"{"metadata": {"lables": {"a": "b"}}}"#,
            eof,
        ),
    )
    .await;
    assert_eq!(status_of(&resp), 400, "{resp}");
    assert!(
        body_of(&resp)["message"]
            .as_str()
            .unwrap_or_default()
            .contains("metadata.lables")
    );
    // A create carrying a resourceVersion is refused, not silently cleaned.
    let with_rv = json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "b", "resourceVersion": "7"}})
    .to_string();
    let resp = within(3, "rv", raw(addr, "POST", path, &ct, &with_rv, eof)).await;
    assert_eq!(status_of(&resp), 400, "{resp}");
    assert_eq!(
        body_of(&resp)["message"],
        "resourceVersion should not be set on objects to be created"
    );
    // Test-side apply goes through the same admission.
    let err = env
        .api
        .try_apply(
            json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n"}, "spc": {}}),
        )
        .expect_err("unknown field");
    assert_eq!(err.code, 400);
}

#[tokio::test]
async fn events_are_validated_as_events_k8s_io_v1() {
    let env = env().await;
    let ok = json!({"apiVersion": "events.k8s.io/v1", "kind": "Event",
        "metadata": {"name": "edge-a.1", "namespace": "default"},
        "eventTime": "2026-12-04T10:00:00.000000Z", "type": "Normal", "reason": "Master",
        "action": "Reconcile", "reportingController": "edgevip", "reportingInstance": "edge-a",
        "regarding": {"kind": "Node", "name": "edge-a"}, "note": "x"});
    let path = "/apis/events.k8s.io/v1/namespaces/default/events";
    let ct = [("Content-Type", "application/json")];
    let mut bad = ok.clone();
    for f in ["reportingInstance", "action"] {
        bad.as_object_mut().expect("object").remove(f);
    }
    let resp = within(
        3,
        "invalid",
        raw(env.http.addr(), "POST", path, &ct, &bad.to_string(), eof),
    )
    .await;
    assert_eq!(status_of(&resp), 422, "{resp}");
    assert_eq!(
        body_of(&resp)["message"],
        "Event.events.k8s.io \"edge-a.1\" is invalid: [reportingInstance: Required value, \
         action: Required value]"
    );
    let resp = within(
        3,
        "valid",
        raw(env.http.addr(), "POST", path, &ct, &ok.to_string(), eof),
    )
    .await;
    assert_eq!(status_of(&resp), 201, "{resp}");
    // The note of a recorded Event cannot change.
    let resp = within(
        3,
        "immutable",
        raw(
            env.http.addr(),
            "PATCH",
            &format!("{path}/edge-a.1"),
            &[("Content-Type", "application/merge-patch+json")],
            r#"{"note": "changed"}"#,
            eof,
        ),
    )
    .await;
    assert_eq!(status_of(&resp), 422, "{resp}");
}

#[tokio::test]
async fn field_selectors_only_on_supported_labels() {
    let env = env().await;
    let svcs: Api<Service> = Api::all(env.client.clone());
    let r = within(
        5,
        "list",
        svcs.list(&ListParams::default().fields("spec.type=LoadBalancer")),
    )
    .await;
    assert_eq!(
        api_err(r.expect_err("400")),
        (400, "field label not supported: spec.type".into())
    );
    let cms: Api<ConfigMap> = Api::namespaced(env.client.clone(), "edgevip");
    within(
        5,
        "list",
        cms.list(&ListParams::default().fields("metadata.name=vips")),
    )
    .await
    .expect("metadata.name is supported everywhere");
    let nodes: Api<Node> = Api::all(env.client.clone());
    within(
        5,
        "list",
        nodes.list(&ListParams::default().fields("spec.unschedulable=false")),
    )
    .await
    .expect("spec.unschedulable is a Node field label");
}

#[tokio::test]
async fn stale_resource_version_on_status_writes_conflicts() {
    let env = env().await;
    env.api.apply(json!({"apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "web", "namespace": "ns"},
        "spec": {"type": "LoadBalancer", "ports": [{"port": 80}]}}));
    let svcs: Api<Service> = Api::namespaced(env.client.clone(), "ns");
    within(5, "status writes", async {
        let current = svcs.get_status("web").await.expect("get");
        let rv = current.metadata.resource_version.clone().expect("rv");
        let status = |ip: &str| json!({"status": {"loadBalancer": {"ingress": [{"ip": ip, "ipMode": "VIP"}]}}});
        // A merge patch carrying the current resourceVersion applies...
        let mut p = status("192.0.2.10");
        p["metadata"] = json!({"resourceVersion": rv});
        svcs.patch_status("web", &PatchParams::default(), &Patch::Merge(&p))
            .await
            .expect("current rv");
        // ...the same resourceVersion again is stale now: 409, nothing written.
        let mut p = status("192.0.2.11");
        p["metadata"] = json!({"resourceVersion": rv});
        let r = svcs
            .patch_status("web", &PatchParams::default(), &Patch::Merge(&p))
            .await;
        let (code, msg) = api_err(r.expect_err("409"));
        assert_eq!(code, 409);
        assert!(msg.contains("the object has been modified"), "{msg}");
        // A full status replace with a stale object conflicts as well.
        let mut stale = current.clone();
        stale.status = serde_json::from_value(status("192.0.2.12")["status"].clone()).ok();
        let r = svcs.replace_status("web", &PostParams::default(), &stale).await;
        assert_eq!(api_err(r.expect_err("409")).0, 409);
        let now = svcs.get_status("web").await.expect("get");
        let ing = now.status.and_then(|s| s.load_balancer).and_then(|l| l.ingress).unwrap_or_default();
        assert_eq!(ing[0].ip.as_deref(), Some("192.0.2.10"));
    })
    .await;
}

#[tokio::test]
async fn nodes_without_ready_show_unknown() {
    let api = FakeApi::new();
    api.apply(json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "bare"}}));
    let n = api.get("v1", "Node", None, "bare").expect("node");
    assert_eq!(
        n["status"]["conditions"],
        json!([{"type": "Ready", "status": "Unknown", "reason": "NodeStatusNeverUpdated",
            "message": "Kubelet never posted node status."}])
    );
    api.apply(
        json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "ok"},
        "status": {"conditions": [{"type": "Ready", "status": "True"}]}}),
    );
    let n = api.get("v1", "Node", None, "ok").expect("node");
    assert_eq!(n["status"]["conditions"].as_array().map(Vec::len), Some(1));
}
