//! Hostile input on the VRRP segment (root): floods from a host on the link must not move
//! the VIP, delay the master's timer or turn the master into an amplifier.

mod common;

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{Node, VIP4};
use vrrp::wire::MCAST_V4;

const FLOOD_FOR: Duration = Duration::from_secs(3);
/// Upper bound on what one flood sends, whatever the rate.
const FLOOD_MAX: usize = 2_000_000;

fn node(i: usize) -> Node<'static> {
    Node {
        priority: [200, 150, 100][i],
        ..Node::default()
    }
}

fn advert(src: Ipv4Addr, priority: u8) -> Vec<u8> {
    common::advert(51, src, MCAST_V4, priority)
}

/// Sends `packets` round robin to their destinations for `FLOOD_FOR` (at most `FLOOD_MAX`),
/// from the client's namespace. Returns how many went out.
fn flood(c: &common::Cluster, packets: Vec<(Vec<u8>, Ipv4Addr)>) -> usize {
    let src = c.lab.client().ip4;
    let ns = c.lab.client_ns().to_string();
    let h = edgevip_lab::in_netns(&ns, move || {
        let s = common::raw_vrrp_socket(src);
        let started = Instant::now();
        let mut sent = 0;
        while sent < FLOOD_MAX && started.elapsed() < FLOOD_FOR {
            for (p, dst) in &packets {
                let to: SocketAddr = SocketAddrV4::new(*dst, 0).into();
                if s.send_to(p, &to.into()).is_ok() {
                    sent += 1;
                }
            }
        }
        sent
    })
    .expect("client namespace");
    h.join().expect("flood thread").expect("in namespace")
}

/// Captures the segment in the client's namespace while `during` runs; returns the
/// capture's lines (`tcpdump -tt -n`).
fn capture<T>(c: &common::Cluster, filter: &str, during: impl FnOnce() -> T) -> (T, Vec<String>) {
    let file = c.dir().join("capture.pcap");
    let iface = c.lab.client().ifname.clone();
    let mut cmd = Command::new("tcpdump");
    cmd.args(["-i", &iface, "-n", "-U", "-w"])
        .arg(&file)
        .args(filter.split_whitespace());
    let mut dump = c.lab.spawn(c.lab.client_ns(), cmd).expect("tcpdump");
    std::thread::sleep(Duration::from_millis(300));
    let out = during();
    std::thread::sleep(Duration::from_millis(200));
    let _ = dump.signal(nix::sys::signal::Signal::SIGINT);
    let _ = dump.wait_timeout(Duration::from_secs(5));
    let read = Command::new("tcpdump")
        .args(["-tt", "-n", "-r"])
        .arg(&file)
        .output()
        .expect("tcpdump -r");
    let lines = String::from_utf8_lossy(&read.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    (out, lines)
}

/// The longest pause between consecutive captured lines, by their `-tt` timestamps.
fn longest_pause(lines: &[String]) -> Duration {
    let t: Vec<f64> = lines
        .iter()
        .filter_map(|l| l.split_whitespace().next()?.parse().ok())
        .collect();
    let max = t.windows(2).map(|w| w[1] - w[0]).fold(0.0, f64::max);
    Duration::from_secs_f64(max)
}

fn transitions(c: &common::Cluster) -> Vec<u64> {
    (0..3)
        .map(|i| common::status(c, i).instances[0].transitions)
        .collect()
}

#[test]
fn floods_of_bad_and_oversized_datagrams_move_nothing() {
    let Some(mut c) = common::cluster("rxflood", 3, false) else {
        return;
    };
    for i in 0..3 {
        c.start(i, &node(i).yaml());
    }
    c.wait_holder(VIP4, 0, Duration::from_secs(5));
    let before = transitions(&c);
    let master = c.lab.host(0).ip4;
    let client = c.lab.client().ip4;
    let mut bad = advert(client, 250);
    bad[6] ^= 0xff; // checksum
    let big = vec![0x31u8; 5_000]; // v3 advert header, then far too long: fragmented
    let mut packets = vec![(bad, MCAST_V4), (big.clone(), MCAST_V4)];
    for h in c.lab.hosts() {
        packets.push((big.clone(), h.ip4));
    }
    c.start_probe(VIP4);
    let filter = format!("ip proto 112 and src host {master}");
    let (sent, lines) = capture(&c, &filter, || flood(&c, packets));
    let probe = c.stop_probe();
    let rate = sent as f64 / FLOOD_FOR.as_secs_f64();
    let pause = longest_pause(&lines);
    eprintln!(
        "flood: {sent} datagrams in {FLOOD_FOR:?} ({rate:.0}/s, half of them 5,000-byte); \
         master adverts captured {}, longest pause between them {pause:?}; client gap {:?}",
        lines.len(),
        probe.longest_gap
    );
    assert!(sent > 10_000, "the flood must be a flood: {sent}");
    assert_eq!(
        transitions(&c),
        before,
        "no transition anywhere\n{}",
        c.logs()
    );
    assert_eq!(c.holders(VIP4), [0]);
    // The master's timer stays on time: adverts every 100 ms. A pause of three intervals
    // would let a backup take over; 250 ms leaves room for capture and scheduling noise.
    assert!(
        pause < Duration::from_millis(250),
        "master advert pause {pause:?}"
    );
    assert!(
        lines.len() >= 25,
        "adverts seen during 3 s: {}",
        lines.len()
    );
    for i in 0..3 {
        let oversize = c.metric(
            i,
            "edgevip_rx_dropped_total{interface=\"eth0\",family=\"ipv4\",reason=\"oversize\"}",
        );
        assert!(oversize > 0.0, "host {i}: oversize datagrams counted");
    }
    let bad_sum = c.metric(
        1,
        "edgevip_packets_dropped_total{instance=\"ingress\",family=\"ipv4\",reason=\"bad_checksum\"}",
    );
    assert!(bad_sum > 1000.0, "bad checksums counted: {bad_sum}");
}

#[test]
fn a_flood_of_lower_priority_adverts_is_not_amplified() {
    let Some(mut c) = common::cluster("lowflood", 2, false) else {
        return;
    };
    for i in 0..2 {
        c.start(i, &node(i).yaml());
    }
    c.wait_holder(VIP4, 0, Duration::from_secs(5));
    let adverts = "edgevip_adverts_sent_total{instance=\"ingress\",family=\"ipv4\"}";
    let sent_before = c.metric(0, adverts);
    let client = c.lab.client().ip4;
    let low = advert(client, 1);
    let filter = format!("arp and host {VIP4}");
    let (sent, arp) = capture(&c, &filter, || flood(&c, vec![(low, MCAST_V4)]));
    let answered = c.metric(0, adverts) - sent_before;
    eprintln!(
        "lower-priority flood: {sent} adverts in {FLOOD_FOR:?}; master sent {answered} adverts, \
         {} ARP frames for the VIP on the wire",
        arp.len()
    );
    assert!(sent > 10_000, "the flood must be a flood: {sent}");
    assert_eq!(c.holders(VIP4), [0], "the master keeps the VIP");
    // Its own adverts (every 100 ms, ~35 in the 3.5 s window) plus at most one answer per
    // interval: about 70. One answer per flood advert would be thousands.
    assert!(
        answered <= 80.0,
        "adverts sent during the flood: {answered}"
    );
    // Re-announcements at most once per second: in the 3.5 s window at most 4 bursts of
    // 6 frames (first round, quick repeat, 4 more at 200 ms), each cut short by the next:
    // 24. One per flood advert would be thousands.
    assert!(
        arp.len() <= 30,
        "ARP frames for the VIP: {}\n{arp:?}",
        arp.len()
    );
}

/// RFC 5798 §7.1: an advert whose address list differs from ours comes from a router
/// configured differently. It is counted and logged; with `strict_vip_list` it is dropped.
#[test]
fn adverts_listing_other_vips_are_counted_and_dropped_when_strict() {
    let Some(mut c) = common::cluster("vipmismatch", 2, false) else {
        return;
    };
    let vips = [["192.0.2.100/24"], ["192.0.2.101/24"]];
    for (i, vips) in vips.iter().enumerate() {
        let n = Node {
            vrid: 51 + i as u8,
            vips,
            ..Node::default()
        };
        let strict = if i == 1 {
            "    strict_vip_list: true\n"
        } else {
            ""
        };
        c.start(i, &format!("{}{strict}", n.yaml()));
    }
    c.wait_holder("192.0.2.100", 0, Duration::from_secs(5));
    c.wait_holder("192.0.2.101", 1, Duration::from_secs(5));
    // A higher-priority sender on the segment, for both VRIDs, listing another address.
    let client = c.lab.client().ip4;
    let other = ["198.51.100.7".parse().unwrap()];
    let ns = c.lab.client_ns().to_string();
    let h = edgevip_lab::in_netns(&ns, move || {
        let s = common::raw_vrrp_socket(client);
        let to: SocketAddr = SocketAddrV4::new(MCAST_V4, 0).into();
        let ads: Vec<Vec<u8>> = [51, 52]
            .map(|vrid| common::advert_listing(vrid, client, MCAST_V4, 250, &other))
            .into();
        for _ in 0..75 {
            for a in &ads {
                let _ = s.send_to(a, &to.into());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    })
    .expect("client namespace");
    // Mid-way (the sender runs 1.5 s): believed by default, so the higher priority took the
    // master role from host 0; ignored by the strict host 1.
    std::thread::sleep(Duration::from_millis(900));
    let during = (c.holders("192.0.2.100"), c.holders("192.0.2.101"));
    h.join().expect("sender").expect("in namespace");
    let mismatches = |i: usize| {
        c.metric(
            i,
            "edgevip_vip_list_mismatches_total{instance=\"ingress\",family=\"ipv4\"}",
        )
    };
    let (m0, m1) = (mismatches(0), mismatches(1));
    let dropped = c.metric(
        1,
        "edgevip_packets_dropped_total{instance=\"ingress\",family=\"ipv4\",reason=\"vip_mismatch\"}",
    );
    eprintln!(
        "150 mismatching adverts: counted {m0} (default) and {m1} (strict), {dropped} dropped"
    );
    assert!(m0 >= 50.0 && m1 >= 50.0, "counted: {m0}, {m1}");
    assert!(dropped >= 50.0, "strict drops them: {dropped}");
    assert!(during.0.is_empty(), "host 0 stepped back: {:?}", during.0);
    assert_eq!(during.1, [1], "the strict host ignored them");
}
