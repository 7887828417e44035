//! The failover benchmark: the same scenarios against keepalived 2.2.7 and edgevip in one
//! run, on the namespace lab, with the client's prober measuring the longest gap; then idle
//! RSS and CPU with 50 instances at 100 ms. Prints a table with the ratios.
//!
//! Usage: edgevip-bench [--edgevip PATH] [--quick]   (as root; `bench/failover` wraps it)

use std::time::{Duration, Instant};

use edgevip_lab::{Cluster, KeepalivedConf, Node, VIP4};

#[derive(Clone, Copy, PartialEq)]
enum Impl {
    Keepalived,
    Edgevip,
}

#[derive(Clone, Copy)]
enum Scenario {
    LinkCut,
    SigKill,
    SigTerm,
    PreemptBack,
}

impl Scenario {
    fn name(self) -> &'static str {
        match self {
            Scenario::LinkCut => "master link cut",
            Scenario::SigKill => "master SIGKILL",
            Scenario::SigTerm => "master SIGTERM",
            Scenario::PreemptBack => "master returns, preempts",
        }
    }
}

#[derive(Clone, Copy)]
struct Proto {
    version: u8,
    interval: Duration,
}

const PRIOS: [u8; 3] = [150, 140, 130];

fn main() {
    edgevip_lab::cleanup_on_panic();
    let edgevip_lab::BenchArgs { bin, quick } = edgevip_lab::BenchArgs::parse();
    assert!(
        bin.exists(),
        "{} not found: cargo build --release",
        bin.display()
    );
    if !edgevip_lab::keepalived_available() {
        eprintln!("keepalived is not installed: apt-get install keepalived");
        std::process::exit(1);
    }
    let protos = [
        Proto {
            version: 3,
            interval: Duration::from_millis(100),
        },
        Proto {
            version: 2,
            interval: Duration::from_secs(1),
        },
    ];
    let scenarios = [
        Scenario::LinkCut,
        Scenario::SigKill,
        Scenario::SigTerm,
        Scenario::PreemptBack,
    ];
    println!("failover gap: longest time the client (one request every 2 ms) got no answer");
    println!("3 hosts, priorities 150/140/130, VRID 51, VIP {VIP4}\n");
    println!("| scenario | adverts | keepalived ms | edgevip ms | edgevip / keepalived |");
    println!("|---|---|---|---|---|");
    for p in protos {
        if quick && p.version == 2 {
            continue;
        }
        for s in scenarios {
            let k = run(&bin, Impl::Keepalived, p, s);
            let e = run(&bin, Impl::Edgevip, p, s);
            let ratio = if k.as_micros() == 0 {
                f64::NAN
            } else {
                e.as_secs_f64() / k.as_secs_f64()
            };
            println!(
                "| {} | v{} {} ms | {} | {} | {:.2} |",
                s.name(),
                p.version,
                p.interval.as_millis(),
                k.as_millis(),
                e.as_millis(),
                ratio
            );
        }
    }
    println!(
        "\nSIGKILL: a killed edgevip cannot remove its VIP, so its host keeps answering until the"
    );
    println!(
        "backup takes over after Master_Down_Interval and its gratuitous ARP moves the traffic;"
    );
    println!(
        "a restarted edgevip removes the stale VIP before joining. Killing keepalived's parent"
    );
    println!(
        "makes its VRRP child shut down gracefully: VIP removed first, then the backup waits.\n"
    );
    let secs = if quick { 10 } else { 30 };
    println!(
        "resources: one host running 50 instances at 100 ms (masters), measured over {secs} s"
    );
    println!("| daemon | RSS MiB | CPU s per minute |");
    println!("|---|---|---|");
    let k = resources(&bin, Impl::Keepalived, secs);
    let e = resources(&bin, Impl::Edgevip, secs);
    println!("| keepalived (all processes) | {:.1} | {:.2} |", k.0, k.1);
    println!("| edgevip | {:.1} | {:.2} |", e.0, e.1);
    println!(
        "| edgevip / keepalived | {:.2} | {:.2} |",
        e.0 / k.0,
        e.1 / k.1
    );
}

fn edgevip_node(p: Proto, priority: u8) -> String {
    let interval = format!("{}ms", p.interval.as_millis());
    Node {
        priority,
        version: p.version,
        interval: &interval,
        ..Node::default()
    }
    .yaml()
}

fn ka_conf(p: Proto, priority: u8) -> KeepalivedConf {
    KeepalivedConf {
        vrid: 51,
        priority,
        advert_int: p.interval.as_secs_f64(),
        version: p.version,
        vips: vec!["192.0.2.100/24".into()],
        unicast_peers: vec![],
        unicast_src: None,
        auth_pass: None,
        preempt: true,
    }
}

fn start(c: &mut Cluster, which: Impl, p: Proto, i: usize) {
    match which {
        Impl::Edgevip => c.start(i, &edgevip_node(p, PRIOS[i])),
        Impl::Keepalived => c.start_keepalived(i, &ka_conf(p, PRIOS[i])),
    }
}

/// One scenario on a fresh lab; returns the prober's longest gap.
fn run(bin: &std::path::Path, which: Impl, p: Proto, s: Scenario) -> Duration {
    let mut c = Cluster::new("bench", 3, false, bin).expect("lab");
    for i in 0..3 {
        start(&mut c, which, p, i);
    }
    let mdi = p.interval * 4;
    c.wait_holder(VIP4, 0, mdi * 3 + Duration::from_secs(3));
    let settle = p.interval * 2;
    match s {
        Scenario::PreemptBack => {
            c.term(0);
            c.wait_holder(VIP4, 1, mdi * 2 + Duration::from_secs(1));
            std::thread::sleep(settle);
            c.start_probe(VIP4);
            std::thread::sleep(settle);
            start(&mut c, which, p, 0);
            c.wait_holder(VIP4, 0, mdi * 3 + Duration::from_secs(3));
        }
        _ => {
            c.start_probe(VIP4);
            std::thread::sleep(settle);
            let t = Instant::now();
            match s {
                Scenario::LinkCut => c.lab.cut_link(0).expect("cut"),
                Scenario::SigKill => c.kill(0),
                _ => {
                    c.term(0);
                }
            }
            // Wait until traffic reached host 1, bounded.
            while t.elapsed() < mdi * 3 {
                if c.holders(VIP4).contains(&1) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }
    std::thread::sleep(settle);
    c.stop_probe().longest_gap
}

/// (RSS MiB, CPU seconds per minute) of host 0 running 50 instances, with a second host
/// running the same 50 at lower priority as backups.
fn resources(bin: &std::path::Path, which: Impl, secs: u64) -> (f64, f64) {
    let mut c = Cluster::new("bench-res", 2, false, bin).expect("lab");
    for host in 0..2 {
        let prio = [150u8, 100][host];
        match which {
            Impl::Edgevip => {
                let mut y = format!("api:\n  listen: {}\ninstances:\n", edgevip_lab::API);
                for k in 0..50u8 {
                    let vip = format!("198.51.100.{}/24", k + 1);
                    let vips = [vip.as_str()];
                    let n = Node {
                        name: "x",
                        vrid: k + 1,
                        priority: prio,
                        vips: &vips,
                        ..Node::default()
                    };
                    y.push_str(&n.instance().replace("name: x", &format!("name: vi-{k}")));
                }
                c.start(host, &y);
            }
            Impl::Keepalived => {
                let confs: Vec<KeepalivedConf> = (0..50u8)
                    .map(|k| KeepalivedConf {
                        vrid: k + 1,
                        vips: vec![format!("198.51.100.{}/24", k + 1)],
                        ..ka_conf(
                            Proto {
                                version: 3,
                                interval: Duration::from_millis(100),
                            },
                            prio,
                        )
                    })
                    .collect();
                c.start_keepalived_many(host, &confs);
            }
        }
    }
    // Let elections settle, then measure host 0's processes.
    std::thread::sleep(Duration::from_secs(3));
    let pids = c.pids(0);
    let cpu0: f64 = pids.iter().map(|p| cpu_seconds(*p)).sum();
    std::thread::sleep(Duration::from_secs(secs));
    let pids_after = c.pids(0);
    let cpu1: f64 = pids_after.iter().map(|p| cpu_seconds(*p)).sum();
    let rss: f64 = pids_after.iter().map(|p| rss_mib(*p)).sum();
    (rss, (cpu1 - cpu0) * 60.0 / secs as f64)
}

fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may contain spaces) start after ')'.
    let rest = stat.rsplit_once(')').map(|x| x.1).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f.get(11).and_then(|v| v.parse().ok()).unwrap_or(0.0)
        + f.get(12).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    ticks / hz
}

fn rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}
