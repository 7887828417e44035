//! The routed lab of the BGP mode: no shared L2 between edge nodes.
//!
//! ```text
//!   client ── 198.51.100.2/24 ─┐
//!                              │ 198.51.100.1
//!                         ┌────┴────┐  FRR: zebra, bgpd (AS 64500, maximum-paths 8),
//!                         │ router  │  bfdd; fib_multipath_hash_policy=1 (layer 4)
//!                         └┬───┬───┬┘
//!          192.0.2.1/30 ───┘   │   └─── 192.0.2.9/30
//!          192.0.2.2/30    192.0.2.5/30   192.0.2.10/30
//!           edge 0          edge 1          edge 2      FRR each (AS 64512), config
//!           lo: VIP         lo: VIP         lo: VIP     rendered by edgevip-frr
//! ```
//!
//! Each node's FRR runs as child processes of the test inside its namespace (`ip netns
//! exec`), with its own directory for vty sockets, zebra's socket, bfdd's control socket,
//! pid files and logs, so several labs and a system FRR never meet. Everything goes on
//! drop: the daemons (SIGKILL, by their pid), the namespaces, the directory.

use std::collections::BTreeMap;
use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use edgevip_frr::vtysh::Frr;

use crate::netns::{Netns, in_netns, ip, unique_prefix};

/// The router's AS and the edge nodes' AS.
pub const ROUTER_ASN: u32 = 64500;
pub const EDGE_ASN: u32 = 64512;
/// The TCP port of the responders ("which node answered").
pub const RESPONDER_PORT: u16 = 8080;
/// The MD5 password of every session (exercises `neighbor X password`).
pub const PASSWORD: &str = "lab-s3cret";

/// True when FRR (zebra, bgpd, bfdd, vtysh, frr-reload.py) is installed; prints a SKIP
/// line otherwise.
pub fn frr_available(test: &str) -> bool {
    let missing: Vec<&str> = [
        "/usr/lib/frr/zebra",
        "/usr/lib/frr/bgpd",
        "/usr/lib/frr/bfdd",
        "/usr/lib/frr/frr-reload.py",
        "/usr/bin/vtysh",
    ]
    .into_iter()
    .filter(|p| !Path::new(p).exists())
    .collect();
    if missing.is_empty() {
        true
    } else {
        crate::cluster::skip(
            test,
            &format!(
                "FRR not installed (apt-get install frr frr-pythontools): {}",
                missing.join(", ")
            ),
        );
        false
    }
}

/// FRR's daemons of one node, children of this process.
pub struct FrrNode {
    pub ns: String,
    pub dir: PathBuf,
    children: Vec<(String, Child)>,
}

impl FrrNode {
    /// Starts zebra, bgpd and bfdd in `ns`, with no configuration (apply one with
    /// [`FrrNode::frr`]), and waits until vtysh reaches all three (at most 10 s).
    pub fn start(ns: &str, dir: PathBuf) -> io::Result<FrrNode> {
        std::fs::create_dir_all(&dir)?;
        // The daemons drop to the `frr` user: they must write their sockets and pids here.
        set_mode(&dir, 0o777)?;
        let mut node = FrrNode {
            ns: ns.to_string(),
            dir,
            children: Vec::new(),
        };
        let d = node.dir.display().to_string();
        for daemon in ["zebra", "bgpd", "bfdd"] {
            let mut args: Vec<String> = vec![
                "netns".into(),
                "exec".into(),
                ns.into(),
                format!("/usr/lib/frr/{daemon}"),
                "--vty_socket".into(),
                d.clone(),
                "-i".into(),
                format!("{d}/{daemon}.pid"),
                "-f".into(),
                "/dev/null".into(),
                "-P".into(),
                "0".into(),
                "-z".into(),
                format!("{d}/zserv.api"),
                "--log".into(),
                format!("file:{d}/{daemon}.log"),
            ];
            if daemon == "bfdd" {
                args.extend(["--bfdctl".into(), format!("{d}/bfdd.sock")]);
            }
            let child = Command::new("ip")
                .args(&args)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()?;
            node.children.push((daemon.to_string(), child));
            if daemon == "zebra" {
                // bgpd and bfdd connect to zebra's socket at start.
                wait_for(Duration::from_secs(10), || {
                    Path::new(&format!("{d}/zserv.api")).exists()
                })
                .ok_or_else(|| io::Error::other(format!("{ns}: zebra did not start")))?;
            }
        }
        let frr = node.frr();
        wait_for(Duration::from_secs(10), || {
            frr.show("show daemons")
                .is_ok_and(|o| ["zebra", "bgpd", "bfdd"].iter().all(|d| o.contains(d)))
        })
        .ok_or_else(|| io::Error::other(format!("{ns}: FRR daemons not reachable by vtysh")))?;
        Ok(node)
    }

    /// The adapter pointed at this node's daemons; its config file in the node's directory.
    pub fn frr(&self) -> Frr {
        Frr::in_dir(&self.dir)
    }

    /// SIGKILL of every daemon (a crashed node); idempotent.
    pub fn kill(&mut self) {
        for (_, c) in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        self.children.clear();
    }
}

impl Drop for FrrNode {
    fn drop(&mut self) {
        self.kill();
    }
}

fn set_mode(p: &Path, mode: u32) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode))
}

/// Polls `f` every 20 ms until it holds (`Some(time it took)`) or `timeout` passes.
pub fn wait_for(timeout: Duration, mut f: impl FnMut() -> bool) -> Option<Duration> {
    let start = Instant::now();
    while start.elapsed() < timeout {
        if f() {
            return Some(start.elapsed());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    f().then(|| start.elapsed())
}

pub struct Edge {
    pub ns: String,
    /// The edge's address on its link, also its router id.
    pub addr: Ipv4Addr,
    /// The router's address on the same link: the edge's BGP peer.
    pub router_addr: Ipv4Addr,
    /// The same for IPv6 (`2001:db8:0:N::2` and `::1`, N = index + 1).
    pub addr6: Ipv6Addr,
    pub router_addr6: Ipv6Addr,
    pub frr: FrrNode,
}

pub struct BgpLab {
    pub router_ns: String,
    pub client_ns: String,
    /// The router's FRR (`None` in a lab built for another router implementation).
    pub router: Option<FrrNode>,
    /// BIRD 2 or GoBGP as the router, once [`BgpLab::start_bird`] or
    /// [`BgpLab::start_gobgp`] ran.
    bird: Option<Child>,
    pub edges: Vec<Edge>,
    pub client_addr: Ipv4Addr,
    dir: PathBuf,
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<Option<()>>>,
    // Dropped last: after the daemons and threads inside them.
    _namespaces: Vec<Netns>,
}

impl BgpLab {
    /// Builds the topology and starts FRR on every node (nothing configured yet).
    pub fn new(edges: usize) -> io::Result<BgpLab> {
        BgpLab::with_router(edges, true)
    }

    /// As [`BgpLab::new`], with FRR on the router only if `frr_router` (otherwise start
    /// another implementation there, e.g. [`BgpLab::start_bird`]).
    pub fn with_router(edges: usize, frr_router: bool) -> io::Result<BgpLab> {
        assert!((1..=8).contains(&edges), "the /30s fit 192.0.2.0/27");
        let prefix = unique_prefix();
        let dir = std::env::temp_dir().join(format!("edgevip-bgp-{prefix}"));
        std::fs::create_dir_all(&dir)?;
        set_mode(&dir, 0o755)?;
        let mut namespaces = Vec::new();
        let rt = Netns::create(format!("{prefix}-rt"))?;
        let router_ns = rt.name.clone();
        namespaces.push(rt);
        let cl = Netns::create(format!("{prefix}-cl"))?;
        let client_ns = cl.name.clone();
        namespaces.push(cl);
        for (k, v) in [
            ("net.ipv4.ip_forward", "1"),
            // ECMP by layer 4: each client connection (source port) picks a next hop.
            ("net.ipv4.fib_multipath_hash_policy", "1"),
            ("net.ipv6.conf.all.forwarding", "1"),
            ("net.ipv6.fib_multipath_hash_policy", "1"),
        ] {
            sysctl(&router_ns, k, v)?;
        }
        // Client segment.
        let (rc, cr) = (format!("{prefix}rc"), format!("{prefix}cr"));
        veth(
            &rc,
            &router_ns,
            "198.51.100.1/24",
            &cr,
            &client_ns,
            "198.51.100.2/24",
        )?;
        ip(&[
            "-n",
            &client_ns,
            "route",
            "add",
            "default",
            "via",
            "198.51.100.1",
        ])?;
        let router = if frr_router {
            Some(
                FrrNode::start(&router_ns, dir.join("router")).inspect_err(|_| {
                    let _ = std::fs::remove_dir_all(&dir);
                })?,
            )
        } else {
            None
        };
        let mut out = BgpLab {
            router_ns,
            client_ns,
            router,
            bird: None,
            edges: Vec::new(),
            client_addr: Ipv4Addr::new(198, 51, 100, 2),
            dir,
            stop: Arc::new(AtomicBool::new(false)),
            threads: Vec::new(),
            _namespaces: Vec::new(),
        };
        for i in 0..edges {
            let ns = Netns::create(format!("{prefix}-e{i}"))?;
            let base = 4 * i as u8;
            let router_addr = Ipv4Addr::new(192, 0, 2, base + 1);
            let addr = Ipv4Addr::new(192, 0, 2, base + 2);
            veth(
                &format!("{prefix}r{i}"),
                &out.router_ns,
                &format!("{router_addr}/30"),
                &format!("{prefix}e{i}"),
                &ns.name,
                &format!("{addr}/30"),
            )?;
            ip(&[
                "-n",
                &ns.name,
                "route",
                "add",
                "default",
                "via",
                &router_addr.to_string(),
            ])?;
            let n = i as u16 + 1;
            let router_addr6 = Ipv6Addr::new(0x2001, 0xdb8, 0, n, 0, 0, 0, 1);
            let addr6 = Ipv6Addr::new(0x2001, 0xdb8, 0, n, 0, 0, 0, 2);
            for (nsn, dev, a) in [
                (
                    out.router_ns.as_str(),
                    format!("{prefix}r{i}"),
                    router_addr6,
                ),
                (ns.name.as_str(), format!("{prefix}e{i}"), addr6),
            ] {
                ip(&[
                    "-n",
                    nsn,
                    "addr",
                    "add",
                    &format!("{a}/64"),
                    "dev",
                    &dev,
                    "nodad",
                ])?;
            }
            ip(&[
                "-n",
                &ns.name,
                "-6",
                "route",
                "add",
                "default",
                "via",
                &router_addr6.to_string(),
            ])?;
            let frr = FrrNode::start(&ns.name, out.dir.join(format!("edge{i}")))?;
            out.edges.push(Edge {
                ns: ns.name.clone(),
                addr,
                router_addr,
                addr6,
                router_addr6,
                frr,
            });
            namespaces.push(ns);
        }
        out._namespaces = namespaces;
        Ok(out)
    }

    /// The router's FRR configuration: one eBGP neighbor per edge with BFD at
    /// `bfd_interval` × 3, ECMP over up to 8 paths. The fabric's side, written by hand (not
    /// by edgevip's renderer, which is under test).
    pub fn router_config(&self, bfd_interval: Duration) -> String {
        let ms = bfd_interval.as_millis();
        let mut s = format!(
            "frr defaults traditional\n!\nbfd\n profile lab\n  receive-interval {ms}\n  \
             transmit-interval {ms}\n exit\n !\nexit\n!\nrouter bgp {ROUTER_ASN}\n \
             bgp router-id 198.51.100.1\n no bgp ebgp-requires-policy\n"
        );
        for a in self
            .edges
            .iter()
            .flat_map(|e| [IpAddr::V4(e.addr), IpAddr::V6(e.addr6)])
        {
            s.push_str(&format!(
                " neighbor {a} remote-as {EDGE_ASN}\n neighbor {a} password {PASSWORD}\n \
                 neighbor {a} timers 3 9\n neighbor {a} bfd\n neighbor {a} bfd profile lab\n"
            ));
        }
        s.push_str(" !\n address-family ipv4 unicast\n  maximum-paths 8\n exit-address-family\n");
        // IPv6 sessions carry IPv6 only (a peer of one family, as edgevip renders them).
        s.push_str(" !\n address-family ipv6 unicast\n  maximum-paths 8\n");
        for e in &self.edges {
            s.push_str(&format!("  neighbor {} activate\n", e.addr6));
        }
        s.push_str(" exit-address-family\nexit\n!\nend\n");
        s
    }

    /// The router's FRR adapter. Panics in a lab built without FRR on the router.
    pub fn router_frr(&self) -> Frr {
        self.router
            .as_ref()
            .expect("this lab's router runs FRR")
            .frr()
    }

    /// Starts BIRD 2 as the router: the same sessions as [`BgpLab::router_config`] (eBGP
    /// to each edge, MD5, 3 s / 9 s timers, BFD at `bfd_interval` × 3), ECMP into the
    /// kernel by `merge paths`. Waits (at most 10 s) until its control socket answers.
    ///
    /// BIRD starts a peer's BFD session only once BGP is up, while FRR's bfdd already
    /// runs one: the first BGP session can end with a Cease "BFD down" (6/10) from FRR as
    /// BIRD's BFD session comes up. BIRD then waits its `error wait time` (60 s by default)
    /// before the next attempt; 1 s here, as a fabric running BFD would set it.
    pub fn start_bird(&mut self, bfd_interval: Duration) -> io::Result<()> {
        let dir = self.dir.join("bird");
        std::fs::create_dir_all(&dir)?;
        let d = dir.display();
        let ms = bfd_interval.as_millis();
        let mut conf = format!(
            "log \"{d}/bird.log\" all;\nrouter id 198.51.100.1;\n\
             protocol device {{ scan time 10; }}\n\
             protocol kernel {{ ipv4 {{ import none; export all; }}; merge paths on; }}\n\
             protocol bfd {{ interface \"*\" {{ min rx interval {ms} ms; min tx interval {ms} ms; multiplier 3; }}; }}\n\
             template bgp edge {{ local as {ROUTER_ASN}; hold time 9; keepalive time 3; \
             connect retry time 2; error wait time 1, 10; \
             password \"{PASSWORD}\"; bfd on; ipv4 {{ import all; export none; }}; }}\n"
        );
        for (i, e) in self.edges.iter().enumerate() {
            conf.push_str(&format!(
                "protocol bgp edge{i} from edge {{ neighbor {} as {EDGE_ASN}; }}\n",
                e.addr
            ));
        }
        let path = dir.join("bird.conf");
        std::fs::write(&path, conf)?;
        let sock = format!("{d}/bird.ctl");
        let child = Command::new("ip")
            .args(["netns", "exec", &self.router_ns, "bird", "-f", "-c"])
            .arg(&path)
            .args(["-s", &sock, "-P", &format!("{d}/bird.pid")])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("bird.stderr"))?)
            .spawn()?;
        self.bird = Some(child);
        wait_for(Duration::from_secs(10), || {
            Command::new("birdc")
                .args(["-s", &sock, "show", "status"])
                .output()
                .is_ok_and(|o| {
                    o.status.success() && String::from_utf8_lossy(&o.stdout).contains("BIRD")
                })
        })
        .map(|_| ())
        .ok_or_else(|| {
            io::Error::other(format!(
                "BIRD did not start: {}",
                std::fs::read_to_string(dir.join("bird.stderr")).unwrap_or_default()
            ))
        })
    }

    /// Starts GoBGP (no BFD: it has none) as the router: eBGP to each edge with MD5 and
    /// 3 s / 9 s timers, multipath on. GoBGP keeps its RIB to itself (no kernel routes
    /// without zebra), so [`BgpLab::gobgp_next_hops`] reads it. Its gRPC API listens on
    /// 127.0.0.1:50051 inside the router's namespace only.
    pub fn start_gobgp(&mut self) -> io::Result<()> {
        let dir = self.dir.join("gobgp");
        std::fs::create_dir_all(&dir)?;
        let mut conf = format!(
            "[global.config]\n  as = {ROUTER_ASN}\n  router-id = \"198.51.100.1\"\n\
             [global.use-multiple-paths.config]\n  enabled = true\n"
        );
        for e in &self.edges {
            conf.push_str(&format!(
                "[[neighbors]]\n  [neighbors.config]\n    neighbor-address = \"{}\"\n    \
                 peer-as = {EDGE_ASN}\n    auth-password = \"{PASSWORD}\"\n  \
                 [neighbors.timers.config]\n    hold-time = 9\n    keepalive-interval = 3\n    \
                 connect-retry = 2\n",
                e.addr
            ));
        }
        let path = dir.join("gobgpd.toml");
        std::fs::write(&path, conf)?;
        let child = Command::new("ip")
            .args(["netns", "exec", &self.router_ns, "gobgpd", "-f"])
            .arg(&path)
            .args(["--api-hosts", "127.0.0.1:50051", "--pprof-disable", "-p"])
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(dir.join("gobgpd.log"))?)
            .stderr(std::fs::File::create(dir.join("gobgpd.stderr"))?)
            .spawn()?;
        self.bird = Some(child);
        let ns = self.router_ns.clone();
        wait_for(Duration::from_secs(10), || {
            Command::new("ip")
                .args(["netns", "exec", &ns, "gobgp", "global"])
                .output()
                .is_ok_and(|o| o.status.success())
        })
        .map(|_| ())
        .ok_or_else(|| io::Error::other("GoBGP did not start"))
    }

    /// GoBGP's paths for `dst`/32: their next hops, sorted (empty: no route).
    pub fn gobgp_next_hops(&self, dst: Ipv4Addr) -> Vec<Ipv4Addr> {
        let Ok(out) = Command::new("ip")
            .args([
                "netns",
                "exec",
                &self.router_ns,
                "gobgp",
                "global",
                "rib",
                "-a",
                "ipv4",
                &format!("{dst}/32"),
                "-j",
            ])
            .output()
        else {
            return Vec::new();
        };
        let Ok(v) = serde_json::from_slice::<serde_json::Value>(&out.stdout) else {
            return Vec::new();
        };
        let mut hops: Vec<Ipv4Addr> = v
            .as_object()
            .into_iter()
            .flat_map(|m| m.values())
            .filter_map(|paths| paths.as_array())
            .flatten()
            .filter_map(|p| p.get("attrs")?.as_array())
            .flatten()
            .filter_map(|a| a.get("nexthop")?.as_str()?.parse().ok())
            .collect();
        hops.sort();
        hops
    }

    /// BIRD's log (for a failing test's message).
    pub fn bird_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("bird").join("bird.log")).unwrap_or_default()
    }

    /// The `bgp:` section an edge's edgevip would have: its router as the one peer.
    pub fn edge_yaml(&self, i: usize, bfd_interval: Duration) -> String {
        self.edge_yaml_bfd(i, Some(bfd_interval))
    }

    /// As [`BgpLab::edge_yaml`], without BFD when `None` (a router that has none).
    pub fn edge_yaml_bfd(&self, i: usize, bfd_interval: Option<Duration>) -> String {
        let e = &self.edges[i];
        let bfd = bfd_interval.map_or_else(String::new, |b| {
            format!(", bfd: {{interval: {}ms, multiplier: 3}}", b.as_millis())
        });
        format!(
            "bgp:\n  asn: {EDGE_ASN}\n  router_id: {}\n  peers:\n    - {{address: {}, asn: {ROUTER_ASN}, \
             password: {PASSWORD}, hold_time: 9s, keepalive: 3s{bfd}}}\n",
            e.addr, e.router_addr,
        )
    }

    /// Adds `vip`/32 to `lo` of edge `i`.
    pub fn add_vip(&self, i: usize, vip: Ipv4Addr) -> io::Result<()> {
        ip(&[
            "-n",
            &self.edges[i].ns,
            "addr",
            "add",
            &format!("{vip}/32"),
            "dev",
            "lo",
        ])
    }

    /// The `bgp:` section of a dual-stack edge: its router's IPv4 and IPv6 addresses as
    /// two peers (each carries its own family), BFD on both.
    pub fn edge_yaml_dual(&self, i: usize, bfd_interval: Duration) -> String {
        let e = &self.edges[i];
        format!(
            "{}    - {{address: \"{}\", asn: {ROUTER_ASN}, password: {PASSWORD}, hold_time: 9s, \
             keepalive: 3s, bfd: {{interval: {}ms, multiplier: 3}}}}\n",
            self.edge_yaml(i, bfd_interval),
            e.router_addr6,
            bfd_interval.as_millis()
        )
    }

    /// Adds `vip`/128 to `lo` of edge `i`.
    pub fn add_vip6(&self, i: usize, vip: Ipv6Addr) -> io::Result<()> {
        ip(&[
            "-n",
            &self.edges[i].ns,
            "addr",
            "add",
            &format!("{vip}/128"),
            "dev",
            "lo",
            "nodad",
        ])
    }

    /// How many next hops (distinct interfaces) the router's kernel has for `dst`/128.
    pub fn router_paths6(&self, dst: Ipv6Addr) -> usize {
        let Ok(out) = Command::new("ip")
            .args([
                "-n",
                &self.router_ns,
                "-6",
                "route",
                "show",
                &format!("{dst}/128"),
            ])
            .output()
        else {
            return 0;
        };
        let text = String::from_utf8_lossy(&out.stdout);
        let mut devs: Vec<&str> = text
            .split_whitespace()
            .collect::<Vec<_>>()
            .windows(2)
            .filter(|w| w[0] == "dev")
            .map(|w| w[1])
            .collect();
        devs.sort();
        devs.dedup();
        devs.len()
    }

    /// Edge `i` goes silent as a node that died would (power, kernel hang): every packet
    /// it sends is dropped (an nftables output hook with policy drop in its namespace), its
    /// link stays up, so only BFD or the BGP hold timer can tell the router.
    pub fn freeze(&self, i: usize) -> io::Result<()> {
        let ns = &self.edges[i].ns;
        for rule in [
            "add table inet edgevip_lab_freeze",
            "add chain inet edgevip_lab_freeze out { type filter hook output priority 0; policy drop; }",
        ] {
            let out = Command::new("ip")
                .args(["netns", "exec", ns, "nft", rule])
                .output()?;
            if !out.status.success() {
                return Err(io::Error::other(format!(
                    "nft {rule} in {ns}: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                )));
            }
        }
        Ok(())
    }

    /// The router's kernel next hops for `dst`/32 (empty: no route).
    pub fn router_next_hops(&self, dst: Ipv4Addr) -> Vec<Ipv4Addr> {
        let out = Command::new("ip")
            .args([
                "-n",
                &self.router_ns,
                "-4",
                "route",
                "show",
                &format!("{dst}/32"),
            ])
            .output();
        let Ok(out) = out else { return Vec::new() };
        let text = String::from_utf8_lossy(&out.stdout);
        let mut hops: Vec<Ipv4Addr> = text
            .split_whitespace()
            .collect::<Vec<_>>()
            .windows(2)
            .filter(|w| w[0] == "via")
            .filter_map(|w| w[1].parse().ok())
            .collect();
        hops.sort();
        hops.dedup();
        hops
    }

    /// A TCP responder on every edge: `vip:RESPONDER_PORT` answers the edge's index and
    /// closes.
    pub fn start_responders(&mut self, vip: Ipv4Addr) -> io::Result<()> {
        for (i, e) in self.edges.iter().enumerate() {
            let stop = self.stop.clone();
            let (tx, rx) = std::sync::mpsc::channel();
            let t = in_netns(&e.ns, move || {
                // Bound to every address: the VIP may come later (and does in the tests).
                let l = match TcpListener::bind(("0.0.0.0", RESPONDER_PORT)) {
                    Ok(l) => l,
                    Err(err) => {
                        let _ = tx.send(Err(err));
                        return;
                    }
                };
                let _ = l.set_nonblocking(true);
                let _ = tx.send(Ok(()));
                while !stop.load(Ordering::Relaxed) {
                    match l.accept() {
                        Ok((mut s, _)) => {
                            let _ = s.set_nonblocking(false);
                            let _ = s.write_all(format!("edge{i}\n").as_bytes());
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(2)),
                    }
                }
                let _ = vip;
            })?;
            rx.recv()
                .map_err(|_| io::Error::other("responder thread died"))??;
            self.threads.push(t);
        }
        Ok(())
    }

    /// `n` TCP connections from the client to `vip` (each from a new source port): the
    /// answers by node name, and the connections that failed.
    pub fn connect_many(&self, vip: Ipv4Addr, n: usize) -> io::Result<Connections> {
        self.connect(vip, n, Duration::MAX)
    }

    /// Connections one after the other for `during` (at most 100,000): as
    /// [`BgpLab::connect_many`].
    pub fn connect_during(&self, vip: Ipv4Addr, during: Duration) -> io::Result<Connections> {
        self.connect(vip, 100_000, during)
    }

    fn connect(&self, vip: Ipv4Addr, n: usize, during: Duration) -> io::Result<Connections> {
        let target = SocketAddr::new(IpAddr::V4(vip), RESPONDER_PORT);
        let t = in_netns(&self.client_ns, move || {
            let mut answers: BTreeMap<String, usize> = BTreeMap::new();
            let mut failed = 0;
            let mut resets = 0;
            let start = Instant::now();
            for _ in 0..n {
                if start.elapsed() >= during {
                    break;
                }
                let got = TcpStream::connect_timeout(&target, Duration::from_secs(1)).and_then(
                    |mut s| {
                        s.set_read_timeout(Some(Duration::from_secs(1)))?;
                        let mut buf = String::new();
                        s.read_to_string(&mut buf)?;
                        Ok(buf.trim().to_string())
                    },
                );
                match got {
                    Ok(name) if !name.is_empty() => *answers.entry(name).or_default() += 1,
                    other => {
                        failed += 1;
                        if matches!(&other, Err(e) if e.kind() == io::ErrorKind::ConnectionReset) {
                            resets += 1;
                        }
                        // On stderr (the test's output): a reset is another node answering
                        // a flow the router re-hashed; a timeout is a route to a node that
                        // no longer holds the VIP.
                        if failed <= 5 {
                            let why = match other {
                                Ok(_) => "empty answer".to_string(),
                                Err(e) => format!("{:?}: {e}", e.kind()),
                            };
                            eprintln!(
                                "lab client: connection to {target} failed at {:?}: {why}",
                                start.elapsed()
                            );
                        }
                    }
                }
            }
            Connections {
                answers,
                failed,
                resets,
            }
        })?;
        t.join()
            .ok()
            .flatten()
            .ok_or_else(|| io::Error::other("client thread failed"))
    }
}

/// What the client saw.
#[derive(Debug, Clone, Default)]
pub struct Connections {
    /// Answers by node name (`edge0`, …).
    pub answers: BTreeMap<String, usize>,
    /// Connections that failed, whatever the reason.
    pub failed: usize,
    /// Of those, the ones reset by a peer: a node that does not know the flow, after the
    /// router re-hashed it to another next hop (Linux's ECMP is hash-threshold, not
    /// resilient: a change of the next-hop set moves some flows of the nodes that stay).
    pub resets: usize,
}

/// One TCP connection attempt of [`probe_connections`].
#[derive(Debug, Clone, Copy)]
pub struct Attempt {
    /// When it started, from the probe's start.
    pub at: Duration,
    /// An answer came back within the timeout.
    pub ok: bool,
    /// It failed by a reset: a node that does not know the flow (the router re-hashed it).
    pub reset: bool,
}

/// Client threads in `ns`, each making short TCP connections to `target` one after the
/// other for `during` (each thread at most 100,000): connect, read the answer until the
/// server closes, each step within `timeout`. Every connection is a new source port, so
/// with ECMP at layer 4 each one is hashed anew. Returns the instant the probe started
/// (the origin of [`Attempt::at`]) at once and, on join, every attempt sorted by start.
pub fn probe_connections(
    ns: &str,
    target: SocketAddr,
    threads: usize,
    during: Duration,
    timeout: Duration,
) -> io::Result<(Instant, ProbeHandle)> {
    let origin = Instant::now();
    let mut handles = Vec::new();
    for _ in 0..threads {
        handles.push(in_netns(ns, move || {
            let mut out = Vec::new();
            for _ in 0..100_000 {
                let at = origin.elapsed();
                if at >= during {
                    break;
                }
                let got = TcpStream::connect_timeout(&target, timeout).and_then(|mut s| {
                    s.set_read_timeout(Some(timeout))?;
                    let mut buf = String::new();
                    s.read_to_string(&mut buf)?;
                    Ok(!buf.trim().is_empty())
                });
                let reset = matches!(&got, Err(e) if e.kind() == io::ErrorKind::ConnectionReset);
                let ok = got.unwrap_or(false);
                if !ok {
                    // A refused connection returns at once: do not spin on it.
                    let left = timeout.saturating_sub(origin.elapsed() - at);
                    std::thread::sleep(left.min(Duration::from_millis(20)));
                }
                out.push(Attempt { at, ok, reset });
            }
            out
        })?);
    }
    Ok((origin, ProbeHandle(handles)))
}

/// The running client threads of [`probe_connections`].
pub struct ProbeHandle(Vec<std::thread::JoinHandle<Option<Vec<Attempt>>>>);

impl ProbeHandle {
    /// Waits for the threads (they stop by themselves at the probe's end).
    pub fn join(self) -> io::Result<Vec<Attempt>> {
        let mut all = Vec::new();
        for h in self.0 {
            all.extend(
                h.join()
                    .ok()
                    .flatten()
                    .ok_or_else(|| io::Error::other("client thread failed"))?,
            );
        }
        all.sort_by_key(|a| a.at);
        Ok(all)
    }
}

/// What the client saw around an event at `event` (from the probe's start).
#[derive(Debug, Clone, Copy, Default)]
pub struct ClientGap {
    /// From the event to the start of the last connection attempt that failed after it:
    /// for how long new connections could still fail (`ZERO`: none failed).
    pub outage: Duration,
    /// Attempts started after the event, and how many of them failed.
    pub attempts: usize,
    pub failed: usize,
    /// Of those, the ones reset (see [`Connections::resets`]).
    pub resets: usize,
    /// Failures before the event (a healthy lab has none).
    pub failed_before: usize,
}

pub fn client_gap(attempts: &[Attempt], event: Duration) -> ClientGap {
    let mut g = ClientGap::default();
    for a in attempts {
        if a.at < event {
            g.failed_before += usize::from(!a.ok);
            continue;
        }
        g.attempts += 1;
        if !a.ok {
            g.failed += 1;
            g.resets += usize::from(a.reset);
            g.outage = a.at - event;
        }
    }
    g
}

impl Drop for BgpLab {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        if let Some(r) = &mut self.router {
            r.kill();
        }
        if let Some(b) = &mut self.bird {
            let _ = b.kill();
            let _ = b.wait();
        }
        for e in &mut self.edges {
            e.frr.kill();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn sysctl(ns: &str, key: &str, value: &str) -> io::Result<()> {
    let out = Command::new("ip")
        .args([
            "netns",
            "exec",
            ns,
            "sysctl",
            "-qw",
            &format!("{key}={value}"),
        ])
        .output()?;
    if out.status.success() {
        Ok(())
    } else {
        Err(io::Error::other(format!(
            "sysctl {key}={value} in {ns}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

/// A veth pair, one end in each namespace, addressed and up.
fn veth(a: &str, ns_a: &str, cidr_a: &str, b: &str, ns_b: &str, cidr_b: &str) -> io::Result<()> {
    ip(&[
        "link", "add", a, "netns", ns_a, "type", "veth", "peer", "name", b, "netns", ns_b,
    ])?;
    ip(&["-n", ns_a, "addr", "add", cidr_a, "dev", a])?;
    ip(&["-n", ns_b, "addr", "add", cidr_b, "dev", b])?;
    ip(&["-n", ns_a, "link", "set", a, "up"])?;
    ip(&["-n", ns_b, "link", "set", b, "up"])
}
