//! An instance whose interface does not exist yet (a NIC that a udev rule or a CNI brings up
//! late) shows as failed, keeps the node unready, and starts as soon as the interface appears
//! rather than at the end of its backoff (root).

mod common;

use std::time::{Duration, Instant};

use common::Node;

/// How long the interface stays missing; the backoff (1, 2, 4, 8 s ...) would next retry
/// at 15 s.
const MISSING_FOR: Duration = Duration::from_secs(10);
/// From the interface appearing to the VIP on it: a retry on the link event, the master
/// down interval (~0.4 s at 100 ms) and slack for a loaded machine.
const START_BOUND: Duration = Duration::from_secs(3);

#[test]
fn an_interface_that_appears_late_is_used_at_once() {
    let Some(mut c) = common::cluster("lateif", 1, false) else {
        return;
    };
    let yaml = Node::default()
        .yaml()
        .replace("interface: eth0", "interface: eth1");
    c.start(0, &yaml);
    let failed = "edgevip_instance_failed{instance=\"ingress\"}";
    let started = Instant::now();
    // Failed, with the reason, in /status, /readyz and the metrics.
    let deadline = Instant::now() + Duration::from_secs(5);
    while c
        .try_http_get(0, "/readyz")
        .is_none_or(|(code, _)| code != 503)
    {
        assert!(Instant::now() < deadline, "/readyz never went 503");
        std::thread::sleep(Duration::from_millis(100));
    }
    let (_, body) = c.http_get(0, "/readyz");
    assert!(
        body.contains("instance ingress failed") && body.contains("eth1"),
        "{body}"
    );
    let st = common::status(&c, 0);
    assert_eq!(st.instances[0].state, "failed");
    assert!(
        st.instances[0]
            .error
            .as_deref()
            .is_some_and(|e| e.contains("eth1"))
    );
    assert_eq!(c.metric(0, failed), 1.0);
    assert!(c.holders(common::VIP4).is_empty());

    std::thread::sleep(MISSING_FOR.saturating_sub(started.elapsed()));
    let plugged = Instant::now();
    c.lab.add_nic(0, "eth1", "192.0.2.21/24").expect("add eth1");
    c.wait_holder(common::VIP4, 0, START_BOUND);
    let took = plugged.elapsed();
    eprintln!("interface appeared {MISSING_FOR:?} after start; VIP up on it {took:?} later");
    let (code, body) = c.http_get(0, "/readyz");
    assert_eq!(code, 200, "{body}");
    assert_eq!(c.metric(0, failed), 0.0);
    assert_eq!(common::status(&c, 0).instances[0].state, "master");
}
