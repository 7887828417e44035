//! `edgevip run --kubernetes --bgp` in the routed lab: three edge nodes, each on its own
//! segment to an FRR router (no shared L2), each with its own FRR; the fake API server
//! behind the router. Peers come from BGPPeer objects (one per rack, chosen by node
//! selector; the password from a Secret), VIPs from the ConfigMap (`announce: bgp`).
//! Shown: the VIP reaches the router with three next hops; a ConfigMap edit announces a
//! new VIP without resetting a session; a failing ingress withdraws that node's route;
//! the API server going away withdraws nothing. Needs root and Debian's `frr` +
//! `frr-pythontools`; prints SKIP otherwise.

use std::ffi::OsString;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use edgevip_fakeapi::{FakeApi, Server};
use edgevip_lab::bgp::{BgpLab, EDGE_ASN, PASSWORD, ROUTER_ASN, frr_available, wait_for};
use edgevip_lab::{in_netns, root_or_skip};
use serde_json::{Value, json};

mod common;
use common::NsDaemon;

const VIP: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 20);
const VIP2: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 21);
const BFD: Duration = Duration::from_millis(100);
const CRD: &str = include_str!("../../../deploy/crds/bgppeer.yaml");
const BGP_RBAC: &str = include_str!("../../../deploy/optional/bgp/rbac.yaml");
const NS: &str = "edgevip";
const HEALTH: &str = "127.0.0.1:10254";

/// The routed lab with a fake API server in the client's namespace (behind the router,
/// as a control plane in another rack would be) and a stand-in ingress on every edge.
struct Rig {
    lab: BgpLab,
    api: FakeApi,
    server: Option<Server>,
    rt: tokio::runtime::Runtime,
    api_addr: SocketAddr,
    kubeconfig: PathBuf,
    ingresses: Vec<Option<tokio::task::JoinHandle<()>>>,
    // Dropped before the lab (declared after it would be dropped after).
    daemons: Vec<NsDaemon>,
}

impl Drop for Rig {
    fn drop(&mut self) {
        self.daemons.clear();
        if let Some(s) = self.server.take() {
            s.shutdown();
        }
    }
}

fn node_name(i: usize) -> String {
    format!("edge-{i}")
}

impl Rig {
    fn new() -> Rig {
        let lab = BgpLab::new(3).unwrap();
        lab.router_frr().apply(&lab.router_config(BFD)).unwrap();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let api_addr = SocketAddr::new(IpAddr::V4(lab.client_addr), 6443);
        let api = FakeApi::new();
        // The policy of a BGP install: the base manifests and deploy/optional/bgp's.
        let mut files: Vec<(&str, &str)> = edgevip_fakeapi::SHIPPED_MANIFESTS.to_vec();
        files.push(("deploy/optional/bgp/rbac.yaml", BGP_RBAC));
        api.set_rbac(edgevip_fakeapi::Rbac::from_manifests(&files).unwrap());
        let server = {
            let listener = bind(&lab.client_ns, api_addr);
            let _g = rt.enter();
            api.serve(listener)
        };
        let kubeconfig = lab.edges[0].frr.dir.join("../kubeconfig");
        std::fs::write(
            &kubeconfig,
            edgevip_fakeapi::kubeconfig_yaml(server.addr(), edgevip_fakeapi::EDGEVIP_TOKEN),
        )
        .unwrap();
        let crd: Value = serde_saphyr::from_str(CRD).expect("the shipped BGPPeer CRD");
        api.apply(crd);
        // One ToR per rack: each node's peer is its own router address, chosen by a label.
        for (i, e) in lab.edges.iter().enumerate() {
            api.apply(json!({"apiVersion": "v1", "kind": "Node",
                "metadata": {"name": node_name(i),
                    "labels": {"edgenode": "true", "rack": format!("r{i}")}},
                "status": {"addresses": [{"type": "InternalIP", "address": e.addr.to_string()}],
                    "conditions": [{"type": "Ready", "status": "True"}]}}));
            api.apply(
                json!({"apiVersion": "edgevip.io/v1alpha1", "kind": "BGPPeer",
                "metadata": {"name": format!("tor-r{i}")},
                "spec": {"myASN": EDGE_ASN, "peerASN": ROUTER_ASN,
                    "peerAddress": e.router_addr.to_string(),
                    "holdTime": "9s", "keepaliveTime": "3s",
                    "passwordSecret": {"name": "tor-password"},
                    "bfd": {"interval": format!("{}ms", BFD.as_millis())},
                    "nodeSelector": {"matchLabels": {"rack": format!("r{i}")}}}}),
            );
        }
        api.apply(json!({"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "tor-password", "namespace": NS},
            "type": "kubernetes.io/basic-auth",
            "stringData": {"password": PASSWORD}}));
        let mut rig = Rig {
            lab,
            api,
            server: Some(server),
            rt,
            api_addr,
            kubeconfig,
            ingresses: Vec::new(),
            daemons: Vec::new(),
        };
        rig.set_vips(&[VIP]);
        for i in 0..3 {
            let h = rig.start_ingress(i);
            rig.ingresses.push(Some(h));
        }
        rig
    }

    fn set_vips(&self, vips: &[Ipv4Addr]) {
        let list: Vec<String> = vips.iter().map(ToString::to_string).collect();
        let doc = format!(
            "instances:\n  - name: web\n    announce: bgp\n    vips: [{}]\n",
            list.join(", ")
        );
        self.api
            .apply(json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "vips", "namespace": NS},
            "data": {"edgevip.yaml": doc}}));
    }

    fn start_ingress(&self, i: usize) -> tokio::task::JoinHandle<()> {
        let l = bind(&self.lab.edges[i].ns, HEALTH.parse().unwrap());
        l.set_nonblocking(true).unwrap();
        self.rt.spawn(async move {
            let l = tokio::net::TcpListener::from_std(l).unwrap();
            let app = axum::Router::new().route("/healthz", axum::routing::get(|| async { "ok" }));
            let _ = axum::serve(l, app).await;
        })
    }

    fn start(&mut self, i: usize) {
        let e = &self.lab.edges[i];
        let dir = e.frr.dir.clone();
        let log = dir.join("edgevip.log");
        let mut args: Vec<OsString> = ["run", "--kubernetes", "--kubeconfig"]
            .map(OsString::from)
            .into();
        args.push(self.kubeconfig.clone().into());
        for a in [
            "--node-name",
            &node_name(i),
            "--services-configmap",
            "edgevip/vips",
            "--api-listen",
            "127.0.0.1:9180",
            "--ingress-check",
            &format!("http://{HEALTH}/healthz"),
            "--vip-ranges",
            "203.0.113.0/24",
            "--bgp",
            "--bgp-drain-time",
            "300ms",
            "--frr-config",
        ] {
            args.push(a.into());
        }
        args.push(dir.join("frr.conf").into());
        args.push("--frr-vty-socket".into());
        args.push(dir.clone().into());
        let ns = e.ns.clone();
        self.daemons.push(NsDaemon::start(&ns, &args, log));
    }

    fn logs(&self) -> String {
        self.daemons
            .iter()
            .enumerate()
            .map(|(i, d)| format!("--- edge {i} ---\n{}", tail(&d.log(), 40)))
            .collect()
    }

    fn all(&self) -> Vec<Ipv4Addr> {
        self.lab.edges.iter().map(|e| e.addr).collect()
    }

    /// Edge `i`'s session as the router sees it: (uptime, times established).
    fn session(&self, i: usize) -> Option<(Duration, u64)> {
        let s = self
            .lab
            .router_frr()
            .speaker(&[IpAddr::V4(self.lab.edges[i].addr)])
            .ok()?;
        let sess = s.peers[0].session.clone()?;
        sess.is_established()
            .then_some((sess.uptime?, sess.established_count))
    }
}

fn bind(ns: &str, addr: SocketAddr) -> std::net::TcpListener {
    in_netns(ns, move || std::net::TcpListener::bind(addr))
        .unwrap()
        .join()
        .unwrap()
        .expect("entered the namespace")
        .expect("bound")
}

fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// `GET path` from node `i`'s API.
fn status(lab: &BgpLab, i: usize) -> Value {
    let t = in_netns(&lab.edges[i].ns, move || {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect("127.0.0.1:9180").ok()?;
        s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
        write!(
            s,
            "GET /status HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        .ok()?;
        let mut out = String::new();
        s.read_to_string(&mut out).ok()?;
        out.split_once("\r\n\r\n")
            .and_then(|(_, b)| serde_json::from_str(b).ok())
    })
    .unwrap();
    t.join().ok().flatten().flatten().unwrap_or(Value::Null)
}

#[test]
fn bgppeers_and_the_configmap_drive_announcements_that_survive_an_api_outage() {
    if !root_or_skip("kube_bgp") || !frr_available("kube_bgp") {
        return;
    }
    let mut rig = Rig::new();
    for i in 0..3 {
        rig.start(i);
    }
    let all = rig.all();
    let took = wait_for(Duration::from_secs(30), || {
        rig.lab.router_next_hops(VIP) == all
    });
    assert!(
        took.is_some(),
        "router next hops {:?}\n{}",
        rig.lab.router_next_hops(VIP),
        rig.logs()
    );
    eprintln!("kube_bgp: VIP over 3 next hops {took:?} after the daemons started");
    rig.lab.start_responders(VIP).unwrap();
    let c = rig.lab.connect_many(VIP, 150).unwrap();
    assert_eq!((c.answers.len(), c.failed), (3, 0), "{c:?}");
    // Each node was given only its own rack's peer.
    let st = status(&rig.lab, 1);
    assert_eq!(
        st.pointer("/kubernetes/bgp_peers"),
        Some(&json!([format!(
            "{} AS {ROUTER_ASN}",
            rig.lab.edges[1].router_addr
        )])),
        "{st:#}"
    );

    // The sessions coming up are Events on each Node (FRR's state read back).
    let up = wait_for(Duration::from_secs(10), || {
        let evs = rig.api.list("events.k8s.io/v1", "Event");
        (0..3).all(|i| {
            evs.iter().any(|e| {
                e["reason"] == "BGPSessionUp" && e["regarding"]["name"] == node_name(i).as_str()
            })
        })
    });
    assert!(
        up.is_some(),
        "no BGPSessionUp Events: {:#?}",
        rig.api.list("events.k8s.io/v1", "Event")
    );

    // A ConfigMap edit: a second VIP, announced without resetting any session.
    let before: Vec<_> = (0..3)
        .map(|i| rig.session(i).expect("established"))
        .collect();
    rig.set_vips(&[VIP, VIP2]);
    let t0 = Instant::now();
    let took = wait_for(Duration::from_secs(10), || {
        rig.lab.router_next_hops(VIP2) == all
    });
    assert!(took.is_some(), "VIP2 not at the router\n{}", rig.logs());
    eprintln!(
        "kube_bgp: ConfigMap edit -> new VIP at the router over 3 next hops in {:?}",
        t0.elapsed()
    );
    for (i, (uptime, count)) in before.iter().enumerate() {
        let (now_up, now_count) = rig.session(i).expect("still established");
        assert_eq!(now_count, *count, "edge{i}'s session was re-established");
        assert!(
            now_up >= *uptime,
            "edge{i}'s uptime restarted: {uptime:?} -> {now_up:?}"
        );
    }

    // Edge 1's ingress fails: only its routes go (the ingress check, as with VRRP).
    if let Some(h) = rig.ingresses[1].take() {
        h.abort();
    }
    let two = vec![all[0], all[2]];
    let t0 = Instant::now();
    let gone = wait_for(Duration::from_secs(10), || {
        rig.lab.router_next_hops(VIP) == two && rig.lab.router_next_hops(VIP2) == two
    });
    assert!(gone.is_some(), "edge1 not withdrawn\n{}", rig.logs());
    eprintln!(
        "kube_bgp: ingress down -> routes withdrawn in {:?}",
        t0.elapsed()
    );
    let h = rig.start_ingress(1);
    rig.ingresses[1] = Some(h);
    let back = wait_for(Duration::from_secs(10), || {
        rig.lab.router_next_hops(VIP) == all
    });
    assert!(back.is_some(), "edge1 not back\n{}", rig.logs());

    // The API server goes away: nothing is withdrawn.
    if let Some(s) = rig.server.take() {
        s.shutdown();
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        assert_eq!(
            rig.lab.router_next_hops(VIP),
            all,
            "a route went with the API server\n{}",
            rig.logs()
        );
        assert_eq!(rig.lab.router_next_hops(VIP2), all);
        std::thread::sleep(Duration::from_millis(100));
    }
    let c = rig.lab.connect_many(VIP, 60).unwrap();
    assert_eq!((c.answers.len(), c.failed), (3, 0), "{c:?}");
    eprintln!("kube_bgp: API server gone 5 s, 3 next hops kept for both VIPs");

    // SIGTERM of edge 2 during the outage still withdraws its routes and drains.
    let code = rig.daemons[2].term(Duration::from_secs(15));
    assert_eq!(code, Some(0), "{}", rig.logs());
    assert_eq!(rig.lab.router_next_hops(VIP), vec![all[0], all[1]]);
    let _ = rig.api_addr;
}
