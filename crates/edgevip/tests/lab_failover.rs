//! Real edgevip processes in network namespaces: the VIP moves between hosts, exactly one
//! host holds it, and the prober's longest gap stays within bounds. Skipped unless root.

mod common;

use std::time::Duration;

use common::{Cluster, Node, VIP4, VIP6};

const PRIOS: [u8; 3] = [150, 140, 130];
const SETTLE: Duration = Duration::from_secs(3);
/// A failover that waits out Master_Down_Interval (345 ms at priority 140, 100 ms).
const FAILOVER_BOUND: Duration = Duration::from_millis(450);
/// A handover with no loss expected (SIGTERM, preemption, reload): the noise floor.
const HANDOVER_BOUND: Duration = Duration::from_millis(50);

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
    // Master_Down_Interval of priority 140 at 100 ms is 345 ms. Max of 10 runs: 346 ms;
    // bound 450 ms: the protocol's 345 ms + 105 ms, 4x the largest scheduling blip seen in
    // these runs (24 ms). (3x the max would let a doubled Master_Down_Interval pass.)
    assert!(
        r.longest_gap < FAILOVER_BOUND,
        "gap {:?}\n{}",
        r.longest_gap,
        c.logs()
    );
    c.lab.restore_link(0).unwrap();
    // Host 0 comes back from fault as backup, then preempts.
    c.wait_holder(VIP4, 0, Duration::from_secs(3));
}

/// Node death: the daemon is killed and the node's link cut at once, so the stale VIP it
/// leaves cannot answer (its responder lives on in the lab): the prober's gap is the real
/// outage until host 1 takes over.
#[test]
fn master_node_death_new_master_takes_the_traffic() {
    let Some(mut c) = trio("node_death", standard) else {
        return;
    };
    c.start_probe(VIP4);
    std::thread::sleep(Duration::from_millis(300));
    // The link first: the outage starts at the cut, not after however long the kill takes
    // on a loaded machine (killed first, a 234 ms gap was seen: the kill's delay came off
    // the measured outage).
    c.lab.cut_link(0).unwrap();
    c.kill(0);
    c.wait_live_holder(VIP4, 0, 1, Duration::from_secs(2));
    let r = c.stop_probe();
    eprintln!(
        "node death: longest gap {} ms, timeline {:?}",
        ms(r.longest_gap),
        r.timeline
    );
    assert_eq!(
        r.timeline.last().map(|t| t.1),
        Some(1),
        "traffic must end on the new master: {:?}",
        r.timeline
    );
    // Master_Down_Interval of priority 140 at 100 ms is 345 ms, counted from host 0's last
    // advert, up to one interval before the kill: at least 245 ms of real outage (a gap
    // near 0 would mean host 0 still answered). Max of 10 runs: 322 ms, min 244 ms; upper
    // bound as for the link cut.
    assert!(
        r.longest_gap >= Duration::from_millis(240) && r.longest_gap < FAILOVER_BOUND,
        "gap {:?}\n{}",
        r.longest_gap,
        c.logs()
    );
    // Back on the link, a restarted edgevip on host 0 removes the stale VIP before joining,
    // then preempts.
    c.lab.restore_link(0).unwrap();
    c.start(0, &standard(0).yaml());
    c.wait_holder(VIP4, 0, Duration::from_secs(3));
}

/// Daemon crash, node alive: the killed daemon leaves its VIP on host 0, whose responder
/// keeps answering, so there is no gap to measure; what counts is that host 1 takes over
/// after Master_Down_Interval and its announcements pull the traffic to it.
#[test]
fn master_crash_node_alive_traffic_moves_to_the_new_master() {
    let Some(mut c) = trio("crash", standard) else {
        return;
    };
    c.start_probe(VIP4);
    let probe_start = std::time::Instant::now();
    std::thread::sleep(Duration::from_millis(300));
    let killed_at = probe_start.elapsed();
    c.kill(0);
    c.wait_live_holder(VIP4, 0, 1, Duration::from_secs(2));
    let r = c.stop_probe();
    let moved = r
        .timeline
        .iter()
        .find(|(t, h)| *h == 1 && *t > killed_at)
        .map(|(t, _)| *t - killed_at);
    eprintln!(
        "crash: traffic on host 1 after {moved:?}, timeline {:?}",
        r.timeline
    );
    assert_eq!(r.timeline.last().map(|t| t.1), Some(1), "{:?}", r.timeline);
    // Master_Down_Interval (345 ms) from host 0's last advert: 245..345 ms after the kill.
    // Max of 10 runs: 350 ms (min 326 ms); bounds as for node death.
    let moved = moved.expect("host 1 answered");
    assert!(
        moved >= Duration::from_millis(240) && moved < FAILOVER_BOUND,
        "traffic moved after {moved:?}\n{}",
        c.logs()
    );
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
    // Max of 10 runs: 24 ms (a scheduling blip before the handover; handover gaps <= 4 ms);
    // bound 50 ms, 2x that blip: the prober's noise floor on a loaded 2-core machine.
    assert!(
        r.longest_gap < HANDOVER_BOUND,
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
    // Max of 10 runs: 5 ms in 9 runs; one run lost 206 ms (reported, a real loss the bound
    // must not hide); bound 50 ms as for SIGTERM.
    assert!(
        r.longest_gap < HANDOVER_BOUND,
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
    c.wait_live_holder(VIP6, 0, 1, Duration::from_secs(2));
    let r = c.stop_probe();
    eprintln!("ipv6 failover: longest gap {} ms", ms(r.longest_gap));
    assert_eq!(r.timeline.last().map(|t| t.1), Some(1), "{:?}", r.timeline);
    // Max of 10 runs: 324 ms; bound as for IPv4 (Master_Down_Interval 345 ms + 105 ms).
    assert!(
        r.longest_gap < FAILOVER_BOUND,
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
    c.assert_stays(VIP4, 0, Duration::from_secs(1));
    c.kill(0);
    c.lab.cut_link(0).unwrap();
    c.wait_live_holder(VIP4, 0, 1, Duration::from_secs(2));
}

/// VRRPv2 with a password: hosts 0 and 1 share it and elect one master; host 2 has another,
/// so each side drops the other's adverts (counted as auth drops) and host 2, hearing no
/// valid master, becomes a second master.
#[test]
fn vrrp_v2_with_auth() {
    let v2 = |i| Node {
        priority: PRIOS[i],
        version: 2,
        interval: "1s",
        auth: ["s3cret", "s3cret", "wrong"][i],
        ..Node::default()
    };
    let Some(mut c) = common::cluster("v2auth", 3, false) else {
        return;
    };
    for i in 0..3 {
        c.start(i, &v2(i).yaml());
    }
    // Master_Down_Interval at 1 s is about 3.5 s.
    let ok = edgevip_lab::wait_until(Duration::from_secs(8), Duration::from_millis(50), || {
        c.holders(VIP4) == [0, 2]
    });
    assert!(ok, "holders {:?}\n{}", c.holders(VIP4), c.logs());
    let dropped =
        "edgevip_packets_dropped_total{instance=\"ingress\",family=\"ipv4\",reason=\"auth\"}";
    assert!(
        c.metric(0, dropped) >= 1.0,
        "host 0 counts host 2's adverts as auth drops"
    );
    assert!(
        c.metric(1, dropped) >= 1.0,
        "host 1 counts host 2's adverts as auth drops"
    );
    assert!(
        c.metric(2, dropped) >= 1.0,
        "host 2 counts host 0's adverts as auth drops"
    );
    assert_eq!(common::status(&c, 1).instances[0].state, "backup");
    // Host 1 follows host 0 (same password): it takes over when host 0 leaves.
    assert_eq!(c.term(0), Some(0));
    let ok = edgevip_lab::wait_until(Duration::from_secs(5), Duration::from_millis(50), || {
        c.holders(VIP4) == [1, 2]
    });
    assert!(ok, "holders {:?}\n{}", c.holders(VIP4), c.logs());
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
    eprintln!("reload: longest gap {} ms", ms(r.longest_gap));
    c.assert_stays(VIP4, 0, Duration::from_millis(300));
    let after = common::status(&c, 0).instances[0].transitions;
    assert_eq!(before, after, "no transition on reload");
    // Max of 10 runs: 8 ms; bound 50 ms as for SIGTERM (the prober's noise floor).
    assert!(r.longest_gap < HANDOVER_BOUND, "gap {:?}", r.longest_gap);
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
    // Host 0 was killed with its VIP on a dead link; among the living only host 1 holds it.
    c.wait_live_holder(VIP6, 0, 1, Duration::from_secs(2));
}
