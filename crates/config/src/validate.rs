//! From the loose file to the typed config, collecting every error with its path.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use crate::duration::{format_duration, parse_duration};
use crate::{
    Announce, AnnounceMode, Api, Bfd, Bgp, BgpPeer, BgpRouteAttrs, Community, Config, ConfigErrors,
    Defaults, FieldError, HealthCheck, HttpTls, Instance, Log, LogFormat, Probe, Track, Version,
    Vip, raw,
};

struct Errs(Vec<FieldError>);

impl Errs {
    fn push(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.0.push(FieldError {
            path: path.into(),
            message: message.into(),
        });
    }
}

pub fn validate(f: raw::File) -> Result<Config, ConfigErrors> {
    let mut e = Errs(Vec::new());
    let api = f.api.and_then(|a| match a.listen {
        None => {
            e.push("api.listen", "is required when `api` is present");
            None
        }
        Some(l) => match l.parse::<SocketAddr>() {
            Ok(listen) => Some(Api { listen }),
            Err(_) => {
                e.push("api.listen", format!("{l:?} is not an address:port"));
                None
            }
        },
    });
    let log = log(f.log, &mut e);
    let bgp = f.bgp.map(|b| bgp(b, &mut e));
    let mut instances = Vec::new();
    let defaults = Defaults::default();
    for (i, raw) in f.instances.into_iter().enumerate() {
        if let Some(inst) = instance(&format!("instances[{i}]"), raw, &defaults, &mut e) {
            instances.push(inst);
        }
    }
    cross_checks(&instances, &mut e);
    bgp_instances(bgp.as_ref(), &instances, &mut e);
    if e.0.is_empty() {
        Ok(Config {
            api,
            log,
            bgp,
            instances,
        })
    } else {
        Err(ConfigErrors(e.0))
    }
}

fn log(l: Option<raw::Log>, e: &mut Errs) -> Log {
    let mut out = Log {
        format: LogFormat::Text,
        level: "info".into(),
    };
    if let Some(l) = l {
        match l.format.as_deref() {
            None | Some("text") => {}
            Some("json") => out.format = LogFormat::Json,
            Some(x) => e.push("log.format", format!("{x:?} is not one of text, json")),
        }
        if let Some(level) = l.level {
            out.level = level;
        }
    }
    out
}

fn range(
    e: &mut Errs,
    path: String,
    v: Option<i64>,
    default: Option<i64>,
    lo: i64,
    hi: i64,
) -> i64 {
    match v.or(default) {
        None => {
            e.push(path, "is required");
            lo
        }
        Some(x) if x < lo || x > hi => {
            e.push(path, format!("{x} is out of range {lo}..{hi}"));
            lo
        }
        Some(x) => x,
    }
}

fn duration(e: &mut Errs, path: String, v: Option<String>, default: Duration) -> Duration {
    match v {
        None => default,
        Some(s) => parse_duration(&s).unwrap_or_else(|m| {
            e.push(path, m);
            default
        }),
    }
}

fn instance(p: &str, mut r: raw::Instance, d: &Defaults, e: &mut Errs) -> Option<Instance> {
    let before = e.0.len();
    let name = name(e, p, r.name.take());
    let (mode, burst) = mode(e, p, &mut r);
    if mode.is_bgp() {
        return bgp_instance(p, r, name, mode, d, e, before);
    }
    let interface = interface(e, p, r.interface.or_else(|| d.interface.clone()));
    let vrid = range(e, format!("{p}.vrid"), r.vrid, None, 1, 255) as u8;
    let priority = range(
        e,
        format!("{p}.priority"),
        r.priority,
        Some(i64::from(d.priority)),
        1,
        255,
    ) as u8;
    let version = match r.version.unwrap_or(3) {
        2 => Version::V2,
        3 => Version::V3,
        v => {
            e.push(format!("{p}.version"), format!("{v} is not 2 or 3"));
            Version::V3
        }
    };
    let advert_interval = advert_interval(e, p, r.advert_interval, d.advert_interval, version);
    let preempt_delay = duration(
        e,
        format!("{p}.preempt_delay"),
        r.preempt_delay,
        Duration::ZERO,
    );
    if preempt_delay > Duration::from_secs(3600) {
        e.push(
            format!("{p}.preempt_delay"),
            format!("{} is longer than 1h", format_duration(preempt_delay)),
        );
    }
    let vips = vips(e, p, &r.vips, version);
    let (unicast, unicast_peers) = unicast(e, p, r.unicast, r.unicast_peers, &vips, d);
    let auth_pass = auth_pass(e, p, r.auth_pass, version);
    let mut track_interfaces = Vec::new();
    for (k, t) in r.track_interfaces.into_iter().enumerate() {
        let path = format!("{p}.track_interfaces[{k}]");
        let tname = t.name.unwrap_or_default();
        if tname.is_empty() || tname.len() > 15 {
            e.push(
                format!("{path}.name"),
                format!("{tname:?} is not a Linux interface name"),
            );
        }
        let weight = weight(e, &path, t.weight, priority);
        track_interfaces.push(Track {
            name: tname,
            weight,
        });
    }
    let announce = burst.map_or_else(Announce::default, |a| announce(e, p, a));
    let unicast_min_ttl = range(
        e,
        format!("{p}.unicast_min_ttl"),
        r.unicast_min_ttl,
        Some(255),
        1,
        255,
    ) as u8;
    let unicast_src = match r.unicast_src {
        None => d.unicast_src,
        Some(s) => match s.parse::<IpAddr>() {
            Ok(IpAddr::V4(a)) if !a.is_unspecified() && !a.is_multicast() && !a.is_broadcast() => {
                Some(IpAddr::V4(a))
            }
            Ok(IpAddr::V6(_)) => {
                e.push(
                    format!("{p}.unicast_src"),
                    format!("{s:?}: IPv6 adverts are sent from the link-local address"),
                );
                None
            }
            _ => {
                e.push(
                    format!("{p}.unicast_src"),
                    format!("{s:?} is not a unicast IPv4 address"),
                );
                None
            }
        },
    };
    let health_checks = match r.health_checks {
        Some(checks) => health_checks(p, checks, priority, e),
        None => d.health_checks.clone(),
    };
    if r.notify.first().is_some_and(|c| c.trim().is_empty()) {
        e.push(format!("{p}.notify[0]"), "the command is empty");
    }

    if e.0.len() > before {
        return None;
    }
    Some(Instance {
        name,
        interface,
        vrid,
        priority,
        version,
        advert_interval,
        preempt: r.preempt.unwrap_or(d.preempt),
        preempt_delay,
        vips,
        unicast_peers,
        unicast,
        auth_pass,
        track_interfaces,
        announce,
        mode,
        v3_checksum_pseudo_header: r.v3_checksum_pseudo_header.unwrap_or(true),
        unicast_min_ttl,
        unicast_src,
        handoff: r.handoff.unwrap_or(true),
        strict_vip_list: r.strict_vip_list.unwrap_or(false),
        ineligible: None,
        health_checks,
        notify: r.notify,
    })
}

fn name(e: &mut Errs, p: &str, name: Option<String>) -> String {
    let name = name.unwrap_or_default();
    if name.is_empty() {
        e.push(format!("{p}.name"), "is required");
    } else if name.len() > 32
        || !name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        e.push(
            format!("{p}.name"),
            format!("{name:?} must match [a-z0-9-]+, at most 32 characters"),
        );
    }
    name
}

fn interface(e: &mut Errs, p: &str, interface: Option<String>) -> String {
    let interface = interface.unwrap_or_default();
    if interface.is_empty() {
        e.push(format!("{p}.interface"), "is required");
    } else if interface.len() > 15 || interface.contains(['/', ' ', '\0']) {
        e.push(
            format!("{p}.interface"),
            format!("{interface:?} is not a Linux interface name (max 15 bytes)"),
        );
    }
    interface
}

/// VRRPv3 counts centiseconds (10ms..40.95s), VRRPv2 whole seconds (1s..255s).
fn advert_interval(
    e: &mut Errs,
    p: &str,
    given: Option<String>,
    default: Duration,
    version: Version,
) -> Duration {
    let ipath = format!("{p}.advert_interval");
    let interval = duration(e, ipath.clone(), given, default);
    let shown = format_duration(interval);
    match version {
        Version::V3 => {
            if !interval.as_nanos().is_multiple_of(10_000_000) {
                e.push(
                    ipath,
                    format!("{shown} is not a multiple of 10ms (VRRPv3 counts centiseconds)"),
                );
            } else if interval < Duration::from_millis(10)
                || interval > Duration::from_millis(40_950)
            {
                e.push(ipath, format!("{shown} is out of range 10ms..40.95s"));
            }
        }
        Version::V2 => {
            if interval.subsec_nanos() != 0 {
                e.push(
                    ipath,
                    format!("{shown} is not whole seconds (VRRPv2 counts seconds)"),
                );
            } else if interval < Duration::from_secs(1) || interval > Duration::from_secs(255) {
                e.push(ipath, format!("{shown} is out of range 1s..255s"));
            }
        }
    }
    interval
}

fn vips(e: &mut Errs, p: &str, given: &[String], version: Version) -> Vec<Vip> {
    let mut vips = Vec::new();
    if given.is_empty() {
        e.push(format!("{p}.vips"), "needs at least one address");
    }
    let mut seen = HashSet::new();
    for (k, s) in given.iter().enumerate() {
        let path = format!("{p}.vips[{k}]");
        match parse_vip(s) {
            Ok(v) => {
                if version == Version::V2 && v.addr.is_ipv6() {
                    e.push(path, format!("{s:?}: VRRPv2 is IPv4 only"));
                } else if !seen.insert(v.addr) {
                    e.push(path, format!("{s:?} is listed twice"));
                } else {
                    vips.push(v);
                }
            }
            Err(m) => e.push(path, format!("{s:?} {m}")),
        }
    }
    if vips.iter().filter(|v| v.addr.is_ipv4()).count() > 255
        || vips.iter().filter(|v| v.addr.is_ipv6()).count() > 255
    {
        e.push(
            format!("{p}.vips"),
            "more than 255 addresses of one family do not fit an advert",
        );
    }
    vips
}

/// Unicast mode and its peers: as given, or (neither given) the defaults' peers of the
/// families the VIPs use.
fn unicast(
    e: &mut Errs,
    p: &str,
    unicast: Option<bool>,
    peers: Option<Vec<String>>,
    vips: &[Vip],
    d: &Defaults,
) -> (bool, Vec<IpAddr>) {
    let has_family = |a: &IpAddr| vips.iter().any(|v| v.addr.is_ipv4() == a.is_ipv4());
    let Some(given) = peers else {
        return match (unicast, &d.unicast_peers) {
            (Some(u), _) => (u, Vec::new()),
            (None, None) => (false, Vec::new()),
            (None, Some(peers)) => (
                true,
                peers.iter().filter(|a| has_family(a)).copied().collect(),
            ),
        };
    };
    let mut out = Vec::new();
    for (k, s) in given.iter().enumerate() {
        let path = format!("{p}.unicast_peers[{k}]");
        match s.trim().parse::<IpAddr>() {
            Ok(a) if a.is_multicast() || a.is_unspecified() => {
                e.push(path, format!("{s:?} is not a unicast address"))
            }
            Ok(a) if !has_family(&a) => e.push(
                path,
                format!("{s:?}: no VIP of its address family, so no advert would be sent to it"),
            ),
            Ok(a) => out.push(a),
            Err(_) => e.push(path, format!("{s:?} is not an IP address")),
        }
    }
    match unicast {
        None => (!out.is_empty(), out),
        Some(false) if !out.is_empty() => {
            e.push(
                format!("{p}.unicast"),
                "false contradicts the unicast_peers given",
            );
            (false, out)
        }
        Some(u) => (u, out),
    }
}

fn auth_pass(e: &mut Errs, p: &str, given: Option<String>, version: Version) -> Option<String> {
    match given.filter(|a| !a.is_empty()) {
        None => None,
        Some(_) if version == Version::V3 => {
            e.push(
                format!("{p}.auth_pass"),
                "set but version is 3 (auth_pass is VRRPv2 only)",
            );
            None
        }
        Some(a) if a.len() > 8 => {
            e.push(
                format!("{p}.auth_pass"),
                format!("is {} bytes, at most 8 fit VRRPv2", a.len()),
            );
            None
        }
        Some(a) => Some(a),
    }
}

fn announce(e: &mut Errs, p: &str, a: raw::Announce) -> Announce {
    let mut announce = Announce::default();
    announce.count = range(e, format!("{p}.announce.count"), a.count, Some(5), 1, 100) as u32;
    announce.interval = duration(
        e,
        format!("{p}.announce.interval"),
        a.interval,
        announce.interval,
    );
    if announce.interval < Duration::from_millis(10) || announce.interval > Duration::from_secs(10)
    {
        e.push(
            format!("{p}.announce.interval"),
            format!(
                "{} is out of range 10ms..10s",
                format_duration(announce.interval)
            ),
        );
    }
    announce.refresh = duration(
        e,
        format!("{p}.announce.refresh"),
        a.refresh,
        Duration::ZERO,
    );
    if !announce.refresh.is_zero() && announce.refresh < Duration::from_secs(1) {
        e.push(
            format!("{p}.announce.refresh"),
            "must be 0s (off) or at least 1s",
        );
    }
    announce
}

pub fn instance_alone(p: &str, r: raw::Instance, d: &Defaults) -> Result<Instance, ConfigErrors> {
    let mut e = Errs(Vec::new());
    match instance(p, r, d, &mut e) {
        Some(i) if e.0.is_empty() => Ok(i),
        _ => Err(ConfigErrors(e.0)),
    }
}

pub fn cross_errors(instances: &[Instance]) -> Vec<FieldError> {
    let mut e = Errs(Vec::new());
    cross_checks(instances, &mut e);
    e.0
}

/// A tracking weight (interface or health check): non-zero, within ±254, and none for the
/// address owner, whose priority never changes.
fn weight(e: &mut Errs, path: &str, w: Option<i64>, priority: u8) -> Option<i16> {
    match w {
        None => None,
        Some(w) if !(-254..=254).contains(&w) || w == 0 => {
            e.push(
                format!("{path}.weight"),
                format!("{w} is out of range -254..254 (and not 0)"),
            );
            None
        }
        Some(_) if priority == 255 => {
            e.push(
                format!("{path}.weight"),
                "the address owner (priority 255) never changes priority; omit the weight to fault instead",
            );
            None
        }
        Some(w) => Some(w as i16),
    }
}

fn health_checks(
    p: &str,
    checks: Vec<raw::HealthCheck>,
    priority: u8,
    e: &mut Errs,
) -> Vec<HealthCheck> {
    let mut out = Vec::new();
    let mut names = HashSet::new();
    for (k, c) in checks.into_iter().enumerate() {
        let path = format!("{p}.health_checks[{k}]");
        let name = c.name.unwrap_or_else(|| format!("check-{k}"));
        if !names.insert(name.clone()) {
            e.push(format!("{path}.name"), format!("{name:?} is used twice"));
        }
        let probe = match (c.http, c.tcp, c.exec) {
            (Some(h), None, None) => {
                let url = h.url.unwrap_or_default();
                if !HealthCheck::is_http_url(&url) {
                    e.push(
                        format!("{path}.http.url"),
                        format!("{url:?} is not an http:// or https:// URL"),
                    );
                }
                let status = range(
                    e,
                    format!("{path}.http.expect_status"),
                    h.expect_status,
                    Some(200),
                    100,
                    599,
                );
                let tls = http_tls(
                    e,
                    &format!("{path}.http"),
                    &url,
                    h.ca_file,
                    h.server_name,
                    h.insecure_skip_verify,
                );
                Probe::Http {
                    url,
                    expect_status: status as u16,
                    tls,
                }
            }
            (None, Some(t), None) => match t.parse::<SocketAddr>() {
                Ok(addr) => Probe::Tcp { addr },
                Err(_) => {
                    e.push(
                        format!("{path}.tcp"),
                        format!("{t:?} is not an address:port"),
                    );
                    continue;
                }
            },
            (None, None, Some(argv)) => {
                if argv.first().is_none_or(|c| c.trim().is_empty()) {
                    e.push(format!("{path}.exec"), "needs a command");
                }
                Probe::Exec { argv }
            }
            _ => {
                e.push(path, "needs exactly one of http, tcp, exec");
                continue;
            }
        };
        let interval = duration(
            e,
            format!("{path}.interval"),
            c.interval,
            HealthCheck::DEFAULT_INTERVAL,
        );
        let timeout = duration(
            e,
            format!("{path}.timeout"),
            c.timeout,
            HealthCheck::DEFAULT_TIMEOUT,
        );
        for (field, d) in [("interval", interval), ("timeout", timeout)] {
            if d < Duration::from_millis(10) || d > Duration::from_secs(300) {
                e.push(
                    format!("{path}.{field}"),
                    format!("{} is out of range 10ms..300s", format_duration(d)),
                );
            }
        }
        let rise = range(
            e,
            format!("{path}.rise"),
            c.rise,
            Some(i64::from(HealthCheck::DEFAULT_RISE)),
            1,
            100,
        ) as u32;
        let fall = range(
            e,
            format!("{path}.fall"),
            c.fall,
            Some(i64::from(HealthCheck::DEFAULT_FALL)),
            1,
            100,
        ) as u32;
        let weight = weight(e, &path, c.weight, priority);
        out.push(HealthCheck {
            name,
            probe,
            interval,
            timeout,
            rise,
            fall,
            weight,
        });
    }
    out
}

/// The TLS settings of an http check: only for an `https://` URL; `ca_file` an absolute
/// path; `server_name` a DNS name or an IP address; `ca_file` and `insecure_skip_verify:
/// true` never together (pin a CA or skip verification, not both).
fn http_tls(
    e: &mut Errs,
    path: &str,
    url: &str,
    ca_file: Option<String>,
    server_name: Option<String>,
    insecure: Option<bool>,
) -> HttpTls {
    let https = HealthCheck::is_https_url(url);
    let not_https = |field: &str, value: String, e: &mut Errs| {
        e.push(
            format!("{path}.{field}"),
            format!("{value}: only for an https:// URL (url is {url:?})"),
        );
    };
    if !https && HealthCheck::is_http_url(url) {
        if let Some(c) = &ca_file {
            not_https("ca_file", format!("{c:?}"), e);
        }
        if let Some(n) = &server_name {
            not_https("server_name", format!("{n:?}"), e);
        }
        if let Some(i) = insecure {
            not_https("insecure_skip_verify", i.to_string(), e);
        }
    }
    let ca_file = ca_file.map(|c| {
        if !c.starts_with('/') {
            e.push(
                format!("{path}.ca_file"),
                format!("{c:?} is not an absolute path"),
            );
        }
        PathBuf::from(c)
    });
    if let Some(n) = &server_name
        && !is_server_name(n)
    {
        e.push(
            format!("{path}.server_name"),
            format!("{n:?} is not a DNS name or an IP address"),
        );
    }
    let insecure_skip_verify = insecure.unwrap_or(false);
    if insecure_skip_verify && let Some(c) = &ca_file {
        e.push(
            format!("{path}.insecure_skip_verify"),
            format!(
                "true contradicts ca_file {:?}: pin a CA or skip verification, not both",
                c.display()
            ),
        );
    }
    HttpTls {
        ca_file,
        server_name,
        insecure_skip_verify,
    }
}

/// A DNS name (letters, digits, `-`, dot-separated labels of 1..63) or an IP address.
fn is_server_name(n: &str) -> bool {
    if n.parse::<IpAddr>().is_ok() {
        return true;
    }
    n.len() <= 253
        && n.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

/// `192.0.2.100/24`, `2001:db8::1/64`, or a bare address (host prefix).
fn parse_vip(s: &str) -> Result<Vip, String> {
    let s = s.trim();
    let (a, len) = match s.split_once('/') {
        Some((a, l)) => (a, Some(l)),
        None => (s, None),
    };
    let addr: IpAddr = a.parse().map_err(|_| "is not an IP address".to_string())?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    let prefix_len = match len {
        None => max,
        Some(l) => match l.parse::<u8>() {
            Ok(n) if n >= 1 && n <= max => n,
            _ => return Err(format!("has prefix length {l:?}, expected 1..{max}")),
        },
    };
    if addr.is_multicast() || addr.is_unspecified() || addr.is_loopback() {
        return Err("cannot be a virtual IP (multicast, unspecified or loopback)".into());
    }
    if let IpAddr::V6(v6) = addr
        && v6.is_unicast_link_local()
    {
        return Err(
            "is link-local; VRRPv3 uses the link-local address of the interface itself".into(),
        );
    }
    Ok(Vip { addr, prefix_len })
}

/// Rules across instances: names, wire identity (interface, VRID, family), VIPs.
fn cross_checks(instances: &[Instance], e: &mut Errs) {
    let mut names = HashMap::new();
    let mut wire = HashMap::new();
    let mut vips = HashMap::new();
    for (i, inst) in instances.iter().enumerate() {
        if let Some(j) = names.insert(inst.name.clone(), i) {
            e.push(
                format!("instances[{i}].name"),
                format!("{:?} is already used by instances[{j}]", inst.name),
            );
        }
        for v4 in [true, false] {
            if inst.mode.is_bgp() || !inst.vips.iter().any(|v| v.addr.is_ipv4() == v4) {
                continue;
            }
            let key = (inst.interface.clone(), inst.vrid, v4);
            if let Some(j) = wire.insert(key, i) {
                e.push(
                    format!("instances[{i}].vrid"),
                    format!(
                        "{} on {} ({}) collides with instances[{j}]: one VRID per interface and family",
                        inst.vrid,
                        inst.interface,
                        if v4 { "IPv4" } else { "IPv6" }
                    ),
                );
            }
        }
        for v in &inst.vips {
            if let Some(j) = vips.insert(v.addr, i) {
                e.push(
                    format!("instances[{i}].vips"),
                    format!("{} is also a VIP of instances[{j}]", v.addr),
                );
            }
        }
    }
}

/// `announce:` as a word or the burst map, and the BGP-only route attributes, which an
/// `arp` instance must not carry.
fn mode(e: &mut Errs, p: &str, r: &mut raw::Instance) -> (AnnounceMode, Option<raw::Announce>) {
    let (bgp, burst) = match r.announce.take() {
        None => (false, None),
        Some(raw::AnnounceField::Burst(b)) => (false, Some(b)),
        Some(raw::AnnounceField::Mode(m)) => match m.as_str() {
            "arp" => (false, None),
            "bgp" => (true, None),
            _ => {
                e.push(
                    format!("{p}.announce"),
                    format!("{m:?} is not arp, bgp or a map {{count, interval, refresh}}"),
                );
                (false, None)
            }
        },
    };
    let communities = r.communities.take();
    let local_preference = r.local_preference.take();
    if !bgp {
        if let Some(c) = &communities {
            e.push(
                format!("{p}.communities"),
                format!("{c:?}: only with announce: bgp"),
            );
        }
        if let Some(l) = local_preference {
            e.push(
                format!("{p}.local_preference"),
                format!("{l}: only with announce: bgp"),
            );
        }
        return (AnnounceMode::Arp, burst);
    }
    let attrs = route_attrs(e, p, communities, local_preference);
    (AnnounceMode::Bgp(attrs), None)
}

/// Communities (each parsed, none twice) and LOCAL_PREF of a VIP's route. A path of
/// `bgp` or `instances[i]`; `None` fields stay unset.
fn route_attrs(
    e: &mut Errs,
    p: &str,
    communities: Option<Vec<String>>,
    local_preference: Option<i64>,
) -> BgpRouteAttrs {
    let mut out = BgpRouteAttrs::default();
    for (k, c) in communities.unwrap_or_default().iter().enumerate() {
        let path = format!("{p}.communities[{k}]");
        match Community::parse(c.trim()) {
            Ok(c) if out.communities.contains(&c) => {
                e.push(path, format!("\"{c}\" is listed twice"))
            }
            Ok(c) => out.communities.push(c),
            Err(m) => e.push(path, m),
        }
    }
    out.local_preference = local_preference.map(|l| {
        range(
            e,
            format!("{p}.local_preference"),
            Some(l),
            None,
            0,
            i64::from(u32::MAX),
        ) as u32
    });
    out
}

/// An `announce: bgp` instance runs no VRRP: its VIPs are host routes on `lo`, and the
/// fields only VRRP reads are refused rather than silently ignored.
fn bgp_instance(
    p: &str,
    r: raw::Instance,
    name: String,
    mode: AnnounceMode,
    d: &Defaults,
    e: &mut Errs,
    before: usize,
) -> Option<Instance> {
    let vrrp_only = [
        ("interface", r.interface.is_some()),
        ("vrid", r.vrid.is_some()),
        ("priority", r.priority.is_some()),
        ("version", r.version.is_some()),
        ("advert_interval", r.advert_interval.is_some()),
        ("preempt", r.preempt.is_some()),
        ("preempt_delay", r.preempt_delay.is_some()),
        ("unicast_peers", r.unicast_peers.is_some()),
        ("unicast", r.unicast.is_some()),
        ("auth_pass", r.auth_pass.is_some()),
        ("track_interfaces", !r.track_interfaces.is_empty()),
        (
            "v3_checksum_pseudo_header",
            r.v3_checksum_pseudo_header.is_some(),
        ),
        ("unicast_min_ttl", r.unicast_min_ttl.is_some()),
        ("unicast_src", r.unicast_src.is_some()),
        ("handoff", r.handoff.is_some()),
        ("strict_vip_list", r.strict_vip_list.is_some()),
    ];
    for (field, set) in vrrp_only {
        if set {
            e.push(
                format!("{p}.{field}"),
                "is a VRRP setting; announce: bgp runs no VRRP",
            );
        }
    }
    let vips = vips(e, p, &r.vips, Version::V3);
    for (k, v) in vips.iter().enumerate() {
        let host = if v.addr.is_ipv4() { 32 } else { 128 };
        if v.prefix_len != host {
            e.push(
                format!("{p}.vips[{k}]"),
                format!(
                    "\"{v}\": announce: bgp announces host routes; write {} or {}/{host}",
                    v.addr, v.addr
                ),
            );
        }
    }
    // Eligibility does not change with the mode: the same checks (a failing one withdraws
    // the routes; a weight has no priority to lower, so it is refused).
    let health_checks = match r.health_checks {
        Some(mut checks) => {
            for (k, c) in checks.iter_mut().enumerate() {
                if let Some(w) = c.weight.take() {
                    e.push(
                        format!("{p}.health_checks[{k}].weight"),
                        format!("{w}: announce: bgp has no priority; a failing check withdraws"),
                    );
                }
            }
            health_checks(p, checks, d.priority, e)
        }
        None => d.health_checks.clone(),
    };
    if r.notify.first().is_some_and(|c| c.trim().is_empty()) {
        e.push(format!("{p}.notify[0]"), "the command is empty");
    }
    if e.0.len() > before {
        return None;
    }
    Some(Instance {
        name,
        interface: "lo".into(),
        vrid: 0,
        priority: d.priority,
        version: Version::V3,
        advert_interval: d.advert_interval,
        preempt: d.preempt,
        preempt_delay: Duration::ZERO,
        vips,
        unicast_peers: Vec::new(),
        unicast: false,
        auth_pass: None,
        track_interfaces: Vec::new(),
        announce: Announce::default(),
        mode,
        v3_checksum_pseudo_header: true,
        unicast_min_ttl: 255,
        unicast_src: None,
        handoff: false,
        strict_vip_list: false,
        ineligible: None,
        health_checks,
        notify: r.notify,
    })
}

/// The `bgp:` section. Values that end up in FRR's configuration are checked to the
/// character, so the rendered text can never carry more than the field (no spaces or line
/// breaks in a password).
fn bgp(b: raw::Bgp, e: &mut Errs) -> Bgp {
    let asn = asn(e, "bgp.asn".into(), b.asn);
    let router_id = match b.router_id {
        None => {
            e.push("bgp.router_id", "is required");
            Ipv4Addr::UNSPECIFIED
        }
        Some(s) => match s.trim().parse::<Ipv4Addr>() {
            Ok(a) if !a.is_unspecified() && !a.is_multicast() && !a.is_broadcast() => a,
            _ => {
                e.push(
                    "bgp.router_id",
                    format!("{s:?} is not a unicast IPv4 address"),
                );
                Ipv4Addr::UNSPECIFIED
            }
        },
    };
    if b.peers.is_empty() {
        e.push("bgp.peers", "needs at least one peer");
    }
    let mut peers: Vec<BgpPeer> = Vec::new();
    for (k, raw) in b.peers.into_iter().enumerate() {
        let p = format!("bgp.peers[{k}]");
        let peer = bgp_peer(e, &p, raw, asn);
        if let Some(j) = peers.iter().position(|q| q.address == peer.address) {
            e.push(
                format!("{p}.address"),
                format!("{} is also bgp.peers[{j}]", peer.address),
            );
        }
        peers.push(peer);
    }
    let defaults = route_attrs(e, "bgp", Some(b.communities), b.local_preference);
    let mut abs = |field: &str, v: Option<String>| {
        v.map(|v| {
            if !v.starts_with('/') || v.contains(['\n', '\0']) {
                e.push(
                    format!("bgp.{field}"),
                    format!("{v:?} is not an absolute path"),
                );
            }
            PathBuf::from(v)
        })
    };
    let frr_config =
        abs("frr_config", b.frr_config).unwrap_or_else(|| PathBuf::from(Bgp::DEFAULT_FRR_CONFIG));
    let frr_vty_socket = abs("frr_vty_socket", b.frr_vty_socket);
    let drain_time = duration(
        e,
        "bgp.drain_time".into(),
        b.drain_time,
        Bgp::DEFAULT_DRAIN_TIME,
    );
    if drain_time > Duration::from_secs(300) {
        e.push(
            "bgp.drain_time",
            format!("{} is longer than 5m", format_duration(drain_time)),
        );
    }
    Bgp {
        asn,
        router_id,
        peers,
        defaults,
        frr_config,
        frr_vty_socket,
        drain_time,
    }
}

fn alone<T>(f: impl FnOnce(&mut Errs) -> T) -> Result<T, Vec<FieldError>> {
    let mut e = Errs(Vec::new());
    let v = f(&mut e);
    if e.0.is_empty() { Ok(v) } else { Err(e.0) }
}

pub fn peer_alone(p: &str, r: raw::BgpPeer, local_asn: u32) -> Result<BgpPeer, Vec<FieldError>> {
    alone(|e| bgp_peer(e, p, r, local_asn))
}

pub fn asn_alone(p: &str, v: i64) -> Result<u32, Vec<FieldError>> {
    alone(|e| asn(e, p.to_string(), Some(v)))
}

pub fn route_attrs_alone(
    p: &str,
    communities: Vec<String>,
    local_preference: Option<i64>,
) -> Result<BgpRouteAttrs, Vec<FieldError>> {
    alone(|e| route_attrs(e, p, Some(communities), local_preference))
}

/// 1..4294967295 without AS_TRANS (23456, RFC 6793: a placeholder, never a real AS).
fn asn(e: &mut Errs, path: String, v: Option<i64>) -> u32 {
    let a = range(e, path.clone(), v, None, 1, i64::from(u32::MAX)) as u32;
    if a == 23456 {
        e.push(path, "23456 is AS_TRANS (RFC 6793), not an AS number");
    }
    a
}

fn bgp_peer(e: &mut Errs, p: &str, r: raw::BgpPeer, local_asn: u32) -> BgpPeer {
    let address = match r.address {
        None => {
            e.push(format!("{p}.address"), "is required");
            IpAddr::V4(Ipv4Addr::UNSPECIFIED)
        }
        Some(s) => match s.trim().parse::<IpAddr>() {
            Ok(a) if !a.is_unspecified() && !a.is_multicast() && !a.is_loopback() => a,
            _ => {
                e.push(
                    format!("{p}.address"),
                    format!("{s:?} is not a unicast IP address"),
                );
                IpAddr::V4(Ipv4Addr::UNSPECIFIED)
            }
        },
    };
    let asn = asn(e, format!("{p}.asn"), r.asn);
    let port = range(
        e,
        format!("{p}.port"),
        r.port,
        Some(i64::from(Bgp::DEFAULT_PORT)),
        1,
        65535,
    ) as u16;
    let password = r.password.inspect(|pw| {
        if pw.is_empty() || pw.len() > 80 || !pw.bytes().all(|b| b.is_ascii_graphic()) {
            // Never echo the secret itself.
            e.push(
                format!("{p}.password"),
                format!(
                    "({} bytes) must be 1..80 printable ASCII characters without spaces",
                    pw.len()
                ),
            );
        }
    });
    let hold_time = whole_seconds(
        e,
        format!("{p}.hold_time"),
        r.hold_time,
        Bgp::DEFAULT_HOLD_TIME,
    );
    let hold_ok = hold_time.subsec_nanos() == 0
        && (hold_time.is_zero() || (3..=65535).contains(&hold_time.as_secs()));
    if hold_time.subsec_nanos() == 0 && !hold_ok {
        e.push(
            format!("{p}.hold_time"),
            format!(
                "{} is neither 0s (no keepalives) nor in 3s..65535s (RFC 4271)",
                format_duration(hold_time)
            ),
        );
    }
    let keepalive = whole_seconds(
        e,
        format!("{p}.keepalive"),
        r.keepalive,
        if hold_time.is_zero() {
            Duration::ZERO
        } else {
            Bgp::DEFAULT_KEEPALIVE.min(Duration::from_secs(hold_time.as_secs() / 3))
        },
    );
    if !hold_ok {
        // Reported at hold_time; the keepalive cannot be judged against it.
    } else if hold_time.is_zero() && !keepalive.is_zero() {
        e.push(
            format!("{p}.keepalive"),
            format!(
                "{}: hold_time 0s turns keepalives off",
                format_duration(keepalive)
            ),
        );
    } else if !hold_time.is_zero() && (keepalive.is_zero() || keepalive >= hold_time) {
        e.push(
            format!("{p}.keepalive"),
            format!(
                "{} must be at least 1s and below hold_time {}",
                format_duration(keepalive),
                format_duration(hold_time)
            ),
        );
    }
    let bfd = r.bfd.and_then(|b| bfd(e, &format!("{p}.bfd"), b));
    let ebgp_multihop = r.ebgp_multihop.map(|h| {
        let h = range(e, format!("{p}.ebgp_multihop"), Some(h), None, 1, 255) as u8;
        if r.asn.is_some() && asn == local_asn {
            e.push(
                format!("{p}.ebgp_multihop"),
                format!("{h}: the peer's asn {asn} is ours (iBGP), multihop is for eBGP"),
            );
        }
        h
    });
    BgpPeer {
        address,
        asn,
        port,
        password,
        hold_time,
        keepalive,
        bfd,
        ebgp_multihop,
    }
}

/// BGP timers count seconds.
fn whole_seconds(e: &mut Errs, path: String, v: Option<String>, default: Duration) -> Duration {
    let d = duration(e, path.clone(), v, default);
    if d.subsec_nanos() != 0 {
        e.push(
            path,
            format!(
                "{} is not whole seconds (BGP counts seconds)",
                format_duration(d)
            ),
        );
    }
    d
}

/// FRR's bfdd: intervals 10ms..60s in whole milliseconds, multiplier 2..255.
fn bfd(e: &mut Errs, p: &str, b: raw::Bfd) -> Option<Bfd> {
    let interval = duration(
        e,
        format!("{p}.interval"),
        b.interval.clone(),
        Bfd::DEFAULT_INTERVAL,
    );
    if !interval.subsec_nanos().is_multiple_of(1_000_000) {
        e.push(
            format!("{p}.interval"),
            format!("{} is not whole milliseconds", format_duration(interval)),
        );
    } else if interval < Duration::from_millis(10) || interval > Duration::from_secs(60) {
        e.push(
            format!("{p}.interval"),
            format!("{} is out of range 10ms..60s", format_duration(interval)),
        );
    }
    let multiplier = range(
        e,
        format!("{p}.multiplier"),
        b.multiplier,
        Some(i64::from(Bfd::DEFAULT_MULTIPLIER)),
        2,
        255,
    ) as u8;
    if b.enabled == Some(false) {
        if b.interval.is_some() || b.multiplier.is_some() {
            e.push(
                format!("{p}.enabled"),
                "false, yet interval or multiplier is set",
            );
        }
        return None;
    }
    Some(Bfd {
        interval,
        multiplier,
    })
}

/// Instances with `announce: bgp` need the `bgp:` section and, for each family of their
/// VIPs, a peer of that family (a peer carries the family of its own address).
fn bgp_instances(bgp: Option<&Bgp>, instances: &[Instance], e: &mut Errs) {
    for (i, inst) in instances.iter().enumerate() {
        if !inst.mode.is_bgp() {
            continue;
        }
        let Some(bgp) = bgp else {
            e.push(
                format!("instances[{i}].announce"),
                "bgp, but the file has no bgp: section",
            );
            continue;
        };
        if bgp.peers.is_empty() {
            continue; // reported at bgp.peers
        }
        for v in &inst.vips {
            if !bgp
                .peers
                .iter()
                .any(|p| p.address.is_ipv4() == v.addr.is_ipv4())
            {
                e.push(
                    format!("instances[{i}].vips"),
                    format!(
                        "{}: no {} peer in bgp.peers to announce it to",
                        v.addr,
                        if v.addr.is_ipv4() { "IPv4" } else { "IPv6" }
                    ),
                );
                break;
            }
        }
    }
}
