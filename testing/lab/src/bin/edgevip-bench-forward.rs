//! The forwarding benchmark (issue 5), on the Kubernetes lab with two "pods" behind the
//! edge nodes: wrk from the client through the VIP in NAT mode vs straight to one pod
//! (routed through the same node), and edgevip's PROXY mode vs HAProxy 2.6 doing the same
//! job (TCP, send-proxy, round robin over both pods) on the same node, in the same run.
//! Two runs: keep-alive connections, and one connection per request (`Connection: close`),
//! where connection setup and the choice of a backend count. Each row is the round with
//! the median requests/s, with that round's own p99. Then the time the daemon's NAT apply
//! (`Nat::apply`, which pipes the rule set to `nft -j -f -`) takes to replace the rules of
//! a Service with 1,000 endpoints, timed inside the node's namespace (no `ip netns exec`).
//!
//! Usage: edgevip-bench-forward [--edgevip PATH] [--quick]   (as root; `bench/forwarding`)

use std::net::SocketAddr;
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use edgevip_lab::KubeLab;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const VIP_NAT: &str = "192.0.2.100";
const VIP_PROXY: &str = "192.0.2.101";
const HTTP_PORT: u16 = 8090;

fn main() {
    edgevip_lab::cleanup_on_panic();
    let edgevip_lab::BenchArgs { bin, quick } = edgevip_lab::BenchArgs::parse();
    for tool in ["wrk", "haproxy", "nft"] {
        if Command::new("which")
            .arg(tool)
            .output()
            .map_or(true, |o| !o.status.success())
        {
            eprintln!("{tool} is not installed: apt-get install wrk haproxy nftables");
            std::process::exit(1);
        }
    }
    let Some(mut k) = KubeLab::new("bench-fwd", 3, &bin) else {
        std::process::exit(1);
    };
    k.add_pods(2);
    let pod = KubeLab::pod_ip(0);
    let pod1 = KubeLab::pod_ip(1);
    http_server(&k, 0);
    http_server(&k, 1);
    k.set_service("web", "front");
    k.api.apply(json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": "front-abc", "namespace": "web", "labels": {"kubernetes.io/service-name": "front"}},
        "addressType": "IPv4",
        "endpoints": [{"addresses": [pod.to_string()], "conditions": {"ready": true}},
                      {"addresses": [pod1.to_string()], "conditions": {"ready": true}}],
        "ports": [{"name": "http", "port": HTTP_PORT, "protocol": "TCP"}]}));
    for i in 0..3 {
        k.start_node(i, &["--advert-interval", "100ms"]);
    }
    k.wait_ready(Duration::from_secs(20));
    k.set_configmap(json!({VIP_NAT: "web/front", VIP_PROXY: "web/front:PROXY"}));
    let m = k
        .cluster
        .single_holder(VIP_NAT, None, Duration::from_secs(10));
    k.cluster
        .single_holder(VIP_PROXY, None, Duration::from_secs(10));
    // Straight to the pod: the client routes the pod network through the master, the pod
    // routes the client network back through it.
    let node = k.cluster.lab.host(m).clone();
    let master_pod_side = format!("198.51.100.{}", 11 + m);
    ip_ns(
        k.cluster.lab.client_ns(),
        &[
            "route",
            "add",
            "198.51.100.0/24",
            "via",
            &node.ip4.to_string(),
        ],
    );
    let pod_ns = pod_namespace(&k);
    ip_ns(
        &pod_ns,
        &["route", "add", "192.0.2.0/24", "via", &master_pod_side],
    );
    // HAProxy on the master, same job as the PROXY entry: TCP, PROXY v1 to the pod.
    let cfg = k.cluster.dir().join("haproxy.cfg");
    std::fs::write(
        &cfg,
        format!(
            "global\n  maxconn 4096\ndefaults\n  mode tcp\n  timeout connect 2s\n  timeout client 30s\n  timeout server 30s\n\
             frontend f\n  bind {}:8082\n  default_backend b\nbackend b\n  balance roundrobin\n  server s0 {pod}:{HTTP_PORT} send-proxy\n  server s1 {pod1}:{HTTP_PORT} send-proxy\n",
            node.ip4
        ),
    )
    .unwrap();
    let mut ha = Command::new("ip");
    ha.args(["netns", "exec", &node.ns, "haproxy", "-db", "-f"])
        .arg(&cfg);
    let mut haproxy = ha.spawn().expect("haproxy");
    std::thread::sleep(Duration::from_millis(500));

    let secs = if quick { 3 } else { 10 };
    // Rounds interleave the paths, so a noisy moment on the shared cores hits all of them.
    let rounds = if quick { 1 } else { 3 };
    let urls = [
        format!("http://{pod}:{HTTP_PORT}/"),
        format!("http://{VIP_NAT}:80/"),
        format!("http://{VIP_PROXY}:80/"),
        format!("http://{}:8082/", node.ip4),
    ];
    for close in [false, true] {
        if close {
            println!(
                "\none connection per request: wrk -t1 -c32 -d{secs}s -H \"Connection: close\" (the pod closes"
            );
            println!(
                "after each answer; the client connects again); round with the median requests/s of {rounds}\n"
            );
        } else {
            println!(
                "wrk -t1 -c32 -d{secs}s from the client, keep-alive, pods answering a tiny HTTP response;"
            );
            println!(
                "round with the median requests/s of {rounds} interleaved rounds, with its own p99\n"
            );
        }
        println!("| path | requests/s | p99 ms | errors | answered by pod 0 / pod 1 | ratio |");
        println!("|---|---|---|---|---|---|");
        let mut runs: Vec<Vec<Wrk>> = vec![Vec::new(); urls.len()];
        for _ in 0..rounds {
            for (u, r) in urls.iter().zip(runs.iter_mut()) {
                r.push(wrk(&k, u, secs, close));
            }
        }
        let [direct, nat, proxy, hap] = [0, 1, 2, 3].map(|i| median_round(&runs[i]));
        let row = |path: &str, w: &Wrk, ratio: String| {
            println!(
                "| {path} | {:.0} | {:.2} | {} | {} / {} | {ratio} |",
                w.rps, w.p99, w.errors, w.served[0], w.served[1]
            );
        };
        row(
            "straight to pod 0 (routed via the node)",
            &direct,
            String::new(),
        );
        row(
            "VIP, NAT mode (2 pods)",
            &nat,
            format!(
                "{:.3} of direct (overhead {:.1}%)",
                nat.rps / direct.rps,
                (1.0 - nat.rps / direct.rps) * 100.0
            ),
        );
        row(
            "HAProxy 2.6, TCP + send-proxy, round robin (2 pods)",
            &hap,
            String::new(),
        );
        row(
            "VIP, edgevip PROXY mode (2 pods)",
            &proxy,
            format!(
                "{:.2}x HAProxy's requests/s, p99 {:.2}x",
                proxy.rps / hap.rps,
                proxy.p99 / hap.p99
            ),
        );
    }
    let _ = haproxy.kill();
    let _ = haproxy.wait();

    // Rule replacement for a Service with 1,000 endpoints, as the daemon does it.
    let backends: Vec<SocketAddr> = (0..1000)
        .map(|i| {
            format!("10.{}.{}.{}:8080", 1 + i / 65536, (i / 256) % 256, i % 256)
                .parse()
                .unwrap()
        })
        .collect();
    let svc = edgevip_forward::NatService {
        vip: VIP_NAT.parse().unwrap(),
        port: 80,
        proto: edgevip_forward::Proto::Tcp,
        backends,
    };
    let n = if quick { 3 } else { 10 };
    // Inside the namespace of a node: only the apply (the rule set built and run through
    // `nft -j -f -`, as the daemon's NAT keeper does) is timed.
    let took = edgevip_lab::in_netns(&k.cluster.lab.host(2).ns, move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        (0..n)
            .map(|_| {
                let nft = edgevip_forward::nat::Nft::default();
                let t = Instant::now();
                let set = edgevip_forward::nat::ruleset(std::slice::from_ref(&svc));
                let applied = rt.block_on(nft.run(&set));
                let took = t.elapsed();
                assert!(applied.is_ok(), "apply: {applied:?}");
                took.as_secs_f64() * 1000.0
            })
            .collect::<Vec<f64>>()
    })
    .expect("enter node")
    .join()
    .expect("apply thread")
    .expect("entered");
    let (med, max, spread) = edgevip_lab::procstat::stats(&took);
    println!(
        "\nrule update, one Service with 1,000 endpoints (rule set built and applied by nft -j -f -, whole table swapped), {n} applies: median {med:.1} ms, max {max:.1} ms, spread {spread:.1} ms (target <= 50 ms)"
    );
}

fn ip_ns(ns: &str, args: &[&str]) {
    let out = Command::new("ip")
        .args(["-n", ns])
        .args(args)
        .output()
        .expect("ip");
    assert!(
        out.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn pod_namespace(k: &KubeLab) -> String {
    let client = k.cluster.lab.client_ns().to_string();
    // Pod namespaces share the lab's prefix: "<prefix>-pod0".
    let prefix = client.rsplit_once('-').map(|x| x.0).unwrap_or("");
    format!("{prefix}-pod0")
}

/// One wrk run.
#[derive(Debug, Clone, Copy)]
struct Wrk {
    rps: f64,
    p99: f64,
    /// Socket errors (connect, read, write, timeout) and non-2xx answers.
    errors: u64,
    /// Requests each pod answered during the run (balancing, seen from the pods).
    served: [u64; 2],
}

/// Requests answered per pod, counted by the pods' HTTP servers.
static SERVED: [AtomicU64; 2] = [AtomicU64::new(0), AtomicU64::new(0)];

/// The round with the median requests/s (the lower middle one for an even count), so its
/// requests/s and p99 come from the same round.
fn median_round(v: &[Wrk]) -> Wrk {
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.rps.total_cmp(&b.rps));
    s[(s.len() - 1) / 2]
}

/// wrk from the client namespace; `close` asks for one connection per request.
fn wrk(k: &KubeLab, url: &str, secs: u64, close: bool) -> Wrk {
    let mut cmd = Command::new("ip");
    cmd.args([
        "netns",
        "exec",
        k.cluster.lab.client_ns(),
        "wrk",
        "-t1",
        "-c32",
    ])
    .arg(format!("-d{secs}s"));
    if close {
        cmd.args(["-H", "Connection: close"]);
    }
    let before = SERVED.each_ref().map(|c| c.load(Ordering::Relaxed));
    let out = cmd.args(["--latency", url]).output().expect("wrk");
    let served = [0, 1].map(|i| SERVED[i].load(Ordering::Relaxed) - before[i]);
    let text = String::from_utf8_lossy(&out.stdout);
    let rps = text
        .lines()
        .find_map(|l| l.strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("wrk {url}: {text}"));
    let p99 = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("99%"))
        .map(|v| parse_latency(v.trim()))
        .unwrap_or(f64::NAN);
    Wrk {
        rps,
        p99,
        errors: wrk_errors(&text),
        served,
    }
}

/// "Socket errors: connect 0, read 3, write 0, timeout 0" and "Non-2xx or 3xx responses: 5".
fn wrk_errors(text: &str) -> u64 {
    let mut n = 0;
    for l in text.lines() {
        let l = l.trim();
        if let Some(rest) = l.strip_prefix("Socket errors:") {
            n += rest
                .split(',')
                .filter_map(|p| p.split_whitespace().nth(1)?.parse::<u64>().ok())
                .sum::<u64>();
        } else if let Some(rest) = l.strip_prefix("Non-2xx or 3xx responses:") {
            n += rest.trim().parse::<u64>().unwrap_or(0);
        }
    }
    n
}

fn parse_latency(v: &str) -> f64 {
    let (num, unit) = v.split_at(v.find(|c: char| c.is_alphabetic()).unwrap_or(v.len()));
    let x: f64 = num.parse().unwrap_or(f64::NAN);
    match unit {
        "us" => x / 1000.0,
        "ms" => x,
        "s" => x * 1000.0,
        _ => f64::NAN,
    }
}

/// A minimal HTTP/1.1 keep-alive server in pod `k` that strips a PROXY header if present
/// and closes after answering a request that says `Connection: close`.
fn http_server(k: &KubeLab, pod: usize) {
    let ns = pod_namespace(k).replace("pod0", &format!("pod{pod}"));
    let l = edgevip_lab::in_netns(&ns, || std::net::TcpListener::bind(("0.0.0.0", HTTP_PORT)))
        .expect("enter pod")
        .join()
        .expect("thread")
        .expect("entered")
        .expect("bind");
    l.set_nonblocking(true).unwrap();
    k.rt.spawn(async move {
        let l = tokio::net::TcpListener::from_std(l).unwrap();
        while let Ok((mut c, _)) = l.accept().await {
            let _ = c.set_nodelay(true);
            tokio::spawn(async move {
                let mut buf = Vec::with_capacity(4096);
                let mut first = true;
                let mut tmp = [0u8; 4096];
                loop {
                    let n = match c.read(&mut tmp).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => n,
                    };
                    buf.extend_from_slice(&tmp[..n]);
                    if first {
                        if let Some((_, len)) = edgevip_forward::proxy_header::decode(&buf) {
                            buf.drain(..len);
                        }
                        first = false;
                    }
                    while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        let close = String::from_utf8_lossy(&buf[..end])
                            .to_ascii_lowercase()
                            .contains("connection: close");
                        buf.drain(..end + 4);
                        SERVED[pod].fetch_add(1, Ordering::Relaxed);
                        let answer: &[u8] = if close {
                            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
                        } else {
                            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
                        };
                        if c.write_all(answer).await.is_err() || close {
                            let _ = c.shutdown().await;
                            return;
                        }
                    }
                }
            });
        }
    });
}
