//! Adding and removing an instance's VIPs on its interface, with one error path: a failed
//! operation is logged and counted, and the rest of the set still goes through.

use edgevip_config::Vip;
use edgevip_netio::Netlink;

use crate::metrics::{Metrics, VipOpLabels};

#[derive(Clone, Copy, Debug)]
enum Op {
    Add,
    Remove,
}

impl Op {
    fn as_str(self) -> &'static str {
        match self {
            Op::Add => "add",
            Op::Remove => "remove",
        }
    }
}

pub struct VipSet {
    netlink: Netlink,
    ifindex: u32,
    instance: String,
    metrics: Metrics,
}

impl VipSet {
    pub fn new(netlink: Netlink, ifindex: u32, instance: &str, metrics: Metrics) -> Self {
        VipSet {
            netlink,
            ifindex,
            instance: instance.into(),
            metrics,
        }
    }

    pub async fn add<'a>(&self, vips: impl IntoIterator<Item = &'a Vip>) {
        for v in vips {
            let r = self
                .netlink
                .add_vip(self.ifindex, v.addr, v.prefix_len)
                .await;
            self.report(Op::Add, v, r.err());
        }
    }

    pub async fn remove<'a>(&self, vips: impl IntoIterator<Item = &'a Vip>) {
        for v in vips {
            let r = self
                .netlink
                .del_vip(self.ifindex, v.addr, v.prefix_len)
                .await;
            self.report(Op::Remove, v, r.err());
        }
    }

    fn report(&self, op: Op, vip: &Vip, err: Option<impl std::fmt::Display>) {
        let Some(e) = err else { return };
        tracing::error!(instance = %self.instance, vip = %vip.addr, op = op.as_str(), error = %e, "VIP operation failed");
        self.metrics
            .vip_errors
            .get_or_create(&VipOpLabels {
                instance: self.instance.clone(),
                op: op.as_str().into(),
            })
            .inc();
    }
}
