//! The canonical form of a JSON-valued attribute, pure: what the `compare` module compares and what the
//! `attributes` module sends, so two spellings of one document are sent, and compared, alike. Kept apart
//! from both so that neither imports the other.

use serde_json::{Map, Value};

/// How much of a JSON document is significant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JsonMode {
    /// Key order and whitespace are not significant; everything else is (filter and delivery policies,
    /// where `"5"` and `5` match different messages).
    Plain,
    /// Also: numbers and strings with the same text are equal (`maxReceiveCount`), array order is not
    /// significant (`sourceQueueArns`).
    Redrive,
    /// IAM policy documents: also a one-element array equals its element, arrays are sets, `"*"` as a
    /// principal equals `{"AWS": "*"}`, actions are case-insensitive, and numbers and booleans equal their
    /// string forms.
    Iam,
}

/// The canonical form of a JSON value under `mode`: objects with sorted keys, and the mode's
/// equivalences applied. Two documents are equivalent exactly when their canonical forms are equal.
pub fn canonical(value: &Value, mode: JsonMode) -> Value {
    canonical_under(value, mode, None)
}

fn canonical_under(value: &Value, mode: JsonMode, key: Option<&str>) -> Value {
    let loose = mode != JsonMode::Plain;
    match value {
        Value::Object(object) => {
            let mut keys: Vec<&String> = object.keys().collect();
            keys.sort_unstable();
            let mut out = Map::new();
            for k in keys {
                if let Some(v) = object.get(k) {
                    out.insert(k.clone(), canonical_under(v, mode, Some(k)));
                }
            }
            Value::Object(out)
        }
        Value::Array(items) => {
            let mut items: Vec<Value> = items.iter().map(|v| canonical_under(v, mode, key)).collect();
            if loose {
                items.sort_by_cached_key(Value::to_string);
                items.dedup();
            }
            match items.len() {
                1 if mode == JsonMode::Iam => items.pop().unwrap_or(Value::Null),
                _ => Value::Array(items),
            }
        }
        Value::Number(number) if loose => Value::String(number.to_string()),
        Value::Bool(flag) if mode == JsonMode::Iam => Value::String(flag.to_string()),
        Value::String(text) if mode == JsonMode::Iam => match key {
            Some("Principal" | "NotPrincipal") if text == "*" => {
                Value::Object(Map::from_iter([("AWS".to_owned(), Value::String("*".into()))]))
            }
            Some("Action" | "NotAction") => Value::String(text.to_ascii_lowercase()),
            _ => value.clone(),
        },
        _ => value.clone(),
    }
}
