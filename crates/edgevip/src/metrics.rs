//! Prometheus metrics. Label sets are small and bounded: instance names come from the
//! config, families and reasons from fixed lists.

use std::sync::Arc;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouterLabels {
    pub instance: String,
    pub family: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StateLabels {
    pub instance: String,
    pub family: String,
    pub state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DropLabels {
    pub instance: String,
    pub family: String,
    pub reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RxDropLabels {
    pub interface: String,
    pub family: String,
    pub reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct VipOpLabels {
    pub instance: String,
    pub op: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PoolLabels {
    pub pool: String,
    pub state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PeerLabels {
    pub peer: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct InstanceLabels {
    pub instance: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ChecksumLabels {
    pub instance: String,
    pub form: String,
}

/// All metric families of the daemon.
#[derive(Clone)]
pub struct Metrics {
    registry: Arc<Registry>,
    pub state: Family<StateLabels, Gauge>,
    pub priority: Family<RouterLabels, Gauge>,
    pub transitions: Family<RouterLabels, Counter>,
    pub adverts_sent: Family<RouterLabels, Counter>,
    pub adverts_received: Family<RouterLabels, Counter>,
    pub dropped: Family<DropLabels, Counter>,
    /// Datagrams a shared receive path dropped before any instance saw them.
    pub rx_dropped: Family<RxDropLabels, Counter>,
    pub vip_errors: Family<VipOpLabels, Counter>,
    /// Adverts whose address list differs from ours (RFC 5798 §7.1 asks to log them).
    pub vip_list_mismatches: Family<RouterLabels, Counter>,
    /// 1 while an instance cannot start (interface missing, no address); /status says why.
    pub failed: Family<InstanceLabels, Gauge>,
    pub announcements: Family<RouterLabels, Counter>,
    pub checksum_forms: Family<ChecksumLabels, Counter>,
    pub reloads: Family<ReloadLabels, Counter>,
    /// 1 while the config file in force is the one on disk (last load or reload good).
    pub reload_ok: Gauge,
    /// BGP mode: 1 while the session with the peer is established.
    pub bgp_session_up: Family<PeerLabels, Gauge>,
    /// BGP mode: 1 while the peer's BFD session is up.
    pub bgp_bfd_up: Family<PeerLabels, Gauge>,
    /// BGP mode: prefixes FRR advertises to the peer now.
    pub bgp_advertised: Family<PeerLabels, Gauge>,
    /// BGP mode: 1 while the instance's routes are announced (every check passing).
    pub bgp_announced: Family<InstanceLabels, Gauge>,
    /// BGP mode: configurations applied to FRR, by result (ok, failed).
    pub bgp_applies: Family<ReloadLabels, Counter>,
    pub check_up: Family<CheckLabels, Gauge>,
    pub check_results: Family<CheckResultLabels, Counter>,
    pub notify_runs: Family<CheckResultLabels, Counter>,
    /// Kubernetes mode: one gauge per aspect of the controller's view.
    pub kube: Family<KubeLabels, Gauge>,
    /// LoadBalancer mode: each pool's addresses by state (pool names come from VIPPools,
    /// which only cluster admins create).
    pub pools: Family<PoolLabels, Gauge<f64, std::sync::atomic::AtomicU64>>,
    pub proxy: edgevip_forward::proxy::ProxyMetrics,
    pub api: ApiMetrics,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KubeLabels {
    pub what: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CheckLabels {
    pub instance: String,
    pub check: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CheckResultLabels {
    pub instance: String,
    pub check: String,
    pub result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReloadLabels {
    pub result: String,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut r = Registry::with_prefix("edgevip");
        let m = Metrics {
            registry: Arc::new(Registry::default()),
            state: Family::default(),
            priority: Family::default(),
            transitions: Family::default(),
            adverts_sent: Family::default(),
            adverts_received: Family::default(),
            dropped: Family::default(),
            rx_dropped: Family::default(),
            vip_errors: Family::default(),
            vip_list_mismatches: Family::default(),
            failed: Family::default(),
            announcements: Family::default(),
            checksum_forms: Family::default(),
            reloads: Family::default(),
            bgp_session_up: Family::default(),
            bgp_bfd_up: Family::default(),
            bgp_advertised: Family::default(),
            bgp_announced: Family::default(),
            bgp_applies: Family::default(),
            reload_ok: Gauge::default(),
            check_up: Family::default(),
            check_results: Family::default(),
            notify_runs: Family::default(),
            kube: Family::default(),
            pools: Family::default(),
            proxy: Default::default(),
            api: Default::default(),
        };
        m.proxy.register(&mut r);
        m.api.register(&mut r);
        r.register(
            "instance_state",
            "1 for the current state of each virtual router",
            m.state.clone(),
        );
        r.register(
            "effective_priority",
            "Priority after tracking weights",
            m.priority.clone(),
        );
        r.register("transitions", "State transitions", m.transitions.clone());
        r.register("adverts_sent", "VRRP adverts sent", m.adverts_sent.clone());
        r.register(
            "adverts_received",
            "Valid VRRP adverts received for this VRID",
            m.adverts_received.clone(),
        );
        r.register(
            "packets_dropped",
            "Received VRRP packets dropped, by reason",
            m.dropped.clone(),
        );
        r.register(
            "rx_dropped",
            "Datagrams a shared receive path dropped before any instance saw them (oversize, unknown_vrid, queue_full, ...)",
            m.rx_dropped.clone(),
        );
        r.register(
            "vip_errors",
            "Failed VIP additions or removals",
            m.vip_errors.clone(),
        );
        r.register(
            "vip_list_mismatches",
            "Adverts whose VIP list differs from ours (dropped when strict_vip_list is set)",
            m.vip_list_mismatches.clone(),
        );
        r.register(
            "instance_failed",
            "1 while an instance cannot start (interface missing, no address yet), retried with backoff",
            m.failed.clone(),
        );
        r.register(
            "announcements",
            "Gratuitous ARP / unsolicited NA bursts sent",
            m.announcements.clone(),
        );
        r.register(
            "checksum_forms",
            "Received VRRPv3 IPv4 adverts by checksum form (pseudo_header or message_only)",
            m.checksum_forms.clone(),
        );
        r.register(
            "bgp_session_up",
            "BGP mode: 1 while FRR's session with the peer is established",
            m.bgp_session_up.clone(),
        );
        r.register(
            "bgp_bfd_up",
            "BGP mode: 1 while the peer's BFD session is up",
            m.bgp_bfd_up.clone(),
        );
        r.register(
            "bgp_advertised_prefixes",
            "BGP mode: prefixes FRR advertises to the peer",
            m.bgp_advertised.clone(),
        );
        r.register(
            "bgp_announced",
            "BGP mode: 1 while the instance's VIPs are announced (every health check passing)",
            m.bgp_announced.clone(),
        );
        r.register(
            "bgp_frr_applies",
            "BGP mode: FRR configurations applied with frr-reload, by result",
            m.bgp_applies.clone(),
        );
        r.register(
            "config_reloads",
            "Configuration reloads by result",
            m.reloads.clone(),
        );
        r.register(
            "config_last_reload_successful",
            "1 while the last load of the config file was valid, 0 after a rejected reload (file mode)",
            m.reload_ok.clone(),
        );
        r.register(
            "health_check_up",
            "1 while a health check passes (after rise/fall)",
            m.check_up.clone(),
        );
        r.register(
            "health_check_probes",
            "Health check probe results",
            m.check_results.clone(),
        );
        r.register(
            "notify_runs",
            "Notify hook runs by result (check = the hook's state)",
            m.notify_runs.clone(),
        );
        r.register(
            "kubernetes",
            "Kubernetes mode: synced (0/1), edge_nodes, instances, rejected_entries, warnings, load_balancers, load_balancers_without_vip, watch_errors, rebuilds, last_rebuild_us, allocator (0/1: holds the allocator Lease; LoadBalancer mode only)",
            m.kube.clone(),
        );
        r.register(
            "pool_addresses",
            "LoadBalancer mode: addresses of each pool (--address-pool and the VIPPools) by state, allocated or free",
            m.pools.clone(),
        );
        Metrics {
            registry: Arc::new(r),
            ..m
        }
    }

    pub fn encode(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry).expect("text encoding");
        out
    }

    pub fn router(instance: &str, family: &str) -> RouterLabels {
        RouterLabels {
            instance: instance.into(),
            family: family.into(),
        }
    }

    pub fn drop(&self, instance: &str, family: &str, reason: &str) {
        self.dropped
            .get_or_create(&DropLabels {
                instance: instance.into(),
                family: family.into(),
                reason: reason.into(),
            })
            .inc();
    }

    pub fn rx_drop(&self, interface: &str, family: &str, reason: &str) {
        self.rx_dropped
            .get_or_create(&RxDropLabels {
                interface: interface.into(),
                family: family.into(),
                reason: reason.into(),
            })
            .inc();
    }

    /// Sets the state gauge: 1 for `state`, 0 for the others, so dashboards can sum.
    pub fn set_state(&self, instance: &str, family: &str, state: &str) {
        for s in ["init", "backup", "master", "fault"] {
            let l = StateLabels {
                instance: instance.into(),
                family: family.into(),
                state: s.into(),
            };
            self.state.get_or_create(&l).set(i64::from(s == state));
        }
    }

    pub fn check_result(&self, instance: &str, check: &str, ok: bool) {
        self.check_results
            .get_or_create(&CheckResultLabels {
                instance: instance.into(),
                check: check.into(),
                result: if ok { "ok" } else { "failed" }.into(),
            })
            .inc();
    }

    pub fn set_check_up(&self, instance: &str, check: &str, up: bool) {
        self.check_up
            .get_or_create(&CheckLabels {
                instance: instance.into(),
                check: check.into(),
            })
            .set(i64::from(up));
    }

    pub fn forget_check(&self, instance: &str, check: &str) {
        self.check_up.remove(&CheckLabels {
            instance: instance.into(),
            check: check.into(),
        });
    }

    /// The pools in force, `(name, allocated, free)`: a pool gone loses its series.
    pub fn set_pools(&self, pools: &[(String, u64, f64)]) {
        self.pools.clear();
        for (pool, allocated, free) in pools {
            for (state, v) in [("allocated", *allocated as f64), ("free", *free)] {
                let labels = PoolLabels {
                    pool: pool.clone(),
                    state: state.into(),
                };
                self.pools.get_or_create(&labels).set(v);
            }
        }
    }

    pub fn set_kube(&self, what: &str, v: i64) {
        self.kube
            .get_or_create(&KubeLabels { what: what.into() })
            .set(v);
    }

    pub fn set_failed(&self, instance: &str, failed: bool) {
        self.failed
            .get_or_create(&InstanceLabels {
                instance: instance.into(),
            })
            .set(i64::from(failed));
    }

    /// Forgets a removed instance's series (its task forgets the drop series it made).
    pub fn forget(&self, instance: &str) {
        self.failed.remove(&InstanceLabels {
            instance: instance.into(),
        });
        for form in ["pseudo_header", "message_only"] {
            self.checksum_forms.remove(&ChecksumLabels {
                instance: instance.into(),
                form: form.into(),
            });
        }
        for op in ["add", "remove"] {
            self.vip_errors.remove(&VipOpLabels {
                instance: instance.into(),
                op: op.into(),
            });
        }
        for f in ["ipv4", "ipv6"] {
            let r = Self::router(instance, f);
            for family in [
                &self.transitions,
                &self.adverts_sent,
                &self.adverts_received,
                &self.announcements,
                &self.vip_list_mismatches,
            ] {
                family.remove(&r);
            }
            for s in ["init", "backup", "master", "fault"] {
                self.state.remove(&StateLabels {
                    instance: instance.into(),
                    family: f.into(),
                    state: s.into(),
                });
            }
            self.priority.remove(&Self::router(instance, f));
            self.dropped.remove(&DropLabels {
                instance: instance.into(),
                family: f.into(),
                reason: "family_not_configured".into(),
            });
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RefusedLabels {
    pub reason: String,
}

/// Connections the API closed without serving: `evicted` (the oldest, to admit a new one
/// at the cap), `vip_address` (made to a VIP), `accept_error` (e.g. out of descriptors).
#[derive(Clone, Default)]
pub struct ApiMetrics {
    pub refused: Family<RefusedLabels, Counter>,
}

impl ApiMetrics {
    pub fn register(&self, r: &mut Registry) {
        r.register(
            "api_connections_refused",
            "API connections closed unserved, by reason (evicted, vip_address, accept_error)",
            self.refused.clone(),
        );
    }

    pub(crate) fn refuse(&self, reason: &str) {
        self.refused
            .get_or_create(&RefusedLabels {
                reason: reason.into(),
            })
            .inc();
    }
}
