//! The invariant: exactly one node holds the VIP, and it is the right one. The model says
//! which node is right from what the driver did; the check compares that with the
//! addresses the nodes' namespaces actually have.

use std::net::Ipv4Addr;

/// What the driver knows of one node.
#[derive(Debug, Clone)]
pub struct NodeState {
    pub priority: u8,
    pub ip: Ipv4Addr,
    /// Its daemon runs (not killed or stopped by SIGTERM and not yet started again).
    pub running: bool,
    /// SIGSTOPped.
    pub frozen: bool,
    pub link_up: bool,
}

impl NodeState {
    /// Able to hold the VIP: a live, unfrozen daemon on a link that is up.
    pub fn eligible(&self) -> bool {
        self.running && !self.frozen && self.link_up
    }
}

#[derive(Debug, Clone)]
pub struct Model {
    pub nodes: Vec<NodeState>,
    /// Whether a recovered better node takes the VIP back.
    pub preempt: bool,
    /// The holder last seen to be right (without preemption it keeps the VIP while it can).
    pub holder: Option<usize>,
}

impl Model {
    /// The node that must hold the VIP: the eligible one with the highest priority (ties:
    /// the higher address, as RFC 9568 §6.4.3 breaks them). Without preemption the last
    /// right holder keeps it while it stays eligible. A SIGCONTed master is no exception:
    /// it resumes as master and a lower-priority master that took over yields to its adverts
    /// (preemption only governs backups), so a model without preemption may be wrong
    /// there: the rigs run with preemption on.
    pub fn expected(&self) -> Option<usize> {
        if !self.preempt
            && let Some(h) = self.holder
            && self.nodes[h].eligible()
        {
            return Some(h);
        }
        self.nodes
            .iter()
            .enumerate()
            .filter(|(_, n)| n.eligible())
            .max_by_key(|(_, n)| (n.priority, n.ip))
            .map(|(i, _)| i)
    }
}

/// Which holders count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// While faults last: only eligible nodes (a killed daemon's or a frozen one's stale
    /// address, and an address on a downed link, reach nobody the new master has not
    /// taken the traffic from by its gratuitous ARP).
    Eligible,
    /// After recovery: every node.
    All,
}

/// `None` when `holders` is exactly the expected node; otherwise what is wrong.
pub fn check(model: &Model, holders: &[usize], scope: Scope) -> Option<String> {
    let counted: Vec<usize> = holders
        .iter()
        .copied()
        .filter(|h| scope == Scope::All || model.nodes.get(*h).is_some_and(|n| n.eligible()))
        .collect();
    let want = model.expected();
    match (want, counted.as_slice()) {
        (Some(w), [h]) if *h == w => None,
        (None, []) => None,
        (Some(w), []) => Some(format!("no holder, expected node {w}")),
        (Some(w), [h]) => Some(format!("node {h} holds, expected node {w}")),
        (None, _) => Some(format!(
            "holders {counted:?}, expected none (no node eligible)"
        )),
        (Some(w), many) => Some(format!(
            "{} holders {many:?}, expected node {w}",
            many.len()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model(preempt: bool) -> Model {
        let nodes = [150, 140, 130]
            .iter()
            .enumerate()
            .map(|(i, p)| NodeState {
                priority: *p,
                ip: Ipv4Addr::new(192, 0, 2, 11 + i as u8),
                running: true,
                frozen: false,
                link_up: true,
            })
            .collect();
        Model {
            nodes,
            preempt,
            holder: Some(0),
        }
    }

    #[test]
    fn the_best_eligible_node_is_expected() {
        let mut m = model(true);
        assert_eq!(m.expected(), Some(0));
        m.nodes[0].frozen = true;
        assert_eq!(m.expected(), Some(1));
        m.nodes[1].link_up = false;
        assert_eq!(m.expected(), Some(2));
        m.nodes[2].running = false;
        assert_eq!(m.expected(), None);
        m.nodes[0].frozen = false;
        assert_eq!(m.expected(), Some(0));
        // A tie goes to the higher address.
        let mut m = model(true);
        m.nodes[0].priority = 140;
        assert_eq!(m.expected(), Some(1));
    }

    #[test]
    fn without_preemption_the_holder_keeps_it() {
        let mut m = model(false);
        m.holder = Some(1);
        assert_eq!(m.expected(), Some(1));
        m.nodes[1].running = false;
        assert_eq!(m.expected(), Some(0));
    }

    #[test]
    fn check_finds_two_holders_a_wrong_one_and_none() {
        let mut m = model(true);
        assert_eq!(check(&m, &[0], Scope::All), None);
        assert!(
            check(&m, &[0, 1], Scope::All)
                .unwrap()
                .contains("2 holders")
        );
        assert!(
            check(&m, &[1], Scope::All)
                .unwrap()
                .contains("expected node 0")
        );
        assert!(check(&m, &[], Scope::All).unwrap().contains("no holder"));
        // A frozen master's stale address does not count while the fault lasts.
        m.nodes[0].frozen = true;
        assert_eq!(check(&m, &[0, 1], Scope::Eligible), None);
        assert!(check(&m, &[0, 1], Scope::All).is_some());
    }
}
