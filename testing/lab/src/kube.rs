//! A Kubernetes-shaped lab: the fake API server (HTTPS, RBAC from the shipped manifests) in
//! a "control-plane" namespace on the bridge (the last host), edge nodes running
//! `edgevip run --kubernetes` against it as the edgevip ServiceAccount, and a stand-in
//! ingress (`GET /healthz` → 200 on 127.0.0.1:10254) in every node namespace. Shared by the
//! end-to-end tests and the Kubernetes benchmark.
//!
//! Two ways to reach the API, like a real deployment: a kubeconfig (`KubeLab::new`, the
//! token and CA inlined) or the in-cluster configuration (`KubeLab::new_in_cluster`: no
//! `--kubeconfig`; `KUBERNETES_SERVICE_HOST`/`PORT` set and the ServiceAccount's token,
//! ca.crt and namespace mounted at /var/run/secrets/kubernetes.io/serviceaccount inside a
//! mount namespace of the daemon's own).

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use edgevip_fakeapi::{FakeApi, Server};
use serde_json::{Value, json};

use crate::Cluster;

pub const CONFIGMAP_NS: &str = "edgevip";
pub const CONFIGMAP: &str = "vips";
pub const INGRESS_HEALTH: &str = "http://127.0.0.1:10254/healthz";

pub struct KubeLab {
    pub cluster: Cluster,
    pub api: FakeApi,
    server: Option<Server>,
    pub rt: tokio::runtime::Runtime,
    ingresses: Vec<Option<tokio::task::JoinHandle<()>>>,
    pub kubeconfig: PathBuf,
    pub nodes: usize,
    pods: Vec<Option<Vec<tokio::task::JoinHandle<()>>>>,
    /// In-cluster mode: the directory of the wrapper and the ServiceAccount files.
    in_cluster: Option<PathBuf>,
    /// `--ingress-check` given to the daemons; `None`: the daemon's default (`auto`).
    pub ingress_check: Option<String>,
    /// IPv6 on the segment ([`KubeLab::dual_stack`]): the Nodes list their IPv6 address too.
    pub ipv6: bool,
}

/// Starts the daemon as a pod would find itself: in a private mount namespace, a tmpfs
/// on /run (so nothing leaks to the host's) holding the ServiceAccount files at the
/// in-cluster path, the service environment set, no kubeconfig to find. Every step
/// `exec`s, so the daemon keeps the wrapper's pid (signals reach it).
const IN_CLUSTER_WRAPPER: &str = r#"#!/bin/sh
set -eu
SA_DIR=$(dirname "$0")
export KUBERNETES_SERVICE_HOST=@HOST@
export KUBERNETES_SERVICE_PORT=@PORT@
export HOME="$SA_DIR"
unset KUBECONFIG
exec unshare --mount --propagation private /bin/sh -euc '
mount -t tmpfs -o size=1m,mode=0755 edgevip-sa /run
mkdir -p /run/secrets/kubernetes.io/serviceaccount
cp "$1/token" "$1/ca.crt" "$1/namespace" /run/secrets/kubernetes.io/serviceaccount/
shift
exec "$@"' sh "$SA_DIR" @BIN@ "$@"
"#;

impl KubeLab {
    /// Like [`KubeLab::new`], but the daemons find the API through the in-cluster
    /// configuration (see the module comment). `None` when the lab cannot run here.
    pub fn new_in_cluster(test: &str, nodes: usize, bin: impl Into<PathBuf>) -> Option<KubeLab> {
        let bin: PathBuf = bin.into();
        let dir = std::env::temp_dir().join(format!("{}-sa", crate::unique_prefix()));
        let wrapper = dir.join("edgevip-in-pod");
        // The control plane's address is only known once the cluster exists: write the
        // wrapper after, it is only run by start_node.
        let mut k = Self::build(test, nodes, false, wrapper.clone())?;
        std::fs::create_dir_all(&dir).expect("service account dir");
        // Removed with the lab (Drop), also when a later step panics.
        k.in_cluster = Some(dir.clone());
        let api = k.api_addr();
        let files = [
            ("token", edgevip_fakeapi::EDGEVIP_TOKEN.to_string()),
            ("ca.crt", edgevip_fakeapi::ca_pem().to_string()),
            ("namespace", CONFIGMAP_NS.to_string()),
            (
                "edgevip-in-pod",
                IN_CLUSTER_WRAPPER
                    .replace("@HOST@", &api.ip().to_string())
                    .replace("@PORT@", &api.port().to_string())
                    .replace("@BIN@", &bin.display().to_string()),
            ),
        ];
        for (name, text) in files {
            std::fs::write(dir.join(name), text).expect("service account file");
        }
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755))
            .expect("wrapper mode");
        Some(k)
    }

    /// Where the API server listens (the control plane's address, port 6443).
    pub fn api_addr(&self) -> std::net::SocketAddr {
        std::net::SocketAddr::new(self.cluster.lab.host(self.nodes).ip4.into(), 6443)
    }
}

/// Port of the pods' TCP server (answers `podK <client address>`) and UDP echo (`podK`).
pub const POD_TCP: u16 = 8080;
pub const POD_UDP: u16 = 5353;

impl KubeLab {
    /// `nodes` edge nodes (hosts 0..nodes) and a control plane (host `nodes`). `None` when
    /// the lab cannot run here.
    pub fn new(test: &str, nodes: usize, bin: impl Into<PathBuf>) -> Option<KubeLab> {
        Self::build(test, nodes, false, bin.into())
    }

    /// Like [`KubeLab::new`], with IPv6 on the segment too: the nodes 2001:db8::11, …, the
    /// client 2001:db8::2 (the API server stays on IPv4).
    pub fn dual_stack(test: &str, nodes: usize, bin: impl Into<PathBuf>) -> Option<KubeLab> {
        Self::build(test, nodes, true, bin.into())
    }

    fn build(test: &str, nodes: usize, ipv6: bool, bin: PathBuf) -> Option<KubeLab> {
        let cluster = Cluster::new(test, nodes + 1, ipv6, bin)?;
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let cp = cluster.lab.host(nodes);
        let addr = format!("{}:6443", cp.ip4);
        let a = addr.clone();
        let listener = crate::in_netns(&cp.ns, move || std::net::TcpListener::bind(a))
            .expect("enter the control plane")
            .join()
            .expect("thread")
            .expect("entered")
            .expect("bind the API server");
        let api = FakeApi::new();
        let server = {
            let _g = rt.enter();
            api.serve(listener)
        };
        let kubeconfig = cluster.dir().join("kubeconfig");
        std::fs::write(
            &kubeconfig,
            edgevip_fakeapi::kubeconfig_yaml(server.addr(), edgevip_fakeapi::EDGEVIP_TOKEN),
        )
        .expect("kubeconfig");
        let mut k = KubeLab {
            cluster,
            api,
            server: Some(server),
            rt,
            ingresses: Vec::new(),
            kubeconfig,
            nodes,
            pods: Vec::new(),
            in_cluster: None,
            ingress_check: Some(INGRESS_HEALTH.into()),
            ipv6,
        };
        for i in 0..nodes {
            k.api.apply(k.node_object(i, true));
            let h = k.start_ingress(i);
            k.ingresses.push(Some(h));
        }
        Some(k)
    }

    pub fn node_name(i: usize) -> String {
        format!("edge-{i}")
    }

    pub fn node_object(&self, i: usize, edge: bool) -> Value {
        let h = self.cluster.lab.host(i);
        // A dual-stack node lists an InternalIP of each family, as the kubelet does with
        // --node-ip IPv4,IPv6.
        let mut addresses = vec![json!({"type": "InternalIP", "address": h.ip4.to_string()})];
        if self.ipv6 {
            addresses.push(json!({"type": "InternalIP", "address": h.ip6.to_string()}));
        }
        addresses.push(json!({"type": "Hostname", "address": Self::node_name(i)}));
        // Ready, as a kubelet reports it: the API server marks a Node without the
        // condition Unknown, as the node lifecycle controller does.
        json!({"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": Self::node_name(i),
                "labels": if edge { json!({"edgenode": "true"}) } else { json!({}) }},
            "status": {"addresses": addresses,
                "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady"}]}})
    }

    pub fn set_configmap(&self, data: Value) {
        self.api
            .apply(json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": CONFIGMAP, "namespace": CONFIGMAP_NS}, "data": data}));
    }

    /// Starts edgevip on node `i` in Kubernetes mode; `extra` arguments are appended.
    pub fn start_node(&mut self, i: usize, extra: &[&str]) {
        let mut args: Vec<String> = vec!["run".into(), "--kubernetes".into()];
        if self.in_cluster.is_none() {
            args.push("--kubeconfig".into());
            args.push(self.kubeconfig.display().to_string());
        }
        args.extend([
            "--node-name".into(),
            Self::node_name(i),
            "--services-configmap".into(),
            format!("{CONFIGMAP_NS}/{CONFIGMAP}"),
            "--api-listen".into(),
            crate::API.into(),
        ]);
        if let Some(check) = &self.ingress_check {
            args.extend(["--ingress-check".into(), check.clone()]);
        }
        args.extend(extra.iter().map(|s| s.to_string()));
        self.cluster.start_args(i, &args);
    }

    /// Waits until every node's `/readyz` answers 200.
    pub fn wait_ready(&self, timeout: Duration) {
        let start = Instant::now();
        while !(0..self.nodes).all(|i| {
            self.cluster
                .try_http_get(i, "/readyz")
                .is_some_and(|r| r.0 == 200)
        }) {
            assert!(
                start.elapsed() < timeout,
                "not ready\n{}",
                self.cluster.logs()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn start_ingress(&self, i: usize) -> tokio::task::JoinHandle<()> {
        let l = crate::in_netns(&self.cluster.lab.host(i).ns, || {
            std::net::TcpListener::bind("127.0.0.1:10254")
        })
        .expect("enter namespace")
        .join()
        .expect("thread")
        .expect("entered")
        .expect("bind the ingress");
        l.set_nonblocking(true).expect("nonblocking");
        self.rt.spawn(async move {
            let l = tokio::net::TcpListener::from_std(l).expect("tokio listener");
            let app = axum::Router::new().route("/healthz", axum::routing::get(|| async { "ok" }));
            let _ = axum::serve(l, app).await;
        })
    }

    /// Stops node `i`'s ingress: its health port refuses connections.
    pub fn stop_ingress(&mut self, i: usize) {
        if let Some(h) = self.ingresses[i].take() {
            h.abort();
        }
    }

    pub fn restart_ingress(&mut self, i: usize) {
        // The aborted server released the port once its task is dropped.
        std::thread::sleep(Duration::from_millis(50));
        let h = self.start_ingress(i);
        self.ingresses[i] = Some(h);
    }

    /// A pod network (198.51.100.0/24): nodes get .11, .12, … on a second bridge, `n` pods
    /// .101, .102, … each serving TCP `POD_TCP` and UDP `POD_UDP`.
    pub fn add_pods(&mut self, n: usize) {
        let names = self
            .cluster
            .lab
            .add_pod_network(
                n,
                |i| format!("198.51.100.{}/24", 11 + i),
                |k| format!("198.51.100.{}/24", 101 + k),
            )
            .expect("pod network");
        for (k, ns) in names.iter().enumerate() {
            let h = self.start_pod(k, ns);
            self.pods.push(Some(h));
        }
    }

    pub fn pod_ip(k: usize) -> IpAddr {
        format!("198.51.100.{}", 101 + k).parse().expect("address")
    }

    fn start_pod(&self, k: usize, ns: &str) -> Vec<tokio::task::JoinHandle<()>> {
        let (t, u) = crate::in_netns(ns, || {
            (
                std::net::TcpListener::bind(("0.0.0.0", POD_TCP)),
                std::net::UdpSocket::bind(("0.0.0.0", POD_UDP)),
            )
        })
        .expect("enter pod")
        .join()
        .expect("thread")
        .expect("entered");
        let (t, u) = (t.expect("pod tcp"), u.expect("pod udp"));
        t.set_nonblocking(true).expect("nonblocking");
        u.set_nonblocking(true).expect("nonblocking");
        let name = format!("pod{k}");
        let tcp = self.rt.spawn({
            let name = name.clone();
            async move {
                use tokio::io::{AsyncReadExt, AsyncWriteExt};
                let l = tokio::net::TcpListener::from_std(t).expect("listener");
                while let Ok((mut c, peer)) = l.accept().await {
                    let name = name.clone();
                    tokio::spawn(async move {
                        let mut buf = vec![0u8; 512];
                        let mut n = 0;
                        // Read the request line (after a PROXY header, if any).
                        while n < buf.len() && !buf[..n].ends_with(b"\n") {
                            match tokio::time::timeout(
                                Duration::from_secs(2),
                                c.read(&mut buf[n..]),
                            )
                            .await
                            {
                                Ok(Ok(0)) | Ok(Err(_)) | Err(_) => break,
                                Ok(Ok(m)) => n += m,
                            }
                        }
                        let client = edgevip_forward::proxy_header::decode(&buf[..n])
                            .map_or(peer, |(c, _)| c);
                        let _ = c.write_all(format!("{name} {client}\n").as_bytes()).await;
                    });
                }
            }
        });
        let udp = self.rt.spawn(async move {
            let s = tokio::net::UdpSocket::from_std(u).expect("udp");
            let mut buf = [0u8; 512];
            while let Ok((_, peer)) = s.recv_from(&mut buf).await {
                let _ = s.send_to(name.as_bytes(), peer).await;
            }
        });
        vec![tcp, udp]
    }

    /// Stops pod `k`'s servers (its address stays: connections are refused).
    pub fn stop_pod(&mut self, k: usize) {
        for h in self.pods[k].take().into_iter().flatten() {
            h.abort();
        }
    }

    /// One TCP request from the client namespace: the answer line, or `None`.
    /// Sends TCP requests to `target` until one is answered and returns how long that
    /// took from `since`; fails the test (with the logs) once `bound` has passed.
    pub fn wait_served(
        &self,
        target: std::net::SocketAddr,
        since: Instant,
        bound: Duration,
    ) -> Duration {
        while self.tcp_request(target).is_none() {
            assert!(
                since.elapsed() < bound,
                "{target} not served {bound:?} after\n{}",
                self.cluster.logs()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        since.elapsed()
    }

    pub fn tcp_request(&self, target: std::net::SocketAddr) -> Option<String> {
        use std::io::{Read, Write};
        crate::in_netns(
            self.cluster.lab.client_ns(),
            move || -> std::io::Result<String> {
                let mut s =
                    std::net::TcpStream::connect_timeout(&target, Duration::from_millis(500))?;
                s.set_read_timeout(Some(Duration::from_secs(2)))?;
                s.write_all(b"hello\n")?;
                let mut out = String::new();
                s.read_to_string(&mut out)?;
                Ok(out.trim().to_string())
            },
        )
        .expect("enter client")
        .join()
        .expect("thread")
        .expect("entered")
        .ok()
        .filter(|s| !s.is_empty())
    }

    /// One UDP request from the client namespace.
    pub fn udp_request(&self, target: std::net::SocketAddr) -> Option<String> {
        crate::in_netns(
            self.cluster.lab.client_ns(),
            move || -> std::io::Result<String> {
                let s = std::net::UdpSocket::bind(("0.0.0.0", 0))?;
                s.set_read_timeout(Some(Duration::from_millis(500)))?;
                s.send_to(b"ping", target)?;
                let mut buf = [0u8; 512];
                let (n, _) = s.recv_from(&mut buf)?;
                Ok(String::from_utf8_lossy(&buf[..n]).into_owned())
            },
        )
        .expect("enter client")
        .join()
        .expect("thread")
        .expect("entered")
        .ok()
    }

    /// An EndpointSlice of `ns/service` listing `pods` (all ready) on the pod ports.
    pub fn set_endpoints(&self, ns: &str, service: &str, pods: &[usize]) {
        let endpoints: Vec<Value> = pods
            .iter()
            .map(|k| json!({"addresses": [Self::pod_ip(*k).to_string()], "conditions": {"ready": true}}))
            .collect();
        let ports = json!([{"name": "http", "port": POD_TCP, "protocol": "TCP"},
                           {"name": "dns", "port": POD_UDP, "protocol": "UDP"}]);
        self.apply_slice(ns, service, endpoints, ports);
    }

    /// An EndpointSlice of `ns/service` with one ready endpoint (a pod address of the
    /// pod network's range) on each edge node of `nodes`, `nodeName` set as the
    /// EndpointSlice controller sets it: what `externalTrafficPolicy: Local` looks at.
    /// An empty `nodes`: a slice without endpoints.
    pub fn set_endpoints_on_nodes(&self, ns: &str, service: &str, nodes: &[usize]) {
        let endpoints: Vec<Value> = nodes
            .iter()
            .map(|i| {
                json!({"addresses": [Self::pod_ip(*i).to_string()],
                    "nodeName": Self::node_name(*i),
                    "conditions": {"ready": true, "serving": true, "terminating": false}})
            })
            .collect();
        let ports = json!([{"name": "http", "port": POD_TCP, "protocol": "TCP"}]);
        self.apply_slice(ns, service, endpoints, ports);
    }

    /// The one IPv4 EndpointSlice of `ns/service`, as the EndpointSlice controller labels it.
    fn apply_slice(&self, ns: &str, service: &str, endpoints: Vec<Value>, ports: Value) {
        self.api.apply(
            json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": format!("{service}-abc"), "namespace": ns,
                "labels": {"kubernetes.io/service-name": service}},
            "addressType": "IPv4", "endpoints": endpoints, "ports": ports}),
        );
    }

    /// A Service `ns/service` with ports 80/TCP (http) and 53/UDP (dns).
    pub fn set_service(&self, ns: &str, service: &str) {
        self.api.apply(json!({"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": service, "namespace": ns},
            "spec": {"type": "ClusterIP", "ports": [
                {"name": "http", "port": 80, "protocol": "TCP", "targetPort": "http"},
                {"name": "dns", "port": 53, "protocol": "UDP", "targetPort": "dns"}]}}));
    }

    /// Takes the API server away: open watches break, new connections are refused.
    pub fn stop_api(&mut self) {
        if let Some(s) = self.server.take() {
            s.shutdown();
        }
    }

    /// Brings the API server back after [`KubeLab::stop_api`], on the same address and with
    /// the same objects (clients reconnect with the CA they have). Retries the bind for a
    /// while: the stopped server closes its listener asynchronously.
    pub fn restart_api(&mut self) {
        if self.server.is_some() {
            return;
        }
        let (ns, addr) = (
            self.cluster.lab.host(self.nodes).ns.clone(),
            self.api_addr(),
        );
        let start = Instant::now();
        let listener = loop {
            let bound = crate::in_netns(&ns, move || std::net::TcpListener::bind(addr))
                .expect("enter the control plane")
                .join()
                .expect("thread")
                .expect("entered");
            match bound {
                Ok(l) => break l,
                Err(_) if start.elapsed() < Duration::from_secs(5) => {
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(e) => panic!("rebind the API server on {addr}: {e}"),
            }
        };
        let _g = self.rt.enter();
        self.server = Some(self.api.serve(listener));
    }

    /// Polls (every `poll`) until `vip` is a local address of node `i`; returns the time
    /// it took, measured in-process: bind() to the address succeeds only once it is there.
    pub fn wait_vip_local(
        &self,
        i: usize,
        vip: IpAddr,
        poll: Duration,
        timeout: Duration,
    ) -> Option<Duration> {
        let ns = self.cluster.lab.host(i).ns.clone();
        crate::in_netns(&ns, move || {
            let start = Instant::now();
            while start.elapsed() < timeout {
                if std::net::UdpSocket::bind((vip, 0)).is_ok() {
                    return Some(start.elapsed());
                }
                std::thread::sleep(poll);
            }
            None
        })
        .expect("enter namespace")
        .join()
        .expect("thread")
        .flatten()
    }
}

/// Answers that mean the API server refuses what the daemon does (a missing permission,
/// an object it would not accept, a patch type it does not speak), as opposed to the
/// conflicts, expiries and injected faults a client must ride out.
const REFUSALS: &[u16] = &[400, 401, 403, 415, 422];

impl KubeLab {
    /// Requests the API server refused outright (see `REFUSALS`), as `METHOD path -> code
    /// message` lines. Checked when the lab is dropped: every test in this lab shows that
    /// the shipped RBAC and the API's validation accept everything the daemon does.
    pub fn refused(&self) -> Vec<String> {
        self.api
            .requests()
            .iter()
            .filter(|r| REFUSALS.contains(&r.status))
            .map(|r| {
                format!(
                    "{} {} -> {} {}",
                    r.method,
                    r.path,
                    r.status,
                    r.error.as_deref().unwrap_or_default()
                )
            })
            .collect()
    }
}

impl Drop for KubeLab {
    fn drop(&mut self) {
        let refused = self.refused();
        self.stop_api();
        for h in self.ingresses.iter_mut().filter_map(Option::take) {
            h.abort();
        }
        for h in self.pods.iter_mut().filter_map(Option::take).flatten() {
            h.abort();
        }
        if let Some(dir) = self.in_cluster.take() {
            let _ = std::fs::remove_dir_all(dir);
        }
        // After the clean-up; the cluster (daemons, namespaces) is dropped during unwinding.
        if !refused.is_empty() && !std::thread::panicking() {
            panic!(
                "the API server refused requests of the daemon:\n{}",
                refused.join("\n")
            );
        }
    }
}
