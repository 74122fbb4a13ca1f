//! Evaluation and explanation of a policy against a message.
//!
//! Matching rules (SNS guide, "Filter policy" pages): every key must match (AND), one of a key's values
//! or conditions is enough (OR), a key absent from the message matches only `{"exists": false}`, and a list
//! in the message (String.Array attribute, JSON array in the body) matches when any element does.
//!
//! What AWS recorded beyond the guide's examples (sources in `docs/filter-semantics.md`):
//! - a message without any attribute matches no MessageAttributes policy, not even `{"exists": false}`
//!   (guide, "Key matching": "An empty set of attributes results in the filter not matching");
//! - lists in the body are transparent: a list of lists of objects is read like a list of objects
//!   (snapshot `test_filter_policy_on_message_body_array_of_object_attributes`), and in a list that mixes
//!   values and objects the values are values of the key and the objects are objects under it;
//! - the keys of one nested policy must hold within one element of a list of objects (a policy for
//!   `Records` with `eventName` and `s3.object.key` matches one record with both), as AWS's event-ruler
//!   does ("array consistency");
//! - `{"exists": true}` needs a non-null, non-empty value (guide, "Key matching"): `null` alone does not
//!   do, and an empty list is as good as an absent key.

use std::{borrow::Cow, collections::BTreeMap, net::IpAddr};

use serde_json::Value;

use super::{Branch, Condition, Node, NumericOp, Scalar, Scope};

/// A message as a filter sees it.
#[derive(Clone, Debug, PartialEq)]
pub enum Message {
    /// Message attributes by name: (data type, value), e.g. ("Number", "42").
    Attributes(BTreeMap<String, (String, String)>),
    /// The JSON body.
    Body(Value),
}

/// A message that cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum MessageError {
    /// Not JSON.
    #[error("message is not valid JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// Attributes not in the form SNS delivers them.
    #[error(
        "attribute {0:?}: expected {{\"Type\": \"String|Number|String.Array|Binary\", \"Value\": \"...\"}}"
    )]
    Attribute(String),
}

impl Message {
    /// Attributes in the form SNS delivers them (`{"name": {"Type": "String", "Value": "x"}}`); the SQS
    /// form (`DataType`/`StringValue`) is accepted too.
    pub fn from_attributes_json(text: &str) -> Result<Self, MessageError> {
        let value: Value = serde_json::from_str(text)?;
        let Value::Object(map) = value else {
            return Err(MessageError::Attribute(String::new()));
        };
        let mut out = BTreeMap::new();
        for (name, attr) in map {
            let field = |a: &str, b: &str| {
                attr.get(a)
                    .or_else(|| attr.get(b))
                    .and_then(Value::as_str)
                    .map(str::to_owned)
            };
            let (Some(data_type), Some(value)) = (field("Type", "DataType"), field("Value", "StringValue"))
            else {
                return Err(MessageError::Attribute(name));
            };
            out.insert(name, (data_type, value));
        }
        Ok(Self::Attributes(out))
    }

    /// A JSON body.
    pub fn from_body_json(text: &str) -> Result<Self, MessageError> {
        Ok(Self::Body(serde_json::from_str(text)?))
    }

    /// The scope a policy needs to read this message.
    pub fn scope(&self) -> Scope {
        match self {
            Self::Attributes(_) => Scope::MessageAttributes,
            Self::Body(_) => Scope::MessageBody,
        }
    }
}

/// The result of evaluating a policy, key by key.
#[derive(Clone, Debug, PartialEq)]
pub struct Explanation {
    /// Whether the message matches.
    pub matched: bool,
    /// One line per key (and `$or` group), in policy order.
    pub keys: Vec<KeyOutcome>,
}

/// How one key fared.
#[derive(Clone, Debug, PartialEq)]
pub struct KeyOutcome {
    /// Dotted path of the key.
    pub path: String,
    /// Whether it matched.
    pub matched: bool,
    /// Why, in words.
    pub reason: String,
}

impl std::fmt::Display for Explanation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "{}", if self.matched { "match" } else { "no match" })?;
        for k in &self.keys {
            writeln!(
                f,
                "  {} {}: {}",
                if k.matched { "✓" } else { "✗" },
                k.path,
                k.reason
            )?;
        }
        Ok(())
    }
}

/// A value found in the message. Strings borrow from the message where they can.
#[derive(Clone, Debug, PartialEq)]
pub(super) enum Found<'a> {
    Str(Cow<'a, str>),
    Num(f64),
    Bool(bool),
    Null,
    /// An object beside values in one list (or a list inside a String.Array attribute): present, but
    /// compared by no condition.
    Other,
}

/// What the message holds at a key: nothing, or values and objects (objects in body scope only). A list
/// contributes each of its elements, through lists within lists.
enum At<'a> {
    Absent,
    Present {
        values: Vec<Found<'a>>,
        objects: Vec<&'a serde_json::Map<String, Value>>,
    },
}

/// The context a branch is evaluated in.
#[derive(Clone, Copy)]
enum Ctx<'a> {
    Attributes(&'a BTreeMap<String, (String, String)>),
    Object(&'a serde_json::Map<String, Value>),
    /// A body that is not an object: every key is absent.
    Nothing,
}

fn lookup<'a>(ctx: Ctx<'a>, key: &str) -> At<'a> {
    match ctx {
        Ctx::Attributes(attrs) => match attrs.get(key) {
            None => At::Absent,
            Some((t, v)) => match t.as_str() {
                t if t.starts_with("Binary") => At::Absent,
                t => present(attribute_values(t, Cow::Borrowed(v)), Vec::new()),
            },
        },
        Ctx::Object(map) => match map.get(key) {
            None => At::Absent,
            Some(v) => {
                let (mut values, mut objects) = (Vec::new(), Vec::new());
                collect(v, &mut values, &mut objects);
                if !values.is_empty() && !objects.is_empty() {
                    // As the matcher reads a mixed list: each object also counts as a present value.
                    values.extend(std::iter::repeat_n(Found::Other, objects.len()));
                }
                present(values, objects)
            }
        },
        Ctx::Nothing => At::Absent,
    }
}

/// Nothing at all (an empty list, or an empty String.Array) is as good as absent.
fn present<'a>(values: Vec<Found<'a>>, objects: Vec<&'a serde_json::Map<String, Value>>) -> At<'a> {
    if values.is_empty() && objects.is_empty() {
        At::Absent
    } else {
        At::Present { values, objects }
    }
}

/// The values and objects a body value holds at its key, through nested lists.
fn collect<'a>(
    v: &'a Value,
    values: &mut Vec<Found<'a>>,
    objects: &mut Vec<&'a serde_json::Map<String, Value>>,
) {
    match v {
        Value::Object(o) => objects.push(o),
        Value::Array(items) => {
            for item in items {
                collect(item, values, objects);
            }
        }
        scalar => values.push(found(scalar)),
    }
}

/// The values of a message attribute of a type other than Binary (which SNS never filters on: as good as
/// absent). A Number that does not parse compares as a string; a String.Array that is not a JSON list is
/// one string.
pub(super) fn attribute_values<'a>(data_type: &str, value: Cow<'a, str>) -> Vec<Found<'a>> {
    match data_type {
        "Number" => vec![value.parse().map_or(Found::Str(value), Found::Num)],
        "String.Array" => match serde_json::from_str::<Vec<Value>>(&value) {
            Ok(items) => items.iter().map(|v| found(v).into_owned()).collect(),
            Err(_) => vec![Found::Str(value)],
        },
        _ => vec![Found::Str(value)],
    }
}

impl Found<'_> {
    fn into_owned(self) -> Found<'static> {
        match self {
            Found::Str(s) => Found::Str(Cow::Owned(s.into_owned())),
            Found::Num(n) => Found::Num(n),
            Found::Bool(b) => Found::Bool(b),
            Found::Null => Found::Null,
            Found::Other => Found::Other,
        }
    }
}

fn found(v: &Value) -> Found<'_> {
    match v {
        Value::String(s) => Found::Str(Cow::Borrowed(s)),
        Value::Number(n) => n.as_f64().map_or(Found::Other, Found::Num),
        Value::Bool(b) => Found::Bool(*b),
        Value::Null => Found::Null,
        _ => Found::Other,
    }
}

fn condition_matches(c: &Condition, at: &At<'_>) -> bool {
    match at {
        At::Absent => matches!(c, Condition::Exists(false)),
        At::Present { values, objects } if values.is_empty() => {
            !objects.is_empty() && matches!(c, Condition::Exists(true))
        }
        At::Present { values, .. } => condition_matches_values(c, values),
    }
}

/// Whether a condition holds for a key that is present with these values (any one is enough).
/// `exists: true` wants a value that is not null ("Key matching": "The key must have a non-null and
/// non-empty value"); `exists: false` never holds for a present key.
pub(super) fn condition_matches_values(c: &Condition, values: &[Found<'_>]) -> bool {
    if let Condition::Exists(e) = c {
        return *e && values.iter().any(|v| !matches!(v, Found::Null));
    }
    values.iter().any(|v| value_matches(c, v))
}

fn value_matches(c: &Condition, v: &Found<'_>) -> bool {
    match (c, v) {
        (Condition::String(s), Found::Str(x)) => s == x,
        (Condition::Number(n), Found::Num(x)) => n == x,
        (Condition::Bool(b), Found::Bool(x)) => b == x,
        (Condition::Null, Found::Null) => true,
        (Condition::Prefix(p), Found::Str(x)) => x.starts_with(p.as_str()),
        (Condition::Suffix(p), Found::Str(x)) => x.ends_with(p.as_str()),
        (Condition::EqualsIgnoreCase(p), Found::Str(x)) => {
            if p.is_ascii() && x.is_ascii() {
                p.eq_ignore_ascii_case(x)
            } else {
                p.to_lowercase() == x.to_lowercase()
            }
        }
        (Condition::Wildcard(w), Found::Str(x)) => w.matches(x),
        (Condition::AnythingButWildcard(w), Found::Str(x)) => !w.matches(x),
        (Condition::AnythingBut(list), Found::Str(x)) => {
            list.iter().any(|s| matches!(s, Scalar::String(_)))
                && !list
                    .iter()
                    .any(|s| matches!(s, Scalar::String(y) if y == x.as_ref()))
        }
        (Condition::AnythingBut(list), Found::Num(x)) => {
            list.iter().any(|s| matches!(s, Scalar::Number(_)))
                && !list.iter().any(|s| matches!(s, Scalar::Number(y) if y == x))
        }
        (Condition::AnythingButPrefix(p), Found::Str(x)) => !x.starts_with(p.as_str()),
        (Condition::AnythingButSuffix(p), Found::Str(x)) => !x.ends_with(p.as_str()),
        (Condition::Numeric(bounds), Found::Num(x)) => bounds.iter().all(|(op, n)| match op {
            NumericOp::Eq => x == n,
            NumericOp::Gt => x > n,
            NumericOp::Ge => x >= n,
            NumericOp::Lt => x < n,
            NumericOp::Le => x <= n,
        }),
        (Condition::Cidr(net), Found::Str(x)) => x.parse::<IpAddr>().is_ok_and(|ip| net.contains(ip)),
        _ => false,
    }
}

fn node_matches(node: &Node, at: &At<'_>) -> bool {
    match node {
        Node::Conditions(conditions) => conditions.iter().any(|c| condition_matches(c, at)),
        // One object must satisfy the whole nested policy: keys do not combine across list elements.
        Node::Nested(branch) => match at {
            At::Present { objects, .. } => objects.iter().any(|o| branch_matches(branch, Ctx::Object(o))),
            // A nested policy over an absent object still matches if it only asks for absence.
            At::Absent => branch_matches(branch, Ctx::Nothing),
        },
    }
}

fn branch_matches(branch: &Branch, ctx: Ctx<'_>) -> bool {
    branch
        .keys
        .iter()
        .all(|(key, node)| node_matches(node, &lookup(ctx, key)))
        && branch
            .or
            .iter()
            .all(|group| group.iter().any(|alt| branch_matches(alt, ctx)))
}

fn root_ctx(body: &Value) -> Ctx<'_> {
    match body {
        Value::Object(map) => Ctx::Object(map),
        _ => Ctx::Nothing,
    }
}

/// Why SNS does not deliver a message without attributes to a MessageAttributes policy.
const NO_ATTRIBUTES: &str = "the message has no attributes, and SNS matches no attribute policy \
     against an empty set of attributes (not even {\"exists\": false})";

pub(super) fn matches(root: &Branch, message: &Message) -> bool {
    match message {
        Message::Attributes(attrs) => !attrs.is_empty() && branch_matches(root, Ctx::Attributes(attrs)),
        Message::Body(body) => branch_matches(root, root_ctx(&super::dotted::expand(body))),
    }
}

pub(super) fn explain(root: &Branch, message: &Message) -> Explanation {
    let mut keys = Vec::new();
    match message {
        Message::Attributes(attrs) => {
            if attrs.is_empty() {
                keys.push(KeyOutcome {
                    path: "(attributes)".to_owned(),
                    matched: false,
                    reason: NO_ATTRIBUTES.to_owned(),
                });
            }
            explain_branch(root, Ctx::Attributes(attrs), "", &mut keys);
        }
        Message::Body(body) => {
            explain_branch(root, root_ctx(&super::dotted::expand(body)), "", &mut keys);
        }
    }
    Explanation {
        matched: matches(root, message),
        keys,
    }
}

fn describe(at: &At<'_>) -> String {
    match at {
        At::Absent => "the message has no such key (or only an empty list)".to_owned(),
        At::Present { values, objects } => {
            let mut shown: Vec<String> = values
                .iter()
                .filter(|v| !matches!(v, Found::Other) || objects.is_empty())
                .map(|v| match v {
                    Found::Str(x) => format!("{x:?}"),
                    Found::Num(x) => x.to_string(),
                    Found::Bool(b) => b.to_string(),
                    Found::Null => "null".to_owned(),
                    Found::Other => "a value filters cannot compare".to_owned(),
                })
                .collect();
            match objects.len() {
                0 => {}
                1 => shown.push("an object".to_owned()),
                n => shown.push(format!("{n} objects (a nested policy must hold within one)")),
            }
            format!("the message has {}", shown.join(", "))
        }
    }
}

fn explain_branch(branch: &Branch, ctx: Ctx<'_>, path: &str, out: &mut Vec<KeyOutcome>) {
    for (key, node) in &branch.keys {
        let here = if path.is_empty() {
            key.clone()
        } else {
            format!("{path}.{key}")
        };
        let at = lookup(ctx, key);
        match node {
            Node::Conditions(conditions) => {
                let matched = node_matches(node, &at);
                let wanted = super::canonical::conditions(conditions).to_string();
                let verdict = if matched { "one of" } else { "none of" };
                out.push(KeyOutcome {
                    path: here,
                    matched,
                    reason: format!("{}; {verdict} {wanted} holds", describe(&at)),
                });
            }
            Node::Nested(nested) => match at {
                At::Present { values, objects } if values.is_empty() && objects.len() == 1 => {
                    explain_branch(nested, Ctx::Object(objects[0]), &here, out)
                }
                _ => {
                    let matched = node_matches(node, &at);
                    out.push(KeyOutcome {
                        path: here,
                        matched,
                        reason: format!("{}; a nested policy applies here", describe(&at)),
                    });
                }
            },
        }
    }
    for group in &branch.or {
        let here = if path.is_empty() {
            "$or".to_owned()
        } else {
            format!("{path}.$or")
        };
        let first = group.iter().position(|alt| branch_matches(alt, ctx));
        let reason = match first {
            Some(i) => format!("alternative {i} matches"),
            None => format!("none of the {} alternatives matches", group.len()),
        };
        out.push(KeyOutcome {
            path: here,
            matched: first.is_some(),
            reason,
        });
    }
}
