//! The deployment files, checked against the Kubernetes API types (k8s-openapi) and the
//! invariants an operator relies on: what the DaemonSet may do on a node, what the RBAC
//! grants, that the ConfigMap holds what the daemon parses, that the Helm chart renders the
//! same objects as deploy/.
//!
//! Every YAML document is deserialized into the k8s-openapi type of its `kind` and
//! serialized back: a field the type does not know (a misspelling, a wrong nesting level)
//! is dropped by that round trip, and the comparison reports it. An unknown kind fails.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod common;
use common::edgevip_binary;
use edgevip_deploy_check::{
    Stage, commented_list_items, dockerfile_stages, flag_tokens, helm_block, is_dns1123_label,
    is_vip_target, repo_root, shell_commands, skip, split_documents, values_references,
};
use k8s_openapi::Resource;
use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::{
    ConfigMap, Container, Namespace, Secret, Service, ServiceAccount,
};
use k8s_openapi::api::networking::v1::Ingress;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde::Deserialize;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

const NS: &str = "edgevip";
const SA: &str = "edgevip";
const CONFIGMAP: &str = "edgevip-vips";
const API_PORT: i32 = 9180;

/// The flags of `edgevip run --kubernetes` (anything else in the args is a typo). Checked
/// against the real binary's `run --help` by `known_flags_are_the_binarys`.
const KNOWN_FLAGS: &[&str] = &[
    "--kubernetes",
    "--kubeconfig",
    "--node-name",
    "--services-configmap",
    "--node-selector",
    "--vrid",
    "--interface",
    "--unicast",
    "--ingress-check",
    "--eligibility",
    "--api-listen",
    "--api-status",
    "--status-listen",
    "--api-max-connections",
    "--proxy-max-connections",
    "--proxy-max-connections-per-frontend",
    "--proxy-first-byte-timeout",
    "--proxy-idle-timeout",
    "--release-grace",
    "--advert-interval",
    "--preempt",
    "--log-format",
    "--log-level",
    "--load-balancers",
    "--load-balancer-class",
    "--default-load-balancer-class",
    "--address-pool",
    "--lb-vrids",
    "--lb-vrid",
    "--lease-name",
    "--lease-duration",
    "--forwarding",
    "--proxy-protocol",
    "--vip-ranges",
    "--pod-cidrs",
    "--service-cidrs",
    "--allow-configmap-exec",
    "--allow-configmap-interfaces",
    "--allow-configmap-ttl",
    "--allow-configmap-peers",
    "--allow-configmap-remote-checks",
    "--allow-configmap-files",
    "--bgp",
    "--frr-config",
    "--frr-vty-socket",
];
/// Flags that take no value.
const SWITCHES: &[&str] = &[
    "--kubernetes",
    "--bgp",
    "--load-balancers",
    "--default-load-balancer-class",
    "--allow-configmap-exec",
    "--allow-configmap-interfaces",
    "--allow-configmap-ttl",
    "--allow-configmap-peers",
    "--allow-configmap-remote-checks",
    "--allow-configmap-files",
    "--api-status",
];
/// LoadBalancer mode's flags: only together with `--load-balancers`.
const LB_FLAGS: &[&str] = &[
    "--load-balancers",
    "--load-balancer-class",
    "--default-load-balancer-class",
    "--address-pool",
    "--lb-vrids",
];
/// The daemon's defaults (`edgevip run --help`).
const DEFAULT_VRID: u8 = 50;
const DEFAULT_LB_VRIDS: &str = "100-149";
const DEFAULT_LB_CLASS: &str = "edgevip.io/vip";
/// `--proxy-protocol`: the header sent to the backends of `:PROXY` entries.
const PROXY_PROTOCOLS: &[&str] = &["v1", "v2", "none"];
const DEFAULT_PROXY_PROTOCOL: &str = "v1";
/// Forwarding's flags (forwarding is on by default: `--forwarding=false` turns it off).
const FORWARDING_FLAGS: &[&str] = &["--forwarding", "--proxy-protocol"];

// ---------------------------------------------------------------------------------------
// Parsing

/// kustomize's file: not an API object, parsed strictly on its own.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Kustomization {
    api_version: String,
    kind: String,
    resources: Vec<String>,
    #[serde(default)]
    images: Vec<KustomizeImage>,
}

/// An `images:` entry (what `kustomize edit set image` writes).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct KustomizeImage {
    name: String,
    new_name: Option<String>,
    new_tag: Option<String>,
    digest: Option<String>,
}

// A handful of objects per test: their size does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
enum Object {
    Namespace(Namespace),
    ServiceAccount(ServiceAccount),
    ClusterRole(ClusterRole),
    ClusterRoleBinding(ClusterRoleBinding),
    Role(Role),
    RoleBinding(RoleBinding),
    ConfigMap(ConfigMap),
    DaemonSet(DaemonSet),
    Ingress(Ingress),
    Service(Service),
    /// A Prometheus operator object (monitoring.coreos.com/v1), checked against the fields
    /// edgevip uses (`MonitorSpec`, `RuleSpec`) and kept as written.
    Monitoring(Monitoring),
    CustomResourceDefinition(CustomResourceDefinition),
    /// edgevip.io/v1alpha1 VIPPool (deploy/crds/vippool.yaml), checked field by field.
    VipPool(VipPool),
    /// edgevip.io/v1alpha1 BGPPeer (deploy/crds/bgppeer.yaml).
    BgpPeer(BgpPeer),
    /// A BGPPeer's password Secret (deploy/examples/bgppeer.yaml).
    Secret(Secret),
    Kustomization(Kustomization),
}

const VIPPOOL_API: &str = "edgevip.io/v1alpha1";

#[derive(Debug, Clone)]
struct VipPool {
    metadata: ObjectMeta,
    value: Value,
}

/// VIPPool's spec as deploy/crds/vippool.yaml defines it (unknown fields refused).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
// Parsed to refuse misspelt or misplaced fields; the checks read the raw value.
#[allow(dead_code)]
struct VipPoolSpec {
    addresses: Vec<String>,
    auto_assign: Option<bool>,
    service_allocation: Option<ServiceAllocation>,
    announce: Option<Announce>,
    bgp: Option<PoolBgp>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "lowercase")]
#[allow(dead_code)]
enum Announce {
    Arp,
    Bgp,
}

/// VIPPool `spec.bgp` (only with `announce: bgp`).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[allow(dead_code)]
struct PoolBgp {
    communities: Option<Vec<String>>,
    local_pref: Option<u32>,
}

/// edgevip.io/v1alpha1 BGPPeer (deploy/crds/bgppeer.yaml, /work/shared-notes' contract),
/// parsed strictly; the schema's bounds are checked by `bgppeer_problems`.
#[derive(Debug, Clone)]
struct BgpPeer {
    metadata: ObjectMeta,
    spec: BgpPeerSpec,
    value: Value,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct BgpPeerSpec {
    #[serde(rename = "myASN")]
    my_asn: u64,
    #[serde(rename = "peerASN")]
    peer_asn: u64,
    peer_address: String,
    peer_port: Option<u64>,
    #[serde(rename = "routerID")]
    router_id: Option<String>,
    hold_time: Option<String>,
    keepalive_time: Option<String>,
    password_secret: Option<PasswordSecret>,
    bfd: Option<Bfd>,
    ebgp_multi_hop: Option<u64>,
    node_selector: Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct PasswordSecret {
    name: String,
    key: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Bfd {
    interval: Option<String>,
    multiplier: Option<u64>,
}

fn bgppeer(doc: &str, value: &Value, origin: &str) -> Result<BgpPeer, String> {
    if value.get("apiVersion").and_then(Value::as_str) != Some(VIPPOOL_API) {
        return Err(format!("{origin}: BGPPeer needs apiVersion {VIPPOOL_API}"));
    }
    let obj: CrdObject<BgpPeerSpec> =
        serde_saphyr::from_str(doc).map_err(|e| format!("{origin}: not a BGPPeer: {e}"))?;
    Ok(BgpPeer {
        metadata: obj.metadata,
        spec: obj.spec,
        value: value.clone(),
    })
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[allow(dead_code)]
struct ServiceAllocation {
    namespaces: Option<Vec<String>>,
    namespace_selector: Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector>,
    service_selector: Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector>,
}

fn vippool(doc: &str, value: &Value, origin: &str) -> Result<VipPool, String> {
    if value.get("apiVersion").and_then(Value::as_str) != Some(VIPPOOL_API) {
        return Err(format!("{origin}: VIPPool needs apiVersion {VIPPOOL_API}"));
    }
    let obj: CrdObject<VipPoolSpec> =
        serde_saphyr::from_str(doc).map_err(|e| format!("{origin}: not a VIPPool: {e}"))?;
    Ok(VipPool {
        metadata: obj.metadata,
        value: value.clone(),
    })
}

#[derive(Debug, Clone)]
struct Monitoring {
    kind: &'static str,
    metadata: ObjectMeta,
    value: Value,
}

/// The Prometheus operator's kinds edgevip ships.
const MONITORING_KINDS: &[&str] = &["PodMonitor", "ServiceMonitor", "PrometheusRule"];
const MONITORING_API: &str = "monitoring.coreos.com/v1";

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct CrdObject<S> {
    #[allow(dead_code)]
    api_version: String,
    #[allow(dead_code)]
    kind: String,
    metadata: ObjectMeta,
    spec: S,
}

/// PodMonitor (`podMetricsEndpoints`) and ServiceMonitor (`endpoints`) specs.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
// Parsed to refuse misspelt or misplaced fields; the checks read the raw value.
#[allow(dead_code)]
struct MonitorSpec {
    selector: k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector,
    #[serde(alias = "endpoints")]
    pod_metrics_endpoints: Vec<ScrapeEndpoint>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
// Parsed to refuse misspelt or misplaced fields; the checks read the raw value.
#[allow(dead_code)]
struct ScrapeEndpoint {
    port: String,
    path: String,
    interval: Option<String>,
    honor_labels: bool,
    relabelings: Vec<Relabeling>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
// Parsed to refuse misspelt or misplaced fields; the checks read the raw value.
#[allow(dead_code)]
struct Relabeling {
    source_labels: Vec<String>,
    target_label: String,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleSpec {
    groups: Vec<RuleGroup>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleGroup {
    name: String,
    rules: Vec<Rule>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
struct Rule {
    alert: String,
    expr: String,
    #[serde(rename = "for")]
    for_: Option<String>,
    labels: BTreeMap<String, String>,
    annotations: BTreeMap<String, String>,
}

fn monitoring(kind: &str, doc: &str, value: &Value, origin: &str) -> Result<Monitoring, String> {
    if value.get("apiVersion").and_then(Value::as_str) != Some(MONITORING_API) {
        return Err(format!(
            "{origin}: {kind} needs apiVersion {MONITORING_API}"
        ));
    }
    let kind = MONITORING_KINDS
        .iter()
        .find(|k| **k == kind)
        .ok_or_else(|| format!("{origin}: unknown kind {kind:?}"))?;
    let metadata = match *kind {
        "PrometheusRule" => serde_saphyr::from_str::<CrdObject<RuleSpec>>(doc).map(|o| o.metadata),
        _ => serde_saphyr::from_str::<CrdObject<MonitorSpec>>(doc).map(|o| o.metadata),
    }
    .map_err(|e| format!("{origin}: does not parse as {kind}: {e}"))?;
    Ok(Monitoring {
        kind,
        metadata,
        value: value.clone(),
    })
}

#[derive(Debug, Clone)]
struct Doc {
    /// file name (and document index) for messages
    origin: String,
    obj: Object,
}

impl Object {
    fn kind(&self) -> &'static str {
        match self {
            Object::Namespace(_) => Namespace::KIND,
            Object::ServiceAccount(_) => ServiceAccount::KIND,
            Object::ClusterRole(_) => ClusterRole::KIND,
            Object::ClusterRoleBinding(_) => ClusterRoleBinding::KIND,
            Object::Role(_) => Role::KIND,
            Object::RoleBinding(_) => RoleBinding::KIND,
            Object::ConfigMap(_) => ConfigMap::KIND,
            Object::DaemonSet(_) => DaemonSet::KIND,
            Object::Ingress(_) => Ingress::KIND,
            Object::Service(_) => Service::KIND,
            Object::Monitoring(m) => m.kind,
            Object::CustomResourceDefinition(_) => CustomResourceDefinition::KIND,
            Object::VipPool(_) => "VIPPool",
            Object::BgpPeer(_) => "BGPPeer",
            Object::Secret(_) => Secret::KIND,
            Object::Kustomization(_) => "Kustomization",
        }
    }

    fn metadata(&self) -> Option<&ObjectMeta> {
        Some(match self {
            Object::Namespace(o) => &o.metadata,
            Object::ServiceAccount(o) => &o.metadata,
            Object::ClusterRole(o) => &o.metadata,
            Object::ClusterRoleBinding(o) => &o.metadata,
            Object::Role(o) => &o.metadata,
            Object::RoleBinding(o) => &o.metadata,
            Object::ConfigMap(o) => &o.metadata,
            Object::DaemonSet(o) => &o.metadata,
            Object::Ingress(o) => &o.metadata,
            Object::Service(o) => &o.metadata,
            Object::Monitoring(m) => &m.metadata,
            Object::CustomResourceDefinition(o) => &o.metadata,
            Object::VipPool(o) => &o.metadata,
            Object::BgpPeer(o) => &o.metadata,
            Object::Secret(o) => &o.metadata,
            Object::Kustomization(_) => return None,
        })
    }

    fn is_cluster_scoped(&self) -> bool {
        matches!(
            self,
            Object::Namespace(_)
                | Object::ClusterRole(_)
                | Object::ClusterRoleBinding(_)
                | Object::CustomResourceDefinition(_)
                | Object::VipPool(_)
                | Object::BgpPeer(_)
        )
    }

    /// The object as the API would store it (Null for a Kustomization).
    fn to_value(&self) -> Value {
        let v = match self {
            Object::Namespace(o) => serde_json::to_value(o),
            Object::ServiceAccount(o) => serde_json::to_value(o),
            Object::ClusterRole(o) => serde_json::to_value(o),
            Object::ClusterRoleBinding(o) => serde_json::to_value(o),
            Object::Role(o) => serde_json::to_value(o),
            Object::RoleBinding(o) => serde_json::to_value(o),
            Object::ConfigMap(o) => serde_json::to_value(o),
            Object::DaemonSet(o) => serde_json::to_value(o),
            Object::Ingress(o) => serde_json::to_value(o),
            Object::Service(o) => serde_json::to_value(o),
            Object::Monitoring(m) => return m.value.clone(),
            Object::CustomResourceDefinition(o) => serde_json::to_value(o),
            Object::VipPool(o) => return o.value.clone(),
            Object::BgpPeer(o) => return o.value.clone(),
            Object::Secret(o) => serde_json::to_value(o),
            Object::Kustomization(_) => return Value::Null,
        };
        v.expect("k8s-openapi objects serialize")
    }

    /// (kind, namespace, name)
    fn key(&self) -> (String, String, String) {
        let meta = self.metadata();
        (
            self.kind().to_string(),
            meta.and_then(|m| m.namespace.clone()).unwrap_or_default(),
            meta.and_then(|m| m.name.clone()).unwrap_or_default(),
        )
    }
}

/// Differences between what the file says and what the typed object holds.
fn diff(path: &str, file: &Value, typed: &Value, out: &mut Vec<String>) {
    match (file, typed) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, va) in a {
                let p = format!("{path}.{k}");
                match b.get(k) {
                    Some(vb) => diff(&p, va, vb, out),
                    None => out.push(format!("{p}: not a field of the API type (dropped)")),
                }
            }
            for k in b.keys().filter(|k| !a.contains_key(*k)) {
                out.push(format!("{path}.{k}: appeared in the typed object"));
            }
        }
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => {
            for (i, (va, vb)) in a.iter().zip(b).enumerate() {
                diff(&format!("{path}[{i}]"), va, vb, out);
            }
        }
        _ if file == typed => {}
        // A float field written as an integer (a schema's `minimum: 0`) is the same number.
        (Value::Number(a), Value::Number(b)) if a.as_f64() == b.as_f64() => {}
        _ => out.push(format!("{path}: file has {file}, typed object has {typed}")),
    }
}

fn typed<T>(doc: &str, value: &Value, origin: &str) -> Result<T, String>
where
    T: Resource + DeserializeOwned + Serialize,
{
    if value.get("apiVersion").and_then(Value::as_str) != Some(T::API_VERSION) {
        return Err(format!(
            "{origin}: kind {} needs apiVersion {}, found {}",
            T::KIND,
            T::API_VERSION,
            value.get("apiVersion").unwrap_or(&Value::Null)
        ));
    }
    let obj: T = serde_saphyr::from_str(doc)
        .map_err(|e| format!("{origin}: does not parse as {}: {e}", T::KIND))?;
    let back = serde_json::to_value(&obj).map_err(|e| format!("{origin}: {e}"))?;
    let mut diffs = Vec::new();
    diff("", value, &back, &mut diffs);
    if diffs.is_empty() {
        Ok(obj)
    } else {
        Err(format!(
            "{origin}: {} fields do not survive the round trip through the API type \
             (misspelled or misplaced?):\n  {}",
            T::KIND,
            diffs.join("\n  ")
        ))
    }
}

/// Parses a YAML stream into typed objects; an unknown kind or a bad field is an error.
fn parse_stream(text: &str, origin: &str) -> Result<Vec<Doc>, String> {
    let docs = split_documents(text);
    let values: Vec<Value> =
        serde_saphyr::from_multiple(text).map_err(|e| format!("{origin}: not valid YAML: {e}"))?;
    let values: Vec<Value> = values.into_iter().filter(|v| !v.is_null()).collect();
    if values.len() != docs.len() {
        return Err(format!(
            "{origin}: {} YAML documents but {} `---`-separated parts",
            values.len(),
            docs.len()
        ));
    }
    let mut out = Vec::new();
    for (i, (doc, value)) in docs.iter().zip(&values).enumerate() {
        let origin = format!("{origin}#{i}");
        let single: Value = serde_saphyr::from_str(doc).map_err(|e| format!("{origin}: {e}"))?;
        if &single != value {
            return Err(format!(
                "{origin}: document split differs from the YAML parser's"
            ));
        }
        let kind = value
            .get("kind")
            .and_then(Value::as_str)
            .ok_or_else(|| format!("{origin}: no kind"))?;
        let obj = match kind {
            "Namespace" => Object::Namespace(typed(doc, value, &origin)?),
            "ServiceAccount" => Object::ServiceAccount(typed(doc, value, &origin)?),
            "ClusterRole" => Object::ClusterRole(typed(doc, value, &origin)?),
            "ClusterRoleBinding" => Object::ClusterRoleBinding(typed(doc, value, &origin)?),
            "Role" => Object::Role(typed(doc, value, &origin)?),
            "RoleBinding" => Object::RoleBinding(typed(doc, value, &origin)?),
            "ConfigMap" => Object::ConfigMap(typed(doc, value, &origin)?),
            "DaemonSet" => Object::DaemonSet(typed(doc, value, &origin)?),
            "Ingress" => Object::Ingress(typed(doc, value, &origin)?),
            "Service" => Object::Service(typed(doc, value, &origin)?),
            "CustomResourceDefinition" => {
                Object::CustomResourceDefinition(typed(doc, value, &origin)?)
            }
            "VIPPool" => Object::VipPool(vippool(doc, value, &origin)?),
            "BGPPeer" => Object::BgpPeer(bgppeer(doc, value, &origin)?),
            "Secret" => Object::Secret(typed(doc, value, &origin)?),
            k if MONITORING_KINDS.contains(&k) => {
                Object::Monitoring(monitoring(k, doc, value, &origin)?)
            }
            "Kustomization" => {
                let k: Kustomization =
                    serde_saphyr::from_str(doc).map_err(|e| format!("{origin}: {e}"))?;
                if k.api_version != "kustomize.config.k8s.io/v1beta1" {
                    return Err(format!(
                        "{origin}: kustomization apiVersion {}",
                        k.api_version
                    ));
                }
                Object::Kustomization(k)
            }
            other => return Err(format!("{origin}: unknown kind {other:?}")),
        };
        out.push(Doc { origin, obj });
    }
    Ok(out)
}

fn deploy_dir() -> PathBuf {
    repo_root().join("deploy")
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("dir entry").path())
        .filter(|p| {
            p.is_file()
                && matches!(
                    p.extension().and_then(|e| e.to_str()),
                    Some("yaml") | Some("yml")
                )
        })
        .collect();
    files.sort();
    files
}

fn load_dir(sub: &str) -> Vec<Doc> {
    let dir = deploy_dir().join(sub);
    let files = yaml_files(&dir);
    assert!(!files.is_empty(), "no YAML files in {}", dir.display());
    let mut docs = Vec::new();
    for f in files {
        let origin = f
            .strip_prefix(repo_root())
            .unwrap_or(&f)
            .display()
            .to_string();
        docs.extend(parse_stream(&read(&f), &origin).unwrap_or_else(|e| panic!("{e}")));
    }
    docs
}

fn plain() -> Vec<Doc> {
    load_dir("")
}
fn optional() -> Vec<Doc> {
    load_dir("optional")
}
fn examples() -> Vec<Doc> {
    load_dir("examples")
}
fn crds() -> Vec<Doc> {
    load_dir("crds")
}

/// The DaemonSet's (only) container, edgevip.
fn edgevip_container(ds: &DaemonSet) -> &Container {
    &ds.spec
        .as_ref()
        .expect("spec")
        .template
        .spec
        .as_ref()
        .expect("pod spec")
        .containers[0]
}

fn the_daemonset(docs: &[Doc]) -> &DaemonSet {
    let all: Vec<&DaemonSet> = docs
        .iter()
        .filter_map(|d| match &d.obj {
            Object::DaemonSet(ds) => Some(ds),
            _ => None,
        })
        .collect();
    assert_eq!(all.len(), 1, "exactly one DaemonSet expected");
    all[0]
}

fn container_args(ds: &DaemonSet) -> Vec<String> {
    ds.spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .and_then(|p| p.containers.first())
        .and_then(|c| c.args.clone())
        .unwrap_or_default()
}

/// The LoadBalancer args that deploy/05-daemonset.yaml shows commented out (`# - …`).
fn lb_example_args() -> Vec<String> {
    commented_list_items(&read(&deploy_dir().join("05-daemonset.yaml")))
}

fn configmaps(docs: &[Doc]) -> Vec<&ConfigMap> {
    docs.iter()
        .filter_map(|d| match &d.obj {
            Object::ConfigMap(c) => Some(c),
            _ => None,
        })
        .collect()
}

fn workspace_version() -> String {
    let text = read(&repo_root().join("Cargo.toml"));
    let mut in_pkg = false;
    for line in text.lines() {
        let t = line.trim();
        if t.starts_with('[') {
            in_pkg = t == "[workspace.package]";
        } else if in_pkg && let Some(v) = t.strip_prefix("version") {
            let v = v.trim_start().trim_start_matches('=').trim();
            return v.trim_matches('"').to_string();
        }
    }
    panic!("no version in [workspace.package]");
}

// ---------------------------------------------------------------------------------------
// The DaemonSet

/// Flag -> value ("" for switches). `--flag=value` and `--flag value` both accepted.
fn parse_args(args: &[String]) -> Result<BTreeMap<String, String>, String> {
    let mut out = BTreeMap::new();
    let mut it = args.iter();
    match it.next().map(String::as_str) {
        Some("run") => {}
        other => {
            return Err(format!(
                "args must start with the `run` subcommand, got {other:?}"
            ));
        }
    }
    while let Some(a) = it.next() {
        let (flag, value) = match a.split_once('=') {
            Some((f, v)) => (f.to_string(), v.to_string()),
            None if SWITCHES.contains(&a.as_str()) => (a.clone(), String::new()),
            None => {
                let v = it
                    .next()
                    .ok_or_else(|| format!("flag {a} has no value"))?
                    .clone();
                if v.starts_with("--") {
                    return Err(format!("flag {a} is followed by another flag {v}"));
                }
                (a.clone(), v)
            }
        };
        if !KNOWN_FLAGS.contains(&flag.as_str()) {
            return Err(format!("unknown flag {flag}"));
        }
        if out.insert(flag.clone(), value).is_some() {
            return Err(format!("flag {flag} given twice"));
        }
    }
    Ok(out)
}

/// `--address-pool`: comma-separated `A-B` ranges (one family, low to high), CIDRs and
/// single addresses, as the daemon parses it (`Pool::parse`); empty is allowed.
fn parse_pool(s: &str) -> Result<Vec<(IpAddr, IpAddr)>, String> {
    let num = |a: IpAddr| match a {
        IpAddr::V4(a) => u128::from(u32::from(a)),
        IpAddr::V6(a) => u128::from(a),
    };
    let ip = |a: &str| {
        a.trim()
            .parse::<IpAddr>()
            .map_err(|_| format!("{a:?} is not an address"))
    };
    let mut out = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        if let Some((a, b)) = part.split_once('-') {
            let (a, b) = (ip(a)?, ip(b)?);
            if a.is_ipv4() != b.is_ipv4() || num(a) > num(b) {
                return Err(format!("{part:?}: not low-high in one family"));
            }
            out.push((a, b));
        } else if let Some((a, len)) = part.split_once('/') {
            let a = ip(a)?;
            let max = if a.is_ipv4() { 32 } else { 128 };
            let len: u32 = len
                .parse()
                .ok()
                .filter(|l| *l <= max)
                .ok_or_else(|| format!("{part:?}: bad prefix length"))?;
            let host = if len == max {
                0
            } else {
                (1u128 << (max - len)) - 1
            };
            let (lo, hi) = (num(a) & !host, num(a) | host);
            let back = |n: u128| -> IpAddr {
                if a.is_ipv4() {
                    IpAddr::V4(std::net::Ipv4Addr::from(n as u32))
                } else {
                    IpAddr::V6(std::net::Ipv6Addr::from(n))
                }
            };
            out.push((back(lo), back(hi)));
        } else {
            let a = ip(part)?;
            out.push((a, a));
        }
    }
    Ok(out)
}

fn pool_contains(pool: &[(IpAddr, IpAddr)], ip: IpAddr) -> bool {
    let num = |a: IpAddr| match a {
        IpAddr::V4(a) => u128::from(u32::from(a)),
        IpAddr::V6(a) => u128::from(a),
    };
    pool.iter()
        .any(|(a, b)| a.is_ipv4() == ip.is_ipv4() && num(*a) <= num(ip) && num(ip) <= num(*b))
}

/// A Kubernetes qualified name with a DNS-subdomain prefix, as `spec.loadBalancerClass`
/// must be (`edgevip.io/vip`).
fn is_qualified_name(s: &str) -> bool {
    let Some((prefix, name)) = s.split_once('/') else {
        return false;
    };
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && l.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    let name_ok = !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && name.as_bytes()[0].is_ascii_alphanumeric()
        && name.as_bytes()[name.len() - 1].is_ascii_alphanumeric();
    prefix.len() <= 253 && prefix.contains('.') && prefix.split('.').all(label_ok) && name_ok
}

fn http_probe(
    p: Option<&k8s_openapi::api::core::v1::Probe>,
    what: &str,
    path: &str,
    port: i32,
    problems: &mut Vec<String>,
) {
    let Some(get) = p.and_then(|p| p.http_get.as_ref()) else {
        problems.push(format!("{what}: no httpGet probe"));
        return;
    };
    if get.path.as_deref() != Some(path) {
        problems.push(format!("{what}: path {:?}, want {path}", get.path));
    }
    if get.port != IntOrString::Int(port) && get.port != IntOrString::String("api".into()) {
        problems.push(format!("{what}: port {:?}, want {port}", get.port));
    }
}

/// The invariants of the edgevip DaemonSet, shared by deploy/ and the Helm chart.
fn check_daemonset(ds: &DaemonSet, configmap_ref: &str, sa: &str) -> Vec<String> {
    let mut p = Vec::new();
    let Some(spec) = &ds.spec else {
        return vec!["no spec".into()];
    };
    // Rollout: one node at a time.
    match spec.update_strategy.as_ref() {
        Some(us) if us.type_.as_deref() == Some("RollingUpdate") => {
            let mu = us
                .rolling_update
                .as_ref()
                .and_then(|r| r.max_unavailable.clone());
            if mu != Some(IntOrString::Int(1)) {
                p.push(format!("maxUnavailable {mu:?}, want 1"));
            }
        }
        other => p.push(format!("updateStrategy {other:?}, want RollingUpdate")),
    }
    // The selector must select the template.
    let tmpl_labels = spec
        .template
        .metadata
        .as_ref()
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    for (k, v) in spec.selector.match_labels.clone().unwrap_or_default() {
        if tmpl_labels.get(&k) != Some(&v) {
            p.push(format!(
                "selector {k}={v} does not match the pod template's labels"
            ));
        }
    }
    let Some(pod) = &spec.template.spec else {
        p.push("no pod spec".into());
        return p;
    };
    if pod.host_network != Some(true) {
        p.push("hostNetwork must be true".into());
    }
    if pod.dns_policy.as_deref() != Some("ClusterFirstWithHostNet") {
        p.push(format!(
            "dnsPolicy {:?}, want ClusterFirstWithHostNet",
            pod.dns_policy
        ));
    }
    if pod.host_pid == Some(true) || pod.host_ipc == Some(true) {
        p.push("hostPID / hostIPC must stay off".into());
    }
    let want_sel = BTreeMap::from([("edgenode".to_string(), "true".to_string())]);
    if pod.node_selector.as_ref() != Some(&want_sel) {
        p.push(format!(
            "nodeSelector {:?}, want edgenode=true",
            pod.node_selector
        ));
    }
    if pod.tolerations.as_ref().is_some_and(|t| !t.is_empty()) {
        p.push("no tolerations by default".into());
    }
    if pod.service_account_name.as_deref() != Some(sa) {
        p.push(format!(
            "serviceAccountName {:?}, want {sa}",
            pod.service_account_name
        ));
    }
    match pod.termination_grace_period_seconds {
        Some(s) if s >= 10 => {}
        other => p.push(format!(
            "terminationGracePeriodSeconds {other:?}: the handoff needs >= 10"
        )),
    }
    for v in pod.volumes.iter().flatten() {
        if v.host_path.is_some() {
            p.push(format!("volume {} mounts a host path", v.name));
        }
    }
    if let Some(psc) = &pod.security_context
        && (psc.run_as_non_root == Some(true) || psc.sysctls.is_some())
    {
        p.push("pod securityContext must not set runAsNonRoot or sysctls".into());
    }
    if pod.init_containers.as_ref().is_some_and(|c| !c.is_empty()) {
        p.push("no init containers (nothing may run privileged before edgevip)".into());
    }
    if pod.containers.len() != 1 {
        p.push(format!("{} containers, want 1", pod.containers.len()));
        return p;
    }
    let c = &pod.containers[0];
    let want_image = format!("ghcr.io/edgevip/edgevip:{}", workspace_version());
    if c.image.as_deref() != Some(want_image.as_str()) {
        p.push(format!("image {:?}, want {want_image}", c.image));
    }
    if c.command.is_some() {
        p.push("command must stay unset: the image's ENTRYPOINT is /edgevip".into());
    }
    // Security context: the heart of it.
    match &c.security_context {
        None => p.push("container has no securityContext".into()),
        Some(sc) => {
            if sc.privileged != Some(false) {
                p.push(format!("privileged {:?}, want false", sc.privileged));
            }
            if sc.allow_privilege_escalation != Some(false) {
                p.push("allowPrivilegeEscalation must be false".into());
            }
            if sc.read_only_root_filesystem != Some(true) {
                p.push("readOnlyRootFilesystem must be true".into());
            }
            if sc.run_as_user != Some(0) {
                p.push(format!("runAsUser {:?}, want 0", sc.run_as_user));
            }
            let caps = sc.capabilities.clone().unwrap_or_default();
            let add: BTreeSet<String> = caps.add.unwrap_or_default().into_iter().collect();
            // NET_ADMIN: VIPs over rtnetlink, VRRP multicast, the NAT rules (nft). NET_RAW:
            // the raw VRRP and ARP sockets. NET_BIND_SERVICE: PROXY-mode listeners on
            // VIP:port below 1024 (80, 443) in the node's network namespace.
            let want_add: BTreeSet<String> = ["NET_ADMIN", "NET_RAW", "NET_BIND_SERVICE"]
                .iter()
                .map(|s| s.to_string())
                .collect();
            if add != want_add {
                p.push(format!(
                    "capabilities.add {add:?}, want exactly NET_ADMIN, NET_RAW, NET_BIND_SERVICE"
                ));
            }
            if caps.drop != Some(vec!["ALL".to_string()]) {
                p.push(format!("capabilities.drop {:?}, want [ALL]", caps.drop));
            }
            let seccomp = sc.seccomp_profile.as_ref().map(|s| s.type_.as_str());
            if seccomp != Some("RuntimeDefault") {
                p.push(format!("seccompProfile {seccomp:?}, want RuntimeDefault"));
            }
        }
    }
    // NODE_NAME from the downward API.
    let node_name = c
        .env
        .iter()
        .flatten()
        .find(|e| e.name == "NODE_NAME")
        .and_then(|e| e.value_from.as_ref())
        .and_then(|v| v.field_ref.as_ref())
        .map(|f| f.field_path.as_str());
    if node_name != Some("spec.nodeName") {
        p.push(format!(
            "env NODE_NAME from {node_name:?}, want fieldRef spec.nodeName"
        ));
    }
    // Command line.
    let args = c.args.clone().unwrap_or_default();
    let flags = match parse_args(&args) {
        Ok(f) => f,
        Err(e) => {
            p.push(format!("args {args:?}: {e}"));
            BTreeMap::new()
        }
    };
    let flag = |f: &str| flags.get(f).map(String::as_str);
    if flag("--kubernetes") != Some("") {
        p.push("args lack --kubernetes".into());
    }
    if flag("--services-configmap") != Some(configmap_ref) {
        p.push(format!(
            "--services-configmap {:?}, want {configmap_ref}",
            flag("--services-configmap")
        ));
    }
    if flag("--node-name") != Some("$(NODE_NAME)") {
        p.push(format!(
            "--node-name {:?}, want $(NODE_NAME)",
            flag("--node-name")
        ));
    }
    // The peers are the nodes the DaemonSet runs on.
    if let Some(sel) = flag("--node-selector") {
        let pairs: BTreeMap<String, String> = sel
            .split(',')
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        if Some(&pairs) != pod.node_selector.as_ref() {
            p.push(format!(
                "--node-selector {sel} differs from the pod's nodeSelector"
            ));
        }
    }
    if let Some(v) = flag("--vrid")
        && !v.parse::<u8>().is_ok_and(|v| v >= 1)
    {
        p.push(format!("--vrid {v} is not in 1..255"));
    }
    if let Some(v) = flag("--unicast")
        && v != "true"
        && v != "false"
    {
        p.push(format!("--unicast={v}: want true or false"));
    }
    // Forwarding: on unless `--forwarding=false`; the PROXY header matters only when on.
    let forwarding = flag("--forwarding");
    if let Some(v) = forwarding
        && v != "true"
        && v != "false"
    {
        p.push(format!("--forwarding={v}: want true or false"));
    }
    if let Some(v) = flag("--proxy-protocol") {
        if !PROXY_PROTOCOLS.contains(&v) {
            p.push(format!(
                "--proxy-protocol {v:?}: want one of {PROXY_PROTOCOLS:?}"
            ));
        }
        if forwarding == Some("false") {
            p.push(format!(
                "--proxy-protocol {v} with --forwarding=false: forwarding is off, it does nothing"
            ));
        }
    }
    // LoadBalancer mode: its settings only with the switch, a VRID of its own.
    let lb_on = flag("--load-balancers").is_some();
    if !lb_on {
        let stray: Vec<&&str> = LB_FLAGS
            .iter()
            .filter(|f| flags.contains_key(**f))
            .collect();
        if !stray.is_empty() {
            p.push(format!(
                "{stray:?} without --load-balancers: LoadBalancer mode is off, they do nothing"
            ));
        }
    }
    if flag("--load-balancers").is_some_and(|v| !v.is_empty()) {
        p.push("--load-balancers takes no value".into());
    }
    if flag("--default-load-balancer-class").is_some_and(|v| !v.is_empty()) {
        p.push("--default-load-balancer-class takes no value".into());
    }
    if let Some(c) = flag("--load-balancer-class")
        && !is_qualified_name(c)
    {
        p.push(format!(
            "--load-balancer-class {c:?}: a loadBalancerClass is a label-style prefixed name \
             (e.g. {DEFAULT_LB_CLASS})"
        ));
    }
    if let Some(pool) = flag("--address-pool")
        && let Err(e) = parse_pool(pool)
    {
        p.push(format!("--address-pool {pool:?}: {e}"));
    }
    let vrid = flag("--vrid").map_or(Some(DEFAULT_VRID), |v| v.parse::<u8>().ok());
    if let Some(v) = flag("--lb-vrid") {
        match v.parse::<u8>() {
            Ok(0) | Err(_) => p.push(format!("--lb-vrid {v:?} is not in 1..255")),
            Ok(lb) if lb_on && Some(lb) == vrid => {
                p.push(format!("--lb-vrid {lb} must differ from --vrid"))
            }
            Ok(_) => {}
        }
    }
    let range = flag("--lb-vrids").unwrap_or(DEFAULT_LB_VRIDS);
    let (a, b) = range.split_once('-').unwrap_or((range, range));
    match (a.parse::<u8>(), b.parse::<u8>()) {
        (Ok(a), Ok(b)) if a >= 1 && a <= b => {
            if lb_on && a == b && Some(a) == vrid {
                p.push(format!("--lb-vrids {range} leaves no VRID beside --vrid"));
            }
        }
        _ => p.push(format!(
            "--lb-vrids {range:?} is not FIRST-LAST with 1 <= FIRST <= LAST <= 255"
        )),
    }
    if let Some(v) = flag("--ingress-check")
        && v != "none"
        && v != "auto"
        && !v.starts_with("http://")
        && !v.starts_with("https://")
    {
        p.push(format!("--ingress-check {v}: want a URL, auto or none"));
    }
    // The API on the node's own address (downward API status.hostIP), never 0.0.0.0,
    // where it would answer on every VIP.
    let host_ip = c
        .env
        .iter()
        .flatten()
        .find(|e| e.name == "HOST_IP")
        .and_then(|e| e.value_from.as_ref())
        .and_then(|v| v.field_ref.as_ref())
        .map(|f| f.field_path.as_str());
    let api_port = match flag("--api-listen") {
        Some(l) => match l.strip_prefix("$(HOST_IP):").map(str::parse::<u16>) {
            Some(Ok(port)) if host_ip == Some("status.hostIP") => i32::from(port),
            _ => {
                p.push(format!(
                    "--api-listen {l}: want $(HOST_IP):PORT with env HOST_IP from status.hostIP (got {host_ip:?})"
                ));
                0
            }
        },
        None => API_PORT,
    };
    if api_port != API_PORT {
        p.push(format!("API port {api_port}, want {API_PORT}"));
    }
    // Probes on the API.
    http_probe(
        c.liveness_probe.as_ref(),
        "livenessProbe",
        "/healthz",
        api_port,
        &mut p,
    );
    http_probe(
        c.readiness_probe.as_ref(),
        "readinessProbe",
        "/readyz",
        api_port,
        &mut p,
    );
    let ports: Vec<i32> = c.ports.iter().flatten().map(|p| p.container_port).collect();
    if ports != vec![api_port] {
        p.push(format!("containerPorts {ports:?}, want [{api_port}]"));
    }
    // Resources: small requests, a memory limit.
    let res = c.resources.clone().unwrap_or_default();
    let req = res.requests.unwrap_or_default();
    let lim = res.limits.unwrap_or_default();
    for k in ["cpu", "memory"] {
        if !req.contains_key(k) {
            p.push(format!("no {k} request"));
        }
    }
    if !lim.contains_key("memory") {
        p.push("no memory limit".into());
    }
    p
}

fn assert_no_problems(what: &str, problems: Vec<String>) {
    assert!(problems.is_empty(), "{what}:\n  {}", problems.join("\n  "));
}

// ---------------------------------------------------------------------------------------
// RBAC

fn roles(docs: &[Doc]) -> Vec<(&Doc, bool, &str, Vec<PolicyRule>)> {
    docs.iter()
        .filter_map(|d| match &d.obj {
            Object::ClusterRole(r) => Some((
                d,
                true,
                r.metadata.name.as_deref().unwrap_or(""),
                r.rules.clone().unwrap_or_default(),
            )),
            Object::Role(r) => Some((
                d,
                false,
                r.metadata.name.as_deref().unwrap_or(""),
                r.rules.clone().unwrap_or_default(),
            )),
            _ => None,
        })
        .collect()
}

/// Problems with the rules of one (Cluster)Role. The daemon reads (get/list/watch),
/// records Events (create/patch) and, in LoadBalancer mode, merge-patches services/status
/// and vippools/status and holds the allocator Lease. Nothing else: `update` only on that one Lease, through a
/// namespaced Role (`create` cannot name its object; get/update name it).
/// The Lease whose holder writes LoadBalancer status (`--lease-name`'s default).
const ALLOCATOR_LEASE: &str = "edgevip-allocator";

fn check_rules(origin: &str, cluster: bool, rules: &[PolicyRule]) -> Vec<String> {
    let mut p = Vec::new();
    let read = ["get", "list", "watch"];
    for (i, r) in rules.iter().enumerate() {
        let at = format!("{origin} rule {i}");
        let groups = r.api_groups.clone().unwrap_or_default();
        let resources = r.resources.clone().unwrap_or_default();
        if r.non_resource_urls.is_some() {
            p.push(format!("{at}: nonResourceURLs"));
        }
        if groups.is_empty() || resources.is_empty() || r.verbs.is_empty() {
            p.push(format!("{at}: empty apiGroups/resources/verbs"));
        }
        let all: Vec<&String> = groups
            .iter()
            .chain(&resources)
            .chain(&r.verbs)
            .chain(r.resource_names.iter().flatten())
            .collect();
        if all.iter().any(|s| s.contains('*')) {
            p.push(format!("{at}: wildcard in {all:?}"));
        }
        for res in &resources {
            if matches!(
                res.as_str(),
                "secrets" | "pods/exec" | "serviceaccounts/token"
            ) {
                p.push(format!("{at}: grants {res}"));
            }
            if res == "configmaps" && cluster {
                p.push(format!(
                    "{at}: configmaps through a ClusterRole (use the namespaced Role)"
                ));
            }
            // Forwarding follows Services of any namespace: a Role would not do.
            if matches!(res.as_str(), "services" | "endpointslices") && !cluster {
                p.push(format!(
                    "{at}: {res} through a namespaced Role (the Services may live in any \
                     namespace: use the ClusterRole)"
                ));
            }
            if res == "endpointslices" && groups.iter().any(|g| g != "discovery.k8s.io") {
                p.push(format!(
                    "{at}: endpointslices are in apiGroup discovery.k8s.io, not {groups:?}"
                ));
            }
        }
        let leases = resources.iter().any(|r| r == "leases");
        let named_lease = r.resource_names.as_deref() == Some(&[ALLOCATOR_LEASE.to_string()]);
        if groups.iter().any(|g| g == "coordination.k8s.io") != leases
            || (leases && (groups.len() != 1 || resources.len() != 1))
        {
            p.push(format!(
                "{at}: leases alone, in apiGroup coordination.k8s.io only: {groups:?} {resources:?}"
            ));
        }
        if leases && cluster {
            p.push(format!(
                "{at}: leases through a ClusterRole (the allocator Lease is in edgevip's namespace)"
            ));
        }
        if leases && r.verbs.iter().any(|v| v != "create") && !named_lease {
            p.push(format!(
                "{at}: get/update on leases need resourceNames [{ALLOCATOR_LEASE:?}]"
            ));
        }
        for v in &r.verbs {
            let ok = match v.as_str() {
                "get" | "list" | "watch" => true,
                // Writes only where the daemon writes: Events, and the Service status patch.
                "create" => resources
                    .iter()
                    .all(|res| res == "events" || (res == "leases" && r.resource_names.is_none())),
                "update" => leases && named_lease,
                "patch" => resources.iter().all(|res| {
                    matches!(
                        res.as_str(),
                        "events" | "services/status" | "vippools/status"
                    )
                }),
                _ => false,
            };
            if !ok {
                p.push(format!("{at}: verb {v} on {resources:?} not allowed"));
            }
        }
        for status in ["services/status", "vippools/status"] {
            if resources.iter().any(|r| r == status)
                && r.verbs.iter().any(|v| read.contains(&v.as_str()))
            {
                p.push(format!(
                    "{at}: {status} needs patch only (the objects are read as such)"
                ));
            }
        }
        // VIPPools are edgevip.io's; edgevip.io holds nothing else.
        let ours = groups.iter().any(|g| g == "edgevip.io");
        if resources.iter().any(|r| r.starts_with("vippools")) != ours
            || (ours && groups.len() != 1)
        {
            p.push(format!(
                "{at}: vippools alone, in apiGroup edgevip.io only: {groups:?} {resources:?}"
            ));
        }
        if resources.iter().any(|r| r == "events")
            && r.verbs.iter().any(|v| read.contains(&v.as_str()))
        {
            p.push(format!("{at}: events need create/patch only"));
        }
    }
    p
}

/// The ClusterRole of LoadBalancer mode: the Service and VIPPool status patches, VIPPools
/// read, and Namespaces' labels (for pools' namespaceSelector).
fn loadbalancer_grants() -> BTreeMap<(String, String), BTreeSet<String>> {
    table(&[
        ("", "services/status", &["patch"]),
        ("edgevip.io", "vippools", &["get", "list", "watch"]),
        ("edgevip.io", "vippools/status", &["patch"]),
        ("", "namespaces", &["list", "watch"]),
    ])
}

/// (apiGroup, resource) -> verbs, flattened.
fn rule_table(rules: &[PolicyRule]) -> BTreeMap<(String, String), BTreeSet<String>> {
    let mut t: BTreeMap<(String, String), BTreeSet<String>> = BTreeMap::new();
    for r in rules {
        for g in r.api_groups.iter().flatten() {
            for res in r.resources.iter().flatten() {
                t.entry((g.clone(), res.clone()))
                    .or_default()
                    .extend(r.verbs.iter().cloned());
            }
        }
    }
    t
}

fn table(entries: &[(&str, &str, &[&str])]) -> BTreeMap<(String, String), BTreeSet<String>> {
    entries
        .iter()
        .map(|(g, r, v)| {
            (
                (g.to_string(), r.to_string()),
                v.iter().map(|s| s.to_string()).collect(),
            )
        })
        .collect()
}

/// Every binding points at a role of the set and at edgevip's ServiceAccount; every role
/// is bound.
fn check_bindings(docs: &[Doc], sa: &str, ns: &str) -> Vec<String> {
    let mut p = Vec::new();
    let cluster_roles: BTreeSet<&str> = roles(docs).iter().filter(|r| r.1).map(|r| r.2).collect();
    let ns_roles: BTreeSet<(&str, &str)> = docs
        .iter()
        .filter_map(|d| match &d.obj {
            Object::Role(r) => Some((
                r.metadata.namespace.as_deref().unwrap_or(""),
                r.metadata.name.as_deref().unwrap_or(""),
            )),
            _ => None,
        })
        .collect();
    let mut bound_cluster = BTreeSet::new();
    let mut bound_ns = BTreeSet::new();
    for d in docs {
        let (role_ref, subjects, binding_ns) = match &d.obj {
            Object::ClusterRoleBinding(b) => (&b.role_ref, &b.subjects, None),
            Object::RoleBinding(b) => (
                &b.role_ref,
                &b.subjects,
                Some(b.metadata.namespace.as_deref().unwrap_or("")),
            ),
            _ => continue,
        };
        if role_ref.api_group != "rbac.authorization.k8s.io" {
            p.push(format!(
                "{}: roleRef apiGroup {}",
                d.origin, role_ref.api_group
            ));
        }
        match (role_ref.kind.as_str(), binding_ns) {
            ("ClusterRole", None) => {
                if !cluster_roles.contains(role_ref.name.as_str()) {
                    p.push(format!(
                        "{}: ClusterRole {} not defined",
                        d.origin, role_ref.name
                    ));
                }
                bound_cluster.insert(role_ref.name.clone());
            }
            ("Role", Some(bns)) => {
                if !ns_roles.contains(&(bns, role_ref.name.as_str())) {
                    p.push(format!(
                        "{}: Role {bns}/{} not defined",
                        d.origin, role_ref.name
                    ));
                }
                bound_ns.insert(role_ref.name.clone());
            }
            (k, _) => p.push(format!("{}: unexpected roleRef kind {k}", d.origin)),
        }
        let subjects = subjects.clone().unwrap_or_default();
        let ok = subjects.len() == 1
            && subjects[0].kind == "ServiceAccount"
            && subjects[0].name == sa
            && subjects[0].namespace.as_deref() == Some(ns);
        if !ok {
            p.push(format!(
                "{}: subjects {subjects:?}, want only ServiceAccount {ns}/{sa}",
                d.origin
            ));
        }
    }
    for r in roles(docs) {
        let bound = if r.1 { &bound_cluster } else { &bound_ns };
        if !bound.contains(r.2) {
            p.push(format!("{}: {} is not bound", r.0.origin, r.2));
        }
    }
    p
}

// ---------------------------------------------------------------------------------------
// Tests: deploy/

#[test]
fn every_manifest_parses_as_its_api_type() {
    let key = |k: &str, ns: &str, n: &str| (k.to_string(), ns.to_string(), n.to_string());
    let got: Vec<_> = plain().iter().map(|d| d.obj.key()).collect();
    let want = vec![
        key("Namespace", "", NS),
        key("ServiceAccount", NS, SA),
        key("ClusterRole", "", "edgevip"),
        key("ClusterRoleBinding", "", "edgevip"),
        key("Role", NS, "edgevip"),
        key("RoleBinding", NS, "edgevip"),
        key("DaemonSet", NS, "edgevip"),
        key("Kustomization", "", ""),
    ];
    assert_eq!(got, want, "deploy/*.yaml objects, in apply order");

    let opt: BTreeSet<_> = optional().iter().map(|d| d.obj.key()).collect();
    let want_opt: BTreeSet<_> = [
        key("ClusterRole", "", "edgevip-loadbalancer"),
        key("ClusterRoleBinding", "", "edgevip-loadbalancer"),
        key("Role", NS, "edgevip-loadbalancer"),
        key("RoleBinding", NS, "edgevip-loadbalancer"),
    ]
    .into_iter()
    .collect();
    assert_eq!(opt, want_opt, "deploy/optional objects");
    // Forwarding is on by default: its grants are in the base ClusterRole, no optional file.
    assert!(
        !deploy_dir().join("optional/forwarding-rbac.yaml").exists(),
        "deploy/optional/forwarding-rbac.yaml is gone: forwarding's RBAC is in 02-clusterrole.yaml"
    );

    let ex: Vec<_> = examples().iter().map(|d| d.obj.kind()).collect();
    for k in ["ConfigMap", "Namespace", "Service", "Ingress"] {
        assert!(ex.contains(&k), "deploy/examples lacks a {k}: {ex:?}");
    }
}

#[test]
fn namespaced_objects_live_in_the_edgevip_namespace() {
    for d in plain().iter().chain(&optional()) {
        let Some(meta) = d.obj.metadata() else {
            continue;
        };
        if d.obj.is_cluster_scoped() {
            assert!(
                meta.namespace.is_none(),
                "{}: cluster-scoped with a namespace",
                d.origin
            );
        } else {
            assert_eq!(
                meta.namespace.as_deref(),
                Some(NS),
                "{}: namespace",
                d.origin
            );
        }
        let labels = meta.labels.clone().unwrap_or_default();
        assert_eq!(
            labels.get("app.kubernetes.io/name").map(String::as_str),
            Some("edgevip"),
            "{}: app.kubernetes.io/name label",
            d.origin
        );
    }
    let docs = plain();
    let ns = docs
        .iter()
        .find_map(|d| match &d.obj {
            Object::Namespace(n) => Some(n),
            _ => None,
        })
        .expect("a Namespace");
    let labels = ns.metadata.labels.clone().unwrap_or_default();
    assert_eq!(
        labels
            .get("pod-security.kubernetes.io/enforce")
            .map(String::as_str),
        Some("privileged"),
        "hostNetwork + NET_ADMIN need the privileged Pod Security level on the namespace"
    );
}

#[test]
fn daemonset_invariants() {
    let docs = plain();
    let ds = the_daemonset(&docs);
    assert_no_problems(
        "deploy/05-daemonset.yaml",
        check_daemonset(ds, &format!("{NS}/{CONFIGMAP}"), SA),
    );
    let pod = ds.spec.as_ref().unwrap().template.spec.as_ref().unwrap();
    // The handoff needs at most 4 advert intervals (0.8 s at 200ms); 30 s leaves margin.
    assert_eq!(pod.termination_grace_period_seconds, Some(30));
    assert_eq!(
        pod.priority_class_name.as_deref(),
        Some("system-node-critical")
    );
    let c = &pod.containers[0];
    let res = c.resources.clone().unwrap();
    let q =
        |m: &Option<BTreeMap<String, k8s_openapi::apimachinery::pkg::api::resource::Quantity>>,
         k: &str| { m.as_ref().and_then(|m| m.get(k)).map(|q| q.0.clone()) };
    assert_eq!(q(&res.requests, "cpu").as_deref(), Some("10m"));
    assert_eq!(q(&res.requests, "memory").as_deref(), Some("32Mi"));
    assert_eq!(q(&res.limits, "memory").as_deref(), Some("128Mi"));
    assert_eq!(
        q(&res.limits, "cpu"),
        None,
        "no CPU limit: throttling delays adverts"
    );
}

#[test]
fn daemonset_check_catches_violations() {
    let docs = plain();
    let good = the_daemonset(&docs).clone();
    let cm = format!("{NS}/{CONFIGMAP}");
    type Mutation = fn(&mut k8s_openapi::api::core::v1::PodSpec);
    let cases: Vec<(&str, Mutation)> = vec![
        ("privileged", |p| {
            p.containers[0]
                .security_context
                .as_mut()
                .unwrap()
                .privileged = Some(true)
        }),
        ("SYS_ADMIN", |p| {
            let sc = p.containers[0].security_context.as_mut().unwrap();
            sc.capabilities
                .as_mut()
                .unwrap()
                .add
                .as_mut()
                .unwrap()
                .push("SYS_ADMIN".into());
        }),
        ("no NET_BIND_SERVICE", |p| {
            let sc = p.containers[0].security_context.as_mut().unwrap();
            let add = sc.capabilities.as_mut().unwrap().add.as_mut().unwrap();
            add.retain(|c| c != "NET_BIND_SERVICE");
        }),
        ("drop not ALL", |p| {
            let sc = p.containers[0].security_context.as_mut().unwrap();
            sc.capabilities.as_mut().unwrap().drop = Some(vec!["SYS_ADMIN".into()]);
        }),
        ("hostNetwork", |p| p.host_network = Some(false)),
        ("nodeSelector", |p| p.node_selector = None),
        ("readiness", |p| {
            let r = p.containers[0].readiness_probe.as_mut().unwrap();
            r.http_get.as_mut().unwrap().path = Some("/healthz".into());
        }),
        ("grace", |p| p.termination_grace_period_seconds = Some(2)),
        ("args", |p| {
            let a = p.containers[0].args.as_mut().unwrap();
            a.retain(|a| a != "--kubernetes");
        }),
        ("typo flag", |p| {
            p.containers[0]
                .args
                .as_mut()
                .unwrap()
                .push("--vird=5".into());
        }),
        ("configmap", |p| {
            let a = p.containers[0].args.as_mut().unwrap();
            for x in a.iter_mut().filter(|x| *x == "edgevip/edgevip-vips") {
                *x = "kube-system/vip".into();
            }
        }),
    ];
    for (name, mutate) in cases {
        let mut ds = good.clone();
        mutate(ds.spec.as_mut().unwrap().template.spec.as_mut().unwrap());
        assert!(
            !check_daemonset(&ds, &cm, SA).is_empty(),
            "check_daemonset missed the {name} violation"
        );
    }
}

#[test]
fn parser_rejects_unknown_kinds_and_fields() {
    let ds = read(&deploy_dir().join("05-daemonset.yaml"));
    assert!(parse_stream(&ds, "ok").is_ok());
    let bad = [
        (
            "misspelled field",
            ds.replace("hostNetwork:", "hostNetwrok:"),
        ),
        (
            "misplaced field",
            ds.replace("      dnsPolicy:", "      dnsPolicyX:"),
        ),
        (
            "wrong type",
            ds.replace(
                "terminationGracePeriodSeconds: 30",
                "terminationGracePeriodSeconds: soon",
            ),
        ),
        (
            "wrong apiVersion",
            ds.replace("apiVersion: apps/v1", "apiVersion: v1"),
        ),
        (
            "unknown kind",
            ds.replace("kind: DaemonSet", "kind: DaemonSett"),
        ),
    ];
    for (what, text) in bad {
        assert_ne!(text, ds, "{what}: the replacement did not apply");
        assert!(parse_stream(&text, what).is_err(), "{what} was accepted");
    }
}

#[test]
fn rbac_grants_only_what_the_daemon_uses() {
    let docs = plain();
    let mut problems = Vec::new();
    for (d, cluster, _, rules) in roles(&docs).into_iter().chain(roles(&optional())) {
        problems.extend(check_rules(&d.origin, cluster, &rules));
    }
    assert_no_problems("RBAC", problems);

    // Exactly these grants by default.
    let events: &[(&str, &str, &[&str])] = &[
        ("", "events", &["create", "patch"]),
        ("events.k8s.io", "events", &["create", "patch"]),
    ];
    let by_name = |docs: &[Doc], cluster: bool, name: &str| {
        roles(docs)
            .into_iter()
            .find(|r| r.1 == cluster && r.2 == name)
            .map(|r| rule_table(&r.3))
            .unwrap_or_else(|| panic!("no {} {name}", if cluster { "ClusterRole" } else { "Role" }))
    };
    // Forwarding is on by default: Services and EndpointSlices, read-only, cluster-wide.
    let mut want = table(&[
        ("", "nodes", &["get", "list", "watch"]),
        ("", "services", &["get", "list", "watch"]),
        (
            "discovery.k8s.io",
            "endpointslices",
            &["get", "list", "watch"],
        ),
    ]);
    want.extend(table(events));
    assert_eq!(by_name(&docs, true, "edgevip"), want, "ClusterRole edgevip");
    let mut want = table(&[("", "configmaps", &["get", "list", "watch"])]);
    want.extend(table(events));
    assert_eq!(by_name(&docs, false, "edgevip"), want, "Role edgevip");

    let opt = optional();
    // LoadBalancer mode adds the status patches, VIPPools and Namespaces' labels: reading
    // Services is in the base.
    assert_eq!(
        by_name(&opt, true, "edgevip-loadbalancer"),
        loadbalancer_grants()
    );
    // One namespaced Role besides the ConfigMap's: the allocator Lease, by name.
    let lease_roles: Vec<_> = roles(&opt).into_iter().filter(|r| !r.1).collect();
    assert_eq!(
        lease_roles.len(),
        1,
        "deploy/optional: one Role (the allocator Lease)"
    );
    assert_eq!(lease_roles[0].2, "edgevip-loadbalancer");
    assert_eq!(
        rule_table(&lease_roles[0].3),
        table(&[(
            "coordination.k8s.io",
            "leases",
            &["create", "get", "update"]
        )])
    );
    // Every verb of every grant, deploy/ and deploy/optional together.
    let verbs: BTreeSet<String> = roles(&docs)
        .into_iter()
        .chain(roles(&opt))
        .flat_map(|r| r.3)
        .flat_map(|r| r.verbs)
        .collect();
    let allowed: BTreeSet<String> = ["get", "list", "watch", "create", "patch", "update"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert!(
        verbs.is_subset(&allowed),
        "verbs {verbs:?}: only get/list/watch/create/patch (update: the Lease, see check_rules)"
    );
    // Services and EndpointSlices: only in the base ClusterRole, nowhere else.
    for (d, cluster, name, rules) in roles(&docs).into_iter().chain(roles(&opt)) {
        let t = rule_table(&rules);
        let has = |g: &str, r: &str| t.contains_key(&(g.to_string(), r.to_string()));
        if !(cluster && name == "edgevip") {
            assert!(
                !has("", "services") && !has("discovery.k8s.io", "endpointslices"),
                "{}: {name} grants services/endpointslices (the base ClusterRole has them)",
                d.origin
            );
        }
    }
}

#[test]
fn rbac_check_catches_violations() {
    let rule = |g: &str, r: &str, v: &[&str]| PolicyRule {
        api_groups: Some(vec![g.into()]),
        resources: Some(vec![r.into()]),
        verbs: v.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    };
    let bad = [
        (true, rule("", "configmaps", &["get"])),
        (false, rule("", "*", &["get"])),
        (false, rule("", "nodes", &["*"])),
        (false, rule("", "nodes", &["delete"])),
        (false, rule("", "nodes", &["patch"])),
        (false, rule("", "secrets", &["get"])),
        (false, rule("coordination.k8s.io", "leases", &["update"])),
        (false, rule("coordination.k8s.io", "leases", &["get"])),
        (true, rule("coordination.k8s.io", "leases", &["create"])),
        (false, rule("", "leases", &["create"])),
        (false, rule("coordination.k8s.io", "leases", &["delete"])),
        (
            false,
            rule("coordination.k8s.io", "leases", &["create", "patch"]),
        ),
        (false, rule("", "events", &["list"])),
        (true, rule("", "services/status", &["update"])),
        (true, rule("", "services/status", &["create"])),
        (true, rule("", "services/status", &["get", "patch"])),
        (true, rule("", "services", &["patch"])),
        (true, rule("", "services", &["update"])),
        (false, rule("", "events", &["update"])),
        (false, rule("", "configmaps", &["create"])),
        (true, rule("", "nodes", &["update"])),
        (false, rule("", "services", &["get", "list", "watch"])),
        (
            false,
            rule(
                "discovery.k8s.io",
                "endpointslices",
                &["get", "list", "watch"],
            ),
        ),
        (true, rule("", "endpointslices", &["get", "list", "watch"])),
        (true, rule("discovery.k8s.io", "endpointslices", &["patch"])),
        (true, rule("edgevip.io", "vippools", &["patch"])),
        (true, rule("edgevip.io", "vippools/status", &["update"])),
        (
            true,
            rule("edgevip.io", "vippools/status", &["get", "patch"]),
        ),
        (true, rule("", "vippools", &["get", "list", "watch"])),
        (true, rule("edgevip.io", "services", &["get"])),
        (true, rule("", "namespaces", &["patch"])),
        (
            true,
            rule("discovery.k8s.io", "endpointslices", &["create"]),
        ),
        (
            true,
            rule("discovery.k8s.io", "endpointslices", &["update"]),
        ),
    ];
    for (cluster, r) in bad {
        assert!(
            !check_rules("t", cluster, std::slice::from_ref(&r)).is_empty(),
            "accepted {r:?} (cluster: {cluster})"
        );
    }
    // The grants the daemon needs pass.
    let good = [
        (true, rule("", "services", &["get", "list", "watch"])),
        (
            true,
            rule(
                "discovery.k8s.io",
                "endpointslices",
                &["get", "list", "watch"],
            ),
        ),
        (true, rule("", "services/status", &["patch"])),
        (
            true,
            rule("edgevip.io", "vippools", &["get", "list", "watch"]),
        ),
        (true, rule("edgevip.io", "vippools/status", &["patch"])),
        (true, rule("", "namespaces", &["list", "watch"])),
        (true, rule("events.k8s.io", "events", &["create", "patch"])),
        (false, rule("", "configmaps", &["get", "list", "watch"])),
        (false, rule("coordination.k8s.io", "leases", &["create"])),
        (
            false,
            PolicyRule {
                resource_names: Some(vec![ALLOCATOR_LEASE.into()]),
                ..rule("coordination.k8s.io", "leases", &["get", "update"])
            },
        ),
    ];
    // Named, but another Lease: refused.
    let other = PolicyRule {
        resource_names: Some(vec!["kube-scheduler".into()]),
        ..rule("coordination.k8s.io", "leases", &["get", "update"])
    };
    assert!(!check_rules("t", false, std::slice::from_ref(&other)).is_empty());
    for (cluster, r) in good {
        assert_no_problems(
            &format!("{r:?}"),
            check_rules("t", cluster, std::slice::from_ref(&r)),
        );
    }
}

#[test]
fn the_service_account_is_bound_and_used() {
    let docs = plain();
    let sa = docs.iter().find_map(|d| match &d.obj {
        Object::ServiceAccount(s) => Some(s),
        _ => None,
    });
    let sa = sa.expect("a ServiceAccount");
    assert_eq!(sa.metadata.name.as_deref(), Some(SA));
    assert_no_problems("deploy/ bindings", check_bindings(&docs, SA, NS));
    assert_no_problems(
        "deploy/optional bindings",
        check_bindings(&optional(), SA, NS),
    );
    let kinds: BTreeSet<&str> = docs.iter().map(|d| d.obj.kind()).collect();
    assert!(kinds.contains("ClusterRoleBinding") && kinds.contains("RoleBinding"));
}

/// The example a user starts from: deploy/examples/configmap-simple.yaml.
fn simple_example() -> ConfigMap {
    let origin = "deploy/examples/configmap-simple.yaml";
    let docs = parse_stream(&read(&repo_root().join(origin)), origin).unwrap();
    let cms = configmaps(&docs);
    assert_eq!(cms.len(), 1, "{origin}: one ConfigMap");
    cms[0].clone()
}

#[test]
fn vip_configmap_holds_valid_entries() {
    // The ConfigMap is the user's: the default install has none, so re-applying it never
    // overwrites the entries.
    let docs = plain();
    assert!(
        configmaps(&docs).is_empty(),
        "deploy/ (the default install) must not hold the VIP ConfigMap"
    );
    let cm = simple_example();
    assert_eq!(cm.metadata.name.as_deref(), Some(CONFIGMAP));
    assert_eq!(cm.metadata.namespace.as_deref(), Some(NS));
    let data = cm.data.clone().unwrap_or_default();
    assert!(!data.is_empty(), "no VIPs");
    assert!(cm.binary_data.is_none());
    check_vip_entries("deploy/examples/configmap-simple.yaml", &data);
    // The seed: the VIP in front of the ingress controller serving foo.bar.com/bar.foo.com.
    assert_eq!(
        data.get("192.0.2.100").map(String::as_str),
        Some("ingress-nginx/ingress-nginx-controller")
    );
}

fn check_vip_entries(origin: &str, data: &BTreeMap<String, String>) {
    for (k, v) in data {
        if k == "edgevip.yaml" {
            check_rich(origin, v);
            continue;
        }
        assert!(
            k.parse::<IpAddr>().is_ok(),
            "{origin}: key {k:?} is not an IP address"
        );
        assert!(
            is_vip_target(v),
            "{origin}: value {v:?} of {k} is not <ns>/<svc>[:NAT|DR|PROXY] or empty"
        );
    }
}

#[derive(Debug, Deserialize)]
struct Rich {
    #[serde(default)]
    spread: bool,
    instances: Vec<RichInstance>,
}

#[derive(Debug, Deserialize)]
struct RichInstance {
    name: String,
    vrid: u8,
    vips: Vec<String>,
    #[serde(default)]
    health_checks: Vec<RichCheck>,
}

#[derive(Debug, Deserialize)]
struct RichCheck {
    name: String,
    http: Option<RichHttp>,
    rise: Option<u32>,
    fall: Option<u32>,
}

#[derive(Debug, Deserialize)]
struct RichHttp {
    url: String,
    expect_status: Option<u16>,
}

fn check_rich(origin: &str, text: &str) {
    let rich: Rich = serde_saphyr::from_str(text)
        .unwrap_or_else(|e| panic!("{origin}: edgevip.yaml does not parse: {e}"));
    assert!(!rich.instances.is_empty(), "{origin}: no instances");
    let mut names = BTreeSet::new();
    let mut vrids = BTreeSet::new();
    for i in &rich.instances {
        assert!(
            is_dns1123_label(&i.name),
            "{origin}: instance name {:?}",
            i.name
        );
        assert!(
            names.insert(&i.name),
            "{origin}: duplicate instance {}",
            i.name
        );
        assert!(i.vrid >= 1, "{origin}: {}: vrid 0", i.name);
        assert!(vrids.insert(i.vrid), "{origin}: duplicate vrid {}", i.vrid);
        assert!(!i.vips.is_empty(), "{origin}: {}: no VIPs", i.name);
        for v in &i.vips {
            let (addr, len) = v.split_once('/').unwrap_or((v, "32"));
            let addr: IpAddr = addr
                .parse()
                .unwrap_or_else(|_| panic!("{origin}: {}: VIP {v:?}", i.name));
            let max = if addr.is_ipv4() { 32 } else { 128 };
            assert!(
                len.parse::<u8>().is_ok_and(|l| l <= max),
                "{origin}: {}: prefix of {v:?}",
                i.name
            );
        }
        for c in &i.health_checks {
            assert!(!c.name.is_empty());
            if let Some(h) = &c.http {
                assert!(h.url.starts_with("http"), "{origin}: check url {}", h.url);
                assert!(h.expect_status.is_none_or(|s| (100..600).contains(&s)));
            }
            assert!(c.rise.is_none_or(|r| r >= 1) && c.fall.is_none_or(|f| f >= 1));
        }
    }
    assert!(
        !rich.spread || rich.instances.len() >= 2,
        "{origin}: spread needs several instances"
    );
}

#[test]
fn example_configmap_and_ingress() {
    let docs = examples();
    let ds_docs = plain();
    let ds = the_daemonset(&ds_docs);
    let args = edgevip_container(ds).args.clone().unwrap();
    let flags = parse_args(&args).unwrap();
    let simple_vrid: u8 = flags.get("--vrid").map_or(50, |v| v.parse().unwrap());
    let cms = configmaps(&docs);
    assert!(
        cms.iter().any(|c| c
            .data
            .as_ref()
            .is_some_and(|d| d.contains_key("edgevip.yaml"))),
        "an example shows the rich format"
    );
    for cm in cms {
        // Each is the VIP ConfigMap the DaemonSet reads.
        assert_eq!(cm.metadata.name.as_deref(), Some(CONFIGMAP));
        assert_eq!(cm.metadata.namespace.as_deref(), Some(NS));
        let data = cm.data.clone().unwrap_or_default();
        check_vip_entries("deploy/examples", &data);
        if !data.contains_key("edgevip.yaml") {
            continue;
        }
        let rich: Rich = serde_saphyr::from_str(&data["edgevip.yaml"]).unwrap();
        assert!(
            rich.instances.iter().all(|i| i.vrid != simple_vrid),
            "rich instances must not reuse --vrid {simple_vrid} of the simple entries"
        );
        assert!(
            rich.instances
                .iter()
                .flat_map(|i| &i.vips)
                .any(|v| v.starts_with("192.0.2.100/")),
            "the example keeps the seed's VIP"
        );
    }

    // The seed's Ingress: two hosts, each to its own Service of the same file.
    let ingresses: Vec<&Ingress> = docs
        .iter()
        .filter_map(|d| match &d.obj {
            Object::Ingress(i) => Some(i),
            _ => None,
        })
        .collect();
    assert_eq!(ingresses.len(), 1);
    let ing = ingresses[0];
    let ns = ing.metadata.namespace.clone().unwrap_or_default();
    let services: BTreeMap<(String, String), &Service> = docs
        .iter()
        .filter_map(|d| match &d.obj {
            Object::Service(s) => Some((
                (
                    s.metadata.namespace.clone().unwrap_or_default(),
                    s.metadata.name.clone().unwrap_or_default(),
                ),
                s,
            )),
            _ => None,
        })
        .collect();
    assert!(
        docs.iter()
            .any(|d| d.obj.key() == ("Namespace".into(), String::new(), ns.clone())),
        "the example's namespace {ns} is defined"
    );
    let mut hosts = BTreeMap::new();
    for rule in ing.spec.as_ref().unwrap().rules.iter().flatten() {
        let host = rule.host.clone().expect("host");
        for path in &rule.http.as_ref().expect("http").paths {
            let backend = path.backend.service.as_ref().expect("service backend");
            let svc = services
                .get(&(ns.clone(), backend.name.clone()))
                .unwrap_or_else(|| {
                    panic!("{host}: Service {ns}/{} not in the example", backend.name)
                });
            let port = backend
                .port
                .as_ref()
                .and_then(|p| p.number)
                .expect("port number");
            assert!(
                svc.spec
                    .as_ref()
                    .unwrap()
                    .ports
                    .iter()
                    .flatten()
                    .any(|p| p.port == port),
                "{host}: Service {} has no port {port}",
                backend.name
            );
            hosts.insert(host.clone(), backend.name.clone());
        }
    }
    let want: BTreeMap<String, String> = [("foo.bar.com", "s1"), ("bar.foo.com", "s2")]
        .iter()
        .map(|(h, s)| (h.to_string(), s.to_string()))
        .collect();
    assert_eq!(hosts, want);
}

#[test]
fn kustomization_lists_every_manifest_in_order() {
    let docs = plain();
    let k = docs
        .iter()
        .find_map(|d| match &d.obj {
            Object::Kustomization(k) => Some(k),
            _ => None,
        })
        .expect("deploy/kustomization.yaml");
    assert_eq!(k.kind, "Kustomization");
    // The CRDs first (nothing may use a kind before it exists), then deploy/*.yaml.
    let files: Vec<String> = yaml_files(&deploy_dir().join("crds"))
        .iter()
        .map(|p| format!("crds/{}", p.file_name().unwrap().to_string_lossy()))
        .chain(
            yaml_files(&deploy_dir())
                .iter()
                .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
                .filter(|n| n != "kustomization.yaml"),
        )
        .collect();
    assert_eq!(
        k.resources, files,
        "kustomization resources = deploy/crds/*.yaml, then deploy/*.yaml, each sorted"
    );
    // The image is overridable (`kustomize edit set image`): the entry names the
    // DaemonSet's image and pins the release's tag.
    let image = edgevip_container(the_daemonset(&docs))
        .image
        .clone()
        .unwrap();
    let (repo, tag) = image.rsplit_once(':').expect("image:tag");
    assert_eq!(k.images.len(), 1, "one images: entry");
    let e = &k.images[0];
    assert_eq!(e.name, repo, "images[0].name = the DaemonSet's image");
    assert_eq!(e.new_tag.as_deref(), Some(tag));
    assert_eq!(tag, workspace_version());
    assert!(e.new_name.is_none() && e.digest.is_none());
}

#[test]
fn versions_and_image_agree() {
    let version = workspace_version();
    let chart: Chart = serde_saphyr::from_str(&read(&chart_dir().join("Chart.yaml"))).unwrap();
    assert_eq!(
        chart.app_version, version,
        "Chart.yaml appVersion = crate version"
    );
    let docker = read(&repo_root().join("Dockerfile"));
    let (_, stages) = dockerfile_stages(&docker);
    // The runtime stage (the default image is a bare `FROM runtime`; bgp builds on it).
    let label = stages
        .iter()
        .find(|s| s.name.as_deref() == Some("runtime"))
        .expect("a runtime stage")
        .args_of("LABEL")
        .join(" ");
    let want = format!(r#"org.opencontainers.image.version="{version}""#);
    assert!(
        label.contains(&want),
        "the final stage's LABEL lacks {want}"
    );
    let ignore = read(&repo_root().join(".dockerignore"));
    let lines: BTreeSet<&str> = ignore.lines().map(str::trim).collect();
    for must in ["target/", "**/target/", "fuzz/", ".git/"] {
        assert!(lines.contains(must), ".dockerignore lacks {must}");
    }
    for keep in [
        "crates/",
        "testing/",
        "Cargo.toml",
        "Cargo.lock",
        "crates",
        "testing",
        "*",
    ] {
        assert!(
            !lines.contains(keep),
            ".dockerignore must not exclude {keep}"
        );
    }
}

// ---------------------------------------------------------------------------------------
// The Dockerfile

/// The `RUN` commands of a stage, each split into its simple commands (env assignments in
/// front of a command dropped).
fn run_commands(stage: &Stage) -> Vec<Vec<Vec<String>>> {
    stage
        .args_of("RUN")
        .into_iter()
        .map(|r| {
            shell_commands(r)
                .into_iter()
                .map(|c| c.into_iter().skip_while(|w| is_env_assignment(w)).collect())
                .collect()
        })
        .collect()
}

fn is_env_assignment(word: &str) -> bool {
    word.split_once('=').is_some_and(|(name, _)| {
        !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
    })
}

/// The image: the binary built in a Rust stage, run on debian:bookworm-slim with Debian's
/// nftables (NAT forwarding runs `nft -j -f -`) and nothing else worth mentioning.
fn check_dockerfile(text: &str) -> Vec<String> {
    let mut p = Vec::new();
    let (global, stages) = dockerfile_stages(text);
    let global_args: Vec<&str> = global
        .iter()
        .filter(|i| i.keyword == "ARG")
        .map(|i| i.args.as_str())
        .collect();
    if global_args != ["RUST_IMAGE=rust:1.95-bookworm"] {
        p.push(format!(
            "global ARGs {global_args:?}, want only RUST_IMAGE=rust:1.95-bookworm (no \
             RUNTIME_IMAGE: the runtime stage installs packages with apt-get)"
        ));
    }
    // builder, runtime, bgp (runtime + FRR, `--target bgp`) and the default image: a bare
    // `FROM runtime`, so a plain `docker build .` stays without FRR.
    if stages.len() != 4 {
        p.push(format!(
            "{} stages, want builder + runtime + bgp + FROM runtime",
            stages.len()
        ));
        return p;
    }
    let (builder, runtime, bgp, last) = (&stages[0], &stages[1], &stages[2], &stages[3]);
    if runtime.name.as_deref() != Some("runtime") {
        p.push(format!("second stage AS {:?}, want runtime", runtime.name));
    }
    if (
        last.image.as_str(),
        last.name.as_deref(),
        last.instructions.len(),
    ) != ("runtime", None, 0)
    {
        p.push(format!(
            "last stage FROM {} AS {:?} with {} instructions, want a bare `FROM runtime` \
             (the default target is the image without FRR)",
            last.image,
            last.name,
            last.instructions.len()
        ));
    }
    p.extend(check_bgp_stage(bgp));
    if builder.image != "${RUST_IMAGE}" || builder.name.as_deref() != Some("builder") {
        p.push(format!(
            "first stage FROM {} AS {:?}, want ${{RUST_IMAGE}} AS builder",
            builder.image, builder.name
        ));
    }
    let build = run_commands(builder).concat();
    let has = |cmds: &[Vec<String>], want: &[&str]| cmds.iter().any(|c| c == want);
    if !has(
        &build,
        &["cargo", "build", "--release", "--locked", "-p", "edgevip"],
    ) {
        p.push("builder lacks `cargo build --release --locked -p edgevip`".into());
    }
    if !has(
        &build,
        &[
            "install",
            "-D",
            "-m",
            "0755",
            "target/release/edgevip",
            "/out/edgevip",
        ],
    ) {
        p.push("builder does not install target/release/edgevip as /out/edgevip".into());
    }

    // The runtime: debian:bookworm-slim, the same Debian release as rust:*-bookworm.
    if runtime.image != "debian:bookworm-slim" {
        p.push(format!(
            "final stage FROM {}, want debian:bookworm-slim (distroless has no nft)",
            runtime.image
        ));
    }
    // One RUN: apt-get update, install nftables + ca-certificates without recommends,
    // remove the apt lists, all in the same layer.
    let runs = run_commands(runtime);
    let apt: Vec<&Vec<Vec<String>>> = runs
        .iter()
        .filter(|r| r.iter().any(|c| c.first().is_some_and(|w| w == "apt-get")))
        .collect();
    match apt.as_slice() {
        [run] => {
            let pos = |pred: &dyn Fn(&Vec<String>) -> bool| run.iter().position(pred);
            let update = pos(&|c| c[..] == ["apt-get", "update"]);
            let install = pos(&|c| c.len() > 1 && c[0] == "apt-get" && c[1] == "install");
            let clean = pos(&|c| c[..] == ["rm", "-rf", "/var/lib/apt/lists/*"]);
            match install {
                None => p.push("the final stage's RUN has no apt-get install".into()),
                Some(i) => {
                    let words = &run[i][2..];
                    let (opts, pkgs): (Vec<&String>, Vec<&String>) =
                        words.iter().partition(|w| w.starts_with('-'));
                    let pkgs: BTreeSet<&str> = pkgs.into_iter().map(String::as_str).collect();
                    if pkgs != BTreeSet::from(["nftables", "ca-certificates"]) {
                        p.push(format!(
                            "apt-get install {pkgs:?}, want exactly nftables, ca-certificates"
                        ));
                    }
                    for o in ["-y", "--no-install-recommends"] {
                        if !opts.iter().any(|x| *x == o) {
                            p.push(format!("apt-get install without {o}"));
                        }
                    }
                    if update.is_none_or(|u| u > i) {
                        p.push("apt-get update must run before apt-get install".into());
                    }
                    if clean.is_none_or(|c| c < i) {
                        p.push(
                            "the apt lists must be removed after the install, in the same RUN \
                             (rm -rf /var/lib/apt/lists/*)"
                                .into(),
                        );
                    }
                }
            }
        }
        _ => p.push(format!(
            "{} RUNs with apt-get in the final stage, want exactly one",
            apt.len()
        )),
    }
    let copies = runtime.args_of("COPY");
    if copies != ["--from=builder /out/edgevip /edgevip"] {
        p.push(format!(
            "final stage COPY {copies:?}, want only the binary: --from=builder /out/edgevip /edgevip"
        ));
    }
    // The packages first: a new binary does not redo the apt layer.
    let order: Vec<&str> = runtime
        .instructions
        .iter()
        .map(|i| i.keyword.as_str())
        .filter(|k| matches!(*k, "RUN" | "COPY"))
        .collect();
    if order != ["RUN", "COPY"] {
        p.push(format!(
            "final stage RUN/COPY order {order:?}, want the apt-get RUN before the COPY"
        ));
    }
    let one = |k: &str| runtime.args_of(k);
    for (k, want) in [
        ("ENTRYPOINT", r#"["/edgevip"]"#),
        ("CMD", r#"["run", "--kubernetes"]"#),
        ("USER", "0"),
        ("EXPOSE", "9180"),
    ] {
        if one(k) != [want] {
            p.push(format!("final stage {k} {:?}, want {want}", one(k)));
        }
    }
    let all = stages.iter().flat_map(|s| {
        std::iter::once(s.image.as_str()).chain(s.instructions.iter().map(|i| i.args.as_str()))
    });
    for a in all {
        if a.contains("distroless") || a.contains("RUNTIME_IMAGE") {
            p.push(format!(
                "{a:?}: no distroless runtime or RUNTIME_IMAGE alternative"
            ));
        }
    }
    p
}

/// The BGP variant's stage: FROM runtime AS bgp, Debian's frr and frr-pythontools in one
/// apt layer, root in frrvty (FRR's vty group check for daemons run as root), the
/// sidecar's entrypoint copied in, and nothing that changes the edgevip container's
/// ENTRYPOINT/CMD/USER (one image serves both containers).
fn check_bgp_stage(bgp: &Stage) -> Vec<String> {
    let mut p = Vec::new();
    if (bgp.image.as_str(), bgp.name.as_deref()) != ("runtime", Some("bgp")) {
        p.push(format!(
            "third stage FROM {} AS {:?}, want FROM runtime AS bgp",
            bgp.image, bgp.name
        ));
    }
    let runs = run_commands(bgp);
    match runs.as_slice() {
        [run] => {
            let install = run
                .iter()
                .find(|c| c.len() > 1 && c[0] == "apt-get" && c[1] == "install");
            let pkgs: BTreeSet<&str> = install
                .map(|c| {
                    c[2..]
                        .iter()
                        .filter(|w| !w.starts_with('-'))
                        .map(String::as_str)
                        .collect()
                })
                .unwrap_or_default();
            if pkgs != BTreeSet::from(["frr", "frr-pythontools"]) {
                p.push(format!(
                    "bgp stage installs {pkgs:?}, want exactly frr, frr-pythontools"
                ));
            }
            if !install.is_some_and(|c| c.iter().any(|w| w == "--no-install-recommends")) {
                p.push("bgp stage: apt-get install without --no-install-recommends".into());
            }
            for want in [
                &["apt-get", "update"][..],
                &["rm", "-rf", "/var/lib/apt/lists/*"],
                &["usermod", "-a", "-G", "frrvty", "root"],
            ] {
                if !run.iter().any(|c| c[..] == *want) {
                    p.push(format!("bgp stage's RUN lacks `{}`", want.join(" ")));
                }
            }
        }
        _ => p.push(format!("bgp stage: {} RUNs, want exactly one", runs.len())),
    }
    if bgp.args_of("COPY") != ["packaging/frr/frr-start /usr/local/bin/frr-start"] {
        p.push(format!(
            "bgp stage COPY {:?}, want packaging/frr/frr-start /usr/local/bin/frr-start",
            bgp.args_of("COPY")
        ));
    }
    for k in ["ENTRYPOINT", "CMD", "USER"] {
        if !bgp.args_of(k).is_empty() {
            p.push(format!(
                "bgp stage sets {k}: the edgevip container of the BGP DaemonSet inherits the runtime's"
            ));
        }
    }
    p
}

#[test]
fn dockerfile_runs_the_binary_on_bookworm_slim_with_nft() {
    let docker = read(&repo_root().join("Dockerfile"));
    assert_no_problems("Dockerfile", check_dockerfile(&docker));
    // The explanation stays with it.
    for why in ["nft -j -f -", "shell"] {
        assert!(
            docker.contains(why),
            "Dockerfile's comment lacks {why:?} (why not distroless)"
        );
    }
}

#[test]
fn dockerfile_check_catches_violations() {
    let good = read(&repo_root().join("Dockerfile"));
    let bad: &[(&str, &str, &str)] = &[
        (
            "distroless runtime",
            "FROM debian:bookworm-slim",
            "FROM gcr.io/distroless/cc-debian12",
        ),
        (
            "RUNTIME_IMAGE build-arg",
            "FROM debian:bookworm-slim",
            "ARG RUNTIME_IMAGE=debian:bookworm-slim\nFROM ${RUNTIME_IMAGE}",
        ),
        ("no nftables", "nftables ca-certificates", "ca-certificates"),
        (
            "extra package",
            "nftables ca-certificates",
            "nftables ca-certificates iproute2",
        ),
        (
            "recommends",
            "install -y --no-install-recommends",
            "install -y",
        ),
        ("apt lists kept", "rm -rf /var/lib/apt/lists/*", "true"),
        (
            "nftables only in an earlier stage",
            "COPY --from=builder /out/edgevip /edgevip",
            "FROM debian:bookworm-slim\nCOPY --from=builder /out/edgevip /edgevip",
        ),
        (
            "binary path",
            "COPY --from=builder /out/edgevip /edgevip",
            "COPY --from=builder /out/edgevip /usr/local/bin/edgevip",
        ),
        (
            "entrypoint",
            r#"ENTRYPOINT ["/edgevip"]"#,
            r#"ENTRYPOINT ["/bin/sh", "-c", "/edgevip"]"#,
        ),
        ("cmd", r#"CMD ["run", "--kubernetes"]"#, r#"CMD ["run"]"#),
        ("not locked", "--release --locked", "--release"),
        ("no FRR tools", "frr frr-pythontools", "frr"),
        ("root not in frrvty", "usermod -a -G frrvty root", "true"),
        (
            "FRR in the default image",
            "\n# The default image (the last stage): the runtime without FRR.\nFROM runtime\n",
            "\n",
        ),
        (
            "entrypoint not copied",
            "COPY packaging/frr/frr-start",
            "COPY packaging/frr/frr-stop",
        ),
    ];
    for (what, from, to) in bad {
        let text = good.replacen(from, to, 1);
        assert_ne!(text, good, "{what}: the replacement did not apply");
        assert!(
            !check_dockerfile(&text).is_empty(),
            "check_dockerfile accepted the {what} violation"
        );
    }
}

// ---------------------------------------------------------------------------------------
// Helm

fn chart_dir() -> PathBuf {
    deploy_dir().join("helm/edgevip")
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Chart {
    api_version: String,
    name: String,
    version: String,
    app_version: String,
    #[serde(rename = "type")]
    type_: String,
}

fn values() -> Value {
    serde_saphyr::from_str(&read(&chart_dir().join("values.yaml"))).expect("values.yaml")
}

fn value_at<'a>(v: &'a Value, path: &[&str]) -> &'a Value {
    path.iter().fold(v, |v, k| {
        v.get(k)
            .unwrap_or_else(|| panic!("values.yaml lacks {path:?}"))
    })
}

#[test]
fn helm_chart_metadata_and_values_parse() {
    let chart: Chart = serde_saphyr::from_str(&read(&chart_dir().join("Chart.yaml"))).unwrap();
    assert_eq!(chart.api_version, "v2");
    assert_eq!(chart.name, "edgevip");
    assert_eq!(chart.type_, "application");
    assert!(
        chart.version.split('.').count() == 3,
        "SemVer chart version"
    );
    let v = values();
    assert!(v.is_object());
    // Defaults reproduce deploy/.
    let docs = plain();
    let ds = the_daemonset(&docs);
    let pod = ds.spec.as_ref().unwrap().template.spec.as_ref().unwrap();
    let c = &pod.containers[0];
    assert_eq!(
        value_at(&v, &["nodeSelector"]),
        &serde_json::to_value(&pod.node_selector).unwrap()
    );
    assert_eq!(
        value_at(&v, &["resources"]),
        &serde_json::to_value(&c.resources).unwrap()
    );
    assert_eq!(
        value_at(&v, &["terminationGracePeriodSeconds"]).as_i64(),
        pod.termination_grace_period_seconds
    );
    assert_eq!(
        value_at(&v, &["priorityClassName"]).as_str(),
        pod.priority_class_name.as_deref()
    );
    assert_eq!(
        value_at(&v, &["api", "port"]).as_i64(),
        Some(i64::from(API_PORT))
    );
    assert_eq!(
        value_at(&v, &["updateStrategy", "maxUnavailable"]).as_i64(),
        Some(1)
    );
    assert_eq!(value_at(&v, &["tolerations"]), &serde_json::json!([]));
    assert_eq!(
        value_at(&v, &["loadBalancer", "enabled"]),
        &Value::Bool(false)
    );
    assert_eq!(
        value_at(&v, &["forwarding", "enabled"]),
        &Value::Bool(true),
        "forwarding is on by default, as in the daemon"
    );
    assert_eq!(
        value_at(&v, &["forwarding", "proxyProtocol"]).as_str(),
        Some(DEFAULT_PROXY_PROTOCOL)
    );
    let flags = parse_args(c.args.as_ref().unwrap()).unwrap();
    // deploy/ takes the daemon's forwarding defaults (on, v1), as the chart's defaults do.
    for f in FORWARDING_FLAGS {
        assert!(
            !flags.contains_key(*f),
            "deploy/05-daemonset.yaml passes {f}: the defaults need no flag"
        );
    }
    let flag = |f: &str| flags.get(f).cloned().unwrap_or_default();
    assert_eq!(value_at(&v, &["vrid"]).to_string(), flag("--vrid"));
    assert_eq!(value_at(&v, &["unicast"]).to_string(), flag("--unicast"));
    assert_eq!(
        value_at(&v, &["ingressCheck"]).as_str(),
        Some(flag("--ingress-check").as_str())
    );
    assert_eq!(
        value_at(&v, &["eligibility"]).as_str(),
        Some(flag("--eligibility").as_str())
    );
    assert_eq!(
        value_at(&v, &["releaseGrace"]).as_str(),
        Some(flag("--release-grace").as_str())
    );
    let image = format!(
        "{}:{}",
        value_at(&v, &["image", "repository"]).as_str().unwrap(),
        chart.app_version
    );
    assert_eq!(Some(image.as_str()), c.image.as_deref());
    // No VIPs by default: the ConfigMap is the user's, as with deploy/.
    assert_eq!(value_at(&v, &["vips"]), &serde_json::json!({}));
    assert_eq!(value_at(&v, &["rich"]), &serde_json::json!(""));
}

#[test]
fn helm_templates_reference_only_existing_values() {
    let v = values();
    let dir = chart_dir().join("templates");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    let names: BTreeSet<String> = files
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    for need in [
        "_helpers.tpl",
        "serviceaccount.yaml",
        "rbac.yaml",
        "configmap.yaml",
        "daemonset.yaml",
        "NOTES.txt",
    ] {
        assert!(names.contains(need), "templates/{need} missing");
    }
    let mut missing = Vec::new();
    let mut total = 0;
    for f in &files {
        let text = read(f);
        for path in values_references(&text) {
            total += 1;
            let mut at = &v;
            for seg in &path {
                match at.get(seg) {
                    Some(next) => at = next,
                    None => {
                        missing.push(format!(
                            "{}: .Values.{}",
                            f.file_name().unwrap().to_string_lossy(),
                            path.join(".")
                        ));
                        break;
                    }
                }
            }
        }
    }
    assert!(
        total > 20,
        "only {total} .Values references found: scanner broken?"
    );
    assert!(
        missing.is_empty(),
        "not in values.yaml:\n  {}",
        missing.join("\n  ")
    );
}

fn tool(name: &str) -> bool {
    Command::new(name)
        .arg("version")
        .arg("--client")
        .output()
        .or_else(|_| Command::new(name).arg("version").output())
        .is_ok()
}

/// `helm template` with these `--set`s: the rendered stream, or helm's error output.
fn try_helm_template(set: &[&str]) -> Result<String, String> {
    try_helm_template_with(set, false)
}

/// `helm template`, with the chart's crds/ when `include_crds` (what `helm install` applies).
fn try_helm_template_with(set: &[&str], include_crds: bool) -> Result<String, String> {
    let mut cmd = Command::new("helm");
    cmd.args(["template", "edgevip"]);
    if include_crds {
        cmd.arg("--include-crds");
    }
    cmd.arg(chart_dir())
        .args(["--namespace", NS])
        // Chart.yaml wants >= 1.25; older helm releases assume an older cluster.
        .args(["--kube-version", "1.30.0"]);
    for s in set {
        cmd.args(["--set", s]);
    }
    let out = cmd.output().expect("helm template");
    if out.status.success() {
        Ok(String::from_utf8(out.stdout).unwrap())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

fn helm_template(set: &[&str]) -> Vec<Doc> {
    let text =
        try_helm_template(set).unwrap_or_else(|e| panic!("helm template {set:?} failed: {e}"));
    parse_stream(&text, "helm template").unwrap_or_else(|e| panic!("{e}"))
}

/// The same with the chart's CRDs, as `helm install` creates them.
fn helm_template_with_crds(set: &[&str]) -> Vec<Doc> {
    let text = try_helm_template_with(set, true)
        .unwrap_or_else(|e| panic!("helm template --include-crds {set:?} failed: {e}"));
    parse_stream(&text, "helm template --include-crds").unwrap_or_else(|e| panic!("{e}"))
}

fn keys(docs: &[Doc]) -> BTreeSet<(String, String, String)> {
    docs.iter()
        .filter(|d| !matches!(d.obj, Object::Kustomization(_)))
        .map(|d| d.obj.key())
        .collect()
}

#[test]
fn helm_template_renders_the_same_objects() {
    if !tool("helm") {
        skip(
            "helm_template_renders_the_same_objects",
            "helm is not installed (scripts/install-deps installs it)",
        );
        return;
    }
    let plain_docs = plain();
    let rendered = helm_template(&["namespace.create=true"]);
    assert_eq!(
        keys(&rendered),
        keys(&plain_docs),
        "helm default objects vs deploy/"
    );
    let ds = the_daemonset(&rendered);
    assert_no_problems(
        "helm DaemonSet",
        check_daemonset(ds, &format!("{NS}/{CONFIGMAP}"), SA),
    );
    let args = |ds: &DaemonSet| parse_args(&container_args(ds)).unwrap();
    assert_eq!(
        args(ds),
        args(the_daemonset(&plain_docs)),
        "helm args vs deploy/"
    );
    let rules = |docs: &[Doc]| -> BTreeMap<(bool, String), _> {
        roles(docs)
            .into_iter()
            .map(|r| ((r.1, r.2.to_string()), rule_table(&r.3)))
            .collect()
    };
    assert_eq!(rules(&rendered), rules(&plain_docs), "helm RBAC vs deploy/");
    assert_no_problems("helm bindings", check_bindings(&rendered, SA, NS));
    assert!(
        configmaps(&rendered).is_empty(),
        "helm default: no ConfigMap"
    );
    // With the example's entries as values the chart renders the example.
    let example = simple_example();
    let sets: Vec<String> = example
        .data
        .clone()
        .unwrap()
        .iter()
        .map(|(k, v)| format!("vips.{}={v}", k.replace('.', "\\.")))
        .collect();
    let sets: Vec<&str> = sets.iter().map(String::as_str).collect();
    let with_vips = helm_template(&sets);
    assert_eq!(
        configmaps(&with_vips)[0].data,
        example.data,
        "helm vips=<the example's> vs deploy/examples/configmap-simple.yaml"
    );

    // Without namespace.create (the usual --create-namespace install) only the Namespace goes.
    let mut want = keys(&plain_docs);
    want.retain(|k| k.0 != "Namespace");
    assert_eq!(keys(&helm_template(&[])), want);

    // Optional RBAC behind the switch (forwarding's is in the base ClusterRole).
    let all = helm_template(&["loadBalancer.enabled=true"]);
    let opt = optional();
    let mut want = want.clone();
    want.extend(keys(&opt));
    assert_eq!(
        keys(&all),
        want,
        "helm with optional RBAC vs deploy/ + deploy/optional"
    );
    let mut want_rules = rules(&plain_docs);
    want_rules.extend(rules(&opt));
    assert_eq!(rules(&all), want_rules);
    let mut problems = Vec::new();
    for (d, cluster, _, r) in roles(&all) {
        problems.extend(check_rules(&d.origin, cluster, &r));
    }
    assert_no_problems("helm RBAC", problems);

    // LoadBalancer mode's args: the ones 05-daemonset.yaml shows commented out.
    let plain_args = container_args(the_daemonset(&plain_docs));
    let mut want_args = plain_args.clone();
    want_args.extend(lb_example_args());
    let lb = helm_template(&[
        "loadBalancer.enabled=true",
        "loadBalancer.addressPool=192.0.2.200-192.0.2.250\\,2001:db8::/120",
    ]);
    let lb_ds = the_daemonset(&lb);
    assert_eq!(
        container_args(lb_ds),
        want_args,
        "helm loadBalancer.enabled args vs deploy/05-daemonset.yaml + its commented LB args"
    );
    assert_no_problems(
        "helm LoadBalancer DaemonSet",
        check_daemonset(lb_ds, &format!("{NS}/{CONFIGMAP}"), SA),
    );
    // Defaults: no pool, no default class; the switch and the class/VRID always.
    let lb_args = container_args(the_daemonset(&all));
    assert_eq!(&lb_args[..plain_args.len()], &plain_args[..]);
    assert_eq!(
        &lb_args[plain_args.len()..],
        &[
            "--load-balancers",
            "--load-balancer-class",
            DEFAULT_LB_CLASS,
            "--lb-vrids",
            DEFAULT_LB_VRIDS,
        ]
    );
    let dc = helm_template(&[
        "loadBalancer.enabled=true",
        "loadBalancer.defaultClass=true",
        "loadBalancer.class=example.com/edge",
        "loadBalancer.vrids=77-80",
    ]);
    let flags = parse_args(&container_args(the_daemonset(&dc))).unwrap();
    assert_eq!(
        flags
            .get("--default-load-balancer-class")
            .map(String::as_str),
        Some("")
    );
    assert_eq!(
        flags.get("--load-balancer-class").map(String::as_str),
        Some("example.com/edge")
    );
    assert_eq!(flags.get("--lb-vrids").map(String::as_str), Some("77-80"));
    // The chart refuses a range that is only the ConfigMap's VRID.
    let same = try_helm_template(&["loadBalancer.enabled=true", "loadBalancer.vrids=50-50"]);
    assert!(
        same.as_ref()
            .is_err_and(|e| e.contains("loadBalancer.vrids must hold a VRID besides vrid")),
        "loadBalancer.vrids = vrid rendered: {same:?}"
    );
    // Without the switch the LoadBalancer values change nothing.
    let off = helm_template(&["loadBalancer.defaultClass=true", "loadBalancer.vrids=50-50"]);
    assert_eq!(container_args(the_daemonset(&off)), plain_args);
    assert!(roles(&off).iter().all(|r| !r.2.ends_with("-loadbalancer")));

    // The real parser takes every rendered command line.
    for (what, docs) in [
        ("default", &rendered),
        ("loadBalancer", &lb),
        ("defaultClass", &dc),
    ] {
        check_binary_accepts(
            &format!("helm {what}"),
            &container_args(the_daemonset(docs)),
        );
    }

    // The rich format goes into the same ConfigMap.
    let rich = helm_template(&["rich=spread: false\ninstances: []"]);
    let data = configmaps(&rich)[0].data.clone().unwrap();
    assert_eq!(data.keys().collect::<Vec<_>>(), ["edgevip.yaml"]);
}

/// The labels Helm adds to everything it renders (the chart's helpers); deploy/ has none
/// of them but `app.kubernetes.io/version`, checked by `versions_and_image_agree`.
const HELM_LABELS: &[&str] = &[
    "helm.sh/chart",
    "app.kubernetes.io/managed-by",
    "app.kubernetes.io/instance",
    "app.kubernetes.io/version",
];

/// Every object of a stream by key, without Helm's labels.
/// `actual` holds exactly `expected`'s objects, field for field (`what` names the pair).
fn assert_same_objects(
    what: &str,
    actual: &BTreeMap<(String, String, String), Value>,
    expected: &BTreeMap<(String, String, String), Value>,
) {
    assert_eq!(
        actual.keys().collect::<Vec<_>>(),
        expected.keys().collect::<Vec<_>>(),
        "{what}: objects"
    );
    let mut out = Vec::new();
    for (key, e) in expected {
        differences(&format!("{key:?}"), &actual[key], e, &mut out);
    }
    assert_no_problems(what, out);
}

fn comparable(docs: &[Doc]) -> BTreeMap<(String, String, String), Value> {
    fn strip(v: &mut Value) {
        match v {
            Value::Object(m) => {
                for (k, x) in m.iter_mut() {
                    if let ("labels" | "matchLabels", Value::Object(l)) = (k.as_str(), &mut *x) {
                        l.retain(|name, _| !HELM_LABELS.contains(&name.as_str()));
                    }
                    strip(x);
                }
            }
            Value::Array(a) => a.iter_mut().for_each(strip),
            _ => {}
        }
    }
    docs.iter()
        .filter(|d| !matches!(d.obj, Object::Kustomization(_)))
        .map(|d| {
            let mut v = d.obj.to_value();
            strip(&mut v);
            (d.obj.key(), v)
        })
        .collect()
}

/// Where two values differ, as `path: a vs b` lines.
fn differences(path: &str, a: &Value, b: &Value, out: &mut Vec<String>) {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            for k in x.keys().chain(y.keys().filter(|k| !x.contains_key(*k))) {
                let null = Value::Null;
                let (va, vb) = (x.get(k).unwrap_or(&null), y.get(k).unwrap_or(&null));
                differences(&format!("{path}.{k}"), va, vb, out);
            }
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
            for (i, (va, vb)) in x.iter().zip(y).enumerate() {
                differences(&format!("{path}[{i}]"), va, vb, out);
            }
        }
        _ if a == b => {}
        _ => out.push(format!("{path}: helm {a} vs deploy/ {b}")),
    }
}

/// The chart's default render is deploy/ object for object, field for field, but for
/// Helm's own labels: an edit to one side only fails here.
#[test]
fn helm_default_render_equals_the_plain_manifests() {
    if !tool("helm") {
        skip(
            "helm_default_render_equals_the_plain_manifests",
            "helm is not installed (scripts/install-deps installs it)",
        );
        return;
    }
    let rendered = comparable(&helm_template(&["namespace.create=true"]));
    let plain = comparable(&plain());
    assert_same_objects("helm default render vs deploy/", &rendered, &plain);
}

/// (apiGroup, resource) -> verbs of the named ClusterRole of a rendered stream.
fn cluster_role_table(
    docs: &[Doc],
    name: &str,
) -> Option<BTreeMap<(String, String), BTreeSet<String>>> {
    roles(docs)
        .into_iter()
        .find(|r| r.1 && r.2 == name)
        .map(|r| rule_table(&r.3))
}

#[test]
fn helm_template_forwarding_switches() {
    if !tool("helm") {
        skip(
            "helm_template_forwarding_switches",
            "helm is not installed (scripts/install-deps installs it)",
        );
        return;
    }
    let plain_docs = plain();
    let plain_args = container_args(the_daemonset(&plain_docs));
    let base = cluster_role_table(&plain_docs, "edgevip").unwrap();
    let without = |t: &BTreeMap<(String, String), BTreeSet<String>>, drop: &[(&str, &str)]| {
        let mut t = t.clone();
        for (g, r) in drop {
            assert!(
                t.remove(&(g.to_string(), r.to_string())).is_some(),
                "{g}/{r}"
            );
        }
        t
    };
    let svc = ("", "services");
    let eps = ("discovery.k8s.io", "endpointslices");
    let cm = format!("{NS}/{CONFIGMAP}");
    let lb_vrids = DEFAULT_LB_VRIDS.to_string();

    // (--set, extra args after deploy/'s, the base ClusterRole, LoadBalancer role too)
    let cases: Vec<(Vec<&str>, Vec<&str>, _, bool)> = vec![
        (vec![], vec![], base.clone(), false),
        (vec!["forwarding.enabled=true"], vec![], base.clone(), false),
        (
            vec!["forwarding.proxyProtocol=v1"],
            vec![],
            base.clone(),
            false,
        ),
        (
            vec!["forwarding.proxyProtocol=v2"],
            vec!["--proxy-protocol", "v2"],
            base.clone(),
            false,
        ),
        (
            vec!["forwarding.proxyProtocol=none"],
            vec!["--proxy-protocol", "none"],
            base.clone(),
            false,
        ),
        // Off: the flag, and neither Services nor EndpointSlices.
        (
            vec!["forwarding.enabled=false"],
            vec!["--forwarding=false"],
            without(&base, &[svc, eps]),
            false,
        ),
        // Off: the header setting changes nothing.
        (
            vec!["forwarding.enabled=false", "forwarding.proxyProtocol=v2"],
            vec!["--forwarding=false"],
            without(&base, &[svc, eps]),
            false,
        ),
        // Off, LoadBalancer on: Services still readable, no EndpointSlices.
        (
            vec!["forwarding.enabled=false", "loadBalancer.enabled=true"],
            vec![
                "--forwarding=false",
                "--load-balancers",
                "--load-balancer-class",
                DEFAULT_LB_CLASS,
                "--lb-vrids",
                &lb_vrids,
            ],
            without(&base, &[eps]),
            true,
        ),
        (
            vec!["loadBalancer.enabled=true", "forwarding.proxyProtocol=v2"],
            vec![
                "--proxy-protocol",
                "v2",
                "--load-balancers",
                "--load-balancer-class",
                DEFAULT_LB_CLASS,
                "--lb-vrids",
                &lb_vrids,
            ],
            base.clone(),
            true,
        ),
    ];
    for (set, extra, want_base, lb) in cases {
        let docs = helm_template(&set);
        let ds = the_daemonset(&docs);
        let mut want_args = plain_args.clone();
        want_args.extend(extra.iter().map(|s| s.to_string()));
        assert_eq!(container_args(ds), want_args, "helm {set:?}: args");
        assert_no_problems(&format!("helm {set:?}"), check_daemonset(ds, &cm, SA));
        assert_eq!(
            cluster_role_table(&docs, "edgevip").as_ref(),
            Some(&want_base),
            "helm {set:?}: ClusterRole edgevip"
        );
        let lb_table = cluster_role_table(&docs, "edgevip-loadbalancer");
        if lb {
            assert_eq!(
                lb_table,
                Some(loadbalancer_grants()),
                "helm {set:?}: ClusterRole edgevip-loadbalancer"
            );
        } else {
            assert_eq!(lb_table, None, "helm {set:?}: no LoadBalancer role");
        }
        let names: Vec<&str> = roles(&docs).iter().map(|r| r.2).collect();
        assert!(
            names.iter().all(|n| !n.contains("forwarding")),
            "helm {set:?}: no separate forwarding role: {names:?}"
        );
        let mut problems = Vec::new();
        for (d, cluster, _, r) in roles(&docs) {
            problems.extend(check_rules(&d.origin, cluster, &r));
        }
        problems.extend(check_bindings(&docs, SA, NS));
        assert_no_problems(&format!("helm {set:?} RBAC"), problems);
        check_binary_accepts(&format!("helm {set:?}"), &container_args(ds));
    }

    // The chart refuses a header the daemon does not know.
    for bad in ["v3", "V1", "proxy"] {
        let set = format!("forwarding.proxyProtocol={bad}");
        let r = try_helm_template(&[&set]);
        assert!(
            r.as_ref().is_err_and(|e| {
                e.contains("values don't meet the specifications of the schema")
                    && e.contains("forwarding.proxyProtocol must be one of the following")
            }),
            "{set} rendered: {r:?}"
        );
    }
}

// ---------------------------------------------------------------------------------------
// kubectl

/// A directory under the target dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(what: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!(
            "edgevip-deploy-check-{what}-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `to` as a path relative to `from` (kustomize takes no absolute resource paths): up to
/// the root, then down.
fn relative_to_root(from: &Path, to: &Path) -> String {
    let ups = from.components().count() - 1;
    let down = to.strip_prefix("/").unwrap_or(to);
    format!("{}{}", "../".repeat(ups), down.display())
}

/// `kubectl kustomize DIR`, parsed.
fn kustomize(dir: &Path) -> Result<Vec<Doc>, String> {
    let out = Command::new("kubectl")
        .arg("kustomize")
        .arg(dir)
        .output()
        .map_err(|e| format!("kubectl: {e}"))?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    parse_stream(&String::from_utf8(out.stdout).unwrap(), "kubectl kustomize")
}

const MIRROR_IMAGE: &str = "registry.example/mirror/edgevip:9.9.9";

/// `kubectl kustomize` of an overlay of deploy/ that moves the image to MIRROR_IMAGE.
fn image_overlay() -> Vec<Doc> {
    let overlay = TempDir::new("kustomize-overlay");
    let (name, tag) = MIRROR_IMAGE.rsplit_once(':').unwrap();
    std::fs::write(
        overlay.0.join("kustomization.yaml"),
        format!(
            "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n\
             resources:\n  - {}\nimages:\n  - name: ghcr.io/edgevip/edgevip\n    \
             newName: {name}\n    newTag: {tag}\n",
            relative_to_root(&overlay.0, &deploy_dir())
        ),
    )
    .unwrap();
    kustomize(&overlay.0).unwrap_or_else(|e| panic!("overlay: {e}"))
}

/// `kubectl kustomize deploy/` and the chart's default render are the same objects, field
/// for field (but for Helm's own labels); so are an image override in each.
#[test]
fn kustomize_build_equals_the_helm_default_render() {
    if !tool("kubectl") || !tool("helm") {
        skip(
            "kustomize_build_equals_the_helm_default_render",
            "helm or kubectl is not installed (scripts/install-deps installs them)",
        );
        return;
    }
    let built = comparable(&kustomize(&deploy_dir()).unwrap_or_else(|e| panic!("{e}")));
    let rendered = comparable(&helm_template_with_crds(&["namespace.create=true"]));
    assert_same_objects(
        "helm default render vs kubectl kustomize deploy/",
        &rendered,
        &built,
    );

    let built = comparable(&image_overlay());
    let (repo, tag) = MIRROR_IMAGE.rsplit_once(':').unwrap();
    let rendered = comparable(&helm_template_with_crds(&[
        "namespace.create=true",
        &format!("image.repository={repo}"),
        &format!("image.tag={tag}"),
    ]));
    assert_same_objects(
        "helm image.* vs a kustomize images: overlay",
        &rendered,
        &built,
    );
}

#[test]
fn kubectl_kustomize_and_client_dry_run() {
    if !tool("kubectl") {
        skip(
            "kubectl_kustomize_and_client_dry_run",
            "kubectl is not installed (scripts/install-deps installs it)",
        );
        return;
    }
    let out = Command::new("kubectl")
        .arg("kustomize")
        .arg(deploy_dir())
        .output()
        .expect("kubectl kustomize");
    assert!(
        out.status.success(),
        "kubectl kustomize deploy/ failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let built = parse_stream(&String::from_utf8(out.stdout).unwrap(), "kubectl kustomize")
        .unwrap_or_else(|e| panic!("{e}"));
    // deploy/crds/*.yaml (listed first in the kustomization) and deploy/*.yaml.
    let files: Vec<Doc> = crds().into_iter().chain(plain()).collect();
    assert_eq!(
        keys(&built),
        keys(&files),
        "kustomize build vs deploy/crds/*.yaml + deploy/*.yaml"
    );
    assert_same_objects(
        "kubectl kustomize deploy/ (as helm) vs deploy/crds/*.yaml + deploy/*.yaml",
        &comparable(&built),
        &comparable(&files),
    );

    // An overlay's `images:` entry (what `kustomize edit set image` writes) replaces the
    // DaemonSet's image.
    let built = image_overlay();
    let c = edgevip_container(the_daemonset(&built));
    assert_eq!(c.image.as_deref(), Some(MIRROR_IMAGE));

    // A client-side dry run still needs an API server for discovery: only with a context.
    let ctx = Command::new("kubectl")
        .args(["config", "current-context"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !ctx {
        // Not a skip of the test: the kustomize build above is its check; CI has no cluster.
        println!(
            "NOTE: kubectl has no current context (no API server): \
             `kubectl apply --dry-run=client -k deploy/` not run"
        );
        return;
    }
    let out = Command::new("kubectl")
        .args(["apply", "--dry-run=client", "--request-timeout=10s", "-k"])
        .arg(deploy_dir())
        .output()
        .expect("kubectl apply");
    assert!(
        out.status.success(),
        "kubectl apply --dry-run=client -k deploy/: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

// ---------------------------------------------------------------------------------------
// LoadBalancer mode

#[test]
fn loadbalancer_args_are_documented_in_the_plain_manifests() {
    let docs = plain();
    let ds = the_daemonset(&docs);
    let plain_args = container_args(ds);
    let flags = parse_args(&plain_args).unwrap();
    assert!(
        LB_FLAGS.iter().all(|f| !flags.contains_key(*f)),
        "LoadBalancer mode is optional: off in deploy/05-daemonset.yaml"
    );

    // The commented block of 05-daemonset.yaml: valid args that switch the mode on.
    let extra = lb_example_args();
    let lb_flags = parse_args(
        &std::iter::once("run".to_string())
            .chain(extra.iter().cloned())
            .collect::<Vec<_>>(),
    )
    .unwrap_or_else(|e| panic!("commented LoadBalancer args {extra:?}: {e}"));
    for f in LB_FLAGS {
        if *f != "--default-load-balancer-class" {
            assert!(
                lb_flags.contains_key(*f),
                "commented args lack {f}: {extra:?}"
            );
        }
    }
    assert_eq!(lb_flags["--load-balancer-class"], DEFAULT_LB_CLASS);
    assert_eq!(lb_flags["--lb-vrids"], DEFAULT_LB_VRIDS);
    let mut lb_ds = ds.clone();
    let c = &mut lb_ds
        .spec
        .as_mut()
        .unwrap()
        .template
        .spec
        .as_mut()
        .unwrap()
        .containers[0];
    c.args.as_mut().unwrap().extend(extra.iter().cloned());
    c.args
        .as_mut()
        .unwrap()
        .push("--default-load-balancer-class".into());
    assert_no_problems(
        "05-daemonset.yaml with its LoadBalancer args",
        check_daemonset(&lb_ds, &format!("{NS}/{CONFIGMAP}"), SA),
    );
    // The example pool does not hand out the ConfigMap's VIPs.
    let pool = parse_pool(&lb_flags["--address-pool"]).unwrap();
    assert!(pool.iter().any(|r| r.0.is_ipv4()) && pool.iter().any(|r| r.0.is_ipv6()));
    for vip in simple_example().data.iter().flatten().map(|(k, _)| k) {
        let ip: IpAddr = vip.parse().unwrap();
        assert!(
            !pool_contains(&pool, ip),
            "the example pool holds the ConfigMap VIP {vip}"
        );
    }

    // 05-daemonset.yaml and the optional RBAC's header name every LoadBalancer flag.
    let ds_text = read(&deploy_dir().join("05-daemonset.yaml"));
    let rbac_text = read(&deploy_dir().join("optional/loadbalancer-rbac.yaml"));
    let header: String = rbac_text
        .lines()
        .take_while(|l| l.starts_with('#'))
        .collect::<Vec<_>>()
        .join("\n");
    for (what, text) in [
        ("05-daemonset.yaml", ds_text.as_str()),
        ("optional/loadbalancer-rbac.yaml's header", header.as_str()),
    ] {
        let named: BTreeSet<String> = flag_tokens(text).into_iter().collect();
        for f in LB_FLAGS {
            assert!(named.contains(*f), "{what} does not mention {f}");
        }
        for f in &named {
            assert!(
                KNOWN_FLAGS.contains(&f.as_str()),
                "{what} mentions unknown flag {f}"
            );
        }
    }
    assert!(
        header.contains("05-daemonset.yaml"),
        "the RBAC header points at the args in 05-daemonset.yaml"
    );
}

#[test]
fn daemonset_check_catches_loadbalancer_mistakes() {
    let docs = plain();
    let good = the_daemonset(&docs).clone();
    let cm = format!("{NS}/{CONFIGMAP}");
    let with = |extra: &[&str]| {
        let mut ds = good.clone();
        let c = &mut ds
            .spec
            .as_mut()
            .unwrap()
            .template
            .spec
            .as_mut()
            .unwrap()
            .containers[0];
        c.args
            .as_mut()
            .unwrap()
            .extend(extra.iter().map(|s| s.to_string()));
        check_daemonset(&ds, &cm, SA)
    };
    assert_no_problems("--load-balancers", with(&["--load-balancers"]));
    assert_no_problems(
        "all LB flags",
        with(&[
            "--load-balancers",
            "--default-load-balancer-class",
            "--load-balancer-class=example.com/edge",
            "--address-pool",
            "192.0.2.200-192.0.2.250,198.51.100.0/28,2001:db8::7,2001:db8::/120",
            "--lb-vrid=9",
        ]),
    );
    for bad in [
        &["--lb-vrids", "51-60"][..],
        &["--address-pool", "192.0.2.200-192.0.2.250"],
        &["--default-load-balancer-class"],
        &["--load-balancers", "--lb-vrid", "50"],
        &["--load-balancers", "--lb-vrid", "0"],
        &["--load-balancers", "--lb-vrid", "256"],
        &["--load-balancers", "--lb-vrids", "0-3"],
        &["--load-balancers", "--lb-vrids", "9-8"],
        &["--load-balancers", "--lb-vrids", "50-50"],
        &[
            "--load-balancers",
            "--address-pool",
            "192.0.2.250-192.0.2.200",
        ],
        &[
            "--load-balancers",
            "--address-pool",
            "192.0.2.1-2001:db8::1",
        ],
        &["--load-balancers", "--address-pool", "192.0.2.0/33"],
        &["--load-balancers", "--address-pool", "pool-a"],
        &["--load-balancers", "--load-balancer-class", "vip"],
        &[
            "--load-balancers",
            "--load-balancer-class",
            "Edgevip.io/vip",
        ],
        &["--load-balancers=true"],
        &["--load-balancers", "--load-balancers"],
        &["--load-balancers", "--lb-vird", "52"],
    ] {
        assert!(!with(bad).is_empty(), "check_daemonset accepted {bad:?}");
    }
    assert!(is_qualified_name("edgevip.io/vip") && is_qualified_name("a.b/c_d.e-f"));
    for bad in [
        "edgevip/vip",
        "edgevip.io/",
        "/vip",
        "edgevip.io/-x",
        "a..b/c",
        "x.y/a/b",
    ] {
        assert!(!is_qualified_name(bad), "{bad}");
    }
}

#[test]
fn lease_permissions_only_where_the_allocator_needs_them() {
    // Only LoadBalancer mode's RBAC (the optional file, the chart's LoadBalancer block) may
    // name coordination.k8s.io, leases or update: no other file of deploy/ (plain,
    // examples, other Helm templates) grants them.
    let mut files = Vec::new();
    for sub in ["", "optional", "examples"] {
        files.extend(yaml_files(&deploy_dir().join(sub)));
    }
    let tdir = chart_dir().join("templates");
    let mut tpl: Vec<PathBuf> = std::fs::read_dir(&tdir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    tpl.sort();
    files.extend(tpl);
    let lb_only = [
        deploy_dir().join("optional/loadbalancer-rbac.yaml"),
        tdir.join("rbac.yaml"),
    ];
    let mut found = Vec::new();
    for f in &files {
        let mut text = read(f);
        if *f == lb_only[1] {
            let block = helm_block(&text, "if .Values.loadBalancer.enabled")
                .expect("rbac.yaml: LoadBalancer block")
                .to_string();
            text = text.replacen(&block, "", 1);
        } else if *f == lb_only[0] {
            continue;
        }
        for (n, line) in text.lines().enumerate() {
            let code = line.trim_start();
            if code.starts_with('#') || code.starts_with("{{/*") {
                continue;
            }
            let words: Vec<&str> = code
                .split(|c: char| !(c.is_ascii_alphanumeric() || c == '.' || c == '/'))
                .filter(|w| !w.is_empty())
                .collect();
            if words
                .iter()
                .any(|w| matches!(*w, "coordination.k8s.io" | "leases" | "update"))
            {
                found.push(format!("{}:{}: {}", f.display(), n + 1, line.trim()));
            }
        }
    }
    assert!(
        found.is_empty(),
        "lease/update grants outside LoadBalancer mode:\n  {}",
        found.join("\n  ")
    );
}

// ---------------------------------------------------------------------------------------
// Helm without helm: the LoadBalancer values and where the templates use them

#[test]
fn helm_loadbalancer_values_and_blocks() {
    let v = values();
    let lb = value_at(&v, &["loadBalancer"]);
    let keys: BTreeSet<&str> = lb.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        BTreeSet::from(["enabled", "class", "defaultClass", "addressPool", "vrids"]),
        "values.loadBalancer keys"
    );
    assert_eq!(lb["enabled"], Value::Bool(false));
    assert_eq!(lb["class"].as_str(), Some(DEFAULT_LB_CLASS));
    assert_eq!(lb["defaultClass"], Value::Bool(false));
    assert_eq!(lb["addressPool"].as_str(), Some(""));
    assert_eq!(lb["vrids"].as_str(), Some(DEFAULT_LB_VRIDS));
    assert!(is_qualified_name(lb["class"].as_str().unwrap()));

    // daemonset.yaml: every LoadBalancer flag and value inside `if loadBalancer.enabled`,
    // none outside; every flag in the template is one the daemon knows.
    let ds = read(&chart_dir().join("templates/daemonset.yaml"));
    for f in flag_tokens(&ds) {
        assert!(
            KNOWN_FLAGS.contains(&f.as_str()),
            "daemonset.yaml: unknown flag {f}"
        );
    }
    let block = helm_block(&ds, "if .Values.loadBalancer.enabled")
        .expect("daemonset.yaml: an `if .Values.loadBalancer.enabled` block");
    let outside = ds.replacen(block, "", 1);
    for f in LB_FLAGS {
        assert!(
            flag_tokens(block).iter().any(|t| t == f),
            "{f} not in the block"
        );
        assert!(
            !flag_tokens(&outside).iter().any(|t| t == f),
            "{f} outside the block"
        );
    }
    let used: BTreeSet<String> = values_references(block)
        .into_iter()
        .filter(|p| p.first().map(String::as_str) == Some("loadBalancer"))
        .map(|p| p.join("."))
        .collect();
    for k in ["class", "defaultClass", "addressPool", "vrids"] {
        assert!(
            used.contains(&format!("loadBalancer.{k}")),
            "block ignores loadBalancer.{k}"
        );
    }
    let default_class = helm_block(block, "if .Values.loadBalancer.defaultClass")
        .expect("--default-load-balancer-class only when loadBalancer.defaultClass");
    assert_eq!(
        flag_tokens(default_class),
        vec!["--default-load-balancer-class"]
    );
    let pool = helm_block(block, "with .Values.loadBalancer.addressPool")
        .expect("--address-pool only when loadBalancer.addressPool is set");
    assert_eq!(flag_tokens(pool), vec!["--address-pool"]);
    assert!(
        block.contains("fail"),
        "the chart refuses loadBalancer.vrid = vrid"
    );

    // rbac.yaml: the block adds the status patch only (reading Services is in the base
    // ClusterRole, for forwarding or LoadBalancer mode: see helm_forwarding_values_and_blocks).
    let rbac = read(&chart_dir().join("templates/rbac.yaml"));
    let rblock = helm_block(&rbac, "if .Values.loadBalancer.enabled")
        .expect("rbac.yaml: an `if .Values.loadBalancer.enabled` block");
    assert!(!code_lines(&rbac.replacen(rblock, "", 1)).contains("services/status"));
    assert!(!rblock.contains(r#"resources: ["services"]"#));
    assert!(rblock.contains(r#"resources: ["services/status"]"#));
    assert!(rblock.contains(r#"verbs: ["patch"]"#));
    assert_eq!(rblock.matches("\nkind: ClusterRole\n").count(), 1);
    assert_eq!(rblock.matches("\nkind: ClusterRoleBinding\n").count(), 1);
    // The allocator Lease: a namespaced Role and its binding.
    assert_eq!(rblock.matches("\nkind: Role\n").count(), 1);
    assert_eq!(rblock.matches("\nkind: RoleBinding\n").count(), 1);
    assert!(rblock.contains(&format!("resourceNames: [\"{ALLOCATOR_LEASE}\"]")));
}

/// A YAML template without its comment lines.
fn code_lines(text: &str) -> String {
    text.lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .map(|l| format!("{l}\n"))
        .collect()
}

// ---------------------------------------------------------------------------------------
// Forwarding (on by default): the values, the flags and the grants

#[test]
fn helm_forwarding_values_and_blocks() {
    let v = values();
    let fw = value_at(&v, &["forwarding"]);
    let keys: BTreeSet<&str> = fw.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        BTreeSet::from(["enabled", "proxyProtocol"]),
        "values.forwarding keys"
    );
    assert_eq!(
        fw["enabled"],
        Value::Bool(true),
        "forwarding is on by default"
    );
    assert_eq!(fw["proxyProtocol"].as_str(), Some(DEFAULT_PROXY_PROTOCOL));
    assert!(PROXY_PROTOCOLS.contains(&DEFAULT_PROXY_PROTOCOL));

    // daemonset.yaml: the forwarding flags only inside `if .Values.forwarding.enabled`
    // (`--proxy-protocol` when it is not v1, `--forwarding=false` in the else branch);
    // proxyProtocol checked against v1, v2, none.
    let ds = read(&chart_dir().join("templates/daemonset.yaml"));
    let block = helm_block(&ds, "if .Values.forwarding.enabled")
        .expect("daemonset.yaml: an `if .Values.forwarding.enabled` block");
    let outside = ds.replacen(block, "", 1);
    for f in FORWARDING_FLAGS {
        assert!(
            flag_tokens(block).iter().any(|t| t == f),
            "{f} not in the block"
        );
        assert!(
            !flag_tokens(&outside).iter().any(|t| t == f),
            "{f} outside the block"
        );
    }
    let (then, otherwise) = block
        .split_once("{{- else }}")
        .expect("the forwarding block has an else branch");
    assert_eq!(
        flag_tokens(otherwise),
        vec!["--forwarding"],
        "only --forwarding=false when disabled"
    );
    assert!(otherwise.contains("- --forwarding=false"));
    let pp = helm_block(then, r#"if ne $proxyProtocol "v1""#)
        .expect("--proxy-protocol only when forwarding.proxyProtocol is not v1");
    assert_eq!(flag_tokens(pp), vec!["--proxy-protocol"]);
    assert_eq!(flag_tokens(then), vec!["--proxy-protocol"]);
    // The schema refuses any other header (helm_template_forwarding_switches renders it).
    assert_eq!(
        schema()["properties"]["forwarding"]["properties"]["proxyProtocol"]["enum"],
        serde_json::json!(PROXY_PROTOCOLS),
        "values.schema.json: forwarding.proxyProtocol is one of v1, v2, none"
    );
    assert!(
        values_references(&ds)
            .iter()
            .any(|p| p.join(".") == "forwarding.proxyProtocol"),
        "daemonset.yaml ignores forwarding.proxyProtocol"
    );

    // rbac.yaml: Services when forwarding or LoadBalancer mode is on, EndpointSlices when
    // forwarding is; both in the release's ClusterRole, read-only; no -forwarding role.
    let rbac = read(&chart_dir().join("templates/rbac.yaml"));
    let svc = helm_block(
        &rbac,
        "if or .Values.forwarding.enabled .Values.loadBalancer.enabled",
    )
    .expect(
        "rbac.yaml: Services under `if or .Values.forwarding.enabled .Values.loadBalancer.enabled`",
    );
    let eps = helm_block(&rbac, "if .Values.forwarding.enabled")
        .expect("rbac.yaml: EndpointSlices under `if .Values.forwarding.enabled`");
    let svc_code = code_lines(svc);
    let eps_code = code_lines(eps);
    assert_eq!(
        svc_code.trim(),
        "- apiGroups: [\"\"]\n    resources: [\"services\"]\n    verbs: [\"get\", \"list\", \"watch\"]",
        "rbac.yaml: the Services rule"
    );
    assert_eq!(
        eps_code.trim(),
        "- apiGroups: [\"discovery.k8s.io\"]\n    resources: [\"endpointslices\"]\n    verbs: [\"get\", \"list\", \"watch\"]",
        "rbac.yaml: the EndpointSlices rule"
    );
    let rest = code_lines(&rbac.replacen(svc, "", 1).replacen(eps, "", 1));
    assert!(
        !rest.contains(r#"resources: ["services"]"#) && !rest.contains("endpointslices"),
        "rbac.yaml grants Services/EndpointSlices outside their switches"
    );
    assert!(
        !rbac.contains("-forwarding"),
        "rbac.yaml: no separate forwarding ClusterRole (it is part of the base)"
    );
    // Both rules sit in the base ClusterRole: before its first `---`.
    let first_doc = rbac.split("\n---").next().unwrap();
    assert!(
        first_doc.contains("kind: ClusterRole\n")
            && first_doc.contains(svc)
            && first_doc.contains(eps),
        "rbac.yaml: the Services/EndpointSlices rules belong to the base ClusterRole"
    );
}

#[test]
fn forwarding_is_documented_in_the_plain_manifests() {
    let docs = plain();
    let flags = parse_args(&container_args(the_daemonset(&docs))).unwrap();
    for f in FORWARDING_FLAGS {
        assert!(
            !flags.contains_key(*f),
            "05-daemonset.yaml: forwarding on with the v1 header is the default, no {f}"
        );
    }
    // The args' comment: on by default, how to turn it off or change the header, and the
    // node's ip_forward (which Kubernetes nodes have: no sysctl, no init container).
    let ds_text = read(&deploy_dir().join("05-daemonset.yaml"));
    for needle in [
        "--forwarding=false",
        "--proxy-protocol v2",
        "--proxy-protocol none",
        "net.ipv4.ip_forward=1",
        "kube-proxy",
    ] {
        assert!(
            ds_text.contains(needle),
            "05-daemonset.yaml does not mention {needle}"
        );
    }
    let args_at = ds_text.find("          args:").expect("args");
    let env_at = ds_text.find("          env:").expect("env");
    let ip_forward_at = ds_text.find("net.ipv4.ip_forward").unwrap();
    assert!(
        (args_at..env_at).contains(&ip_forward_at),
        "the ip_forward note sits next to the args"
    );
    // No file still calls forwarding optional or points at the removed RBAC file.
    let mut files = Vec::new();
    for sub in ["", "optional", "examples"] {
        files.extend(yaml_files(&deploy_dir().join(sub)));
    }
    let tdir = chart_dir().join("templates");
    files.extend(std::fs::read_dir(&tdir).unwrap().map(|e| e.unwrap().path()));
    files.push(chart_dir().join("values.yaml"));
    for f in &files {
        let text = read(f);
        for stale in [
            "forwarding-rbac",
            "forwarding.enabled=true",
            "edgevip-forwarding",
        ] {
            assert!(
                !text.contains(stale),
                "{}: mentions {stale:?}: forwarding is on by default, its RBAC in the base",
                f.display()
            );
        }
    }
    let cm = read(&deploy_dir().join("examples/configmap-simple.yaml"));
    assert!(
        !cm.contains("deploy/optional"),
        "configmap-simple.yaml: forwarding needs no optional file"
    );
}

#[test]
fn daemonset_check_catches_forwarding_mistakes() {
    let docs = plain();
    let good = the_daemonset(&docs).clone();
    let cm = format!("{NS}/{CONFIGMAP}");
    let with = |extra: &[&str]| {
        let mut ds = good.clone();
        let c = &mut ds
            .spec
            .as_mut()
            .unwrap()
            .template
            .spec
            .as_mut()
            .unwrap()
            .containers[0];
        c.args
            .as_mut()
            .unwrap()
            .extend(extra.iter().map(|s| s.to_string()));
        check_daemonset(&ds, &cm, SA)
    };
    for ok in [
        &["--forwarding=false"][..],
        &["--forwarding", "false"],
        &["--forwarding=true"],
        &["--forwarding=true", "--proxy-protocol", "v2"],
        &["--proxy-protocol", "v1"],
        &["--proxy-protocol=v2"],
        &["--proxy-protocol", "none"],
    ] {
        assert_no_problems(&format!("{ok:?}"), with(ok));
    }
    for bad in [
        &["--forwarding"][..],
        &["--forwarding=yes"],
        &["--forwarding", "1"],
        &["--forwarding=False"],
        &["--proxy-protocol", "v3"],
        &["--proxy-protocol", "V1"],
        &["--proxy-protocol", "proxy"],
        &["--proxy-protocol="],
        &["--proxy-protocol"],
        &["--forwarding=false", "--proxy-protocol", "v2"],
        &["--forwarding=false", "--forwarding=true"],
        &["--forwardnig=false"],
    ] {
        assert!(!with(bad).is_empty(), "check_daemonset accepted {bad:?}");
    }
}

// ---------------------------------------------------------------------------------------
// The real binary: its argument parser takes the manifests' command lines

struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

/// Runs the binary with these args, no stdin, a clean environment for what it reads
/// (NODE_NAME, KUBECONFIG, EDGEVIP_LOG), killed after 30 s.
fn run_binary(bin: &Path, args: &[String]) -> Run {
    let mut child = Command::new(bin)
        .args(args)
        .env_remove("NODE_NAME")
        .env_remove("KUBECONFIG")
        .env_remove("EDGEVIP_LOG")
        .env_remove("EDGEVIP_API_LISTEN")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{}: {e}", bin.display()));
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if child.try_wait().expect("try_wait").is_some() {
            break;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{} {args:?} still running after 30 s", bin.display());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().expect("output");
    Run {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// clap's messages for a command line it rejects (it then exits with 2).
const PARSE_ERRORS: &[&str] = &[
    "error: unexpected argument",
    "error: invalid value",
    "error: a value is required",
    "error: the argument",
    "error: unrecognized subcommand",
    "error: missing required",
];

/// The container args (with `$(NODE_NAME)` as the kubelet would expand it) plus
/// `--kubeconfig /nonexistent`: the parser and the daemon's own argument checks (which
/// also exit 2) must pass, so the run ends at the missing kubeconfig (exit 1), before
/// anything touches the network.
fn check_binary_accepts(what: &str, container_args: &[String]) {
    let bin = edgevip_binary();
    let mut args: Vec<String> = container_args
        .iter()
        .map(|a| {
            a.replace("$(NODE_NAME)", "edge-0")
                .replace("$(HOST_IP)", "192.0.2.11")
        })
        .collect();
    args.retain(|a| !a.starts_with("--kubeconfig"));
    args.extend(["--kubeconfig".to_string(), "/nonexistent".to_string()]);
    let run = run_binary(&bin, &args);
    let shown = format!(
        "{what}: edgevip {args:?} exited {:?}\nstderr:\n{}\nstdout:\n{}",
        run.code, run.stderr, run.stdout
    );
    assert_ne!(run.code, Some(2), "rejected the command line: {shown}");
    assert_ne!(
        run.code,
        Some(0),
        "should fail on the missing kubeconfig: {shown}"
    );
    for e in PARSE_ERRORS {
        assert!(!run.stderr.contains(e), "parse error: {shown}");
    }
    assert!(
        run.stderr.contains("/nonexistent") || run.stderr.to_lowercase().contains("kubeconfig"),
        "did not get as far as the kubeconfig: {shown}"
    );
}

#[test]
fn the_binary_accepts_the_daemonset_args() {
    let docs = plain();
    let args = container_args(the_daemonset(&docs));
    check_binary_accepts("deploy/05-daemonset.yaml", &args);
    let mut lb = args.clone();
    lb.extend(lb_example_args());
    check_binary_accepts("05-daemonset.yaml + its LoadBalancer args", &lb);
    lb.push("--default-load-balancer-class".into());
    check_binary_accepts("... + --default-load-balancer-class", &lb);
    // Forwarding's settings, as the comment next to the args shows them.
    for extra in [
        &["--forwarding=false"][..],
        &["--forwarding", "true"],
        &["--proxy-protocol", "v2"],
        &["--proxy-protocol", "none"],
        &["--proxy-protocol", "v1"],
    ] {
        let mut a = args.clone();
        a.extend(extra.iter().map(|s| s.to_string()));
        check_binary_accepts(&format!("05-daemonset.yaml + {extra:?}"), &a);
    }
}

#[test]
fn the_binary_check_catches_rejected_args() {
    // The check above must be able to fail: clap's and the daemon's rejections.
    let bin = edgevip_binary();
    let docs = plain();
    let base: Vec<String> = container_args(the_daemonset(&docs))
        .iter()
        .map(|a| {
            a.replace("$(NODE_NAME)", "edge-0")
                .replace("$(HOST_IP)", "192.0.2.11")
        })
        .chain(["--kubeconfig".to_string(), "/nonexistent".to_string()])
        .collect();
    let with = |extra: &[&str]| {
        let mut a = base.clone();
        a.extend(extra.iter().map(|s| s.to_string()));
        run_binary(&bin, &a)
    };
    for (extra, needle) in [
        (&["--vird", "5"][..], "error: unexpected argument"),
        (&["--lb-vrid", "300"], "error: invalid value"),
        (&["--load-balancers=yes"], "error: "),
        (&["--load-balancers", "--lb-vrid", "50"], "--lb-vrid"),
        (&["--load-balancers", "--lb-vrids", "9-8"], "--lb-vrids"),
        (
            &["--load-balancers", "--address-pool", "pool-a"],
            "--address-pool",
        ),
        (&["--forwarding", "yes"], "error: invalid value"),
        (&["--forwarding"], "error: a value is required"),
        (&["--proxy-protocol", "v3"], "error: invalid value"),
        (&["--proxy-protocol", "V2"], "error: invalid value"),
    ] {
        let run = with(extra);
        assert_eq!(
            run.code,
            Some(2),
            "{extra:?} should be rejected with exit 2: {}",
            run.stderr
        );
        assert!(run.stderr.contains(needle), "{extra:?}: {}", run.stderr);
    }
}

/// `edgevip run --help`: flag -> (takes a value, `[default: …]` if any).
fn help_flags(help: &str) -> BTreeMap<String, (bool, Option<String>)> {
    let mut out: BTreeMap<String, (bool, Option<String>)> = BTreeMap::new();
    let mut current: Option<String> = None;
    let mut text = String::new();
    let finish = |flag: &Option<String>, text: &str, out: &mut BTreeMap<_, _>| {
        if let Some(f) = flag
            && let Some((_, rest)) = text.split_once("[default: ")
            && let Some(entry) = out.get_mut(f)
        {
            let (_, default): &mut (bool, Option<String>) = entry;
            let d = rest.split(']').next().unwrap_or("").trim();
            *default = Some(d.trim_matches('"').to_string());
        }
    };
    for line in help.lines() {
        let t = line.trim_start();
        // Option headers: `-c, --config <CONFIG>`, `--kubernetes`, `--vrid <VRID>`.
        let header = t.starts_with("--") || (t.starts_with('-') && t.contains(", --"));
        if header {
            finish(&current, &text, &mut out);
            text.clear();
            let spec = t.split_once("--").map(|x| x.1).unwrap_or("");
            let name = spec.split([' ', '=', '\t']).next().unwrap_or("");
            let flag = format!("--{name}");
            out.insert(flag.clone(), (spec.contains('<'), None));
            current = Some(flag);
            text.push_str(spec);
        } else if current.is_some() {
            text.push(' ');
            text.push_str(t);
        }
    }
    finish(&current, &text, &mut out);
    out
}

#[test]
fn known_flags_are_the_binarys() {
    let bin = edgevip_binary();
    let run = run_binary(&bin, &["run".into(), "--help".into()]);
    assert_eq!(run.code, Some(0), "edgevip run --help: {}", run.stderr);
    let help = help_flags(&run.stdout);
    assert!(
        help.contains_key("--kubernetes") && help.contains_key("--vrid"),
        "help not understood:\n{}",
        run.stdout
    );
    for f in KNOWN_FLAGS {
        let (takes_value, _) = help
            .get(*f)
            .unwrap_or_else(|| panic!("{f} is not a flag of `edgevip run`"));
        assert_eq!(
            !takes_value,
            SWITCHES.contains(f),
            "{f}: switch (no value) in the binary: {}, in SWITCHES: {}",
            !takes_value,
            SWITCHES.contains(f)
        );
    }
    let extra: Vec<&String> = help
        .keys()
        .filter(|f| {
            !KNOWN_FLAGS.contains(&f.as_str()) && !["--help", "--config"].contains(&f.as_str())
        })
        .collect();
    if !extra.is_empty() {
        println!("NOTE: `edgevip run` has flags KNOWN_FLAGS lacks (add them when used): {extra:?}");
    }

    // The chart's defaults are the binary's.
    let v = values();
    let default = |f: &str| {
        help.get(f)
            .and_then(|h| h.1.clone())
            .unwrap_or_else(|| panic!("{f} shows no default"))
    };
    let s = |path: &[&str]| match value_at(&v, path) {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    for (flag, path) in [
        ("--vrid", &["vrid"][..]),
        ("--unicast", &["unicast"]),
        ("--ingress-check", &["ingressCheck"]),
        ("--eligibility", &["eligibility"]),
        ("--release-grace", &["releaseGrace"]),
        ("--load-balancer-class", &["loadBalancer", "class"]),
        ("--address-pool", &["loadBalancer", "addressPool"]),
        ("--lb-vrids", &["loadBalancer", "vrids"]),
        ("--forwarding", &["forwarding", "enabled"]),
        ("--proxy-protocol", &["forwarding", "proxyProtocol"]),
    ] {
        assert_eq!(
            default(flag),
            s(path),
            "{flag} default vs values.{}",
            path.join(".")
        );
    }
    assert_eq!(default("--vrid"), DEFAULT_VRID.to_string());
    assert_eq!(default("--lb-vrids"), DEFAULT_LB_VRIDS);
    assert_eq!(default("--load-balancer-class"), DEFAULT_LB_CLASS);
    assert_eq!(
        default("--forwarding"),
        "true",
        "forwarding is on by default"
    );
    assert_eq!(default("--proxy-protocol"), DEFAULT_PROXY_PROTOCOL);
    // The header values the checks accept are the binary's.
    let pp_help = run
        .stdout
        .split_once("--proxy-protocol")
        .map(|x| x.1)
        .and_then(|rest| rest.split("\n      --").next())
        .unwrap_or("");
    let words: BTreeSet<&str> = pp_help
        .split(|c: char| !c.is_ascii_alphanumeric())
        .collect();
    for v in PROXY_PROTOCOLS {
        assert!(
            words.contains(v),
            "--proxy-protocol does not list {v}:\n{pp_help}"
        );
    }
    assert_eq!(default("--api-listen"), format!("127.0.0.1:{API_PORT}"));
    assert_eq!(
        default("--node-selector"),
        include_node_selector(&value_at(&v, &["nodeSelector"]).clone())
    );
}

fn include_node_selector(sel: &Value) -> String {
    sel.as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
        .collect::<Vec<_>>()
        .join(",")
}

// ---------------------------------------------------------------------------------------
// values.schema.json, the chart README, monitoring objects

fn schema() -> Value {
    serde_json::from_str(&read(&chart_dir().join("values.schema.json")))
        .expect("values.schema.json is JSON")
}

/// Objects whose schema mirrors a Kubernetes type: values.yaml sets only some of their
/// fields, and the README documents them as one value.
const SCHEMA_PASSTHROUGH: &[&str] = &["resources", "bgp.frrResources"];

/// The documented values: schema paths, recursing into strict objects (the leaves are
/// scalars, lists and free-form maps). Checks on the way that values.yaml and the schema
/// hold the same keys.
fn schema_leaves(schema: &Value, values: &Value, path: &str, out: &mut Vec<String>) {
    let props = schema["properties"].as_object();
    let strict = schema["additionalProperties"] == Value::Bool(false);
    match props {
        Some(props) if !SCHEMA_PASSTHROUGH.contains(&path) => {
            assert!(
                strict,
                "values.schema.json {path}: an object with properties must set additionalProperties: false"
            );
            let have: BTreeSet<&String> = values
                .as_object()
                .map(|o| o.keys().collect())
                .unwrap_or_default();
            let want: BTreeSet<&String> = props.keys().collect();
            assert_eq!(
                have, want,
                "values.yaml vs values.schema.json keys at {path:?}"
            );
            for (k, sub) in props {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                schema_leaves(sub, &values[k.as_str()], &p, out);
            }
        }
        _ => {
            assert!(
                schema.get("type").is_some() || schema.get("oneOf").is_some(),
                "values.schema.json {path}: no type"
            );
            out.push(path.to_string());
        }
    }
}

#[test]
fn values_schema_covers_every_value_and_the_readme_lists_them() {
    let s = schema();
    assert_eq!(s["additionalProperties"], Value::Bool(false));
    let mut leaves = Vec::new();
    schema_leaves(&s, &values(), "", &mut leaves);
    assert!(
        leaves.len() > 40,
        "only {} values: walk broken?",
        leaves.len()
    );
    let readme = read(&chart_dir().join("README.md"));
    let rows: BTreeSet<String> = readme
        .lines()
        .filter_map(|l| l.strip_prefix("| `"))
        .filter_map(|l| l.split_once('`').map(|(k, _)| k.to_string()))
        .collect();
    let leaves: BTreeSet<String> = leaves.into_iter().collect();
    let undocumented: Vec<_> = leaves.difference(&rows).collect();
    let stale: Vec<_> = rows.difference(&leaves).collect();
    assert!(
        undocumented.is_empty(),
        "values missing from the chart README's table: {undocumented:?}"
    );
    assert!(stale.is_empty(), "README rows that are no value: {stale:?}");
    // Each row's default is the one values.yaml has (scalars only; maps and lists are
    // written out by hand).
    let v = values();
    for line in readme.lines().filter(|l| l.starts_with("| `")) {
        let cells: Vec<&str> = line.split(" | ").collect();
        let key = cells[0].trim_start_matches("| `").trim_end_matches('`');
        let default = cells[2].trim_matches('`');
        let path: Vec<&str> = key.split('.').collect();
        let want = value_at(&v, &path);
        let shown = match want {
            Value::String(x) if x.is_empty() => "\"\"".to_string(),
            Value::String(x) => x.clone(),
            Value::Bool(_) | Value::Number(_) => want.to_string(),
            _ => continue,
        };
        assert_eq!(default, shown, "README default of {key}");
    }
}

/// The schema refuses wrong types, values out of range, unknown enum members and
/// misspelt keys, and helm then renders nothing.
#[test]
fn helm_rejects_values_the_schema_refuses() {
    if !tool("helm") {
        skip(
            "helm_rejects_values_the_schema_refuses",
            "helm is not installed (scripts/install-deps installs it)",
        );
        return;
    }
    for bad in [
        "vrid=abc",
        "vrid=0",
        "vrid=256",
        "unicast=maybe",
        "api.port=70000",
        "image.pullPolicy=Sometimes",
        "forwarding.enabled=yes",
        "loadBalancer.vrid=many",
        "releaseGrace=soon",
        "tolerations[0].operator=Maybe",
        "tolerations[0].effect=NoRun",
        "monitoring.podMonitor.enabled=1",
        "monitoring.dashboard.labels=x",
        "updateStrategy.maxUnavailable=many",
        "vips.192\\.0\\.2\\.7=not a service",
        "podLabels.bad key=x",
        "unknownValue=1",
        "monitoring.podMonitr.enabled=true",
        "trust.allowConfigMap.everything=true",
    ] {
        let r = try_helm_template(&[bad]);
        assert!(
            r.as_ref()
                .is_err_and(|e| e.contains("values don't meet the specifications of the schema")),
            "--set {bad} was not refused by values.schema.json: {r:?}"
        );
    }
    for good in [
        "vrid=7",
        "tolerations[0].operator=Exists",
        "updateStrategy.maxUnavailable=50%",
        "vips.192\\.0\\.2\\.7=ingress/nginx:PROXY",
        "podLabels.team=edge",
        "monitoring.interval=",
        "resources.limits.cpu=1",
    ] {
        if let Err(e) = try_helm_template(&[good]) {
            panic!("--set {good} refused: {e}");
        }
    }
}

/// The labels a pod of this DaemonSet carries.
fn pod_labels(docs: &[Doc]) -> BTreeMap<String, String> {
    the_daemonset(docs)
        .spec
        .as_ref()
        .unwrap()
        .template
        .metadata
        .as_ref()
        .unwrap()
        .labels
        .clone()
        .unwrap_or_default()
}

fn selects(selector: &Value, labels: &BTreeMap<String, String>) -> bool {
    let m = selector["matchLabels"].as_object().expect("matchLabels");
    !m.is_empty()
        && m.iter()
            .all(|(k, v)| labels.get(k).map(String::as_str) == v.as_str())
}

fn monitoring_docs(docs: &[Doc]) -> Vec<&Monitoring> {
    docs.iter()
        .filter_map(|d| match &d.obj {
            Object::Monitoring(m) => Some(m),
            _ => None,
        })
        .collect()
}

/// The scrape endpoint the rules and the dashboard rely on: port api, /metrics,
/// edgevip's `instance` label kept, `node` from the pod's node.
fn check_endpoint(what: &str, ep: &Value) {
    assert_eq!(ep["port"], "api", "{what}: port");
    assert_eq!(ep["path"], "/metrics", "{what}: path");
    assert_eq!(
        ep["honorLabels"], true,
        "{what}: honorLabels keeps edgevip's instance label"
    );
    assert_eq!(
        ep["relabelings"],
        serde_json::json!([{"sourceLabels": ["__meta_kubernetes_pod_node_name"], "targetLabel": "node"}]),
        "{what}: the node label"
    );
}

const MONITORING_SETS: &[&str] = &[
    "monitoring.podMonitor.enabled=true",
    "monitoring.prometheusRule.enabled=true",
    "monitoring.dashboard.enabled=true",
];

#[test]
fn helm_monitoring_objects() {
    if !tool("helm") {
        skip(
            "helm_monitoring_objects",
            "helm is not installed (scripts/install-deps installs it)",
        );
        return;
    }
    // `helm lint --strict`: defaults, and everything on.
    let all = format!(
        "{},monitoring.serviceMonitor.enabled=true,namespace.create=true",
        MONITORING_SETS.join(",")
    );
    for set in ["namespace.create=false", all.as_str()] {
        let out = Command::new("helm")
            .args(["lint", "--strict"])
            .arg(chart_dir())
            .args(["--namespace", NS, "--set", set])
            .output()
            .expect("helm lint");
        assert!(
            out.status.success(),
            "helm lint --strict --set {set}:\n{}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
    // Off by default.
    let base = helm_template(&[]);
    assert!(monitoring_docs(&base).is_empty());
    assert!(configmaps(&base).is_empty());

    let docs = helm_template(MONITORING_SETS);
    let pods = pod_labels(&docs);
    let mons = monitoring_docs(&docs);
    let kinds: Vec<&str> = mons.iter().map(|m| m.kind).collect();
    assert_eq!(
        kinds.iter().copied().collect::<BTreeSet<_>>(),
        ["PodMonitor", "PrometheusRule"].into()
    );
    let pm = mons.iter().find(|m| m.kind == "PodMonitor").unwrap();
    assert!(
        selects(&pm.value["spec"]["selector"], &pods),
        "the PodMonitor selects the pods"
    );
    check_endpoint("PodMonitor", &pm.value["spec"]["podMetricsEndpoints"][0]);
    let ds = the_daemonset(&docs);
    let port = &edgevip_container(ds).ports.as_ref().unwrap()[0];
    assert_eq!(port.name.as_deref(), Some("api"));

    // The PrometheusRule is the rule file, as it is.
    let pr = mons.iter().find(|m| m.kind == "PrometheusRule").unwrap();
    let file: Value =
        serde_saphyr::from_str(&read(&deploy_dir().join("monitoring/edgevip-rules.yaml"))).unwrap();
    assert_eq!(
        pr.value["spec"], file,
        "PrometheusRule spec vs deploy/monitoring/edgevip-rules.yaml"
    );

    // The dashboard: the JSON file as it is, with the sidecar's label, where asked.
    let cm = configmaps(&docs)
        .into_iter()
        .find(|c| c.metadata.name.as_deref() == Some("edgevip-grafana-dashboard"))
        .expect("dashboard ConfigMap");
    assert_eq!(
        cm.metadata
            .labels
            .as_ref()
            .unwrap()
            .get("grafana_dashboard")
            .map(String::as_str),
        Some("1")
    );
    assert_eq!(
        cm.data.as_ref().unwrap().get("edgevip.json"),
        Some(&read(
            &deploy_dir().join("monitoring/grafana-dashboard.json")
        ))
    );
    let moved = helm_template(&[
        "monitoring.dashboard.enabled=true",
        "monitoring.dashboard.namespace=grafana",
        "monitoring.dashboard.annotations.grafana_folder=edge",
        "monitoring.podMonitor.enabled=true",
        "monitoring.podMonitor.labels.release=kps",
        "monitoring.interval=",
    ]);
    let cm = configmaps(&moved)[0];
    assert_eq!(cm.metadata.namespace.as_deref(), Some("grafana"));
    assert_eq!(
        cm.metadata.annotations.as_ref().unwrap()["grafana_folder"],
        "edge"
    );
    let pm = monitoring_docs(&moved)[0];
    assert_eq!(pm.value["metadata"]["labels"]["release"], "kps");
    assert!(
        pm.value["spec"]["podMetricsEndpoints"][0]
            .get("interval")
            .is_none()
    );

    // The ServiceMonitor variant: a headless Service over the pods' api port.
    let sm_docs = helm_template(&["monitoring.serviceMonitor.enabled=true"]);
    let svc = sm_docs
        .iter()
        .find_map(|d| match &d.obj {
            Object::Service(s) => Some(s),
            _ => None,
        })
        .expect("the metrics Service");
    let spec = svc.spec.as_ref().unwrap();
    assert_eq!(spec.cluster_ip.as_deref(), Some("None"));
    let sel = spec.selector.clone().unwrap();
    assert!(
        sel.iter().all(|(k, v)| pods.get(k) == Some(v)),
        "the Service selects the pods"
    );
    let sp = &spec.ports.as_ref().unwrap()[0];
    assert_eq!(sp.name.as_deref(), Some("api"));
    assert_eq!(sp.target_port, Some(IntOrString::String("api".into())));
    let sm = monitoring_docs(&sm_docs)[0];
    assert_eq!(sm.kind, "ServiceMonitor");
    let svc_labels = svc.metadata.labels.clone().unwrap();
    assert!(
        selects(&sm.value["spec"]["selector"], &svc_labels),
        "the ServiceMonitor selects the Service"
    );
    assert!(
        !selects(&sm.value["spec"]["selector"], &pods),
        "…and not something else with the pods' labels"
    );
    check_endpoint("ServiceMonitor", &sm.value["spec"]["endpoints"][0]);

    // podLabels reach the pods, not the selector.
    let labelled = helm_template(&["podLabels.team=edge", "podAnnotations.a=b"]);
    let ds = the_daemonset(&labelled);
    assert_eq!(
        pod_labels(&labelled).get("team").map(String::as_str),
        Some("edge")
    );
    assert!(
        !ds.spec
            .as_ref()
            .unwrap()
            .selector
            .match_labels
            .as_ref()
            .unwrap()
            .contains_key("team")
    );
}

/// deploy/monitoring (kustomize) and the chart's monitoring objects are the same, field
/// for field but Helm's labels; the rule file's three homes hold the same rules.
#[test]
fn monitoring_kustomize_equals_the_helm_render() {
    let rules_text = read(&deploy_dir().join("monitoring/edgevip-rules.yaml"));
    for copy in ["files/edgevip-rules.yaml", "files/grafana-dashboard.json"] {
        let name = copy.trim_start_matches("files/");
        assert!(
            read(&chart_dir().join(copy)) == read(&deploy_dir().join("monitoring").join(name)),
            "deploy/helm/edgevip/{copy} differs from deploy/monitoring/{name}: copy it over"
        );
    }
    let file: RuleSpec = serde_saphyr::from_str(&rules_text).unwrap();
    let pr_text = read(&deploy_dir().join("monitoring/prometheusrule.yaml"));
    let pr: CrdObject<RuleSpec> = serde_saphyr::from_str(&pr_text).unwrap();
    assert_eq!(
        pr.spec, file,
        "deploy/monitoring/prometheusrule.yaml spec vs edgevip-rules.yaml"
    );
    // The whole text, comments too: the PrometheusRule is the file indented.
    let indented: String = rules_text
        .lines()
        .map(|l| {
            if l.is_empty() {
                "\n".to_string()
            } else {
                format!("  {l}\n")
            }
        })
        .collect();
    assert!(
        pr_text.ends_with(&format!("spec:\n{indented}")),
        "prometheusrule.yaml: spec is not edgevip-rules.yaml indented"
    );

    if !tool("kubectl") || !tool("helm") {
        skip(
            "monitoring_kustomize_equals_the_helm_render",
            "helm or kubectl is not installed (scripts/install-deps installs them)",
        );
        return;
    }
    let built =
        comparable(&kustomize(&deploy_dir().join("monitoring")).unwrap_or_else(|e| panic!("{e}")));
    let base = comparable(&helm_template(&[]));
    let mut rendered = comparable(&helm_template(MONITORING_SETS));
    rendered.retain(|k, _| !base.contains_key(k));
    assert_same_objects(
        "helm monitoring render vs kubectl kustomize deploy/monitoring",
        &rendered,
        &built,
    );
}

// ---------------------------------------------------------------------------------------
// The VIPPool CustomResourceDefinition (issue 12)

/// Schema nodes without a type or a description, as dotted paths. `metadata` is the
/// server's (ObjectMeta) and needs neither; `items` and `additionalProperties` need a type.
fn untyped_or_undescribed(schema: &Value, path: &str, out: &mut Vec<String>) {
    let typed = schema.get("type").is_some() || schema["x-kubernetes-int-or-string"] == true;
    if !typed {
        out.push(format!("{path}: no type"));
    }
    for (k, sub) in schema["properties"].as_object().into_iter().flatten() {
        let p = format!("{path}.{k}");
        if path == "<root>" && k == "metadata" {
            continue;
        }
        if sub["description"].as_str().is_none_or(str::is_empty) {
            out.push(format!("{p}: no description"));
        }
        untyped_or_undescribed(sub, &p, out);
    }
    for key in ["items", "additionalProperties"] {
        if let Some(sub) = schema.get(key).filter(|s| s.is_object()) {
            untyped_or_undescribed(sub, &format!("{path}.{key}"), out);
        }
    }
}

/// Fields of `v` the schema does not name, as dotted paths.
fn outside_schema(schema: &Value, v: &Value, path: &str, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            let props = schema["properties"].as_object();
            let extra = schema.get("additionalProperties").filter(|a| a.is_object());
            for (k, x) in m {
                let p = format!("{path}.{k}");
                match props.and_then(|p| p.get(k)).or(extra) {
                    Some(sub) => outside_schema(sub, x, &p, out),
                    None => out.push(p),
                }
            }
        }
        Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                outside_schema(&schema["items"], x, &format!("{path}[{i}]"), out);
            }
        }
        _ => {}
    }
}

#[test]
fn vippool_crd_is_complete_and_the_chart_ships_the_same_file() {
    let docs = crds();
    let crd = the_crd(&docs, "vippools.edgevip.io");
    let spec = &crd.spec;
    assert_eq!(
        (spec.group.as_str(), spec.scope.as_str()),
        ("edgevip.io", "Cluster")
    );
    assert_eq!(
        (spec.names.kind.as_str(), spec.names.plural.as_str()),
        ("VIPPool", "vippools")
    );
    assert_eq!(spec.names.short_names, Some(vec!["vp".to_string()]));
    let [version] = spec.versions.as_slice() else {
        panic!("one version: {:?}", spec.versions);
    };
    assert_eq!(version.name, "v1alpha1");
    assert!(version.served && version.storage);
    assert!(
        version
            .subresources
            .as_ref()
            .is_some_and(|s| s.status.is_some()),
        "status subresource"
    );
    let columns: Vec<_> = version
        .additional_printer_columns
        .iter()
        .flatten()
        .map(|c| (c.name.as_str(), c.json_path.as_str()))
        .collect();
    assert_eq!(
        columns,
        [
            ("Addresses", ".spec.addresses"),
            ("Auto", ".spec.autoAssign"),
            ("Allocated", ".status.allocated"),
            ("Free", ".status.free"),
            ("Age", ".metadata.creationTimestamp"),
        ]
    );
    let schema = serde_json::to_value(
        version
            .schema
            .as_ref()
            .and_then(|s| s.open_api_v3_schema.as_ref())
            .expect("openAPIV3Schema"),
    )
    .unwrap();
    let mut problems = Vec::new();
    untyped_or_undescribed(&schema, "<root>", &mut problems);
    assert_no_problems("deploy/crds/vippool.yaml schema", problems);
    for field in ["addresses", "autoAssign", "serviceAllocation"] {
        assert!(
            schema["properties"]["spec"]["properties"][field].is_object(),
            "spec.{field}"
        );
    }
    assert_eq!(
        schema["properties"]["spec"]["properties"]["autoAssign"]["default"],
        true
    );
    for field in ["allocated", "free", "conditions"] {
        assert!(
            schema["properties"]["status"]["properties"][field].is_object(),
            "status.{field}"
        );
    }

    // Every example VIPPool stays inside the schema.
    let pools: Vec<_> = examples()
        .into_iter()
        .filter(|d| matches!(d.obj, Object::VipPool(_)))
        .collect();
    assert!(!pools.is_empty(), "deploy/examples has a VIPPool");
    for d in &pools {
        let mut out = Vec::new();
        outside_schema(&schema, &d.obj.to_value(), "", &mut out);
        out.retain(|p| {
            !p.starts_with(".apiVersion") && !p.starts_with(".kind") && !p.starts_with(".metadata")
        });
        assert_no_problems(&d.origin, out);
    }

    // Helm installs crds/ as is: the chart's copy is the same file.
    for file in ["vippool.yaml", "bgppeer.yaml"] {
        let plain_text = read(&deploy_dir().join("crds").join(file));
        let chart_text = read(&chart_dir().join("crds").join(file));
        assert_eq!(
            chart_text, plain_text,
            "deploy/helm/edgevip/crds/{file} differs from deploy/crds/{file}"
        );
    }
    let chart_files: Vec<_> = yaml_files(&chart_dir().join("crds"))
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    let plain_files: Vec<_> = yaml_files(&deploy_dir().join("crds"))
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(chart_files, plain_files, "the chart's crds/ = deploy/crds/");
}

#[test]
fn vippool_schema_checks_catch_mistakes() {
    let schema = serde_json::json!({"type": "object", "properties": {
    "spec": {"type": "object", "description": "s", "properties": {
        "a": {"description": "no type"},
        "b": {"type": "string"},
    }}}});
    let mut out = Vec::new();
    untyped_or_undescribed(&schema, "<root>", &mut out);
    assert_eq!(
        out,
        ["<root>.spec.a: no type", "<root>.spec.b: no description"]
    );
    let mut out = Vec::new();
    outside_schema(
        &schema,
        &serde_json::json!({"spec": {"b": "x", "c": 1}}),
        "",
        &mut out,
    );
    assert_eq!(out, [".spec.c"]);
    let bad = "apiVersion: edgevip.io/v1alpha1\nkind: VIPPool\nmetadata:\n  name: p\nspec:\n  adresses: []\n";
    assert!(parse_stream(bad, "bad").is_err(), "misspelt spec field");
}

// ---------------------------------------------------------------------------------------
// BGP (issue 13): the BGPPeer CRD, VIPPool's announce/bgp, the FRR sidecar variant

/// The CRD named `name` among `docs`.
fn the_crd<'a>(docs: &'a [Doc], name: &str) -> &'a CustomResourceDefinition {
    docs.iter()
        .find_map(|d| match &d.obj {
            Object::CustomResourceDefinition(c) if c.metadata.name.as_deref() == Some(name) => {
                Some(c)
            }
            _ => None,
        })
        .unwrap_or_else(|| panic!("no CRD {name}"))
}

fn crd_schema(crd: &CustomResourceDefinition) -> Value {
    serde_json::to_value(
        crd.spec.versions[0]
            .schema
            .as_ref()
            .and_then(|s| s.open_api_v3_schema.as_ref())
            .expect("openAPIV3Schema"),
    )
    .unwrap()
}

/// What the API server's validation of a structural schema refuses in `v` (the subset
/// the CRDs use: type, required, enum, not-enum, minimum/maximum, min/maxLength, pattern,
/// properties, items, additionalProperties), as "path: why".
fn schema_violations(schema: &Value, v: &Value, path: &str, out: &mut Vec<String>) {
    let ty = schema["type"].as_str();
    let ok = match (ty, v) {
        (None, _) => true,
        (Some("object"), Value::Object(_)) => true,
        (Some("array"), Value::Array(_)) => true,
        (Some("string"), Value::String(_)) => true,
        (Some("boolean"), Value::Bool(_)) => true,
        (Some("integer"), Value::Number(n)) => n.is_i64() || n.is_u64(),
        (Some("number"), Value::Number(_)) => true,
        _ => false,
    };
    if !ok {
        out.push(format!("{path}: {v} is not of type {}", ty.unwrap_or("?")));
        return;
    }
    if let Some(e) = schema["enum"].as_array()
        && !e.contains(v)
    {
        out.push(format!("{path}: {v} not in {e:?}"));
    }
    if let Some(e) = schema["not"]["enum"].as_array()
        && e.contains(v)
    {
        out.push(format!("{path}: {v} is refused"));
    }
    if let Some(x) = v.as_f64() {
        if schema["minimum"].as_f64().is_some_and(|m| x < m) {
            out.push(format!("{path}: {v} below {}", schema["minimum"]));
        }
        if schema["maximum"].as_f64().is_some_and(|m| x > m) {
            out.push(format!("{path}: {v} above {}", schema["maximum"]));
        }
    }
    if let Some(t) = v.as_str() {
        let n = t.chars().count() as u64;
        if schema["minLength"].as_u64().is_some_and(|m| n < m)
            || schema["maxLength"].as_u64().is_some_and(|m| n > m)
        {
            out.push(format!("{path}: length of {t:?}"));
        }
        if let Some(p) = schema["pattern"].as_str() {
            let re = regex::Regex::new(p).unwrap_or_else(|e| panic!("{path}: pattern {p}: {e}"));
            if !re.is_match(t) {
                out.push(format!("{path}: {t:?} does not match {p}"));
            }
        }
    }
    if let Value::Object(m) = v {
        for r in schema["required"].as_array().into_iter().flatten() {
            let r = r.as_str().unwrap();
            if !m.contains_key(r) {
                out.push(format!("{path}.{r}: required"));
            }
        }
        for (k, x) in m {
            let sub = schema["properties"]
                .get(k)
                .or(schema.get("additionalProperties").filter(|a| a.is_object()));
            match sub {
                Some(sub) => schema_violations(sub, x, &format!("{path}.{k}"), out),
                None if schema["properties"].is_object() => {
                    out.push(format!("{path}.{k}: unknown field"))
                }
                None => {}
            }
        }
    }
    if let Value::Array(a) = v {
        for (i, x) in a.iter().enumerate() {
            schema_violations(&schema["items"], x, &format!("{path}[{i}]"), out);
        }
    }
}

/// The example's object with `edit` applied at `path` (None removes the field).
fn edited(obj: &Value, path: &[&str], edit: Option<Value>) -> Value {
    let mut v = obj.clone();
    let mut cur = &mut v;
    for k in &path[..path.len() - 1] {
        cur = cur
            .as_object_mut()
            .unwrap()
            .entry(k.to_string())
            .or_insert_with(|| serde_json::json!({}));
    }
    let last = path[path.len() - 1].to_string();
    let m = cur.as_object_mut().unwrap();
    match edit {
        Some(x) => {
            m.insert(last, x);
        }
        None => {
            m.remove(&last);
        }
    }
    v
}

fn violations(schema: &Value, v: &Value) -> Vec<String> {
    let mut out = Vec::new();
    let mut v = v.clone();
    v.as_object_mut().unwrap().remove("metadata");
    schema_violations(schema, &v, "", &mut out);
    out
}

#[test]
fn bgppeer_crd_follows_the_contract_and_accepts_only_valid_objects() {
    let docs = crds();
    let crd = the_crd(&docs, "bgppeers.edgevip.io");
    let spec = &crd.spec;
    assert_eq!(
        (spec.group.as_str(), spec.scope.as_str()),
        ("edgevip.io", "Cluster")
    );
    assert_eq!(
        (
            spec.names.kind.as_str(),
            spec.names.plural.as_str(),
            spec.names.singular.as_deref()
        ),
        ("BGPPeer", "bgppeers", Some("bgppeer"))
    );
    assert_eq!(spec.names.short_names, Some(vec!["evbgp".to_string()]));
    let [version] = spec.versions.as_slice() else {
        panic!("one version: {:?}", spec.versions);
    };
    assert_eq!(version.name, "v1alpha1");
    assert!(version.served && version.storage);
    assert!(
        version
            .subresources
            .as_ref()
            .is_some_and(|s| s.status.is_some()),
        "status subresource"
    );
    let columns: Vec<_> = version
        .additional_printer_columns
        .iter()
        .flatten()
        .map(|c| (c.name.as_str(), c.json_path.as_str()))
        .collect();
    for want in [
        ("Peer", ".spec.peerAddress"),
        ("ASN", ".spec.peerASN"),
        ("Age", ".metadata.creationTimestamp"),
    ] {
        assert!(
            columns.contains(&want),
            "printer column {want:?}: {columns:?}"
        );
    }
    let schema = crd_schema(crd);
    let mut problems = Vec::new();
    untyped_or_undescribed(&schema, "<root>", &mut problems);
    assert_no_problems("deploy/crds/bgppeer.yaml schema", problems);
    let spec_schema = &schema["properties"]["spec"];
    assert_eq!(
        spec_schema["required"],
        serde_json::json!(["myASN", "peerASN", "peerAddress"])
    );
    let props: BTreeSet<&str> = spec_schema["properties"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        props,
        BTreeSet::from([
            "myASN",
            "peerASN",
            "peerAddress",
            "peerPort",
            "routerID",
            "holdTime",
            "keepaliveTime",
            "passwordSecret",
            "bfd",
            "ebgpMultiHop",
            "nodeSelector"
        ]),
        "the contract's fields"
    );
    // The contract's defaults.
    let p = &spec_schema["properties"];
    assert_eq!(p["peerPort"]["default"], 179);
    assert_eq!(p["holdTime"]["default"], "90s");
    assert_eq!(
        p["passwordSecret"]["properties"]["key"]["default"],
        "password"
    );
    assert_eq!(p["bfd"]["properties"]["interval"]["default"], "300ms");
    assert_eq!(p["bfd"]["properties"]["multiplier"]["default"], 3);

    // The examples: typed parse (Object::BgpPeer refuses unknown fields) and the schema.
    let ex = examples();
    let peers: Vec<&BgpPeer> = ex
        .iter()
        .filter_map(|d| match &d.obj {
            Object::BgpPeer(p) => Some(p),
            _ => None,
        })
        .collect();
    assert!(!peers.is_empty(), "deploy/examples has a BGPPeer");
    let secrets: Vec<&Secret> = ex
        .iter()
        .filter_map(|d| match &d.obj {
            Object::Secret(s) => Some(s),
            _ => None,
        })
        .collect();
    let net: (u32, u32) = (0xc000_0200, 0xffff_ff00); // 192.0.2.0/24, documentation only
    let in_doc_net = |a: &str| {
        a.parse::<std::net::Ipv4Addr>()
            .is_ok_and(|ip| u32::from(ip) & net.1 == net.0)
    };
    for peer in &peers {
        assert_no_problems("example BGPPeer", violations(&schema, &peer.value));
        let s = &peer.spec;
        assert!(
            in_doc_net(&s.peer_address),
            "{}: 192.0.2.0/24",
            s.peer_address
        );
        assert!(s.router_id.as_deref().is_none_or(in_doc_net));
        assert_ne!(s.my_asn, s.peer_asn, "the example is eBGP");
        assert!(s.peer_port.is_none_or(|p| p == 179));
        assert!(s.hold_time.is_some() && s.keepalive_time.is_some() && s.ebgp_multi_hop.is_none());
        assert!(s.node_selector.is_some());
        let b = s.bfd.as_ref().expect("the example shows BFD");
        assert!(b.interval.is_some() && b.multiplier.is_some());
        // Its password Secret is in edgevip's namespace, holding the named key.
        let ps = s
            .password_secret
            .as_ref()
            .expect("the example shows a password");
        let key = ps.key.as_deref().unwrap_or("password");
        let secret = secrets
            .iter()
            .find(|x| x.metadata.name.as_deref() == Some(ps.name.as_str()))
            .unwrap_or_else(|| panic!("no Secret {} in the example", ps.name));
        assert_eq!(secret.metadata.namespace.as_deref(), Some(NS));
        let has = secret
            .string_data
            .as_ref()
            .is_some_and(|d| d.contains_key(key))
            || secret.data.as_ref().is_some_and(|d| d.contains_key(key));
        assert!(has, "Secret {} lacks key {key}", ps.name);
    }

    // Bad values the API server must refuse.
    let good = &peers[0].value;
    let bad: &[(&[&str], Option<Value>)] = &[
        (&["spec", "myASN"], Some(0.into())),
        (&["spec", "myASN"], Some(23456.into())),
        (&["spec", "peerASN"], Some(23456.into())),
        (&["spec", "myASN"], Some(4_294_967_296u64.into())),
        (&["spec", "myASN"], Some("64512".into())),
        (&["spec", "myASN"], None),
        (&["spec", "peerASN"], None),
        (&["spec", "peerAddress"], None),
        (&["spec", "peerAddress"], Some("tor-a".into())),
        (&["spec", "peerPort"], Some(0.into())),
        (&["spec", "peerPort"], Some(65536.into())),
        (&["spec", "routerID"], Some("2001:db8::1".into())),
        (&["spec", "holdTime"], Some("2s".into())),
        (&["spec", "holdTime"], Some("90".into())),
        (&["spec", "holdTime"], Some("1.5s".into())),
        (&["spec", "holdTime"], Some("65536s".into())),
        (&["spec", "keepaliveTime"], Some("30m".into())),
        (&["spec", "passwordSecret", "name"], None),
        (
            &["spec", "passwordSecret", "namespace"],
            Some("default".into()),
        ),
        (&["spec", "bfd", "multiplier"], Some(1.into())),
        (&["spec", "bfd", "multiplier"], Some(256.into())),
        (&["spec", "bfd", "interval"], Some("fast".into())),
        (&["spec", "ebgpMultiHop"], Some(0.into())),
        (&["spec", "ebgpMultiHop"], Some(256.into())),
        (
            &["spec", "nodeSelector", "matchExpressions"],
            Some(serde_json::json!([{"key": "zone", "operator": "Is"}])),
        ),
        (&["spec", "peerAS"], Some(1.into())),
    ];
    for (path, edit) in bad {
        let v = edited(good, path, edit.clone());
        assert!(
            !violations(&schema, &v).is_empty(),
            "the schema accepts {path:?} = {edit:?}"
        );
    }
    // And the contract's edge values pass.
    let fine: &[(&[&str], Value)] = &[
        (&["spec", "myASN"], 4_294_967_295u64.into()),
        (&["spec", "peerAddress"], "2001:db8::1".into()),
        (&["spec", "holdTime"], "0s".into()),
        (&["spec", "holdTime"], "3s".into()),
        (&["spec", "holdTime"], "65535s".into()),
        (&["spec", "bfd", "interval"], "10ms".into()),
        (&["spec", "bfd", "interval"], "60s".into()),
        (&["spec", "ebgpMultiHop"], 255.into()),
        (&["spec", "routerID"], "192.0.2.11".into()),
    ];
    for (path, x) in fine {
        let v = edited(good, path, Some(x.clone()));
        assert_no_problems(&format!("{path:?} = {x}"), violations(&schema, &v));
    }
}

#[test]
fn vippool_announce_and_bgp_fields() {
    let docs = crds();
    let schema = crd_schema(the_crd(&docs, "vippools.edgevip.io"));
    let p = &schema["properties"]["spec"]["properties"];
    assert_eq!(p["announce"]["enum"], serde_json::json!(["arp", "bgp"]));
    // No default: stored pools written before the field stay as they were (absent = arp).
    assert!(p["announce"].get("default").is_none());
    let ex = examples();
    let bgp_pool = ex
        .iter()
        .find_map(|d| match &d.obj {
            Object::VipPool(v) if v.value["spec"]["announce"] == "bgp" => Some(v.value.clone()),
            _ => None,
        })
        .expect("an example VIPPool with announce: bgp");
    assert_no_problems("the announce: bgp VIPPool", violations(&schema, &bgp_pool));
    for pool in ex.iter().filter(|d| matches!(d.obj, Object::VipPool(_))) {
        assert_no_problems(&pool.origin, violations(&schema, &pool.obj.to_value()));
    }
    // The contract's three community forms and the LOCAL_PREF bounds.
    for c in ["64512:100", "no-export", "64512:1:2", "4200000000:1:2"] {
        let v = edited(
            &bgp_pool,
            &["spec", "bgp", "communities"],
            Some(serde_json::json!([c])),
        );
        assert_no_problems(c, violations(&schema, &v));
    }
    let bad: &[(&[&str], Value)] = &[
        (&["spec", "announce"], "ospf".into()),
        (&["spec", "announce"], "BGP".into()),
        (
            &["spec", "bgp", "communities"],
            serde_json::json!(["64512"]),
        ),
        (
            &["spec", "bgp", "communities"],
            serde_json::json!(["no export"]),
        ),
        (&["spec", "bgp", "communities"], serde_json::json!(["a:b"])),
        (&["spec", "bgp", "communities"], "64512:100".into()),
        (&["spec", "bgp", "localPref"], (-1).into()),
        (&["spec", "bgp", "localPref"], 4_294_967_296u64.into()),
        (&["spec", "bgp", "med"], 1.into()),
    ];
    for (path, x) in bad {
        let v = edited(&bgp_pool, path, Some(x.clone()));
        assert!(
            !violations(&schema, &v).is_empty(),
            "the schema accepts {path:?} = {x}"
        );
    }
    // The typed parse refuses a misspelt field too.
    let bad = "apiVersion: edgevip.io/v1alpha1\nkind: BGPPeer\nmetadata:\n  name: p\nspec:\n  myAsn: 1\n  peerASN: 2\n  peerAddress: 192.0.2.1\n";
    assert!(parse_stream(bad, "bad").is_err(), "misspelt BGPPeer field");
}

const FRR_CAPS: &[&str] = &["NET_ADMIN", "NET_RAW", "NET_BIND_SERVICE", "SYS_ADMIN"];

/// The BGP variant's invariants (kustomize Component or chart with bgp.enabled): an FRR
/// sidecar from the same image running frr-start, both volumes shared, edgevip's --frr-*
/// args, the sidecar's capabilities, and the contract's RBAC.
fn check_bgp_variant(docs: &[Doc]) -> Vec<String> {
    let mut p = Vec::new();
    let ds = the_daemonset(docs);
    let pod = ds.spec.as_ref().unwrap().template.spec.as_ref().unwrap();
    let names: Vec<&str> = pod.containers.iter().map(|c| c.name.as_str()).collect();
    if names != ["edgevip", "frr"] {
        p.push(format!("containers {names:?}, want [edgevip, frr]"));
        return p;
    }
    let (ev, frr) = (&pod.containers[0], &pod.containers[1]);
    if ev.image != frr.image {
        p.push(format!("images differ: {:?} vs {:?}", ev.image, frr.image));
    }
    if !ev.image.as_deref().is_some_and(|i| i.ends_with("-bgp")) {
        p.push(format!(
            "image {:?}: want the -bgp tag (docker build --target bgp)",
            ev.image
        ));
    }
    if frr.command.as_deref() != Some(&["/usr/local/bin/frr-start".to_string()][..]) {
        p.push(format!(
            "frr command {:?}, want [/usr/local/bin/frr-start]",
            frr.command
        ));
    }
    if frr.args.is_some() {
        p.push("frr container has args".into());
    }
    let mounts = |c: &Container| -> BTreeMap<String, String> {
        c.volume_mounts
            .iter()
            .flatten()
            .map(|m| (m.mount_path.clone(), m.name.clone()))
            .collect()
    };
    let (em, fm) = (mounts(ev), mounts(frr));
    for dir in ["/etc/frr", "/var/run/frr"] {
        match (em.get(dir), fm.get(dir)) {
            (Some(a), Some(b)) if a == b => {
                let vol = pod.volumes.iter().flatten().find(|v| &v.name == a);
                if vol.is_none_or(|v| v.empty_dir.is_none()) {
                    p.push(format!("volume {a} ({dir}) is not an emptyDir of the pod"));
                }
            }
            other => p.push(format!("{dir} not shared by one volume: {other:?}")),
        }
    }
    let args = ev.args.clone().unwrap_or_default();
    for pair in [
        ["--frr-config", "/etc/frr/frr.conf"],
        ["--frr-vty-socket", "/var/run/frr"],
    ] {
        if !args.windows(2).any(|w| w == pair) {
            p.push(format!("edgevip args lack {pair:?}"));
        }
    }
    // Without it the daemon refuses the --frr-* flags and serves no announce: bgp entry.
    if !args.iter().any(|a| a == "--bgp") {
        p.push("edgevip args lack --bgp".into());
    }
    let sc = frr.security_context.clone().unwrap_or_default();
    let caps = sc.capabilities.unwrap_or_default();
    if caps.drop != Some(vec!["ALL".into()]) {
        p.push("frr: capabilities must drop ALL".into());
    }
    let add: BTreeSet<String> = caps.add.unwrap_or_default().into_iter().collect();
    let want: BTreeSet<String> = FRR_CAPS.iter().map(|c| c.to_string()).collect();
    if add != want {
        p.push(format!("frr capabilities {add:?}, want {want:?}"));
    }
    if sc.privileged == Some(true) || sc.allow_privilege_escalation != Some(false) {
        p.push("frr: not privileged, no privilege escalation".into());
    }
    if sc.read_only_root_filesystem != Some(true) {
        p.push("frr: read-only root filesystem".into());
    }
    // The contract's RBAC, granted to edgevip's ServiceAccount.
    let (cluster, ns) = bgp_grants(docs);
    if !cluster.contains("get,list,watch") {
        p.push(format!(
            "bgppeers cluster-wide: {cluster:?}, want get,list,watch"
        ));
    }
    if !ns.contains("get,list,watch") {
        p.push(format!("secrets in {NS}: {ns:?}, want get,list,watch"));
    }
    p
}

/// Verbs (joined, sorted) on edgevip.io bgppeers in ClusterRoles, and on "" secrets in
/// Roles of edgevip's namespace; secrets in a ClusterRole are a violation (reported as
/// "CLUSTER-WIDE secrets").
fn bgp_grants(docs: &[Doc]) -> (BTreeSet<String>, BTreeSet<String>) {
    let mut cluster = BTreeSet::new();
    let mut ns = BTreeSet::new();
    for (doc, is_cluster, _, rules) in roles(docs) {
        for r in &rules {
            let groups = r.api_groups.clone().unwrap_or_default();
            let res = r.resources.clone().unwrap_or_default();
            let mut verbs = r.verbs.clone();
            verbs.sort();
            let verbs = verbs.join(",");
            if groups.iter().any(|g| g == "edgevip.io") && res.iter().any(|x| x == "bgppeers") {
                cluster.insert(if is_cluster {
                    verbs.clone()
                } else {
                    format!("namespaced {verbs}")
                });
            }
            if groups.iter().any(|g| g.is_empty()) && res.iter().any(|x| x == "secrets") {
                if is_cluster {
                    ns.insert("CLUSTER-WIDE secrets".to_string());
                } else if doc.obj.metadata().and_then(|m| m.namespace.as_deref()) == Some(NS) {
                    ns.insert(verbs);
                } else {
                    ns.insert("another namespace".to_string());
                }
            }
        }
    }
    (cluster, ns)
}

/// deploy/ plus the Component deploy/optional/bgp/, through an overlay outside deploy/.
fn bgp_overlay() -> Result<Vec<Doc>, String> {
    let overlay = TempDir::new("bgp-overlay");
    std::fs::write(
        overlay.0.join("kustomization.yaml"),
        format!(
            "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n\
             resources:\n  - {}\ncomponents:\n  - {}\n",
            relative_to_root(&overlay.0, &deploy_dir()),
            relative_to_root(&overlay.0, &deploy_dir().join("optional/bgp")),
        ),
    )
    .unwrap();
    kustomize(&overlay.0)
}

#[test]
fn bgp_variant_has_the_sidecar_and_its_rbac_and_the_default_does_not() {
    // Without BGP: no bgppeers or secrets access, no sidecar.
    let base = plain();
    let (c, n) = bgp_grants(&base);
    assert!(c.is_empty() && n.is_empty(), "deploy/ grants {c:?} {n:?}");
    assert_eq!(
        edgevip_container(the_daemonset(&base)).name,
        "edgevip",
        "one container"
    );
    let (c, n) = bgp_grants(&optional());
    assert!(
        c.is_empty() && n.is_empty(),
        "deploy/optional/*.yaml grants {c:?} {n:?}"
    );
    // The Component's own files parse as their API types (its patch is a partial
    // DaemonSet, so only the RBAC).
    let rbac = parse_stream(
        &read(&deploy_dir().join("optional/bgp/rbac.yaml")),
        "deploy/optional/bgp/rbac.yaml",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let mut problems = Vec::new();
    for (doc, cluster, _, rules) in roles(&rbac) {
        let t = rule_table(&rules);
        let want = if cluster {
            table(&[("edgevip.io", "bgppeers", &["get", "list", "watch"])])
        } else {
            table(&[("", "secrets", &["get", "list", "watch"])])
        };
        if t != want {
            problems.push(format!("{}: {t:?}, want {want:?}", doc.origin));
        }
    }
    assert_no_problems("deploy/optional/bgp/rbac.yaml", problems);
    assert_no_problems("bindings", check_bindings(&rbac, SA, NS));

    if !tool("kubectl") {
        skip(
            "bgp_variant_has_the_sidecar_and_its_rbac_and_the_default_does_not",
            "no kubectl: the Component is not rendered",
        );
    } else {
        let docs = bgp_overlay().unwrap_or_else(|e| panic!("kustomize deploy + optional/bgp: {e}"));
        assert_no_problems("kustomize deploy/ + optional/bgp", check_bgp_variant(&docs));
        // The rest of the DaemonSet is the default one's.
        let ds = the_daemonset(&docs);
        let mut problems = check_daemonset(ds, &format!("{NS}/{CONFIGMAP}"), SA);
        problems.retain(|p| !p.contains("frr") && !p.contains("container"));
        assert_no_problems("BGP DaemonSet", problems);
        // And the same objects as the chart with bgp.enabled=true, besides the args' order.
        if tool("helm") {
            let helm = helm_template_with_crds(&["bgp.enabled=true"]);
            assert_no_problems("helm bgp.enabled=true", check_bgp_variant(&helm));
            let a: BTreeSet<_> = keys(&docs);
            let b: BTreeSet<_> = keys(&helm);
            assert_eq!(
                a.iter().filter(|k| k.0 != "Namespace").collect::<Vec<_>>(),
                b.iter().filter(|k| k.0 != "Namespace").collect::<Vec<_>>(),
                "kustomize with optional/bgp vs helm bgp.enabled=true: objects"
            );
        }
    }
    if tool("helm") {
        let helm = helm_template(&[]);
        let (c, n) = bgp_grants(&helm);
        assert!(
            c.is_empty() && n.is_empty(),
            "default chart grants {c:?} {n:?}"
        );
        assert_eq!(
            the_daemonset(&helm)
                .spec
                .as_ref()
                .unwrap()
                .template
                .spec
                .as_ref()
                .unwrap()
                .containers
                .len(),
            1
        );
        let custom = helm_template(&[
            "bgp.enabled=true",
            "bgp.image.repository=registry.example/ev",
            "bgp.image.tag=9-bgp",
        ]);
        let pod = the_daemonset(&custom)
            .spec
            .clone()
            .unwrap()
            .template
            .spec
            .unwrap();
        for c in &pod.containers {
            assert_eq!(
                c.image.as_deref(),
                Some("registry.example/ev:9-bgp"),
                "{}",
                c.name
            );
        }
        assert!(
            try_helm_template(&["bgp.enabled=yes"]).is_err(),
            "schema: bgp.enabled bool"
        );
        assert!(
            try_helm_template(&["bgp.frr=1"]).is_err(),
            "schema: unknown bgp key"
        );
    }
}

#[test]
fn bgp_check_catches_mistakes() {
    if !tool("kubectl") {
        skip("bgp_check_catches_mistakes", "no kubectl");
        return;
    }
    let docs = bgp_overlay().unwrap();
    assert!(check_bgp_variant(&docs).is_empty());
    let mutate = |f: &dyn Fn(&mut k8s_openapi::api::core::v1::PodSpec)| -> Vec<String> {
        let mut docs = docs.clone();
        for d in &mut docs {
            if let Object::DaemonSet(ds) = &mut d.obj {
                f(ds.spec.as_mut().unwrap().template.spec.as_mut().unwrap());
            }
        }
        check_bgp_variant(&docs)
    };
    assert!(
        !mutate(&|p| p.containers[1].image = Some("other:1".into())).is_empty(),
        "image"
    );
    assert!(
        !mutate(&|p| p.containers[1].command = None).is_empty(),
        "command"
    );
    assert!(
        !mutate(&|p| {
            p.containers[0].volume_mounts = None;
        })
        .is_empty(),
        "mounts"
    );
    assert!(
        !mutate(&|p| {
            p.containers[0].args.as_mut().unwrap().retain(|a| {
                !a.starts_with("--frr") && !a.starts_with("/etc/frr") && a != "/var/run/frr"
            });
        })
        .is_empty(),
        "args"
    );
    assert!(
        !mutate(&|p| {
            let sc = p.containers[1].security_context.as_mut().unwrap();
            sc.capabilities
                .as_mut()
                .unwrap()
                .add
                .as_mut()
                .unwrap()
                .push("SYS_PTRACE".into());
        })
        .is_empty(),
        "caps"
    );
    let no_rbac: Vec<Doc> = docs
        .iter()
        .filter(|d| !matches!(&d.obj, Object::Role(r) if r.metadata.name.as_deref() == Some("edgevip-bgp")))
        .cloned()
        .collect();
    assert!(!check_bgp_variant(&no_rbac).is_empty(), "secrets Role");
}

/// packaging/frr/frr-start, run for real: in a network namespace, with the sidecar's
/// capabilities only (setpriv's bounding set) and root in frrvty (as the image's usermod,
/// through a private mount of /etc/group), it starts zebra, bgpd and bfdd that vtysh
/// reaches and configures, stays in the foreground, loads an existing frr.conf, and exits
/// non-zero when a daemon dies.
#[test]
fn frr_start_runs_bgpd_and_bfdd_in_the_foreground() {
    const T: &str = "frr_start_runs_bgpd_and_bfdd_in_the_foreground";
    let need = [
        "/usr/lib/frr/zebra",
        "/usr/lib/frr/bgpd",
        "/usr/lib/frr/bfdd",
        "/usr/bin/vtysh",
    ];
    if !nix::unistd::geteuid().is_root()
        || need.iter().any(|p| !Path::new(p).exists())
        || !tool("setpriv")
        || !tool("unshare")
    {
        skip(T, "needs root, FRR, setpriv and unshare");
        return;
    }
    let dir = TempDir::new("frr-start");
    let d = &dir.0;
    let ns = format!("evfrr{}", std::process::id());
    let ip = |args: &[&str]| Command::new("ip").args(args).status().unwrap().success();
    assert!(ip(&["netns", "add", &ns]));
    struct Ns(String);
    impl Drop for Ns {
        fn drop(&mut self) {
            let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
        }
    }
    let _ns = Ns(ns.clone());
    assert!(ip(&["-n", &ns, "link", "set", "lo", "up"]));
    let group: String = read(Path::new("/etc/group"))
        .lines()
        .map(|l| {
            if l.starts_with("frrvty:") {
                if l.ends_with(':') {
                    format!("{l}root")
                } else {
                    format!("{l},root")
                }
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(d.join("group"), group + "\n").unwrap();
    std::fs::create_dir_all(d.join("etc")).unwrap();
    // A config from an earlier run of the sidecar: loaded at start.
    std::fs::write(
        d.join("etc/frr.conf"),
        "router bgp 64512\n bgp router-id 192.0.2.11\n",
    )
    .unwrap();
    let script = repo_root().join("packaging/frr/frr-start");
    let caps = format!(
        "-all,{}",
        FRR_CAPS
            .iter()
            .map(|c| format!("+{}", c.to_lowercase()))
            .collect::<Vec<_>>()
            .join(",")
    );
    let inner = format!(
        "mount --bind '{g}' /etc/group && exec ip netns exec {ns} setpriv --bounding-set {caps} '{script}'",
        g = d.join("group").display(),
        script = script.display()
    );
    let mut child = Command::new("unshare")
        .args(["-m", "sh", "-c", &inner])
        .env("FRR_CONF_DIR", d.join("etc"))
        .env("FRR_RUN_DIR", d.join("run"))
        .env("FRR_LOG", format!("file:{}", d.join("frr.log").display()))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(d.join("stderr")).unwrap())
        .spawn()
        .unwrap();
    let vtysh = |cmds: &[&str]| {
        let mut c = Command::new("vtysh");
        c.arg("--vty_socket")
            .arg(d.join("run"))
            .arg("--config_dir")
            .arg(d.join("etc"));
        for x in cmds {
            c.args(["-c", x]);
        }
        c.output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default()
    };
    let start = Instant::now();
    let mut daemons = String::new();
    while start.elapsed() < Duration::from_secs(15) {
        daemons = vtysh(&["show daemons"]);
        if ["zebra", "bgpd", "bfdd"]
            .iter()
            .all(|x| daemons.contains(x))
        {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let log = || {
        format!(
            "stderr: {}\nlog: {}",
            read(&d.join("stderr")),
            std::fs::read_to_string(d.join("frr.log")).unwrap_or_default()
        )
    };
    assert!(
        ["zebra", "bgpd", "bfdd"]
            .iter()
            .all(|x| daemons.contains(x)),
        "vtysh show daemons: {daemons:?}\n{}",
        log()
    );
    // The earlier frr.conf was loaded (vtysh -b).
    let start = Instant::now();
    while !vtysh(&["show running-config"]).contains("192.0.2.11")
        && start.elapsed() < Duration::from_secs(5)
    {
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        vtysh(&["show running-config"]).contains("bgp router-id 192.0.2.11"),
        "frr.conf not loaded\n{}",
        log()
    );
    // What edgevip's config needs: a neighbour with a TCP MD5 password and BFD.
    vtysh(&[
        "conf t",
        "router bgp 64512",
        "neighbor 192.0.2.1 remote-as 64501",
        "neighbor 192.0.2.1 password s3cret",
        "neighbor 192.0.2.1 bfd",
        "end",
    ]);
    assert!(
        vtysh(&["show bgp summary"]).contains("192.0.2.1"),
        "{}",
        log()
    );
    assert!(
        vtysh(&["show bfd peers"]).contains("peer 192.0.2.1"),
        "{}",
        log()
    );
    let daemons_file = read(&d.join("etc/daemons"));
    for line in ["zebra=yes", "bgpd=yes", "bfdd=yes"] {
        assert!(
            daemons_file.lines().any(|l| l == line),
            "daemons file lacks {line}"
        );
    }
    // Foreground: still running; a dead bgpd ends it with a failure.
    assert!(
        child.try_wait().unwrap().is_none(),
        "frr-start exited early\n{}",
        log()
    );
    let pid: i32 = read(&d.join("run/bgpd.pid")).trim().parse().unwrap();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "frr-start did not exit after bgpd died"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(!status.success(), "frr-start exited 0 after bgpd died");
    // The other daemons are gone with it.
    for daemon in ["zebra", "bfdd"] {
        let pid: i32 = read(&d.join(format!("run/{daemon}.pid")))
            .trim()
            .parse()
            .unwrap();
        let start = Instant::now();
        while Path::new(&format!("/proc/{pid}")).exists()
            && start.elapsed() < Duration::from_secs(5)
        {
            std::thread::sleep(Duration::from_millis(100));
        }
        assert!(
            !Path::new(&format!("/proc/{pid}")).exists(),
            "{daemon} outlived frr-start"
        );
    }
}
