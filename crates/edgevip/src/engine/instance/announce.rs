//! Gratuitous ARP / unsolicited NA for a router's VIPs: the first round at once, the rest
//! of the burst and the periodic refresh in the background, so the protocol loop never
//! waits on it.

use std::net::IpAddr;
use std::sync::Arc;

use edgevip_config::Announce;
use edgevip_netio::Announcer;
use prometheus_client::metrics::counter::Counter;
use tokio::task::JoinHandle;

/// A repeat of the first round soon after it: an old master may still send an announcement
/// of its own between ours and its hearing our first advert (its reaction time, longer on
/// a loaded host), pointing hosts back to it just before it drops the VIP. Without this,
/// such hosts wait for our next round (200 ms by default): seen in the lab as 190 ms loss.
const QUICK_REPEAT: std::time::Duration = std::time::Duration::from_millis(25);

/// The announcements of one router; a new burst replaces the running one.
pub struct Announcements {
    announcer: Arc<Announcer>,
    instance: String,
    counter: Counter,
    running: Option<JoinHandle<()>>,
}

impl Announcements {
    pub fn new(announcer: Arc<Announcer>, instance: &str, counter: Counter) -> Self {
        Announcements {
            announcer,
            instance: instance.into(),
            counter,
            running: None,
        }
    }

    /// The first round goes out before this returns (in particular before our advert), so
    /// a master handing over to us releases the VIPs only after hosts were told our MAC.
    pub async fn start(&mut self, vips: Vec<IpAddr>, plan: &Announce) {
        self.stop();
        let round = Round {
            announcer: self.announcer.clone(),
            instance: self.instance.clone(),
            counter: self.counter.clone(),
            vips,
        };
        round.run().await;
        let plan = plan.clone();
        self.running = Some(tokio::spawn(async move {
            tokio::time::sleep(QUICK_REPEAT).await;
            round.run().await;
            let mut done = 1u32;
            loop {
                let pause = if done < plan.count {
                    plan.interval
                } else if !plan.refresh.is_zero() {
                    plan.refresh
                } else {
                    break;
                };
                tokio::time::sleep(pause).await;
                round.run().await;
                done = done.saturating_add(1);
            }
        }));
    }

    pub fn stop(&mut self) {
        if let Some(h) = self.running.take() {
            h.abort();
        }
    }
}

impl Drop for Announcements {
    fn drop(&mut self) {
        self.stop();
    }
}

struct Round {
    announcer: Arc<Announcer>,
    instance: String,
    counter: Counter,
    vips: Vec<IpAddr>,
}

impl Round {
    async fn run(&self) {
        for vip in &self.vips {
            if let Err(e) = self.announcer.announce(*vip).await {
                tracing::warn!(instance = %self.instance, %vip, error = %e, "announcement failed");
            }
        }
        self.counter.inc();
    }
}
