//! Authorization as kube-apiserver's RBAC authorizer decides it: (Cluster)Roles and their
//! bindings, loaded from manifests, grant a user verbs on resources; anything not granted
//! is a 403 worded like the real server's. By default the policy is the one edgevip ships
//! (deploy/02-clusterrole.yaml, deploy/03-role.yaml, deploy/optional/loadbalancer-rbac.yaml),
//! so a permission missing there fails the tests that use it.

use crate::status::ApiError;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding};
use serde_json::Value;

/// The shipped manifests, read at build time so a change to them reaches the tests.
pub const SHIPPED_MANIFESTS: &[(&str, &str)] = &[
    (
        "deploy/02-clusterrole.yaml",
        include_str!("../../../deploy/02-clusterrole.yaml"),
    ),
    (
        "deploy/03-role.yaml",
        include_str!("../../../deploy/03-role.yaml"),
    ),
    (
        "deploy/optional/loadbalancer-rbac.yaml",
        include_str!("../../../deploy/optional/loadbalancer-rbac.yaml"),
    ),
];

/// An authenticated user: name and groups, as a token authenticator reports them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub name: String,
    pub groups: Vec<String>,
}

impl User {
    /// `system:serviceaccount:NS:NAME` with the groups the token authenticator adds.
    pub fn service_account(namespace: &str, name: &str) -> User {
        User {
            name: format!("system:serviceaccount:{namespace}:{name}"),
            groups: vec![
                "system:serviceaccounts".into(),
                format!("system:serviceaccounts:{namespace}"),
                "system:authenticated".into(),
            ],
        }
    }

    /// A cluster admin: member of `system:masters`, which RBAC never restricts.
    pub fn admin() -> User {
        User {
            name: "fakeapi-admin".into(),
            groups: vec!["system:masters".into(), "system:authenticated".into()],
        }
    }

    pub fn anonymous() -> User {
        User {
            name: "system:anonymous".into(),
            groups: vec!["system:unauthenticated".into()],
        }
    }
}

/// What one resource request asks for (the apiserver's authorizer attributes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attributes {
    pub verb: &'static str,
    pub group: String,
    pub resource: String,
    pub subresource: Option<String>,
    pub namespace: Option<String>,
    pub name: Option<String>,
}

#[derive(Debug, Clone)]
struct Binding {
    /// None for a ClusterRoleBinding (everywhere), Some(ns) for a RoleBinding.
    namespace: Option<String>,
    subjects: Vec<(String, String)>,
    rules: Vec<PolicyRule>,
}

/// The roles and bindings in force.
#[derive(Debug, Clone, Default)]
pub struct Rbac {
    bindings: Vec<Binding>,
}

#[derive(Debug, thiserror::Error)]
#[error("{file}: {message}")]
pub struct RbacError {
    pub file: String,
    pub message: String,
}

impl Rbac {
    /// The policy edgevip ships (see [`SHIPPED_MANIFESTS`]).
    pub fn shipped() -> Rbac {
        Rbac::from_manifests(SHIPPED_MANIFESTS)
            .unwrap_or_else(|e| panic!("the shipped RBAC manifests do not parse: {e}"))
    }

    /// Roles and bindings from multi-document YAML files, given as (name, text). Other
    /// kinds are ignored; a binding whose role is missing grants nothing (as in a cluster).
    pub fn from_manifests(files: &[(&str, &str)]) -> Result<Rbac, RbacError> {
        let mut all = Vec::new();
        for (file, text) in files {
            let docs: Vec<Value> = serde_saphyr::from_multiple(text).map_err(|e| RbacError {
                file: file.to_string(),
                message: e.to_string(),
            })?;
            all.extend(docs.into_iter().map(|d| (file.to_string(), d)));
        }
        Rbac::from_documents(&all)
    }

    /// The shipped manifests as (file, document) pairs, for a test to edit a copy.
    pub fn shipped_documents() -> Vec<(String, Value)> {
        SHIPPED_MANIFESTS
            .iter()
            .flat_map(|(file, text)| {
                let docs: Vec<Value> = serde_saphyr::from_multiple(text)
                    .unwrap_or_else(|e| panic!("{file} does not parse: {e}"));
                docs.into_iter().map(|d| (file.to_string(), d))
            })
            .collect()
    }

    /// Roles and bindings from parsed documents, given as (file, document).
    pub fn from_documents(docs: &[(String, Value)]) -> Result<Rbac, RbacError> {
        let mut cluster_roles = Vec::new();
        let mut roles = Vec::new();
        let mut crbs = Vec::new();
        let mut rbs = Vec::new();
        for (file, doc) in docs {
            let err = |message: String| RbacError {
                file: file.clone(),
                message,
            };
            let doc = doc.clone();
            if doc.is_null() {
                continue;
            }
            {
                let kind = doc["kind"].as_str().unwrap_or_default().to_string();
                let parse = |e: serde_json::Error| err(format!("{kind}: {e}"));
                match kind.as_str() {
                    "ClusterRole" => cluster_roles
                        .push(serde_json::from_value::<ClusterRole>(doc).map_err(parse)?),
                    "Role" => roles.push(serde_json::from_value::<Role>(doc).map_err(parse)?),
                    "ClusterRoleBinding" => {
                        crbs.push(serde_json::from_value::<ClusterRoleBinding>(doc).map_err(parse)?)
                    }
                    "RoleBinding" => {
                        rbs.push(serde_json::from_value::<RoleBinding>(doc).map_err(parse)?)
                    }
                    _ => {}
                }
            }
        }
        let cluster_rules = |name: &str| -> Vec<PolicyRule> {
            cluster_roles
                .iter()
                .filter(|r| r.metadata.name.as_deref() == Some(name))
                .flat_map(|r| r.rules.clone().unwrap_or_default())
                .collect()
        };
        let subjects = |s: &Option<Vec<k8s_openapi::api::rbac::v1::Subject>>| {
            s.iter()
                .flatten()
                .map(|s| match s.kind.as_str() {
                    "ServiceAccount" => (
                        "User".to_string(),
                        format!(
                            "system:serviceaccount:{}:{}",
                            s.namespace.as_deref().unwrap_or_default(),
                            s.name
                        ),
                    ),
                    k => (k.to_string(), s.name.clone()),
                })
                .collect::<Vec<_>>()
        };
        let mut bindings = Vec::new();
        for b in &crbs {
            bindings.push(Binding {
                namespace: None,
                subjects: subjects(&b.subjects),
                rules: match b.role_ref.kind.as_str() {
                    "ClusterRole" => cluster_rules(&b.role_ref.name),
                    _ => Vec::new(),
                },
            });
        }
        for b in &rbs {
            let ns = b.metadata.namespace.clone().unwrap_or_default();
            let rules = match b.role_ref.kind.as_str() {
                "ClusterRole" => cluster_rules(&b.role_ref.name),
                "Role" => roles
                    .iter()
                    .filter(|r| {
                        r.metadata.name.as_deref() == Some(b.role_ref.name.as_str())
                            && r.metadata.namespace.as_deref() == Some(ns.as_str())
                    })
                    .flat_map(|r| r.rules.clone().unwrap_or_default())
                    .collect(),
                _ => Vec::new(),
            };
            bindings.push(Binding {
                namespace: Some(ns),
                subjects: subjects(&b.subjects),
                rules,
            });
        }
        Ok(Rbac { bindings })
    }

    /// Whether `user` may do `a` (system:masters may do anything, like the real server).
    pub fn allows(&self, user: &User, a: &Attributes) -> bool {
        if user.groups.iter().any(|g| g == "system:masters") {
            return true;
        }
        let is_subject = |subjects: &[(String, String)]| {
            subjects.iter().any(|(kind, name)| match kind.as_str() {
                "User" => *name == user.name,
                "Group" => user.groups.contains(name),
                _ => false,
            })
        };
        self.bindings
            .iter()
            .filter(|b| {
                b.namespace
                    .as_ref()
                    .is_none_or(|ns| a.namespace.as_ref() == Some(ns))
            })
            .filter(|b| is_subject(&b.subjects))
            .flat_map(|b| &b.rules)
            .any(|r| rule_allows(r, a))
    }

    /// 403 `Status` as kube-apiserver words it for a request RBAC refused.
    pub fn forbidden(user: &User, a: &Attributes) -> ApiError {
        let resource = match &a.subresource {
            Some(s) => format!("{}/{s}", a.resource),
            None => a.resource.clone(),
        };
        let scope = match &a.namespace {
            Some(ns) => format!("in the namespace {ns:?}"),
            None => "at the cluster scope".to_string(),
        };
        let qualified = if a.group.is_empty() {
            a.resource.clone()
        } else {
            format!("{}.{}", a.resource, a.group)
        };
        let object = match &a.name {
            Some(n) => format!("{qualified} {n:?}"),
            None => qualified,
        };
        ApiError::new(
            403,
            "Forbidden",
            format!(
                "{object} is forbidden: User {:?} cannot {} resource {resource:?} in API group {:?} {scope}",
                user.name, a.verb, a.group
            ),
        )
    }
}

/// One PolicyRule against the request, with RBAC's wildcard rules (`*`, `*/subresource`).
fn rule_allows(r: &PolicyRule, a: &Attributes) -> bool {
    let any = |list: &Option<Vec<String>>, want: &str| {
        list.iter().flatten().any(|v| v == "*" || v == want)
    };
    let combined = match &a.subresource {
        Some(s) => format!("{}/{s}", a.resource),
        None => a.resource.clone(),
    };
    let resource_ok = r.resources.iter().flatten().any(|res| {
        res == "*"
            || *res == combined
            || a.subresource
                .as_ref()
                .is_some_and(|s| res.strip_prefix("*/") == Some(s.as_str()))
    });
    let names_ok = match &r.resource_names {
        Some(names) if !names.is_empty() => a.name.as_ref().is_some_and(|n| names.contains(n)),
        _ => true,
    };
    r.verbs.iter().any(|v| v == "*" || v == a.verb)
        && any(&r.api_groups, &a.group)
        && resource_ok
        && names_ok
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attrs(verb: &'static str, group: &str, res: &str, ns: Option<&str>) -> Attributes {
        Attributes {
            verb,
            group: group.into(),
            resource: res.into(),
            subresource: None,
            namespace: ns.map(str::to_string),
            name: None,
        }
    }

    #[test]
    fn shipped_policy() {
        let p = Rbac::shipped();
        let sa = User::service_account("edgevip", "edgevip");
        let other = User::service_account("default", "default");
        assert!(p.allows(&sa, &attrs("watch", "", "nodes", None)));
        assert!(!p.allows(&sa, &attrs("update", "", "nodes", None)));
        assert!(!p.allows(&other, &attrs("watch", "", "nodes", None)));
        // The ConfigMap only in edgevip's namespace (a Role, not a ClusterRole).
        assert!(p.allows(&sa, &attrs("list", "", "configmaps", Some("edgevip"))));
        assert!(!p.allows(&sa, &attrs("list", "", "configmaps", Some("default"))));
        assert!(!p.allows(&sa, &attrs("list", "", "configmaps", None)));
        assert!(p.allows(&sa, &attrs("create", "events.k8s.io", "events", Some("x"))));
        let mut status = attrs("patch", "", "services", Some("web"));
        assert!(!p.allows(&sa, &status));
        status.subresource = Some("status".into());
        assert!(p.allows(&sa, &status));
        status.verb = "update";
        assert!(!p.allows(&sa, &status));
        assert!(p.allows(&User::admin(), &status));
    }

    #[test]
    fn wildcards_and_names() {
        let yaml = "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata: {name: r}\n\
            rules:\n- {apiGroups: ['*'], resources: ['*/status'], verbs: ['get']}\n\
            - {apiGroups: [''], resources: [configmaps], resourceNames: [a], verbs: ['*']}\n---\n\
            apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\nmetadata: {name: b}\n\
            roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: r}\n\
            subjects: [{kind: Group, name: devs, apiGroup: rbac.authorization.k8s.io}]\n";
        let p = Rbac::from_manifests(&[("t", yaml)]).expect("parse");
        let u = User {
            name: "u".into(),
            groups: vec!["devs".into()],
        };
        let mut a = attrs("get", "apps", "deployments", Some("x"));
        assert!(!p.allows(&u, &a));
        a.subresource = Some("status".into());
        assert!(p.allows(&u, &a));
        let mut cm = attrs("delete", "", "configmaps", Some("x"));
        assert!(!p.allows(&u, &cm), "resourceNames need a name");
        cm.name = Some("a".into());
        assert!(p.allows(&u, &cm));
        cm.name = Some("b".into());
        assert!(!p.allows(&u, &cm));
    }

    #[test]
    fn forbidden_wording() {
        let sa = User::service_account("edgevip", "edgevip");
        let mut a = attrs("list", "", "nodes", None);
        assert_eq!(
            Rbac::forbidden(&sa, &a).message,
            "nodes is forbidden: User \"system:serviceaccount:edgevip:edgevip\" cannot list \
             resource \"nodes\" in API group \"\" at the cluster scope"
        );
        a = attrs("patch", "", "services", Some("web"));
        a.subresource = Some("status".into());
        a.name = Some("ingress".into());
        assert_eq!(
            Rbac::forbidden(&sa, &a).message,
            "services \"ingress\" is forbidden: User \"system:serviceaccount:edgevip:edgevip\" \
             cannot patch resource \"services/status\" in API group \"\" in the namespace \"web\""
        );
    }
}
