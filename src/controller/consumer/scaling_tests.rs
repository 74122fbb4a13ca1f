use super::*;
use crate::api::consumer::ScalingSignals;

fn scaling(min: i32, max: i32, target: i32) -> Scaling {
    Scaling {
        min_replicas: min,
        max_replicas: max,
        target_backlog_per_replica: target,
        scale_down_stabilization_seconds: 60,
        signals: ScalingSignals {
            scale_up_observations: 2,
            max_oldest_message_age_seconds: Some(300),
        },
    }
}

fn backlog(n: i64) -> Signals {
    Signals {
        backlog: Some(n),
        oldest_age: None,
    }
}

/// Runs observations every 15 s from `current`, each through `remember` and `decide`; the replicas
/// after each.
fn run(s: &Scaling, mut current: i32, observations: &[Signals]) -> Vec<i32> {
    let mut asks = Vec::new();
    observations
        .iter()
        .zip(1..)
        .map(|(signals, i)| {
            let at = i * 15;
            let want = wanted(s, *signals, current);
            asks = remember(
                &asks,
                Ask {
                    at,
                    replicas: want.replicas,
                },
                s,
            );
            current = decide(s, &want, current, &asks, (at, "t")).replicas;
            current
        })
        .collect()
}

#[test]
fn replicas_follow_the_backlog_within_the_bounds() {
    let s = scaling(1, 5, 100);
    let replicas = |n| wanted(&s, backlog(n), 1).replicas;
    assert_eq!([0, 1, 100, 101, 250, 10_000].map(replicas), [1, 1, 1, 2, 3, 5]);
    let zero = scaling(0, 3, 50);
    assert_eq!(wanted(&zero, backlog(0), 0).replicas, 0, "idle: scale to zero");
    assert_eq!(wanted(&zero, backlog(1), 0).floor, 1, "any backlog: one replica");
    assert_eq!(
        wanted(&zero, Signals::default(), 0).replicas,
        1,
        "HTTP: never zero"
    );
    assert_eq!(
        wanted(&s, backlog(420), 1).reason,
        "backlog 420 / 100 per replica"
    );
}

#[test]
fn one_spike_adds_no_replica_and_a_persistent_ask_does() {
    let s = scaling(1, 5, 100);
    let spike = run(&s, 1, &[backlog(50), backlog(450), backlog(50), backlog(60)]);
    assert_eq!(spike, [1, 1, 1, 1], "one observation of 450 is a spike");
    let burst = [50, 450, 320, 500, 500].map(backlog);
    assert_eq!(
        run(&s, 1, &burst),
        [1, 1, 4, 4, 5],
        "two in a row: up to the lesser ask, then on"
    );
    let unfiltered = Scaling {
        signals: ScalingSignals {
            scale_up_observations: 1,
            ..s.signals.clone()
        },
        ..s.clone()
    };
    assert_eq!(
        run(&unfiltered, 1, &[backlog(450)]),
        [5],
        "1: every observation is followed"
    );
}

#[test]
fn up_to_the_floor_is_immediate() {
    let s = scaling(0, 5, 100);
    assert_eq!(
        run(&s, 0, &[backlog(450)]),
        [1],
        "from zero: one at once, more when it persists"
    );
    let http = scaling(2, 5, 100);
    assert_eq!(
        run(&http, 0, &[Signals::default()]),
        [2],
        "a new HTTP Consumer gets minReplicas"
    );
}

#[test]
fn down_waits_for_the_window_and_takes_its_highest_ask() {
    let s = scaling(1, 5, 100);
    // Two observations of 500 bring 5; then the backlog falls to 300 (3) and 0 (1).
    let mut signals = vec![backlog(500), backlog(500), backlog(300)];
    signals.extend(std::iter::repeat_n(backlog(0), 6));
    let replicas = run(&s, 1, &signals);
    // Until 60 s the window (60 s) is not covered; at 75 s the asks after 15 s include 5 (t=30); at
    // 90 s the highest ask after 30 s is 3 (t=45), at 105 s 1.
    assert_eq!(replicas, [1, 5, 5, 5, 5, 3, 1, 1, 1]);
    let immediate = Scaling {
        scale_down_stabilization_seconds: 0,
        ..s.clone()
    };
    assert_eq!(run(&immediate, 5, &[backlog(0)]), [1], "no window: down at once");
    let want = wanted(&s, backlog(0), 5);
    let fresh = [Ask { at: 100, replicas: 1 }];
    assert_eq!(
        decide(&s, &want, 5, &fresh, (100, "t")).replicas,
        5,
        "a new leader remembers nothing: it waits a whole window"
    );
}

#[test]
fn the_oldest_message_age_adds_one_replica_at_a_time_up_to_the_most() {
    let s = scaling(1, 3, 100);
    let old = Signals {
        backlog: Some(20),
        oldest_age: Some(900),
    };
    assert_eq!(
        run(&s, 1, &[old; 8]),
        [1, 2, 2, 3, 3, 3, 3, 3],
        "and stays at the most"
    );
    let want = wanted(&s, old, 1);
    assert_eq!(want.reason, "oldest message 900 s old, over 300 s");
    let young = Signals {
        oldest_age: Some(100),
        ..old
    };
    assert_eq!(
        wanted(&s, young, 1).replicas,
        1,
        "under the limit: the count decides"
    );
    let unset = Scaling {
        signals: ScalingSignals::default(),
        ..s.clone()
    };
    assert_eq!(
        wanted(&unset, old, 1).replicas,
        1,
        "no limit set: age is no signal"
    );
}

#[test]
fn remember_keeps_the_last_observations_and_the_window() {
    let s = scaling(1, 5, 100);
    let asks: Vec<Ask> = (0..20)
        .map(|i| Ask {
            at: i * 15,
            replicas: 1,
        })
        .collect();
    let kept = remember(&asks, Ask { at: 300, replicas: 2 }, &s);
    assert_eq!(
        kept.first().map(|a| a.at),
        Some(240),
        "the window's start (300 - 60) and after"
    );
    assert_eq!(kept.len(), 5);
    let sparse = remember(&[Ask { at: 0, replicas: 1 }], Ask { at: 900, replicas: 1 }, &s);
    assert_eq!(sparse.len(), 2, "the last two observations, however old");
}
