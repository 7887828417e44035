//! What the cluster admin's command line lets the cluster decide. Pure.
//!
//! The ConfigMap says which VIPs serve which Services, nothing more: commands, files on the
//! node, interfaces, TTLs, peers and checks off the node are the DaemonSet's to allow
//! (`Rights`). Every VIP,
//! from the ConfigMap or a Service, must lie in the admin's ranges and never on an address
//! that belongs to something else (`Fence`).

use std::collections::BTreeSet;
use std::net::IpAddr;

use edgevip_config::raw;

/// An address with a prefix length: `192.0.2.0/24`, `2001:db8::/64`, or one address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Cidr {
    pub addr: IpAddr,
    pub len: u8,
}

impl Cidr {
    pub fn new(addr: IpAddr, len: u8) -> Cidr {
        Cidr { addr, len }
    }

    /// `a.b.c.d/n`, `x::/n` or a bare address (a single host).
    pub fn parse(s: &str) -> Result<Cidr, String> {
        let s = s.trim();
        let (a, len) = match s.split_once('/') {
            Some((a, l)) => (a, Some(l)),
            None => (s, None),
        };
        let addr: IpAddr = a.parse().map_err(|_| format!("{s:?} is not a CIDR"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let len = match len {
            None => max,
            Some(l) => l
                .parse::<u8>()
                .ok()
                .filter(|l| *l <= max)
                .ok_or_else(|| format!("{s:?}: prefix length is not in 0..={max}"))?,
        };
        Ok(Cidr { addr, len })
    }

    /// A comma-separated list; empty gives none.
    pub fn parse_list(s: &str) -> Result<Vec<Cidr>, String> {
        s.split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(Cidr::parse)
            .collect()
    }

    fn bits(&self) -> u32 {
        if self.addr.is_ipv4() { 32 } else { 128 }
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        if ip.is_ipv4() != self.addr.is_ipv4() {
            return false;
        }
        let host = self.bits() - u32::from(self.len);
        let mask = if host >= 128 { 0 } else { !0u128 << host };
        (to_u128(ip) ^ to_u128(self.addr)) & mask == 0
    }

    /// The subnet's own network and broadcast addresses (IPv4 prefixes shorter than /31).
    fn is_edge(&self, ip: IpAddr) -> bool {
        if !ip.is_ipv4() || self.len >= 31 || !self.contains(ip) {
            return false;
        }
        let host = (1u128 << (32 - u32::from(self.len))) - 1;
        let x = to_u128(ip) & host;
        x == 0 || x == host
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

fn to_u128(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v) => u128::from(u32::from(v)),
        IpAddr::V6(v) => u128::from(v),
    }
}

/// What the ConfigMap may set beyond VIPs, each opted into by a DaemonSet flag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Rights {
    /// `notify` hooks and `exec` health checks (`--allow-configmap-exec`).
    pub exec: bool,
    /// `interface` and `track_interfaces` (`--allow-configmap-interfaces`).
    pub interfaces: bool,
    /// `unicast_min_ttl` (`--allow-configmap-ttl`).
    pub ttl: bool,
    /// `unicast_peers` (`--allow-configmap-peers`): a peer may take the VIPs.
    pub peers: bool,
    /// HTTP/TCP checks to anything but loopback or this node's own addresses
    /// (`--allow-configmap-remote-checks`).
    pub remote_checks: bool,
    /// Files on the node that edgevip reads as root: `ca_file` of https checks
    /// (`--allow-configmap-files`).
    pub files: bool,
}

/// The admin's address rules (command line).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Trust {
    /// `--vip-ranges`; empty: the on-link subnets of the node's interface.
    pub vip_ranges: Vec<Cidr>,
    /// `--pod-cidrs` and `--service-cidrs` (the Nodes' `spec.podCIDRs` are added).
    pub excluded: Vec<Cidr>,
    pub configmap: Rights,
}

/// Where this node's VIPs go: the interface and its addresses with their prefixes.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NodeLink {
    pub interface: Option<String>,
    pub addresses: Vec<Cidr>,
}

impl NodeLink {
    pub fn named(interface: &str, addresses: &[&str]) -> NodeLink {
        NodeLink {
            interface: Some(interface.into()),
            addresses: addresses
                .iter()
                .filter_map(|a| Cidr::parse(a).ok())
                .collect(),
        }
    }
}

/// Which addresses may be VIPs on this node, for this build.
#[derive(Debug, Clone)]
pub struct Fence {
    ranges: Vec<Cidr>,
    /// The ranges were given (`--vip-ranges`), not the on-link default.
    explicit: bool,
    /// Every edge node's addresses and this node's interface addresses.
    nodes: BTreeSet<IpAddr>,
    excluded: Vec<Cidr>,
}

impl Fence {
    pub fn new(trust: &Trust, link: &NodeLink, node_addrs: &[IpAddr], pod_cidrs: &[Cidr]) -> Fence {
        let explicit = !trust.vip_ranges.is_empty();
        let ranges = if explicit {
            trust.vip_ranges.clone()
        } else {
            // Global unicast subnets of the interface: an on-link VIP is the only kind
            // ARP / ND can serve anyway.
            link.addresses
                .iter()
                .filter(|c| special(c.addr).is_none())
                .copied()
                .collect()
        };
        Fence {
            ranges,
            explicit,
            nodes: node_addrs
                .iter()
                .copied()
                .chain(link.addresses.iter().map(|c| c.addr))
                .collect(),
            excluded: trust.excluded.iter().chain(pod_cidrs).copied().collect(),
        }
    }

    /// Never a VIP, whatever the ranges: a node's, loopback, multicast, link-local,
    /// unspecified, the Pod and Service networks.
    pub fn forbidden(&self, ip: IpAddr) -> Option<String> {
        if let Some(what) = special(ip) {
            return Some(format!("{ip} is {what}"));
        }
        if self.nodes.contains(&ip) {
            return Some(format!("{ip} is a node's address"));
        }
        if let Some(c) = self.excluded.iter().find(|c| c.contains(ip)) {
            return Some(format!("{ip} is in the Pod or Service network {c}"));
        }
        None
    }

    /// Whether `ip` may be a VIP of the ConfigMap (and of a Service, with `--vip-ranges`).
    pub fn check(&self, ip: IpAddr) -> Result<(), String> {
        if let Some(why) = self.forbidden(ip) {
            return Err(why);
        }
        self.in_ranges(ip)
    }

    /// A Service's VIP: in the pool (checked by the caller), never forbidden, and within
    /// `--vip-ranges` when the admin gave them.
    pub fn check_service(&self, ip: IpAddr) -> Result<(), String> {
        if let Some(why) = self.forbidden(ip) {
            return Err(why);
        }
        if self.explicit {
            self.in_ranges(ip)?;
        }
        Ok(())
    }

    fn in_ranges(&self, ip: IpAddr) -> Result<(), String> {
        match self.ranges.iter().find(|c| c.contains(ip)) {
            Some(c) if !self.explicit && c.is_edge(ip) => Err(format!(
                "{ip} is the network or broadcast address of the node's subnet {c}"
            )),
            Some(_) => Ok(()),
            None if self.explicit => Err(format!(
                "{ip} is outside --vip-ranges ({})",
                list(&self.ranges)
            )),
            None => Err(format!(
                "{ip} is outside the node's on-link subnets ({}); the DaemonSet can widen this with --vip-ranges",
                if self.ranges.is_empty() {
                    "none known".into()
                } else {
                    list(&self.ranges)
                }
            )),
        }
    }

    /// The node's own address (or loopback): where a ConfigMap's check may go.
    pub fn is_local(&self, ip: IpAddr) -> bool {
        ip.is_loopback() || self.nodes.contains(&ip)
    }
}

fn list(c: &[Cidr]) -> String {
    c.iter().map(Cidr::to_string).collect::<Vec<_>>().join(",")
}

/// Addresses that are never anyone's VIP.
fn special(ip: IpAddr) -> Option<&'static str> {
    let link_local = match ip {
        IpAddr::V4(v) => v.is_link_local(),
        IpAddr::V6(v) => v.is_unicast_link_local(),
    };
    let broadcast = matches!(ip, IpAddr::V4(v) if v.is_broadcast());
    if ip.is_unspecified() {
        Some("unspecified")
    } else if ip.is_loopback() {
        Some("loopback")
    } else if ip.is_multicast() || broadcast {
        Some("multicast or broadcast")
    } else if link_local {
        Some("link-local")
    } else {
        None
    }
}

/// The fields of a ConfigMap entry that the DaemonSet has not allowed, each as
/// `field: value: why (flag)`; empty when the entry may be used as it is.
pub fn refused_fields(path: &str, r: &raw::Instance, rights: Rights, fence: &Fence) -> Vec<String> {
    let mut out = Vec::new();
    let mut refuse = |field: String, value: String, why: &str, flag: &str| {
        out.push(format!(
            "{path}.{field}: {value}: {why}; refused (the DaemonSet allows it with {flag})"
        ))
    };
    const EXEC: &str = "--allow-configmap-exec";
    const IFACES: &str = "--allow-configmap-interfaces";
    if !rights.exec && !r.notify.is_empty() {
        refuse(
            "notify".into(),
            format!("{:?}", r.notify),
            "runs commands as root on every edge node",
            EXEC,
        );
    }
    if !rights.interfaces {
        if let Some(i) = &r.interface {
            refuse(
                "interface".into(),
                format!("{i:?}"),
                "the interface is the node's to choose",
                IFACES,
            );
        }
        if !r.track_interfaces.is_empty() {
            let names: Vec<&str> = r
                .track_interfaces
                .iter()
                .map(|t| t.name.as_deref().unwrap_or(""))
                .collect();
            refuse(
                "track_interfaces".into(),
                format!("{names:?}"),
                "the interfaces are the node's to choose",
                IFACES,
            );
        }
    }
    if !rights.ttl
        && let Some(t) = r.unicast_min_ttl
    {
        refuse(
            "unicast_min_ttl".into(),
            t.to_string(),
            "the TTL rule guards who can send adverts",
            "--allow-configmap-ttl",
        );
    }
    if !rights.peers
        && let Some(p) = &r.unicast_peers
    {
        refuse(
            "unicast_peers".into(),
            format!("{p:?}"),
            "a peer can take the VIPs; the peers are the edge nodes",
            "--allow-configmap-peers",
        );
    }
    for (k, c) in r.health_checks.iter().flatten().enumerate() {
        if !rights.exec
            && let Some(argv) = &c.exec
        {
            refuse(
                format!("health_checks[{k}].exec"),
                format!("{argv:?}"),
                "runs a command as root on every edge node",
                EXEC,
            );
        }
        if !rights.files
            && let Some(file) = c.http.as_ref().and_then(|h| h.ca_file.as_ref())
        {
            refuse(
                format!("health_checks[{k}].http.ca_file"),
                format!("{file:?}"),
                "names a file on every edge node, read as root",
                "--allow-configmap-files",
            );
        }
        if rights.remote_checks {
            continue;
        }
        let off_node = "a check may only reach loopback or this node's own addresses";
        const REMOTE: &str = "--allow-configmap-remote-checks";
        if let Some(url) = c.http.as_ref().and_then(|h| h.url.as_ref())
            && !url_host(url).is_some_and(|h| host_is_local(h, fence))
        {
            refuse(
                format!("health_checks[{k}].http.url"),
                format!("{url:?}"),
                off_node,
                REMOTE,
            );
        }
        if let Some(t) = &c.tcp
            && !t
                .rsplit_once(':')
                .is_some_and(|(h, _)| host_is_local(h, fence))
        {
            refuse(
                format!("health_checks[{k}].tcp"),
                format!("{t:?}"),
                off_node,
                REMOTE,
            );
        }
    }
    out
}

/// The host of an `http[s]://host[:port]/...` URL.
fn url_host(url: &str) -> Option<&str> {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))?;
    let authority = rest.split(['/', '?', '#']).next()?;
    if authority.contains('@') {
        return None;
    }
    if let Some(v6) = authority.strip_prefix('[') {
        return v6.split_once(']').map(|(h, _)| h);
    }
    Some(authority.split(':').next().unwrap_or(authority))
}

/// Loopback or the node's own address; a name only when it is `localhost`.
fn host_is_local(host: &str, fence: &Fence) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.eq_ignore_ascii_case("localhost") {
        return true;
    }
    host.parse::<IpAddr>().is_ok_and(|ip| fence.is_local(ip))
}

#[cfg(test)]
mod tests;
