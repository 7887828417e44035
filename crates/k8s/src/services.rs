//! Services of `type: LoadBalancer` whose `spec.loadBalancerClass` is ours get VIPs: one per
//! family they ask for (`spec.ipFamilies` and `ipFamilyPolicy`), the addresses they request
//! (annotations, `spec.loadBalancerIP`) or else ones from a pool they may use
//! (`crate::pools`); never one the fence refuses (a node's address, ...), never one another
//! Service holds unless both may share it. Pure.
//!
//! Status is the record. Recorded addresses keep their Services while still allowed, the
//! oldest claim first; requests come next, new allocations last, so an allocation never
//! takes an address somebody holds or asked for. Every node computes the same plan from the
//! same view; only the holder of the allocator Lease (`crate::lease`) writes
//! `status.loadBalancer.ingress`, and all nodes serve what the status says, so an
//! allocation is never served before it is recorded.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::ops::RangeInclusive;

use k8s_openapi::api::core::v1::Service;

use crate::pools::{Labels, PoolDef};

pub const DEFAULT_CLASS: &str = "edgevip.io/vip";
pub const VIP_ANNOTATION: &str = "edgevip.io/vip";
/// One address per family, `192.0.2.10,2001:db8::10`. MetalLB's spelling of this and of
/// the two below is read too, so a Service moves from MetalLB unchanged.
pub const IPS_ANNOTATIONS: [&str; 2] = ["edgevip.io/loadBalancerIPs", "metallb.io/loadBalancerIPs"];
/// The pool to allocate from, by name (also one with `autoAssign: false`).
pub const POOL_ANNOTATIONS: [&str; 2] = ["edgevip.io/address-pool", "metallb.io/address-pool"];
/// The sharing key: Services of one namespace with the same key may share an address.
pub const SHARING_ANNOTATIONS: [&str; 2] =
    ["edgevip.io/allow-shared-ip", "metallb.io/allow-shared-ip"];

#[derive(Debug, Clone, PartialEq)]
pub struct LbSettings {
    pub class: String,
    /// Also take LoadBalancer Services that name no class.
    pub default_class: bool,
    /// `--address-pool`: the implicit pool any Service may use.
    pub pool: Pool,
    /// VRIDs the LoadBalancer VIPs' instances may use (`crate::spread`).
    pub vrids: RangeInclusive<u8>,
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
                // Host bits; a /0 shifts by the whole width, which `checked_shr` allows.
                let host = if a.is_ipv4() {
                    u128::from(u32::MAX.checked_shr(len).unwrap_or(0))
                } else {
                    u128::MAX.checked_shr(len).unwrap_or(0)
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
}

/// Pool addresses the fence refuses (a node's, the Pod network's) skipped at most per range.
const MAX_SKIPPED: u32 = 1024;

pub(crate) fn to_u128(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v) => u32::from(v) as u128,
        IpAddr::V6(v) => u128::from(v),
    }
}

pub(crate) fn from_u128(x: u128, v4: bool) -> IpAddr {
    if v4 {
        IpAddr::V4((x as u32).into())
    } else {
        IpAddr::V6(x.into())
    }
}

/// `spec.ipFamilyPolicy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FamilyPolicy {
    #[default]
    SingleStack,
    PreferDualStack,
    RequireDualStack,
}

/// What we keep of a Service: a few fields, not the object (thousands may exist).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SvcInfo {
    pub namespace: String,
    pub name: String,
    /// For pools' `serviceSelector`.
    pub labels: Labels,
    pub created: String,
    pub load_balancer: bool,
    pub class: Option<String>,
    /// Addresses asked for, at most one per family (empty: none), or why the request is
    /// unreadable.
    pub wanted: Result<Vec<IpAddr>, String>,
    /// Where `wanted` comes from (an annotation, `spec.loadBalancerIP`), for messages.
    pub wanted_from: &'static str,
    /// The pool asked for by name.
    pub pool: Option<String>,
    /// The sharing key.
    pub sharing: Option<String>,
    /// `(protocol, port)` of each port: Services sharing an address must not clash.
    pub ports: BTreeSet<(String, i32)>,
    /// `externalTrafficPolicy: Local`: only nodes with a ready local endpoint may hold it.
    pub local: bool,
    pub status: Vec<IpAddr>,
    /// An allocation this node has sent to the API and not yet seen back: it holds its
    /// addresses (so arrivals meanwhile do not shuffle allocations) but is not served.
    pub pending: Vec<IpAddr>,
    /// `spec.ipFamilies` (IPv4 → `true`), primary first; empty: any family.
    pub families: Vec<bool>,
    pub policy: FamilyPolicy,
}

impl Default for SvcInfo {
    /// A LoadBalancer Service of no class asking for nothing (tests fill in the rest).
    fn default() -> Self {
        SvcInfo {
            namespace: String::new(),
            name: String::new(),
            labels: Labels::new(),
            created: String::new(),
            load_balancer: true,
            class: None,
            wanted: Ok(Vec::new()),
            wanted_from: "",
            pool: None,
            sharing: None,
            ports: BTreeSet::new(),
            local: false,
            status: Vec::new(),
            pending: Vec::new(),
            families: Vec::new(),
            policy: FamilyPolicy::SingleStack,
        }
    }
}

fn family_name(v4: bool) -> &'static str {
    if v4 { "IPv4" } else { "IPv6" }
}

/// The addresses of a list annotation, each checked, at most one per family; an error
/// names the annotation and the value.
fn parse_list(name: &str, list: &str) -> Result<Vec<IpAddr>, String> {
    let mut ips: Vec<IpAddr> = Vec::new();
    for item in list.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        let ip: IpAddr = item
            .parse()
            .map_err(|_| format!("{name}: {item:?} is not an IP address"))?;
        if ips.iter().any(|x| x.is_ipv4() == ip.is_ipv4()) {
            return Err(format!("{name}: {list:?} has two addresses of one family"));
        }
        ips.push(ip);
    }
    Ok(ips)
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
                .map(|v| v.trim())
                .filter(|v| !v.is_empty())
        };
        let first = |keys: &[&'static str]| keys.iter().find_map(|k| Some((*k, given(k)?)));
        // The list annotations first (edgevip's, then MetalLB's), then the single-address
        // annotation, then the deprecated spec field.
        let single = given(VIP_ANNOTATION)
            .map(|v| (VIP_ANNOTATION, v))
            .or_else(|| {
                spec.and_then(|s| s.load_balancer_ip.as_deref())
                    .map(str::trim)
                    .filter(|v| !v.is_empty())
                    .map(|v| ("spec.loadBalancerIP", v))
            });
        let (wanted_from, wanted) = match (first(&IPS_ANNOTATIONS), single) {
            (Some((k, v)), _) => (k, parse_list(k, v)),
            (None, Some((k, v))) => (
                k,
                v.parse::<IpAddr>()
                    .map(|ip| vec![ip])
                    .map_err(|_| format!("{k}: {v:?} is not an IP address")),
            ),
            (None, None) => ("", Ok(Vec::new())),
        };
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
            wanted_from,
            pool: first(&POOL_ANNOTATIONS).map(|(_, v)| v.to_string()),
            sharing: first(&SHARING_ANNOTATIONS).map(|(_, v)| v.to_string()),
            ports: spec
                .and_then(|s| s.ports.as_ref())
                .into_iter()
                .flatten()
                .map(|p| (p.protocol.clone().unwrap_or_else(|| "TCP".into()), p.port))
                .collect(),
            local: spec.and_then(|s| s.external_traffic_policy.as_deref()) == Some("Local"),
            status: s
                .status
                .as_ref()
                .and_then(|st| st.load_balancer.as_ref())
                .and_then(|lb| lb.ingress.as_ref())
                .into_iter()
                .flatten()
                .filter_map(|i| i.ip.as_ref()?.parse().ok())
                .collect(),
            pending: Vec::new(),
            families,
            policy: match spec.and_then(|s| s.ip_family_policy.as_deref()) {
                Some("PreferDualStack") => FamilyPolicy::PreferDualStack,
                Some("RequireDualStack") => FamilyPolicy::RequireDualStack,
                _ => FamilyPolicy::SingleStack,
            },
        }
    }

    /// The families it gets an address of, primary first (`None`: any one family).
    fn slots(&self) -> Vec<Option<bool>> {
        let primary = self.families.first().copied();
        match self.policy {
            FamilyPolicy::SingleStack => vec![primary],
            FamilyPolicy::PreferDualStack if self.families.is_empty() => vec![None],
            FamilyPolicy::PreferDualStack => self.families.iter().map(|f| Some(*f)).collect(),
            FamilyPolicy::RequireDualStack => {
                let p = primary.unwrap_or(true);
                vec![Some(p), Some(!p)]
            }
        }
    }

    /// The address asked for in each slot (`None`: allocate), or why the request fails.
    /// A request naming addresses names all it wants: a slot it leaves out is allocated
    /// nothing (a PreferDualStack Service then stays single-stack).
    fn requests(&self, slots: &[Option<bool>]) -> Result<Vec<Option<IpAddr>>, String> {
        let list = self.wanted.as_ref().map_err(Clone::clone)?;
        if list.is_empty() {
            return Ok(vec![None; slots.len()]);
        }
        let mut out = Vec::new();
        for (i, slot) in slots.iter().enumerate() {
            let found = list
                .iter()
                .copied()
                .find(|ip| slot.is_none_or(|v| ip.is_ipv4() == v));
            match (found, slot) {
                (Some(ip), _) => out.push(Some(ip)),
                (None, Some(v4)) if i == 0 || self.policy == FamilyPolicy::RequireDualStack => {
                    let fams: Vec<&str> = self.families.iter().map(|f| family_name(*f)).collect();
                    let list: Vec<String> = list.iter().map(ToString::to_string).collect();
                    return Err(format!(
                        "{} asks for {} but names no {} address (the Service's ipFamilies are {fams:?}, ipFamilyPolicy {:?})",
                        self.wanted_from,
                        list.join(","),
                        family_name(*v4),
                        self.policy
                    ));
                }
                (None, _) => out.push(None),
            }
        }
        Ok(out)
    }

    /// Why `ip` is of a family the Service does not have, if it is.
    fn family_mismatch(&self, ip: IpAddr) -> Option<String> {
        if self.families.is_empty() || self.families.contains(&ip.is_ipv4()) {
            return None;
        }
        let fams: Vec<&str> = self.families.iter().map(|f| family_name(*f)).collect();
        Some(format!(
            "{ip} is {} but the Service's ipFamilies are {fams:?}",
            family_name(ip.is_ipv4())
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
    /// Service `ns/name` → the VIPs served for it (those recorded in its status).
    pub serving: BTreeMap<String, Vec<IpAddr>>,
    /// Status writes the writer must make: `ns/name` → VIPs, primary family first.
    pub writes: BTreeMap<String, Vec<IpAddr>>,
    /// Services of ours whose status holds VIPs they no longer get (a request refused, a
    /// pool gone): the writer clears `status.loadBalancer.ingress`. (A Service that stops
    /// being a LoadBalancer has its status cleared by the API server itself;
    /// `loadBalancerClass` cannot change.)
    pub clears: BTreeSet<String>,
    /// `ns/name` → why it gets no VIP.
    pub problems: BTreeMap<String, String>,
    /// `ns/name` → what its owner should know although it is served (a recorded address
    /// withdrawn, a family it prefers but cannot get).
    pub notes: BTreeMap<String, String>,
    /// Services with `externalTrafficPolicy: Local`.
    pub local: BTreeSet<String>,
}

impl Plan {
    /// Every address in use: served or being recorded.
    pub fn in_use(&self) -> impl Iterator<Item = IpAddr> + '_ {
        let all: BTreeSet<IpAddr> = self
            .serving
            .values()
            .chain(self.writes.values())
            .flatten()
            .copied()
            .collect();
        all.into_iter()
    }
}

/// Why `ip` may not be a Service's VIP (the admin's rules: the fence), if it may not.
pub type Admit<'a> = &'a dyn Fn(IpAddr) -> Result<(), String>;

/// Who holds an address, as far as sharing it goes.
struct Holder {
    namespace: String,
    sharing: Option<String>,
    local: bool,
    /// Each Service holding it, with its ports.
    members: Vec<(String, BTreeSet<(String, i32)>)>,
}

/// One Service's way through the plan.
#[derive(Default)]
struct Got {
    /// The pools it may use (indices).
    pools: Vec<usize>,
    /// The families it gets an address of, and the address it asks for in each.
    slots: Vec<Option<bool>>,
    asks: Vec<Option<IpAddr>>,
    /// (slot, address).
    addrs: Vec<(usize, IpAddr)>,
    problem: Option<String>,
    notes: Vec<String>,
}

impl Got {
    fn has(&self, slot: usize) -> bool {
        self.addrs.iter().any(|(s, _)| *s == slot)
    }
}

static NO_LABELS: Labels = BTreeMap::new();

struct Alloc<'a> {
    pools: &'a [PoolDef],
    ns_labels: &'a BTreeMap<String, Labels>,
    admit: Admit<'a>,
    used: BTreeMap<IpAddr, Holder>,
    /// (pool, range) → the first address not tried yet: within one plan `used` only grows,
    /// so each range is walked once however many Services arrive together.
    cursor: BTreeMap<(usize, usize), u128>,
}

impl Alloc<'_> {
    /// The pools `svc` may use (by index), or why it may use none it asked for.
    fn allowed(&self, svc: &SvcInfo) -> Result<Vec<usize>, String> {
        let ns = self.ns_labels.get(&svc.namespace).unwrap_or(&NO_LABELS);
        let admits = |p: &PoolDef| p.scope.admits(svc, ns);
        match &svc.pool {
            Some(name) => match self.pools.iter().position(|p| p.name == *name) {
                None => Err(format!("address pool {name:?} does not exist")),
                Some(i) if !admits(&self.pools[i]) => Err(format!(
                    "address pool {name:?} does not admit this Service (its serviceAllocation)"
                )),
                Some(i) => Ok(vec![i]),
            },
            None => Ok((0..self.pools.len())
                .filter(|i| admits(&self.pools[*i]))
                .collect()),
        }
    }

    fn names(&self, pools: &[usize]) -> String {
        let n: Vec<&str> = pools.iter().map(|i| self.pools[*i].name.as_str()).collect();
        n.join(", ")
    }

    /// Whether `svc` may have `ip`: the fence, its families, a pool it may use, and
    /// nobody holding it that it may not share with.
    fn check(&self, svc: &SvcInfo, ip: IpAddr, allowed: &[usize]) -> Result<(), String> {
        (self.admit)(ip)?;
        if let Some(why) = svc.family_mismatch(ip) {
            return Err(why);
        }
        if !allowed.iter().any(|i| self.pools[*i].ranges.contains(ip)) {
            return Err(if allowed.is_empty() {
                format!("{ip}: no address pool admits this Service")
            } else {
                format!(
                    "{ip} is not in an address pool this Service may use ({})",
                    self.names(allowed)
                )
            });
        }
        self.shareable(svc, ip)
    }

    /// Nobody holds `ip`, or only Services of the same namespace with the same sharing
    /// key, the same traffic policy and other ports. Never across namespaces: a key is no
    /// secret, and another namespace's Service must not learn or join ours.
    fn shareable(&self, svc: &SvcInfo, ip: IpAddr) -> Result<(), String> {
        let Some(h) = self.used.get(&ip) else {
            return Ok(());
        };
        let holder = if h.namespace == svc.namespace {
            let names: Vec<&str> = h.members.iter().map(|(n, _)| n.as_str()).collect();
            format!("Service {}", names.join(", "))
        } else {
            "a Service of another namespace".into()
        };
        let key = match (&h.sharing, &svc.sharing) {
            (Some(a), Some(b)) if a == b && h.namespace == svc.namespace => a,
            _ => return Err(format!("{ip} is already the VIP of {holder}")),
        };
        if h.local != svc.local {
            return Err(format!(
                "{ip} is shared (key {key:?}) by {holder}, whose externalTrafficPolicy differs"
            ));
        }
        let clash: Vec<String> = h
            .members
            .iter()
            .flat_map(|(_, ports)| svc.ports.intersection(ports))
            .map(|(proto, port)| format!("{port}/{proto}"))
            .collect();
        if !clash.is_empty() {
            return Err(format!(
                "{ip} is shared (key {key:?}) by {holder}, which uses {} too",
                clash.join(", ")
            ));
        }
        Ok(())
    }

    fn take(&mut self, svc: &SvcInfo, ip: IpAddr) {
        let h = self.used.entry(ip).or_insert_with(|| Holder {
            namespace: svc.namespace.clone(),
            sharing: svc.sharing.clone(),
            local: svc.local,
            members: Vec::new(),
        });
        h.members.push((svc.name.clone(), svc.ports.clone()));
    }

    /// Gives back what `svc` took: an address it held alone is free again, so the walks
    /// start over (their cursors may have passed it).
    fn give_back(&mut self, svc: &SvcInfo, addrs: &[(usize, IpAddr)]) {
        for (_, ip) in addrs {
            let Some(h) = self.used.get_mut(ip) else {
                continue;
            };
            h.members.retain(|(n, _)| *n != svc.name);
            if h.members.is_empty() {
                self.used.remove(ip);
                self.cursor.clear();
            }
        }
    }

    /// Slots of any family (a Service that lists no `ipFamilies`) take the first family
    /// the Service's pools have, whatever is free: which family a Service gets must not
    /// depend on what others hold, or one refusal would reshuffle the other family.
    fn settle(&self, slots: Vec<Option<bool>>, allowed: &[usize]) -> Vec<Option<bool>> {
        let first = allowed
            .iter()
            .flat_map(|i| self.pools[*i].ranges.0.iter())
            .map(|(a, _)| a.is_ipv4())
            .next();
        slots.into_iter().map(|s| s.or(first)).collect()
    }

    /// The pools a new address may come from: those with `autoAssign`, or the one named.
    fn automatic(&self, svc: &SvcInfo, allowed: &[usize]) -> Vec<usize> {
        allowed
            .iter()
            .copied()
            .filter(|i| self.pools[*i].auto_assign || svc.pool.is_some())
            .collect()
    }

    /// An address for a Service without one in `slot`: one it may share, else the first
    /// free one of the pools it may allocate from (automatic ones, or the one it names).
    fn fresh(&mut self, svc: &SvcInfo, slot: Option<bool>, allowed: &[usize]) -> Option<IpAddr> {
        let family = |ip: &IpAddr| slot.is_none_or(|v| ip.is_ipv4() == v);
        if svc.sharing.is_some() {
            let shared = self.used.keys().copied().find(|ip| {
                family(ip)
                    && self.used[ip].sharing == svc.sharing
                    && self.check(svc, *ip, allowed).is_ok()
            });
            if shared.is_some() {
                return shared;
            }
        }
        for pi in self.automatic(svc, allowed) {
            let ranges = self.pools[pi].ranges.0.clone();
            for (ri, (a, b)) in ranges.iter().enumerate().filter(|(_, (a, _))| family(a)) {
                let v4 = a.is_ipv4();
                let hi = to_u128(*b);
                let mut x = self.cursor.get(&(pi, ri)).copied().unwrap_or(to_u128(*a));
                let mut skipped = 0u32;
                while x <= hi && skipped <= MAX_SKIPPED {
                    let ip = from_u128(x, v4);
                    x += 1;
                    if self.used.contains_key(&ip) {
                        continue;
                    }
                    if (self.admit)(ip).is_ok() {
                        self.cursor.insert((pi, ri), x);
                        return Some(ip);
                    }
                    skipped += 1;
                }
                self.cursor.insert((pi, ri), x);
            }
        }
        None
    }
}

/// The plan for `services` from `pools` (the `--address-pool` one and the VIPPools, in the
/// order automatic allocation tries them); `ns_labels` are the namespaces' labels.
pub fn plan(
    services: &[SvcInfo],
    s: &LbSettings,
    pools: &[PoolDef],
    ns_labels: &BTreeMap<String, Labels>,
    admit: Admit,
) -> Plan {
    let mut ours: Vec<&SvcInfo> = services.iter().filter(|x| x.ours(s)).collect();
    ours.sort_by(|a, b| (&a.created, a.key()).cmp(&(&b.created, b.key())));
    let mut a = Alloc {
        pools,
        ns_labels,
        admit,
        used: BTreeMap::new(),
        cursor: BTreeMap::new(),
    };
    // A Service refused after it took an address (RequireDualStack missing a family, say)
    // held it while the others were placed: plan again without it, or the next plan (once
    // its status is cleared) would hand that address out and the plan would not be a
    // fixpoint. Each round refuses at least one more Service, so this ends.
    let mut refused = BTreeMap::new();
    loop {
        let (p, late) = round(&ours, &mut a, &refused);
        if late.is_empty() {
            return p;
        }
        refused.extend(late);
        a.used.clear();
        a.cursor.clear();
    }
}

/// One pass over `ours` (oldest first), `refused` ones refused up front; also returns the
/// Services refused only after taking an address.
fn round(
    ours: &[&SvcInfo],
    a: &mut Alloc,
    refused: &BTreeMap<String, String>,
) -> (Plan, BTreeMap<String, String>) {
    let mut got: Vec<Got> = ours
        .iter()
        .map(|svc| {
            let slots = svc.slots();
            if let Some(why) = refused.get(&svc.key()) {
                return Got {
                    problem: Some(why.clone()),
                    ..Default::default()
                };
            }
            match (a.allowed(svc), svc.requests(&slots)) {
                (Ok(pools), Ok(asks)) => Got {
                    slots: a.settle(slots, &pools),
                    pools,
                    asks,
                    ..Default::default()
                },
                (Err(why), _) | (_, Err(why)) => Got {
                    problem: Some(format!("refused: {why}")),
                    ..Default::default()
                },
            }
        })
        .collect();
    // Recorded (or sent) addresses first, oldest Service first: a contested address stays
    // with the oldest claim. Each pass takes a Service's addresses all or none.
    for (svc, g) in ours.iter().zip(&mut got) {
        if g.problem.is_some() {
            continue;
        }
        let mut keep = Vec::new();
        for (i, slot) in g.slots.iter().enumerate() {
            let live = svc.status.iter().chain(&svc.pending).copied().find(|ip| {
                slot.is_none_or(|v| ip.is_ipv4() == v) && !keep.iter().any(|(_, x)| x == ip)
            });
            let Some(ip) = live else { continue };
            if g.asks[i].is_some_and(|r| r != ip) {
                continue; // a new request replaces the record
            }
            match a.check(svc, ip, &g.pools) {
                Ok(()) => keep.push((i, ip)),
                Err(why) if g.asks[i].is_some() => {
                    g.problem = Some(format!("refused: {why}"));
                    break;
                }
                Err(why) if svc.status.contains(&ip) => {
                    g.notes.push(format!("{ip} withdrawn: {why}"));
                }
                Err(_) => {}
            }
        }
        if g.problem.is_none() {
            for (i, ip) in keep {
                a.take(svc, ip);
                g.addrs.push((i, ip));
            }
        }
    }
    // Then requests, then new allocations: an allocation never takes an address somebody
    // asked for.
    for (svc, g) in ours.iter().zip(&mut got) {
        if g.problem.is_some() {
            continue;
        }
        let asked: Vec<(usize, IpAddr)> = (0..g.slots.len())
            .filter(|i| !g.has(*i))
            .filter_map(|i| Some((i, g.asks[i]?)))
            .collect();
        match asked
            .iter()
            .try_for_each(|(_, ip)| a.check(svc, *ip, &g.pools))
        {
            Ok(()) => {
                for (i, ip) in asked {
                    a.take(svc, ip);
                    g.addrs.push((i, ip));
                }
            }
            Err(why) => g.problem = Some(format!("refused: {why}")),
        }
    }
    for (svc, g) in ours.iter().zip(&mut got) {
        // A request names every address it wants: no allocation beside it.
        if g.problem.is_some() || g.asks.iter().any(Option::is_some) {
            continue;
        }
        let (mut fresh, mut short) = (Vec::new(), Vec::new());
        for (i, slot) in g.slots.clone().into_iter().enumerate() {
            if g.has(i) {
                continue;
            }
            if let Some(ip) = a.fresh(svc, slot, &g.pools) {
                a.take(svc, ip);
                fresh.push((i, ip));
                continue;
            }
            let auto = a.automatic(svc, &g.pools);
            let why = if auto.is_empty() {
                "no address pool admits this Service for automatic allocation \
                 (--address-pool, VIPPools with autoAssign and their serviceAllocation)"
                    .to_string()
            } else {
                let family = slot.map(|v| format!(" of {}", family_name(v)));
                format!(
                    "the address pools{} this Service may use are exhausted ({})",
                    family.unwrap_or_default(),
                    a.names(&auto)
                )
            };
            short.push(why);
        }
        // RequireDualStack needs every family; the others what they can get (a
        // PreferDualStack Service stays single-stack, with a note, until a pool has room).
        let Some(why) = short.first() else {
            g.addrs.extend(fresh);
            continue;
        };
        if svc.policy == FamilyPolicy::RequireDualStack || g.addrs.is_empty() && fresh.is_empty() {
            g.problem = Some(why.clone());
            a.give_back(svc, &fresh);
        } else {
            g.notes
                .push(format!("PreferDualStack: single-stack for now, {why}"));
            g.addrs.extend(fresh);
        }
    }
    let mut p = Plan::default();
    let mut late = BTreeMap::new();
    for (svc, mut g) in ours.iter().zip(got) {
        let key = svc.key();
        if !g.notes.is_empty() {
            p.notes.insert(key.clone(), g.notes.join("; "));
        }
        if let Some(why) = g.problem {
            if !g.addrs.is_empty() {
                late.insert(key.clone(), why.clone());
            }
            p.problems.insert(key.clone(), why);
            if !svc.status.is_empty() {
                p.clears.insert(key);
            }
            continue;
        }
        g.addrs.sort();
        let addrs: Vec<IpAddr> = g.addrs.into_iter().map(|(_, ip)| ip).collect();
        // The status is the record, and so is the spec for what it asks for.
        let served: Vec<IpAddr> = addrs
            .iter()
            .copied()
            .filter(|ip| svc.status.contains(ip) || g.asks.contains(&Some(*ip)))
            .collect();
        if !served.is_empty() {
            p.serving.insert(key.clone(), served);
        }
        if svc.status != addrs {
            p.writes.insert(key.clone(), addrs);
        }
        if svc.local {
            p.local.insert(key);
        }
    }
    (p, late)
}

#[cfg(test)]
mod tests;
