//! Link state of every interface, kept current from netlink and shared with the instances
//! through a watch channel (each instance looks at its own interface and tracked ones).

use std::collections::BTreeMap;

use edgevip_netio::Netlink;
use tokio::sync::watch;

/// Interface name → link up (administratively up and carrier).
pub type LinkMap = BTreeMap<String, bool>;

#[derive(Clone)]
pub struct Links {
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
        let mut events = edgevip_netio::link_watch().map_err(std::io::Error::other)?;
        tokio::spawn(async move {
            while let Some(ev) = events.recv().await {
                tx.send_if_modified(|m| m.insert(ev.name.clone(), ev.up) != Some(ev.up));
            }
            tracing::error!("link watch ended: link changes are no longer followed");
        });
        Ok(Links { rx })
    }

    pub fn subscribe(&self) -> watch::Receiver<LinkMap> {
        self.rx.clone()
    }
}
