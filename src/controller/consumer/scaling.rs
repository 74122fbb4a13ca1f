//! Scaling from backlog, pure: replicas = ⌈backlog / targetBacklogPerReplica⌉, clamped to
//! `[minReplicas, maxReplicas]`; a backlog of zero with `minReplicas: 0` scales to zero, and any
//! backlog keeps at least one replica. Up is immediate; down waits until
//! `scaleDownStabilizationSeconds` have passed since the last change, so a backlog that dips between
//! bursts does not make pods come and go. An HTTP source has no backlog and runs `minReplicas` (at
//! least one: nothing would answer requests).

use crate::api::consumer::{ScaleDecision, Scaling};

/// The replica count to run, and the decision to record when it changes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Scale {
    /// Replicas to run.
    pub replicas: i32,
    /// The new decision, when the count changes.
    pub decision: Option<ScaleDecision>,
}

/// What `backlog` asks for, before stabilization.
pub fn wanted(scaling: &Scaling, backlog: Option<i64>) -> (i32, String) {
    let (min, max) = (scaling.min_replicas.max(0), scaling.max_replicas.max(1));
    let Some(backlog) = backlog else {
        return (min.max(1).min(max.max(1)), "HTTP source: minReplicas".to_owned());
    };
    let target = i64::from(scaling.target_backlog_per_replica.max(1));
    let raw = (backlog.max(0) + target - 1) / target;
    let raw = i32::try_from(raw).unwrap_or(i32::MAX);
    let floor = if backlog > 0 { min.max(1) } else { min };
    let replicas = raw.clamp(floor, max.max(floor));
    (replicas, format!("backlog {backlog} / {target} per replica"))
}

/// The scale to run now: `current` replicas, the last decision (`last`, with `seconds_since` it), `now`
/// as RFC 3339 for a new decision.
pub fn decide(
    scaling: &Scaling,
    backlog: Option<i64>,
    current: i32,
    seconds_since_last: Option<i64>,
    now: &str,
) -> Scale {
    let (replicas, reason) = wanted(scaling, backlog);
    let stabilized =
        seconds_since_last.is_none_or(|s| s >= i64::from(scaling.scale_down_stabilization_seconds));
    let next = if replicas < current && !stabilized {
        current
    } else {
        replicas
    };
    Scale {
        replicas: next,
        decision: (next != current).then(|| ScaleDecision {
            from: current,
            to: next,
            reason,
            time: now.to_owned(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scaling(min: i32, max: i32, target: i32) -> Scaling {
        Scaling {
            min_replicas: min,
            max_replicas: max,
            target_backlog_per_replica: target,
            scale_down_stabilization_seconds: 60,
            ..Scaling::default()
        }
    }

    #[test]
    fn replicas_follow_the_backlog_within_the_bounds() {
        let s = scaling(1, 5, 100);
        let replicas = |backlog| wanted(&s, Some(backlog)).0;
        assert_eq!([0, 1, 100, 101, 250, 10_000].map(replicas), [1, 1, 1, 2, 3, 5]);
        let zero = scaling(0, 3, 50);
        assert_eq!(wanted(&zero, Some(0)).0, 0, "idle: scale to zero");
        assert_eq!(wanted(&zero, Some(1)).0, 1, "any backlog: one replica");
        assert_eq!(wanted(&zero, None).0, 1, "HTTP: never zero");
        assert_eq!(wanted(&s, Some(420)).1, "backlog 420 / 100 per replica");
    }

    #[test]
    fn up_is_immediate_and_down_waits_for_the_window() {
        let s = scaling(1, 5, 100);
        let up = decide(&s, Some(450), 1, Some(5), "t1");
        assert_eq!(up.replicas, 5);
        assert_eq!(up.decision.as_ref().map(|d| (d.from, d.to)), Some((1, 5)));
        let early = decide(&s, Some(0), 5, Some(30), "t2");
        assert_eq!(
            early,
            Scale {
                replicas: 5,
                decision: None
            },
            "within the window"
        );
        let later = decide(&s, Some(0), 5, Some(60), "t3");
        assert_eq!(later.replicas, 1);
        assert_eq!(later.decision.unwrap().time, "t3");
        assert_eq!(
            decide(&s, Some(50), 1, None, "t4"),
            Scale {
                replicas: 1,
                decision: None
            }
        );
    }
}
