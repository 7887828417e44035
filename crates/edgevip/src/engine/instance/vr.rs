//! One RFC virtual router of an instance (one per address family) and its I/O: the core's
//! `Router`, its place on the shared receive path, the adverts it sends and its counters.
//! Everything derived from the config is computed once per (re)configuration.

use std::net::IpAddr;
use std::time::SystemTime;

use edgevip_config::Instance;
use edgevip_netio::Family;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use vrrp::packet::{self, Advert, ChecksumForm, Version};
use vrrp::router::{Accepted, Datagram, DropReason, Link, Router, State};
use vrrp::wire;

use super::announce::Announcements;
use crate::engine::receiver::{Registration, family_label};
use crate::engine::translate;
use crate::metrics::{ChecksumLabels, Metrics};

/// What `/status` shows of one router; compared without allocating on every advert.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Visible {
    pub state: State,
    pub master: Option<IpAddr>,
    pub priority: u8,
    pub transitions: u64,
}

/// The config-derived parts of sending and accepting, for one family.
struct Plan {
    unicast: bool,
    unicast_min_ttl: u8,
    peers: Vec<IpAddr>,
    strict_vips: bool,
    /// Where adverts go: the group, or every unicast peer of this family.
    dsts: Vec<IpAddr>,
    advert: Advert,
    form: ChecksumForm,
    /// Encoded adverts by (priority, destination): a master sends the same bytes every
    /// interval, so encode once.
    encoded: Vec<(u8, IpAddr, Vec<u8>)>,
}

impl Plan {
    fn new(cfg: &Instance, family: Family) -> Plan {
        let peers = translate::peers(cfg, family);
        let dsts = if cfg.unicast {
            peers.clone()
        } else {
            vec![wire::multicast_group(family == Family::V4)]
        };
        let version = translate::version(cfg);
        Plan {
            unicast: cfg.unicast,
            unicast_min_ttl: cfg.unicast_min_ttl,
            peers,
            strict_vips: cfg.strict_vip_list,
            dsts,
            advert: Advert {
                version,
                vrid: cfg.vrid,
                priority: 0,
                interval_cs: translate::interval_cs(cfg),
                addresses: translate::vips(cfg, family)
                    .iter()
                    .map(|v| v.addr)
                    .collect(),
                auth: translate::auth(cfg),
            },
            // v2 encodes message-only whatever is asked.
            form: if family == Family::V6 || cfg.v3_checksum_pseudo_header {
                ChecksumForm::PseudoHeader
            } else {
                ChecksumForm::MessageOnly
            },
            encoded: Vec::new(),
        }
    }

    fn encode(
        &mut self,
        priority: u8,
        src: IpAddr,
        dst: IpAddr,
    ) -> Result<&[u8], packet::EncodeError> {
        let at = match self
            .encoded
            .iter()
            .position(|(p, d, _)| *p == priority && *d == dst)
        {
            Some(i) => i,
            None => {
                let a = Advert {
                    priority,
                    ..self.advert.clone()
                };
                let bytes = packet::encode(&a, src, dst, self.form)?;
                self.encoded.push((priority, dst, bytes));
                self.encoded.len() - 1
            }
        };
        Ok(&self.encoded[at].2)
    }
}

/// Metric handles resolved once: adverts go out and come in many times a second.
struct Counters {
    sent: Counter,
    received: Counter,
    priority: Gauge,
    pseudo_header: Counter,
    message_only: Counter,
    vip_mismatch: Counter,
}

impl Counters {
    fn new(m: &Metrics, instance: &str, label: &str) -> Counters {
        let r = Metrics::router(instance, label);
        let form = |f: &str| {
            m.checksum_forms
                .get_or_create(&ChecksumLabels {
                    instance: instance.into(),
                    form: f.into(),
                })
                .clone()
        };
        Counters {
            sent: m.adverts_sent.get_or_create(&r).clone(),
            received: m.adverts_received.get_or_create(&r).clone(),
            priority: m.priority.get_or_create(&r).clone(),
            vip_mismatch: m.vip_list_mismatches.get_or_create(&r).clone(),
            pseudo_header: form("pseudo_header"),
            message_only: form("message_only"),
        }
    }
}

pub struct Vr {
    pub family: Family,
    pub label: &'static str,
    pub router: Router,
    /// Our advert source: the interface's primary IPv4 or link-local IPv6 address.
    pub primary: IpAddr,
    pub announcements: Announcements,
    pub transitions: u64,
    pub since: SystemTime,
    reg: Registration,
    plan: Plan,
    counters: Counters,
}

impl Vr {
    pub fn new(
        cfg: &Instance,
        family: Family,
        primary: IpAddr,
        reg: Registration,
        announcements: Announcements,
        metrics: &Metrics,
    ) -> Vr {
        let label = family_label(family);
        Vr {
            family,
            label,
            router: Router::new(translate::router_config(cfg, primary)),
            primary,
            announcements,
            transitions: 0,
            since: SystemTime::now(),
            reg,
            plan: Plan::new(cfg, family),
            counters: Counters::new(metrics, &cfg.name, label),
        }
    }

    /// Re-derives sending and acceptance after an in-place config change.
    pub fn replan(&mut self, cfg: &Instance) {
        self.plan = Plan::new(cfg, self.family);
    }

    pub fn accept(&self, d: &Datagram<'_>, own: &[IpAddr]) -> Result<Accepted, DropReason> {
        let link = Link {
            unicast: self.plan.unicast,
            peers: &self.plan.peers,
            unicast_min_ttl: self.plan.unicast_min_ttl,
            own,
            vips: &self.plan.advert.addresses,
            strict_vips: self.plan.strict_vips,
        };
        let r = self.router.accept(d, &link);
        if matches!(&r, Ok(a) if !a.vips_match) || r == Err(DropReason::VipMismatch) {
            self.counters.vip_mismatch.inc();
        }
        if let Ok(a) = &r {
            self.counters.received.inc();
            if self.family == Family::V4 && a.heard.version == Version::V3 {
                match a.checksum {
                    ChecksumForm::PseudoHeader => self.counters.pseudo_header.inc(),
                    ChecksumForm::MessageOnly => self.counters.message_only.inc(),
                };
            }
        }
        r
    }

    pub async fn send_advert(&mut self, instance: &str, priority: u8) {
        for i in 0..self.plan.dsts.len() {
            let dst = self.plan.dsts[i];
            let bytes = match self.plan.encode(priority, self.primary, dst) {
                Ok(b) => b,
                Err(e) => {
                    tracing::error!(instance, error = %e, "advert not encodable");
                    return;
                }
            };
            match self.reg.socket.send_to(bytes, self.primary, dst).await {
                Ok(_) => {
                    self.counters.sent.inc();
                }
                Err(e) => tracing::warn!(instance, %dst, error = %e, "advert not sent"),
            }
        }
    }

    pub fn show_priority(&self) {
        self.counters
            .priority
            .set(i64::from(self.router.effective_priority()));
    }

    pub fn visible(&self) -> Visible {
        Visible {
            state: self.router.state(),
            master: self.router.master(),
            priority: self.router.effective_priority(),
            transitions: self.transitions,
        }
    }
}
