//! Keys with dots in a message body. SNS flattens the body into dotted paths before matching, so the key
//! `"a.b"` and the key `b` nested in `a` name the same path: a policy key `"object.nested"` matched both
//! `{"object": {"nested": v}}` and `{"object.nested": v}`, and `"object.nested.test"` matched every way of
//! spelling that path (AWS-validated snapshot `test_filter_policy_on_message_body_dot_attribute`,
//! localstack/localstack `tests/aws/services/sns/test_sns_filter_policy.snapshot.json`).
//!
//! The evaluator walks nested objects, so a body whose keys have dots is first rewritten with those keys
//! split and merged into the nested objects (the parser does the same to policy keys).

use std::borrow::Cow;

use serde_json::{Map, Value};

/// The body with every dotted key split into nested objects; borrowed when no key has a dot.
pub(super) fn expand(body: &Value) -> Cow<'_, Value> {
    if has_dotted_key(body) {
        Cow::Owned(expand_owned(body))
    } else {
        Cow::Borrowed(body)
    }
}

fn has_dotted_key(value: &Value) -> bool {
    match value {
        Value::Object(map) => map.iter().any(|(k, v)| k.contains('.') || has_dotted_key(v)),
        Value::Array(items) => items.iter().any(has_dotted_key),
        _ => false,
    }
}

fn expand_owned(value: &Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut out = Map::new();
            for (key, child) in map {
                let segments: Vec<&str> = key.split('.').collect();
                insert(&mut out, &segments, expand_owned(child));
            }
            Value::Object(out)
        }
        Value::Array(items) => Value::Array(items.iter().map(expand_owned).collect()),
        other => other.clone(),
    }
}

fn insert(map: &mut Map<String, Value>, segments: &[&str], value: Value) {
    let (first, rest) = segments
        .split_first()
        .expect("split always gives at least one segment");
    let value = if rest.is_empty() {
        value
    } else {
        let mut nested = Map::new();
        insert(&mut nested, rest, value);
        Value::Object(nested)
    };
    match map.remove(*first) {
        None => {
            map.insert((*first).to_owned(), value);
        }
        Some(existing) => {
            map.insert((*first).to_owned(), combine(existing, value));
        }
    }
}

/// Two values at one path: objects merge key by key; anything else becomes a list of both, which the
/// evaluator reads as it reads any list (every element is a value, or an object, at that path).
fn combine(existing: Value, added: Value) -> Value {
    match (existing, added) {
        (Value::Object(mut a), Value::Object(b)) => {
            for (key, value) in b {
                insert(&mut a, &[key.as_str()], value);
            }
            Value::Object(a)
        }
        (a, b) => {
            let mut items = match a {
                Value::Array(items) => items,
                other => vec![other],
            };
            match b {
                Value::Array(more) => items.extend(more),
                other => items.push(other),
            }
            Value::Array(items)
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::expand;

    #[test]
    fn dotted_keys_become_nested_objects_and_merge() {
        assert_eq!(
            *expand(&json!({"a.b": 1, "a": {"c": 2}})),
            json!({"a": {"b": 1, "c": 2}})
        );
        assert_eq!(
            *expand(&json!({"x": [{"a.b": {"c.d": 1}}]})),
            json!({"x": [{"a": {"b": {"c": {"d": 1}}}}]})
        );
        // A value and a nested object at one path: both are kept, as a list.
        assert_eq!(*expand(&json!({"a": 1, "a.b": 2})), json!({"a": [1, {"b": 2}]}));
        let plain = json!({"a": {"b": [1, 2]}});
        assert!(matches!(expand(&plain), std::borrow::Cow::Borrowed(_)));
    }
}
