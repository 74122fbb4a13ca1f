//! Scaling from backlog and age, pure. What one observation asks for ([`wanted`]): ⌈backlog /
//! targetBacklogPerReplica⌉, clamped to `[minReplicas, maxReplicas]` (a backlog of zero with
//! `minReplicas: 0` scales to zero, any backlog keeps at least one replica); and when the oldest message
//! is older than `maxOldestMessageAgeSeconds` (where the cloud reports its age), at least one more than
//! now runs, so a backlog small in count but stuck still gets help. An HTTP source has no backlog and runs
//! `minReplicas` (at least one: nothing would answer requests).
//!
//! What is followed ([`decide`]), over the recent asks ([`remember`] keeps them):
//! - up: only when the last `scaleUpObservations` asks all wanted more than now run, to the least of
//!   them, so one spike adds nothing (KEDA/HPA follow every sample; HPA's scale-up window is 0 s). Up to
//!   the floor (`minReplicas`, or one replica for any backlog) is immediate.
//! - down: to the highest ask of the last `scaleDownStabilizationSeconds`, and only once the asks
//!   remembered cover that window (HPA's scale-down stabilization, whose default is 300 s; ours is 60 s
//!   because queue workers start in seconds): a backlog that dips between bursts keeps its replicas.

use crate::api::consumer::{ScaleDecision, Scaling};

/// The replica count to run, and the decision to record when it changes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Scale {
    /// Replicas to run.
    pub replicas: i32,
    /// The new decision, when the count changes.
    pub decision: Option<ScaleDecision>,
}

/// What one observation asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ask {
    /// When (Unix seconds).
    pub at: i64,
    /// Replicas asked for.
    pub replicas: i32,
}

/// What the source showed at one observation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Signals {
    /// Messages waiting; `None` for an HTTP source.
    pub backlog: Option<i64>,
    /// Age in seconds of the oldest message, where the cloud reports it.
    pub oldest_age: Option<i64>,
}

/// What one observation asks for, with `current` replicas running: the replicas, the least that must
/// run now whatever the filter (the floor), and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Want {
    /// Replicas asked for.
    pub replicas: i32,
    /// Replicas that run at least, without waiting.
    pub floor: i32,
    /// Why, for the decision.
    pub reason: String,
}

/// What `signals` ask for with `current` replicas running, before the spike filter and stabilization.
pub fn wanted(scaling: &Scaling, signals: Signals, current: i32) -> Want {
    let (min, max) = (scaling.min_replicas.max(0), scaling.max_replicas.max(1));
    let Some(backlog) = signals.backlog else {
        let replicas = min.max(1).min(max);
        let reason = "HTTP source: minReplicas".to_owned();
        return Want {
            replicas,
            floor: replicas,
            reason,
        };
    };
    let target = i64::from(scaling.target_backlog_per_replica.max(1));
    let raw = (backlog.max(0) + target - 1) / target;
    let raw = i32::try_from(raw).unwrap_or(i32::MAX);
    let floor = if backlog > 0 { min.max(1) } else { min }.min(max);
    let mut replicas = raw.clamp(floor, max);
    let mut reason = format!("backlog {backlog} / {target} per replica");
    let limit = scaling.signals.max_oldest_message_age_seconds.map(i64::from);
    if let (Some(age), Some(limit)) = (signals.oldest_age, limit)
        && age > limit
        && backlog > 0
        && replicas <= current
    {
        replicas = (current + 1).clamp(floor, max);
        reason = format!("oldest message {age} s old, over {limit} s");
    }
    Want {
        replicas,
        floor,
        reason,
    }
}

/// `asks` with `ask` added, keeping what [`decide`] needs: the last `scaleUpObservations` asks, the asks
/// of the scale-down window and the newest one before it (which shows the window is covered).
pub fn remember(asks: &[Ask], ask: Ask, scaling: &Scaling) -> Vec<Ask> {
    let mut kept: Vec<Ask> = asks.iter().copied().filter(|a| a.at <= ask.at).collect();
    kept.push(ask);
    let window_start = ask.at - i64::from(scaling.scale_down_stabilization_seconds.max(0));
    let boundary = kept.iter().rposition(|a| a.at <= window_start).unwrap_or(0);
    let observations = usize::try_from(scaling.signals.scale_up_observations.max(1)).unwrap_or(1);
    let first = boundary.min(kept.len().saturating_sub(observations));
    kept.split_off(first)
}

/// The scale to run with `current` replicas, given what now is wanted and the asks remembered (this
/// one last, from [`remember`]); `now` as Unix seconds and RFC 3339 for a new decision.
pub fn decide(scaling: &Scaling, want: &Want, current: i32, asks: &[Ask], now: (i64, &str)) -> Scale {
    let next = if want.replicas > current {
        let needed = usize::try_from(scaling.signals.scale_up_observations.max(1)).unwrap_or(1);
        let persisted = (asks.len() >= needed)
            .then(|| asks[asks.len() - needed..].iter().map(|a| a.replicas).min())
            .flatten()
            .filter(|least| *least > current);
        persisted.unwrap_or(current).max(want.floor.min(want.replicas))
    } else if want.replicas < current {
        let window = i64::from(scaling.scale_down_stabilization_seconds.max(0));
        let covered = window == 0 || asks.first().is_some_and(|a| a.at <= now.0 - window);
        let highest = asks
            .iter()
            .filter(|a| window > 0 && a.at > now.0 - window)
            .map(|a| a.replicas)
            .max()
            .unwrap_or(want.replicas);
        if covered {
            highest.clamp(want.replicas, current)
        } else {
            current
        }
    } else {
        current
    };
    Scale {
        replicas: next,
        decision: (next != current).then(|| ScaleDecision {
            from: current,
            to: next,
            reason: want.reason.clone(),
            time: now.1.to_owned(),
        }),
    }
}

#[cfg(test)]
#[path = "scaling_tests.rs"]
mod tests;
