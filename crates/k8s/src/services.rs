//! Services of `type: LoadBalancer` whose `spec.loadBalancerClass` is ours: each gets a VIP,
//! from `spec.loadBalancerIP` or the `edgevip.io/vip` annotation (only within the pool),
//! else allocated from the address pool; never one the fence refuses (a node's address,
//! ...), never one another Service holds already (live allocations come first). Pure.
//! Every node computes the same plan from the same view; only the holder of the allocator
//! Lease (`crate::lease`) writes allocations into `status.loadBalancer.ingress`, and all
//! nodes serve what the status (or the spec) says, so an allocation is never served before
//! it is recorded.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use k8s_openapi::api::core::v1::Service;

pub const DEFAULT_CLASS: &str = "edgevip.io/vip";
pub const VIP_ANNOTATION: &str = "edgevip.io/vip";
/// One address per family, `192.0.2.10,2001:db8::10`; MetalLB's spelling is read too, so a
/// Service moves from MetalLB unchanged.
pub const IPS_ANNOTATIONS: [&str; 2] = ["edgevip.io/loadBalancerIPs", "metallb.io/loadBalancerIPs"];

#[derive(Debug, Clone, PartialEq)]
pub struct LbSettings {
    pub class: String,
    /// Also take LoadBalancer Services that name no class.
    pub default_class: bool,
    pub pool: Pool,
    pub vrid: u8,
}

/// Addresses to allocate from: inclusive ranges, in order.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Pool(pub Vec<(IpAddr, IpAddr)>);

impl Pool {
    /// `192.0.2.200-192.0.2.250,203.0.113.0/28,2001:db8::10-2001:db8::1f`; an IPv4 prefix
    /// shorter than /31 leaves out its network and broadcast addresses.
    pub fn parse(s: &str) -> Result<Pool, String> {
        let mut out = Vec::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let range = if let Some((a, b)) = part.split_once('-') {
                let a: IpAddr = a
                    .trim()
                    .parse()
                    .map_err(|_| format!("{a:?} is not an address"))?;
                let b: IpAddr = b
                    .trim()
                    .parse()
                    .map_err(|_| format!("{b:?} is not an address"))?;
                if a.is_ipv4() != b.is_ipv4() || to_u128(a) > to_u128(b) {
                    return Err(format!(
                        "{part:?} is not a range from low to high in one family"
                    ));
                }
                (a, b)
            } else if let Some((a, len)) = part.split_once('/') {
                let a: IpAddr = a.parse().map_err(|_| format!("{a:?} is not an address"))?;
                let bits = if a.is_ipv4() { 32 } else { 128 };
                let len: u32 = len
                    .parse()
                    .ok()
                    .filter(|l| *l <= bits)
                    .ok_or_else(|| format!("{part:?} has a bad prefix length"))?;
                let host = if len == bits {
                    0
                } else {
                    (1u128 << (bits - len)) - 1
                };
                let lo = to_u128(a) & !host;
                let edge = u128::from(a.is_ipv4() && len < 31);
                (
                    from_u128(lo + edge, a.is_ipv4()),
                    from_u128((lo | host) - edge, a.is_ipv4()),
                )
            } else {
                let a: IpAddr = part
                    .parse()
                    .map_err(|_| format!("{part:?} is not an address"))?;
                (a, a)
            };
            out.push(range);
        }
        Ok(Pool(out))
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|(a, b)| {
            a.is_ipv4() == ip.is_ipv4() && to_u128(*a) <= to_u128(ip) && to_u128(ip) <= to_u128(*b)
        })
    }

    /// The first address not in `used` that `ok` admits; bounded so a huge IPv6 range (or
    /// one the fence mostly refuses) costs little.
    fn first_free(
        &self,
        used: &BTreeSet<IpAddr>,
        v4: Option<bool>,
        ok: impl Fn(IpAddr) -> bool,
    ) -> Option<IpAddr> {
        for (a, b) in self
            .0
            .iter()
            .filter(|(a, _)| v4.is_none_or(|v| a.is_ipv4() == v))
        {
            let (lo, hi) = (to_u128(*a), to_u128(*b));
            let mut x = lo;
            let mut tries = 0u32;
            while x <= hi && tries <= used.len() as u32 + 1 + MAX_SKIPPED {
                let ip = from_u128(x, a.is_ipv4());
                if !used.contains(&ip) && ok(ip) {
                    return Some(ip);
                }
                x += 1;
                tries += 1;
            }
        }
        None
    }
}

/// Pool addresses the fence refuses (a node's, the Pod network's) skipped at most per range.
const MAX_SKIPPED: u32 = 1024;

fn to_u128(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v) => u32::from(v) as u128,
        IpAddr::V6(v) => u128::from(v),
    }
}

fn from_u128(x: u128, v4: bool) -> IpAddr {
    if v4 {
        IpAddr::V4((x as u32).into())
    } else {
        IpAddr::V6(x.into())
    }
}

/// What we keep of a Service: a few fields, not the object (thousands may exist).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SvcInfo {
    pub namespace: String,
    pub name: String,
    pub created: String,
    /// For pools' `serviceSelector`.
    pub labels: crate::pools::Labels,
    pub load_balancer: bool,
    pub class: Option<String>,
    /// Asked for by `spec.loadBalancerIP` or the annotation (annotation wins).
    pub wanted: Option<Result<IpAddr, String>>,
    pub status: Vec<IpAddr>,
    /// An allocation this node has sent to the API and not yet seen back: it holds its
    /// address (so arrivals meanwhile do not shuffle allocations) but is not served.
    pub pending: Option<IpAddr>,
    /// `spec.ipFamilies` (IPv4 → `true`), primary first; empty: any family.
    pub families: Vec<bool>,
    /// `spec.ipFamilyPolicy` is `RequireDualStack`.
    pub require_dual_stack: bool,
}

/// The address a list annotation asks for: the one of the primary family (`v4`), each
/// item checked; an error names the annotation and the value.
fn pick(name: &str, list: &str, v4: Option<bool>) -> Result<IpAddr, String> {
    let mut ips = Vec::new();
    for item in list.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        let ip: IpAddr = item
            .parse()
            .map_err(|_| format!("{name}: {item:?} is not an IP address"))?;
        if ips.iter().any(|x: &IpAddr| x.is_ipv4() == ip.is_ipv4()) {
            return Err(format!("{name}: {list:?} has two addresses of one family"));
        }
        ips.push(ip);
    }
    ips.iter()
        .copied()
        .find(|ip| v4.is_none_or(|v| ip.is_ipv4() == v))
        .ok_or_else(|| match v4 {
            Some(v) => format!(
                "{name}: {list:?} has no {} address (the Service's primary family)",
                if v { "IPv4" } else { "IPv6" }
            ),
            None => format!("{name}: {list:?} names no address"),
        })
}

impl SvcInfo {
    pub fn from_service(s: &Service) -> SvcInfo {
        let spec = s.spec.as_ref();
        let families: Vec<bool> = spec
            .and_then(|s| s.ip_families.as_ref())
            .into_iter()
            .flatten()
            .filter_map(|f| match f.as_str() {
                "IPv4" => Some(true),
                "IPv6" => Some(false),
                _ => None,
            })
            .collect();
        let notes = s.metadata.annotations.as_ref();
        let given = |k: &str| {
            notes
                .and_then(|a| a.get(k))
                .filter(|v| !v.trim().is_empty())
        };
        // The list annotations first (edgevip's, then MetalLB's), then the single-address
        // annotation, then the deprecated spec field.
        let wanted = IPS_ANNOTATIONS
            .iter()
            .find_map(|k| given(k).map(|v| pick(k, v, families.first().copied())))
            .or_else(|| {
                given(VIP_ANNOTATION)
                    .or(spec.and_then(|s| s.load_balancer_ip.as_ref()))
                    .filter(|v| !v.trim().is_empty())
                    .map(|v| {
                        v.trim()
                            .parse::<IpAddr>()
                            .map_err(|_| format!("{v:?} is not an IP address"))
                    })
            });
        SvcInfo {
            namespace: s.metadata.namespace.clone().unwrap_or_default(),
            name: s.metadata.name.clone().unwrap_or_default(),
            labels: s.metadata.labels.clone().unwrap_or_default(),
            created: s
                .metadata
                .creation_timestamp
                .as_ref()
                .map(|t| format!("{:?}", t.0))
                .unwrap_or_default(),
            load_balancer: spec.and_then(|s| s.type_.as_deref()) == Some("LoadBalancer"),
            class: spec.and_then(|s| s.load_balancer_class.clone()),
            wanted,
            status: s
                .status
                .as_ref()
                .and_then(|st| st.load_balancer.as_ref())
                .and_then(|lb| lb.ingress.as_ref())
                .into_iter()
                .flatten()
                .filter_map(|i| i.ip.as_ref()?.parse().ok())
                .collect(),
            pending: None,
            families,
            require_dual_stack: spec.and_then(|s| s.ip_family_policy.as_deref())
                == Some("RequireDualStack"),
        }
    }

    /// Why `ip` is of a family the Service does not have, if it is.
    fn family_mismatch(&self, ip: IpAddr) -> Option<String> {
        if self.families.is_empty() || self.families.contains(&ip.is_ipv4()) {
            return None;
        }
        let name = |v4: bool| if v4 { "IPv4" } else { "IPv6" };
        let fams: Vec<&str> = self.families.iter().map(|f| name(*f)).collect();
        Some(format!(
            "{ip} is {} but the Service's ipFamilies are {fams:?}",
            name(ip.is_ipv4())
        ))
    }

    pub fn key(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }

    pub fn ours(&self, s: &LbSettings) -> bool {
        self.load_balancer
            && match &self.class {
                Some(c) => *c == s.class,
                None => s.default_class,
            }
    }
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Plan {
    /// Service `ns/name` → the VIP served for it (recorded: spec, annotation or status).
    pub serving: BTreeMap<String, IpAddr>,
    /// Status writes the writer must make: `ns/name` → VIP.
    pub writes: BTreeMap<String, IpAddr>,
    /// Services of ours whose status holds a VIP they no longer get (a request refused, an
    /// address the admin's ranges no longer admit): the writer clears
    /// `status.loadBalancer.ingress`. (A Service that stops being a LoadBalancer has its
    /// status cleared by the API server itself; `loadBalancerClass` cannot change.)
    pub clears: BTreeSet<String>,
    /// `ns/name` → why it gets no VIP.
    pub problems: BTreeMap<String, String>,
}

/// Why `ip` may not be a Service's VIP (the admin's rules: the fence), if it may not.
pub type Admit<'a> = &'a dyn Fn(IpAddr) -> Result<(), String>;

pub fn plan(services: &[SvcInfo], s: &LbSettings, admit: Admit) -> Plan {
    let mut p = allocate(services, s, admit);
    // Ours and refused: nothing served, so nothing recorded either.
    for svc in services.iter().filter(|x| x.ours(s)) {
        if p.problems.contains_key(&svc.key()) && !svc.status.is_empty() {
            p.clears.insert(svc.key());
        }
    }
    p
}

fn allocate(services: &[SvcInfo], s: &LbSettings, admit: Admit) -> Plan {
    let mut p = Plan::default();
    let mut ours: Vec<&SvcInfo> = services.iter().filter(|x| x.ours(s)).collect();
    ours.sort_by(|a, b| (&a.created, a.key()).cmp(&(&b.created, b.key())));
    // A requested address must lie in the pool, be of the Service's family, and every
    // address within the fence.
    let requested = |svc: &SvcInfo, ip: IpAddr| -> Result<(), String> {
        admit(ip)?;
        if let Some(why) = svc.family_mismatch(ip) {
            return Err(why);
        }
        if s.pool.contains(ip) {
            Ok(())
        } else {
            Err(format!("{ip} is not in the address pool (--address-pool)"))
        }
    };
    let mut used = BTreeSet::new();
    // Live allocations first (recorded in status, or sent and not yet seen back), oldest
    // first: a request never takes the address another Service already holds.
    let mut rest = Vec::new();
    for svc in &ours {
        if svc.require_dual_stack {
            // One VIP per Service so far: serving one family would break the contract.
            p.problems.insert(
                svc.key(),
                "refused: ipFamilyPolicy RequireDualStack needs a VIP of each family; \
                 edgevip gives one VIP per Service (use SingleStack or PreferDualStack)"
                    .into(),
            );
            continue;
        }
        let live = match (&svc.wanted, svc.status.first(), svc.pending) {
            (Some(Ok(w)), Some(ip), _) if w == ip => Some((*ip, true, requested(svc, *ip))),
            (None, Some(ip), _) => Some((*ip, true, admit(*ip))),
            (None, None, Some(ip)) => Some((ip, false, admit(ip))),
            _ => None,
        };
        match live {
            Some((ip, recorded, Ok(()))) if !used.contains(&ip) => {
                used.insert(ip);
                if recorded {
                    p.serving.insert(svc.key(), ip);
                }
                if svc.status != [ip] {
                    p.writes.insert(svc.key(), ip);
                }
            }
            Some((ip, _, Err(why))) if svc.wanted.is_some() => {
                p.problems.insert(svc.key(), format!("refused: {why}"));
                tracing::debug!(service = %svc.key(), %ip, "recorded VIP refused");
            }
            _ => rest.push(*svc),
        }
    }
    // Then requests, then new allocations: an allocation never takes an address somebody
    // asked for.
    let mut fresh = Vec::new();
    for svc in rest {
        match &svc.wanted {
            Some(Ok(ip)) => match requested(svc, *ip) {
                Err(why) => {
                    p.problems.insert(svc.key(), format!("refused: {why}"));
                }
                Ok(()) if used.contains(ip) => {
                    p.problems.insert(
                        svc.key(),
                        format!("{ip} is already the VIP of another Service"),
                    );
                }
                Ok(()) => {
                    used.insert(*ip);
                    p.serving.insert(svc.key(), *ip);
                    if svc.status != [*ip] {
                        p.writes.insert(svc.key(), *ip);
                    }
                }
            },
            Some(Err(m)) => {
                p.problems.insert(svc.key(), m.clone());
            }
            None => fresh.push(svc),
        }
    }
    for svc in fresh {
        // The primary family's address (PreferDualStack gets that one too).
        let v4 = svc.families.first().copied();
        match s.pool.first_free(&used, v4, |ip| admit(ip).is_ok()) {
            Some(ip) => {
                used.insert(ip);
                p.writes.insert(svc.key(), ip);
            }
            None => {
                let family = match v4 {
                    Some(true) => " of IPv4",
                    Some(false) => " of IPv6",
                    None => "",
                };
                p.problems.insert(
                    svc.key(),
                    format!("the address pool{family} is exhausted (or not configured)"),
                );
            }
        }
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    fn svc(
        name: &str,
        created: &str,
        class: Option<&str>,
        wanted: Option<&str>,
        status: &[&str],
    ) -> SvcInfo {
        SvcInfo {
            namespace: "default".into(),
            name: name.into(),
            labels: Default::default(),
            created: created.into(),
            load_balancer: true,
            class: class.map(str::to_string),
            wanted: wanted.map(|w| w.parse().map_err(|_| format!("{w:?} is not an IP address"))),
            status: status.iter().map(|s| s.parse().unwrap()).collect(),
            pending: None,
            families: Vec::new(),
            require_dual_stack: false,
        }
    }

    fn any(_: IpAddr) -> Result<(), String> {
        Ok(())
    }

    fn settings(pool: &str) -> LbSettings {
        LbSettings {
            class: DEFAULT_CLASS.into(),
            default_class: false,
            pool: Pool::parse(pool).unwrap(),
            vrid: 51,
        }
    }

    #[test]
    fn pools_parse_ranges_prefixes_and_singles() {
        let p = Pool::parse("192.0.2.200-192.0.2.202, 203.0.113.0/30,2001:db8::5").unwrap();
        assert!(p.contains("192.0.2.201".parse().unwrap()));
        assert!(!p.contains("192.0.2.203".parse().unwrap()));
        assert!(p.contains("203.0.113.2".parse().unwrap()));
        assert!(
            !p.contains("203.0.113.3".parse().unwrap()),
            "broadcast left out"
        );
        assert!(
            !p.contains("203.0.113.0".parse().unwrap()),
            "network left out"
        );
        assert!(p.contains("2001:db8::5".parse().unwrap()));
        assert!(Pool::parse("192.0.2.9-192.0.2.1").is_err());
        assert!(Pool::parse("192.0.2.0/33").is_err());
        assert!(Pool::parse("x").is_err());
    }

    #[test]
    fn requested_then_recorded_then_allocated_in_creation_order() {
        let s = settings("192.0.2.200-192.0.2.202");
        let services = [
            svc("b-new", "2", Some(DEFAULT_CLASS), None, &[]),
            svc(
                "a-recorded",
                "1",
                Some(DEFAULT_CLASS),
                None,
                &["192.0.2.200"],
            ),
            svc("c-asks", "3", Some(DEFAULT_CLASS), Some("192.0.2.201"), &[]),
            svc("d-new", "4", Some(DEFAULT_CLASS), None, &[]),
            svc("e-none-left", "5", Some(DEFAULT_CLASS), None, &[]),
            svc("other-class", "0", Some("metallb"), None, &[]),
            svc("no-class", "0", None, None, &[]),
        ];
        let p = plan(&services, &s, &any);
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(
            p.serving.get("default/a-recorded"),
            Some(&ip("192.0.2.200"))
        );
        assert_eq!(p.serving.get("default/c-asks"), Some(&ip("192.0.2.201")));
        assert_eq!(p.writes.get("default/c-asks"), Some(&ip("192.0.2.201")));
        assert_eq!(p.writes.get("default/b-new"), Some(&ip("192.0.2.202")));
        assert!(
            !p.serving.contains_key("default/b-new"),
            "served once recorded"
        );
        assert!(p.problems["default/d-new"].contains("exhausted"));
        assert!(p.problems.contains_key("default/e-none-left"));
        assert!(!p.serving.contains_key("default/other-class"));
        let mut s2 = s.clone();
        s2.default_class = true;
        let p2 = plan(&services, &s2, &any);
        assert!(
            p2.writes.contains_key("default/no-class"),
            "oldest: allocated first"
        );
        assert!(
            p2.problems.contains_key("default/b-new"),
            "the pool ran out earlier"
        );
    }

    #[test]
    fn pending_allocations_hold_their_address_while_others_arrive() {
        let s = settings("192.0.2.200-192.0.2.210");
        let mut late = svc("b", "2", Some(DEFAULT_CLASS), None, &[]);
        late.pending = Some("192.0.2.200".parse().unwrap());
        // "a" sorts first but arrives after b's allocation went out: b keeps .200.
        let early = svc("a", "1", Some(DEFAULT_CLASS), None, &[]);
        let p = plan(&[late, early], &s, &any);
        assert_eq!(p.writes["default/b"].to_string(), "192.0.2.200");
        assert_eq!(p.writes["default/a"].to_string(), "192.0.2.201");
        assert!(p.serving.is_empty(), "nothing served before it is recorded");
    }

    #[test]
    fn conflicts_and_bad_requests_are_problems() {
        let s = settings("192.0.2.50");
        let services = [
            svc("x", "1", Some(DEFAULT_CLASS), Some("192.0.2.50"), &[]),
            svc("y", "2", Some(DEFAULT_CLASS), Some("192.0.2.50"), &[]),
            svc("z", "3", Some(DEFAULT_CLASS), Some("banana"), &[]),
        ];
        let p = plan(&services, &s, &any);
        assert_eq!(p.serving.len(), 1);
        assert!(p.problems["default/y"].contains("already the VIP"));
        assert!(p.problems["default/z"].contains("banana"));
    }

    #[test]
    fn ip_families_choose_the_pool_range_and_refuse_the_other_family() {
        let s = settings("192.0.2.200-192.0.2.201,2001:db8::10-2001:db8::11");
        let fam = |name: &str, wanted: Option<&str>, f: &[bool]| SvcInfo {
            families: f.to_vec(),
            ..svc(name, name, Some(DEFAULT_CLASS), wanted, &[])
        };
        let mut dual = fam("e-dual", None, &[true, false]);
        dual.require_dual_stack = true;
        let services = [
            fam("a-v6", None, &[false]),
            fam("b-v4", None, &[true]),
            fam("c-v6-asks-v4", Some("192.0.2.201"), &[false]),
            fam("d-v6-first", None, &[false, true]),
            dual,
        ];
        let p = plan(&services, &s, &any);
        assert_eq!(p.writes["default/a-v6"].to_string(), "2001:db8::10");
        assert_eq!(p.writes["default/b-v4"].to_string(), "192.0.2.200");
        assert!(
            p.problems["default/c-v6-asks-v4"].contains("ipFamilies are [\"IPv6\"]"),
            "{p:?}"
        );
        assert_eq!(p.writes["default/d-v6-first"].to_string(), "2001:db8::11");
        assert!(p.problems["default/e-dual"].contains("RequireDualStack"));
        // The IPv6 range is used up: the next IPv6 Service gets no IPv4 address instead.
        let more = [
            services[0].clone(),
            services[3].clone(),
            fam("f-v6", None, &[false]),
        ];
        let p = plan(&more, &s, &any);
        assert!(
            p.problems["default/f-v6"].contains("pool of IPv6 is exhausted"),
            "{p:?}"
        );
    }

    #[test]
    fn status_of_ours_is_cleared_when_a_service_stops_qualifying() {
        let s = settings("192.0.2.200-192.0.2.210");
        let services = [
            // Another controller's class, with an address in our pool: not ours to touch.
            svc("c-metallb", "3", Some("metallb"), None, &["192.0.2.201"]),
            // Ours, asking for an address outside the pool: refused, its status cleared.
            svc(
                "d-refused",
                "4",
                Some(DEFAULT_CLASS),
                Some("203.0.113.9"),
                &["203.0.113.9"],
            ),
            svc("e-fine", "5", Some(DEFAULT_CLASS), None, &["192.0.2.202"]),
        ];
        let p = plan(&services, &s, &any);
        let cleared: Vec<&str> = p.clears.iter().map(String::as_str).collect();
        assert_eq!(cleared, ["default/d-refused"]);
        assert_eq!(p.serving["default/e-fine"].to_string(), "192.0.2.202");
    }

    #[test]
    fn list_annotations_give_the_primary_familys_address() {
        let service = |notes: serde_json::Value, families: &[&str]| -> SvcInfo {
            let s: Service = serde_json::from_value(serde_json::json!({
                "metadata": {"name": "a", "namespace": "web", "annotations": notes},
                "spec": {"type": "LoadBalancer", "ipFamilies": families,
                    "loadBalancerIP": "192.0.2.99"}
            }))
            .unwrap();
            SvcInfo::from_service(&s)
        };
        let want = |i: &SvcInfo| i.wanted.clone().unwrap().map(|ip| ip.to_string());
        let both = "192.0.2.10, 2001:db8::10";
        let i = service(
            serde_json::json!({"edgevip.io/loadBalancerIPs": both}),
            &["IPv6", "IPv4"],
        );
        assert_eq!(want(&i), Ok("2001:db8::10".into()));
        // MetalLB's annotation, unchanged, and it wins over spec.loadBalancerIP.
        let i = service(
            serde_json::json!({"metallb.io/loadBalancerIPs": both}),
            &["IPv4"],
        );
        assert_eq!(want(&i), Ok("192.0.2.10".into()));
        let i = service(
            serde_json::json!({"metallb.io/loadBalancerIPs": "2001:db8::1"}),
            &["IPv4"],
        );
        assert!(want(&i).unwrap_err().contains("no IPv4 address"), "{i:?}");
        let i = service(
            serde_json::json!({"edgevip.io/loadBalancerIPs": "192.0.2.1,192.0.2.2"}),
            &[],
        );
        assert!(
            want(&i)
                .unwrap_err()
                .contains("two addresses of one family")
        );
        let i = service(
            serde_json::json!({"edgevip.io/loadBalancerIPs": "banana"}),
            &[],
        );
        assert!(
            want(&i)
                .unwrap_err()
                .contains("edgevip.io/loadBalancerIPs: \"banana\"")
        );
        let i = service(serde_json::json!({}), &["IPv4"]);
        assert_eq!(want(&i), Ok("192.0.2.99".into()));
    }
}
