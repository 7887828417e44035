//! The edge nodes: their addresses and the order that gives priorities. The order is by
//! numeric address (kube-keepalived-vip sorted strings, putting 10.0.0.10 before 10.0.0.9).

use std::net::IpAddr;

use k8s_openapi::api::core::v1::Node;

use crate::trust::Cidr;

/// Overrides the computed priority of a node (1..254).
pub const PRIORITY_ANNOTATION: &str = "edgevip.io/priority";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeInfo {
    pub name: String,
    /// InternalIP addresses, IPv4 first. These are on the node's NIC (ExternalIPs often are
    /// not: kube-keepalived-vip picked those and failed to find the interface).
    pub addresses: Vec<IpAddr>,
    pub priority: Option<u8>,
    /// The annotation was present but not a number in 1..254.
    pub priority_error: Option<String>,
    /// The Ready condition is True (or absent).
    pub ready: bool,
    /// `spec.podCIDRs`: never a VIP.
    pub pod_cidrs: Vec<Cidr>,
    /// For BGPPeers' node selectors.
    pub labels: std::collections::BTreeMap<String, String>,
}

impl NodeInfo {
    pub fn from_node(n: &Node) -> NodeInfo {
        let name = n.metadata.name.clone().unwrap_or_default();
        let mut addresses: Vec<IpAddr> = n
            .status
            .as_ref()
            .and_then(|s| s.addresses.as_ref())
            .into_iter()
            .flatten()
            .filter(|a| a.type_ == "InternalIP")
            .filter_map(|a| a.address.trim().parse().ok())
            .collect();
        addresses.sort_by_key(|a| (a.is_ipv6(), *a));
        addresses.dedup();
        let (priority, priority_error) = match n
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(PRIORITY_ANNOTATION))
        {
            None => (None, None),
            Some(v) => match v.trim().parse::<u8>() {
                Ok(p) if (1..=254).contains(&p) => (Some(p), None),
                _ => (
                    None,
                    Some(format!(
                        "annotation {PRIORITY_ANNOTATION}: {v:?} is not a number in 1..254"
                    )),
                ),
            },
        };
        let ready = n
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .and_then(|c| c.iter().find(|c| c.type_ == "Ready"))
            .is_none_or(|c| c.status == "True");
        let pod_cidrs = n
            .spec
            .as_ref()
            .and_then(|s| s.pod_cidrs.as_ref())
            .into_iter()
            .flatten()
            .filter_map(|c| Cidr::parse(c).ok())
            .collect();
        NodeInfo {
            name,
            addresses,
            priority,
            priority_error,
            ready,
            pod_cidrs,
            labels: n.metadata.labels.clone().unwrap_or_default(),
        }
    }

    pub fn address_of(&self, v4: bool) -> Option<IpAddr> {
        self.addresses.iter().copied().find(|a| a.is_ipv4() == v4)
    }
}

/// Nodes in priority order: lowest numeric address first (IPv4 before IPv6), then name;
/// nodes without an address last.
pub fn ordered(nodes: &[NodeInfo]) -> Vec<&NodeInfo> {
    let mut v: Vec<&NodeInfo> = nodes.iter().collect();
    v.sort_by(|a, b| {
        let ka = (a.addresses.is_empty(), a.addresses.first(), &a.name);
        let kb = (b.addresses.is_empty(), b.addresses.first(), &b.name);
        ka.cmp(&kb)
    });
    v
}

/// Without an allocator Lease, the node that speaks for the cluster (Events about the
/// ConfigMap and Services, which every node would otherwise repeat): the first ready one
/// in priority order. Every node computes the same answer from the same view.
pub fn first_ready(nodes: &[NodeInfo]) -> Option<&NodeInfo> {
    ordered(nodes)
        .into_iter()
        .find(|n| n.ready && !n.addresses.is_empty())
}

/// The priority of `me` for the instance at `index`: 200 for the first node in order, a
/// step less for each following one. With `spread`, the order is rotated by the instance
/// index, so that each node comes first for a share of the instances (active-active), and
/// so are the others behind it, so a failed node's share falls to every other node in
/// turn rather than all to its neighbour.
pub fn priority(nodes: &[NodeInfo], me: &str, index: usize, spread: bool) -> Option<u8> {
    let order = ordered(nodes);
    let pos = order.iter().position(|n| n.name == me)?;
    if let Some(p) = order[pos].priority {
        return Some(p);
    }
    let n = order.len();
    let rank = if spread {
        spread_rank(pos, index, n)
    } else {
        pos
    };
    // Steps of up to 10: Skew_Time differs by step/256 of an interval between neighbours,
    // so the intended node wins a simultaneous election by milliseconds, not by noise.
    let step = (190 / n.saturating_sub(1).max(1)).clamp(1, 10);
    Some(200usize.saturating_sub(rank * step).max(1) as u8)
}

/// Rank of the node at `pos` (of `n`) for instance `index`: first is `index mod n`; the
/// others follow in cyclic order from it, rotated by `index / n`.
fn spread_rank(pos: usize, index: usize, n: usize) -> usize {
    let first = index % n;
    if pos == first {
        return 0;
    }
    let (behind, others) = ((pos + n - first) % n - 1, n - 1);
    1 + (behind + others - (index / n) % others) % others
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use super::*;

    fn node(name: &str, addrs: &[&str], prio: Option<&str>) -> NodeInfo {
        let mut n = Node::default();
        n.metadata.name = Some(name.into());
        if let Some(p) = prio {
            n.metadata.annotations =
                Some([(PRIORITY_ANNOTATION.to_string(), p.to_string())].into());
        }
        let mut st = k8s_openapi::api::core::v1::NodeStatus::default();
        let mut list = vec![k8s_openapi::api::core::v1::NodeAddress {
            type_: "Hostname".into(),
            address: name.into(),
        }];
        for a in addrs {
            list.push(k8s_openapi::api::core::v1::NodeAddress {
                type_: "InternalIP".into(),
                address: a.to_string(),
            });
        }
        st.addresses = Some(list);
        n.status = Some(st);
        NodeInfo::from_node(&n)
    }

    #[test]
    fn order_is_numeric_not_lexical() {
        let nodes = [
            node("a", &["10.0.0.10"], None),
            node("b", &["10.0.0.9"], None),
            node("c", &["2001:db8::1", "10.0.0.100"], None),
            node("d", &[], None),
        ];
        let names: Vec<&str> = ordered(&nodes).iter().map(|n| n.name.as_str()).collect();
        assert_eq!(names, ["b", "a", "c", "d"]);
        assert_eq!(priority(&nodes, "b", 0, false), Some(200));
        assert_eq!(priority(&nodes, "a", 0, false), Some(190));
        assert_eq!(priority(&nodes, "zz", 0, false), None);
        assert_eq!(
            nodes[2].addresses,
            vec![
                "10.0.0.100".parse::<IpAddr>().unwrap(),
                "2001:db8::1".parse().unwrap()
            ]
        );
    }

    #[test]
    fn spread_gives_each_node_a_share_and_annotation_overrides() {
        let nodes = [
            node("a", &["192.0.2.1"], None),
            node("b", &["192.0.2.2"], None),
            node("c", &["192.0.2.3"], None),
        ];
        // For instance k the node at position k comes first.
        for k in 0..6 {
            let top = ["a", "b", "c"]
                .iter()
                .max_by_key(|n| priority(&nodes, n, k, true))
                .unwrap();
            assert_eq!(*top, ["a", "b", "c"][k % 3]);
        }
        let mut prios: Vec<u8> = ["a", "b", "c"]
            .iter()
            .map(|n| priority(&nodes, n, 1, true).unwrap())
            .collect();
        prios.sort();
        assert_eq!(prios, [180, 190, 200], "distinct priorities");
        // Four nodes, 24 instances: each node is first for 6, and when it fails its 6 go
        // 2, 2, 2 to the others (the second in line), not all to one neighbour.
        let four: Vec<NodeInfo> = (1..=4)
            .map(|i| node(&format!("n{i}"), &[&format!("192.0.2.{i}")], None))
            .collect();
        let names: Vec<String> = (1..=4).map(|i| format!("n{i}")).collect();
        let mut heirs: BTreeMap<(String, String), usize> = BTreeMap::new();
        for k in 0..24 {
            let mut by: Vec<(u8, &String)> = names
                .iter()
                .map(|n| (priority(&four, n, k, true).unwrap(), n))
                .collect();
            by.sort();
            let ranks: BTreeSet<u8> = by.iter().map(|(p, _)| *p).collect();
            assert_eq!(ranks.len(), 4, "distinct at {k}");
            *heirs.entry((by[3].1.clone(), by[2].1.clone())).or_default() += 1;
        }
        assert_eq!(heirs.len(), 12, "every (first, second) pair: {heirs:?}");
        assert!(heirs.values().all(|c| *c == 2), "{heirs:?}");
        let nodes = [
            node("a", &["192.0.2.1"], Some("50")),
            node("b", &["192.0.2.2"], Some("300")),
        ];
        assert_eq!(priority(&nodes, "a", 0, false), Some(50));
        assert_eq!(priority(&nodes, "b", 0, false), Some(190));
        let many: Vec<NodeInfo> = (0..60)
            .map(|i| node(&format!("n{i}"), &[&format!("10.0.0.{i}")], None))
            .collect();
        let mut p: Vec<u8> = (0..60)
            .map(|i| priority(&many, &format!("n{i}"), 0, false).unwrap())
            .collect();
        p.dedup();
        assert_eq!(
            (p.len(), p[0], p[59]),
            (60, 200, 23),
            "60 distinct priorities"
        );
        assert!(
            nodes[1]
                .priority_error
                .as_deref()
                .unwrap()
                .contains("\"300\"")
        );
    }
}
