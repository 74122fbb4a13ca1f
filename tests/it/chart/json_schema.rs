//! A JSON Schema (draft 2020-12) validator for the keywords the chart's schemas use, so that a schema
//! written down in the standard form checks documents in a test without a large dependency. A keyword it
//! does not implement is an error, never silently ignored: the schema cannot claim a check that is not made.

use serde_json::Value;

/// Keywords that only annotate.
const ANNOTATIONS: [&str; 4] = ["$schema", "title", "description", "$defs"];

/// Every violation of `schema` by `document`, each as `path: what`; empty when it is valid.
pub fn violations(schema: &Value, document: &Value) -> Vec<String> {
    let mut found = Vec::new();
    check(schema, schema, document, "$", &mut found);
    found
}

fn check(root: &Value, schema: &Value, value: &Value, path: &str, found: &mut Vec<String>) {
    let Some(keywords) = schema.as_object() else {
        panic!("schema at {path} is not an object: {schema}");
    };
    for (keyword, rule) in keywords {
        let mut fail = |what: String| found.push(format!("{path}: {what}"));
        match keyword.as_str() {
            k if ANNOTATIONS.contains(&k) => {}
            "$ref" => check(root, resolve(root, rule), value, path, found),
            "type" => {
                let allowed: Vec<&str> = match rule {
                    Value::Array(types) => types.iter().filter_map(Value::as_str).collect(),
                    other => vec![other.as_str().unwrap()],
                };
                if !allowed.iter().any(|t| is_type(value, t)) {
                    fail(format!("expected {allowed:?}, found {value}"));
                }
            }
            "const" if value != rule => fail(format!("expected {rule}, found {value}")),
            "enum" if !rule.as_array().unwrap().contains(value) => {
                fail(format!("{value} is not one of {rule}"));
            }
            "minimum" | "maximum" | "minLength" | "maxLength" | "minItems" | "maxItems" => {
                if let Some(what) = outside(keyword, rule, value) {
                    fail(what);
                }
            }
            "items" => {
                for (i, item) in value.as_array().into_iter().flatten().enumerate() {
                    check(root, rule, item, &format!("{path}[{i}]"), found);
                }
            }
            "required" => {
                if let Some(object) = value.as_object() {
                    for name in rule.as_array().unwrap().iter().filter_map(Value::as_str) {
                        if !object.contains_key(name) {
                            fail(format!("missing required {name:?}"));
                        }
                    }
                }
            }
            "properties" => {
                let Some(object) = value.as_object() else { continue };
                for (name, property) in rule.as_object().unwrap() {
                    if let Some(field) = object.get(name) {
                        check(root, property, field, &format!("{path}.{name}"), found);
                    }
                }
            }
            "additionalProperties" => additional(root, keywords, rule, value, path, found),
            "anyOf" => {
                let branches = rule.as_array().unwrap();
                let errors: Vec<Vec<String>> = branches
                    .iter()
                    .map(|branch| {
                        let mut errors = Vec::new();
                        check(root, branch, value, path, &mut errors);
                        errors
                    })
                    .collect();
                if errors.iter().all(|e| !e.is_empty()) {
                    fail(format!("matches no branch of anyOf: {errors:?}"));
                }
            }
            "const" | "enum" => {}
            other => panic!("schema keyword {other:?} at {path} is not implemented"),
        }
    }
}

/// Whether `value` is outside the bound `keyword` `rule` sets on numbers, string lengths or array lengths
/// (values of another type are not bounded by it).
fn outside(keyword: &str, rule: &Value, value: &Value) -> Option<String> {
    let bound = rule.as_f64().unwrap();
    let measured = match keyword {
        "minimum" | "maximum" => value.as_f64(),
        "minLength" | "maxLength" => value.as_str().map(|s| s.chars().count() as f64),
        _ => value.as_array().map(|items| items.len() as f64),
    }?;
    let below = keyword.starts_with("min");
    ((below && measured < bound) || (!below && measured > bound))
        .then(|| format!("{measured} is outside {keyword} {bound}"))
}

/// `additionalProperties`: `false` refuses fields `properties` does not name; a schema checks them.
fn additional(
    root: &Value,
    keywords: &serde_json::Map<String, Value>,
    rule: &Value,
    value: &Value,
    path: &str,
    found: &mut Vec<String>,
) {
    let Some(object) = value.as_object() else { return };
    let named = keywords.get("properties").and_then(Value::as_object);
    for (name, field) in object {
        if named.is_some_and(|n| n.contains_key(name)) {
            continue;
        }
        match rule {
            Value::Bool(false) => found.push(format!("{path}: unexpected field {name:?}")),
            Value::Bool(true) => {}
            schema => check(root, schema, field, &format!("{path}.{name}"), found),
        }
    }
}

/// The schema a local `$ref` (`#/$defs/name`) points to.
fn resolve<'a>(root: &'a Value, reference: &Value) -> &'a Value {
    let reference = reference.as_str().unwrap();
    let pointer = reference
        .strip_prefix('#')
        .unwrap_or_else(|| panic!("only local references are implemented: {reference}"));
    root.pointer(pointer)
        .unwrap_or_else(|| panic!("{reference} points nowhere"))
}

fn is_type(value: &Value, name: &str) -> bool {
    match name {
        "object" => value.is_object(),
        "array" => value.is_array(),
        "string" => value.is_string(),
        "boolean" => value.is_boolean(),
        "null" => value.is_null(),
        "number" => value.is_number(),
        "integer" => value.is_i64() || value.is_u64(),
        other => panic!("unknown type {other:?}"),
    }
}

#[test]
fn the_validator_finds_what_the_schema_forbids() {
    let schema = serde_json::json!({
        "type": "object",
        "required": ["id", "panels"],
        "properties": {
            "id": {"type": "integer", "minimum": 1},
            "panels": {"type": "array", "items": {"$ref": "#/$defs/panel"}}
        },
        "additionalProperties": false,
        "$defs": {"panel": {"anyOf": [{"const": "row"}, {"type": "object", "required": ["expr"]}]}}
    });
    let good = serde_json::json!({"id": 3, "panels": ["row", {"expr": "up"}]});
    assert_eq!(violations(&schema, &good), Vec::<String>::new());
    let bad = serde_json::json!({"id": 0, "panels": ["column", {}], "extra": true});
    let found = violations(&schema, &bad);
    assert_eq!(found.len(), 4, "{found:#?}");
    assert!(
        found
            .iter()
            .any(|v| v.starts_with("$.id: 0 is outside minimum 1"))
    );
    assert!(
        found
            .iter()
            .any(|v| v.starts_with("$.panels[0]: matches no branch"))
    );
    assert!(
        found
            .iter()
            .any(|v| v.starts_with("$.panels[1]: matches no branch"))
    );
    assert!(found.iter().any(|v| v == "$: unexpected field \"extra\""));
    let unknown = serde_json::json!({"pattern": "^a"});
    let refused = std::panic::catch_unwind(|| violations(&unknown, &good));
    assert!(
        refused.is_err(),
        "an unimplemented keyword must not pass silently"
    );
}
