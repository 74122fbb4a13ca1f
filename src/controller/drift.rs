//! Compare step, pure: desired against observed cloud attributes, on top of
//! [`crate::cloud::aws::compare::diff`], with the two rules that keep reconciles from looping:
//!
//! - An attribute the server accepts but never reports ([`WRITE_ONLY_TOLERATED`]: moto 5.2.5 stores
//!   `RedriveAllowPolicy` yet leaves it out of `GetQueueAttributes`) is compared only when the server
//!   reports it. Choice documented here: comparing an unreported attribute would "correct" it on every
//!   reconcile and record a `DriftCorrected` Event each time. Real SQS reports it once set, so drift on it
//!   is still detected there; an unreported value is also SQS's `allowAll` default, never stricter.
//! - A subscription's `FilterPolicy` is compared by the filter engine's canonical form, so a policy SNS
//!   hands back with values reordered is not a difference.

use crate::{
    cloud::{
        Attributes,
        aws::{
            attributes::names,
            compare::{self, AttributeDiff},
        },
    },
    filter::{Policy, Scope},
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
    let mut result = compare::diff(&desired, observed);
    result
        .to_set
        .retain(|(name, value)| !(name == names::FILTER_POLICY && same_filter(value, observed)));
    result
}

/// Whether the desired filter policy means the same as the observed one, by the filter engine.
fn same_filter(desired: &str, observed: &Attributes) -> bool {
    let scope = match observed.get(names::FILTER_POLICY_SCOPE).map(String::as_str) {
        Some("MessageBody") => Scope::MessageBody,
        _ => Scope::MessageAttributes,
    };
    let Some(have) = observed.get(names::FILTER_POLICY).filter(|text| !text.is_empty()) else {
        return desired.is_empty();
    };
    match (Policy::parse_str(desired, scope), Policy::parse_str(have, scope)) {
        (Ok(want), Ok(have)) => want.canonical() == have.canonical(),
        _ => false,
    }
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

    #[test]
    fn filter_policies_compare_by_meaning() {
        let desired = attributes_of(&[("FilterPolicy", r#"{"event":["A","B"]}"#)]);
        let observed = attributes_of(&[("FilterPolicy", r#"{"event": ["B", "A", "A"]}"#)]);
        assert!(diff(&desired, &observed).is_empty());
        let other = attributes_of(&[("FilterPolicy", r#"{"event":["A"]}"#)]);
        assert_eq!(names_of(&diff(&desired, &other)), "FilterPolicy");
        let cleared = attributes_of(&[("FilterPolicy", "")]);
        assert!(diff(&cleared, &attributes_of(&[])).is_empty());
    }
}
