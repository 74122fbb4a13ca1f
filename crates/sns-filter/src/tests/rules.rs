//! Cases for the rules around matching: SNS's constraints on policies, the canonical form, explanations
//! and the message forms that are read.

use serde_json::json;

use super::{attrs, invalid};
use crate::{Message, Policy, Scope};

// --- subscription-filter-policy-constraints.html -----------------------------------------------------------

#[test]
fn constraints_are_enforced_with_the_key_and_rule_named() {
    let s = Scope::MessageAttributes;
    invalid(
        json!({"a": [1], "b": [1], "c": [1], "d": [1], "e": [1], "f": [1]}),
        s,
        "",
        "at most 5",
    );
    let many: Vec<i32> = (0..13).collect();
    invalid(json!({"a": many, "b": many}), s, "", "combinations");
    invalid(
        json!({"customer": {"tier": ["gold"]}}),
        s,
        "customer",
        "MessageAttributes scope",
    );
    invalid(
        json!({"price": [{"numeric": [">", 1_000_000_001]}]}),
        s,
        "price",
        "outside the range",
    );
    invalid(
        json!({"price": [{"numeric": ["=", 1.123_456]}]}),
        s,
        "price",
        "decimal places",
    );
    invalid(
        json!({"price": [{"numeric": [">", 10, "<", 5]}]}),
        s,
        "price",
        "must be less than top",
    );
    invalid(
        json!({"price": [{"numeric": ["<", 10, ">", 5]}]}),
        s,
        "price",
        "lower bound",
    );
    invalid(json!({"event": "OrderPlaced"}), s, "event", "list of values");
    invalid(json!({"event": []}), s, "event", "must not be empty");
    invalid(
        json!({"event": [{"prefix": 5}]}),
        s,
        "event",
        "prefix takes a string",
    );
    invalid(json!({"event": [{"glob": "a*"}]}), s, "event", "unknown operator");
    invalid(
        json!({"event": [{"wildcard": "a**b"}]}),
        s,
        "event",
        "consecutive",
    );
    invalid(
        json!({"event": [{"prefix": "a", "suffix": "b"}]}),
        s,
        "event",
        "exactly one operator",
    );
    invalid(
        json!({"event": [{"exists": "yes"}]}),
        s,
        "event",
        "exists takes true or false",
    );
    invalid(
        json!({"ip": [{"cidr": "10.0.0.0/33"}]}),
        s,
        "ip",
        "longer than 32",
    );
    invalid(json!({"$or": [{"a": ["x"]}]}), s, "$or", "at least two");
    invalid(
        json!({"$or": [{"a": ["x"]}, {"b": "y"}]}),
        s,
        "$or[1].b",
        "list of values",
    );
    // A list inside a key's list is not a value (AWS: "Match value must be String, number, true, false, or
    // null", snapshot test_validate_policy); true, false and null are values (see aws_recorded.rs).
    invalid(
        json!({"key": [["value"]]}),
        s,
        "key",
        "cannot contain another list",
    );
    invalid(
        json!({"a.b": [1], "a": {"b": [2]}}),
        Scope::MessageBody,
        "a.b",
        "named twice",
    );
    invalid(
        json!({"a.b": {"$or": [{"c": [1]}, {"d": [1]}]}, "a": {"b": {"$or": [{"c": [2]}, {"d": [2]}]}}}),
        Scope::MessageBody,
        "a.b.$or",
        "two $or lists",
    );
    invalid(json!({}), s, "", "at least one key");
    invalid(json!(["a"]), s, "", "object");
    invalid(
        json!({"customer": {"tier": []}}),
        Scope::MessageBody,
        "customer.tier",
        "must not be empty",
    );
}

#[test]
fn a_policy_over_256_kb_is_refused() {
    let big = "x".repeat(300 * 1024);
    invalid(
        json!({"event": [big]}),
        Scope::MessageAttributes,
        "",
        "exceeds the limit of 262144 bytes",
    );
}

#[test]
fn or_alternatives_count_against_the_key_limit_each() {
    // Two alternatives of 3 + 2 keys each stay within 5 keys per combination.
    let ok = json!({"a": ["x"], "b": ["x"], "c": ["x"], "$or": [{"d": ["x"], "e": ["x"]}, {"f": ["x"]}]});
    assert!(Policy::parse(&ok, Scope::MessageAttributes).is_ok());
    let too_many = json!({"a": ["x"], "b": ["x"], "c": ["x"], "$or": [{"d": ["x"], "e": ["x"], "f": ["x"]}, {"g": ["x"]}]});
    assert!(Policy::parse(&too_many, Scope::MessageAttributes).is_err());
}

// --- canonical form ------------------------------------------------------------------------------------------

#[test]
fn policies_that_mean_the_same_have_one_canonical_form() {
    let s = Scope::MessageAttributes;
    let pairs = [
        (
            json!({"b": ["y", "x", "x"], "a": [5.0]}),
            json!({"a": [5], "b": ["x", "y"]}),
        ),
        (
            json!({"e": [{"anything-but": "z"}]}),
            json!({"e": [{"anything-but": ["z"]}]}),
        ),
        (
            json!({"e": [{"anything-but": ["b", "a", "a"]}]}),
            json!({"e": [{"anything-but": ["a", "b"]}]}),
        ),
        (
            json!({"$or": [{"b": ["1"]}, {"a": ["2"]}]}),
            json!({"$or": [{"a": ["2"]}, {"b": ["1"]}]}),
        ),
        (
            json!({"n": [{"numeric": [">=", 1.50]}]}),
            json!({"n": [{"numeric": [">=", 1.5]}]}),
        ),
    ];
    for (a, b) in pairs {
        let (pa, pb) = (Policy::parse(&a, s).unwrap(), Policy::parse(&b, s).unwrap());
        assert_eq!(pa.canonical_json(), pb.canonical_json(), "{a} vs {b}");
    }
    // Identical `$or` alternatives stay: one alone would not be a valid `$or`.
    let twice = Policy::parse(&json!({"$or": [{"a": ["x"]}, {"a": ["x"]}]}), s).unwrap();
    assert!(
        Policy::parse(&twice.canonical(), s).is_ok(),
        "{}",
        twice.canonical_json()
    );
    let different = (json!({"a": ["x"]}), json!({"a": ["y"]}));
    assert_ne!(
        Policy::parse(&different.0, s).unwrap().canonical_json(),
        Policy::parse(&different.1, s).unwrap().canonical_json()
    );
}

#[test]
fn explanation_names_each_key_and_why() {
    let p = Policy::parse(
        &json!({"event": ["OrderPlaced"], "total": [{"numeric": [">=", 100]}]}),
        Scope::MessageAttributes,
    )
    .unwrap();
    let e = p.explain(&attrs(&[
        ("event", "String", "OrderPlaced"),
        ("total", "Number", "20"),
    ]));
    assert!(!e.matched);
    let total = e.keys.iter().find(|k| k.path == "total").unwrap();
    assert!(!total.matched);
    assert!(
        total.reason.contains("20") && total.reason.contains("numeric"),
        "{}",
        total.reason
    );
    assert!(e.keys.iter().find(|k| k.path == "event").unwrap().matched);
}

#[test]
fn attribute_messages_are_read_in_the_sns_and_sqs_forms() {
    let sns = Message::from_attributes_json(r#"{"event": {"Type": "String", "Value": "x"}}"#).unwrap();
    let sqs =
        Message::from_attributes_json(r#"{"event": {"DataType": "String", "StringValue": "x"}}"#).unwrap();
    assert_eq!(sns, sqs);
    assert!(Message::from_attributes_json(r#"{"event": "x"}"#).is_err());
}
