//! A Kubernetes-shaped lab: the fake API server in a "control-plane" namespace on the
//! bridge (the last host), edge nodes running `edgevip run --kubernetes` against it, and a
//! stand-in ingress (`GET /healthz` → 200 on 127.0.0.1:10254) in every node namespace.
//! Shared by the end-to-end tests and the Kubernetes benchmark.

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
}

impl KubeLab {
    /// `nodes` edge nodes (hosts 0..nodes) and a control plane (host `nodes`). `None` when
    /// the lab cannot run here.
    pub fn new(test: &str, nodes: usize, bin: impl Into<PathBuf>) -> Option<KubeLab> {
        let cluster = Cluster::new(test, nodes + 1, false, bin)?;
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
            format!(
                "apiVersion: v1\nkind: Config\nclusters: [{{name: lab, cluster: {{server: \"http://{addr}\"}}}}]\n\
                 users: [{{name: lab, user: {{}}}}]\ncontexts: [{{name: lab, context: {{cluster: lab, user: lab}}}}]\ncurrent-context: lab\n"
            ),
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
        json!({"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": Self::node_name(i),
                "labels": if edge { json!({"edgenode": "true"}) } else { json!({}) }},
            "status": {"addresses": [{"type": "InternalIP", "address": h.ip4.to_string()},
                {"type": "Hostname", "address": Self::node_name(i)}]}})
    }

    pub fn set_configmap(&self, data: Value) {
        self.api
            .apply(json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": CONFIGMAP, "namespace": CONFIGMAP_NS}, "data": data}));
    }

    /// Starts edgevip on node `i` in Kubernetes mode; `extra` arguments are appended.
    pub fn start_node(&mut self, i: usize, extra: &[&str]) {
        let mut args: Vec<String> = vec![
            "run".into(),
            "--kubernetes".into(),
            "--kubeconfig".into(),
            self.kubeconfig.display().to_string(),
            "--node-name".into(),
            Self::node_name(i),
            "--services-configmap".into(),
            format!("{CONFIGMAP_NS}/{CONFIGMAP}"),
            "--api-listen".into(),
            crate::API.into(),
            "--ingress-check".into(),
            INGRESS_HEALTH.into(),
        ];
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

    /// Takes the API server away: open watches break, new connections are refused.
    pub fn stop_api(&mut self) {
        if let Some(s) = self.server.take() {
            s.shutdown();
        }
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

impl Drop for KubeLab {
    fn drop(&mut self) {
        self.stop_api();
        for h in self.ingresses.iter_mut().filter_map(Option::take) {
            h.abort();
        }
    }
}
