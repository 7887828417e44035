//! Shared by the lab tests: the cluster driver from `edgevip-lab`, pointed at this build.

#![allow(dead_code)]

#[allow(unused_imports)]
pub use edgevip_lab::{API, Node, VIP4, VIP6};

use edgevip::status::Status;

pub type Cluster = edgevip_lab::Cluster;

pub fn cluster(test: &str, hosts: usize, ipv6: bool) -> Option<Cluster> {
    Cluster::new(test, hosts, ipv6, env!("CARGO_BIN_EXE_edgevip"))
}

pub fn status(c: &Cluster, i: usize) -> Status {
    serde_json::from_str(&c.status_json(i, API)).expect("status JSON")
}
