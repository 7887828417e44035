//! The command line (a contract: `run --config`, `run --config-env`, `check --config`,
//! `status --api`, `manifest static-pod`, `--log-format text|json`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "edgevip",
    version,
    about = "Keeps a virtual IP on exactly one healthy edge node (VRRP v2/v3)."
)]
pub struct Cli {
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Log filter (tracing EnvFilter syntax), e.g. `info` or `edgevip=debug`.
    #[arg(long, global = true, env = "EDGEVIP_LOG", default_value = "info")]
    pub log_level: String,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon: SIGHUP reloads the config, SIGTERM/SIGINT hand over and exit.
    Run {
        #[arg(long, short, required_unless_present_any = ["kubernetes", "config_env"])]
        config: Option<PathBuf>,
        /// Read the config (YAML) from this environment variable instead of a file: a
        /// static Pod carries its config in its own manifest (`edgevip manifest static-pod`).
        #[arg(long, value_name = "VAR", conflicts_with_all = ["config", "kubernetes"])]
        config_env: Option<String>,
        /// Take instances, VIPs and peers from the cluster instead of a file.
        #[arg(long, conflicts_with = "config")]
        kubernetes: bool,
        #[command(flatten)]
        kube: Box<KubeArgs>,
    },
    /// Validate a config file and print every error with its path and value.
    Check {
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Print a deployment manifest.
    Manifest {
        #[command(subcommand)]
        kind: ManifestKind,
    },
    /// Show the instances of a running daemon as a table.
    Status {
        /// The daemon's API address.
        #[arg(long, default_value = "127.0.0.1:9180")]
        api: SocketAddr,
        /// Print the raw JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Translate another VRRP daemon's config into edgevip's: the YAML on stdout, each
    /// construct not carried over on stderr with its file and line.
    Import {
        #[command(subcommand)]
        from: ImportFrom,
    },
    /// Print a shell completion script (e.g. `edgevip completions bash > /etc/bash_completion.d/edgevip`).
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff), generated from this command line; with --dir, write it
    /// and one page per subcommand (edgevip-run.1, ...) into that directory.
    Man {
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub enum ImportFrom {
    /// keepalived.conf (keepalived 2.x): its `vrrp_instance`s, `vrrp_script`s and
    /// `global_defs vrrp_version`; `include`s are read relative to the file.
    Keepalived {
        /// The keepalived configuration file.
        file: PathBuf,
        /// keepalived's `-i` config id, selecting the `@id` conditional lines.
        #[arg(long)]
        config_id: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum ManifestKind {
    /// A kubeadm static Pod keeping the control-plane VIP on a node whose kube-apiserver
    /// answers: standalone mode, its config inside the Pod, no API server needed. Write it
    /// to /etc/kubernetes/manifests/ on every control-plane node.
    StaticPod(StaticPodArgs),
}

/// `edgevip manifest static-pod`.
#[derive(Debug, Clone, clap::Args)]
pub struct StaticPodArgs {
    /// The VIP with its prefix length, e.g. 192.0.2.100/24 (kubeadm's
    /// --control-plane-endpoint).
    #[arg(long, value_name = "ADDR/PREFIX")]
    pub vip: String,
    /// The interface that carries the VIP on this node.
    #[arg(long, value_name = "IF")]
    pub interface: String,
    /// The control-plane nodes' addresses: unicast adverts (empty: multicast). This node's
    /// own may be listed, so one manifest serves every node (its own adverts are dropped).
    #[arg(long, value_name = "A,B", value_delimiter = ',')]
    pub peers: Vec<String>,
    /// The local kube-apiserver's readiness URL; `none`: no check.
    #[arg(long, default_value = "https://127.0.0.1:6443/readyz")]
    pub health: String,
    /// The CA that signed the apiserver's certificate (mounted read-only into the Pod).
    #[arg(long, default_value = "/etc/kubernetes/pki/ca.crt")]
    pub ca_file: String,
    /// The name the apiserver's certificate carries (kubeadm's do not name 127.0.0.1).
    #[arg(long, default_value = "kubernetes")]
    pub server_name: String,
    /// Accept any certificate instead of verifying against --ca-file.
    #[arg(long)]
    pub insecure_skip_verify: bool,
    /// VRRP router id: unique on the segment (the DaemonSet's defaults are 50 and 51).
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u8).range(1..=255))]
    pub vrid: u8,
    /// This node's priority (all equal: the VIP stays where it is).
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u8).range(1..=254))]
    pub priority: u8,
    /// Advert interval (a dead node is noticed after ~3.2 of them).
    #[arg(long, default_value = "100ms")]
    pub advert_interval: String,
    /// Where the daemon's /healthz, /status and /metrics listen (not the DaemonSet's
    /// 127.0.0.1:9180, so both can run on one node).
    #[arg(long, default_value = "127.0.0.1:9181")]
    pub api_listen: SocketAddr,
    /// The container image.
    #[arg(long, default_value = concat!("ghcr.io/edgevip/edgevip:", env!("CARGO_PKG_VERSION")))]
    pub image: String,
}

/// Kubernetes mode (`run --kubernetes`). Flag names follow kube-keepalived-vip where it had
/// one (`--services-configmap`, `--vrid`, `--kubeconfig`), so switching over is a rename.
#[derive(Debug, Clone, clap::Args)]
pub struct KubeArgs {
    /// Kubeconfig file; default: in-cluster service account (or $KUBECONFIG).
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    /// This node's name (the DaemonSet passes spec.nodeName).
    #[arg(long, env = "NODE_NAME")]
    pub node_name: Option<String>,
    /// The ConfigMap `namespace/name`: kube-keepalived-vip entries `"<VIP>": "<ns>/<svc>"`,
    /// and edgevip's YAML format under the key `edgevip.yaml`.
    #[arg(long, value_name = "NS/NAME")]
    pub services_configmap: Option<String>,
    /// Label selector of the edge nodes: the VRRP peers.
    #[arg(long, default_value = "edgenode=true")]
    pub node_selector: String,
    /// VRID of the instance that carries the kube-keepalived-vip entries.
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u8).range(1..=255))]
    pub vrid: u8,
    /// Interface for instances that name none; default: the one holding the node's InternalIP.
    #[arg(long, alias = "iface")]
    pub interface: Option<String>,
    /// Unicast adverts to the edge nodes' addresses (multicast is blocked in many clouds).
    #[arg(long, alias = "use-unicast", default_value_t = true, action = clap::ArgAction::Set)]
    pub unicast: bool,
    /// Advert interval of instances that set none (node failure is detected in ~3.2x this).
    #[arg(long, default_value = "200ms", value_parser = parse_duration)]
    pub advert_interval: Duration,
    /// Whether a recovered higher-priority node takes the VIP back (kube-keepalived-vip: no).
    #[arg(long, default_value_t = false, action = clap::ArgAction::Set)]
    pub preempt: bool,
    /// Health check of the local ingress controller (HTTP GET expecting 200; failing =
    /// fault, the VIP leaves the node): `auto` (ingress-nginx's
    /// http://127.0.0.1:10254/healthz, only once the forwarded Service's endpoints show the
    /// ingress on the host network), `none`, or a URL (every instance without checks).
    #[arg(long, default_value = "auto")]
    pub ingress_check: String,
    /// Which nodes may hold the ConfigMap's VIPs: `any-endpoint` (the forwarded Service has
    /// a ready endpoint anywhere; NAT crosses nodes) or `local-endpoint` (one on this node).
    #[arg(long, value_enum, default_value = "any-endpoint")]
    pub eligibility: EligibilityArg,
    /// Where /healthz, /readyz and /metrics listen (and /status when loopback or with
    /// --api-status): the node's own address (the DaemonSet passes status.hostIP as
    /// `$(HOST_IP):9180`; an IPv6 address needs no brackets) or loopback, never a VIP.
    #[arg(long, env = "EDGEVIP_API_LISTEN", default_value = "127.0.0.1:9180", value_parser = parse_listen)]
    pub api_listen: SocketAddr,
    /// A deleted ConfigMap releases its VIPs only after this long.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub release_grace: Duration,
    /// Serve Services of `type: LoadBalancer` with our `spec.loadBalancerClass` (needs the
    /// optional RBAC: patch services/status).
    #[arg(long)]
    pub load_balancers: bool,
    /// The loadBalancerClass that selects Services for edgevip.
    #[arg(long, default_value = edgevip_k8s::services::DEFAULT_CLASS)]
    pub load_balancer_class: String,
    /// Also take LoadBalancer Services that name no class.
    #[arg(long)]
    pub default_load_balancer_class: bool,
    /// Addresses to allocate VIPs from when a Service asks for none, e.g.
    /// `192.0.2.200-192.0.2.250,2001:db8::/120`.
    #[arg(long, default_value = "")]
    pub address_pool: String,
    /// Forward `NAT` / `PROXY` entries to their Service's ready endpoints (needs list/watch
    /// on services and endpointslices).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub forwarding: bool,
    /// PROXY protocol header sent to the backends of `:PROXY` entries.
    #[arg(long, value_enum, default_value_t = ProxyProtocol::V1)]
    pub proxy_protocol: ProxyProtocol,
    /// Serve `announce: bgp` entries and VIPPools: their VIPs go on `lo` and FRR announces
    /// them to the peers of the BGPPeer objects that select this node (needs the BGP RBAC:
    /// bgppeers, and Secrets in this namespace for passwords; FRR as a sidecar).
    #[arg(long)]
    pub bgp: bool,
    /// With --bgp: the frr.conf edgevip writes and frr-reload applies.
    #[arg(long, value_name = "PATH", default_value = edgevip_config::Bgp::DEFAULT_FRR_CONFIG, requires = "bgp")]
    pub frr_config: std::path::PathBuf,
    /// With --bgp: the FRR daemons' vty socket directory; default: FRR's own.
    #[arg(long, value_name = "DIR", requires = "bgp")]
    pub frr_vty_socket: Option<std::path::PathBuf>,
    /// With --bgp: on a graceful stop, how long the VIPs stay on `lo` after no peer is
    /// advertised them any more (connections routers still send).
    #[arg(long, default_value = "1s", value_parser = parse_duration, requires = "bgp")]
    pub bgp_drain_time: Duration,
    /// The Lease (in the ConfigMap's namespace) whose holder allocates LoadBalancer VIPs
    /// and writes Service status (needs the optional RBAC: leases get/create/update).
    #[arg(long, default_value = "edgevip-allocator")]
    pub lease_name: String,
    /// How long a silent allocator keeps the Lease before another pod takes it over.
    #[arg(long, default_value = "15s", value_parser = parse_duration)]
    pub lease_duration: Duration,
    /// VRIDs of the instances carrying LoadBalancer VIPs, `FIRST-LAST`: each VRID's
    /// instance has its own master, so the VIPs spread over the edge nodes (VRIDs the
    /// ConfigMap uses, --vrid among them, are stepped around).
    #[arg(
        long,
        value_name = "FIRST-LAST",
        default_value = "100-149",
        conflicts_with = "lb_vrid"
    )]
    pub lb_vrids: String,
    /// One VRID for every LoadBalancer VIP (one instance, one master): `--lb-vrids N-N`.
    #[arg(long, value_parser = clap::value_parser!(u8).range(1..=255))]
    pub lb_vrid: Option<u8>,
    /// Address ranges VIPs may come from, e.g. `192.0.2.0/24,2001:db8::/64`; default: the
    /// on-link subnets of the node's interface. LoadBalancer VIPs must also lie in the pool.
    #[arg(long, value_name = "CIDR,...", default_value = "")]
    pub vip_ranges: String,
    /// The cluster's Pod network(s): never a VIP (the Nodes' `spec.podCIDRs` are added).
    #[arg(long, value_name = "CIDR,...", default_value = "")]
    pub pod_cidrs: String,
    /// The cluster's Service network(s): never a VIP.
    #[arg(long, value_name = "CIDR,...", default_value = "")]
    pub service_cidrs: String,
    /// Let the ConfigMap run commands as root: `notify` hooks and `exec` health checks.
    #[arg(long)]
    pub allow_configmap_exec: bool,
    /// Let the ConfigMap choose `interface` and `track_interfaces`.
    #[arg(long)]
    pub allow_configmap_interfaces: bool,
    /// Let the ConfigMap set `unicast_min_ttl`.
    #[arg(long)]
    pub allow_configmap_ttl: bool,
    /// Let the ConfigMap name `unicast_peers` (a peer can take the VIPs).
    #[arg(long)]
    pub allow_configmap_peers: bool,
    /// Let the ConfigMap's HTTP/TCP checks reach other hosts than loopback and this node.
    #[arg(long)]
    pub allow_configmap_remote_checks: bool,
    /// Let the ConfigMap name files on the node that edgevip reads (`ca_file` of https
    /// checks).
    #[arg(long)]
    pub allow_configmap_files: bool,

    #[command(flatten)]
    pub surfaces: SurfaceArgs,
}

/// Limits of the network-facing listeners (API and PROXY frontends). Defaults are safe
/// for a node at the cluster's front door; 0 for a cap means "derived from the
/// file-descriptor limit, keeping a reserve for VRRP and the API".
#[derive(Debug, Clone, clap::Args)]
pub struct SurfaceArgs {
    /// Also serve /status (Service names, VIPs, backends) on --api-listen when that is not
    /// loopback. /status is always served on --status-listen.
    #[arg(long)]
    pub api_status: bool,
    /// A loopback listener with every endpoint including /status (`edgevip status`);
    /// skipped when it equals --api-listen.
    #[arg(long, default_value = "127.0.0.1:9180", value_parser = parse_listen)]
    pub status_listen: SocketAddr,
    /// Open API connections at most (past it, the oldest is closed for the new one).
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u64).range(1..=65536))]
    pub api_max_connections: u64,
    /// Open PROXY connections at most, all frontends together (0: from the fd limit).
    #[arg(long, default_value_t = 0)]
    pub proxy_max_connections: usize,
    /// Open PROXY connections at most per frontend (VIP:port) (0: the overall cap).
    #[arg(long, default_value_t = 0)]
    pub proxy_max_connections_per_frontend: usize,
    /// A PROXY client must send its first byte within this (the backend is dialled then).
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub proxy_first_byte_timeout: Duration,
    /// A proxied connection with no byte either way for this long is closed.
    #[arg(long, default_value = "10m", value_parser = parse_duration)]
    pub proxy_idle_timeout: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum EligibilityArg {
    AnyEndpoint,
    LocalEndpoint,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ProxyProtocol {
    V1,
    V2,
    /// A plain TCP proxy (the backend sees the node's address).
    None,
}

/// `IP:PORT`, `[IPv6]:PORT`, or an unbracketed `IPv6:PORT` as `$(HOST_IP):9180` gives.
pub fn parse_listen(s: &str) -> Result<SocketAddr, String> {
    if let Ok(a) = s.parse() {
        return Ok(a);
    }
    s.rsplit_once(':')
        .and_then(|(ip, port)| Some(SocketAddr::new(ip.parse().ok()?, port.parse().ok()?)))
        .ok_or_else(|| format!("{s:?} is not IP:PORT"))
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    edgevip_config::parse_duration(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_addresses_take_the_host_ip_as_the_downward_api_gives_it() {
        assert_eq!(
            parse_listen("192.0.2.7:9180").unwrap().to_string(),
            "192.0.2.7:9180"
        );
        assert_eq!(
            parse_listen("[2001:db8::7]:9180").unwrap().to_string(),
            "[2001:db8::7]:9180"
        );
        assert_eq!(
            parse_listen("2001:db8::7:9180").unwrap().to_string(),
            "[2001:db8::7]:9180"
        );
        assert!(
            parse_listen(":9180").is_err(),
            "an empty $(HOST_IP) is an error"
        );
        assert!(parse_listen("192.0.2.7").is_err());
    }
}
