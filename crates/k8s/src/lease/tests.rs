use super::*;

const D: Duration = Duration::from_secs(15);

fn held_by(who: &str, renewed: &str) -> Record {
    Record {
        holder: who.into(),
        duration: D,
        renewed: renewed.into(),
        transitions: 0,
    }
}

#[test]
fn a_missing_lease_is_created_and_then_renewed() {
    let t0 = Instant::now();
    let mut e = Elector::new("a", D);
    assert_eq!(e.observe(None, t0), Step::Create);
    assert!(!e.leading(t0), "leading only once the write succeeded");
    e.written(t0);
    assert!(e.leading(t0));
    assert_eq!(e.observe(Some(&held_by("a", "1")), t0), Step::Renew);
}

#[test]
fn a_live_holder_is_left_alone_while_its_record_changes() {
    let t0 = Instant::now();
    let mut b = Elector::new("b", D);
    // The holder renews every 2 s: the record keeps changing, b keeps waiting.
    for i in 0..20u64 {
        let now = t0 + Duration::from_secs(2 * i);
        let step = b.observe(Some(&held_by("a", &i.to_string())), now);
        assert_eq!(step, Step::Wait { holder: "a".into() }, "at {i}");
    }
}

#[test]
fn a_dead_holder_is_replaced_after_one_duration_of_an_unchanged_record() {
    let t0 = Instant::now();
    let mut b = Elector::new("b", D);
    let frozen = held_by("a", "7");
    assert!(matches!(b.observe(Some(&frozen), t0), Step::Wait { .. }));
    let almost = t0 + D - Duration::from_millis(1);
    assert!(matches!(
        b.observe(Some(&frozen), almost),
        Step::Wait { .. }
    ));
    assert_eq!(b.observe(Some(&frozen), t0 + D), Step::Acquire);
}

#[test]
fn expiry_counts_from_when_this_pod_first_saw_the_record_not_from_its_timestamp() {
    // A renewTime far in the past (a skewed clock) does not make the record expired: only
    // our own observation time counts.
    let t0 = Instant::now();
    let mut b = Elector::new("b", D);
    let old = held_by("a", "2001-01-01T00:00:00.000000Z");
    assert!(matches!(b.observe(Some(&old), t0), Step::Wait { .. }));
}

#[test]
fn a_released_lease_is_taken_at_once() {
    let mut b = Elector::new("b", D);
    assert_eq!(
        b.observe(Some(&held_by("", "9")), Instant::now()),
        Step::Acquire
    );
}

#[test]
fn a_holder_that_cannot_renew_stops_before_anyone_may_take_over() {
    let t0 = Instant::now();
    let mut a = Elector::new("a", D);
    a.written(t0);
    let mut b = Elector::new("b", D);
    let last = held_by("a", "1");
    b.observe(Some(&last), t0);
    // Walk time in 100 ms steps: never both "a leads" and "b may acquire".
    for ms in (0..=20_000u64).step_by(100) {
        let now = t0 + Duration::from_millis(ms);
        let b_may = b.observe(Some(&last), now) == Step::Acquire;
        assert!(!(a.leading(now) && b_may), "both at {ms} ms");
    }
    assert!(!a.leading(t0 + D * 2 / 3));
    assert!(a.leading(t0 + D * 2 / 3 - Duration::from_millis(1)));
}

#[test]
fn losing_the_lease_to_another_pod_ends_leadership_at_once() {
    let t0 = Instant::now();
    let mut a = Elector::new("a", D);
    a.written(t0);
    assert!(matches!(
        a.observe(Some(&held_by("b", "1")), t0),
        Step::Wait { .. }
    ));
    assert!(!a.leading(t0));
}

#[test]
fn the_retry_period_is_two_fifteenths_of_the_duration() {
    assert_eq!(Elector::new("a", D).retry_period(), Duration::from_secs(2));
}
