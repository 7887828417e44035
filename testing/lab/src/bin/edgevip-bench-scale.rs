//! The scale benchmark (issue 8): two hosts on the namespace lab, N instances (one VIP each)
//! at 100 ms adverts, host 0 master of all (priority 150), host 1 backup of all (100);
//! keepalived 2.2.7 and edgevip in the same run, interleaved, each on a fresh lab. Prints
//! master and backup CPU seconds per minute and PSS (all processes of the daemon; shared
//! pages counted once), with edgevip / keepalived.
//!
//! Usage: edgevip-bench-scale [--edgevip PATH] [--quick] [--smoke] [--instances 50,255]
//!        [--rounds N] [--secs S]                                  (as root; `bench/scale`)
//! `--quick`: 1 round of 10 s. `--smoke`: 10 instances, 1 round of 3 s, fails (exit 1) if
//! the roles do not settle: a short check for CI, not a measurement.

use std::collections::HashSet;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use edgevip_lab::procstat::{cpu_total, daemon_pids, pss_mib, stats};
use edgevip_lab::{Cluster, KeepalivedConf, Node};

#[derive(Clone, Copy, PartialEq)]
enum Impl {
    Keepalived,
    Edgevip,
}

impl Impl {
    fn comm(self) -> &'static str {
        match self {
            Impl::Keepalived => "keepalived",
            Impl::Edgevip => "edgevip",
        }
    }
}

struct Args {
    bin: PathBuf,
    sizes: Vec<usize>,
    rounds: usize,
    secs: u64,
    smoke: bool,
}

fn args() -> Args {
    let mut out = Args {
        bin: std::env::current_exe()
            .expect("own path")
            .with_file_name("edgevip"),
        sizes: vec![50, 255],
        rounds: 3,
        secs: 30,
        smoke: false,
    };
    let mut a = std::env::args().skip(1);
    let num = |v: Option<String>, what: &str| -> u64 {
        v.and_then(|n| n.parse().ok())
            .filter(|n| *n > 0)
            .unwrap_or_else(|| panic!("{what} needs a positive number"))
    };
    while let Some(x) = a.next() {
        match x.as_str() {
            "--edgevip" => out.bin = a.next().expect("--edgevip PATH").into(),
            "--quick" => {
                out.rounds = 1;
                out.secs = 10;
            }
            "--smoke" => {
                out.sizes = vec![10];
                out.rounds = 1;
                out.secs = 3;
                out.smoke = true;
            }
            "--instances" => {
                out.sizes = a
                    .next()
                    .expect("--instances N[,M…]")
                    .split(',')
                    .map(|n| n.parse().expect("--instances: numbers 1..=255"))
                    .collect();
                assert!(
                    out.sizes.iter().all(|n| (1..=255).contains(n)),
                    "--instances: numbers 1..=255"
                );
            }
            "--rounds" => out.rounds = num(a.next(), "--rounds") as usize,
            "--secs" => out.secs = num(a.next(), "--secs"),
            other => panic!("unknown argument {other}"),
        }
    }
    out
}

/// What one daemon pair cost over the measured window.
#[derive(Clone, Copy)]
struct Cost {
    master_cpu: f64,
    backup_cpu: f64,
    master_pss: f64,
    backup_pss: f64,
}

fn main() {
    edgevip_lab::cleanup_on_panic();
    let a = args();
    assert!(
        a.bin.exists(),
        "{} not found: cargo build --release",
        a.bin.display()
    );
    if !edgevip_lab::keepalived_available() {
        eprintln!("keepalived is not installed: apt-get install keepalived");
        std::process::exit(1);
    }
    println!(
        "edgevip {} vs keepalived 2.2.7: 2 hosts, N instances at 100 ms (VRRPv3), host 0 master",
        a.bin.display()
    );
    println!(
        "of all, host 1 backup of all; {} round(s) of {} s per daemon and N, interleaved; each",
        a.rounds, a.secs
    );
    println!("cell the median (max) over rounds. CPU = user + system of all daemon processes.\n");
    println!(
        "| instances | daemon | master CPU s/min | backup CPU s/min | master PSS MiB | backup PSS MiB |"
    );
    println!("|---|---|---|---|---|---|");
    for &n in &a.sizes {
        let mut costs: [Vec<Cost>; 2] = [Vec::new(), Vec::new()];
        let mut failed = [0usize; 2];
        for _ in 0..a.rounds {
            for (k, which) in [Impl::Keepalived, Impl::Edgevip].into_iter().enumerate() {
                match measure(&a.bin, which, n, a.secs) {
                    Ok(c) => {
                        eprintln!(
                            "{} with {n} instances: master {:.2} s/min, backup {:.2} s/min, PSS {:.2} / {:.2} MiB",
                            which.comm(),
                            c.master_cpu,
                            c.backup_cpu,
                            c.master_pss,
                            c.backup_pss
                        );
                        costs[k].push(c);
                    }
                    Err(e) => {
                        // A round that fails is reported, not averaged in; the smoke run
                        // fails outright.
                        eprintln!("{} with {n} instances: {e}", which.comm());
                        if a.smoke {
                            std::process::exit(1);
                        }
                        failed[k] += 1;
                    }
                }
            }
        }
        for (k, name) in ["keepalived", "edgevip"].iter().enumerate() {
            if failed[k] > 0 {
                println!(
                    "| {n} | {name}: {} of {} rounds did not settle (see stderr) | | | | |",
                    failed[k], a.rounds
                );
            }
        }
        let col = |v: &[Cost], f: fn(&Cost) -> f64| stats(&v.iter().map(f).collect::<Vec<_>>());
        let cell = |s: (f64, f64, f64)| {
            if a.rounds > 1 {
                format!("{:.2} ({:.2})", s.0, s.1)
            } else {
                format!("{:.2}", s.0)
            }
        };
        let fields: [fn(&Cost) -> f64; 4] = [
            |c| c.master_cpu,
            |c| c.backup_cpu,
            |c| c.master_pss,
            |c| c.backup_pss,
        ];
        let mut med = [[0.0; 4]; 2];
        for (k, name) in ["keepalived 2.2.7", "edgevip"].iter().enumerate() {
            if costs[k].is_empty() {
                continue;
            }
            let cells: Vec<String> = fields
                .iter()
                .enumerate()
                .map(|(j, f)| {
                    let s = col(&costs[k], *f);
                    med[k][j] = s.0;
                    cell(s)
                })
                .collect();
            println!("| {n} | {name} | {} |", cells.join(" | "));
        }
        if costs.iter().any(Vec::is_empty) {
            continue;
        }
        let ratios: Vec<String> = (0..4)
            .map(|j| {
                if med[0][j] > 0.0 {
                    format!("{:.2}", med[1][j] / med[0][j])
                } else {
                    "— (keepalived measured 0)".into()
                }
            })
            .collect();
        println!("| {n} | edgevip / keepalived | {} |", ratios.join(" | "));
    }
}

/// The VIP of instance `k` (0-based, up to 255 instances), configured as a /32: with a
/// shared /24 the first VIP would be the subnet's primary address, and removing it (one
/// instance stepping down) would make the kernel drop every other VIP of the subnet.
fn vip(k: usize) -> Ipv4Addr {
    if k < 254 {
        Ipv4Addr::new(198, 51, 100, k as u8 + 1)
    } else {
        Ipv4Addr::new(203, 0, 113, (k - 253) as u8)
    }
}

fn edgevip_yaml(n: usize, priority: u8) -> String {
    let mut y = format!("api:\n  listen: {}\ninstances:\n", edgevip_lab::API);
    for k in 0..n {
        let v = format!("{}/32", vip(k));
        let vips = [v.as_str()];
        let name = format!("vi-{k}");
        y.push_str(
            &Node {
                name: &name,
                vrid: k as u8 + 1,
                priority,
                vips: &vips,
                ..Node::default()
            }
            .instance(),
        );
    }
    y
}

fn ka_confs(n: usize, priority: u8) -> Vec<KeepalivedConf> {
    (0..n)
        .map(|k| KeepalivedConf {
            vrid: k as u8 + 1,
            priority,
            advert_int: 0.1,
            version: 3,
            vips: vec![format!("{}/32", vip(k))],
            unicast_peers: vec![],
            unicast_src: None,
            auth_pass: None,
            preempt: true,
        })
        .collect()
}

/// How many of the first `n` VIPs host namespace `ns` holds.
fn held(ns: &str, n: usize) -> usize {
    let want: HashSet<String> = (0..n).map(|k| vip(k).to_string()).collect();
    let out = std::process::Command::new("ip")
        .args(["-n", ns, "-o", "-4", "addr", "show", "dev", "eth0"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    out.lines()
        .filter_map(|l| l.split_whitespace().skip_while(|w| *w != "inet").nth(1))
        .filter_map(|a| a.split('/').next())
        .filter(|a| want.contains(*a))
        .count()
}

fn measure(bin: &std::path::Path, which: Impl, n: usize, secs: u64) -> Result<Cost, String> {
    let mut c = Cluster::new("bench-scale", 2, false, bin).ok_or("lab cannot run here")?;
    for (host, prio) in [(0, 150u8), (1, 100)] {
        match which {
            Impl::Edgevip => c.start(host, &edgevip_yaml(n, prio)),
            Impl::Keepalived => c.start_keepalived_many(host, &ka_confs(n, prio)),
        }
    }
    let ns: Vec<String> = (0..2).map(|i| c.lab.host(i).ns.clone()).collect();
    let settled = |c: &Cluster| held(&c.lab.host(0).ns, n) == n && held(&c.lab.host(1).ns, n) == 0;
    let t = Instant::now();
    while !settled(&c) {
        if t.elapsed() > Duration::from_secs(120) {
            return Err(format!(
                "roles did not settle in 120 s: host 0 holds {}, host 1 {} of {n} VIPs\n{}",
                held(&ns[0], n),
                held(&ns[1], n),
                logs(&c, which)
            ));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    // Past the start-up work (elections, gratuitous ARPs).
    std::thread::sleep(Duration::from_secs(2));
    let pids: Vec<Vec<u32>> = ns.iter().map(|s| daemon_pids(s, which.comm())).collect();
    if pids.iter().any(Vec::is_empty) {
        return Err(format!("no {} process found", which.comm()));
    }
    let before: Vec<f64> = pids.iter().map(|p| cpu_total(p)).collect();
    let t0 = Instant::now();
    std::thread::sleep(Duration::from_secs(secs));
    let after: Vec<f64> = pids.iter().map(|p| cpu_total(p)).collect();
    let window = t0.elapsed().as_secs_f64();
    let pss: Vec<f64> = pids.iter().map(|p| pss_mib(p)).collect();
    if !settled(&c) {
        return Err(format!(
            "roles moved during the measurement: host 0 holds {}, host 1 {} of {n} VIPs",
            held(&ns[0], n),
            held(&ns[1], n)
        ));
    }
    if pids
        .iter()
        .zip(&ns)
        .any(|(p, s)| daemon_pids(s, which.comm()) != *p)
    {
        return Err(format!(
            "{} processes changed during the measurement",
            which.comm()
        ));
    }
    let per_min = |i: usize| (after[i] - before[i]) * 60.0 / window;
    Ok(Cost {
        master_cpu: per_min(0),
        backup_cpu: per_min(1),
        master_pss: pss[0],
        backup_pss: pss[1],
    })
}

/// The tail of each host's daemon log.
fn logs(c: &Cluster, which: Impl) -> String {
    match which {
        Impl::Edgevip => c.logs(),
        Impl::Keepalived => (0..2)
            .map(|i| {
                let f = c.dir().join(format!("keepalived-{}.log", c.lab.host(i).ns));
                let t = std::fs::read_to_string(f).unwrap_or_default();
                let tail: Vec<&str> = t.lines().rev().take(30).collect();
                format!(
                    "--- host{i} keepalived log (last lines) ---\n{}\n",
                    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                )
            })
            .collect(),
    }
}
