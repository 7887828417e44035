//! What the controller tests share: the node's settings and a resolver that needs no host.
#![allow(dead_code)] // each test file uses its part

use std::sync::Arc;
use std::time::Duration;

use edgevip_k8s::controller::{Options, Resolver};
use edgevip_k8s::desired::Settings;
use edgevip_k8s::lease::LeaseOptions;
use edgevip_k8s::services::{DEFAULT_CLASS, LbSettings, Pool};

/// edgevip's namespace (the ConfigMap's, the Lease's).
pub const NS: &str = "edgevip";

/// Node `edge-a` following the ConfigMap `edgevip/vips`, LoadBalancer mode off.
pub fn options(grace: Duration) -> Options {
    Options {
        settings: Settings {
            node_name: "edge-a".into(),
            vrid: 50,
            interface: None,
            unicast: true,
            advert_interval: Duration::from_millis(200),
            preempt: false,
            ingress_check: Default::default(),
            eligibility: Default::default(),
            lb: None,
            forwarding: false,
            bgp: None,
            proxy_header: edgevip_forward::ProxyHeader::V1,
            trust: Default::default(),
        },
        configmap_namespace: NS.into(),
        configmap_name: "vips".into(),
        node_selector: "edgenode=true".into(),
        release_grace: grace,
        lease: None,
    }
}

/// `o` as node `me` in LoadBalancer mode with `--address-pool pool`, competing for the
/// allocator Lease with a lease duration of `lease`.
pub fn load_balancers(mut o: Options, me: &str, pool: &str, lease: Duration) -> Options {
    o.settings.node_name = me.into();
    o.settings.lb = Some(LbSettings {
        class: DEFAULT_CLASS.into(),
        default_class: false,
        pool: Pool::parse(pool).unwrap(),
        vrids: 100..=149,
    });
    o.lease = Some(LeaseOptions {
        namespace: NS.into(),
        name: "edgevip-allocator".into(),
        identity: me.into(),
        duration: lease,
    });
    o
}

/// The node address sits on `eth0`, in 192.0.2.0/24 and 2001:db8::/64.
pub fn resolver() -> Resolver {
    Arc::new(|_, _| {
        Box::pin(async {
            edgevip_k8s::trust::NodeLink::named("eth0", &["192.0.2.11/24", "2001:db8::11/64"])
        })
    })
}
