//! The SNS filter-policy language: parse and validate a policy, put it in canonical form, evaluate it
//! against a message, and explain the outcome key by key; and [`Matcher`], many policies of one scope
//! compiled into one matcher.
//!
//! One engine serves every place a policy matters in Tributary (which re-exports this crate as
//! `tributary::filter`): validating a Subscription before anything reaches AWS, comparing the applied and
//! desired policies canonically so reconciles never loop, the `tributary filter` command (also this
//! crate's own `sns-filter` binary, see [`command`]), and delivery paths where Tributary filters by itself
//! (Azure queues have no broker-side filtering). It depends on nothing of Tributary's and on no cloud SDK.
//!
//! Semantics follow the SNS developer guide: "Amazon SNS subscription filter policies",
//! "Filter policy constraints", "String value matching", "Numeric value matching", "Key matching" and
//! "AND/OR logic" (docs.aws.amazon.com/sns/latest/dg/). Where the guide is silent or wrong, they follow
//! what AWS itself answered in the AWS-validated snapshots LocalStack records
//! (`tests/aws/services/sns/test_sns_filter_policy.snapshot.json` in localstack/localstack); the cases
//! and their sources are in `src/tests/aws_recorded.rs` (of this crate) and Tributary's
//! `docs/filter-semantics.md`.
#![forbid(unsafe_code)]

mod canonical;
pub mod command;
mod dotted;
mod eval;
mod matcher;
mod parse;

use std::{collections::BTreeMap, fmt, net::IpAddr};

pub use eval::{Explanation, KeyOutcome, Message, MessageError};
pub use matcher::{Engine, Matcher, Scratch};

/// Where a policy looks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Scope {
    /// Message attributes (String, String.Array, Number; Binary attributes are never matched). No nesting.
    #[default]
    MessageAttributes,
    /// The JSON message body; keys may nest into objects, and a key with dots names a nested path.
    MessageBody,
}

impl std::str::FromStr for Scope {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "MessageAttributes" => Ok(Self::MessageAttributes),
            "MessageBody" => Ok(Self::MessageBody),
            other => Err(format!(
                "unknown scope {other:?}: expected MessageAttributes or MessageBody"
            )),
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::MessageAttributes => "MessageAttributes",
            Self::MessageBody => "MessageBody",
        })
    }
}

/// Limits SNS enforces on a policy.
pub mod limits {
    /// Keys per policy (per `$or` alternative, counting nested leaf keys).
    pub const MAX_KEYS: usize = 5;
    /// Total combinations of values (the product of each key's value count, summed over alternatives).
    pub const MAX_COMBINATIONS: usize = 150;
    /// Size of the policy document in bytes.
    pub const MAX_BYTES: usize = 256 * 1024;
    /// Largest magnitude of a number in a policy.
    pub const MAX_NUMBER: f64 = 1_000_000_000.0;
    /// Digits allowed after the decimal point.
    pub const MAX_DECIMALS: usize = 5;
}

/// A validated filter policy.
#[derive(Clone, Debug, PartialEq)]
pub struct Policy {
    scope: Scope,
    root: Branch,
}

/// One level of a policy: keys that must all match, and optional `$or` groups, each of which must have at
/// least one matching alternative.
#[derive(Clone, Debug, PartialEq, Default)]
pub(crate) struct Branch {
    pub(crate) keys: BTreeMap<String, Node>,
    pub(crate) or: Vec<Vec<Branch>>,
}

/// What a key holds.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Node {
    /// A list of conditions; one matching is enough.
    Conditions(Vec<Condition>),
    /// A nested policy for a nested object (body scope only).
    Nested(Branch),
}

/// One accepted value or condition of a key.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Condition {
    /// Exactly this string.
    String(String),
    /// Exactly this number (numeric comparison: 5 equals 5.0).
    Number(f64),
    /// Exactly this JSON boolean: `true` in the body, or an element of a String.Array attribute (never the
    /// String attribute "true").
    Bool(bool),
    /// JSON null: a null in the body, or an element of a String.Array attribute (never an absent key).
    Null,
    /// The string starts with this.
    Prefix(String),
    /// The string ends with this.
    Suffix(String),
    /// The string equals this, ignoring case.
    EqualsIgnoreCase(String),
    /// The string matches this pattern, where `*` stands for any run of characters.
    Wildcard(Wildcard),
    /// Present and not one of these strings or numbers.
    AnythingBut(Vec<Scalar>),
    /// Present, a string, and not starting with this.
    AnythingButPrefix(String),
    /// Present, a string, and not ending with this.
    AnythingButSuffix(String),
    /// Present, a string, and not matching this pattern.
    AnythingButWildcard(Wildcard),
    /// A number within these bounds (one or two comparisons, lower first).
    Numeric(Vec<(NumericOp, f64)>),
    /// Present (`true`) or absent (`false`).
    Exists(bool),
    /// An IP address within this network.
    Cidr(Cidr),
}

/// A `wildcard` pattern: literal pieces separated by `*`. `\*` is a literal star and `\\` a backslash.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Wildcard {
    /// The pattern as written (the canonical form keeps it).
    pub(crate) source: String,
    /// The literal pieces between stars: `a*b*` is `["a", "b", ""]`.
    pub(crate) pieces: Vec<String>,
}

impl Wildcard {
    pub(crate) fn matches(&self, text: &str) -> bool {
        let (first, rest) = self
            .pieces
            .split_first()
            .expect("a pattern has at least one piece");
        let Some(mut remaining) = text.strip_prefix(first.as_str()) else {
            return false;
        };
        let Some((last, middle)) = rest.split_last() else {
            return remaining.is_empty(); // no star at all: an exact match
        };
        for piece in middle {
            match remaining.find(piece.as_str()) {
                Some(i) => remaining = &remaining[i + piece.len()..],
                None => return false,
            }
        }
        remaining.len() >= last.len() && remaining.ends_with(last.as_str())
    }
}

/// A string or number, as listed by `anything-but`.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Scalar {
    String(String),
    Number(f64),
}

/// A comparison of a numeric condition.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum NumericOp {
    Eq,
    Gt,
    Ge,
    Lt,
    Le,
}

impl NumericOp {
    pub(crate) fn symbol(self) -> &'static str {
        match self {
            Self::Eq => "=",
            Self::Gt => ">",
            Self::Ge => ">=",
            Self::Lt => "<",
            Self::Le => "<=",
        }
    }
}

/// An IPv4 or IPv6 network.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Cidr {
    pub(crate) network: IpAddr,
    pub(crate) prefix: u8,
}

impl Cidr {
    pub(crate) fn contains(&self, ip: IpAddr) -> bool {
        match (self.network, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => prefix_eq(&n.octets(), &a.octets(), self.prefix),
            (IpAddr::V6(n), IpAddr::V6(a)) => prefix_eq(&n.octets(), &a.octets(), self.prefix),
            _ => false,
        }
    }
}

fn prefix_eq(a: &[u8], b: &[u8], bits: u8) -> bool {
    let bits = usize::from(bits);
    let (full, rest) = (bits / 8, bits % 8);
    if a[..full] != b[..full] {
        return false;
    }
    rest == 0 || (a[full] ^ b[full]) >> (8 - rest) == 0
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

/// Why a policy is invalid: the key (a dotted path, `$or[i]` for alternatives) and the rule it breaks.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}: {rule}", if path.is_empty() { "policy" } else { path.as_str() })]
pub struct PolicyError {
    /// Where in the policy, e.g. `total` or `customer.tier` or `$or[1].event`; empty for the whole policy.
    pub path: String,
    /// The rule that is broken, in words.
    pub rule: String,
}

impl Policy {
    /// Parse and validate a policy from its JSON (or YAML-decoded) value, with every SNS rule and limit.
    pub fn parse(value: &serde_json::Value, scope: Scope) -> Result<Self, PolicyError> {
        parse::parse(value, scope)
    }

    /// Parse a policy from JSON text.
    pub fn parse_str(text: &str, scope: Scope) -> Result<Self, PolicyError> {
        let value: serde_json::Value = serde_json::from_str(text).map_err(|e| PolicyError {
            path: String::new(),
            rule: format!("not valid JSON: {e}"),
        })?;
        Self::parse(&value, scope)
    }

    /// The scope this policy was validated for.
    pub fn scope(&self) -> Scope {
        self.scope
    }

    /// The canonical form: keys sorted, each key's values sorted and de-duplicated, numbers normalised,
    /// `$or` alternatives sorted. Two policies that mean the same have the same canonical form.
    pub fn canonical(&self) -> serde_json::Value {
        canonical::to_value(&self.root)
    }

    /// The canonical form as compact JSON, as sent to SNS and compared against what SNS reports.
    pub fn canonical_json(&self) -> String {
        self.canonical().to_string()
    }

    /// Whether `message` matches.
    pub fn matches(&self, message: &Message) -> bool {
        eval::matches(&self.root, message)
    }

    /// Whether `message` matches, and why, key by key.
    pub fn explain(&self, message: &Message) -> Explanation {
        eval::explain(&self.root, message)
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod proptests;
