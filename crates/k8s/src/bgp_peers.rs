//! BGP peers in Kubernetes mode: the `BGPPeer` custom resources
//! (`deploy/crds/bgppeer.yaml`, cluster-scoped: only cluster admins say whom the edge
//! talks BGP to) and the password Secrets they name in edgevip's own namespace. Never the
//! VIP ConfigMap, which carries no routing and no credentials. Pure: the controller caches
//! what `from_object` reads and `for_node` makes this node's `bgp:` section, which the
//! speaker renders for FRR exactly as a file's.
//!
//! A peer is validated by the same code as the file's `bgp.peers[]` entries
//! (`edgevip_config::bgp_peer`); errors name the object's fields (`spec.peerAddress`, not
//! the file's `address`).

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::time::Duration;

use edgevip_config::{Bgp, BgpPeer, BgpRouteAttrs, FieldError, raw};
use serde_json::Value;

use crate::Reject;
use crate::pools::{self, Labels, Problems, Selector, shown};

pub const KIND: &str = "BGPPeer";

/// The BGPPeer resource, for `Api<DynamicObject>`: cluster-scoped.
pub fn api_resource() -> kube::api::ApiResource {
    kube::api::ApiResource::from_gvk_with_plural(
        &kube::api::GroupVersionKind::gvk("edgevip.io", "v1alpha1", KIND),
        "bgppeers",
    )
}

/// The command line's part of BGP in Kubernetes mode (`--bgp` and the FRR paths).
#[derive(Debug, Clone, PartialEq)]
pub struct BgpSettings {
    pub frr_config: PathBuf,
    pub frr_vty_socket: Option<PathBuf>,
    pub drain_time: Duration,
}

impl Default for BgpSettings {
    fn default() -> Self {
        BgpSettings {
            frr_config: PathBuf::from(Bgp::DEFAULT_FRR_CONFIG),
            frr_vty_socket: None,
            drain_time: Bgp::DEFAULT_DRAIN_TIME,
        }
    }
}

/// `spec.passwordSecret`: a key of a Secret in edgevip's namespace.
#[derive(Debug, Clone, PartialEq)]
pub struct SecretRef {
    pub name: String,
    pub key: String,
}

/// One valid BGPPeer.
#[derive(Debug, Clone, PartialEq)]
pub struct PeerDef {
    pub name: String,
    pub my_asn: u32,
    pub router_id: Option<Ipv4Addr>,
    /// As read (the password comes later, from the Secret, and is validated with it).
    pub raw: raw::BgpPeer,
    pub password: Option<SecretRef>,
    /// `None`: every edge node.
    pub node_selector: Option<Selector>,
}

/// The spec fields a BGPPeer may have; anything else is refused (a misspelt `bfd` must
/// not quietly leave BFD off).
const FIELDS: [&str; 11] = [
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
    "nodeSelector",
];

/// The file's names of peer fields → the object's.
const RENAMED: [(&str, &str); 7] = [
    ("address", "peerAddress"),
    ("asn", "peerASN"),
    ("port", "peerPort"),
    ("hold_time", "holdTime"),
    ("keepalive", "keepaliveTime"),
    ("ebgp_multihop", "ebgpMultiHop"),
    ("password", "passwordSecret"),
];

fn renamed(e: FieldError, object: &str) -> Reject {
    let mut field = e.path;
    for (file, ours) in RENAMED {
        if let Some(rest) = field.strip_prefix(&format!("spec.{file}")) {
            field = format!("spec.{ours}{rest}");
            break;
        }
    }
    Reject {
        object: object.to_string(),
        field,
        message: e.message,
    }
}

/// Reads a BGPPeer (the object as JSON). Any problem refuses it whole, each named with its
/// field and value, the object as `BGPPeer <name>`.
pub fn from_object(obj: &Value) -> Result<PeerDef, Vec<Reject>> {
    let name = obj
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let object = format!("{KIND} {name}");
    let mut p = Problems::new(&object);
    let spec = &obj["spec"];
    let Some(fields) = spec.as_object() else {
        p.add("spec", format!("{} is not an object", shown(spec)));
        return Err(p.list);
    };
    for k in fields.keys().filter(|k| !FIELDS.contains(&k.as_str())) {
        p.add(format!("spec.{k}"), "is not a BGPPeer field");
    }
    let int = |f: &str, p: &mut Problems| -> Option<i64> {
        match &spec[f] {
            Value::Null => None,
            v => v.as_i64().or_else(|| {
                p.add(
                    format!("spec.{f}"),
                    format!("{} is not an integer", shown(v)),
                );
                None
            }),
        }
    };
    let text = |v: &Value, f: &str, p: &mut Problems| -> Option<String> {
        match v {
            Value::Null => None,
            Value::String(s) => Some(s.clone()),
            v => {
                p.add(f.to_string(), format!("{} is not a string", shown(v)));
                None
            }
        }
    };
    let my_asn = match int("myASN", &mut p) {
        None => {
            p.add("spec.myASN", "is required");
            0
        }
        Some(v) => edgevip_config::bgp_asn("spec.myASN", v).unwrap_or_else(|errs| {
            p.list.extend(errs.into_iter().map(|e| renamed(e, &object)));
            0
        }),
    };
    let router_id = text(&spec["routerID"], "spec.routerID", &mut p).and_then(|s| {
        match s.trim().parse::<Ipv4Addr>() {
            Ok(a) if !a.is_unspecified() && !a.is_multicast() && !a.is_broadcast() => Some(a),
            _ => {
                p.add(
                    "spec.routerID",
                    format!("{s:?} is not a unicast IPv4 address"),
                );
                None
            }
        }
    });
    let bfd = match &spec["bfd"] {
        Value::Null => None,
        Value::Object(b) => {
            for k in b
                .keys()
                .filter(|k| !["interval", "multiplier"].contains(&k.as_str()))
            {
                p.add(
                    format!("spec.bfd.{k}"),
                    "is not a BFD field (interval, multiplier)",
                );
            }
            let multiplier = match &b.get("multiplier") {
                None | Some(Value::Null) => None,
                Some(v) => v.as_i64().or_else(|| {
                    p.add(
                        "spec.bfd.multiplier",
                        format!("{} is not an integer", shown(v)),
                    );
                    None
                }),
            };
            Some(raw::Bfd {
                enabled: None,
                interval: text(
                    b.get("interval").unwrap_or(&Value::Null),
                    "spec.bfd.interval",
                    &mut p,
                ),
                multiplier,
            })
        }
        v => {
            p.add("spec.bfd", format!("{} is not an object", shown(v)));
            None
        }
    };
    let password = match &spec["passwordSecret"] {
        Value::Null => None,
        Value::Object(s) => {
            let name = text(
                s.get("name").unwrap_or(&Value::Null),
                "spec.passwordSecret.name",
                &mut p,
            );
            let key = text(
                s.get("key").unwrap_or(&Value::Null),
                "spec.passwordSecret.key",
                &mut p,
            )
            .unwrap_or_else(|| "password".into());
            match name {
                Some(n) if !n.is_empty() && n.len() <= 253 => Some(SecretRef { name: n, key }),
                _ => {
                    p.add(
                        "spec.passwordSecret.name",
                        "is required (a Secret in edgevip's namespace)",
                    );
                    None
                }
            }
        }
        v => {
            p.add(
                "spec.passwordSecret",
                format!("{} is not an object", shown(v)),
            );
            None
        }
    };
    let raw = raw::BgpPeer {
        address: text(&spec["peerAddress"], "spec.peerAddress", &mut p),
        asn: int("peerASN", &mut p),
        port: int("peerPort", &mut p),
        password: None,
        hold_time: text(&spec["holdTime"], "spec.holdTime", &mut p),
        keepalive: text(&spec["keepaliveTime"], "spec.keepaliveTime", &mut p),
        bfd,
        ebgp_multihop: int("ebgpMultiHop", &mut p),
    };
    if let Err(errs) = edgevip_config::bgp_peer("spec", raw.clone(), my_asn) {
        p.list.extend(errs.into_iter().map(|e| renamed(e, &object)));
    }
    let node_selector = pools::selector(&spec["nodeSelector"], "spec.nodeSelector", &mut p);
    if p.list.is_empty() {
        Ok(PeerDef {
            name: name.to_string(),
            my_asn,
            router_id,
            raw,
            password,
            node_selector,
        })
    } else {
        Err(p.list)
    }
}

/// This node: its labels (for `nodeSelector`) and its IPv4 InternalIP (the default router
/// id; router ids must differ per node, so a shared one is not a good default).
pub struct NodeView<'a> {
    pub labels: &'a Labels,
    pub ipv4: Option<Ipv4Addr>,
}

/// The `bgp:` section of this node from the valid BGPPeers (by name) whose selector
/// matches it, with passwords from `secrets` (Secret name → its data). A peer that cannot
/// be used here (its Secret missing, another local ASN than the first peer's, an address
/// another peer has) is left out with a reject naming why; the others still serve.
/// `None` when no peer selects this node.
pub fn for_node(
    peers: &[&PeerDef],
    me: &NodeView,
    secrets: &BTreeMap<String, BTreeMap<String, Vec<u8>>>,
    namespace: &str,
    s: &BgpSettings,
) -> (Option<Bgp>, Vec<Reject>) {
    let mut rejects = Vec::new();
    let mut out: Vec<BgpPeer> = Vec::new();
    let mut first: Option<&PeerDef> = None;
    for def in peers.iter().filter(|d| {
        d.node_selector
            .as_ref()
            .is_none_or(|sel| sel.matches(me.labels))
    }) {
        let object = format!("{KIND} {}", def.name);
        let mut refuse = |field: &str, message: String| {
            rejects.push(Reject {
                object: object.clone(),
                field: field.to_string(),
                message,
            })
        };
        if let Some(f) = first
            && f.my_asn != def.my_asn
        {
            refuse(
                "spec.myASN",
                format!(
                    "{} differs from {}'s {} (one BGP router per node): not used on this node",
                    def.my_asn, f.name, f.my_asn
                ),
            );
            continue;
        }
        let mut raw = def.raw.clone();
        if let Some(r) = &def.password {
            let value = secrets.get(&r.name).and_then(|d| d.get(&r.key));
            match value.map(|v| String::from_utf8(v.clone())) {
                Some(Ok(pw)) => raw.password = Some(pw),
                Some(Err(_)) => {
                    refuse(
                        "spec.passwordSecret",
                        format!(
                            "key {:?} of Secret {namespace}/{} is not UTF-8: peer not configured",
                            r.key, r.name
                        ),
                    );
                    continue;
                }
                None => {
                    refuse(
                        "spec.passwordSecret",
                        format!(
                            "Secret {namespace}/{} has no key {:?} (or is missing): peer not configured",
                            r.name, r.key
                        ),
                    );
                    continue;
                }
            }
        }
        let peer = match edgevip_config::bgp_peer("spec", raw, def.my_asn) {
            Ok(p) => p,
            Err(errs) => {
                for e in errs {
                    let r = renamed(e, &object);
                    // The value of a password is never echoed (the validator shows its length).
                    refuse(&r.field, r.message);
                }
                continue;
            }
        };
        if out.iter().any(|p| p.address == peer.address) {
            refuse(
                "spec.peerAddress",
                format!(
                    "{} is also another BGPPeer's selected for this node: not used twice",
                    peer.address
                ),
            );
            continue;
        }
        first.get_or_insert(def);
        out.push(peer);
    }
    let Some(first) = first else {
        return (None, rejects);
    };
    let Some(router_id) = first.router_id.or(me.ipv4) else {
        rejects.push(Reject {
            object: format!("{KIND} {}", first.name),
            field: "spec.routerID".into(),
            message:
                "absent, and this node has no IPv4 InternalIP to use instead: no BGP on this node"
                    .into(),
        });
        return (None, rejects);
    };
    let bgp = Bgp {
        asn: first.my_asn,
        router_id,
        peers: out,
        defaults: BgpRouteAttrs::default(),
        frr_config: s.frr_config.clone(),
        frr_vty_socket: s.frr_vty_socket.clone(),
        drain_time: s.drain_time,
    };
    (Some(bgp), rejects)
}

/// Whether `bgp` has a peer of `addr`'s family to announce it to.
pub fn has_peer_for(bgp: &Bgp, addr: IpAddr) -> bool {
    bgp.peers
        .iter()
        .any(|p| p.address.is_ipv4() == addr.is_ipv4())
}

#[cfg(test)]
mod tests;
