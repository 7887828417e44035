//! What the compat entries' `NAT` and `PROXY` methods forward: VIP:port → the ready, not
//! terminating endpoints of the Service (from its EndpointSlices), port by name. Pure. The
//! controller keeps a few fields of every Service and EndpointSlice, so a ConfigMap edit
//! that names another Service needs no new watch.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};

use edgevip_forward::{NatService, Proto, ProxyHeader, ProxyService, Spec};
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;

use crate::compat::{Method, ServiceRef};

/// TCP (the API's default) or UDP; SCTP is not forwarded.
fn proto(p: Option<&str>) -> Option<Proto> {
    match p.unwrap_or("TCP") {
        "TCP" => Some(Proto::Tcp),
        "UDP" => Some(Proto::Udp),
        _ => None,
    }
}

/// A Service's ports: (name, port, protocol).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SvcPorts {
    pub ports: Vec<(String, u16, Proto)>,
}

impl SvcPorts {
    pub fn from_service(s: &Service) -> SvcPorts {
        let ports = s
            .spec
            .as_ref()
            .and_then(|s| s.ports.as_ref())
            .into_iter()
            .flatten()
            .filter_map(|p| {
                let proto = proto(p.protocol.as_deref())?;
                Some((
                    p.name.clone().unwrap_or_default(),
                    u16::try_from(p.port).ok()?,
                    proto,
                ))
            })
            .collect();
        SvcPorts { ports }
    }
}

/// One EndpointSlice: its Service, ports, and the addresses that take traffic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Slice {
    /// `ns/service`.
    pub service: String,
    pub ports: Vec<(String, u16, Proto)>,
    /// Ready and not terminating.
    pub addresses: Vec<IpAddr>,
    /// The nodes those endpoints run on (`nodeName`), for local-endpoint eligibility.
    pub nodes: std::collections::BTreeSet<String>,
}

impl Slice {
    pub fn from_slice(s: &EndpointSlice) -> Option<Slice> {
        let svc = s
            .metadata
            .labels
            .as_ref()?
            .get("kubernetes.io/service-name")?;
        let ns = s.metadata.namespace.clone().unwrap_or_default();
        if s.address_type == "FQDN" {
            return None;
        }
        let ports = s
            .ports
            .iter()
            .flatten()
            .filter_map(|p| {
                let proto = proto(p.protocol.as_deref())?;
                Some((
                    p.name.clone().unwrap_or_default(),
                    u16::try_from(p.port?).ok()?,
                    proto,
                ))
            })
            .collect();
        let ready: Vec<_> = s
            .endpoints
            .iter()
            .filter(|e| {
                let c = e.conditions.as_ref();
                // Ready unset means ready (the API's own rule); terminating ones drain.
                c.and_then(|c| c.ready).unwrap_or(true)
                    && !c.and_then(|c| c.terminating).unwrap_or(false)
            })
            .collect();
        let addresses = ready
            .iter()
            .flat_map(|e| e.addresses.iter().filter_map(|a| a.parse().ok()))
            .collect();
        let nodes = ready.iter().filter_map(|e| e.node_name.clone()).collect();
        Some(Slice {
            service: format!("{ns}/{svc}"),
            ports,
            addresses,
            nodes,
        })
    }
}

/// The forwarding spec and the problems (`VIP` → why nothing is forwarded).
pub fn spec(
    entries: &[(IpAddr, ServiceRef)],
    services: &BTreeMap<String, SvcPorts>,
    slices: &BTreeMap<String, Slice>,
    header: ProxyHeader,
) -> (Spec, BTreeMap<IpAddr, String>) {
    let mut out = Spec::default();
    let mut problems = BTreeMap::new();
    for (vip, r) in entries {
        if r.method == Method::Dr {
            continue;
        }
        let key = format!("{}/{}", r.namespace, r.name);
        let Some(svc) = services.get(&key) else {
            problems.insert(*vip, format!("Service {key} not found"));
            continue;
        };
        let mut any = false;
        for (name, port, proto) in &svc.ports {
            let mut backends: Vec<SocketAddr> = slices
                .values()
                .filter(|s| s.service == key)
                .flat_map(|s| {
                    let target = s
                        .ports
                        .iter()
                        .find(|(n, _, p)| n == name && p == proto)
                        .map(|(_, t, _)| *t);
                    s.addresses
                        .iter()
                        .filter(|a| a.is_ipv4() == vip.is_ipv4())
                        .filter_map(move |a| Some(SocketAddr::new(*a, target?)))
                })
                .collect();
            backends.sort();
            backends.dedup();
            any |= !backends.is_empty();
            match r.method {
                Method::Nat => out.nat.push(NatService {
                    vip: *vip,
                    port: *port,
                    proto: *proto,
                    backends,
                }),
                Method::Proxy if *proto == Proto::Tcp => out.proxy.push(ProxyService {
                    vip: *vip,
                    port: *port,
                    backends,
                    header,
                }),
                _ => {}
            }
        }
        if !any {
            problems.insert(*vip, format!("Service {key} has no ready endpoints"));
        }
    }
    out.nat.sort();
    out.proxy.sort();
    (out, problems)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slice(svc: &str, ports: &[(&str, u16)], addrs: &[&str]) -> Slice {
        Slice {
            service: svc.into(),
            ports: ports
                .iter()
                .map(|(n, p)| (n.to_string(), *p, Proto::Tcp))
                .collect(),
            addresses: addrs.iter().map(|a| a.parse().unwrap()).collect(),
            nodes: Default::default(),
        }
    }

    #[test]
    fn ports_by_name_families_and_methods() {
        let services: BTreeMap<String, SvcPorts> = [(
            "web/front".to_string(),
            SvcPorts {
                ports: vec![
                    ("http".into(), 80, Proto::Tcp),
                    ("dns".into(), 53, Proto::Udp),
                ],
            },
        )]
        .into();
        let mut slices = BTreeMap::new();
        slices.insert(
            "a".into(),
            slice(
                "web/front",
                &[("http", 8080)],
                &["198.51.100.1", "198.51.100.2", "2001:db8::1"],
            ),
        );
        slices.insert(
            "b".into(),
            slice("web/front", &[("http", 8081)], &["198.51.100.3"]),
        );
        slices.insert(
            "c".into(),
            slice("web/other", &[("http", 9)], &["198.51.100.9"]),
        );
        let vip = |s: &str| s.parse::<IpAddr>().unwrap();
        let r = |m| ServiceRef {
            namespace: "web".into(),
            name: "front".into(),
            method: m,
        };
        let (s, problems) = spec(
            &[
                (vip("192.0.2.100"), r(Method::Nat)),
                (vip("192.0.2.101"), r(Method::Proxy)),
                (vip("192.0.2.102"), r(Method::Dr)),
            ],
            &services,
            &slices,
            ProxyHeader::V1,
        );
        let http = s.nat.iter().find(|n| n.port == 80).unwrap();
        let got: Vec<String> = http.backends.iter().map(|b| b.to_string()).collect();
        assert_eq!(
            got,
            [
                "198.51.100.1:8080",
                "198.51.100.2:8080",
                "198.51.100.3:8081"
            ]
        );
        let dns = s.nat.iter().find(|n| n.port == 53).unwrap();
        assert!(dns.backends.is_empty(), "no slice port named dns/UDP");
        assert_eq!(s.proxy.len(), 1, "PROXY forwards TCP ports only");
        assert_eq!(s.proxy[0].backends.len(), 3);
        assert!(problems.is_empty(), "{problems:?}");
        let (_, problems) = spec(
            &[(
                vip("192.0.2.103"),
                ServiceRef {
                    namespace: "x".into(),
                    name: "gone".into(),
                    method: Method::Nat,
                },
            )],
            &services,
            &slices,
            ProxyHeader::V1,
        );
        assert_eq!(problems[&vip("192.0.2.103")], "Service x/gone not found");
    }
}
