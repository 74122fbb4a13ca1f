//! Comparing desired and observed attributes without false differences, pure. AWS hands JSON-valued
//! attributes back in its own shape (keys reordered, whitespace dropped, `"5"` for `5` in
//! `RedrivePolicy`, one-element arrays collapsed in IAM policies), and booleans as `true` or `True`.
//! Comparing strings would report a drift on every reconcile, set the same value again, and never settle;
//! comparing canonical forms does settle. A subscription's `FilterPolicy` is compared by meaning, through
//! the filter engine, so a policy SNS hands back with its values reordered or repeated is no difference.

use serde_json::{Map, Value};

use crate::{
    cloud::Attributes,
    filter::{Policy, Scope},
};

use super::attributes::names;
pub use super::canonical::{JsonMode, canonical};

/// Attributes that cannot change after creation: a difference means the resource must be replaced.
pub const IMMUTABLE: &[&str] = &[names::FIFO_QUEUE, names::FIFO_TOPIC];

/// Queue attributes SQS reports on every queue. A server that leaves one out does not implement it
/// (ElasticMQ has no message size, retention or encryption settings, and refuses to set them), so it is
/// not compared: setting it would fail, or change nothing and report a drift on every resync.
pub const ALWAYS_REPORTED: &[&str] = &[
    names::MAXIMUM_MESSAGE_SIZE,
    names::MESSAGE_RETENTION_PERIOD,
    names::SQS_MANAGED_SSE_ENABLED,
];

/// The JSON mode of an attribute, or `None` if its value is not JSON.
pub fn json_mode(name: &str) -> Option<JsonMode> {
    match name {
        names::POLICY => Some(JsonMode::Iam),
        names::REDRIVE_POLICY | names::REDRIVE_ALLOW_POLICY => Some(JsonMode::Redrive),
        _ if name.ends_with("Policy") => Some(JsonMode::Plain),
        _ => None,
    }
}

/// The value an attribute has when the cloud does not report it: SNS and SQS leave out false flags and
/// unset policies.
pub fn absent_value(name: &str) -> &'static str {
    match name {
        names::FIFO_QUEUE
        | names::FIFO_TOPIC
        | names::CONTENT_BASED_DEDUPLICATION
        | names::RAW_MESSAGE_DELIVERY => "false",
        _ => "",
    }
}

/// Whether a desired and an observed value of attribute `name` are equivalent.
pub fn values_equal(name: &str, desired: &str, observed: &str) -> bool {
    if desired == observed {
        return true;
    }
    if let Some(mode) = json_mode(name) {
        // An empty document, `{}` and absence all mean "no policy".
        let parse = |text: &str| -> Option<Value> {
            if text.trim().is_empty() {
                return Some(Value::Object(Map::new()));
            }
            serde_json::from_str(text).ok()
        };
        if let (Some(a), Some(b)) = (parse(desired), parse(observed)) {
            return canonical(&a, mode) == canonical(&b, mode);
        }
        return false;
    }
    match (parse_bool(desired), parse_bool(observed)) {
        (Some(a), Some(b)) => a == b,
        _ => false,
    }
}

fn parse_bool(text: &str) -> Option<bool> {
    match text.to_ascii_lowercase().as_str() {
        "true" => Some(true),
        "false" => Some(false),
        _ => None,
    }
}

/// An immutable attribute whose observed value differs from the desired one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImmutableChange {
    /// The attribute.
    pub name: String,
    /// What the spec asks for.
    pub desired: String,
    /// What the cloud has.
    pub observed: String,
}

/// What it takes to bring observed attributes to the desired ones.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AttributeDiff {
    /// Attributes to set in place, in the order to set them (`FilterPolicyScope` before `FilterPolicy`,
    /// since SNS checks a filter policy against the current scope; otherwise by name).
    pub to_set: Vec<(String, String)>,
    /// Immutable attributes that differ: the resource must be replaced for the spec to hold.
    pub immutable: Vec<ImmutableChange>,
}

impl AttributeDiff {
    /// Whether the observed attributes already match.
    pub fn is_empty(&self) -> bool {
        self.to_set.is_empty() && self.immutable.is_empty()
    }

    /// The attributes to set, as a map (for SQS, which sets them in one call).
    pub fn to_set_map(&self) -> Attributes {
        self.to_set.iter().cloned().collect()
    }
}

/// Compares the desired attributes with the observed ones. Only desired attributes are considered, so
/// attributes another owner manages (a queue's `Policy`, written by the Subscription wiring) are left
/// alone; a desired empty value asks for the attribute to be absent. An [`ALWAYS_REPORTED`] attribute the
/// server does not report is skipped.
pub fn diff(desired: &Attributes, observed: &Attributes) -> AttributeDiff {
    let mut result = AttributeDiff::default();
    for (name, want) in desired {
        if ALWAYS_REPORTED.contains(&name.as_str()) && !observed.contains_key(name) {
            continue;
        }
        let have = observed.get(name).map_or(absent_value(name), String::as_str);
        let want_or_absent = if want.is_empty() { absent_value(name) } else { want };
        if values_equal(name, want_or_absent, have)
            || (name == names::FILTER_POLICY && same_filter(want, have, observed))
        {
            continue;
        }
        if IMMUTABLE.contains(&name.as_str()) {
            result.immutable.push(ImmutableChange {
                name: name.clone(),
                desired: want.clone(),
                observed: have.to_owned(),
            });
        } else {
            result.to_set.push((name.clone(), want.clone()));
        }
    }
    result
        .to_set
        .sort_by_key(|(name, _)| (name != names::FILTER_POLICY_SCOPE, name.clone()));
    result
}

/// Whether two filter policies mean the same, by the filter engine, in the scope the server reports.
fn same_filter(desired: &str, observed: &str, attributes: &Attributes) -> bool {
    let scope = match attributes.get(names::FILTER_POLICY_SCOPE).map(String::as_str) {
        Some("MessageBody") => Scope::MessageBody,
        _ => Scope::MessageAttributes,
    };
    match (
        Policy::parse_str(desired, scope),
        Policy::parse_str(observed, scope),
    ) {
        (Ok(want), Ok(have)) => want.canonical() == have.canonical(),
        _ => false,
    }
}

#[cfg(test)]
#[path = "compare_tests.rs"]
mod tests;
