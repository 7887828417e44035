//! Which faults a round injects, drawn from a seeded RNG: the same seed gives the same
//! sequence of choices to every peer, so edgevip and keepalived face the same rounds for
//! as long as both runs last.

/// SplitMix64: small, seedable, good enough to pick faults (no dependency for it).
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n` > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// True with probability `percent` / 100.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

/// One kind of fault. Each is applied, held, then undone (see `actions`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// SIGKILL of every daemon process of the node, restarted after the hold.
    Kill,
    /// SIGSTOP of the master's daemon, SIGCONT after the hold.
    Stop,
    /// `ip link set eth0 down` in the node's namespace, up after the hold.
    Flap,
    /// Planned restart: SIGTERM, started again after the hold.
    Restart,
    /// SIGHUP with a changed priority in the config (instant; nothing to undo).
    Reload,
    /// The Kubernetes API server stopped, started again after the hold.
    ApiOutage,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Kill => "SIGKILL+start",
            Kind::Stop => "SIGSTOP/CONT",
            Kind::Flap => "link flap",
            Kind::Restart => "SIGTERM+start",
            Kind::Reload => "reload prio",
            Kind::ApiOutage => "API outage",
        }
    }

    /// Faults aimed at a node (all but the API outage).
    pub fn has_node(self) -> bool {
        self != Kind::ApiOutage
    }
}

/// A fault with its target: `node` (when the kind has one), whether that node was the
/// holder when the round began, and for a reload the new priority.
#[derive(Debug, Clone, PartialEq)]
pub struct Fault {
    pub kind: Kind,
    pub node: Option<usize>,
    pub on_master: bool,
    pub new_priority: Option<u8>,
}

impl Fault {
    /// E.g. `link flap (master)`; the scenario key of the reports.
    pub fn label(&self) -> String {
        match self.node {
            None => self.kind.name().to_string(),
            Some(_) if self.kind == Kind::Stop => self.kind.name().to_string(),
            Some(_) => format!(
                "{} ({})",
                self.kind.name(),
                if self.on_master { "master" } else { "backup" }
            ),
        }
    }
}

/// The faults of one round (one or two, at once) and how long they are held.
#[derive(Debug, Clone, PartialEq)]
pub struct Round {
    pub faults: Vec<Fault>,
    pub hold_ms: u64,
}

impl Round {
    /// The scenario key: the faults' labels, sorted, joined by ` + `.
    pub fn label(&self) -> String {
        let mut l: Vec<String> = self.faults.iter().map(Fault::label).collect();
        l.sort();
        l.join(" + ")
    }
}

/// What a rig supports, and the state the choice depends on.
pub struct Menu<'a> {
    pub kinds: &'a [Kind],
    /// Percent of rounds with two faults at once.
    pub double_percent: u64,
    pub nodes: usize,
    /// The node expected to hold the VIP now.
    pub master: usize,
    /// Current priorities (a reload picks one that none of the others has).
    pub priorities: &'a [u8],
}

/// Draws the next round. Two faults never share a node, SIGSTOP only hits the master,
/// and at most one API outage: at least one node stays able to hold the VIP.
pub fn choose(rng: &mut Rng, menu: &Menu) -> Round {
    let first = fault(rng, menu, &[]).expect("a first fault is always possible");
    let mut faults = vec![first];
    if rng.chance(menu.double_percent) {
        // A handful of draws; a round stays single if none fits.
        for _ in 0..8 {
            if let Some(f) = fault(rng, menu, &faults) {
                faults.push(f);
                break;
            }
        }
    }
    Round {
        faults,
        hold_ms: 800 + rng.below(1200),
    }
}

fn fault(rng: &mut Rng, menu: &Menu, taken: &[Fault]) -> Option<Fault> {
    let kind = menu.kinds[rng.below(menu.kinds.len() as u64) as usize];
    let used: Vec<usize> = taken.iter().filter_map(|f| f.node).collect();
    if taken.iter().any(|f| f.kind == kind && !kind.has_node()) {
        return None;
    }
    if !kind.has_node() {
        return Some(Fault {
            kind,
            node: None,
            on_master: false,
            new_priority: None,
        });
    }
    let node = if kind == Kind::Stop || rng.chance(50) {
        menu.master
    } else {
        let others: Vec<usize> = (0..menu.nodes).filter(|n| *n != menu.master).collect();
        others[rng.below(others.len() as u64) as usize]
    };
    if used.contains(&node) {
        return None;
    }
    let new_priority = (kind == Kind::Reload).then(|| {
        // Steps of 10 in 100..=200, never a tie with another node: which node must win
        // stays decided by priority alone.
        loop {
            let p = 100 + 10 * rng.below(11) as u8;
            let tie = menu
                .priorities
                .iter()
                .enumerate()
                .any(|(i, q)| i != node && *q == p);
            if !tie && p != menu.priorities[node] {
                break p;
            }
        }
    });
    Some(Fault {
        kind,
        node: Some(node),
        on_master: node == menu.master,
        new_priority,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: &[Kind] = &[
        Kind::Kill,
        Kind::Stop,
        Kind::Flap,
        Kind::Restart,
        Kind::Reload,
        Kind::ApiOutage,
    ];

    fn menu(prios: &[u8]) -> Menu<'_> {
        Menu {
            kinds: ALL,
            double_percent: 50,
            nodes: 3,
            master: 0,
            priorities: prios,
        }
    }

    #[test]
    fn the_same_seed_gives_the_same_rounds() {
        let prios = [150, 140, 130];
        let (mut a, mut b) = (Rng::new(7), Rng::new(7));
        for _ in 0..100 {
            assert_eq!(choose(&mut a, &menu(&prios)), choose(&mut b, &menu(&prios)));
        }
    }

    #[test]
    fn rounds_keep_their_rules() {
        let prios = [150, 140, 130];
        let mut rng = Rng::new(1);
        let mut doubles = 0;
        for _ in 0..2000 {
            let r = choose(&mut rng, &menu(&prios));
            assert!((1..=2).contains(&r.faults.len()));
            doubles += usize::from(r.faults.len() == 2);
            let nodes: Vec<usize> = r.faults.iter().filter_map(|f| f.node).collect();
            assert!(nodes.len() < 2 || nodes[0] != nodes[1], "{r:?}");
            for f in &r.faults {
                if f.kind == Kind::Stop {
                    assert_eq!(f.node, Some(0), "SIGSTOP hits the master");
                }
                if let Some(p) = f.new_priority {
                    let n = f.node.unwrap();
                    assert!(prios.iter().enumerate().all(|(i, q)| i == n || *q != p));
                    assert_ne!(p, prios[n]);
                }
            }
            assert!((800..2000).contains(&r.hold_ms));
        }
        assert!(doubles > 500, "about half the rounds are double: {doubles}");
    }
}
