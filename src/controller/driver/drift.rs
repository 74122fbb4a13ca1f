//! Compare step, pure: desired against observed cloud attributes, on top of
//! [`crate::cloud::aws::compare::diff`] (which already compares JSON attributes and filter policies by
//! meaning), with the rule that keeps reconciles on moto from looping:
//!
//! - An attribute the server accepts but never reports ([`WRITE_ONLY_TOLERATED`]: moto 5.2.5 stores
//!   `RedriveAllowPolicy` yet leaves it out of `GetQueueAttributes`) is compared only when the server
//!   reports it. Choice documented here: comparing an unreported attribute would "correct" it on every
//!   reconcile and record a `DriftCorrected` Event each time. Real SQS reports it once set, so drift on it
//!   is still detected there; an unreported value is also SQS's `allowAll` default, never stricter.

use crate::cloud::{
    Attributes,
    aws::{
        attributes::names,
        compare::{self, AttributeDiff},
    },
};

/// Attributes compared only when the server reports them (see the module documentation).
pub const WRITE_ONLY_TOLERATED: &[&str] = &[names::REDRIVE_ALLOW_POLICY];

/// What it takes to bring `observed` to `desired`.
pub fn diff(desired: &Attributes, observed: &Attributes) -> AttributeDiff {
    let desired: Attributes = desired
        .iter()
        .filter(|(name, _)| !WRITE_ONLY_TOLERATED.contains(&name.as_str()) || observed.contains_key(*name))
        .map(|(name, value)| (name.clone(), value.clone()))
        .collect();
    compare::diff(&desired, observed)
}

/// The names of the attributes in a diff, for Events and conditions.
pub fn names_of(diff: &AttributeDiff) -> String {
    diff.to_set
        .iter()
        .map(|(name, _)| name.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cloud::attributes_of;

    #[test]
    fn an_unreported_redrive_allow_policy_is_not_drift_but_a_reported_one_is_compared() {
        let desired = attributes_of(&[
            ("RedriveAllowPolicy", r#"{"redrivePermission":"allowAll"}"#),
            ("VisibilityTimeout", "30"),
        ]);
        assert!(diff(&desired, &attributes_of(&[("VisibilityTimeout", "30")])).is_empty());
        let reported = attributes_of(&[
            ("VisibilityTimeout", "30"),
            ("RedriveAllowPolicy", r#"{"redrivePermission":"denyAll"}"#),
        ]);
        assert_eq!(diff(&desired, &reported).to_set.len(), 1);
    }
}
