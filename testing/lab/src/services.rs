//! LoadBalancer Services in bulk on a [`KubeLab`], shared by the Kubernetes benchmark and
//! the lab tests: create them through the API server as a client does (HTTPS as a cluster
//! admin, many requests in flight), wait for their status, and read from the nodes'
//! `/status` which node masters which Service VIP.
//!
//! Who masters what is read generically, whatever the daemon's grouping of Service VIPs
//! into VRRP instances: every instance listing a Service VIP (one the node's
//! `kubernetes.load_balancers` serves) credits that VIP to the node where the instance's
//! router of the VIP's family is master.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::KubeLab;

/// The loadBalancerClass the daemon serves by default.
pub const LB_CLASS: &str = "edgevip.io/vip";
/// The namespace of the Services made here.
pub const NAMESPACE: &str = "web";

/// A LoadBalancer Service `web/<name>` of edgevip's class (port 80/TCP), asking for `ip`
/// if given.
pub fn lb_service(name: &str, ip: Option<&str>) -> Value {
    let mut s = lb_service_in(NAMESPACE, name, &[(80, "TCP")]);
    if let Some(ip) = ip {
        s["spec"]["loadBalancerIP"] = json!(ip);
    }
    s
}

/// A LoadBalancer Service `<ns>/<name>` of edgevip's class with `ports` (port, protocol).
pub fn lb_service_in(ns: &str, name: &str, ports: &[(u16, &str)]) -> Value {
    let ports: Vec<Value> = ports
        .iter()
        .map(|(p, proto)| json!({"name": format!("{}-{p}", proto.to_lowercase()), "port": p, "protocol": proto}))
        .collect();
    json!({"apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"type": "LoadBalancer", "loadBalancerClass": LB_CLASS, "ports": ports}})
}

/// Like [`lb_service`], of one IP family only (`ipFamilies: [IPv4]` or `[IPv6]`): a
/// Service that names none takes the first family of its pools.
pub fn lb_service_of(name: &str, v4: bool) -> Value {
    let mut s = lb_service(name, None);
    s["spec"]["ipFamilies"] = json!([if v4 { "IPv4" } else { "IPv6" }]);
    s["spec"]["ipFamilyPolicy"] = json!("SingleStack");
    s
}

/// The VIP recorded in `web/<name>`'s status.
pub fn recorded(k: &KubeLab, name: &str) -> Option<String> {
    k.api.get("v1", "Service", Some(NAMESPACE), name)?["status"]["loadBalancer"]["ingress"][0]["ip"]
        .as_str()
        .map(str::to_string)
}

/// `svc-<first>` … `svc-<first + n - 1>`, zero-padded so they sort in creation order.
pub fn names(first: usize, n: usize) -> Vec<String> {
    (first..first + n).map(|i| format!("svc-{i:05}")).collect()
}

impl KubeLab {
    /// Creates the Services `services` (in namespace `web`, e.g. from [`lb_service`])
    /// through the API server over HTTPS as a cluster admin (from the client namespace),
    /// `parallel` requests in flight; returns how long the creates took. Panics on the
    /// first failed create.
    pub fn create_services(&self, services: &[Value], parallel: usize) -> Duration {
        use futures::StreamExt;
        let config = edgevip_fakeapi::kube_config_as(self.api_addr(), edgevip_fakeapi::ADMIN_TOKEN);
        let objects: Vec<k8s_openapi::api::core::v1::Service> = services
            .iter()
            .map(|s| serde_json::from_value(s.clone()).expect("a Service"))
            .collect();
        let run = move || -> Result<Duration, String> {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            rt.block_on(async move {
                let client = kube::Client::try_from(config).map_err(|e| e.to_string())?;
                let api: kube::Api<k8s_openapi::api::core::v1::Service> =
                    kube::Api::namespaced(client, NAMESPACE);
                let pp = kube::api::PostParams::default();
                let start = Instant::now();
                let mut creates = futures::stream::iter(objects.iter())
                    .map(|s| api.create(&pp, s))
                    .buffer_unordered(parallel.max(1));
                while let Some(r) = creates.next().await {
                    r.map_err(|e| format!("create a Service: {e}"))?;
                }
                Ok(start.elapsed())
            })
        };
        crate::in_netns(self.cluster.lab.client_ns(), run)
            .expect("enter the client namespace")
            .join()
            .expect("client thread")
            .expect("entered")
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// Deletes `web/<name>` for every name (in-process: no API traffic of its own).
    pub fn delete_services(&self, names: &[String]) {
        for n in names {
            self.api.delete("v1", "Service", Some(NAMESPACE), n);
        }
    }

    /// How many of the Services `names` have an address in `status.loadBalancer.ingress`.
    pub fn recorded_count(&self, names: &[String]) -> usize {
        let wanted: BTreeSet<&str> = names.iter().map(String::as_str).collect();
        self.api
            .list("v1", "Service")
            .iter()
            .filter(|s| s["metadata"]["namespace"] == NAMESPACE)
            .filter(|s| {
                s["metadata"]["name"]
                    .as_str()
                    .is_some_and(|n| wanted.contains(n))
            })
            .filter(|s| s["status"]["loadBalancer"]["ingress"][0]["ip"].is_string())
            .count()
    }

    /// Polls (every `poll`) until all of `names` have their status written; the time from
    /// `since`, or `None` once `timeout` (from `since`) has passed.
    pub fn wait_recorded(
        &self,
        names: &[String],
        since: Instant,
        poll: Duration,
        timeout: Duration,
    ) -> Option<Duration> {
        crate::wait_until(timeout.saturating_sub(since.elapsed()), poll, || {
            self.recorded_count(names) == names.len()
        })
        .then(|| since.elapsed())
    }

    /// Node `i`'s `/status` as JSON (`None` when its API does not answer: a killed node).
    pub fn node_status(&self, i: usize) -> Option<Value> {
        let (code, body) = self.cluster.try_http_get(i, "/status")?;
        (code == 200).then(|| serde_json::from_str(&body).expect("status JSON"))
    }

    /// How many LoadBalancer Services node `i` serves (its `kubernetes.load_balancers`).
    pub fn served_count(&self, i: usize) -> usize {
        self.node_status(i)
            .and_then(|s| {
                s["kubernetes"]["load_balancers"]
                    .as_object()
                    .map(|m| m.len())
            })
            .unwrap_or(0)
    }

    /// Who masters which Service VIP, from the `/status` of `nodes` (those that answer).
    pub fn mastery(&self, nodes: &[usize]) -> Mastery {
        let statuses: Vec<(usize, Value)> = nodes
            .iter()
            .filter_map(|i| Some((*i, self.node_status(*i)?)))
            .collect();
        Mastery::from_statuses(&statuses)
    }

    /// Polls `mastery(nodes)` every `poll` until `done` holds; the last reading and whether
    /// `done` held before `timeout`.
    pub fn wait_mastery(
        &self,
        nodes: &[usize],
        poll: Duration,
        timeout: Duration,
        mut done: impl FnMut(&Mastery) -> bool,
    ) -> (Mastery, bool) {
        let start = Instant::now();
        loop {
            let m = self.mastery(nodes);
            if done(&m) {
                return (m, true);
            }
            if start.elapsed() >= timeout {
                return (m, false);
            }
            std::thread::sleep(poll);
        }
    }

    /// Resident set of node `i`'s edgevip in MiB (0 when it is not running).
    pub fn rss_mib(&self, i: usize) -> f64 {
        let pids = crate::procstat::daemon_pids(&self.cluster.lab.host(i).ns, "edgevip");
        crate::procstat::rss_mib(&pids)
    }

    /// User + system CPU seconds node `i`'s edgevip has used.
    pub fn cpu_seconds(&self, i: usize) -> f64 {
        let pids = crate::procstat::daemon_pids(&self.cluster.lab.host(i).ns, "edgevip");
        crate::procstat::cpu_total(&pids)
    }
}

/// Which nodes claim to be master for each Service VIP.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Mastery {
    /// Every Service VIP any node serves.
    pub vips: BTreeSet<IpAddr>,
    /// Service VIP → the nodes whose router for it is master (one, in a settled cluster).
    pub masters: BTreeMap<IpAddr, Vec<usize>>,
    /// The nodes read.
    pub nodes: Vec<usize>,
}

impl Mastery {
    /// From `(node, /status JSON)` pairs. A VIP listed as `addr/len` counts by its address;
    /// an instance without per-family routers counts by its own `state`.
    pub fn from_statuses(statuses: &[(usize, Value)]) -> Mastery {
        let mut m = Mastery {
            nodes: statuses.iter().map(|(i, _)| *i).collect(),
            ..Mastery::default()
        };
        for (_, st) in statuses {
            if let Some(lbs) = st["kubernetes"]["load_balancers"].as_object() {
                m.vips.extend(
                    lbs.values()
                        .filter_map(|v| v.as_str()?.parse::<IpAddr>().ok()),
                );
            }
        }
        for (node, st) in statuses {
            for inst in st["instances"].as_array().into_iter().flatten() {
                let vips = inst["vips"].as_array().into_iter().flatten();
                for vip in vips.filter_map(|v| v.as_str()) {
                    let Ok(ip) = vip.split('/').next().unwrap_or(vip).parse::<IpAddr>() else {
                        continue;
                    };
                    if m.vips.contains(&ip) && master_for(inst, ip) {
                        m.masters.entry(ip).or_default().push(*node);
                    }
                }
            }
        }
        m
    }

    /// The one node master for `vip`, if exactly one is.
    pub fn sole_master(&self, vip: IpAddr) -> Option<usize> {
        match self.masters.get(&vip).map(Vec::as_slice) {
            Some([n]) => Some(*n),
            _ => None,
        }
    }

    /// Service VIPs that no node read masters.
    pub fn unmastered(&self) -> usize {
        self.vips
            .iter()
            .filter(|v| self.masters.get(v).is_none_or(Vec::is_empty))
            .count()
    }

    /// Service VIPs that more than one node claims.
    pub fn contested(&self) -> usize {
        self.masters.values().filter(|n| n.len() > 1).count()
    }

    /// Every one of `want` Service VIPs has exactly one master.
    pub fn settled(&self, want: usize) -> bool {
        self.vips.len() == want && self.vips.iter().all(|v| self.sole_master(*v).is_some())
    }

    /// How many Service VIPs each of `nodes` is the sole master of, in that order.
    pub fn shares(&self, nodes: &[usize]) -> Vec<usize> {
        nodes
            .iter()
            .map(|n| {
                self.vips
                    .iter()
                    .filter(|v| self.sole_master(**v) == Some(*n))
                    .count()
            })
            .collect()
    }

    /// The Service VIPs whose sole master in `before` is not their sole master here (gone,
    /// another node, or contested).
    pub fn moved_since(&self, before: &Mastery) -> usize {
        before
            .vips
            .iter()
            .filter_map(|v| Some((v, before.sole_master(*v)?)))
            .filter(|(v, n)| self.sole_master(**v) != Some(*n))
            .count()
    }
}

/// Whether instance `inst` (one `/status` entry) is master for `ip`: its router of `ip`'s
/// family, or the instance's state when it lists no routers.
fn master_for(inst: &Value, ip: IpAddr) -> bool {
    let family = if ip.is_ipv4() { "ipv4" } else { "ipv6" };
    let routers = inst["routers"].as_array().filter(|r| !r.is_empty());
    match routers {
        Some(rs) => rs
            .iter()
            .any(|r| r["family"] == family && r["state"] == "master"),
        None => inst["state"] == "master",
    }
}

/// Largest share over smallest: 1.0 for an even spread, infinite when a node masters none
/// (while another masters some), NaN when no node masters any.
pub fn spread(shares: &[usize]) -> f64 {
    let max = shares.iter().copied().max().unwrap_or(0);
    let min = shares.iter().copied().min().unwrap_or(0);
    match (min, max) {
        (_, 0) => f64::NAN,
        (0, _) => f64::INFINITY,
        _ => max as f64 / min as f64,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(lbs: &[&str], instances: Value) -> Value {
        let lbs: serde_json::Map<String, Value> = lbs
            .iter()
            .enumerate()
            .map(|(i, v)| (format!("web/s{i}"), json!(v)))
            .collect();
        json!({"instances": instances, "kubernetes": {"load_balancers": lbs}})
    }

    fn inst(vips: &[&str], v4: &str, v6: &str) -> Value {
        json!({"name": "lb", "state": v4, "vips": vips, "routers": [
            {"family": "ipv4", "state": v4}, {"family": "ipv6", "state": v6}]})
    }

    #[test]
    fn each_vip_counts_for_the_router_of_its_family() {
        let lbs = ["192.0.2.200", "2001:db8::200", "192.0.2.201"];
        let a = node(
            &lbs,
            json!([inst(&["192.0.2.200/24", "2001:db8::200/64", "192.0.2.201/24"], "master", "backup"),
                   // Not a Service VIP (a ConfigMap entry): never counted.
                   {"name": "ingress", "state": "master", "vips": ["192.0.2.100/24"], "routers": []}]),
        );
        let b = node(
            &lbs,
            json!([inst(
                &["192.0.2.200/24", "2001:db8::200/64", "192.0.2.201/24"],
                "backup",
                "master"
            )]),
        );
        let m = Mastery::from_statuses(&[(0, a), (1, b)]);
        assert_eq!(m.vips.len(), 3);
        assert_eq!(m.shares(&[0, 1]), vec![2, 1]);
        assert_eq!(m.unmastered(), 0);
        assert!(m.settled(3));
        assert_eq!(spread(&m.shares(&[0, 1])), 2.0);
    }

    #[test]
    fn two_masters_are_contested_and_count_for_neither() {
        let lbs = ["192.0.2.200"];
        let both = || node(&lbs, json!([inst(&["192.0.2.200/32"], "master", "init")]));
        let m = Mastery::from_statuses(&[(0, both()), (1, both())]);
        assert_eq!(m.contested(), 1);
        assert_eq!(m.shares(&[0, 1]), vec![0, 0]);
        assert!(!m.settled(1));
        assert!(spread(&m.shares(&[0, 1])).is_nan());
    }

    #[test]
    fn moves_count_vips_whose_sole_master_changed() {
        let lbs = ["192.0.2.200", "192.0.2.201"];
        let one = |s: [&str; 2]| {
            json!([
                inst(&["192.0.2.200/24"], s[0], "init"),
                inst(&["192.0.2.201/24"], s[1], "init")
            ])
        };
        let before = Mastery::from_statuses(&[
            (0, node(&lbs, one(["master", "backup"]))),
            (1, node(&lbs, one(["backup", "master"]))),
        ]);
        // Node 0 is gone: its VIP moved to node 1, node 1's stayed.
        let after = Mastery::from_statuses(&[(1, node(&lbs, one(["master", "master"])))]);
        assert_eq!(after.moved_since(&before), 1);
        assert_eq!(after.shares(&[1]), vec![2]);
        assert_eq!(spread(&[0, 3, 5]), f64::INFINITY);
        assert_eq!(spread(&[4, 3, 6]), 2.0);
    }
}
