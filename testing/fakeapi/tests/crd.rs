//! CustomResourceDefinitions through the real kube client: registration and discovery,
//! verbs on the custom resources (DynamicObject), the status subresource, resourceVersion
//! preconditions, structural schema checks, RBAC and the CRD's deletion.

mod common;

use common::*;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, Patch,
    PatchParams, PostParams, ValidationDirective,
};
use serde_json::{Value, json};

/// A namespaced `Widget` (group widgets.test) with a status subresource, and a
/// cluster-scoped `Gadget` without one.
fn widget_crd() -> Value {
    json!({
    "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
    "metadata": {"name": "widgets.example.test"},
    "spec": {"group": "example.test", "scope": "Namespaced",
        "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "shortNames": ["wd"]},
        "versions": [{"name": "v1", "served": true, "storage": true,
            "subresources": {"status": {}},
            "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                "spec": {"type": "object", "required": ["size"], "properties": {
                    "size": {"type": "integer", "minimum": 1},
                    "color": {"type": "string", "enum": ["red", "blue"], "default": "red"},
                    "name": {"type": "string", "pattern": "^[a-z]+$"},
                    "extra": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
                }},
                "status": {"type": "object", "properties": {"ready": {"type": "boolean"}}},
            }}}}]}})
}

fn gadget_crd() -> Value {
    json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "gadgets.example.test"},
        "spec": {"group": "example.test", "scope": "Cluster",
            "names": {"plural": "gadgets", "singular": "gadget", "kind": "Gadget"},
            "versions": [{"name": "v1alpha1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {"type": "object",
                    "properties": {"spec": {"type": "object", "properties": {"n": {"type": "integer"}}}}}}}]}})
}

fn widgets(client: &kube::Client, ns: &str) -> Api<DynamicObject> {
    let ar = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("example.test", "v1", "Widget"),
        "widgets",
    );
    Api::namespaced_with(client.clone(), ns, &ar)
}

fn widget(name: &str, spec: Value) -> DynamicObject {
    serde_json::from_value(json!({"apiVersion": "example.test/v1", "kind": "Widget",
        "metadata": {"name": name}, "spec": spec}))
    .expect("widget")
}

fn api_err(e: kube::Error) -> (u16, String) {
    match e {
        kube::Error::Api(s) => (s.code, s.message),
        other => panic!("expected an API error, got {other:?}"),
    }
}

async fn install(client: &kube::Client, crd: Value) -> CustomResourceDefinition {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let crd: CustomResourceDefinition = serde_json::from_value(crd).expect("crd");
    crds.create(&PostParams::default(), &crd)
        .await
        .expect("create CRD")
}

#[tokio::test]
async fn crd_registers_its_resource() {
    let env = env().await;
    within(10, "crd", async {
        let w = widgets(&env.client, "ns1");
        // Unknown before the CRD exists, as on a real server.
        assert_eq!(
            api_err(w.list(&ListParams::default()).await.unwrap_err()).0,
            404
        );
        let crd = install(&env.client, widget_crd()).await;
        let status = crd.status.expect("status");
        let established = status
            .conditions
            .unwrap_or_default()
            .into_iter()
            .any(|c| c.type_ == "Established" && c.status == "True");
        assert!(established);

        let list = env
            .client
            .list_api_group_resources("example.test/v1")
            .await
            .expect("discovery");
        let names: Vec<_> = list.resources.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["widgets", "widgets/status"]);
        assert!(list.resources[0].namespaced);

        let created = w
            .create(&PostParams::default(), &widget("a", json!({"size": 2})))
            .await
            .expect("create");
        assert_eq!(created.data["spec"]["color"], "red", "default applied");
        assert_eq!(created.metadata.namespace.as_deref(), Some("ns1"));
        let got = w.get("a").await.expect("get");
        assert_eq!(got.data["spec"]["size"], 2);
        let patched = w
            .patch(
                "a",
                &PatchParams::default(),
                &Patch::Merge(json!({"spec": {"size": 3}})),
            )
            .await
            .expect("patch");
        assert_eq!(patched.data["spec"]["size"], 3);
        assert_eq!(patched.metadata.generation, Some(2));
        assert_eq!(
            w.list(&ListParams::default())
                .await
                .expect("list")
                .items
                .len(),
            1
        );
        w.delete("a", &DeleteParams::default())
            .await
            .expect("delete");
        assert_eq!(api_err(w.get("a").await.unwrap_err()).0, 404);

        // Cluster scope: served without a namespace, 404 with one.
        install(&env.client, gadget_crd()).await;
        let ar = ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk("example.test", "v1alpha1", "Gadget"),
            "gadgets",
        );
        let all: Api<DynamicObject> = Api::all_with(env.client.clone(), &ar);
        let g: DynamicObject =
            serde_json::from_value(json!({"apiVersion": "example.test/v1alpha1",
            "kind": "Gadget", "metadata": {"name": "g"}, "spec": {"n": 1}}))
            .expect("gadget");
        let made = all
            .create(&PostParams::default(), &g)
            .await
            .expect("create");
        assert_eq!(made.metadata.namespace, None);
        let in_ns: Api<DynamicObject> = Api::namespaced_with(env.client.clone(), "ns1", &ar);
        assert_eq!(api_err(in_ns.get("g").await.unwrap_err()).0, 404);
        // No status subresource declared: /status is not served.
        assert_eq!(api_err(all.get_status("g").await.unwrap_err()).0, 404);
    })
    .await;
}

#[tokio::test]
async fn status_subresource_and_preconditions() {
    let env = env().await;
    within(10, "status", async {
        install(&env.client, widget_crd()).await;
        let w = widgets(&env.client, "ns1");
        let mut obj = widget("a", json!({"size": 1}));
        obj.data["status"] = json!({"ready": true});
        let created = w
            .create(&PostParams::default(), &obj)
            .await
            .expect("create");
        assert!(
            created.data.get("status").is_none(),
            "status dropped on create"
        );

        // The main resource ignores status changes.
        let mut main = created.clone();
        main.data["status"] = json!({"ready": true});
        main.data["spec"]["size"] = json!(5);
        let replaced = w
            .replace("a", &PostParams::default(), &main)
            .await
            .expect("replace");
        assert!(replaced.data.get("status").is_none());
        assert_eq!(replaced.data["spec"]["size"], 5);
        assert_eq!(replaced.metadata.generation, Some(2));

        // /status changes status only, and not the generation.
        let st = w
            .patch_status(
                "a",
                &PatchParams::default(),
                &Patch::Merge(json!({"spec": {"size": 9}, "status": {"ready": true}})),
            )
            .await
            .expect("patch status");
        assert_eq!(st.data["status"]["ready"], true);
        assert_eq!(st.data["spec"]["size"], 5);
        assert_eq!(st.metadata.generation, Some(2));
        // Status is validated too.
        let bad = w
            .patch_status(
                "a",
                &PatchParams::default(),
                &Patch::Merge(json!({"status": {"ready": "yes"}})),
            )
            .await
            .unwrap_err();
        assert_eq!(api_err(bad).0, 422);

        // A stale resourceVersion is a 409, on the main resource and on /status.
        let mut stale = replaced.clone();
        stale.data["spec"]["size"] = json!(6);
        let (code, msg) = api_err(
            w.replace("a", &PostParams::default(), &stale)
                .await
                .unwrap_err(),
        );
        assert_eq!(code, 409, "{msg}");
        let (code, _) = api_err(
            w.replace_status("a", &PostParams::default(), &stale)
                .await
                .unwrap_err(),
        );
        assert_eq!(code, 409);
    })
    .await;
}

#[tokio::test]
async fn schema_is_enforced() {
    let env = env().await;
    within(10, "schema", async {
        install(&env.client, widget_crd()).await;
        let w = widgets(&env.client, "ns1");
        let pp = PostParams::default();
        let cases = [
            (
                json!({"size": "big"}),
                422,
                "Widget.example.test \"x\" is invalid: spec.size: Invalid value: \"string\": spec.size in body must be of type integer: \"string\"",
            ),
            (
                json!({}),
                422,
                "Widget.example.test \"x\" is invalid: spec.size: Required value",
            ),
            (
                json!({"size": 1, "color": "green"}),
                422,
                "Widget.example.test \"x\" is invalid: spec.color: Unsupported value: \"green\": supported values: \"red\", \"blue\"",
            ),
            (
                json!({"size": 0, "name": "A1"}),
                422,
                "Widget.example.test \"x\" is invalid: [spec.name: Invalid value: \"A1\": spec.name in body should match '^[a-z]+$', spec.size: Invalid value: 0: spec.size in body should be greater than or equal to 1]",
            ),
            (
                json!({"size": 1, "shape": "round"}),
                400,
                "Widget in version \"v1\" cannot be handled as a Widget: strict decoding error: unknown field \"spec.shape\"",
            ),
        ];
        for (spec, code, msg) in cases {
            let e = w.create(&pp, &widget("x", spec.clone())).await.unwrap_err();
            assert_eq!(api_err(e), (code, msg.to_string()), "{spec}");
        }
        // Unknown metadata fields are refused as well.
        let r = env.api.try_apply(json!({"apiVersion": "example.test/v1", "kind": "Widget",
            "metadata": {"name": "m", "namespace": "ns1", "nmae": "y"}, "spec": {"size": 1}}));
        assert_eq!(r.map_err(|e| e.code), Err(400));

        // Preserved subtree keeps unknown fields; with fieldValidation=Ignore others are pruned.
        let ok = w
            .create(&pp, &widget("y", json!({"size": 1, "extra": {"anything": [1]}})))
            .await
            .expect("create");
        assert_eq!(ok.data["spec"]["extra"]["anything"][0], 1);
        let ignore = PatchParams {
            field_validation: Some(ValidationDirective::Ignore),
            ..Default::default()
        };
        let pruned = w
            .patch(
                "y",
                &ignore,
                &Patch::Merge(json!({"spec": {"shape": "round", "size": 2}})),
            )
            .await
            .expect("patch");
        assert!(pruned.data["spec"].get("shape").is_none());
        assert_eq!(pruned.data["spec"]["size"], 2);
        let strict = w
            .patch(
                "y",
                &PatchParams::default(),
                &Patch::Merge(json!({"spec": {"shape": "round"}})),
            )
            .await
            .unwrap_err();
        assert_eq!(api_err(strict).0, 400);
    })
    .await;
}

#[tokio::test]
async fn rbac_applies_to_custom_resources() {
    let env = env().await;
    within(10, "rbac", async {
        install(&env.client, widget_crd()).await;
        let sa = kube::Client::try_from(env.server.kube_config()).expect("client");
        let (code, msg) = api_err(
            widgets(&sa, "ns1")
                .list(&ListParams::default())
                .await
                .unwrap_err(),
        );
        assert_eq!(code, 403);
        assert!(
            msg.contains("cannot list resource \"widgets\" in API group \"example.test\""),
            "{msg}"
        );
        // Creating CRDs is not edgevip's business either.
        let crds: Api<CustomResourceDefinition> = Api::all(sa);
        let crd: CustomResourceDefinition = serde_json::from_value(gadget_crd()).expect("crd");
        let e = crds.create(&PostParams::default(), &crd).await.unwrap_err();
        assert_eq!(api_err(e).0, 403);
    })
    .await;
}

#[tokio::test]
async fn deleting_the_crd_removes_its_resources() {
    let env = env().await;
    within(10, "delete", async {
        install(&env.client, widget_crd()).await;
        let w = widgets(&env.client, "ns1");
        w.create(&PostParams::default(), &widget("a", json!({"size": 1})))
            .await
            .expect("create");
        assert_eq!(env.api.list("example.test/v1", "Widget").len(), 1);
        let crds: Api<CustomResourceDefinition> = Api::all(env.client.clone());
        crds.delete("widgets.example.test", &DeleteParams::default())
            .await
            .expect("delete CRD");
        assert!(env.api.list("example.test/v1", "Widget").is_empty());
        assert_eq!(
            api_err(w.list(&ListParams::default()).await.unwrap_err()).0,
            404
        );
        assert_eq!(
            api_err(
                env.client
                    .list_api_group_resources("example.test/v1")
                    .await
                    .unwrap_err()
            )
            .0,
            404
        );
        // A CRD whose name is not plural.group is refused.
        let mut wrong = widget_crd();
        wrong["metadata"]["name"] = json!("widgets.other.test");
        let crd: CustomResourceDefinition = serde_json::from_value(wrong).expect("crd");
        let e = crds.create(&PostParams::default(), &crd).await.unwrap_err();
        assert_eq!(api_err(e).0, 422);
    })
    .await;
}

/// deploy/crds/vippool.yaml as the fake serves it, with deploy/examples/vippool.yaml.
#[tokio::test]
async fn shipped_vippool_crd_and_example() {
    let crd: Value = serde_saphyr::from_str(include_str!("../../../deploy/crds/vippool.yaml"))
        .expect("deploy/crds/vippool.yaml");
    let example: Value =
        serde_saphyr::from_str(include_str!("../../../deploy/examples/vippool.yaml"))
            .expect("deploy/examples/vippool.yaml");
    let env = env().await;
    within(10, "vippool", async {
        install(&env.client, crd).await;
        let list = env
            .client
            .list_api_group_resources("edgevip.io/v1alpha1")
            .await
            .expect("discovery");
        assert!(!list.resources[0].namespaced, "VIPPool is cluster-scoped");
        let ar = ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk("edgevip.io", "v1alpha1", "VIPPool"),
            "vippools",
        );
        let pools: Api<DynamicObject> = Api::all_with(env.client.clone(), &ar);
        let pp = PostParams::default();
        let obj: DynamicObject = serde_json::from_value(example.clone()).expect("example");
        let made = pools.create(&pp, &obj).await.expect("the example is valid");
        assert_eq!(made.data["spec"], example["spec"], "nothing pruned");

        // autoAssign defaults to true.
        let mut bare = example.clone();
        bare["metadata"]["name"] = json!("bare");
        bare["spec"] = json!({"addresses": ["10.0.0.1"]});
        let bare: DynamicObject = serde_json::from_value(bare).expect("bare");
        let bare = pools.create(&pp, &bare).await.expect("bare");
        assert_eq!(bare.data["spec"]["autoAssign"], true);

        // free: an integer, or a decimal string beyond int64.
        for free in [json!(254), json!("18446744073709551616")] {
            let st = pools
                .patch_status(
                    "public",
                    &PatchParams::default(),
                    &Patch::Merge(json!({"status": {"allocated": 2, "free": free,
                        "conditions": [{"type": "Ready", "status": "True", "reason": "Valid",
                            "message": "", "lastTransitionTime": "2026-12-05T08:00:00Z"}]}})),
                )
                .await
                .expect("status");
            assert_eq!(st.data["status"]["free"], free);
        }

        let mut bad = example.clone();
        bad["metadata"]["name"] = json!("bad");
        bad["spec"]["addresses"] = json!([]);
        bad["spec"]["autoAssign"] = json!("yes");
        bad["spec"]["serviceAllocation"]["serviceSelector"]["matchExpressions"][0]["operator"] =
            json!("Is");
        let bad: DynamicObject = serde_json::from_value(bad).expect("bad");
        let (code, msg) = api_err(pools.create(&pp, &bad).await.unwrap_err());
        assert_eq!(code, 422);
        assert_eq!(
            msg,
            "VIPPool.edgevip.io \"bad\" is invalid: [\
             spec.addresses: Invalid value: 0: spec.addresses in body should have at least 1 items, \
             spec.autoAssign: Invalid value: \"string\": spec.autoAssign in body must be of type boolean: \"string\", \
             spec.serviceAllocation.serviceSelector.matchExpressions[0].operator: Unsupported value: \"Is\": \
             supported values: \"In\", \"NotIn\", \"Exists\", \"DoesNotExist\"]"
        );
    })
    .await;
}

/// kube_runtime's watcher on a custom resource: initial list, then changes as they come.
#[tokio::test]
async fn watcher_streams_custom_resources() {
    use futures::StreamExt;
    use kube_runtime::{WatchStreamExt, watcher};
    let env = env().await;
    within(10, "watch", async {
        install(&env.client, widget_crd()).await;
        let w = widgets(&env.client, "ns1");
        w.create(&PostParams::default(), &widget("a", json!({"size": 1})))
            .await
            .expect("create a");
        let mut stream = watcher(w.clone(), watcher::Config::default())
            .applied_objects()
            .boxed();
        let first = stream.next().await.expect("item").expect("ok");
        assert_eq!(first.metadata.name.as_deref(), Some("a"));
        w.patch(
            "a",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"size": 4}})),
        )
        .await
        .expect("patch");
        let changed = stream.next().await.expect("item").expect("ok");
        assert_eq!(changed.data["spec"]["size"], 4);
        env.api
            .apply(json!({"apiVersion": "example.test/v1", "kind": "Widget",
            "metadata": {"name": "b", "namespace": "ns1"}, "spec": {"size": 2}}));
        let added = stream.next().await.expect("item").expect("ok");
        assert_eq!(added.metadata.name.as_deref(), Some("b"));
        assert_eq!(added.data["spec"]["color"], "red", "apply() defaults too");
    })
    .await;
}
