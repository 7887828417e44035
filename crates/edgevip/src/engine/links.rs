//! Link state of every interface, kept current from netlink and shared with the instances
//! through a watch channel (each instance looks at its own interface and tracked ones).

use std::collections::BTreeMap;

use edgevip_netio::Netlink;
use tokio::sync::watch;

/// Interface name → link up (administratively up and carrier).
pub type LinkMap = BTreeMap<String, bool>;

#[derive(Clone)]
pub struct Links {
    tx: std::sync::Arc<watch::Sender<LinkMap>>,
    rx: watch::Receiver<LinkMap>,
}

impl Links {
    /// Starts following link events. Interfaces are looked up once by name so instances
    /// have an answer before the first event arrives.
    pub async fn start(netlink: &Netlink, names: &[String]) -> std::io::Result<Links> {
        let mut initial = LinkMap::new();
        for n in names {
            if let Ok(l) = netlink.link_by_name(n).await {
                initial.insert(n.clone(), l.up);
            }
        }
        let (tx, rx) = watch::channel(initial);
        let tx = std::sync::Arc::new(tx);
        let mut events = edgevip_netio::link_watch().map_err(std::io::Error::other)?;
        let etx = tx.clone();
        tokio::spawn(async move {
            let tx = etx;
            while let Some(ev) = events.recv().await {
                tx.send_if_modified(|m| m.insert(ev.name.clone(), ev.up) != Some(ev.up));
            }
            tracing::error!("link watch ended: link changes are no longer followed");
        });
        Ok(Links { tx, rx })
    }

    /// Looks up interfaces not followed yet (a reload or the cluster named new ones), so
    /// their state is known before the first event about them.
    pub async fn ensure(&self, netlink: &Netlink, names: &[String]) {
        for n in names {
            if self.rx.borrow().contains_key(n) {
                continue;
            }
            if let Ok(l) = netlink.link_by_name(n).await {
                self.tx.send_if_modified(|m| {
                    if m.contains_key(n) {
                        false
                    } else {
                        m.insert(n.clone(), l.up);
                        true
                    }
                });
            }
        }
    }

    pub fn subscribe(&self) -> watch::Receiver<LinkMap> {
        self.rx.clone()
    }
}
