use super::*;

fn v4(last: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(192, 0, 2, last))
}

fn cfg(priority: u8, last: u8) -> Config {
    Config {
        vrid: 51,
        version: Version::V3,
        priority,
        advert_interval_cs: 10, // 100 ms
        preempt: true,
        preempt_delay: Duration::ZERO,
        primary: v4(last),
        handoff: true,
        auth: crate::packet::Auth::None,
    }
}

fn ms(v: u64) -> Instant {
    Instant::from_millis(v)
}

/// Three routers 150/140/130 started together, settled for two seconds.
fn trio() -> Sim {
    let mut sim = Sim::new(1, true);
    for (p, a) in [(150, 10), (140, 11), (130, 12)] {
        let i = sim.add_node(0, cfg(p, a));
        sim.schedule(Instant::ZERO, Op::Start(i));
    }
    sim.run_until(ms(2000));
    sim.check_settled().unwrap();
    assert_eq!(sim.router(0).state(), State::Master);
    sim
}

fn master_of(sim: &Sim) -> Option<usize> {
    (0..sim.node_count()).find(|&i| sim.is_running(i) && sim.router(i).state() == State::Master)
}

#[test]
fn crash_fails_over_after_master_down_interval_of_next_backup() {
    let mut sim = trio();
    sim.schedule(ms(2001), Op::Crash(0));
    // Router 1 (140): MDI = 300 ms + 116/256 * 100 ms = 345.3 ms after the last advert.
    sim.run_until(ms(2001 + 250));
    assert_eq!(master_of(&sim), None);
    sim.run_until(ms(2001 + 350));
    assert_eq!(master_of(&sim), Some(1));
    sim.run_until(ms(4000));
    sim.check_settled().unwrap();
}

#[test]
fn graceful_stop_hands_over_in_skew_time_with_no_gap() {
    let mut sim = trio();
    sim.guard_no_gap = true;
    sim.schedule(ms(2001), Op::Stop(0));
    // Skew of priority 140 at 100 ms: 45.3 ms, plus sub-ms delays.
    sim.run_until(ms(2001 + 50));
    assert_eq!(master_of(&sim), Some(1));
    assert!(!sim.is_running(0), "old master finished its handoff");
    assert!(sim.violations().is_empty(), "{:?}", sim.violations());
    sim.run_until(ms(4000));
    sim.check_settled().unwrap();
}

#[test]
fn gap_guard_catches_a_release_without_handoff() {
    let mut sim = Sim::new(1, false);
    for (p, a, handoff) in [(150, 10, false), (140, 11, true)] {
        let i = sim.add_node(
            0,
            Config {
                handoff,
                ..cfg(p, a)
            },
        );
        sim.schedule(Instant::ZERO, Op::Start(i));
    }
    sim.run_until(ms(2000));
    sim.guard_no_gap = true;
    sim.schedule(ms(2001), Op::Stop(0));
    sim.run_until(ms(3000));
    assert_eq!(
        sim.violations().len(),
        1,
        "the guard must see the plain release's gap"
    );
}

#[test]
fn returning_master_preempts_without_gap() {
    let mut sim = trio();
    sim.guard_no_gap = true;
    sim.schedule(ms(2001), Op::Stop(0));
    sim.schedule(ms(2500), Op::Start(0));
    sim.run_until(ms(2500 + 340));
    assert_eq!(
        master_of(&sim),
        Some(1),
        "new router waits Master_Down_Interval"
    );
    sim.run_until(ms(2500 + 360));
    assert_eq!(master_of(&sim), Some(0));
    assert!(sim.violations().is_empty(), "{:?}", sim.violations());
}

#[test]
fn equal_priorities_elect_the_highest_address() {
    let mut sim = Sim::new(7, false);
    for a in [30, 10, 20] {
        let i = sim.add_node(0, cfg(100, a));
        sim.schedule(Instant::ZERO, Op::Start(i));
    }
    sim.run_until(ms(3000));
    sim.check_settled().unwrap();
    assert_eq!(master_of(&sim), Some(0));
}

#[test]
fn healed_partition_leaves_one_master() {
    let mut sim = trio();
    sim.schedule(ms(2001), Op::Segment(0, 1));
    sim.run_until(ms(3000));
    assert_eq!(sim.router(0).state(), State::Master);
    assert_eq!(
        sim.router(1).state(),
        State::Master,
        "split brain while partitioned"
    );
    sim.schedule(ms(3001), Op::Heal);
    sim.run_until(ms(3200));
    sim.check_settled().unwrap();
    assert_eq!(master_of(&sim), Some(0));
}

#[test]
fn check_settled_rejects_two_masters() {
    let mut sim = trio();
    sim.schedule(ms(2001), Op::Segment(0, 1));
    sim.run_until(ms(3000));
    let err = sim.check_settled().unwrap_err();
    assert!(err.contains("2 masters"), "{err}");
}

#[test]
fn same_seed_same_run() {
    let a = run_seed(42).unwrap();
    let b = run_seed(42).unwrap();
    assert_eq!((a.events, a.transitions), (b.events, b.transitions));
}

#[test]
fn a_few_random_seeds() {
    for seed in 0..50 {
        if let Err(f) = run_seed(seed) {
            panic!("{f}");
        }
    }
}
