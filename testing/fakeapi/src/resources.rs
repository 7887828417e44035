//! Static resource table: (group/version, plural) <-> kind, and scope. The resources of
//! CustomResourceDefinitions are added at run time by the store (crd.rs).

/// One served resource type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResourceInfo {
    /// API group, empty for the core group.
    pub group: &'static str,
    pub version: &'static str,
    /// Plural resource name used in URLs.
    pub plural: &'static str,
    pub kind: &'static str,
    pub namespaced: bool,
    /// Has a `/status` subresource: main-resource updates keep the stored status and
    /// `/status` updates only touch status (like the real apiserver).
    pub status_subresource: bool,
}

impl ResourceInfo {
    /// `v1` for the core group, `group/version` otherwise.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_string()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }
}

const fn r(
    group: &'static str,
    version: &'static str,
    plural: &'static str,
    kind: &'static str,
    namespaced: bool,
    status_subresource: bool,
) -> ResourceInfo {
    ResourceInfo {
        group,
        version,
        plural,
        kind,
        namespaced,
        status_subresource,
    }
}

/// Every resource the fake serves.
pub const RESOURCES: &[ResourceInfo] = &[
    r("", "v1", "nodes", "Node", false, true),
    r("", "v1", "namespaces", "Namespace", false, true),
    r("", "v1", "configmaps", "ConfigMap", true, false),
    r("", "v1", "secrets", "Secret", true, false),
    r("", "v1", "services", "Service", true, true),
    r("", "v1", "endpoints", "Endpoints", true, false),
    r("", "v1", "pods", "Pod", true, true),
    r("", "v1", "events", "Event", true, false),
    r("", "v1", "serviceaccounts", "ServiceAccount", true, false),
    r(
        "discovery.k8s.io",
        "v1",
        "endpointslices",
        "EndpointSlice",
        true,
        false,
    ),
    r("events.k8s.io", "v1", "events", "Event", true, false),
    r("coordination.k8s.io", "v1", "leases", "Lease", true, false),
    r("apps", "v1", "deployments", "Deployment", true, true),
    r("apps", "v1", "daemonsets", "DaemonSet", true, true),
    r(
        "apiextensions.k8s.io",
        "v1",
        "customresourcedefinitions",
        "CustomResourceDefinition",
        false,
        true,
    ),
];

/// Find by URL coordinates.
pub fn by_plural(group: &str, version: &str, plural: &str) -> Option<&'static ResourceInfo> {
    RESOURCES
        .iter()
        .find(|r| r.group == group && r.version == version && r.plural == plural)
}

/// Find by `apiVersion` + `kind` as found in object bodies.
pub fn by_kind(api_version: &str, kind: &str) -> Option<&'static ResourceInfo> {
    RESOURCES
        .iter()
        .find(|r| r.kind == kind && r.api_version() == api_version)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookups_agree() {
        let ev = by_plural("events.k8s.io", "v1", "events").expect("events.k8s.io");
        assert_eq!(ev.api_version(), "events.k8s.io/v1");
        assert_eq!(by_kind("v1", "Event").map(|r| r.group), Some(""));
        assert!(!by_kind("v1", "Node").expect("node").namespaced);
        assert!(by_plural("", "v1", "nope").is_none());
    }
}
