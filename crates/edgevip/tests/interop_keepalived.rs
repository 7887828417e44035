//! Mixed clusters of edgevip and keepalived 2.2.7 on the namespace lab: elections and
//! failovers come out as the RFC says, with one VIP holder. Skipped unless root and
//! keepalived is installed.

mod common;

use std::time::Duration;

use common::{Cluster, Node, VIP4, VIP6};
use edgevip_lab::KeepalivedConf;

fn cluster(test: &str, ipv6: bool) -> Option<Cluster> {
    if !edgevip_lab::keepalived_available() {
        eprintln!("SKIP {test}: keepalived is not installed");
        return None;
    }
    common::cluster(test, 3, ipv6)
}

fn ka(priority: u8, version: u8, advert_int: f64) -> KeepalivedConf {
    KeepalivedConf {
        vrid: 51,
        priority,
        advert_int,
        version,
        vips: vec!["192.0.2.100/24".into()],
        unicast_peers: vec![],
        unicast_src: None,
        auth_pass: None,
        preempt: true,
    }
}

/// The VIP stays on `host` for a while: the other implementation accepted our adverts
/// (a checksum or format it rejected would make it master too).
fn steady(c: &Cluster, vip: &str, host: usize) {
    c.wait_holder(vip, host, Duration::from_secs(6));
    c.assert_stays(vip, host, Duration::from_millis(1500));
}

#[test]
fn v3_keepalived_master_edgevip_backups() {
    let Some(mut c) = cluster("ka_v3_master", false) else {
        return;
    };
    c.start_keepalived(0, &ka(150, 3, 0.1));
    for i in 1..3 {
        c.start(
            i,
            &Node {
                priority: [0, 140, 130][i],
                ..Node::default()
            }
            .yaml(),
        );
    }
    steady(&c, VIP4, 0);
    let st = common::status(&c, 1);
    assert_eq!(st.instances[0].state, "backup");
    assert_eq!(
        st.instances[0].master.as_deref(),
        Some("192.0.2.11"),
        "edgevip decoded keepalived's adverts"
    );
    // keepalived stops gracefully (priority 0): the best edgevip takes over.
    c.term(0);
    c.wait_holder(VIP4, 1, Duration::from_secs(2));
    c.assert_stays(VIP4, 1, Duration::from_millis(800));
}

#[test]
fn v3_edgevip_master_keepalived_backup_then_failover() {
    let Some(mut c) = cluster("ev_v3_master", false) else {
        return;
    };
    c.start(
        0,
        &Node {
            priority: 150,
            ..Node::default()
        }
        .yaml(),
    );
    c.start_keepalived(1, &ka(140, 3, 0.1));
    c.start(
        2,
        &Node {
            priority: 130,
            ..Node::default()
        }
        .yaml(),
    );
    steady(&c, VIP4, 0);
    // edgevip hands over on SIGTERM; keepalived (next priority) must take over alone.
    assert_eq!(c.term(0), Some(0));
    c.wait_holder(VIP4, 1, Duration::from_secs(2));
    c.assert_stays(VIP4, 1, Duration::from_millis(800));
    // edgevip returns with the highest priority and preempts keepalived.
    c.start(
        0,
        &Node {
            priority: 150,
            ..Node::default()
        }
        .yaml(),
    );
    c.wait_holder(VIP4, 0, Duration::from_secs(3));
}

#[test]
fn v3_keepalived_preempted_by_higher_edgevip() {
    let Some(mut c) = cluster("ka_preempted", false) else {
        return;
    };
    c.start_keepalived(1, &ka(140, 3, 0.1));
    c.wait_holder(VIP4, 1, Duration::from_secs(6));
    c.start(
        0,
        &Node {
            priority: 150,
            ..Node::default()
        }
        .yaml(),
    );
    steady(&c, VIP4, 0);
}

#[test]
fn v2_with_auth_both_directions() {
    let Some(mut c) = cluster("v2_auth", false) else {
        return;
    };
    let node = |p| Node {
        priority: p,
        version: 2,
        interval: "1s",
        auth: "pw51",
        ..Node::default()
    };
    let mut conf = ka(140, 2, 1.0);
    conf.auth_pass = Some("pw51".into());
    c.start(0, &node(150).yaml());
    c.start_keepalived(1, &conf);
    steady(&c, VIP4, 0);
    assert_eq!(c.term(0), Some(0));
    c.wait_holder(VIP4, 1, Duration::from_secs(4));
    c.start(2, &node(130).yaml());
    // edgevip as backup of keepalived: stays backup.
    c.assert_stays(VIP4, 1, Duration::from_secs(2));
    assert_eq!(common::status(&c, 2).instances[0].state, "backup");
}

#[test]
fn v3_unicast_mixed() {
    let Some(mut c) = cluster("unicast_mixed", false) else {
        return;
    };
    let ips: Vec<String> = (0..2).map(|i| c.lab.host(i).ip4.to_string()).collect();
    let mut conf = ka(140, 3, 0.1);
    conf.unicast_src = Some(ips[1].clone());
    conf.unicast_peers = vec![ips[0].clone()];
    let peers = vec![ips[1].clone()];
    c.start(
        0,
        &Node {
            priority: 150,
            peers: &peers,
            ..Node::default()
        }
        .yaml(),
    );
    c.start_keepalived(1, &conf);
    steady(&c, VIP4, 0);
    c.kill(0);
    c.lab.cut_link(0).unwrap();
    c.wait_holder_any(VIP4, 1);
}

#[test]
fn v3_ipv6_mixed() {
    let Some(mut c) = cluster("ipv6_mixed", true) else {
        return;
    };
    let mut conf = ka(140, 3, 0.1);
    conf.vips = vec!["2001:db8::100/64".into()];
    c.start(
        0,
        &Node {
            priority: 150,
            vips: &["2001:db8::100/64"],
            ..Node::default()
        }
        .yaml(),
    );
    c.start_keepalived(1, &conf);
    steady(&c, VIP6, 0);
    assert_eq!(c.term(0), Some(0));
    c.wait_holder(VIP6, 1, Duration::from_secs(2));
}
