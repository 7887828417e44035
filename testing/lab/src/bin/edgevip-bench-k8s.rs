//! The Kubernetes-mode benchmark, on the namespace lab with the fake API server in a
//! control-plane namespace and three edge nodes running `edgevip run --kubernetes`. Two
//! scenarios, each on a fresh lab; prints a table against the targets.
//!
//! - ConfigMap edit → VIP live on the master, ingress down → VIP served by another node
//!   (default check settings), and 5,000 Services / 50,000 endpoints in the API: RSS and
//!   what an unrelated change costs.
//! - `--services N` (1,000 in the default run): N LoadBalancer Services created through
//!   the API in parallel → status written for all; how the Service VIPs' masters spread over
//!   the nodes; SIGKILL of the node with the largest share → how many VIPs move and how
//!   long until all of its VIPs have a new master; RSS and CPU per node.
//!
//! Usage: edgevip-bench-k8s [--edgevip PATH] [--quick] [--services N]
//!        (as root; `bench/kubernetes`). `--services N` runs only the LoadBalancer scenario.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use edgevip_lab::services::{Mastery, lb_service_of, names, spread};
use edgevip_lab::{KubeLab, VIP4};
use serde_json::{Value, json};

/// Addresses for the LoadBalancer scenario: 254 + 254 IPv4 and 512 IPv6 (the Services
/// alternate between single-stack IPv4 and IPv6), none of them the lab's (its hosts are
/// 192.0.2.2 and .11-.14 and 2001:db8::2, ::11-::14; the first scenario's VIPs 192.0.2.100
/// and .150-.169).
const LB_POOL: &str = "198.51.100.0/24,203.0.113.0/24,2001:db8:e0::/119";
/// Creates in flight at once (what a controller or `kubectl apply` of many files sends).
const PARALLEL_CREATES: usize = 16;
const NODES: [usize; 3] = [0, 1, 2];

fn main() {
    edgevip_lab::cleanup_on_panic();
    let mut services: Option<usize> = None;
    let edgevip_lab::BenchArgs { bin, quick } = edgevip_lab::BenchArgs::parse_with(|flag, rest| {
        if flag != "--services" {
            return false;
        }
        let n = rest.next().and_then(|n| n.parse().ok()).filter(|n| *n > 0);
        services = Some(n.expect("--services needs a positive number"));
        true
    });
    if services.is_none() {
        configmap_and_watch(&bin, quick);
        println!();
    }
    load_balancers(&bin, quick, services.unwrap_or(1000));
}

/// The first scenario: ConfigMap edits, ingress failover, 5,000 watched Services.
fn configmap_and_watch(bin: &std::path::Path, quick: bool) {
    let Some(mut k) = KubeLab::new("bench-k8s", 3, bin) else {
        std::process::exit(1);
    };
    for i in 0..3 {
        // Defaults everywhere (200 ms adverts, the ingress check of the CLI), plus the
        // LoadBalancer mode so that Services are watched and cached.
        k.start_node(i, &["--load-balancers", "--address-pool", "203.0.113.0/24"]);
    }
    k.wait_ready(Duration::from_secs(20));
    let mut data = serde_json::Map::new();
    data.insert(VIP4.into(), json!(""));
    k.set_configmap(Value::Object(data.clone()));
    let master = k.cluster.single_holder(VIP4, None, Duration::from_secs(10));
    println!("3 edge nodes, default settings (adverts 200 ms, ingress check 200 ms x fall 2)\n");
    println!("| measurement | result | target |");
    println!("|---|---|---|");

    // 1. ConfigMap edit → new VIP live on the master (bind() succeeds in its namespace).
    let rounds = if quick { 5 } else { 20 };
    let mut took = Vec::new();
    for r in 0..rounds {
        let vip: IpAddr = format!("192.0.2.{}", 150 + r).parse().unwrap();
        data.insert(vip.to_string(), json!(""));
        let t = Instant::now();
        k.set_configmap(Value::Object(data.clone()));
        k.wait_vip_local(
            master,
            vip,
            Duration::from_micros(200),
            Duration::from_secs(5),
        )
        .expect("VIP live on the master");
        took.push(t.elapsed());
    }
    let (med, max, _) = stats(&took);
    println!(
        "| ConfigMap edit -> VIP live on the master (median of {rounds}) | {med:.1} ms (max {max:.1}) | <= 100 ms |"
    );

    // 2. Ingress down on the master → VIP served by another node (prober gap).
    let rounds = if quick { 2 } else { 5 };
    let mut gaps = Vec::new();
    let mut moves = Vec::new();
    let mut m = master;
    for _ in 0..rounds {
        k.cluster.start_probe(VIP4);
        std::thread::sleep(Duration::from_millis(500));
        let t = Instant::now();
        k.stop_ingress(m);
        let n = k.cluster.sole_holder(VIP4, Some(m), Duration::from_secs(5));
        moves.push(t.elapsed());
        std::thread::sleep(Duration::from_millis(500));
        let report = k.cluster.stop_probe();
        gaps.push(report.longest_gap);
        k.restart_ingress(m);
        std::thread::sleep(Duration::from_secs(1));
        m = n;
    }
    let (gmed, gmax, _) = stats(&gaps);
    let (mmed, mmax, _) = stats(&moves);
    println!(
        "| ingress down -> VIP unanswered (prober gap; the VIP itself stays up during detection; median of {rounds}) | {gmed:.0} ms (max {gmax:.0}) | |"
    );
    println!(
        "| ingress down -> VIP on another node (includes detection: what an ingress client sees; median of {rounds}) | {mmed:.0} ms (max {mmax:.0}) | <= 1000 ms |"
    );

    // 3. Scale: 5,000 Services (100 of them LoadBalancers of ours) and 5,000 EndpointSlices
    // of 10 endpoints each in the API, all watched (forwarding is on by default).
    let rss_before: Vec<f64> = (0..3).map(|i| k.rss_mib(i)).collect();
    let t = Instant::now();
    for s in 0..5000u32 {
        let lb = s % 50 == 0;
        let mut spec = json!({"type": if lb { "LoadBalancer" } else { "ClusterIP" }, "ports": [{"port": 80, "name": "http"}]});
        if lb {
            spec["loadBalancerClass"] = json!("edgevip.io/vip");
        }
        let ns = format!("ns-{}", s % 100);
        k.api.apply(json!({"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": format!("svc-{s}"), "namespace": ns.clone(), "labels": {"app": format!("app-{s}")}},
            "spec": spec}));
        let eps: Vec<Value> = (0..10)
            .map(|e| {
                json!({"addresses": [format!("10.{}.{}.{}", s / 250, s % 250, e + 1)],
                "conditions": {"ready": true}, "nodeName": "edge-0"})
            })
            .collect();
        k.api.apply(
            json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": format!("svc-{s}-x1"), "namespace": ns,
                "labels": {"kubernetes.io/service-name": format!("svc-{s}")}},
            "addressType": "IPv4", "endpoints": eps,
            "ports": [{"port": 8080, "name": "http", "protocol": "TCP"}]}),
        );
    }
    let load = t.elapsed();
    // Wait until every node serves the 100 LoadBalancer VIPs (allocated, recorded, seen).
    let start = Instant::now();
    loop {
        let served: Vec<usize> = (0..3).map(|i| k.served_count(i)).collect();
        if served.iter().all(|&n| n == 100) {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "LB VIPs served: {served:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_secs(2));
    let writes = k
        .api
        .requests()
        .iter()
        .filter(|r| r.method == "PATCH" && r.path.ends_with("/status"))
        .count();
    println!("| Service status writes to record 100 allocations (one writer) | {writes} | 100 |");
    let rss_after: Vec<f64> = (0..3).map(|i| k.rss_mib(i)).collect();
    let max_after = rss_after.iter().cloned().fold(0.0, f64::max);
    println!(
        "| RSS per node with 5,000 Services / 50,000 endpoints in the API (100 LB Services served) | {:.1} MiB (before: {:.1}) | <= 64 MiB |",
        max_after,
        rss_before.iter().cloned().fold(0.0, f64::max)
    );
    // One unrelated Endpoints change and one unrelated Service change.
    let trans_before: Vec<u64> = (0..3).map(|i| transitions(&k, i)).collect();
    let rebuilds_before: Vec<u64> = (0..3).map(|i| rebuilds(&k, i)).collect();
    let reqs_before = k.api.requests().len();
    k.api.apply(
        json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": "svc-7-x1", "namespace": "ns-7",
            "labels": {"kubernetes.io/service-name": "svc-7"}},
        "addressType": "IPv4",
        "endpoints": [{"addresses": ["10.0.7.99"], "conditions": {"ready": true}}],
        "ports": [{"port": 8080, "name": "http", "protocol": "TCP"}]}),
    );
    k.api.apply(json!({"apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "svc-7", "namespace": "ns-7", "labels": {"app": "changed"}},
        "spec": {"type": "ClusterIP", "ports": [{"port": 81}]}}));
    std::thread::sleep(Duration::from_secs(1));
    let rebuilt: u64 = (0..3).map(|i| rebuilds(&k, i) - rebuilds_before[i]).sum();
    let moved: u64 = (0..3).map(|i| transitions(&k, i) - trans_before[i]).sum();
    println!(
        "| unrelated EndpointSlice + Service change: rebuilds / VRRP transitions on 3 nodes | {rebuilt} / {moved} | 0 VRRP changes |"
    );
    // What a rebuild costs when one is needed: a LoadBalancer Service changes. The
    // counter must move on every node, or the figure would be an older rebuild's.
    let rebuilds_before: Vec<u64> = (0..3).map(|i| rebuilds(&k, i)).collect();
    k.api.apply(json!({"apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "svc-0", "namespace": "ns-0", "labels": {"app": "relabelled"}},
        "spec": {"type": "LoadBalancer", "loadBalancerClass": "edgevip.io/vip", "ports": [{"port": 80}],
                 "loadBalancerIP": "203.0.113.250"}}));
    std::thread::sleep(Duration::from_secs(1));
    for (i, before) in rebuilds_before.iter().enumerate() {
        let now = rebuilds(&k, i);
        assert!(
            now > *before,
            "node {i}: no rebuild after a LoadBalancer Service change (rebuilds {before} -> {now})"
        );
    }
    let us: Vec<u64> = (0..3).map(|i| last_rebuild_us(&k, i)).collect();
    println!(
        "| full desired-state rebuild after a LoadBalancer Service change (max of 3 nodes) | {:.2} ms | <= 1 ms |",
        *us.iter().max().unwrap() as f64 / 1000.0
    );
    println!(
        "\n(5,000 Services + 5,000 EndpointSlices written to the fake API in {:.1} s; every node\n\
         watches both and keeps a few fields of each; API requests during the unrelated change: {})",
        load.as_secs_f64(),
        k.api.requests().len() - reqs_before
    );
}

/// The LoadBalancer scenario (issue 12, "How it is shown"): `n` Services on 3 nodes.
fn load_balancers(bin: &std::path::Path, quick: bool, n: usize) {
    // Dual-stack: the IPv6 VIPs' instances have the other nodes' IPv6 InternalIPs as peers.
    let Some(mut k) = KubeLab::dual_stack("bench-lb", 3, bin) else {
        std::process::exit(1);
    };
    k.set_configmap(json!({}));
    for i in NODES {
        k.start_node(i, &["--load-balancers", "--address-pool", LB_POOL]);
    }
    k.wait_ready(Duration::from_secs(20));
    // The allocator Lease is taken before the first create: round 1 must not time the
    // election.
    let elected =
        edgevip_lab::wait_until(Duration::from_secs(20), Duration::from_millis(50), || {
            NODES
                .iter()
                .any(|i| status(&k, *i)["kubernetes"]["status_writer"] == true)
        });
    assert!(elected, "no allocator after 20 s\n{}", k.cluster.logs());
    println!(
        "{n} LoadBalancer Services (class edgevip.io/vip, half IPv4, half IPv6; pool {LB_POOL}),\n\
         3 edge nodes, default settings (adverts 200 ms); created over HTTPS as a client does,\n\
         {PARALLEL_CREATES} in flight\n"
    );
    println!("| measurement | result | target |");
    println!("|---|---|---|");

    // 1. Create n, time the status of all, their serving and their masters; delete them
    // between rounds (fresh names each round).
    let rounds = if quick { 2 } else { 5 };
    let (mut creates, mut recorded, mut served, mut mastered) = (vec![], vec![], vec![], vec![]);
    let mut spreads = Vec::new();
    let mut live = Vec::new();
    let mut unserved = None;
    for r in 0..rounds {
        let svcs = names(r * n, n);
        let t = Instant::now();
        let objects: Vec<Value> = svcs
            .iter()
            .enumerate()
            .map(|(i, name)| lb_service_of(name, i % 2 == 0))
            .collect();
        creates.push(k.create_services(&objects, PARALLEL_CREATES));
        let took = k.wait_recorded(&svcs, t, Duration::from_millis(10), Duration::from_secs(60));
        recorded.push(took.unwrap_or_else(|| {
            panic!(
                "round {r}: status written for {} of {n} after 60 s\n{}",
                k.recorded_count(&svcs),
                k.cluster.logs()
            )
        }));
        let all_served =
            edgevip_lab::wait_until(Duration::from_secs(20), Duration::from_millis(20), || {
                NODES.iter().all(|i| k.served_count(*i) == n)
            });
        let counts: Vec<usize> = NODES.iter().map(|i| k.served_count(*i)).collect();
        eprintln!(
            "round {r}: creates {:.0} ms, status for all {:.0} ms, served {counts:?} of {n} at {:.0} ms",
            ms(creates[r]),
            ms(recorded[r]),
            ms(t.elapsed())
        );
        if all_served {
            served.push(t.elapsed());
        } else {
            unserved = Some((counts, problem(&k)));
        }
        // Only served VIPs can have a master.
        let (m, settled) = k.wait_mastery(
            &NODES,
            Duration::from_millis(50),
            Duration::from_secs(if all_served { 10 } else { 0 }),
            |m| m.settled(n),
        );
        if settled {
            mastered.push(t.elapsed());
        } else {
            eprintln!(
                "round {r}: {} of {n} Service VIPs have no master, {} more than one",
                n - m.vips.len() + m.unmastered(),
                m.contested()
            );
        }
        spreads.push(spread(&m.shares(&NODES)));
        if r + 1 == rounds {
            live = svcs;
            break;
        }
        k.delete_services(&svcs);
        let released =
            edgevip_lab::wait_until(Duration::from_secs(60), Duration::from_millis(50), || {
                NODES.iter().all(|i| k.served_count(*i) == 0)
            });
        if !released {
            let counts: Vec<usize> = NODES.iter().map(|i| k.served_count(*i)).collect();
            eprintln!("round {r}: still served {counts:?} 60 s after the deletion");
        }
    }
    let row = |what: &str, v: &[Duration], target: &str| {
        let (med, max, sp) = stats(v);
        println!(
            "| {what} (median of {}) | {med:.0} ms (max {max:.0}, spread {sp:.0}) | {target} |",
            v.len()
        );
    };
    row(&format!("{n} creates answered by the API"), &creates, "");
    row(
        &format!("first create -> status.loadBalancer.ingress written for all {n}"),
        &recorded,
        "<= 2000 ms",
    );
    if let Some((counts, why)) = unserved {
        println!(
            "| first create -> all {n} served by every node (its /status) | not within 20 s in {} of {rounds} rounds (served: {}; {why}) | |",
            rounds - served.len(),
            join(&counts)
        );
    } else {
        row(
            &format!("first create -> all {n} served by every node (its /status)"),
            &served,
            "",
        );
    }
    if mastered.len() == rounds {
        row(
            "first create -> every Service VIP has one master",
            &mastered,
            "",
        );
    } else {
        println!(
            "| first create -> every Service VIP has one master | not within 10 s in {} of {rounds} rounds | |",
            rounds - mastered.len()
        );
    }

    // 2. Share of masters per node, settled: the last round's n Services stay; a busy node
    // may still be applying them.
    let t = Instant::now();
    let (_, settled) = k.wait_mastery(
        &NODES,
        Duration::from_millis(200),
        Duration::from_secs(60),
        |m| m.settled(n),
    );
    println!(
        "| last round's {n} Services: every VIP has one master (waited after the round) | {} | |",
        if settled {
            format!("after {:.1} s more", t.elapsed().as_secs_f64())
        } else {
            "not within 60 s more".into()
        }
    );
    std::thread::sleep(Duration::from_secs(2));
    let before = k.mastery(&NODES);
    let shares = before.shares(&NODES);
    println!(
        "| Service VIPs mastered per node (node 0 / 1 / 2; unmastered, contested) | {} ({}, {}) | |",
        join(&shares),
        before.unmastered(),
        before.contested()
    );
    let (smed, smax, _) = edgevip_lab::procstat::stats(&spreads);
    println!(
        "| max/min master share, settled (inf: a node masters none) | {:.2} (the moment every VIP first had a master, median of {rounds} rounds: {smed:.2}, max {smax:.2}) | <= 1.5 |",
        spread(&shares)
    );

    // 4. Memory and CPU with the n Services in place.
    let rss: Vec<f64> = NODES.iter().map(|i| k.rss_mib(*i)).collect();
    println!(
        "| RSS per node with {n} Services settled (node 0 / 1 / 2) | {} MiB | <= 64 MiB |",
        join_f(&rss, 1)
    );
    let cpu: Vec<f64> = NODES.iter().map(|i| k.cpu_seconds(*i)).collect();
    println!(
        "| CPU per node since its start ({rounds} rounds of {n} creates and deletes) | {} s | |",
        join_f(&cpu, 2)
    );
    let idle_for = Duration::from_secs(if quick { 2 } else { 5 });
    std::thread::sleep(idle_for);
    let idle: Vec<f64> = NODES
        .iter()
        .zip(&cpu)
        .map(|(i, c)| (k.cpu_seconds(*i) - c) * 1000.0 / idle_for.as_secs_f64())
        .collect();
    println!(
        "| CPU per node serving {n} VIPs, idle ({} s) | {} ms/s | |",
        idle_for.as_secs(),
        join_f(&idle, 1)
    );

    // 3. SIGKILL the node with the largest share: only its VIPs should move.
    let before = k.mastery(&NODES);
    let shares = before.shares(&NODES);
    let victim = (0..NODES.len())
        .max_by_key(|i| (shares[*i], usize::MAX - i))
        .unwrap_or(0);
    let survivors: Vec<usize> = NODES.iter().copied().filter(|i| *i != victim).collect();
    let orphans: Vec<IpAddr> = before
        .vips
        .iter()
        .copied()
        .filter(|v| before.sole_master(*v) == Some(victim))
        .collect();
    let t = Instant::now();
    k.cluster.kill(victim);
    let (_, all_new) = k.wait_mastery(
        &survivors,
        Duration::from_millis(10),
        Duration::from_secs(15),
        |m: &Mastery| orphans.iter().all(|v| m.sole_master(*v).is_some()),
    );
    let took = t.elapsed();
    std::thread::sleep(Duration::from_secs(1));
    let after = k.mastery(&survivors);
    let moved = after.moved_since(&before);
    println!(
        "| SIGKILL node {victim} (largest share): Service VIPs that changed master | {moved} of {n} (its share: {}) | its share only |",
        orphans.len()
    );
    if orphans.is_empty() {
        println!("| SIGKILL -> all its VIPs have a new master | n/a: it mastered none | |");
    } else if all_new {
        println!(
            "| SIGKILL -> all {} of its VIPs have a new master | {:.0} ms | |",
            orphans.len(),
            took.as_secs_f64() * 1000.0
        );
    } else {
        println!(
            "| SIGKILL -> all {} of its VIPs have a new master | not within 15 s ({} have none) | |",
            orphans.len(),
            orphans
                .iter()
                .filter(|v| after.sole_master(**v).is_none())
                .count()
        );
    }
    println!(
        "\n(after the kill: nodes {survivors:?} master {} of the {} Service VIPs; {} unmastered, {} contested;\n\
         {} Services live)",
        join(&after.shares(&survivors)),
        after.vips.len(),
        after.unmastered(),
        after.contested(),
        live.len()
    );
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Why node 0 does not serve all LoadBalancer Services: the first of its
/// `load_balancer_problems` (one Service refused) or of its `rejected` entries (a whole
/// instance refused).
fn problem(k: &KubeLab) -> String {
    let st = k.node_status(0).unwrap_or_default();
    let kube = &st["kubernetes"];
    if let Some(p) = kube["load_balancer_problems"].as_object()
        && let Some((svc, why)) = p.iter().next()
    {
        return format!("node 0: {} Services refused, e.g. {svc}: {why}", p.len());
    }
    match kube["rejected"].as_array().and_then(|r| r.first()) {
        Some(r) => format!(
            "node 0 rejects {} {}: {}",
            r["object"].as_str().unwrap_or_default(),
            r["field"].as_str().unwrap_or_default(),
            r["message"].as_str().unwrap_or_default()
        ),
        None => "node 0 names no problem".into(),
    }
}

fn join(v: &[usize]) -> String {
    v.iter()
        .map(|x| x.to_string())
        .collect::<Vec<_>>()
        .join(" / ")
}

fn join_f(v: &[f64], decimals: usize) -> String {
    v.iter()
        .map(|x| format!("{x:.decimals$}"))
        .collect::<Vec<_>>()
        .join(" / ")
}

/// Median (the mean of the two middle values for an even count), max and spread, in ms.
fn stats(v: &[Duration]) -> (f64, f64, f64) {
    let ms: Vec<f64> = v.iter().map(|d| d.as_secs_f64() * 1000.0).collect();
    edgevip_lab::procstat::stats(&ms)
}

fn status(k: &KubeLab, i: usize) -> Value {
    k.node_status(i).expect("/status answers")
}

fn transitions(k: &KubeLab, i: usize) -> u64 {
    status(k, i)["instances"]
        .as_array()
        .map(|a| a.iter().filter_map(|x| x["transitions"].as_u64()).sum())
        .unwrap_or(0)
}

fn rebuilds(k: &KubeLab, i: usize) -> u64 {
    status(k, i)["kubernetes"]["rebuilds"].as_u64().unwrap_or(0)
}

fn last_rebuild_us(k: &KubeLab, i: usize) -> u64 {
    status(k, i)["kubernetes"]["last_rebuild_us"]
        .as_u64()
        .unwrap_or(0)
}
