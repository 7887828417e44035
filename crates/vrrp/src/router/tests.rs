use super::*;
use std::net::Ipv4Addr;

const ME: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 10));
const LOW: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 5));
const HIGH: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 20));

fn cfg(priority: u8) -> Config {
    Config {
        vrid: 51,
        version: Version::V3,
        priority,
        advert_interval_cs: 100, // 1 s
        preempt: true,
        preempt_delay: Duration::ZERO,
        primary: ME,
        handoff: true,
        auth: crate::packet::Auth::None,
    }
}

fn ms(v: u64) -> Instant {
    Instant::from_millis(v)
}

fn heard(src: IpAddr, priority: u8, interval_cs: u16) -> Input {
    Input::Advert(Heard {
        src,
        version: Version::V3,
        priority,
        interval_cs,
    })
}

fn started(priority: u8) -> Router {
    let mut r = Router::new(cfg(priority));
    r.handle(Input::Startup, ms(0));
    r
}

/// Runs the router's own timer until it is past `until`, returning all actions.
fn fire(r: &mut Router) -> Vec<Action> {
    let at = r.deadline().expect("timer armed");
    r.handle(Input::Timer, at)
}

fn master(priority: u8) -> Router {
    let mut r = started(priority);
    fire(&mut r);
    assert_eq!(r.state(), State::Master);
    r
}

#[test]
fn startup_waits_as_backup_for_master_down_interval() {
    let mut r = Router::new(cfg(100));
    let a = r.handle(Input::Startup, ms(0));
    assert_eq!(r.state(), State::Backup);
    // 3 * 1 s + (256 - 100) / 256 s
    let mdi = Duration::from_secs(3) + Duration::from_secs(156) / 256;
    assert_eq!(r.master_down_interval(), mdi);
    assert!(a.contains(&Action::Timer(Some(Instant(mdi)))));
    assert!(
        !a.iter()
            .any(|a| matches!(a, Action::SendAdvert { .. } | Action::AddVips))
    );
}

#[test]
fn owner_takes_over_at_once() {
    let mut r = Router::new(cfg(255));
    let a = r.handle(Input::Startup, ms(0));
    assert_eq!(r.state(), State::Master);
    assert_eq!(
        &a[..3],
        &[
            Action::AddVips,
            Action::Announce,
            Action::SendAdvert { priority: 255 }
        ]
    );
    assert!(a.contains(&Action::StateChanged {
        from: State::Init,
        to: State::Master,
        reason: Reason::Owner
    }));
}

#[test]
fn skew_keeps_sub_millisecond_precision() {
    let mut a = cfg(101);
    a.advert_interval_cs = 10; // 100 ms
    let mut b = a.clone();
    b.priority = 100;
    let (a, b) = (Router::new(a), Router::new(b));
    let diff = b.skew_time() - a.skew_time();
    assert_eq!(diff, Duration::from_nanos(390_625)); // 100 ms / 256
}

#[test]
fn v2_skew_is_in_seconds_whatever_the_interval() {
    let mut c = cfg(100);
    c.version = Version::V2;
    c.advert_interval_cs = 300;
    let r = Router::new(c);
    assert_eq!(r.skew_time(), Duration::from_secs(156) / 256);
    assert_eq!(
        r.master_down_interval(),
        Duration::from_secs(9) + Duration::from_secs(156) / 256
    );
}

#[test]
fn v3_backup_learns_the_masters_interval() {
    let mut r = started(100);
    r.handle(heard(HIGH, 200, 10), ms(50));
    assert_eq!(r.master_interval(), Duration::from_millis(100));
    let mdi = Duration::from_millis(300) + Duration::from_millis(100) * 156 / 256;
    assert_eq!(r.deadline(), Some(ms(50) + mdi));
    assert_eq!(r.master(), Some(HIGH));
}

#[test]
fn priority_zero_makes_backup_wait_only_skew_time() {
    let mut r = started(100);
    r.handle(heard(HIGH, 200, 100), ms(100));
    r.handle(heard(HIGH, 0, 100), ms(200));
    assert_eq!(r.deadline(), Some(ms(200) + r.skew_time()));
    let a = fire(&mut r);
    assert!(a.contains(&Action::StateChanged {
        from: State::Backup,
        to: State::Master,
        reason: Reason::MasterReleased
    }));
}

#[test]
fn master_down_timer_makes_backup_master() {
    let mut r = started(100);
    let a = fire(&mut r);
    assert_eq!(
        &a[..3],
        &[
            Action::AddVips,
            Action::Announce,
            Action::SendAdvert { priority: 100 }
        ]
    );
    assert!(a.contains(&Action::StateChanged {
        from: State::Backup,
        to: State::Master,
        reason: Reason::MasterDown
    }));
    // Then adverts every interval.
    let t = r.deadline().unwrap();
    let a = r.handle(Input::Timer, t);
    assert_eq!(a[0], Action::SendAdvert { priority: 100 });
    assert_eq!(r.deadline(), Some(t + Duration::from_secs(1)));
}

#[test]
fn stale_or_early_timer_is_ignored() {
    let mut r = started(100);
    let a = r.handle(Input::Timer, ms(1));
    assert!(a.is_empty());
    assert_eq!(r.state(), State::Backup);
}

#[test]
fn master_yields_to_higher_priority() {
    let mut r = master(100);
    let a = r.handle(heard(LOW, 150, 10), ms(5000));
    assert_eq!(a[0], Action::RemoveVips);
    assert_eq!(r.state(), State::Backup);
    assert_eq!(r.master_interval(), Duration::from_millis(100));
    assert_eq!(r.master(), Some(LOW));
}

#[test]
fn equal_priority_tie_goes_to_the_higher_address() {
    let mut r = master(100);
    let a = r.handle(heard(LOW, 100, 100), ms(5000));
    assert_eq!(r.state(), State::Master, "{a:?}");
    r.handle(heard(HIGH, 100, 100), ms(5001));
    assert_eq!(r.state(), State::Backup);
}

#[test]
fn ipv6_tie_break_compares_whole_addresses() {
    let a: IpAddr = "fe80::1:0".parse().unwrap();
    let b: IpAddr = "fe80::ffff".parse().unwrap();
    assert!(addr_gt(a, b));
    assert!(!addr_gt(b, a));
}

#[test]
fn master_answers_a_lower_priority_master_and_reannounces() {
    let mut r = master(100);
    let a = r.handle(heard(HIGH, 50, 100), ms(5000));
    assert_eq!(
        &a[..2],
        &[Action::SendAdvert { priority: 100 }, Action::Announce]
    );
    assert_eq!(r.state(), State::Master);
}

#[test]
fn master_answers_priority_zero_with_an_advert() {
    let mut r = master(100);
    let a = r.handle(heard(HIGH, 0, 100), ms(5000));
    assert_eq!(a[0], Action::SendAdvert { priority: 100 });
    assert_eq!(r.deadline(), Some(ms(6000)));
}

#[test]
fn preempt_on_discards_lower_priority_adverts() {
    let mut r = started(200);
    let d = r.deadline();
    r.handle(heard(LOW, 100, 100), ms(500));
    assert_eq!(r.deadline(), d, "lower advert must not reset the timer");
    fire(&mut r);
    assert_eq!(r.state(), State::Master);
}

#[test]
fn preempt_off_tolerates_a_lower_priority_master() {
    let mut c = cfg(200);
    c.preempt = false;
    let mut r = Router::new(c);
    r.handle(Input::Startup, ms(0));
    for t in 1..=20 {
        r.handle(heard(LOW, 100, 100), ms(t * 1000));
        assert_eq!(r.state(), State::Backup);
    }
    assert_eq!(r.deadline(), Some(ms(20_000) + r.master_down_interval()));
}

#[test]
fn preempt_delay_tolerates_lower_master_until_it_expires() {
    let mut c = cfg(200);
    c.preempt_delay = Duration::from_secs(10);
    let mut r = Router::new(c);
    r.handle(Input::Startup, ms(0));
    for t in 1..10 {
        r.handle(heard(LOW, 100, 100), ms(t * 1000));
    }
    assert_eq!(r.deadline(), Some(ms(9000) + r.master_down_interval()));
    // After the delay, lower adverts are discarded and the timer runs out.
    r.handle(heard(LOW, 100, 100), ms(10_000));
    assert_eq!(r.deadline(), Some(ms(9000) + r.master_down_interval()));
    fire(&mut r);
    assert_eq!(r.state(), State::Master);
}

#[test]
fn graceful_shutdown_keeps_vips_until_new_master_is_heard() {
    let mut r = master(200);
    let a = r.handle(Input::Shutdown, ms(10_000));
    assert_eq!(a[0], Action::SendAdvert { priority: 0 });
    assert!(!a.contains(&Action::RemoveVips));
    assert!(r.is_releasing() && r.holds_vips());
    // Priority 0 is repeated every interval while waiting.
    let a = fire(&mut r);
    assert_eq!(a[0], Action::SendAdvert { priority: 0 });
    // Another priority 0 (someone else leaving) changes nothing.
    assert!(r.handle(heard(HIGH, 0, 100), ms(11_500)).is_empty());
    let a = r.handle(heard(LOW, 100, 100), ms(11_600));
    assert_eq!(a[0], Action::RemoveVips);
    assert!(a.contains(&Action::StateChanged {
        from: State::Master,
        to: State::Init,
        reason: Reason::HandoffComplete
    }));
    assert!(!r.is_releasing());
}

#[test]
fn graceful_shutdown_is_bounded() {
    let mut r = master(200);
    r.handle(Input::Shutdown, ms(10_000));
    let mut last = Vec::new();
    for _ in 0..10 {
        if r.state() != State::Master {
            break;
        }
        last = fire(&mut r);
    }
    assert!(last.contains(&Action::RemoveVips));
    assert!(last.contains(&Action::StateChanged {
        from: State::Master,
        to: State::Init,
        reason: Reason::HandoffTimeout
    }));
    // 4 intervals: longer than any backup's Master_Down_Interval.
    assert_eq!(r.deadline(), None);
}

#[test]
fn shutdown_without_handoff_releases_at_once() {
    let mut c = cfg(200);
    c.handoff = false;
    let mut r = Router::new(c);
    r.handle(Input::Startup, ms(0));
    fire(&mut r);
    let a = r.handle(Input::Shutdown, ms(9000));
    assert_eq!(
        &a[..2],
        &[Action::SendAdvert { priority: 0 }, Action::RemoveVips]
    );
    assert_eq!(r.state(), State::Init);
}

#[test]
fn backup_shutdown_is_silent() {
    let mut r = started(100);
    let a = r.handle(Input::Shutdown, ms(10));
    assert!(!a.iter().any(|a| matches!(a, Action::SendAdvert { .. })));
    assert_eq!(r.state(), State::Init);
    assert_eq!(r.deadline(), None);
}

#[test]
fn link_down_leaves_master_silently_and_rejoins_as_backup() {
    let mut r = master(200);
    let a = r.handle(Input::InterfaceDown, ms(9000));
    assert_eq!(a[0], Action::RemoveVips);
    assert!(!a.iter().any(|a| matches!(a, Action::SendAdvert { .. })));
    assert_eq!(r.state(), State::Fault);
    // Deaf and silent in fault.
    assert!(r.handle(heard(LOW, 100, 100), ms(9100)).is_empty());
    assert!(r.handle(Input::Timer, ms(20_000)).is_empty());
    r.handle(Input::InterfaceUp, ms(30_000));
    assert_eq!(r.state(), State::Backup);
    assert_eq!(r.deadline(), Some(ms(30_000) + r.master_down_interval()));
}

#[test]
fn track_failure_sends_priority_zero_then_stays_silent() {
    let mut r = master(200);
    let a = r.handle(Input::TrackFault(true), ms(9000));
    assert_eq!(
        &a[..2],
        &[Action::SendAdvert { priority: 0 }, Action::RemoveVips]
    );
    assert_eq!(r.state(), State::Fault);
    // Link flaps while tracking still fails: stay in fault.
    r.handle(Input::InterfaceDown, ms(9100));
    r.handle(Input::InterfaceUp, ms(9200));
    assert_eq!(r.state(), State::Fault);
    r.handle(Input::TrackFault(false), ms(9300));
    assert_eq!(r.state(), State::Backup);
}

#[test]
fn startup_with_link_down_goes_to_fault() {
    let mut r = Router::new(cfg(100));
    r.handle(Input::InterfaceDown, ms(0));
    assert_eq!(r.state(), State::Init);
    r.handle(Input::Startup, ms(0));
    assert_eq!(r.state(), State::Fault);
    r.handle(Input::InterfaceUp, ms(10));
    assert_eq!(r.state(), State::Backup);
}

#[test]
fn owner_priority_never_changes_and_others_stay_below_255() {
    let mut r = master(255);
    assert!(r.handle(Input::PriorityChanged(100), ms(1)).is_empty());
    assert_eq!(r.effective_priority(), 255);
    let mut r = master(100);
    let a = r.handle(Input::PriorityChanged(255), ms(5000));
    assert_eq!(r.effective_priority(), 254);
    assert_eq!(a[0], Action::SendAdvert { priority: 254 });
    r.handle(Input::PriorityChanged(0), ms(5001));
    assert_eq!(r.effective_priority(), 1);
}

#[test]
fn backup_with_raised_priority_preempts_after_master_down_interval() {
    let mut r = started(100);
    r.handle(heard(HIGH, 150, 100), ms(1000));
    let armed = r.deadline();
    r.handle(Input::PriorityChanged(200), ms(1500));
    r.handle(heard(HIGH, 150, 100), ms(2000)); // now lower: discarded
    assert_eq!(r.deadline(), armed);
    fire(&mut r);
    assert_eq!(r.state(), State::Master);
}

#[test]
fn reload_keeps_state_and_applies_new_priority() {
    let mut r = master(100);
    let mut new = cfg(120);
    new.preempt = false;
    assert!(r.can_reconfigure(&new));
    let a = r.reconfigure(new, ms(5000));
    assert_eq!(r.state(), State::Master);
    assert_eq!(a[0], Action::SendAdvert { priority: 120 });
    assert!(
        !a.iter()
            .any(|a| matches!(a, Action::RemoveVips | Action::StateChanged { .. }))
    );
    let mut other = cfg(120);
    other.vrid = 52;
    assert!(!r.can_reconfigure(&other));
    assert!(
        !r.can_reconfigure(&cfg(255)),
        "becoming the owner needs a restart"
    );
}

#[test]
fn lower_priority_adverts_are_answered_once_per_interval_and_reannounced_once_per_second() {
    let mut r = master(100); // 1 s interval
    let sends = |a: &[Action]| {
        a.iter()
            .filter(|x| matches!(x, Action::SendAdvert { .. }))
            .count()
    };
    let announces = |a: &[Action]| a.iter().filter(|x| **x == Action::Announce).count();
    let first = r.handle(heard(HIGH, 50, 100), ms(5000));
    assert_eq!((sends(&first), announces(&first)), (1, 1));
    // A flood within the interval: no answer, no announcement, the timer untouched.
    let d = r.deadline();
    for t in 5001..5100 {
        let a = r.handle(heard(HIGH, 50, 100), ms(t));
        assert_eq!(a, vec![], "flood at {t} ms");
    }
    assert_eq!(r.deadline(), d);
    let later = r.handle(heard(HIGH, 50, 100), ms(6000));
    assert_eq!(
        (sends(&later), announces(&later)),
        (1, 1),
        "one interval on"
    );
}

#[test]
fn the_learned_interval_is_bounded() {
    let mut r = started(100); // own 1 s: at most 10 s learned
    r.handle(heard(HIGH, 200, 4095), ms(10));
    assert_eq!(r.master_interval(), Duration::from_secs(10));
    let mut fast = Router::new(Config {
        advert_interval_cs: 10, // 100 ms: at most 1 s learned
        ..cfg(100)
    });
    fast.handle(Input::Startup, ms(0));
    fast.handle(heard(HIGH, 200, 4095), ms(10));
    assert_eq!(fast.master_interval(), Duration::from_secs(1));
    fast.handle(heard(HIGH, 200, 50), ms(20));
    assert_eq!(
        fast.master_interval(),
        Duration::from_millis(500),
        "within bounds: as sent"
    );
}

#[test]
fn the_address_owner_never_steps_down() {
    let mut r = master(OWNER_PRIORITY);
    let a = r.handle(heard(HIGH, OWNER_PRIORITY, 100), ms(5000));
    assert_eq!(r.state(), State::Master, "{a:?}");
    assert!(!a.contains(&Action::RemoveVips));
}
