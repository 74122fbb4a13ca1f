//! The pure decisions of leader election, with a clock the tests choose: when a standby may take over
//! (observed time, never the holder's timestamps), when the leader stops (the renew deadline), the
//! timing rules, and how a claim rewrites the record.

use k8s_openapi::jiff::SignedDuration;

use super::*;

const SECOND: Duration = Duration::from_secs(1);

fn config() -> LeaseConfig {
    LeaseConfig {
        namespace: "ns".into(),
        name: "lease".into(),
        identity: "me".into(),
        lease_duration: Duration::from_millis(2500),
        renew_deadline: Duration::from_secs(2),
        retry_period: Duration::from_millis(500),
    }
}

fn spec(holder: Option<&str>, renewed: Timestamp, seconds: i32) -> LeaseSpec {
    LeaseSpec {
        holder_identity: holder.map(str::to_owned),
        renew_time: Some(MicroTime(renewed)),
        lease_duration_seconds: Some(seconds),
        lease_transitions: Some(3),
        ..LeaseSpec::default()
    }
}

/// What a candidate knows after reading `spec` at `at`, having known nothing before.
fn first_read(spec: &LeaseSpec, at: Instant) -> Observed {
    Observed::after_reading(None, Some(spec), at)
}

#[test]
fn unheld_own_and_missing_leases_need_no_waiting() {
    let now = Instant::now();
    let wall = Timestamp::now();
    let missing = Observed::after_reading(None, None, now);
    assert_eq!(decide(&missing, "me", SECOND, now), Decision::TakeOver);
    let unheld = first_read(&spec(None, wall, 15), now);
    assert_eq!(decide(&unheld, "me", SECOND, now), Decision::TakeOver);
    let empty = first_read(&spec(Some(""), wall, 15), now);
    assert_eq!(decide(&empty, "me", SECOND, now), Decision::TakeOver);
    // Our own, even with a renewTime long past: after a restart with the same identity, renew at once.
    let old = wall - SignedDuration::from_secs(3600);
    let own = first_read(&spec(Some("me"), old, 15), now);
    assert_eq!(decide(&own, "me", SECOND, now), Decision::Renew);
}

#[test]
fn another_holder_expires_by_locally_observed_time_not_by_its_timestamps() {
    let start = Instant::now();
    // The holder's renewTime is an hour old by our wall clock (a skewed clock, or a stale record): that
    // alone proves nothing. A newcomer waits the lease duration from its first read.
    let stale = Timestamp::now() - SignedDuration::from_secs(3600);
    let seen = first_read(&spec(Some("other"), stale, 15), start);
    assert_eq!(decide(&seen, "me", SECOND, start), Decision::Wait);
    let almost = start + Duration::from_millis(14_999);
    assert_eq!(decide(&seen, "me", SECOND, almost), Decision::Wait);
    assert_eq!(
        decide(&seen, "me", SECOND, start + Duration::from_secs(15)),
        Decision::TakeOver
    );

    // A renewTime in the future (the holder's clock runs ahead) does not extend the wait either.
    let ahead = Timestamp::now() + SignedDuration::from_secs(3600);
    let seen = first_read(&spec(Some("other"), ahead, 15), start);
    assert_eq!(
        decide(&seen, "me", SECOND, start + Duration::from_secs(15)),
        Decision::TakeOver
    );
}

#[test]
fn every_change_of_the_record_restarts_the_count() {
    let start = Instant::now();
    let wall = Timestamp::now();
    let first = first_read(&spec(Some("other"), wall, 15), start);
    // Read again unchanged 10 s later: the count goes on from the first read.
    let later = start + Duration::from_secs(10);
    let same = Observed::after_reading(Some(first.clone()), Some(&spec(Some("other"), wall, 15)), later);
    assert_eq!(same.since, start);
    assert_eq!(
        decide(&same, "me", SECOND, start + Duration::from_secs(15)),
        Decision::TakeOver
    );
    // Renewed (renewTime moved) 10 s later: the holder is alive, wait 15 s from now on.
    let renewed_spec = spec(Some("other"), wall + SignedDuration::from_secs(10), 15);
    let renewed = Observed::after_reading(Some(first), Some(&renewed_spec), later);
    assert_eq!(renewed.since, later);
    assert_eq!(
        decide(&renewed, "me", SECOND, start + Duration::from_secs(15)),
        Decision::Wait
    );
    assert_eq!(
        decide(&renewed, "me", SECOND, later + Duration::from_secs(15)),
        Decision::TakeOver
    );
}

#[test]
fn a_record_without_a_duration_is_held_for_our_own() {
    let start = Instant::now();
    let unstamped = LeaseSpec {
        holder_identity: Some("other".into()),
        ..LeaseSpec::default()
    };
    let seen = first_read(&unstamped, start);
    let ours = Duration::from_secs(15);
    assert_eq!(
        decide(&seen, "me", ours, start + Duration::from_secs(14)),
        Decision::Wait
    );
    assert_eq!(
        decide(&seen, "me", ours, start + Duration::from_secs(15)),
        Decision::TakeOver
    );
}

#[test]
fn the_leader_acts_until_its_last_renewal_start_plus_the_renew_deadline() {
    let deadline = Duration::from_secs(10);
    let t0 = Instant::now();
    let until = t0 + deadline;
    // A renewal that started at t0+2 s and answered at t0+2.1 s extends to t0+12 s.
    let started = t0 + 2 * SECOND;
    assert_eq!(
        after_attempt(Attempt::Renewed, started, started + SECOND / 10, until, deadline),
        Renewal::Extended(started + deadline)
    );
    // A failure before the deadline is retried; the deadline itself does not move.
    assert_eq!(
        after_attempt(Attempt::Failed, started, started + SECOND, until, deadline),
        Renewal::Retry
    );
    // Anything that ends at or after the deadline is a loss, even a success: a standby may lead by then.
    for attempt in [Attempt::Renewed, Attempt::Failed] {
        assert!(matches!(
            after_attempt(attempt, t0 + 9 * SECOND, until, until, deadline),
            Renewal::Lost(_)
        ));
    }
    // Another holder: lost at once.
    assert!(matches!(
        after_attempt(Attempt::Taken, started, started, until, deadline),
        Renewal::Lost(_)
    ));
}

#[test]
fn the_leader_stops_before_a_standby_may_take_over() {
    // The invariant behind the two rules, for client-go's defaults: a renewal sent at `sent` is stamped
    // and seen by a standby no earlier than `sent`; the leader stops at `sent + renew deadline`, the
    // standby starts at `seen + lease duration`.
    let config = LeaseConfig {
        lease_duration: Duration::from_secs(15),
        renew_deadline: Duration::from_secs(10),
        retry_period: Duration::from_secs(2),
        ..config()
    };
    assert_eq!(config.check_timing(), Ok(()));
    let sent = Instant::now();
    let Renewal::Extended(leader_stops) =
        after_attempt(Attempt::Renewed, sent, sent, sent + SECOND, config.renew_deadline)
    else {
        panic!("renewal refused");
    };
    let record = spec(Some("leader"), Timestamp::now(), 15);
    let standby = first_read(&record, sent);
    assert_eq!(decide(&standby, "standby", SECOND, leader_stops), Decision::Wait);
    assert!(leader_stops + Duration::from_secs(5) <= sent + config.lease_duration);
}

#[test]
fn timing_is_checked_like_client_go() {
    assert_eq!(config().check_timing(), Ok(()));
    let equal = LeaseConfig {
        renew_deadline: Duration::from_millis(2500),
        ..config()
    };
    assert!(matches!(
        equal.check_timing(),
        Err(TimingError::RenewDeadlineNotShorter { .. })
    ));
    let message = equal
        .check_timing()
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(message.contains("shorter than the lease duration"), "{message}");
    let slow_retry = LeaseConfig {
        retry_period: Duration::from_secs(2),
        ..config()
    };
    assert!(matches!(
        slow_retry.check_timing(),
        Err(TimingError::RetryPeriodTooLong { .. })
    ));
    let zero = LeaseConfig {
        retry_period: Duration::ZERO,
        ..config()
    };
    assert_eq!(zero.check_timing(), Err(TimingError::ZeroRetryPeriod));
}

#[test]
fn claiming_counts_transitions_like_client_go() {
    let now = Timestamp::now();
    let earlier = now - SignedDuration::from_secs(30);
    let fresh = claimed(None, &config(), now);
    assert_eq!(fresh.holder_identity.as_deref(), Some("me"));
    assert_eq!(fresh.lease_transitions, Some(0));
    assert_eq!(fresh.lease_duration_seconds, Some(3));
    assert_eq!(fresh.acquire_time, Some(MicroTime(now)));

    let taken = claimed(Some(spec(Some("other"), earlier, 15)), &config(), now);
    assert_eq!(taken.lease_transitions, Some(4));
    assert_eq!(taken.acquire_time, Some(MicroTime(now)));

    let mut mine = spec(Some("me"), earlier, 3);
    mine.acquire_time = Some(MicroTime(earlier));
    let renewed = claimed(Some(mine), &config(), now);
    assert_eq!(renewed.lease_transitions, Some(3));
    assert_eq!(renewed.acquire_time, Some(MicroTime(earlier)));
    assert_eq!(renewed.renew_time, Some(MicroTime(now)));
}
