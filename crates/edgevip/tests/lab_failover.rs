//! Real edgevip processes in network namespaces: the VIP moves between hosts, exactly one
//! host holds it, and the prober's longest gap stays within bounds. Skipped unless root.

mod common;

use std::time::Duration;

use common::{Cluster, Node, VIP4, VIP6};

const PRIOS: [u8; 3] = [150, 140, 130];
const SETTLE: Duration = Duration::from_secs(3);

fn trio(test: &str, node: impl Fn(usize) -> Node<'static>) -> Option<Cluster> {
    let mut c = common::cluster(test, 3, true)?;
    for i in 0..3 {
        c.start(i, &node(i).yaml());
    }
    c.wait_holder(VIP4, 0, SETTLE);
    Some(c)
}

fn standard(i: usize) -> Node<'static> {
    Node {
        priority: PRIOS[i],
        ..Node::default()
    }
}

fn ms(d: Duration) -> u128 {
    d.as_millis()
}

#[test]
fn master_link_cut_moves_the_vip() {
    let Some(mut c) = trio("link_cut", standard) else {
        return;
    };
    c.start_probe(VIP4);
    std::thread::sleep(Duration::from_millis(300));
    c.lab.cut_link(0).unwrap();
    c.wait_holder(VIP4, 1, Duration::from_secs(2));
    std::thread::sleep(Duration::from_millis(300));
    let r = c.stop_probe();
    eprintln!("link cut: longest gap {} ms", ms(r.longest_gap));
    // Master_Down_Interval of priority 140 at 100 ms is 345 ms; allow scheduling slack.
    assert!(
        r.longest_gap < Duration::from_millis(600),
        "gap {:?}\n{}",
        r.longest_gap,
        c.logs()
    );
    c.lab.restore_link(0).unwrap();
    // Host 0 comes back from fault as backup, then preempts.
    c.wait_holder(VIP4, 0, Duration::from_secs(3));
}

#[test]
fn master_sigkill_new_master_takes_the_traffic() {
    let Some(mut c) = trio("sigkill", standard) else {
        return;
    };
    c.start_probe(VIP4);
    std::thread::sleep(Duration::from_millis(300));
    c.kill(0);
    // The dead process leaves its VIP on host 0; host 1 takes over and announces.
    edgevip_lab::wait_until(Duration::from_secs(2), Duration::from_millis(10), || {
        c.holders(VIP4).contains(&1)
    });
    std::thread::sleep(Duration::from_millis(500));
    let r = c.stop_probe();
    eprintln!(
        "sigkill: longest gap {} ms, timeline {:?}",
        ms(r.longest_gap),
        r.timeline
    );
    let last = r.timeline.last().map(|t| t.1);
    assert_eq!(
        last,
        Some(1),
        "traffic must end on the new master: {:?}",
        r.timeline
    );
    assert!(
        r.longest_gap < Duration::from_millis(600),
        "gap {:?}",
        r.longest_gap
    );
    // A restarted edgevip on host 0 removes the stale VIP before joining, then preempts.
    c.start(0, &standard(0).yaml());
    c.wait_holder(VIP4, 0, Duration::from_secs(3));
}

#[test]
fn graceful_sigterm_hands_over_without_loss() {
    let Some(mut c) = trio("sigterm", standard) else {
        return;
    };
    c.start_probe(VIP4);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(c.term(0), Some(0), "clean exit\n{}", c.logs());
    c.wait_holder(VIP4, 1, Duration::from_secs(1));
    std::thread::sleep(Duration::from_millis(300));
    let r = c.stop_probe();
    eprintln!(
        "sigterm: longest gap {} ms at {:?}, timeline {:?}",
        ms(r.longest_gap),
        r.gap_start,
        r.timeline
    );
    assert!(
        r.longest_gap < Duration::from_millis(50),
        "gap {:?}\n{}",
        r.longest_gap,
        c.logs()
    );
}

#[test]
fn returning_master_preempts_without_loss() {
    let Some(mut c) = trio("preempt", standard) else {
        return;
    };
    assert_eq!(c.term(0), Some(0));
    c.wait_holder(VIP4, 1, Duration::from_secs(1));
    c.start_probe(VIP4);
    std::thread::sleep(Duration::from_millis(200));
    c.start(0, &standard(0).yaml());
    c.wait_holder(VIP4, 0, Duration::from_secs(2));
    std::thread::sleep(Duration::from_millis(300));
    let r = c.stop_probe();
    eprintln!("preempt back: longest gap {} ms", ms(r.longest_gap));
    assert!(
        r.longest_gap < Duration::from_millis(50),
        "gap {:?}\n{}",
        r.longest_gap,
        c.logs()
    );
}

#[test]
fn preempt_off_keeps_the_current_master() {
    let nopreempt = |i| Node {
        priority: PRIOS[i],
        preempt: false,
        ..Node::default()
    };
    let Some(mut c) = common::cluster("nopreempt", 3, false) else {
        return;
    };
    // Without preemption the first master keeps the VIP: start host 0 first.
    c.start(0, &nopreempt(0).yaml());
    c.wait_holder(VIP4, 0, SETTLE);
    c.start(1, &nopreempt(1).yaml());
    c.start(2, &nopreempt(2).yaml());
    assert_eq!(c.term(0), Some(0));
    c.wait_holder(VIP4, 1, Duration::from_secs(1));
    c.start(0, &nopreempt(0).yaml());
    c.assert_stays(VIP4, 1, Duration::from_secs(2));
    assert_eq!(common::status(&c, 0).instances[0].state, "backup");
}

#[test]
fn ipv6_vip_moves() {
    let v6 = |i| Node {
        priority: PRIOS[i],
        vips: &["2001:db8::100/64"],
        ..Node::default()
    };
    let Some(mut c) = common::cluster("ipv6", 3, true) else {
        return;
    };
    for i in 0..3 {
        c.start(i, &v6(i).yaml());
    }
    c.wait_holder(VIP6, 0, SETTLE);
    c.start_probe(VIP6);
    std::thread::sleep(Duration::from_millis(300));
    c.kill(0);
    c.lab.cut_link(0).unwrap();
    c.wait_holder_any(VIP6, 1);
    std::thread::sleep(Duration::from_millis(300));
    let r = c.stop_probe();
    eprintln!("ipv6 failover: longest gap {} ms", ms(r.longest_gap));
    assert!(
        r.longest_gap < Duration::from_millis(600),
        "gap {:?}\n{}",
        r.longest_gap,
        c.logs()
    );
}

#[test]
fn dual_stack_instance_moves_both_families() {
    let ds = |i| Node {
        priority: PRIOS[i],
        vips: &["192.0.2.100/24", "2001:db8::100/64"],
        ..Node::default()
    };
    let Some(mut c) = common::cluster("dualstack", 3, true) else {
        return;
    };
    for i in 0..3 {
        c.start(i, &ds(i).yaml());
    }
    c.wait_holder(VIP4, 0, SETTLE);
    c.wait_holder(VIP6, 0, SETTLE);
    let st = common::status(&c, 0);
    assert_eq!(st.instances[0].routers.len(), 2);
    assert_eq!(c.term(0), Some(0));
    c.wait_holder(VIP4, 1, Duration::from_secs(1));
    c.wait_holder(VIP6, 1, Duration::from_secs(1));
}

/// For each host, the others' addresses: its unicast peers.
fn peers_of(ips: &[String]) -> Vec<Vec<String>> {
    (0..ips.len())
        .map(|i| {
            ips.iter()
                .enumerate()
                .filter(|(j, _)| *j != i)
                .map(|(_, s)| s.clone())
                .collect()
        })
        .collect()
}

#[test]
fn unicast_peers_elect_and_fail_over() {
    let Some(mut c) = common::cluster("unicast", 3, false) else {
        return;
    };
    let peers = peers_of(
        &(0..3)
            .map(|i| c.lab.host(i).ip4.to_string())
            .collect::<Vec<_>>(),
    );
    for i in 0..3 {
        let n = Node {
            priority: PRIOS[i],
            peers: &peers[i],
            ..Node::default()
        };
        c.start(i, &n.yaml());
    }
    c.wait_holder(VIP4, 0, SETTLE);
    c.kill(0);
    c.lab.cut_link(0).unwrap();
    c.wait_holder_any(VIP4, 1);
}

#[test]
fn vrrp_v2_with_auth() {
    let v2 = |i| Node {
        priority: PRIOS[i],
        version: 2,
        interval: "1s",
        auth: "s3cret",
        ..Node::default()
    };
    let Some(mut c) = common::cluster("v2auth", 3, false) else {
        return;
    };
    for i in 0..3 {
        c.start(i, &v2(i).yaml());
    }
    c.wait_holder(VIP4, 0, Duration::from_secs(6));
    // A node with the wrong password does not join the election: it becomes master too.
    assert_eq!(c.term(0), Some(0));
    c.wait_holder(VIP4, 1, Duration::from_secs(3));
}

#[test]
fn tracked_interface_failure_moves_the_vip() {
    let Some(mut c) = common::cluster("track", 3, false) else {
        return;
    };
    // The tracked uplink is a veth pair inside each host: taking the far end down makes
    // `uplink0` lose carrier, as a failed upstream link would.
    for i in 0..3 {
        let ns = c.lab.host(i).ns.clone();
        for cmd in [
            &[
                "ip", "link", "add", "uplink0", "type", "veth", "peer", "name", "uplink0p",
            ][..],
            &["ip", "link", "set", "uplink0", "up"],
            &["ip", "link", "set", "uplink0p", "up"],
        ] {
            let out = c.lab.exec(&ns, cmd).unwrap();
            assert!(
                out.status.success(),
                "{cmd:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
    let node = |i| Node {
        priority: PRIOS[i],
        track: "[{name: uplink0}]",
        ..Node::default()
    };
    for i in 0..3 {
        c.start(i, &node(i).yaml());
    }
    c.wait_holder(VIP4, 0, SETTLE);
    let ns = c.lab.host(0).ns.clone();
    c.lab
        .exec(&ns, &["ip", "link", "set", "uplink0p", "down"])
        .unwrap();
    c.wait_holder(VIP4, 1, Duration::from_secs(1));
    assert_eq!(common::status(&c, 0).instances[0].state, "fault");
    c.lab
        .exec(&ns, &["ip", "link", "set", "uplink0p", "up"])
        .unwrap();
    c.wait_holder(VIP4, 0, Duration::from_secs(2));
}

#[test]
fn sighup_reload_does_not_move_the_vip() {
    let Some(mut c) = trio("reload", standard) else {
        return;
    };
    let before = common::status(&c, 0).instances[0].transitions;
    c.start_probe(VIP4);
    // Unchanged reload, then a reload adding a second VIP.
    c.hup(0);
    std::thread::sleep(Duration::from_millis(300));
    let two = Node {
        priority: PRIOS[0],
        vips: &["192.0.2.100/24", "192.0.2.101/24"],
        ..Node::default()
    };
    c.write_config(0, &two.yaml());
    c.hup(0);
    c.wait_holder("192.0.2.101", 0, Duration::from_secs(1));
    // An invalid file is rejected and the running config kept.
    c.write_config(0, "instances:\n  - name: BAD\n    vrid: 0\n");
    c.hup(0);
    std::thread::sleep(Duration::from_millis(300));
    let r = c.stop_probe();
    c.assert_stays(VIP4, 0, Duration::from_millis(300));
    let after = common::status(&c, 0).instances[0].transitions;
    assert_eq!(before, after, "no transition on reload");
    assert!(
        r.longest_gap < Duration::from_millis(50),
        "gap {:?}",
        r.longest_gap
    );
    assert_eq!(c.holders("192.0.2.101"), [0]);
}

#[test]
fn two_vrids_on_one_link() {
    let Some(mut c) = common::cluster("twovrid", 2, false) else {
        return;
    };
    for i in 0..2 {
        let a = Node {
            name: "a",
            vrid: 51,
            priority: [150, 100][i],
            vips: &["192.0.2.100/24"],
            ..Node::default()
        };
        let b = Node {
            name: "b",
            vrid: 52,
            priority: [100, 150][i],
            vips: &["192.0.2.101/24"],
            ..Node::default()
        };
        c.start(
            i,
            &format!(
                "api:\n  listen: {}\ninstances:\n{}{}",
                common::API,
                a.instance(),
                b.instance()
            ),
        );
    }
    c.wait_holder(VIP4, 0, SETTLE);
    c.wait_holder("192.0.2.101", 1, SETTLE);
}

#[test]
fn api_serves_health_status_and_metrics() {
    let Some(c) = trio("api", standard) else {
        return;
    };
    assert_eq!(c.http_get(0, "/healthz").0, 200);
    let (code, body) = c.http_get(1, "/status");
    assert_eq!(code, 200);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let i = &v["instances"][0];
    for key in [
        "name",
        "state",
        "priority",
        "effective_priority",
        "master",
        "vips",
        "transitions",
        "since",
    ] {
        assert!(i.get(key).is_some(), "/status lacks {key}: {body}");
    }
    assert_eq!(i["state"], "backup");
    assert_eq!(i["master"], "192.0.2.11");
    let (code, m) = c.http_get(0, "/metrics");
    assert_eq!(code, 200);
    for series in [
        "edgevip_instance_state{instance=\"ingress\",family=\"ipv4\",state=\"master\"} 1",
        "edgevip_transitions_total{instance=\"ingress\",family=\"ipv4\"}",
        "edgevip_adverts_sent_total{instance=\"ingress\",family=\"ipv4\"}",
        "edgevip_effective_priority{instance=\"ingress\",family=\"ipv4\"} 150",
    ] {
        assert!(m.contains(series), "missing {series} in:\n{m}");
    }
    // The backups count the master's adverts.
    let (_, m1) = c.http_get(1, "/metrics");
    assert!(
        m1.contains("edgevip_adverts_received_total{instance=\"ingress\",family=\"ipv4\"}"),
        "{m1}"
    );
}

/// IPv6 adverts come from the link-local address (RFC 5798 §5.1.2.1) while operators (and
/// Kubernetes mode) list the peers' global addresses: unicast must still elect one master.
#[test]
fn ipv6_unicast_peers_by_global_address() {
    let Some(mut c) = common::cluster("unicast6", 3, true) else {
        return;
    };
    let peers = peers_of(
        &(0..3)
            .map(|i| c.lab.host(i).ip6.to_string())
            .collect::<Vec<_>>(),
    );
    for i in 0..3 {
        let n = Node {
            priority: PRIOS[i],
            peers: &peers[i],
            vips: &["2001:db8::100/64"],
            ..Node::default()
        };
        c.start(i, &n.yaml());
    }
    c.wait_holder(VIP6, 0, SETTLE);
    c.assert_stays(VIP6, 0, Duration::from_secs(1));
    c.kill(0);
    c.lab.cut_link(0).unwrap();
    c.wait_holder_any(VIP6, 1);
    // Host 0 was killed with its VIP on a dead link; among the living only host 1 holds it.
    std::thread::sleep(Duration::from_millis(500));
    let h = c.holders(VIP6);
    assert!(
        h.contains(&1) && !h.contains(&2),
        "holders {h:?}\n{}",
        c.logs()
    );
}
