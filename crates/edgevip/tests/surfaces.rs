//! Network-facing surfaces under load (issue 10, item 2), on the Kubernetes lab: 1,000 idle
//! connections to the API and 10,000 to a PROXY frontend on the master leave `/healthz`
//! answering in < 100 ms, cause no VRRP transition and keep the daemon under the
//! DaemonSet's 128 MiB; the daemon raised its descriptor limit to the hard limit; idle
//! PROXY clients are closed after the first-byte timeout; a status listener on 0.0.0.0
//! never answers on the VIP. Skipped unless root.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::OpenOptionsExt;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::VIP4;
use edgevip_lab::{KubeLab, in_netns};
use serde_json::json;

const API_IDLE: usize = 1_000;
const PROXY_IDLE: usize = 10_000;
const RSS_LIMIT_KIB: u64 = 128 * 1024;

/// The edgevip process of node `i`.
fn daemon_pid(k: &KubeLab, i: usize) -> u32 {
    k.cluster
        .pids(i)
        .into_iter()
        .find(|p| {
            std::fs::read_to_string(format!("/proc/{p}/comm")).is_ok_and(|c| c.trim() == "edgevip")
        })
        .expect("edgevip runs")
}

fn proc_field(pid: u32, file: &str, key: &str) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/{file}"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(key))
        .map(|l| l[key.len()..].trim().to_string())
        .unwrap_or_default()
}

fn rss_kib(pid: u32) -> u64 {
    proc_field(pid, "status", "VmRSS:")
        .trim_end_matches("kB")
        .trim()
        .parse()
        .unwrap_or(0)
}

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

/// `/healthz` on node `i`: (status code, latency).
fn healthz(k: &KubeLab, i: usize) -> (u16, Duration) {
    let t = Instant::now();
    let code = k.cluster.try_http_get(i, "/healthz").map_or(0, |r| r.0);
    (code, t.elapsed())
}

fn transitions(k: &KubeLab, i: usize) -> String {
    let m = k.cluster.http_get(i, "/metrics").1;
    m.lines()
        .filter(|l| l.starts_with("edgevip_transitions_total"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Opens `n` connections to `target` from namespace `ns` (sending nothing) and holds them
/// until told to stop; reports how many opened.
fn hold(ns: &str, target: SocketAddr, n: usize) -> (mpsc::Receiver<usize>, mpsc::Sender<()>) {
    let (opened_tx, opened) = mpsc::channel();
    let (stop, stop_rx) = mpsc::channel::<()>();
    in_netns(ns, move || {
        let mut held = Vec::with_capacity(n);
        for _ in 0..n {
            if let Ok(s) = TcpStream::connect_timeout(&target, Duration::from_secs(3)) {
                held.push(s);
            }
        }
        let _ = opened_tx.send(held.len());
        let _ = stop_rx.recv_timeout(Duration::from_secs(120));
    })
    .expect("enter namespace");
    (opened, stop)
}

/// A raw GET from namespace `ns`: the response text (empty when closed unanswered).
fn raw_get(ns: &str, target: SocketAddr, path: &str) -> String {
    let path = path.to_string();
    in_netns(ns, move || {
        let mut s = TcpStream::connect_timeout(&target, Duration::from_secs(1)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(3))).ok()?;
        write!(s, "GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").ok()?;
        let mut t = String::new();
        let _ = s.read_to_string(&mut t);
        Some(t)
    })
    .expect("enter namespace")
    .join()
    .expect("thread")
    .flatten()
    .unwrap_or_default()
}

#[test]
fn idle_floods_on_the_api_and_a_proxy_frontend_leave_vrrp_and_the_probe_alone() {
    let Some(mut k) = KubeLab::new("surfaces", 2, env!("CARGO_BIN_EXE_edgevip")) else {
        return;
    };
    k.add_pods(1);
    k.set_service("web", "front");
    k.set_endpoints("web", "front", &[0]);
    for i in 0..2 {
        k.start_node(
            i,
            &[
                "--advert-interval",
                "100ms",
                "--status-listen",
                "0.0.0.0:9181",
            ],
        );
    }
    k.wait_ready(Duration::from_secs(15));
    k.set_configmap(json!({VIP4: "web/front:PROXY"}));
    let m = k.cluster.single_holder(VIP4, None, Duration::from_secs(5));
    let vip = SocketAddr::new(VIP4.parse().unwrap(), 80);
    let answer = k.tcp_request(vip);
    assert!(
        answer.is_some(),
        "the PROXY frontend serves\n{}",
        k.cluster.logs()
    );
    let pid = daemon_pid(&k, m);

    // The descriptor limit was raised to the hard limit.
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let nofile: Vec<&str> = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap()
        .split_whitespace()
        .collect();
    assert_eq!(nofile[3], nofile[4], "soft = hard: {limits}");

    // The 0.0.0.0 status listener answers on the node's address, never on the VIP.
    let client = k.cluster.lab.client_ns().to_string();
    let host = k.cluster.lab.host(m).ip4;
    let on_node = raw_get(&client, SocketAddr::new(host.into(), 9181), "/status");
    assert!(on_node.starts_with("HTTP/1.0 200"), "{on_node}");
    let on_vip = raw_get(&client, SocketAddr::new(vip.ip(), 9181), "/status");
    assert!(on_vip.is_empty(), "/status answered on the VIP: {on_vip}");

    let before = [transitions(&k, 0), transitions(&k, 1)];
    let (rss0, fds0) = (rss_kib(pid), open_fds(pid));
    let node_ns = k.cluster.lab.host(m).ns.clone();
    let t_flood = Instant::now();
    let (api_opened, stop_api) = hold(&node_ns, common::API.parse().unwrap(), API_IDLE);
    let (proxy_opened, stop_proxy) = hold(&client, vip, PROXY_IDLE);
    let api_n = api_opened.recv_timeout(Duration::from_secs(60)).unwrap();
    let proxy_n = proxy_opened.recv_timeout(Duration::from_secs(60)).unwrap();
    let opened_in = t_flood.elapsed();
    std::thread::sleep(Duration::from_millis(500));
    let (rss1, fds1) = (rss_kib(pid), open_fds(pid));
    let mut worst = Duration::ZERO;
    for _ in 0..10 {
        let (code, took) = healthz(&k, m);
        assert_eq!(code, 200, "{}", k.cluster.logs());
        worst = worst.max(took);
        std::thread::sleep(Duration::from_millis(100));
    }
    let metrics = k.cluster.http_get(m, "/metrics").1;
    let refused: Vec<&str> = metrics
        .lines()
        .filter(|l| l.contains("refused") && !l.starts_with('#'))
        .collect();
    eprintln!(
        "API idle connections opened: {api_n}; PROXY idle connections opened: {proxy_n} in {opened_in:?}; \
         /healthz worst {worst:?}; RSS {rss0} KiB -> {rss1} KiB; fds {fds0} -> {fds1}; nofile {}/{}\n{}",
        nofile[3],
        nofile[4],
        refused.join("\n")
    );
    assert_eq!(api_n, API_IDLE);
    assert_eq!(proxy_n, PROXY_IDLE, "the kernel accepted every connection");
    assert!(
        worst < Duration::from_millis(100),
        "/healthz took {worst:?}"
    );
    assert!(rss1 < RSS_LIMIT_KIB, "RSS {rss1} KiB");
    assert_eq!(k.cluster.holders(VIP4), vec![m], "the VIP stayed");
    assert_eq!(
        [transitions(&k, 0), transitions(&k, 1)],
        before,
        "no VRRP transition"
    );

    // Silent PROXY clients are closed after the first-byte timeout (10 s): the descriptors
    // come back while the clients still hold their ends.
    let freed =
        edgevip_lab::wait_until(Duration::from_secs(20), Duration::from_millis(200), || {
            open_fds(pid) < fds0 + 200
        });
    let fds2 = open_fds(pid);
    let _ = (stop_api.send(()), stop_proxy.send(()));
    eprintln!("fds after the first-byte timeout: {fds2}");
    assert!(
        freed,
        "idle PROXY connections still open: {fds2} fds (was {fds0})"
    );
    assert!(k.tcp_request(vip).is_some(), "the frontend serves again");
    assert_eq!(k.cluster.holders(VIP4), vec![m]);
}

/// As PID 1 (its own PID namespace, as in a container), edgevip reaps what a notify hook
/// leaves behind: an orphaned grandchild exits and leaves no zombie.
#[test]
fn as_pid1_orphans_of_hooks_are_reaped() {
    if std::process::Command::new("unshare")
        .arg("--help")
        .output()
        .is_err()
    {
        eprintln!("SKIP: unshare (util-linux) missing");
        return;
    }
    let dir = std::env::temp_dir().join(format!("edgevip-pid1-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let wrapper = dir.join("edgevip-as-pid1");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\nexec unshare --pid --fork --kill-child --mount-proc {} \"$@\"\n",
            env!("CARGO_BIN_EXE_edgevip")
        ),
    )
    .unwrap();
    std::process::Command::new("chmod")
        .arg("+x")
        .arg(&wrapper)
        .status()
        .unwrap();
    let Some(mut c) = common::Cluster::new("pid1_reap", 1, false, &wrapper) else {
        return;
    };
    let node = common::Node::default();
    // The hook backgrounds a sleep in a subshell and exits: the sleep is re-parented to
    // PID 1 and must be reaped when it ends.
    let yaml = format!(
        "{}    notify: [\"sh\", \"-c\", \"(sleep 0.2 &); exit 0\"]\n",
        node.yaml()
    );
    c.start(0, &yaml);
    c.wait_holder(VIP4, 0, Duration::from_secs(5));
    std::thread::sleep(Duration::from_secs(2));
    // The init: the edgevip whose parent is `unshare`. A zombie has left the network
    // namespace, so its children are found by parent pid, not by `ip netns pids`.
    let stat = |p: &str| std::fs::read_to_string(format!("/proc/{p}/stat")).unwrap_or_default();
    let ppid = |s: &str| -> String {
        s.rsplit_once(") ")
            .and_then(|(_, r)| r.split_whitespace().nth(1))
            .unwrap_or("")
            .to_string()
    };
    let init = c
        .pids(0)
        .into_iter()
        .map(|p| p.to_string())
        .find(|p| {
            let s = stat(p);
            s.contains("(edgevip)") && stat(&ppid(&s)).contains("(unshare)")
        })
        .expect("the init process");
    let procs: Vec<(String, String)> = std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|p| p.chars().all(|c| c.is_ascii_digit()))
        .map(|p| {
            let s = stat(&p);
            (p, s)
        })
        .filter(|(_, s)| ppid(s) == init)
        .collect();
    let zombies: Vec<&(String, String)> = procs
        .iter()
        .filter(|(_, s)| s.rsplit_once(") ").is_some_and(|(_, r)| r.starts_with('Z')))
        .collect();
    let daemons = 1 + procs
        .iter()
        .filter(|(_, s)| s.contains("(edgevip)"))
        .count();
    eprintln!("children of the init: {procs:?}");
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(daemons, 2, "init and daemon: {procs:?}\n{}", c.logs());
    assert!(zombies.is_empty(), "zombies: {zombies:?}");
}

/// SIGTERM during a reload that cannot finish (the config is now a FIFO nobody writes:
/// a hung mount) still hands over and exits.
#[test]
fn sigterm_is_handled_while_a_reload_hangs() {
    let Some(mut c) = common::cluster("hup_term", 2, false) else {
        return;
    };
    for (i, prio) in [(0, 150u8), (1, 100)] {
        let n = common::Node {
            priority: prio,
            ..common::Node::default()
        };
        c.start(i, &n.yaml());
    }
    c.wait_holder(VIP4, 0, Duration::from_secs(5));
    let cfg = c.config_path(0);
    std::fs::remove_file(&cfg).unwrap();
    let made = std::process::Command::new("mkfifo")
        .arg(&cfg)
        .status()
        .unwrap();
    assert!(made.success());
    c.hup(0);
    std::thread::sleep(Duration::from_millis(300));
    let t0 = Instant::now();
    let code = c.term(0);
    let took = t0.elapsed();
    eprintln!("exit {code:?} after {took:?}");
    assert_eq!(
        code,
        Some(0),
        "SIGTERM not handled during the reload\n{}",
        c.logs()
    );
    assert_eq!(c.sole_holder(VIP4, None, Duration::from_secs(3)), 1);
    // Unblock anything still opening the FIFO.
    let _ = std::fs::OpenOptions::new()
        .write(true)
        .custom_flags(nix::libc::O_NONBLOCK)
        .open(&cfg);
    let _ = std::fs::remove_file(&cfg);
}
