//! One watch's cache, the same for every kind: a projection (the few fields used) per
//! object, keyed `namespace/name` (`name` when cluster-scoped). A (re-)list fills a buffer
//! that replaces the cache at once, so a half-listed set never applies. kube-runtime's
//! reflector does this with whole objects; every Service and EndpointSlice of a cluster
//! kept whole would cost far more than the fields edgevip reads.

use std::collections::BTreeMap;

use kube::Resource;
use kube::runtime::watcher::Event;

#[derive(Debug)]
pub struct Cache<V> {
    items: BTreeMap<String, V>,
    /// The list in progress.
    relist: Option<BTreeMap<String, V>>,
    synced: bool,
}

impl<V: PartialEq> Cache<V> {
    pub fn new() -> Self {
        Cache {
            items: BTreeMap::new(),
            relist: None,
            synced: false,
        }
    }

    /// A cache no watch fills (the feature is off): synced, and empty for good.
    pub fn unwatched() -> Self {
        Cache {
            synced: true,
            ..Cache::new()
        }
    }

    /// The kind is not served (its CRD is not installed): synced and empty, as listing
    /// would say; true when that moved anything.
    pub fn absent(&mut self) -> bool {
        self.relist = None;
        let moved = !self.synced || !self.items.is_empty();
        self.items.clear();
        self.synced = true;
        moved
    }

    /// Listed completely at least once.
    pub fn synced(&self) -> bool {
        self.synced
    }

    pub fn items(&self) -> &BTreeMap<String, V> {
        &self.items
    }

    /// Applies one watch event. `project` keeps what is used of an object (`None`: nothing,
    /// as if it did not exist). Returns whether the cache moved in a way that matters:
    /// a value that changed, appeared or went, and that `relevant` holds of (before or
    /// after); a completed list always matters.
    pub fn apply<K: Resource>(
        &mut self,
        event: &Event<K>,
        project: impl Fn(&K) -> Option<V>,
        relevant: impl Fn(&str, &V) -> bool,
    ) -> bool {
        match event {
            Event::Apply(o) => {
                let k = key(o);
                let new = project(o);
                let old = match new {
                    Some(ref v) if self.items.get(&k) == Some(v) => return false,
                    Some(v) => self.items.insert(k.clone(), v),
                    None => self.items.remove(&k),
                };
                let matters = |v: Option<&V>| v.is_some_and(|v| relevant(&k, v));
                matters(old.as_ref()) || matters(self.items.get(&k))
            }
            Event::Delete(o) => {
                let k = key(o);
                self.items.remove(&k).is_some_and(|v| relevant(&k, &v))
            }
            Event::Init => {
                self.relist = Some(BTreeMap::new());
                false
            }
            Event::InitApply(o) => {
                if let Some(v) = project(o) {
                    self.relist.get_or_insert_default().insert(key(o), v);
                }
                false
            }
            Event::InitDone => {
                self.items = self.relist.take().unwrap_or_default();
                self.synced = true;
                true
            }
        }
    }
}

/// `namespace/name`, or `name` for a cluster-scoped object.
fn key<K: Resource>(o: &K) -> String {
    let m = o.meta();
    let name = m.name.as_deref().unwrap_or("");
    match &m.namespace {
        Some(ns) => format!("{ns}/{name}"),
        None => name.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::{ConfigMap, Node};

    use super::*;

    fn map(name: &str, v: &str) -> ConfigMap {
        let mut m = ConfigMap::default();
        m.metadata.name = Some(name.into());
        m.metadata.namespace = Some("ns".into());
        m.data = Some([("k".to_string(), v.to_string())].into());
        m
    }

    /// The value of key `k`; values starting with `skip` are not kept.
    fn value(m: &ConfigMap) -> Option<String> {
        m.data
            .as_ref()?
            .get("k")
            .filter(|v| !v.starts_with("skip"))
            .cloned()
    }

    /// Only values starting with `hot` matter.
    const fn relevance() -> impl Fn(&str, &String) -> bool + Copy {
        |_, v| v.starts_with("hot")
    }

    #[test]
    fn a_relist_replaces_the_cache_at_once() {
        let hot = relevance();
        let mut c = Cache::new();
        assert!(!c.synced());
        assert!(!c.apply(&Event::Init, value, hot));
        assert!(!c.apply(&Event::InitApply(map("a", "hot-1")), value, hot));
        assert!(!c.apply(&Event::InitApply(map("b", "skip")), value, hot));
        assert!(
            c.items().is_empty(),
            "nothing applies before the list completes"
        );
        assert!(c.apply(&Event::InitDone, value, hot));
        assert!(c.synced());
        assert_eq!(c.items().keys().collect::<Vec<_>>(), ["ns/a"]);
        // A re-list without `a` drops it; the old set holds until it completes.
        c.apply(&Event::Init, value, hot);
        c.apply(&Event::InitApply(map("c", "cold")), value, hot);
        assert_eq!(c.items().keys().collect::<Vec<_>>(), ["ns/a"]);
        assert!(c.apply(&Event::InitDone, value, hot));
        assert_eq!(c.items().keys().collect::<Vec<_>>(), ["ns/c"]);
    }

    #[test]
    fn only_relevant_changes_matter() {
        let hot = relevance();
        let mut c = Cache::new();
        c.apply(&Event::InitDone, value, hot);
        assert!(
            !c.apply(&Event::Apply(map("a", "cold")), value, hot),
            "irrelevant"
        );
        assert!(
            c.apply(&Event::Apply(map("a", "hot")), value, hot),
            "became relevant"
        );
        assert!(
            !c.apply(&Event::Apply(map("a", "hot")), value, hot),
            "unchanged"
        );
        assert!(
            c.apply(&Event::Apply(map("a", "cold")), value, hot),
            "was relevant"
        );
        assert!(c.apply(&Event::Apply(map("a", "hot")), value, hot));
        assert!(
            c.apply(&Event::Apply(map("a", "skip")), value, hot),
            "projected away"
        );
        assert!(c.items().is_empty());
        assert!(!c.apply(&Event::Apply(map("a", "skip")), value, hot));
        c.apply(&Event::Apply(map("a", "hot")), value, hot);
        assert!(c.apply(&Event::Delete(map("a", "")), value, hot));
        assert!(
            !c.apply(&Event::Delete(map("a", "")), value, hot),
            "already gone"
        );
    }

    #[test]
    fn cluster_scoped_objects_are_keyed_by_name() {
        let mut n = Node::default();
        n.metadata.name = Some("edge-a".into());
        let mut c = Cache::new();
        c.apply(&Event::Apply(n), |_| Some(()), |_, _| true);
        assert_eq!(c.items().keys().collect::<Vec<_>>(), ["edge-a"]);
        assert!(Cache::<()>::unwatched().synced());
    }

    #[test]
    fn an_absent_kind_is_synced_and_empty() {
        let hot = relevance();
        let mut c = Cache::new();
        assert!(c.absent(), "now synced");
        assert!(c.synced() && c.items().is_empty());
        assert!(!c.absent(), "nothing more to say");
        c.apply(&Event::Init, value, hot);
        c.apply(&Event::InitApply(map("a", "hot")), value, hot);
        c.apply(&Event::InitDone, value, hot);
        // Listed, then gone again (the CRD deleted): a half-done list does not survive.
        c.apply(&Event::Init, value, hot);
        c.apply(&Event::InitApply(map("b", "hot")), value, hot);
        assert!(c.absent());
        assert!(c.items().is_empty());
        c.apply(&Event::InitDone, value, hot);
        assert!(c.items().is_empty());
    }
}
