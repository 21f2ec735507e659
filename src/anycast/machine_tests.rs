//! The state machine's rules, with made-up times.

use super::*;

const HOLD: Duration = Duration::from_secs(5);

fn machine() -> (Machine, Instant) {
    let policy = Policy {
        hold_down: HOLD,
        check_failures: 2,
    };
    (Machine::new(policy, false), Instant::now())
}

fn secs(t0: Instant, s: u64) -> Instant {
    t0 + Duration::from_secs(s)
}

const CHECK_FAILED: Health = Health {
    self_check_ok: false,
    load_failed: false,
    data_too_old: false,
};

#[test]
fn withdrawn_at_start_and_announced_at_once_on_the_first_good_observation() {
    let (mut m, t0) = machine();
    assert!(!m.announced());
    assert_eq!(m.reason(), Some(Reason::Starting));
    let c = m.observe(t0, Health::GOOD).unwrap();
    assert_eq!(
        c,
        Change {
            announced: true,
            reason: None
        }
    );
    assert_eq!(m.observe(secs(t0, 1), Health::GOOD), None);
}

#[test]
fn the_first_announcement_waits_for_a_check_that_succeeded() {
    let (mut m, t0) = machine();
    assert_eq!(m.observe(t0, CHECK_FAILED), None);
    assert_eq!(m.reason(), Some(Reason::Starting));
    assert!(!m.announced());
    let c = m.observe(secs(t0, 1), CHECK_FAILED).unwrap();
    assert_eq!(c.reason, Some(Reason::SelfCheck));
    assert!(!m.announced());
    // Never announced yet: the first good check announces without hold-down.
    assert!(m.observe(secs(t0, 2), Health::GOOD).unwrap().announced);
}

#[test]
fn one_failed_check_under_the_limit_does_not_withdraw() {
    let (mut m, t0) = machine();
    m.observe(t0, Health::GOOD);
    assert_eq!(m.observe(secs(t0, 1), CHECK_FAILED), None);
    assert!(m.announced());
    assert_eq!(m.observe(secs(t0, 2), Health::GOOD), None);
    assert_eq!(m.observe(secs(t0, 3), CHECK_FAILED), None);
    assert!(m.announced(), "failures must be in a row");
}

#[test]
fn failed_checks_withdraw_and_recovery_waits_for_the_hold_down() {
    let (mut m, t0) = machine();
    m.observe(t0, Health::GOOD);
    m.observe(secs(t0, 1), CHECK_FAILED);
    let c = m.observe(secs(t0, 2), CHECK_FAILED).unwrap();
    assert_eq!(
        c,
        Change {
            announced: false,
            reason: Some(Reason::SelfCheck)
        }
    );
    let c = m.observe(secs(t0, 3), Health::GOOD).unwrap();
    assert_eq!(c.reason, Some(Reason::HoldDown));
    assert!(!m.announced());
    assert_eq!(m.hold_down_left(secs(t0, 5)), Some(Duration::from_secs(3)));
    assert_eq!(m.observe(secs(t0, 7), Health::GOOD), None);
    let c = m.observe(secs(t0, 8), Health::GOOD).unwrap();
    assert!(c.announced);
    assert_eq!(m.reason(), None);
}

#[test]
fn a_failure_during_the_hold_down_starts_it_again() {
    let (mut m, t0) = machine();
    m.observe(t0, Health::GOOD);
    m.observe(secs(t0, 1), CHECK_FAILED);
    m.observe(secs(t0, 2), CHECK_FAILED);
    m.observe(secs(t0, 3), Health::GOOD); // hold-down from 3
    m.observe(secs(t0, 6), CHECK_FAILED); // one failure: under the limit, still healthy
    assert_eq!(m.reason(), Some(Reason::HoldDown));
    m.observe(secs(t0, 7), CHECK_FAILED); // withdrawn again: the hold-down restarts
    assert_eq!(m.reason(), Some(Reason::SelfCheck));
    m.observe(secs(t0, 8), Health::GOOD);
    assert_eq!(m.observe(secs(t0, 12), Health::GOOD), None);
    assert!(!m.announced(), "the hold-down counts from 8, not 3");
    assert!(m.observe(secs(t0, 13), Health::GOOD).unwrap().announced);
}

#[test]
fn flapping_never_announces_again() {
    let (mut m, t0) = machine();
    m.observe(t0, Health::GOOD);
    for s in 1..60 {
        // Two failures, then two good seconds, over and over.
        let h = if s % 4 < 2 {
            CHECK_FAILED
        } else {
            Health::GOOD
        };
        m.observe(secs(t0, s), h);
        if s >= 5 {
            assert!(!m.announced(), "announced at {s}");
        }
    }
}

#[test]
fn load_failure_and_old_data_withdraw_with_their_reasons_in_order() {
    let (mut m, t0) = machine();
    m.observe(t0, Health::GOOD);
    let both = Health {
        self_check_ok: false,
        load_failed: true,
        data_too_old: true,
    };
    assert_eq!(
        m.observe(secs(t0, 1), both).unwrap().reason,
        Some(Reason::LoadFailed)
    );
    let old = Health {
        data_too_old: true,
        ..Health::GOOD
    };
    assert_eq!(
        m.observe(secs(t0, 2), old).unwrap().reason,
        Some(Reason::DataTooOld)
    );
    assert_eq!(
        m.observe(secs(t0, 3), Health::GOOD).unwrap().reason,
        Some(Reason::HoldDown)
    );
}

#[test]
fn the_operator_withdraws_over_health_and_gives_back_through_the_hold_down() {
    let (mut m, t0) = machine();
    m.observe(t0, Health::GOOD);
    let c = m.set_operator(secs(t0, 1), true).unwrap();
    assert_eq!(c.reason, Some(Reason::Operator));
    assert_eq!(m.observe(secs(t0, 2), Health::GOOD), None);
    assert!(!m.announced());
    assert_eq!(
        m.set_operator(secs(t0, 3), false).unwrap().reason,
        Some(Reason::HoldDown)
    );
    assert!(m.observe(secs(t0, 8), Health::GOOD).unwrap().announced);
}

#[test]
fn an_operator_withdrawal_kept_from_before_holds_at_start() {
    let policy = Policy {
        hold_down: HOLD,
        check_failures: 1,
    };
    let mut m = Machine::new(policy, true);
    let t0 = Instant::now();
    assert_eq!(m.reason(), Some(Reason::Operator));
    assert_eq!(m.observe(t0, Health::GOOD), None);
    assert!(!m.announced());
    assert!(m.operator_withdrawn());
    // Given back before it was ever announced: announced at once, like a first start.
    assert!(m.set_operator(secs(t0, 1), false).unwrap().announced);
}

#[test]
fn stopping_withdraws_for_good() {
    let (mut m, t0) = machine();
    m.observe(t0, Health::GOOD);
    assert_eq!(m.stop(secs(t0, 1)).unwrap().reason, Some(Reason::Stopping));
    assert_eq!(m.set_operator(secs(t0, 2), false), None);
    assert_eq!(m.observe(secs(t0, 100), Health::GOOD), None);
    assert!(!m.announced());
}

#[test]
fn every_reason_has_a_distinct_name() {
    let mut names: Vec<&str> = Reason::ALL.iter().map(|r| r.name()).collect();
    names.sort();
    names.dedup();
    assert_eq!(names.len(), Reason::ALL.len());
    for r in Reason::ALL {
        assert_eq!(serde_json::to_value(r).unwrap(), r.name());
    }
}

#[test]
fn announced_when_carried_over_a_replace_unless_the_operator_withdrew() {
    let (mut m, t0) = machine();
    let c = m.carry_announced(t0).unwrap();
    assert!(c.announced, "{c:?}");
    // One failed check does not withdraw; the limit does, as for any announced replica.
    assert_eq!(m.observe(secs(t0, 1), CHECK_FAILED), None);
    assert!(!m.observe(secs(t0, 2), CHECK_FAILED).unwrap().announced);
    let policy = Policy {
        hold_down: HOLD,
        check_failures: 2,
    };
    let mut kept = Machine::new(policy, true);
    assert_eq!(kept.carry_announced(t0), None);
    assert_eq!(kept.reason(), Some(Reason::Operator));
}
