//! Status conditions, written so that status is deterministic: a condition's `lastTransitionTime` only
//! moves when its status changes, so re-reconciling an unchanged object writes an identical status and
//! does not trigger itself.

use k8s_openapi::{
    apimachinery::pkg::apis::meta::v1::{Condition, Time},
    jiff::Timestamp,
};

/// Condition types.
pub mod types {
    /// The resource is usable.
    pub const READY: &str = "Ready";
    /// The cloud resource matches the spec.
    pub const SYNCED: &str = "Synced";
}

/// The desired state of one condition, before timestamps.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Desired {
    /// Condition type.
    pub type_: &'static str,
    /// `True`, `False` or `Unknown`.
    pub status: &'static str,
    /// CamelCase reason.
    pub reason: &'static str,
    /// Human-readable detail.
    pub message: String,
}

/// The conditions to write: `desired` merged over `current`, keeping each unchanged condition's
/// `lastTransitionTime`, stamping `observed_generation` on all of them; sorted by type.
pub fn merge(
    current: &[Condition],
    desired: &[Desired],
    observed_generation: Option<i64>,
    now: Timestamp,
) -> Vec<Condition> {
    let mut out: Vec<Condition> = desired
        .iter()
        .map(|d| {
            let previous = current.iter().find(|c| c.type_ == d.type_);
            let last_transition_time = match previous {
                Some(p) if p.status == d.status => p.last_transition_time.clone(),
                _ => Time(now),
            };
            Condition {
                type_: d.type_.to_owned(),
                status: d.status.to_owned(),
                reason: d.reason.to_owned(),
                message: d.message.clone(),
                observed_generation,
                last_transition_time,
            }
        })
        .collect();
    out.sort_by(|a, b| a.type_.cmp(&b.type_));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ready(status: &'static str, reason: &'static str) -> Desired {
        Desired {
            type_: types::READY,
            status,
            reason,
            message: reason.to_owned(),
        }
    }

    #[test]
    fn unchanged_status_keeps_its_transition_time() {
        let t0 = Timestamp::from_second(1_000).unwrap();
        let t1 = Timestamp::from_second(2_000).unwrap();
        let first = merge(&[], &[ready("False", "InvalidFilter")], Some(1), t0);
        let again = merge(&first, &[ready("False", "InvalidFilter")], Some(1), t1);
        assert_eq!(first, again, "re-reconciling writes the identical status");
        let changed = merge(&again, &[ready("True", "Ready")], Some(2), t1);
        assert_eq!(changed[0].last_transition_time, Time(t1));
        assert_eq!(changed[0].observed_generation, Some(2));
    }
}
