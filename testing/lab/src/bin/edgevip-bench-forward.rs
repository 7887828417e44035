//! The forwarding benchmark (issue 5), on the Kubernetes lab with one "pod" behind the
//! edge nodes: wrk from the client through the VIP in NAT mode vs straight to the pod
//! (routed through the same node), and edgevip's PROXY mode vs HAProxy 2.6 doing the same
//! job (TCP, send-proxy) on the same node, in the same run; then the time nft takes to
//! replace the rules of a Service with 1,000 endpoints. Prints a table with the ratios.
//!
//! Usage: edgevip-bench-forward [--edgevip PATH] [--quick]   (as root; `bench/forwarding`)

use std::net::SocketAddr;
use std::process::Command;
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
    k.add_pods(1);
    let pod = KubeLab::pod_ip(0);
    http_server(&k, 0);
    k.set_service("web", "front");
    k.api.apply(json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": "front-abc", "namespace": "web", "labels": {"kubernetes.io/service-name": "front"}},
        "addressType": "IPv4",
        "endpoints": [{"addresses": [pod.to_string()], "conditions": {"ready": true}}],
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
             frontend f\n  bind {}:8082\n  default_backend b\nbackend b\n  server s {pod}:{HTTP_PORT} send-proxy\n",
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
    println!("wrk -t1 -c32 -d{secs}s from the client, one pod answering a tiny HTTP response;");
    println!("median of 3 interleaved rounds (1 with --quick)\n");
    println!("| path | requests/s | p99 ms | ratio |");
    println!("|---|---|---|---|");
    // Rounds interleave the paths, so a noisy moment on the shared cores hits all of them;
    // each figure is the median of its rounds.
    let rounds = if quick { 1 } else { 3 };
    let urls = [
        format!("http://{pod}:{HTTP_PORT}/"),
        format!("http://{VIP_NAT}:80/"),
        format!("http://{VIP_PROXY}:80/"),
        format!("http://{}:8082/", node.ip4),
    ];
    let mut runs: Vec<Vec<(f64, f64)>> = vec![Vec::new(); urls.len()];
    for _ in 0..rounds {
        for (u, r) in urls.iter().zip(runs.iter_mut()) {
            r.push(wrk(&k, u, secs));
        }
    }
    let med = |v: &[(f64, f64)]| {
        let mut a: Vec<f64> = v.iter().map(|x| x.0).collect();
        let mut b: Vec<f64> = v.iter().map(|x| x.1).collect();
        a.sort_by(f64::total_cmp);
        b.sort_by(f64::total_cmp);
        (a[a.len() / 2], b[b.len() / 2])
    };
    let (direct, nat, proxy, hap) = (med(&runs[0]), med(&runs[1]), med(&runs[2]), med(&runs[3]));
    let _ = haproxy.kill();
    let _ = haproxy.wait();
    println!(
        "| straight to the pod (routed via the node) | {:.0} | {:.2} | |",
        direct.0, direct.1
    );
    println!(
        "| VIP, NAT mode | {:.0} | {:.2} | {:.3} of direct (overhead {:.1}%) |",
        nat.0,
        nat.1,
        nat.0 / direct.0,
        (1.0 - nat.0 / direct.0) * 100.0
    );
    println!(
        "| HAProxy 2.6, TCP + send-proxy | {:.0} | {:.2} | |",
        hap.0, hap.1
    );
    println!(
        "| VIP, edgevip PROXY mode | {:.0} | {:.2} | {:.2}x HAProxy's requests/s, p99 {:.2}x |",
        proxy.0,
        proxy.1,
        proxy.0 / hap.0,
        proxy.1 / hap.1
    );

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
    let text = serde_json::to_string(&edgevip_forward::nat::ruleset(&[svc])).unwrap();
    let mut took = Vec::new();
    for _ in 0..if quick { 3 } else { 10 } {
        let t = Instant::now();
        nft_in(&k.cluster.lab.host(2).ns, &text);
        took.push(t.elapsed());
    }
    took.sort();
    println!(
        "\nrule update, one Service with 1,000 endpoints (nft -j -f, whole table swapped): median {:.1} ms, max {:.1} ms (target <= 50 ms)",
        took[took.len() / 2].as_secs_f64() * 1000.0,
        took[took.len() - 1].as_secs_f64() * 1000.0
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

fn nft_in(ns: &str, json: &str) {
    use std::io::Write;
    let mut c = Command::new("ip")
        .args(["netns", "exec", ns, "nft", "-j", "-f", "-"])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .expect("nft");
    c.stdin.take().unwrap().write_all(json.as_bytes()).unwrap();
    assert!(c.wait().unwrap().success());
}

/// (requests/s, p99 ms) from wrk run in the client namespace.
fn wrk(k: &KubeLab, url: &str, secs: u64) -> (f64, f64) {
    let out = Command::new("ip")
        .args([
            "netns",
            "exec",
            k.cluster.lab.client_ns(),
            "wrk",
            "-t1",
            "-c32",
        ])
        .arg(format!("-d{secs}s"))
        .args(["--latency", url])
        .output()
        .expect("wrk");
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
    (rps, p99)
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

/// A minimal HTTP/1.1 keep-alive server in pod `k` that strips a PROXY header if present.
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
                        buf.drain(..end + 4);
                        if c.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                            .await
                            .is_err()
                        {
                            return;
                        }
                    }
                }
            });
        }
    });
}
