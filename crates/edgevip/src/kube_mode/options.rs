//! The command line of Kubernetes mode, checked once into typed options: every later step
//! takes them as given.

use std::net::SocketAddr;
use std::path::PathBuf;

use edgevip_config::HealthCheck;
use edgevip_k8s::bgp_peers::BgpSettings;
use edgevip_k8s::controller;
use edgevip_k8s::desired::Settings;
use edgevip_k8s::eligibility::{Eligibility, IngressCheck};
use edgevip_k8s::lease::LeaseOptions;
use edgevip_k8s::services::{LbSettings, Pool};
use edgevip_k8s::trust::{Cidr, Rights, Trust};

use crate::cli::{EligibilityArg, KubeArgs, ProxyProtocol};

/// A command line Kubernetes mode cannot run with (exit status 2).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ArgError {
    #[error("--node-name (or NODE_NAME) is required with --kubernetes")]
    NodeName,
    #[error("--services-configmap NAMESPACE/NAME is required with --kubernetes, got {0:?}")]
    ConfigMap(Option<String>),
    #[error("--ingress-check: {0:?} is neither an http:// URL, `auto` nor `none`")]
    IngressCheck(String),
    #[error("--address-pool: {0}")]
    AddressPool(String),
    #[error("--lb-vrid (or --lb-vrids) and --vrid must differ ({0})")]
    SameVrid(u8),
    #[error("--lb-vrids: {0:?} is not FIRST-LAST with 1 <= FIRST <= LAST <= 255")]
    LbVrids(String),
    #[error("--{0}: {1}")]
    Cidrs(&'static str, String),
    #[error("--lease-duration: {0:?} is outside 3s..=5m (renewals every 2/15 of it)")]
    LeaseDuration(std::time::Duration),
}

/// `FIRST-LAST` (or one VRID).
fn lb_vrids(s: &str) -> Result<std::ops::RangeInclusive<u8>, ArgError> {
    let bad = || ArgError::LbVrids(s.to_string());
    let (a, b) = s.split_once('-').unwrap_or((s, s));
    let a: u8 = a.trim().parse().map_err(|_| bad())?;
    let b: u8 = b.trim().parse().map_err(|_| bad())?;
    if a == 0 || a > b {
        return Err(bad());
    }
    Ok(a..=b)
}

#[derive(Clone)]
pub struct KubeOptions {
    pub controller: controller::Options,
    pub api_listen: SocketAddr,
    pub kubeconfig: Option<PathBuf>,
}

impl KubeOptions {
    pub fn check(args: &KubeArgs) -> Result<KubeOptions, ArgError> {
        let node_name = args
            .node_name
            .clone()
            .filter(|n| !n.is_empty())
            .ok_or(ArgError::NodeName)?;
        let (ns, name) = args
            .services_configmap
            .as_deref()
            .and_then(|s| s.split_once('/'))
            .filter(|(a, b)| !a.is_empty() && !b.is_empty())
            .ok_or_else(|| ArgError::ConfigMap(args.services_configmap.clone()))?;
        let ingress_check = ingress_check(&args.ingress_check)?;
        let cidrs =
            |flag: &'static str, v: &str| Cidr::parse_list(v).map_err(|e| ArgError::Cidrs(flag, e));
        let trust = Trust {
            vip_ranges: cidrs("vip-ranges", &args.vip_ranges)?,
            excluded: [
                cidrs("pod-cidrs", &args.pod_cidrs)?,
                cidrs("service-cidrs", &args.service_cidrs)?,
            ]
            .concat(),
            configmap: Rights {
                exec: args.allow_configmap_exec,
                interfaces: args.allow_configmap_interfaces,
                ttl: args.allow_configmap_ttl,
                peers: args.allow_configmap_peers,
                remote_checks: args.allow_configmap_remote_checks,
                files: args.allow_configmap_files,
            },
        };
        // Renewals run every 2/15 of the duration: too short spins, too long leaves Services
        // pending for long after a dead allocator.
        let lease_bounds = std::time::Duration::from_secs(3)..=std::time::Duration::from_secs(300);
        if args.load_balancers && !lease_bounds.contains(&args.lease_duration) {
            return Err(ArgError::LeaseDuration(args.lease_duration));
        }
        let lb = if args.load_balancers {
            let pool = Pool::parse(&args.address_pool).map_err(ArgError::AddressPool)?;
            let vrids = match args.lb_vrid {
                Some(v) => v..=v,
                None => lb_vrids(&args.lb_vrids)?,
            };
            if vrids == (args.vrid..=args.vrid) {
                return Err(ArgError::SameVrid(args.vrid));
            }
            Some(LbSettings {
                class: args.load_balancer_class.clone(),
                default_class: args.default_load_balancer_class,
                pool,
                vrids,
            })
        } else {
            None
        };
        Ok(KubeOptions {
            controller: controller::Options {
                settings: Settings {
                    node_name: node_name.clone(),
                    vrid: args.vrid,
                    interface: args.interface.clone(),
                    unicast: args.unicast,
                    advert_interval: args.advert_interval,
                    preempt: args.preempt,
                    ingress_check,
                    eligibility: match args.eligibility {
                        EligibilityArg::AnyEndpoint => Eligibility::AnyEndpoint,
                        EligibilityArg::LocalEndpoint => Eligibility::LocalEndpoint,
                    },
                    lb,
                    forwarding: args.forwarding,
                    bgp: args.bgp.then(|| BgpSettings {
                        frr_config: args.frr_config.clone(),
                        frr_vty_socket: args.frr_vty_socket.clone(),
                        drain_time: args.bgp_drain_time,
                    }),
                    proxy_header: match args.proxy_protocol {
                        ProxyProtocol::V1 => edgevip_forward::ProxyHeader::V1,
                        ProxyProtocol::V2 => edgevip_forward::ProxyHeader::V2,
                        ProxyProtocol::None => edgevip_forward::ProxyHeader::None,
                    },
                    trust,
                },
                configmap_namespace: ns.into(),
                configmap_name: name.into(),
                node_selector: args.node_selector.clone(),
                release_grace: args.release_grace,
                lease: args.load_balancers.then(|| LeaseOptions {
                    namespace: ns.into(),
                    name: args.lease_name.clone(),
                    identity: node_name.clone(),
                    duration: args.lease_duration,
                }),
            },
            api_listen: args.api_listen,
            kubeconfig: args.kubeconfig.clone(),
        })
    }
}

/// ingress-nginx's health endpoint: what `auto` checks once the ingress is on the host
/// network.
const INGRESS_NGINX_HEALTH: &str = "http://127.0.0.1:10254/healthz";

fn ingress_check(spec: &str) -> Result<IngressCheck, ArgError> {
    match spec {
        "none" | "" => Ok(IngressCheck::Off),
        "auto" => Ok(IngressCheck::Auto(HealthCheck::http(
            "ingress",
            INGRESS_NGINX_HEALTH,
        ))),
        url if HealthCheck::is_http_url(url) => {
            Ok(IngressCheck::Always(HealthCheck::http("ingress", url)))
        }
        _ => Err(ArgError::IngressCheck(spec.into())),
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Line {
        #[command(flatten)]
        kube: KubeArgs,
    }

    fn check(line: &str) -> Result<KubeOptions, ArgError> {
        let args = Line::try_parse_from(format!("edgevip {line}").split_whitespace()).unwrap();
        KubeOptions::check(&args.kube)
    }

    const OK: &str = "--node-name edge-a --services-configmap edgevip/vips";

    #[test]
    fn a_usable_line_becomes_typed_options() {
        let o = check(&format!(
            "{OK} --advert-interval 300ms --ingress-check none"
        ))
        .unwrap();
        let s = &o.controller.settings;
        assert_eq!(
            (s.node_name.as_str(), s.vrid, s.advert_interval),
            ("edge-a", 50, std::time::Duration::from_millis(300))
        );
        assert_eq!(o.controller.configmap(), "edgevip/vips");
        assert!(s.ingress_check == IngressCheck::Off && s.lb.is_none());
        let o = check(&format!(
            "{OK} --load-balancers --address-pool 198.51.100.1-198.51.100.9"
        ))
        .unwrap();
        assert_eq!(o.controller.settings.lb.unwrap().vrids, 100..=149);
        let lb = |flags: &str| check(&format!("{OK} --load-balancers {flags}"));
        assert_eq!(
            lb("--lb-vrids 100-120")
                .unwrap()
                .controller
                .settings
                .lb
                .unwrap()
                .vrids,
            100..=120
        );
        assert_eq!(
            lb("--lb-vrid 7")
                .unwrap()
                .controller
                .settings
                .lb
                .unwrap()
                .vrids,
            7..=7
        );
        for bad in ["0-3", "9-8", "1-256", "x", "5-"] {
            assert_eq!(
                lb(&format!("--lb-vrids {bad}")).err(),
                Some(ArgError::LbVrids(bad.into()))
            );
        }
        let s = check(OK).unwrap().controller.settings;
        assert!(
            matches!(&s.ingress_check, IngressCheck::Auto(c) if c.name == "ingress"),
            "the default: auto, {:?}",
            s.ingress_check
        );
        assert_eq!(s.eligibility, Eligibility::AnyEndpoint);
        let s = check(&format!(
            "{OK} --ingress-check http://127.0.0.1:8080/ok --eligibility local-endpoint"
        ))
        .unwrap()
        .controller
        .settings;
        assert!(matches!(s.ingress_check, IngressCheck::Always(_)));
        assert_eq!(s.eligibility, Eligibility::LocalEndpoint);
    }

    #[test]
    fn each_mistake_names_its_flag() {
        assert_eq!(
            check("--services-configmap a/b").err(),
            Some(ArgError::NodeName)
        );
        assert_eq!(
            check("--node-name x --services-configmap vips").err(),
            Some(ArgError::ConfigMap(Some("vips".into())))
        );
        for bad in ["ftp://x/", "http://", "https://"] {
            assert_eq!(
                check(&format!("{OK} --ingress-check {bad}")).err(),
                Some(ArgError::IngressCheck(bad.into())),
                "the file's rule for http check URLs"
            );
        }
        assert!(matches!(
            check(&format!("{OK} --load-balancers --address-pool nonsense")),
            Err(ArgError::AddressPool(_))
        ));
        let e = check(&format!("{OK} --load-balancers --lb-vrid 50"))
            .err()
            .unwrap();
        assert_eq!(
            e.to_string(),
            "--lb-vrid (or --lb-vrids) and --vrid must differ (50)"
        );
        assert!(
            check(&format!("{OK} --lb-vrid 50")).is_ok(),
            "no LB mode, no clash"
        );
        for bad in ["0s", "2s", "301s"] {
            let e = check(&format!("{OK} --load-balancers --lease-duration {bad}"));
            assert!(matches!(e, Err(ArgError::LeaseDuration(_))), "{bad}");
        }
        let o = check(&format!("{OK} --load-balancers --lease-duration 3s")).unwrap();
        let lease = o.controller.lease.expect("LB mode elects an allocator");
        assert_eq!(
            (
                lease.namespace.as_str(),
                lease.name.as_str(),
                lease.identity.as_str()
            ),
            ("edgevip", "edgevip-allocator", "edge-a")
        );
        assert_eq!(
            check(&format!("{OK} --vip-ranges 192.0.2.0/33"))
                .err()
                .map(|e| e.to_string()),
            Some("--vip-ranges: \"192.0.2.0/33\": prefix length is not in 0..=32".into())
        );
        let o = check(&format!(
            "{OK} --vip-ranges 192.0.2.0/24 --pod-cidrs 10.244.0.0/16 --service-cidrs 10.96.0.0/12 --allow-configmap-exec"
        ))
        .unwrap();
        let t = &o.controller.settings.trust;
        assert_eq!((t.vip_ranges.len(), t.excluded.len()), (1, 2));
        assert!(t.configmap.exec && !t.configmap.interfaces);
        assert_eq!(
            check(OK).unwrap().controller.settings.trust,
            Trust::default(),
            "nothing widened by default"
        );
    }
}
