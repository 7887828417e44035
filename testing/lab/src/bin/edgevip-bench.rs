//! The failover benchmark: the same scenarios against keepalived 2.2.7 and edgevip in one
//! run, on the namespace lab (3 hosts, priorities 150/140/130), each scenario repeated on a
//! fresh lab and reported as median, max and spread.
//!
//! What answers the client is a responder *process* in each host's namespace (this binary
//! re-run with `--lab-responder`): it lives and dies with its node. The client sends a
//! numbered UDP request to the VIP every 2 ms; an AF_PACKET capture on the client's link
//! records every VRRP advert and every answer with the kernel's timestamps. A failover is
//! measured from the master's last advert seen on the wire to the first answer after the
//! longest gap (a cut lands at a random point of the advert cycle, so timing from the cut
//! would vary by up to one interval). A run whose longest gap is under 10 ms (5 probe
//! intervals) had no outage, and no ratio is printed for a row where either side had none.
//!
//! Usage: edgevip-bench [--edgevip PATH] [--quick] [--runs N]   (as root; `bench/failover`)

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use edgevip_lab::capture::{Capture, Failover, failover};
use edgevip_lab::procstat::{daemon_pids, pss_mib, stats};
use edgevip_lab::{Cluster, KeepalivedConf, LabChild, Node, Prober, VIP4};

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

#[derive(Clone, Copy, PartialEq)]
enum Scenario {
    LinkCut,
    NodeDeath,
    Crash,
    SigTerm,
    PreemptBack,
}

impl Scenario {
    fn name(self) -> &'static str {
        match self {
            Scenario::LinkCut => "master link cut (node and daemon keep running, isolated)",
            Scenario::NodeDeath => "node death (link cut, daemon and responder SIGKILLed)",
            Scenario::Crash => "daemon crash, node alive (SIGKILL of every daemon process)",
            Scenario::SigTerm => "master SIGTERM (graceful handoff)",
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
const VRID: u8 = 51;
/// The responder processes' port (the lab's responder threads hold `edgevip_lab::PORT`).
const RPORT: u16 = 7008;
/// A longest gap under this is the prober's resolution (2 ms) and scheduling, not an outage.
const MIN_OUTAGE: Duration = Duration::from_millis(10);

struct Args {
    bin: PathBuf,
    quick: bool,
    runs: usize,
}

fn args() -> Args {
    let mut out = Args {
        bin: std::env::current_exe()
            .expect("own path")
            .with_file_name("edgevip"),
        quick: false,
        runs: 5,
    };
    let mut a = std::env::args().skip(1);
    while let Some(x) = a.next() {
        match x.as_str() {
            "--edgevip" => out.bin = a.next().expect("--edgevip PATH").into(),
            "--quick" => out.quick = true,
            "--runs" => {
                out.runs = a
                    .next()
                    .and_then(|n| n.parse().ok())
                    .expect("--runs N (N >= 1)")
            }
            other => panic!("unknown argument {other}"),
        }
    }
    assert!(out.runs >= 1, "--runs N (N >= 1)");
    out
}

fn main() {
    edgevip_lab::responder_from_args();
    edgevip_lab::cleanup_on_panic();
    let Args { bin, quick, runs } = args();
    assert!(
        bin.exists(),
        "{} not found: cargo build --release",
        bin.display()
    );
    if !edgevip_lab::keepalived_available() {
        eprintln!("keepalived is not installed: apt-get install keepalived");
        std::process::exit(1);
    }
    let exe = std::env::current_exe().expect("own path");
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
    let only = std::env::var("EDGEVIP_BENCH_ONLY").ok();
    let scenarios = [
        Scenario::LinkCut,
        Scenario::NodeDeath,
        Scenario::Crash,
        Scenario::SigTerm,
        Scenario::PreemptBack,
    ];
    println!(
        "edgevip {} vs keepalived 2.2.7; 3 hosts, priorities 150/140/130, VRID {VRID}, VIP {VIP4}",
        bin.display()
    );
    println!(
        "client: one UDP request to the VIP every 2 ms, answered by a responder process in each"
    );
    println!("node's namespace; capture on the client's link. Each cell: median of {runs} runs");
    println!(
        "(max, spread = max - min), ms. outage = master's last advert on the wire -> first answer"
    );
    println!("after the longest gap; takeover = last advert -> first answer from another node.\n");
    println!("| scenario | adverts | measure | keepalived | edgevip | edgevip / keepalived |");
    println!("|---|---|---|---|---|---|");
    let mut pss: [Vec<f64>; 2] = [Vec::new(), Vec::new()];
    let mut raw = String::new();
    for p in protos {
        if quick && p.version == 2 {
            continue;
        }
        for s in scenarios {
            if only.as_deref().is_some_and(|o| !s.name().contains(o)) {
                continue;
            }
            let mut res: [Vec<Failover>; 2] = [Vec::new(), Vec::new()];
            // Interleaved, so a noisy moment on the shared cores hits both daemons.
            for _ in 0..runs {
                for (k, which) in [Impl::Keepalived, Impl::Edgevip].into_iter().enumerate() {
                    let (f, m) = run(&bin, &exe, which, p, s);
                    res[k].push(f);
                    pss[k].push(m);
                }
            }
            let adverts = format!("v{} {} ms", p.version, p.interval.as_millis());
            let row = |measure: &str, cells: [Cell; 2]| {
                let ratio = match (&cells[0], &cells[1]) {
                    (Cell::All(k), Cell::All(e)) => format!("{:.2}", stats(e).0 / stats(k).0),
                    _ => "— (not an outage on both sides)".into(),
                };
                println!(
                    "| {} | {adverts} | {measure} | {} | {} | {ratio} |",
                    s.name(),
                    cells[0],
                    cells[1]
                );
            };
            match s {
                Scenario::PreemptBack => row(
                    "longest reply gap",
                    [0, 1].map(|k| Cell::of(&res[k], gap_if_outage)),
                ),
                Scenario::Crash => {
                    row("outage", [0, 1].map(|k| Cell::of(&res[k], |f| f.outage)));
                    row(
                        "takeover (no outage: the node still answers)",
                        [0, 1].map(|k| Cell::of(&res[k], |f| f.takeover)),
                    );
                }
                _ => row("outage", [0, 1].map(|k| Cell::of(&res[k], |f| f.outage))),
            }
            for (k, name) in ["keepalived", "edgevip"].iter().enumerate() {
                let list: Vec<String> = res[k]
                    .iter()
                    .map(|f| {
                        format!(
                            "gap {}{} / outage {} / takeover {}",
                            f.longest_gap.as_millis(),
                            if f.unanswered_at_end {
                                " (to the end)"
                            } else {
                                ""
                            },
                            opt_ms(f.outage),
                            opt_ms(f.takeover)
                        )
                    })
                    .collect();
                raw.push_str(&format!(
                    "{} {adverts}, {name}: {}\n",
                    s.name(),
                    list.join("; ")
                ));
            }
        }
    }
    let (k, e) = (stats(&pss[0]), stats(&pss[1]));
    println!(
        "\nPSS of the master's daemon (one instance; keepalived: parent + VRRP child), median of {} runs:",
        pss[0].len()
    );
    println!("| daemon | PSS MiB (max, spread) |");
    println!("|---|---|");
    println!("| keepalived 2.2.7 | {:.1} ({:.1}, {:.1}) |", k.0, k.1, k.2);
    println!("| edgevip | {:.1} ({:.1}, {:.1}) |", e.0, e.1, e.2);
    println!("| edgevip / keepalived | {:.2} | |", e.0 / k.0);
    println!("\nruns (ms; '-' = none):\n{raw}");
}

fn opt_ms(d: Option<Duration>) -> String {
    d.map_or("-".into(), |d| d.as_millis().to_string())
}

fn gap_if_outage(f: &Failover) -> Option<Duration> {
    (f.longest_gap >= MIN_OUTAGE).then_some(f.longest_gap)
}

/// One table cell: a figure in every run, or not in all of them.
enum Cell {
    All(Vec<f64>),
    Some {
        had: usize,
        runs: usize,
        gaps: Vec<f64>,
        /// Runs whose answers stopped and never came back (a failed failover).
        unanswered: usize,
    },
}

impl Cell {
    fn of(res: &[Failover], pick: impl Fn(&Failover) -> Option<Duration>) -> Cell {
        let got: Vec<f64> = res
            .iter()
            .filter_map(|f| pick(f).map(|d| d.as_secs_f64() * 1000.0))
            .collect();
        if got.len() == res.len() {
            Cell::All(got)
        } else {
            Cell::Some {
                had: got.len(),
                runs: res.len(),
                gaps: res
                    .iter()
                    .map(|f| f.longest_gap.as_secs_f64() * 1000.0)
                    .collect(),
                unanswered: res.iter().filter(|f| f.unanswered_at_end).count(),
            }
        }
    }
}

impl std::fmt::Display for Cell {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Cell::All(v) => {
                let (m, x, s) = stats(v);
                write!(f, "{m:.0} (max {x:.0}, spread {s:.0})")
            }
            Cell::Some {
                had,
                runs,
                gaps,
                unanswered,
            } => {
                let (m, x, _) = stats(gaps);
                if *had == 0 {
                    write!(
                        f,
                        "none in {runs} runs (longest reply gap {m:.0}, max {x:.0})"
                    )?;
                } else {
                    write!(
                        f,
                        "in {had} of {runs} runs only (longest reply gap {m:.0}, max {x:.0})"
                    )?;
                }
                if *unanswered > 0 {
                    write!(f, "; {unanswered} run(s) left unanswered at the end")?;
                }
                Ok(())
            }
        }
    }
}

fn edgevip_node(p: Proto, priority: u8) -> String {
    let interval = format!("{}ms", p.interval.as_millis());
    Node {
        vrid: VRID,
        priority,
        version: p.version,
        interval: &interval,
        ..Node::default()
    }
    .yaml()
}

fn ka_conf(p: Proto, priority: u8) -> KeepalivedConf {
    KeepalivedConf {
        vrid: VRID,
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

/// SIGKILL of every process of the daemon on host `i`, children first (keepalived's parent
/// would restart a VRRP child that died alone; a child whose parent died alone shuts down
/// gracefully, which is not a crash).
fn crash(c: &mut Cluster, which: Impl, i: usize) {
    let ns = c.lab.host(i).ns.clone();
    let mut pids = daemon_pids(&ns, which.comm());
    assert!(!pids.is_empty(), "no {} on host {i}", which.comm());
    // Children (ppid among the daemon's pids) before their parent.
    let ppid = |p: u32| {
        std::fs::read_to_string(format!("/proc/{p}/stat"))
            .ok()
            .and_then(|s| {
                s.rsplit_once(')')
                    .and_then(|x| x.1.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
            })
            .unwrap_or(0u32)
    };
    let all = pids.clone();
    pids.sort_by_key(|p| !all.contains(&ppid(*p)));
    for p in pids {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(p as i32),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    // Reaps the daemon's main process.
    c.kill(i);
    std::thread::sleep(Duration::from_millis(20));
    assert!(
        daemon_pids(&ns, which.comm()).is_empty(),
        "{} still running on host {i} after SIGKILL (respawned?)",
        which.comm()
    );
}

/// One scenario on a fresh lab: what the wire showed, and the master's PSS before it.
fn run(bin: &Path, exe: &Path, which: Impl, p: Proto, s: Scenario) -> (Failover, f64) {
    let mut c = Cluster::new("bench", 3, false, bin).expect("lab");
    let mut responders: Vec<Option<LabChild>> = (0..3)
        .map(|i| Some(c.lab.spawn_responder(i, RPORT, exe).expect("responder")))
        .collect();
    for i in 0..3 {
        start(&mut c, which, p, i);
    }
    let mdi = p.interval * 4;
    c.wait_holder(VIP4, 0, mdi * 3 + Duration::from_secs(3));
    let pss = pss_mib(&daemon_pids(&c.lab.host(0).ns, which.comm()));
    let settle = (p.interval * 2).max(Duration::from_millis(300));
    let client = c.lab.client_ns().to_string();
    let target = std::net::SocketAddr::new(VIP4.parse().unwrap(), RPORT);
    // The master whose adverts end the old state: host 0, or host 1 when host 0 preempts.
    let mut master = 0;
    let (capture, prober) = match s {
        Scenario::PreemptBack => {
            c.term(0);
            c.wait_holder(VIP4, 1, mdi * 2 + Duration::from_secs(1));
            master = 1;
            std::thread::sleep(settle);
            let cap = Capture::start(&client, "eth0", RPORT).expect("capture");
            let pr = Prober::start(&client, target, Duration::from_millis(2)).expect("prober");
            std::thread::sleep(settle);
            start(&mut c, which, p, 0);
            c.wait_holder(VIP4, 0, mdi * 3 + Duration::from_secs(3));
            (cap, pr)
        }
        _ => {
            let cap = Capture::start(&client, "eth0", RPORT).expect("capture");
            let pr = Prober::start(&client, target, Duration::from_millis(2)).expect("prober");
            std::thread::sleep(settle);
            let t = Instant::now();
            match s {
                Scenario::LinkCut => c.lab.cut_link(0).expect("cut"),
                Scenario::NodeDeath => {
                    c.lab.cut_link(0).expect("cut");
                    crash(&mut c, which, 0);
                    responders[0].take();
                }
                Scenario::Crash => crash(&mut c, which, 0),
                _ => {
                    c.term(0);
                }
            }
            // Until traffic can reach host 1 (bounded).
            while t.elapsed() < mdi * 3 {
                if c.holders(VIP4).contains(&1) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            (cap, pr)
        }
    };
    std::thread::sleep(settle);
    // The capture first: silence after the prober stopped would read as a gap.
    let events = capture.stop();
    let probe = prober.stop();
    assert!(probe.received > 0, "no answers at all: {probe:?}");
    let h = c.lab.host(master).ip4;
    drop(responders);
    if std::env::var_os("EDGEVIP_BENCH_DUMP").is_some() {
        dump(&events);
    }
    (failover(&events, (h, master as u8), VRID, MIN_OUTAGE), pss)
}

/// The run's wire events in brief (EDGEVIP_BENCH_DUMP=1): adverts, answers when the
/// answering host changes or after a pause of 10 ms or more, the last answer.
fn dump(events: &[edgevip_lab::capture::Event]) {
    use edgevip_lab::capture::Seen;
    let t0 = events.first().map_or(Duration::ZERO, |e| e.0);
    let mut last: Option<(Duration, u8)> = None;
    for (t, s) in events {
        let at = (*t - t0).as_secs_f64() * 1000.0;
        match s {
            Seen::Advert { src, priority, .. } => {
                eprintln!("{at:9.1} advert {src} prio {priority}")
            }
            Seen::Reply { host } => {
                if last.is_none_or(|(lt, lh)| lh != *host || *t - lt >= MIN_OUTAGE) {
                    eprintln!("{at:9.1} answer from host {host}");
                }
                last = Some((*t, *host));
            }
        }
    }
    if let Some((t, h)) = last {
        eprintln!(
            "{:9.1} last answer (host {h})",
            (t - t0).as_secs_f64() * 1000.0
        );
    }
}
