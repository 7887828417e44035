//! Link state of the interfaces in use (instances' own and tracked ones), kept current from
//! netlink and shared with the instances through a watch channel.
//!
//! Only names in use are kept: a Kubernetes node creates and deletes a veth for every pod,
//! and following all of them would grow the map without bound and wake every instance on
//! each pod start.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, RwLock};

use edgevip_netio::Netlink;
use tokio::sync::watch;

/// Interface name → link up (administratively up and carrier). A name in use whose
/// interface does not exist (yet) is absent.
pub type LinkMap = BTreeMap<String, bool>;

#[derive(Clone)]
pub struct Links {
    tx: Arc<watch::Sender<LinkMap>>,
    rx: watch::Receiver<LinkMap>,
    /// The names instances use; events about other interfaces are ignored.
    in_use: Arc<RwLock<BTreeSet<String>>>,
}

impl Links {
    /// Starts following link events for `names`.
    pub async fn start(netlink: &Netlink, names: &[String]) -> std::io::Result<Links> {
        let (tx, rx) = watch::channel(LinkMap::new());
        let links = Links {
            tx: Arc::new(tx),
            rx,
            in_use: Arc::default(),
        };
        let mut events = edgevip_netio::link_watch().map_err(std::io::Error::other)?;
        let (tx, in_use) = (links.tx.clone(), links.in_use.clone());
        tokio::spawn(async move {
            while let Some(ev) = events.recv().await {
                if !in_use.read().expect("links lock").contains(&ev.name) {
                    continue;
                }
                tx.send_if_modified(|m| m.insert(ev.name.clone(), ev.up) != Some(ev.up));
            }
            tracing::error!("link watch ended: link changes are no longer followed");
        });
        links.track(netlink, names).await;
        Ok(links)
    }

    /// Makes `names` the interfaces in use: new ones are looked up once (their state is
    /// known before the first event about them), ones no longer used are forgotten.
    pub async fn track(&self, netlink: &Netlink, names: &[String]) {
        let wanted: BTreeSet<String> = names.iter().cloned().collect();
        let new: Vec<String> = {
            let mut in_use = self.in_use.write().expect("links lock");
            let new = wanted.difference(&in_use).cloned().collect();
            *in_use = wanted.clone();
            new
        };
        self.tx.send_if_modified(|m| {
            let before = m.len();
            m.retain(|n, _| wanted.contains(n));
            m.len() != before
        });
        for n in new {
            if let Ok(l) = netlink.link_by_name(&n).await {
                // An event may have raced the lookup: it is newer, keep it.
                self.tx.send_if_modified(|m| {
                    let used = self.in_use.read().expect("links lock").contains(&n);
                    if m.contains_key(&n) || !used {
                        return false;
                    }
                    m.insert(n.clone(), l.up);
                    true
                });
            }
        }
    }

    pub fn subscribe(&self) -> watch::Receiver<LinkMap> {
        self.rx.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The map never holds names outside the set in use, whatever the events say.
    #[tokio::test]
    async fn only_names_in_use_are_kept() {
        let netlink = Netlink::new().expect("netlink socket");
        let links = Links::start(&netlink, &["lo".into()]).await.unwrap();
        assert_eq!(links.subscribe().borrow().get("lo"), Some(&true));
        links.track(&netlink, &["no-such-if0".into()]).await;
        let m = links.subscribe().borrow().clone();
        assert!(
            m.is_empty(),
            "lo no longer in use, the absent one unknown: {m:?}"
        );
        links
            .track(&netlink, &["lo".into(), "no-such-if0".into()])
            .await;
        assert_eq!(links.subscribe().borrow().len(), 1);
    }
}
