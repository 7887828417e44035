//! keepalived's statements into edgevip instances, with keepalived's defaults (VRRPv2,
//! 1 s adverts, priority 100, preempt) written out explicitly since edgevip's differ.
//!
//! Where the meaning differs the translation keeps keepalived's behaviour:
//! - A positive tracking weight (added while the interface is up / the script succeeds)
//!   becomes a higher base priority and the negated weight (subtracted while down), so the
//!   effective priority is keepalived's in every state.
//! - `notify*` scripts become one edgevip hook, a `sh -c` dispatcher on `$EDGEVIP_STATE`
//!   that runs the matching keepalived script, then `notify` with keepalived's arguments
//!   (`INSTANCE name STATE priority`).
//! - keepalived runs one address family per instance: VIPs of the other family are left
//!   out (keepalived treats them as `virtual_ipaddress_excluded`), and an IPv6 instance
//!   is VRRPv3 whatever the version says.
//!
//! Each instance is validated alone and against the ones before it; one that edgevip would
//! refuse is left out with the reasons as notes.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::time::Duration;

use super::parse::Node;
use super::{ImportError, Note, Pos};
use crate::duration::{format_duration, parse_duration};
use crate::{Defaults, Instance, raw};

pub struct Output {
    pub yaml: String,
    pub instances: usize,
}

/// A `vrrp_script` definition.
#[derive(Debug, Clone)]
struct Script {
    pos: Pos,
    command: Option<String>,
    interval: Duration,
    timeout: Option<Duration>,
    rise: i64,
    fall: i64,
    weight: i64,
}

#[derive(Debug, Clone)]
struct Check {
    name: String,
    argv: Vec<String>,
    interval: Duration,
    timeout: Duration,
    rise: i64,
    fall: i64,
    weight: i64,
}

#[derive(Debug, Clone, Default)]
struct Out {
    header: String,
    name: String,
    interface: Option<String>,
    vrid: Option<i64>,
    priority: i64,
    version: i64,
    advert: Duration,
    preempt: bool,
    preempt_delay: Option<Duration>,
    vips: Vec<String>,
    peers: Vec<String>,
    unicast_src: Option<String>,
    auth_pass: Option<String>,
    /// (interface, weight; 0 = fault)
    tracks: Vec<(String, i64)>,
    checks: Vec<Check>,
    notify: Vec<String>,
}

/// Top-level blocks edgevip has no counterpart for, and why.
fn top_level_reason(key: &str) -> &'static str {
    match key {
        "vrrp_sync_group" => {
            "sync groups are not carried over: each edgevip instance fails over on its own"
        }
        "virtual_server" | "virtual_server_group" => {
            "IPVS load balancing is not part of edgevip (Kubernetes mode forwards to Services)"
        }
        "static_ipaddress" | "static_routes" | "static_rules" => {
            "static addresses, routes and rules are not managed by edgevip"
        }
        "vrrp_track_file" | "track_file" | "vrrp_track_process" | "track_process" | "track_bfd" => {
            "this kind of tracker is not carried over (use an exec health check)"
        }
        "net_namespace" | "net_namespace_ipvs" | "instance" => {
            "edgevip runs in the namespace it is started in"
        }
        "linkbeat_use_polling" | "use_pid_dir" => "not needed by edgevip",
        _ => "not carried over",
    }
}

/// Instance keywords edgevip has no counterpart for, and why.
fn instance_reason(key: &str) -> &'static str {
    match key {
        "use_vmac" | "vmac_xmit_base" => {
            "edgevip announces the VIP with the interface's own MAC (no VMAC)"
        }
        "virtual_routes" | "virtual_rules" => "routes and rules are not managed by edgevip",
        "virtual_ipaddress_excluded" => {
            "excluded addresses are not carried over (add them to vips to advertise them)"
        }
        "track_file" | "track_process" | "track_bfd" => {
            "this kind of tracker is not carried over (use an exec health check)"
        }
        "accept" | "no_accept" => "edgevip always accepts packets to the VIP (accept mode)",
        "strict_mode" => "use strict_vip_list: true for the VIP-list check",
        "garp_master_delay"
        | "garp_master_repeat"
        | "garp_master_refresh"
        | "garp_master_refresh_repeat"
        | "garp_lower_prio_delay"
        | "garp_lower_prio_repeat"
        | "garp_interval"
        | "gna_interval" => "edgevip's announce: {count, interval, refresh} replaces this",
        "smtp_alert" | "notify_master_rx_lower_pri" | "notify_fifo" | "notify_fifo_script" => {
            "no mail or FIFO notifications: use a notify hook"
        }
        "lvs_sync_daemon_interface" => "IPVS sync is not part of edgevip",
        "debug" => "use the log level",
        "dont_track_primary" | "skip_check_adv_addr" | "check_unicast_src" => {
            "edgevip's checks are fixed"
        }
        _ => "not carried over",
    }
}

pub fn translate(
    nodes: &[Node],
    notes: &mut Vec<Note>,
    files: &[String],
) -> Result<Output, ImportError> {
    let mut default_version = 2;
    let mut scripts: HashMap<String, Script> = HashMap::new();
    let mut instances = Vec::new();
    let mut found = Vec::new();
    // Scripts and global settings first: an instance may name a script defined after it.
    for n in nodes {
        match n.key() {
            "global_defs" => {
                for c in n.children() {
                    match (c.key(), c.arg(0)) {
                        ("vrrp_version", Some(v @ ("2" | "3"))) => {
                            default_version = if v == "2" { 2 } else { 3 }
                        }
                        _ => notes.push(Note::new(
                            c.pos(),
                            format!("global_defs {}", c.key()),
                            "global setting not carried over",
                        )),
                    }
                }
            }
            "vrrp_script" => {
                if let Some(name) = n.arg(0) {
                    scripts.insert(name.to_string(), script(n, notes));
                } else {
                    notes.push(Note::new(n.pos(), "vrrp_script", "has no name: ignored"));
                }
            }
            _ => {}
        }
    }
    for n in nodes {
        match n.key() {
            "global_defs" | "vrrp_script" => {}
            "vrrp_instance" => instances.push(n),
            k => {
                found.push(k.to_string());
                let name = n
                    .args()
                    .iter()
                    .take(2)
                    .fold(k.to_string(), |s, a| format!("{s} {}", a.text));
                notes.push(Note::new(n.pos(), name, top_level_reason(k)));
            }
        }
    }
    if instances.is_empty() {
        found.dedup();
        let found = if found.is_empty() {
            "none".to_string()
        } else {
            found.join(", ")
        };
        return Err(ImportError::NoInstances(found));
    }

    let mut names = HashSet::new();
    let mut wire = HashSet::new();
    let mut vips_seen = HashSet::new();
    let mut kept: Vec<Out> = Vec::new();
    for n in instances {
        let Some(mut out) = instance(n, default_version, &scripts, notes, files) else {
            continue;
        };
        // A unique, valid name.
        let base = out.name.clone();
        let mut k = 2;
        while !names.insert(out.name.clone()) {
            let suffix = format!("-{k}");
            out.name = format!("{}{suffix}", &base[..base.len().min(32 - suffix.len())]);
            k += 1;
        }
        let raw = to_raw(&out);
        let typed = match Instance::from_raw("", raw, &Defaults::default()) {
            Ok(i) => i,
            Err(errs) => {
                for e in errs.0 {
                    notes.push(Note::new(
                        n.pos(),
                        format!("vrrp_instance {}", n.arg(0).unwrap_or("")),
                        format!(
                            "left out: edgevip refuses it: {}{}",
                            e.path.trim_start_matches('.'),
                            if e.path.is_empty() {
                                e.message
                            } else {
                                format!(": {}", e.message)
                            }
                        ),
                    ));
                }
                continue;
            }
        };
        let mut clash = None;
        for v4 in [true, false] {
            if typed.vips.iter().any(|v| v.addr.is_ipv4() == v4)
                && wire.contains(&(typed.interface.clone(), typed.vrid, v4))
            {
                clash = Some(format!(
                    "VRID {} is used twice on {} (one VRID per interface and family)",
                    typed.vrid, typed.interface
                ));
            }
        }
        if let Some(v) = typed.vips.iter().find(|v| vips_seen.contains(&v.addr)) {
            clash = Some(format!("{} is also a VIP of an earlier instance", v.addr));
        }
        if let Some(why) = clash {
            notes.push(Note::new(
                n.pos(),
                format!("vrrp_instance {}", n.arg(0).unwrap_or("")),
                format!("left out: {why}"),
            ));
            continue;
        }
        for v4 in [true, false] {
            if typed.vips.iter().any(|v| v.addr.is_ipv4() == v4) {
                wire.insert((typed.interface.clone(), typed.vrid, v4));
            }
        }
        vips_seen.extend(typed.vips.iter().map(|v| v.addr));
        kept.push(out);
    }
    if kept.is_empty() {
        let lines: Vec<String> = notes
            .iter()
            .filter(|n| n.why.starts_with("left out"))
            .map(|n| format!("line {}: {}: {}", n.pos.line, n.construct, n.why))
            .collect();
        return Err(ImportError::NothingUsable(lines.join("\n")));
    }
    let yaml = emit(&kept, files);
    if let Err(e) = crate::parse(&yaml) {
        return Err(ImportError::Internal(format!("{e}\n---\n{yaml}")));
    }
    Ok(Output {
        yaml,
        instances: kept.len(),
    })
}

/// Whole or fractional seconds, as keepalived writes intervals (`1`, `0.92`).
fn seconds(s: &str) -> Option<Duration> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return None;
    }
    parse_duration(&format!("{s}s")).ok()
}

fn int(s: Option<&str>) -> Option<i64> {
    s.and_then(|s| s.parse::<i64>().ok())
}

fn script(n: &Node, notes: &mut Vec<Note>) -> Script {
    let mut s = Script {
        pos: n.pos(),
        command: None,
        interval: Duration::from_secs(1),
        timeout: None,
        rise: 1,
        fall: 1,
        weight: 0,
    };
    for c in n.children() {
        let bad = |notes: &mut Vec<Note>| {
            notes.push(Note::new(
                c.pos(),
                c.words
                    .iter()
                    .map(|w| w.text.as_str())
                    .collect::<Vec<_>>()
                    .join(" "),
                "value not understood: keepalived's default kept",
            ))
        };
        match c.key() {
            "script" => {
                let words: Vec<&str> = c.args().iter().map(|t| t.text.as_str()).collect();
                if !words.is_empty() {
                    s.command = Some(words.join(" "));
                }
            }
            "interval" => match c.arg(0).and_then(seconds) {
                Some(d) if !d.is_zero() => s.interval = d,
                _ => bad(notes),
            },
            "timeout" => match c.arg(0).and_then(seconds) {
                Some(d) if !d.is_zero() => s.timeout = Some(d),
                _ => bad(notes),
            },
            "rise" => match int(c.arg(0)) {
                Some(v) if v >= 1 => s.rise = v,
                _ => bad(notes),
            },
            "fall" => match int(c.arg(0)) {
                Some(v) if v >= 1 => s.fall = v,
                _ => bad(notes),
            },
            "weight" => match int(c.arg(0)) {
                Some(v) if (-254..=254).contains(&v) => {
                    s.weight = v;
                    if c.arg(1) == Some("reverse") {
                        notes.push(Note::new(
                            c.pos(),
                            "weight ... reverse",
                            "reverse weights are not carried over: the weight applies as usual",
                        ));
                    }
                }
                _ => bad(notes),
            },
            k => notes.push(Note::new(
                c.pos(),
                format!("vrrp_script {k}"),
                match k {
                    "user" => "health checks run as edgevip's user",
                    "init_fail" => "edgevip checks start healthy until `fall` failures",
                    _ => "not carried over",
                },
            )),
        }
    }
    s
}

/// Characters that make keepalived's script a shell command line (keepalived itself does
/// not use a shell; such scripts only work when run through one).
fn needs_shell(cmd: &str) -> bool {
    cmd.contains([
        '|', '&', ';', '<', '>', '(', ')', '$', '`', '*', '?', '~', '\n',
    ])
}

/// Splits a command line as keepalived does: blanks separate, quotes group.
fn split_command(cmd: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quote = None;
    let mut any = false;
    for c in cmd.chars() {
        match (quote, c) {
            (None, '\'' | '"') => {
                quote = Some(c);
                any = true;
            }
            (Some(q), c) if c == q => quote = None,
            (None, ' ' | '\t') => {
                if any || !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                    any = false;
                }
            }
            (_, c) => cur.push(c),
        }
    }
    if any || !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// argv for a keepalived command line: its words, or `/bin/sh -c LINE` when it needs a
/// shell (noted).
fn argv(cmd: &str, pos: Pos, notes: &mut Vec<Note>) -> Vec<String> {
    if needs_shell(cmd) {
        notes.push(Note::new(
            pos,
            cmd.to_string(),
            "shell syntax: run with /bin/sh -c",
        ));
        vec!["/bin/sh".into(), "-c".into(), cmd.into()]
    } else {
        split_command(cmd)
    }
}

fn sh_quote(s: &str) -> String {
    if !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/._-=:,+@%".contains(&b))
    {
        return s.to_string();
    }
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// A keepalived command line as a piece of a shell script.
fn sh_command(cmd: &str) -> String {
    if needs_shell(cmd) {
        format!("/bin/sh -c {}", sh_quote(cmd))
    } else {
        split_command(cmd)
            .iter()
            .map(|w| sh_quote(w))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// edgevip names: `[a-z0-9-]`, at most 32 characters.
fn edgevip_name(name: &str) -> String {
    let mut s: String = name
        .chars()
        .map(|c| match c.to_ascii_lowercase() {
            c @ ('a'..='z' | '0'..='9') => c,
            _ => '-',
        })
        .collect();
    s.truncate(28);
    let s = s.trim_matches('-').to_string();
    if s.is_empty() { "vrrp".into() } else { s }
}

fn instance(
    n: &Node,
    default_version: i64,
    scripts: &HashMap<String, Script>,
    notes: &mut Vec<Note>,
    files: &[String],
) -> Option<Out> {
    let kname = n.arg(0).unwrap_or("").to_string();
    let construct = format!("vrrp_instance {kname}");
    if n.block.is_none() {
        notes.push(Note::new(n.pos(), construct, "left out: has no { } block"));
        return None;
    }
    let mut o = Out {
        header: format!(
            "keepalived vrrp_instance {kname} ({}:{})",
            files.get(n.pos().file).map_or("?", String::as_str),
            n.pos().line
        ),
        name: edgevip_name(&kname),
        priority: 100,
        version: default_version,
        advert: Duration::from_secs(1),
        preempt: true,
        ..Out::default()
    };
    let mut version_pos = None;
    let mut vip_nodes: Vec<&Node> = Vec::new();
    let mut notify: Vec<(&str, String, Pos)> = Vec::new();
    let mut advert_raw = None;
    let mut auth: Option<(Pos, Option<String>, Option<String>)> = None;
    let mut track_scripts: Vec<(&Node, Option<i64>)> = Vec::new();
    let mut native_ipv6 = false;
    for c in n.children() {
        let pos = c.pos();
        let bad = |notes: &mut Vec<Note>| {
            notes.push(Note::new(
                pos,
                c.words
                    .iter()
                    .map(|w| w.text.as_str())
                    .collect::<Vec<_>>()
                    .join(" "),
                "value not understood: ignored",
            ))
        };
        match c.key() {
            "state" => {
                if c.arg(0) == Some("MASTER") {
                    notes.push(Note::new(
                        pos,
                        "state MASTER",
                        "edgevip starts every instance as backup (RFC 9568): the priority elects the master",
                    ));
                }
            }
            "interface" => match c.arg(0) {
                Some(i) => o.interface = Some(i.to_string()),
                None => bad(notes),
            },
            "virtual_router_id" => match int(c.arg(0)) {
                Some(v) => o.vrid = Some(v),
                None => bad(notes),
            },
            "priority" => match int(c.arg(0)) {
                Some(v) => o.priority = v,
                None => bad(notes),
            },
            "advert_int" => match c.arg(0).and_then(seconds) {
                Some(d) => advert_raw = Some((d, pos)),
                None => bad(notes),
            },
            "version" => match c.arg(0) {
                Some("2") => (o.version, version_pos) = (2, Some(pos)),
                Some("3") => (o.version, version_pos) = (3, Some(pos)),
                _ => bad(notes),
            },
            "nopreempt" => o.preempt = false,
            "preempt" => o.preempt = true,
            "preempt_delay" => match c.arg(0).and_then(seconds) {
                Some(d) => o.preempt_delay = Some(d),
                None => bad(notes),
            },
            "native_ipv6" => native_ipv6 = true,
            "virtual_ipaddress" => vip_nodes.extend(c.children()),
            "unicast_src_ip" | "mcast_src_ip" => match c.arg(0) {
                Some(a) if a.parse::<std::net::Ipv4Addr>().is_ok() => {
                    o.unicast_src = Some(a.to_string())
                }
                Some(a) => notes.push(Note::new(
                    pos,
                    format!("{} {a}", c.key()),
                    "only an IPv4 source is configurable (IPv6 adverts come from the link-local address)",
                )),
                None => bad(notes),
            },
            "unicast_peer" => {
                for p in c.children() {
                    if p.key().parse::<IpAddr>().is_err() {
                        notes.push(Note::new(
                            p.pos(),
                            p.key().to_string(),
                            "not an IP address: peer left out",
                        ));
                        continue;
                    }
                    if !p.args().is_empty() {
                        notes.push(Note::new(
                            p.pos(),
                            format!("unicast_peer {} {}", p.key(), p.arg(0).unwrap_or("")),
                            "per-peer options (min_ttl/max_ttl) are not carried over",
                        ));
                    }
                    o.peers.push(p.key().to_string());
                }
            }
            "authentication" => {
                let mut t = None;
                let mut pass = None;
                for a in c.children() {
                    match a.key() {
                        "auth_type" => t = a.arg(0).map(str::to_string),
                        "auth_pass" => pass = a.arg(0).map(str::to_string),
                        k => notes.push(Note::new(a.pos(), k.to_string(), "not carried over")),
                    }
                }
                auth = Some((pos, t, pass));
            }
            "track_interface" => {
                for t in c.children() {
                    let weight = match (t.arg(0), t.arg(1)) {
                        (None, _) => 0,
                        (Some("weight"), Some(w)) => match w.parse::<i64>() {
                            Ok(w) if (-254..=254).contains(&w) => w,
                            _ => {
                                notes.push(Note::new(t.pos(), format!("weight {w}"), "not a weight -254..254: tracking without weight (fault)"));
                                0
                            }
                        },
                        _ => {
                            notes.push(Note::new(t.pos(), t.key().to_string(), "options not understood: tracking without weight (fault)"));
                            0
                        }
                    };
                    if t.arg(2) == Some("reverse") {
                        notes.push(Note::new(
                            t.pos(),
                            format!("{} weight ... reverse", t.key()),
                            "reverse tracking is not carried over: interface left out",
                        ));
                        continue;
                    }
                    o.tracks.push((t.key().to_string(), weight));
                }
            }
            "track_script" => {
                for t in c.children() {
                    let w = match (t.arg(0), t.arg(1)) {
                        (Some("weight"), Some(w)) => match w.parse::<i64>() {
                            Ok(w) if (-254..=254).contains(&w) => Some(w),
                            _ => {
                                notes.push(Note::new(t.pos(), format!("weight {w}"), "not a weight -254..254: the script's own kept"));
                                None
                            }
                        },
                        _ => None,
                    };
                    if t.arg(2) == Some("reverse") {
                        notes.push(Note::new(
                            t.pos(),
                            format!("{} weight ... reverse", t.key()),
                            "reverse weights are not carried over: the weight applies as usual",
                        ));
                    }
                    track_scripts.push((t, w));
                }
            }
            k @ ("notify_master" | "notify_backup" | "notify_fault" | "notify_stop"
            | "notify") => {
                // `notify_master <script> [user [group]]`: a script with arguments is one
                // quoted word; words after it name the user keepalived runs it as.
                match c.args() {
                    [] => bad(notes),
                    [script, user @ ..] => {
                        if !user.is_empty() {
                            let user: Vec<&str> = user.iter().map(|t| t.text.as_str()).collect();
                            notes.push(Note::new(
                                pos,
                                format!("{k} ... {}", user.join(" ")),
                                "the user to run as is not carried over: hooks run as edgevip's user",
                            ));
                        }
                        notify.push((k, script.text.clone(), pos));
                    }
                }
            }
            k => notes.push(Note::new(pos, k.to_string(), instance_reason(k))),
        }
    }

    // Addresses: one family per instance, as keepalived runs them.
    let mut seen = HashSet::new();
    let mut family_v6: Option<bool> = if native_ipv6 { Some(true) } else { None };
    for v in vip_nodes {
        let pos = v.pos();
        let addr_text = v.key();
        let ip = addr_text.split('/').next().unwrap_or("");
        let Ok(ip) = ip.parse::<IpAddr>() else {
            notes.push(Note::new(
                pos,
                addr_text.to_string(),
                "not an IP address: left out",
            ));
            continue;
        };
        let v6 = ip.is_ipv6();
        let fam = *family_v6.get_or_insert(v6);
        let mut ok = true;
        let mut args = v.args().iter().map(|t| t.text.as_str());
        while let Some(opt) = args.next() {
            match opt {
                "dev" => {
                    let dev = args.next().unwrap_or("");
                    if o.interface.as_deref().is_some_and(|i| i != dev) {
                        notes.push(Note::new(
                            pos,
                            format!("{addr_text} dev {dev}"),
                            "a VIP on another interface than the instance's is not carried over: left out",
                        ));
                        ok = false;
                    }
                }
                "label" => {
                    let l = args.next().unwrap_or("");
                    notes.push(Note::new(
                        pos,
                        format!("{addr_text} label {l}"),
                        "address labels are not set: the address is kept",
                    ));
                }
                "scope" if args.clone().next() == Some("global") => {
                    args.next();
                }
                "scope" | "brd" | "broadcast" | "preferred_lft" | "track_group" => {
                    let x = args.next().unwrap_or("");
                    notes.push(Note::new(
                        pos,
                        format!("{addr_text} {opt} {x}"),
                        "not carried over: the address is kept",
                    ));
                }
                o2 => notes.push(Note::new(
                    pos,
                    format!("{addr_text} {o2}"),
                    "address option not carried over: the address is kept",
                )),
            }
        }
        if !ok {
            continue;
        }
        if v6 != fam {
            notes.push(Note::new(
                pos,
                addr_text.to_string(),
                "keepalived runs one address family per instance (this one it excludes from adverts): left out",
            ));
            continue;
        }
        if !seen.insert(ip) {
            notes.push(Note::new(
                pos,
                addr_text.to_string(),
                "listed twice: kept once",
            ));
            continue;
        }
        o.vips.push(addr_text.to_string());
    }
    let ipv6 = family_v6 == Some(true);
    if ipv6 && o.version == 2 {
        if let Some(p) = version_pos {
            notes.push(Note::new(
                p,
                "version 2",
                "IPv6 needs VRRPv3 (keepalived switches too): version 3",
            ));
        }
        o.version = 3;
    }

    // Advert interval in the version's units.
    let advert = advert_raw.map(|(d, _)| d).unwrap_or(Duration::from_secs(1));
    o.advert = if o.version == 2 {
        let secs = (advert.as_millis() + 500) / 1000;
        let fixed = Duration::from_secs(secs.clamp(1, 255) as u64);
        if fixed != advert
            && let Some((_, p)) = advert_raw
        {
            notes.push(Note::new(
                p,
                format!("advert_int {}", format_duration(advert)),
                format!(
                    "VRRPv2 counts whole seconds 1..255: {}",
                    format_duration(fixed)
                ),
            ));
        }
        fixed
    } else {
        let cs = (advert.as_millis() + 5) / 10;
        let fixed = Duration::from_millis((cs.clamp(1, 4095) * 10) as u64);
        if fixed != advert
            && let Some((_, p)) = advert_raw
        {
            notes.push(Note::new(
                p,
                format!("advert_int {}", format_duration(advert)),
                format!(
                    "VRRPv3 counts centiseconds 10ms..40.95s: {}",
                    format_duration(fixed)
                ),
            ));
        }
        fixed
    };

    // Authentication: VRRPv2 simple password only.
    if let Some((p, t, pass)) = auth {
        match (o.version, t.as_deref(), pass) {
            (2, Some("PASS") | None, Some(mut pw)) if !pw.is_empty() => {
                if pw.len() > 8 {
                    let mut cut = 8;
                    while !pw.is_char_boundary(cut) {
                        cut -= 1;
                    }
                    pw.truncate(cut);
                    notes.push(Note::new(
                        p,
                        "auth_pass",
                        "longer than 8 bytes: truncated to 8, as keepalived does",
                    ));
                }
                o.auth_pass = Some(pw);
            }
            (2, Some(t), _) if t != "PASS" => notes.push(Note::new(
                p,
                format!("auth_type {t}"),
                "only PASS is supported: authentication left out (the peers will disagree)",
            )),
            (3, ..) => notes.push(Note::new(
                p,
                "authentication",
                "VRRPv3 has no authentication (keepalived ignores it too): left out",
            )),
            _ => notes.push(Note::new(p, "authentication", "no password: left out")),
        }
    }
    if let Some(d) = o.preempt_delay {
        if !o.preempt {
            o.preempt_delay = None;
        } else if d > Duration::from_secs(1000) {
            o.preempt_delay = Some(Duration::from_secs(1000));
        }
    }

    // Health checks from track_script.
    for (t, w) in track_scripts {
        let name = t.key();
        let Some(s) = scripts.get(name) else {
            notes.push(Note::new(
                t.pos(),
                format!("track_script {name}"),
                "no vrrp_script of that name: left out",
            ));
            continue;
        };
        let Some(cmd) = &s.command else {
            notes.push(Note::new(
                s.pos,
                format!("vrrp_script {name}"),
                "has no script line: not tracked",
            ));
            continue;
        };
        let interval = s
            .interval
            .clamp(Duration::from_millis(10), Duration::from_secs(300));
        let timeout = s
            .timeout
            .unwrap_or(s.interval)
            .clamp(Duration::from_millis(10), Duration::from_secs(300));
        if interval != s.interval || Some(timeout) != s.timeout.or(Some(s.interval)) {
            notes.push(Note::new(
                s.pos,
                format!("vrrp_script {name}"),
                "interval/timeout limited to 10ms..300s",
            ));
        }
        if o.checks.iter().any(|c| c.name == name) {
            continue;
        }
        o.checks.push(Check {
            name: name.to_string(),
            argv: argv(cmd, s.pos, notes),
            interval,
            timeout,
            rise: s.rise.min(100),
            fall: s.fall.min(100),
            weight: w.unwrap_or(s.weight),
        });
    }

    // Positive weights: keepalived adds them while up; edgevip subtracts while down.
    let positive: i64 = o
        .tracks
        .iter()
        .map(|t| t.1)
        .chain(o.checks.iter().map(|c| c.weight))
        .filter(|w| *w > 0)
        .sum();
    if o.priority == 255 {
        if o.tracks.iter().any(|t| t.1 != 0) || o.checks.iter().any(|c| c.weight != 0) {
            notes.push(Note::new(n.pos(), construct.clone(), "the address owner (priority 255) never changes priority: weights dropped, a failure faults the instance"));
        }
        o.tracks.iter_mut().for_each(|t| t.1 = 0);
        o.checks.iter_mut().for_each(|c| c.weight = 0);
    } else if positive > 0 {
        let base = o.priority + positive;
        if base > 254 {
            notes.push(Note::new(n.pos(), construct.clone(), format!("priority {} plus positive weights {positive} exceeds 254: the base priority is 254", o.priority)));
        }
        o.priority = base.min(254);
        o.tracks
            .iter_mut()
            .filter(|t| t.1 > 0)
            .for_each(|t| t.1 = -t.1);
        o.checks
            .iter_mut()
            .filter(|c| c.weight > 0)
            .for_each(|c| c.weight = -c.weight);
    }

    if !notify.is_empty() {
        o.notify = notify_hook(&kname, o.priority, &notify);
    }
    Some(o)
}

/// One `sh -c` hook that does what keepalived's notify scripts did.
fn notify_hook(kname: &str, priority: i64, scripts: &[(&str, String, Pos)]) -> Vec<String> {
    let mut s = String::from(
        "case \"$EDGEVIP_STATE\" in master) S=MASTER ;; backup) S=BACKUP ;; fault) S=FAULT ;; *) S=STOP ;; esac\n",
    );
    for (state, key) in [
        ("MASTER", "notify_master"),
        ("BACKUP", "notify_backup"),
        ("FAULT", "notify_fault"),
        ("STOP", "notify_stop"),
    ] {
        for (k, cmd, _) in scripts {
            if *k == key {
                s.push_str(&format!(
                    "if [ \"$S\" = {state} ]; then {}; fi\n",
                    sh_command(cmd)
                ));
            }
        }
    }
    for (k, cmd, _) in scripts {
        if *k == "notify" {
            s.push_str(&format!(
                "{} INSTANCE {} \"$S\" {priority}\n",
                sh_command(cmd),
                sh_quote(kname)
            ));
        }
    }
    vec!["/bin/sh".into(), "-c".into(), s, "edgevip-notify".into()]
}

fn to_raw(o: &Out) -> raw::Instance {
    raw::Instance {
        name: Some(o.name.clone()),
        interface: o.interface.clone(),
        vrid: o.vrid,
        priority: Some(o.priority),
        version: Some(o.version),
        advert_interval: Some(format_duration(o.advert)),
        preempt: Some(o.preempt),
        preempt_delay: o.preempt_delay.map(format_duration),
        vips: o.vips.clone(),
        unicast_peers: Some(o.peers.clone()),
        unicast_src: o.unicast_src.clone(),
        auth_pass: o.auth_pass.clone(),
        track_interfaces: o
            .tracks
            .iter()
            .map(|(name, w)| raw::Track {
                name: Some(name.clone()),
                weight: (*w != 0).then_some(*w),
            })
            .collect(),
        health_checks: Some(
            o.checks
                .iter()
                .map(|c| raw::HealthCheck {
                    name: Some(c.name.clone()),
                    http: None,
                    tcp: None,
                    exec: Some(c.argv.clone()),
                    interval: Some(format_duration(c.interval)),
                    timeout: Some(format_duration(c.timeout)),
                    rise: Some(c.rise),
                    fall: Some(c.fall),
                    weight: (c.weight != 0).then_some(c.weight),
                })
                .collect(),
        ),
        notify: o.notify.clone(),
        ..raw::Instance::default()
    }
}

/// A YAML double-quoted scalar.
fn q(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn list(items: &[String]) -> String {
    format!(
        "[{}]",
        items.iter().map(|s| q(s)).collect::<Vec<_>>().join(", ")
    )
}

fn emit(instances: &[Out], files: &[String]) -> String {
    let mut y = format!(
        "# Imported from keepalived ({}) by `edgevip import keepalived`.\n# What was not carried over is listed on stderr with its line.\napi:\n  listen: 127.0.0.1:9180\ninstances:\n",
        files.first().map_or("-", String::as_str)
    );
    for o in instances {
        y.push_str(&format!("  # {}\n", o.header.replace('\n', " ")));
        y.push_str(&format!("  - name: {}\n", q(&o.name)));
        y.push_str(&format!(
            "    interface: {}\n",
            q(o.interface.as_deref().unwrap_or(""))
        ));
        y.push_str(&format!("    vrid: {}\n", o.vrid.unwrap_or(0)));
        y.push_str(&format!("    priority: {}\n", o.priority));
        y.push_str(&format!("    version: {}\n", o.version));
        y.push_str(&format!(
            "    advert_interval: {}\n",
            format_duration(o.advert)
        ));
        y.push_str(&format!("    preempt: {}\n", o.preempt));
        if let Some(d) = o.preempt_delay {
            y.push_str(&format!("    preempt_delay: {}\n", format_duration(d)));
        }
        y.push_str(&format!("    vips: {}\n", list(&o.vips)));
        y.push_str(&format!("    unicast_peers: {}\n", list(&o.peers)));
        if let Some(s) = &o.unicast_src {
            y.push_str(&format!("    unicast_src: {}\n", q(s)));
        }
        if let Some(a) = &o.auth_pass {
            y.push_str(&format!("    auth_pass: {}\n", q(a)));
        }
        if !o.tracks.is_empty() {
            y.push_str("    track_interfaces:\n");
            for (name, w) in &o.tracks {
                if *w == 0 {
                    y.push_str(&format!("      - {{name: {}}}\n", q(name)));
                } else {
                    y.push_str(&format!("      - {{name: {}, weight: {w}}}\n", q(name)));
                }
            }
        }
        if !o.checks.is_empty() {
            y.push_str("    health_checks:\n");
            for c in &o.checks {
                y.push_str(&format!("      - name: {}\n", q(&c.name)));
                y.push_str(&format!("        exec: {}\n", list(&c.argv)));
                y.push_str(&format!(
                    "        interval: {}\n        timeout: {}\n        rise: {}\n        fall: {}\n",
                    format_duration(c.interval),
                    format_duration(c.timeout),
                    c.rise,
                    c.fall
                ));
                if c.weight != 0 {
                    y.push_str(&format!("        weight: {}\n", c.weight));
                }
            }
        }
        if !o.notify.is_empty() {
            y.push_str(&format!("    notify: {}\n", list(&o.notify)));
        }
    }
    y
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_lines_split_like_keepalived() {
        assert_eq!(
            split_command("/bin/x  a 'b c' \"d\""),
            vec!["/bin/x", "a", "b c", "d"]
        );
        assert!(needs_shell("</dev/tcp/127.0.0.1/80"));
        assert!(!needs_shell("killall -0 sshd"));
        assert_eq!(sh_quote("it's"), "'it'\\''s'");
        assert_eq!(edgevip_name("VI_1"), "vi-1");
        assert_eq!(edgevip_name("__"), "vrrp");
    }

    #[test]
    fn the_notify_hook_runs_keepalived_scripts_for_the_state() {
        let pos = Pos { file: 0, line: 1 };
        let argv = notify_hook(
            "VI_1",
            150,
            &[
                ("notify_master", "echo 'became master'".into(), pos),
                ("notify_backup", "echo backup".into(), pos),
                ("notify", "echo generic".into(), pos),
            ],
        );
        let run = |state: &str| {
            let out = std::process::Command::new(&argv[0])
                .args(&argv[1..])
                .env("EDGEVIP_STATE", state)
                .output()
                .expect("sh");
            assert!(out.status.success());
            String::from_utf8(out.stdout).unwrap()
        };
        assert_eq!(
            run("master"),
            "became master\ngeneric INSTANCE VI_1 MASTER 150\n"
        );
        assert_eq!(run("backup"), "backup\ngeneric INSTANCE VI_1 BACKUP 150\n");
        assert_eq!(run("init"), "generic INSTANCE VI_1 STOP 150\n");
    }

    #[test]
    fn yaml_strings_are_escaped() {
        assert_eq!(q("a\"b\\c\nd"), "\"a\\\"b\\\\c\\nd\"");
    }
}
