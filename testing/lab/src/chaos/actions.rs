//! The rigs the chaos driver runs on, and the faults as actions on them: three edgevip
//! nodes from a YAML config, three keepalived 2.2.7 nodes, or three edgevip nodes in
//! Kubernetes mode against the fake API server. Every action updates the invariant's model.

use std::net::Ipv4Addr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use nix::sys::signal::Signal;
use serde_json::json;

use super::invariant::{Model, NodeState};
use super::scenario::{Fault, Kind};
use crate::{Cluster, KeepalivedConf, KubeLab, Node, VIP4};

/// What runs on the three nodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Peer {
    /// edgevip from a YAML config (priorities 150/140/130, preempt, VRRPv3 100 ms).
    Edgevip,
    /// keepalived 2.2.7 with the same settings.
    Keepalived,
    /// edgevip in Kubernetes mode (`--preempt true`, 100 ms adverts; the VIP from the
    /// ConfigMap; priorities from the node order, 200/190/180).
    EdgevipKube,
}

impl Peer {
    pub fn name(self) -> &'static str {
        match self {
            Peer::Edgevip => "edgevip",
            Peer::Keepalived => "keepalived 2.2.7",
            Peer::EdgevipKube => "edgevip, Kubernetes mode",
        }
    }

    /// The faults that apply: keepalived has no API server to lose; the Kubernetes mode
    /// takes its priorities from the API, not from a config file to reload.
    pub fn kinds(self) -> &'static [Kind] {
        match self {
            Peer::Edgevip | Peer::Keepalived => &[
                Kind::Kill,
                Kind::Stop,
                Kind::Flap,
                Kind::Restart,
                Kind::Reload,
            ],
            // The outage twice: it is the fault this rig exists for.
            Peer::EdgevipKube => &[
                Kind::Kill,
                Kind::Stop,
                Kind::Flap,
                Kind::Restart,
                Kind::ApiOutage,
                Kind::ApiOutage,
            ],
        }
    }

    /// Percent of rounds with two faults at once.
    pub fn double_percent(self) -> u64 {
        match self {
            Peer::EdgevipKube => 40,
            _ => 25,
        }
    }
}

pub const NODES: usize = 3;
const PRIOS: [u8; NODES] = [150, 140, 130];
const KUBE_ARGS: &[&str] = &["--advert-interval", "100ms", "--preempt", "true"];

enum Lab {
    Plain(Box<Cluster>),
    Kube(Box<KubeLab>),
}

pub struct Rig {
    pub peer: Peer,
    lab: Lab,
    pub model: Model,
    /// The pids each frozen node's SIGSTOP reached, for the SIGCONT.
    frozen: Vec<Vec<u32>>,
}

impl Rig {
    /// Three nodes running `peer`, the VIP settled on the best one. `None` (after a SKIP
    /// message) when the lab cannot run here.
    pub fn new(test: &str, peer: Peer, bin: &Path) -> Option<Rig> {
        let lab = match peer {
            Peer::Edgevip | Peer::Keepalived => {
                Lab::Plain(Box::new(Cluster::new(test, NODES, false, bin)?))
            }
            Peer::EdgevipKube => Lab::Kube(Box::new(KubeLab::new(test, NODES, bin)?)),
        };
        let nodes = (0..NODES)
            .map(|i| NodeState {
                priority: PRIOS[i],
                ip: Ipv4Addr::new(192, 0, 2, 11 + i as u8),
                running: false,
                frozen: false,
                link_up: true,
            })
            .collect();
        let mut rig = Rig {
            peer,
            lab,
            model: Model {
                nodes,
                preempt: true,
                holder: None,
            },
            frozen: vec![Vec::new(); NODES],
        };
        if let Lab::Kube(k) = &rig.lab {
            k.set_configmap(json!({VIP4: ""}));
        }
        for i in 0..NODES {
            rig.start(i);
        }
        if let Lab::Kube(k) = &rig.lab {
            k.wait_ready(Duration::from_secs(30));
            k.cluster.single_holder(VIP4, None, Duration::from_secs(10));
            for i in 0..NODES {
                rig.model.nodes[i].priority = kube_priority(&k.cluster, i);
            }
        }
        let want = rig.model.expected().expect("a node to hold the VIP");
        rig.cluster()
            .wait_holder(VIP4, want, Duration::from_secs(10));
        rig.model.holder = Some(want);
        Some(rig)
    }

    pub fn cluster(&self) -> &Cluster {
        match &self.lab {
            Lab::Plain(c) => c,
            Lab::Kube(k) => &k.cluster,
        }
    }

    pub fn cluster_mut(&mut self) -> &mut Cluster {
        match &mut self.lab {
            Lab::Plain(c) => c,
            Lab::Kube(k) => &mut k.cluster,
        }
    }

    pub fn holders(&self) -> Vec<usize> {
        self.cluster().holders(VIP4)
    }

    fn start(&mut self, i: usize) {
        let prio = self.model.nodes[i].priority;
        match &mut self.lab {
            Lab::Plain(c) if self.peer == Peer::Keepalived => {
                // A SIGKILLed keepalived leaves its pid files, and its VRRP child, reparented
                // to a PID 1 that may not reap it here, stays a zombie: the new keepalived
                // would find it "already running" and exit. An init system reaps it and a
                // unit's restart does not see it: remove the files as that would.
                let ns = c.lab.host(i).ns.clone();
                for k in ["main", "vrrp", "checkers"] {
                    let _ = std::fs::remove_file(c.dir().join(format!("{ns}-{k}.pid")));
                }
                c.start_keepalived(i, &ka(prio))
            }
            Lab::Plain(c) => c.start(i, &edgevip_yaml(prio)),
            Lab::Kube(k) => k.start_node(i, KUBE_ARGS),
        }
        self.model.nodes[i].running = true;
    }

    /// Every process in node `i`'s namespace: the daemon (keepalived runs two).
    fn signal_all(&self, i: usize, sig: Signal) -> Vec<u32> {
        let pids = self.cluster().pids(i);
        for p in &pids {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(*p as i32), sig);
        }
        pids
    }

    fn link(&self, i: usize, up: bool) {
        let ns = &self.cluster().lab.host(i).ns;
        let state = if up { "up" } else { "down" };
        let out = Command::new("ip")
            .args(["-n", ns, "link", "set", "eth0", state])
            .output()
            .expect("run ip");
        assert!(out.status.success(), "ip link set eth0 {state} in {ns}");
    }

    /// Injects `f`.
    pub fn apply(&mut self, f: &Fault) {
        let i = f.node.unwrap_or(0);
        match f.kind {
            Kind::Kill => {
                self.signal_all(i, Signal::SIGKILL);
                self.cluster_mut().kill(i);
                self.model.nodes[i].running = false;
            }
            Kind::Stop => {
                self.frozen[i] = self.signal_all(i, Signal::SIGSTOP);
                self.model.nodes[i].frozen = true;
            }
            Kind::Flap => {
                self.link(i, false);
                self.model.nodes[i].link_up = false;
            }
            Kind::Restart => {
                let _ = self.cluster_mut().term(i);
                // keepalived's VRRP child may outlive a parent that timed out.
                self.signal_all(i, Signal::SIGKILL);
                self.model.nodes[i].running = false;
            }
            Kind::Reload => {
                let prio = f.new_priority.expect("a reload has a priority");
                self.model.nodes[i].priority = prio;
                let c = self.cluster();
                match self.peer {
                    Peer::Keepalived => {
                        let ns = c.lab.host(i).ns.clone();
                        let path = c.dir().join(format!("keepalived-{ns}.conf"));
                        std::fs::write(path, crate::render_config(&ns, &[ka(prio)]))
                            .expect("rewrite keepalived.conf");
                    }
                    _ => c.write_config(i, &edgevip_yaml(prio)),
                }
                self.cluster_mut().hup(i);
            }
            Kind::ApiOutage => {
                if let Lab::Kube(k) = &mut self.lab {
                    k.stop_api();
                }
            }
        }
    }

    /// Undoes `f` (nothing for a reload).
    pub fn undo(&mut self, f: &Fault) {
        let i = f.node.unwrap_or(0);
        match f.kind {
            Kind::Kill | Kind::Restart => self.start(i),
            Kind::Stop => {
                for p in std::mem::take(&mut self.frozen[i]) {
                    let _ = nix::sys::signal::kill(
                        nix::unistd::Pid::from_raw(p as i32),
                        Signal::SIGCONT,
                    );
                }
                self.model.nodes[i].frozen = false;
            }
            Kind::Flap => {
                self.link(i, true);
                self.model.nodes[i].link_up = true;
            }
            Kind::Reload => {}
            Kind::ApiOutage => {
                if let Lab::Kube(k) = &mut self.lab {
                    k.restart_api();
                }
            }
        }
    }

    /// After a violation that outlived the settle time: every daemon killed, the VIP
    /// removed by hand, everything started again, so one failure is counted once and does
    /// not spill into the following rounds.
    pub fn reset(&mut self) {
        if let Lab::Kube(k) = &mut self.lab {
            k.restart_api();
        }
        for i in 0..NODES {
            self.signal_all(i, Signal::SIGCONT);
            self.signal_all(i, Signal::SIGKILL);
            self.cluster_mut().kill(i);
            self.link(i, true);
            let ns = self.cluster().lab.host(i).ns.clone();
            let _ = Command::new("ip")
                .args([
                    "-n",
                    &ns,
                    "addr",
                    "del",
                    &format!("{VIP4}/24"),
                    "dev",
                    "eth0",
                ])
                .output();
            self.model.nodes[i].frozen = false;
            self.model.nodes[i].link_up = true;
            self.frozen[i].clear();
        }
        for i in 0..NODES {
            self.start(i);
        }
    }

    pub fn logs(&self) -> String {
        self.cluster().logs()
    }
}

fn edgevip_yaml(priority: u8) -> String {
    Node {
        priority,
        ..Node::default()
    }
    .yaml()
}

fn ka(priority: u8) -> KeepalivedConf {
    KeepalivedConf {
        vrid: 51,
        priority,
        advert_int: 0.1,
        version: 3,
        vips: vec![format!("{VIP4}/24")],
        unicast_peers: vec![],
        unicast_src: None,
        auth_pass: None,
        preempt: true,
    }
}

/// The priority node `i` derived from the node list (its status' only instance).
fn kube_priority(c: &Cluster, i: usize) -> u8 {
    let st: serde_json::Value =
        serde_json::from_str(&c.status_json(i, crate::API)).expect("status JSON");
    st["instances"][0]["priority"]
        .as_u64()
        .and_then(|p| u8::try_from(p).ok())
        .unwrap_or_else(|| panic!("no priority in node {i}'s status: {st}"))
}
