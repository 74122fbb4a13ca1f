//! A Consumer's message counts, pure: totals summed over the worker pods read, and rates per minute over
//! the window since the previous read. A pod read at both ends adds what its counters grew by (its whole
//! count after a restart: counters start at zero), a pod that started within the window adds its whole
//! count, and a pod that was not read at the start of the window (a failed read) adds nothing rather than
//! a guess. A read that finds what the status already says writes nothing ([`settle`]).

use std::collections::BTreeMap;

use crate::api::consumer::Throughput;
use crate::controller::resources::workers::scrape::{Counters, PodCounters};

/// One read of a Consumer's workers.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Read {
    /// When (Unix seconds).
    pub at: i64,
    /// What each pod reported, by name.
    pub pods: BTreeMap<String, PodCounters>,
}

/// The throughput of `read`, with rates over the window from `previous` (none without one).
pub fn throughput(previous: Option<&Read>, read: &Read, observed_time: &str) -> Throughput {
    let total = |field: fn(&Counters) -> u64| -> i64 {
        let sum = read
            .pods
            .values()
            .map(|p| field(&p.counters))
            .fold(0u64, u64::saturating_add);
        i64::try_from(sum).unwrap_or(i64::MAX)
    };
    let window = previous
        .map(|p| (p, read.at - p.at))
        .filter(|(_, seconds)| *seconds > 0);
    let rate = |field: fn(&Counters) -> u64| {
        let (previous, seconds) = window?;
        let grown: u64 = read
            .pods
            .iter()
            .filter_map(|(name, now)| grown(previous, name, now, field))
            .fold(0, u64::saturating_add);
        let per_minute = (grown as f64 * 60.0 / seconds as f64).round();
        Some(per_minute as i64)
    };
    Throughput {
        processed_per_minute: rate(|c| c.processed),
        failed_per_minute: rate(|c| c.failed),
        dead_lettered_per_minute: rate(|c| c.dead_lettered),
        processed: total(|c| c.processed),
        failed: total(|c| c.failed),
        dead_lettered: total(|c| c.dead_lettered),
        pods: i32::try_from(read.pods.len()).unwrap_or(i32::MAX),
        observed_time: observed_time.to_owned(),
    }
}

/// What pod `name` counted within the window that ends with `now` and starts at `previous`.
fn grown(previous: &Read, name: &str, now: &PodCounters, field: fn(&Counters) -> u64) -> Option<u64> {
    let value = field(&now.counters);
    match previous.pods.get(name) {
        Some(before) => {
            let before = field(&before.counters);
            // A counter that went down was restarted from zero: all it has counted is new.
            Some(if value >= before { value - before } else { value })
        }
        None => now
            .started
            .filter(|started| *started >= previous.at)
            .map(|_| value),
    }
}

/// The throughput to write: `new`, or `old` as it is when they mean the same (only the time differs),
/// so a read that changed nothing writes nothing.
pub fn settle(old: Option<&Throughput>, new: Throughput) -> Throughput {
    match old {
        Some(old)
            if Throughput {
                observed_time: old.observed_time.clone(),
                ..new.clone()
            } == *old =>
        {
            old.clone()
        }
        _ => new,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(started: i64, processed: u64, dead_lettered: u64) -> PodCounters {
        PodCounters {
            started: Some(started),
            counters: Counters {
                processed,
                dead_lettered,
                ..Counters::default()
            },
        }
    }

    fn read(at: i64, pods: &[(&str, PodCounters)]) -> Read {
        Read {
            at,
            pods: pods.iter().map(|(n, p)| ((*n).to_owned(), p.clone())).collect(),
        }
    }

    #[test]
    fn totals_appear_at_the_first_read_and_rates_with_the_second() {
        let first = read(1_000, &[("a", pod(900, 100, 2)), ("b", pod(950, 50, 0))]);
        let t = throughput(None, &first, "t0");
        assert_eq!((t.processed, t.dead_lettered, t.pods), (150, 2, 2));
        assert_eq!(t.processed_per_minute, None, "no window yet");
        // 60 s later: a grew by 90, b restarted (its counter went down: 30 is new), c started within.
        let second = read(
            1_060,
            &[
                ("a", pod(900, 190, 3)),
                ("b", pod(1_010, 30, 0)),
                ("c", pod(1_020, 40, 1)),
            ],
        );
        let t = throughput(Some(&first), &second, "t1");
        assert_eq!(t.processed_per_minute, Some(90 + 30 + 40));
        assert_eq!(t.dead_lettered_per_minute, Some(2));
        assert_eq!(t.failed_per_minute, Some(0));
        assert_eq!((t.processed, t.pods), (260, 3));
    }

    #[test]
    fn a_pod_missed_at_the_start_of_the_window_adds_no_guess_and_rates_scale_to_a_minute() {
        let first = read(0, &[("a", pod(-10, 0, 0))]);
        let second = read(120, &[("a", pod(-10, 60, 0)), ("old", pod(-500, 1_000, 0))]);
        let t = throughput(Some(&first), &second, "t");
        assert_eq!(
            t.processed_per_minute,
            Some(30),
            "60 in 120 s; the unread old pod not counted"
        );
        assert_eq!(t.processed, 1_060, "its total still counts");
    }

    #[test]
    fn an_unchanged_read_keeps_the_written_status() {
        let first = read(0, &[("a", pod(0, 5, 0))]);
        let old = throughput(Some(&first), &read(60, &[("a", pod(0, 5, 0))]), "t1");
        let same = throughput(Some(&first), &read(120, &[("a", pod(0, 5, 0))]), "t2");
        assert_eq!(same.processed_per_minute, Some(0));
        assert_eq!(
            settle(Some(&old), same).observed_time,
            "t1",
            "nothing changed: no write"
        );
        let busier = throughput(Some(&first), &read(120, &[("a", pod(0, 9, 0))]), "t3");
        assert_eq!(settle(Some(&old), busier).observed_time, "t3");
    }
}
