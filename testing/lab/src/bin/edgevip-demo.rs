//! The README's first command: a 3-node edgevip cluster in network namespaces, on a
//! built-in config. Shows who holds the VIP, kills the master, prints the measured gap and
//! the new master, and removes everything.

use std::path::PathBuf;
use std::time::Duration;

use edgevip_lab::{API, Cluster, Node, VIP4};

fn edgevip_path() -> PathBuf {
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        if a == "--edgevip" {
            return args.next().expect("--edgevip PATH").into();
        }
    }
    // Built side by side by `cargo build`.
    let me = std::env::current_exe().expect("own path");
    me.with_file_name("edgevip")
}

fn main() {
    edgevip_lab::cleanup_on_panic();
    let bin = edgevip_path();
    assert!(
        bin.exists(),
        "{} not found: build it with `cargo build --release`",
        bin.display()
    );
    let Some(mut c) = Cluster::new("demo", 3, false, &bin) else {
        std::process::exit(1);
    };
    let prios = [150u8, 140, 130];
    println!("edgevip demo: 3 edge nodes on one LAN (network namespaces), a client, VIP {VIP4}");
    for (i, p) in prios.iter().enumerate() {
        let node = Node {
            priority: *p,
            ..Node::default()
        };
        println!(
            "  node{i} {}  priority {p}  (VRRPv3, adverts every 100 ms)",
            c.lab.host(i).ip4
        );
        c.start(i, &node.yaml());
    }
    c.wait_holder(VIP4, 0, Duration::from_secs(5));
    println!("\n`edgevip status` on node1:\n{}", table(&c, 1, &bin));
    println!("node0 holds {VIP4}. The client sends a request to it every 2 ms.");
    c.start_probe(VIP4);
    std::thread::sleep(Duration::from_millis(500));
    println!("\nSIGKILL to edgevip on node0, and node0's link cut (the node dies)...");
    c.kill(0);
    c.lab.cut_link(0).expect("cut link");
    c.wait_holder_any(VIP4, 1);
    std::thread::sleep(Duration::from_millis(500));
    let r = c.stop_probe();
    let holders: Vec<String> = c
        .holders(VIP4)
        .iter()
        .filter(|&&h| h != 0)
        .map(|h| format!("node{h}"))
        .collect();
    println!("new master: {} (holds {VIP4})", holders.join(", "));
    println!(
        "client: {} requests, {} answered, longest gap {} ms (Master_Down_Interval at 100 ms: 345 ms)",
        r.sent,
        r.received,
        r.longest_gap.as_millis()
    );
    println!("\n`edgevip status` on node1:\n{}", table(&c, 1, &bin));
    println!("cleaning up the namespaces.");
}

fn table(c: &Cluster, i: usize, bin: &std::path::Path) -> String {
    let out = c
        .lab
        .exec(
            &c.lab.host(i).ns,
            &[&bin.display().to_string(), "status", "--api", API],
        )
        .expect("status");
    String::from_utf8_lossy(&out.stdout).into_owned()
}
