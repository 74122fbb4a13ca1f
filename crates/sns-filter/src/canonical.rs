//! Canonical form: the same meaning gives the same JSON, so Tributary compares what SNS reports with what
//! the spec asks for without update loops (order of keys and values, duplicates, `5` vs `5.0`, a single
//! `anything-but` value vs a list of one).

use serde_json::{Map, Value, json};

use super::{Branch, Condition, Node, Scalar};

pub(super) fn to_value(branch: &Branch) -> Value {
    let mut map = Map::new();
    for (key, node) in &branch.keys {
        let value = match node {
            Node::Conditions(list) => conditions(list),
            Node::Nested(nested) => to_value(nested),
        };
        map.insert(key.clone(), value);
    }
    // The parser produces at most one `$or` per level, as JSON objects have one key of a name. Duplicate
    // alternatives are dropped, but an `$or` needs two: a lone survivor is written twice.
    for group in &branch.or {
        let mut alternatives = sort_dedup(group.iter().map(to_value).collect());
        if let [only] = alternatives.as_slice() {
            alternatives.push(only.clone());
        }
        map.insert("$or".to_owned(), Value::Array(alternatives));
    }
    Value::Object(map)
}

/// A key's list of values and conditions, canonical.
pub(super) fn conditions(list: &[Condition]) -> Value {
    sorted(list.iter().map(condition).collect())
}

/// Sort by canonical text and drop duplicates.
fn sort_dedup(mut values: Vec<Value>) -> Vec<Value> {
    values.sort_by_cached_key(Value::to_string);
    values.dedup();
    values
}

fn sorted(values: Vec<Value>) -> Value {
    Value::Array(sort_dedup(values))
}

pub(super) fn number(n: f64) -> Value {
    // Integral values print without a fraction; policies hold at most 5 decimals and |n| <= 1e9, so the
    // conversion to i64 is exact.
    if n.fract() == 0.0 {
        #[allow(clippy::cast_possible_truncation)]
        return json!(n as i64);
    }
    json!(n)
}

fn scalar(s: &Scalar) -> Value {
    match s {
        Scalar::String(s) => json!(s),
        Scalar::Number(n) => number(*n),
    }
}

fn condition(c: &Condition) -> Value {
    match c {
        Condition::String(s) => json!(s),
        Condition::Number(n) => number(*n),
        Condition::Bool(b) => Value::Bool(*b),
        Condition::Null => Value::Null,
        Condition::Prefix(s) => json!({"prefix": s}),
        Condition::Suffix(s) => json!({"suffix": s}),
        Condition::EqualsIgnoreCase(s) => json!({"equals-ignore-case": s}),
        Condition::Wildcard(w) => json!({"wildcard": w.source}),
        Condition::AnythingButWildcard(w) => json!({"anything-but": {"wildcard": w.source}}),
        Condition::AnythingBut(values) => {
            json!({"anything-but": sorted(values.iter().map(scalar).collect())})
        }
        Condition::AnythingButPrefix(s) => json!({"anything-but": {"prefix": s}}),
        Condition::AnythingButSuffix(s) => json!({"anything-but": {"suffix": s}}),
        Condition::Numeric(bounds) => {
            let parts: Vec<Value> = bounds
                .iter()
                .flat_map(|(op, n)| [json!(op.symbol()), number(*n)])
                .collect();
            json!({"numeric": parts})
        }
        Condition::Exists(b) => json!({"exists": b}),
        Condition::Cidr(c) => json!({"cidr": c.to_string()}),
    }
}
