//! Cases whose outcome AWS recorded, each with its source:
//! - `snapshot <test>`: what real SNS answered in an AWS-validated test of localstack/localstack,
//!   `tests/aws/services/sns/test_sns_filter_policy.py` and its `.snapshot.json` (recorded 2024-05 to
//!   2025-03; the test names the case, the snapshot holds AWS's answer);
//! - `guide <page>`: docs.aws.amazon.com/sns/latest/dg/<page>;
//! - `inferred: ...`: neither says it outright; the reason is given.
//!
//! Every case is checked with the one-policy evaluator and with both engines of the compiled matcher.

use serde_json::{Value, json};

use super::attrs;
use crate::{Engine, Matcher, Message, Policy, Scope};

struct Case {
    source: &'static str,
    scope: Scope,
    policy: Value,
    message: Message,
    delivered: bool,
}

fn body(policy: Value, source: &'static str, cases: Vec<(Value, bool)>) -> Vec<Case> {
    cases
        .into_iter()
        .map(|(b, delivered)| Case {
            source,
            scope: Scope::MessageBody,
            policy: policy.clone(),
            message: Message::Body(b),
            delivered,
        })
        .collect()
}

fn attributes(policy: Value, source: &'static str, cases: Vec<(Message, bool)>) -> Vec<Case> {
    cases
        .into_iter()
        .map(|(message, delivered)| Case {
            source,
            scope: Scope::MessageAttributes,
            policy: policy.clone(),
            message,
            delivered,
        })
        .collect()
}

/// Point 1 of issue 24: `true`, `false` and `null` as policy values.
fn literals() -> Vec<Case> {
    let mut cases = attributes(
        // AWS accepted this policy in MessageAttributes scope and did not deliver a message without
        // attributes (messages-3).
        json!({"attr1": [null, {"anything-but": "whatever"}]}),
        "snapshot test_filter_policy (subscription-attributes-2, messages-3)",
        vec![
            (attrs(&[]), false),
            // inferred: null is the JSON null of a String.Array element, as in the body; a String
            // attribute always holds a string.
            (attrs(&[("attr1", "String.Array", "[null]")]), true),
            (attrs(&[("attr1", "String", "whatever")]), false),
            (attrs(&[("attr1", "String", "other")]), true),
        ],
    );
    cases.extend(body(
        json!({"flag": [true]}),
        "guide subscription-filter-policy-constraints.html: true, false and null are keywords \
         without quotation marks (so not the strings \"true\"...)",
        vec![
            (json!({"flag": true}), true),
            (json!({"flag": [false, true]}), true),
            (json!({"flag": false}), false),
            (json!({"flag": "true"}), false),
            (json!({"flag": 1}), false),
        ],
    ));
    cases.extend(body(
        json!({"coupon": [null]}),
        "guide subscription-filter-policy-constraints.html (null keyword); inferred: null is a value, \
         not an absent key",
        vec![
            (json!({"coupon": null}), true),
            (json!({"coupon": "null"}), false),
            (json!({"other": 1}), false),
        ],
    ));
    cases.extend(attributes(
        json!({"flag": [false]}),
        "guide subscription-filter-policy-constraints.html; inferred: String.Array elements are JSON",
        vec![
            (attrs(&[("flag", "String.Array", "[false]")]), true),
            (attrs(&[("flag", "String", "false")]), false),
            (attrs(&[("flag", "String.Array", "[\"false\"]")]), false),
        ],
    ));
    cases
}

/// Point 2: `{"exists": false}` and a message with no attributes.
fn exists_false() -> Vec<Case> {
    let mut cases = attributes(
        json!({"store": [{"exists": false}]}),
        "guide attribute-key-matching.html (Note: \"exists\": false only matches if at least one \
         attribute is present); snapshot test_exists_filter_policy (messages-3, messages-4)",
        vec![
            (attrs(&[]), false),
            (attrs(&[("def", "Number", "99")]), true),
            (
                attrs(&[("store", "Number", "99"), ("def", "Number", "99")]),
                false,
            ),
        ],
    );
    cases.extend(attributes(
        json!({"store": [{"exists": true}]}),
        "snapshot test_exists_filter_policy (messages-1, messages-2)",
        vec![
            (attrs(&[("store", "Number", "99"), ("def", "Number", "99")]), true),
            (attrs(&[("attr1", "Number", "111")]), false),
            // guide attribute-key-matching.html: "The key must have a non-null and non-empty value".
            (attrs(&[("store", "String.Array", "[]")]), false),
            (attrs(&[("store", "String.Array", "[null]")]), false),
        ],
    ));
    cases.extend(body(
        json!({"object": {"key": [{"prefix": "auto-"}, "hardcodedvalue"], "nested_key": [{"exists": false}]}, "test": [{"exists": false}]}),
        "snapshot test_filter_policy_on_message_body",
        vec![
            (json!({"object": {"key": "auto-test"}}), true),
            (json!({"object": {"key": "hardcodedvalue"}}), true),
            (json!({"object": {"key": "test-auto"}}), false),
            (json!({"object": {"key": "auto-test"}, "test": "just-exists"}), false),
            (json!({"object": {"key": "auto-test", "nested_key": "just-exists"}}), false),
            (json!({"object": {"test": "auto-test"}}), false),
            (json!({"test": "auto-test"}), false),
            (json!("Regular string message"), false),
        ],
    ));
    cases
}

/// Point 3: keys with dots in MessageBody scope.
fn dotted_keys() -> Vec<Case> {
    let source = "snapshot test_filter_policy_on_message_body_dot_attribute";
    let mut cases = body(
        json!({"object.nested": ["string.value"]}),
        source,
        vec![
            (json!({"object": {"nested": "string.value"}}), true),
            (json!({"object.nested": "string.value"}), true),
            (json!({"object": {"nested": "test-auto"}}), false),
        ],
    );
    cases.extend(body(
        json!({"object.nested.test": ["string.value"]}),
        source,
        vec![
            (json!({"object": {"nested": {"test": "string.value"}}}), true),
            (json!({"object.nested.test": "string.value"}), true),
            (json!({"object.nested": {"test": "string.value"}}), true),
            (json!({"object": {"nested.test": "string.value"}}), true),
            (json!({"object": {"nested": {"test": "string.notvalue"}}}), false),
        ],
    ));
    cases.extend(body(
        json!({"a": {"b": [1], "c": [2]}}),
        "inferred from the same snapshot: SNS compares flattened paths, so a nested policy key and \
         a dotted body key meet too",
        vec![
            (json!({"a.b": 1, "a": {"c": 2}}), true),
            (json!({"a.b": 1, "a.c": 2}), true),
            (json!({"a.b": 1}), false),
        ],
    ));
    cases.extend(attributes(
        json!({"a.b": ["x"]}),
        "guide subscription-filter-policy-constraints.html: no nesting in MessageAttributes scope, so \
         a dot is part of the attribute's name",
        vec![
            (attrs(&[("a.b", "String", "x")]), true),
            (attrs(&[("a", "String", "x")]), false),
        ],
    ));
    cases
}

/// Point 4: arrays of objects in MessageBody scope.
fn arrays_of_objects() -> Vec<Case> {
    let records = |name: &str, key: &str| json!({"Records": [{"eventSource": "aws:s3", "eventName": name, "s3": {"object": {"key": key, "size": 17}}}]});
    let mut cases = body(
        json!({"Records": {"s3": {"object": {"key": [{"prefix": "auto-"}]}}, "eventName": [{"prefix": "ObjectCreated:"}]}}),
        "snapshot test_filter_policy_on_message_body_array_of_object_attributes",
        vec![
            // A list of lists of objects, which AWS delivered ("it works in AWS").
            (
                json!({"Records": [
                    {"eventName": "ObjectCreated:Put", "s3": {"object": [[{"key": "auto-insurance-2314.xml"}]]}},
                    {"eventName": "ObjectRemoved:Delete", "s3": {"object": {"key": "home-insurance-2314.xml"}}}
                ]}),
                true,
            ),
            (records("ObjectRemoved:Delete", "auto-insurance-2314.xml"), false),
            (records("ObjectCreated:Put", "home-insurance-2314.xml"), false),
            (records("ObjectCreated:Put", "auto-insurance-2314.xml"), true),
        ],
    );
    cases.extend(body(
        json!({"items": {"sku": ["x"], "qty": [1]}}),
        "inferred: the keys of one nested policy hold within one element, as AWS's event-ruler \
         matches (\"array consistency\"); the snapshot above is consistent with it",
        vec![
            (
                json!({"items": [{"sku": "x", "qty": 1}, {"sku": "y", "qty": 2}]}),
                true,
            ),
            (
                json!({"items": [{"sku": "x", "qty": 2}, {"sku": "y", "qty": 1}]}),
                false,
            ),
        ],
    ));
    cases.extend(body(
        json!({"items": {"sku": ["x"]}}),
        "snapshot test_filter_policy_on_message_body_array_of_object_attributes (any element)",
        vec![
            (json!({"items": [{"sku": "x"}, {"sku": "y"}]}), true),
            (json!({"items": [{"sku": "y"}]}), false),
            // inferred: lists are transparent, so a list mixing values and objects holds both.
            (json!({"items": ["y", {"sku": "x"}]}), true),
        ],
    ));
    cases.extend(body(
        json!({"headers": {"route-to": ["queue1"]}}),
        "snapshot test_filter_policy_on_message_body_array_attributes",
        vec![
            (json!({"headers": {"route-to": ["queue3"]}}), false),
            (json!({"headers": {"route-to": ["queue1"]}}), true),
            (json!({"headers": {"route-to": ["queue2"]}}), false),
            (json!({"headers": {"route-to": ["queue1", "queue2"]}}), true),
        ],
    ));
    cases.extend(body(
        json!({"detail": {"eventVersion": [""]}}),
        "snapshot test_filter_policy_empty_array_payload",
        vec![(
            json!({"version": "0", "resources": [], "detail": {"eventVersion": "", "responseElements": null}}),
            true,
        )],
    ));
    cases
}

/// Further recorded deliveries that the engine already followed; kept so it keeps following them.
fn recorded_elsewhere() -> Vec<Case> {
    let mut cases = attributes(
        json!({"attr1": [{"numeric": [">", 0, "<=", 100]}]}),
        "snapshot test_filter_policy (messages-1, messages-2)",
        vec![
            (attrs(&[("attr1", "Number", "99")]), true),
            (attrs(&[("attr1", "Number", "111")]), false),
        ],
    );
    cases.extend(attributes(
        json!({"store": ["value1"]}),
        "snapshot test_exists_filter_policy_attributes_array",
        vec![
            (attrs(&[("store", "String", "value1")]), true),
            (
                attrs(&[("store", "String.Array", "[\"value1\", \"value2\"]")]),
                true,
            ),
            (
                attrs(&[("store", "String.Array", "[\"value2\", \"value3\"]")]),
                false,
            ),
        ],
    ));
    cases.extend(body(
        json!({"detail": {"$or": [{"sourceIPAddress": [{"cidr": "10.0.0.0/24"}]}, {"sourceIPAddressV6": [{"cidr": "2001:db8:1234:1a00::/64"}]}]}}),
        "snapshot test_filter_policy_ip_address_condition",
        vec![
            (json!({"id": "1", "detail": {"sourceIPAddress": "10.0.0.255"}}), true),
            (json!({"id": "2", "detail": {"sourceIPAddress": "10.0.0.256"}}), false),
            (json!({"id": "3", "detail": {"sourceIPAddressV6": "2001:0db8:1234:1a00:0000:0000:0000:0000"}}), true),
            (json!({"id": "4", "detail": {"sourceIPAddressV6": "2001:0db8:123f:1a01:0000:0000:0000:0000"}}), false),
        ],
    ));
    let alarm = "CloudWatch Alarm State Change";
    cases.extend(body(
        json!({
            "$or": [{"metricName": ["CPUUtilization", "ReadLatency"]}, {"namespace": ["AWS/EC2", "AWS/ES"]}],
            "detail": {"scope": ["Service"], "$or": [{"source": ["aws.cloudwatch"]}, {"type": [alarm]}]}
        }),
        "snapshot test_filter_policy_on_message_body_or_attribute",
        vec![
            (json!({"metricName": "CPUUtilization", "detail": {"scope": "aws.cloudwatch", "type": alarm}}), false),
            (json!({"metricName": "CPUUtilization", "detail": {"scope": "Service", "type": "CPUUtilization"}}), false),
            (json!({"metricName": "CPUUtilization", "detail": {"type": alarm}}), false),
            (json!({"metricName": "CPUUtilization", "detail": {"scope": "Service"}}), false),
            (json!({"metricName": "CPUUtilization", "scope": "Service"}), false),
            (json!({"metricName": "AWS/EC2", "detail": {"scope": "Service", "type": alarm}}), false),
            (json!({"namespace": "CPUUtilization", "detail": {"scope": "Service", "type": alarm}}), false),
            (json!({"metricName": "CPUUtilization", "detail": {"scope": "Service", "source": "aws.cloudwatch"}}), true),
            (json!({"metricName": "ReadLatency", "detail": {"scope": "Service", "source": "aws.cloudwatch"}}), true),
            (json!({"namespace": "AWS/EC2", "detail": {"scope": "Service", "source": "aws.cloudwatch"}}), true),
            (json!({"namespace": "AWS/ES", "detail": {"scope": "Service", "source": "aws.cloudwatch"}}), true),
            (json!({"metricName": "CPUUtilization", "detail": {"scope": "Service", "type": alarm}}), true),
        ],
    ));
    cases
}

fn all_cases() -> Vec<Case> {
    [
        literals(),
        exists_false(),
        dotted_keys(),
        arrays_of_objects(),
        recorded_elsewhere(),
    ]
    .into_iter()
    .flatten()
    .collect()
}

/// A message as the matcher reads it: the body, or attributes in the form SNS delivers them.
fn text(message: &Message) -> String {
    match message {
        Message::Body(b) => b.to_string(),
        Message::Attributes(map) => Value::Object(
            map.iter()
                .map(|(k, (t, v))| (k.clone(), json!({"Type": t, "Value": v})))
                .collect(),
        )
        .to_string(),
    }
}

#[test]
fn the_engine_delivers_what_aws_delivered() {
    let cases = all_cases();
    assert!(cases.len() > 60, "the table lost its cases");
    for (i, case) in cases.iter().enumerate() {
        let policy = Policy::parse(&case.policy, case.scope)
            .unwrap_or_else(|e| panic!("case {i} ({}): {} refused: {e}", case.source, case.policy));
        assert_eq!(
            policy.matches(&case.message),
            case.delivered,
            "case {i} ({}): {} with {:?}\n{}",
            case.source,
            case.policy,
            case.message,
            policy.explain(&case.message)
        );
        assert_eq!(policy.explain(&case.message).matched, case.delivered);
        let canonical = Policy::parse(&policy.canonical(), case.scope).expect("canonical form parses");
        assert_eq!(
            canonical.matches(&case.message),
            case.delivered,
            "case {i}: canonical form"
        );
        for engine in [Engine::Trie, Engine::Bitsets] {
            let matcher = Matcher::with_engine(case.scope, vec![policy.clone()], engine).unwrap();
            let got = matcher
                .matching(&text(&case.message), &mut matcher.scratch())
                .unwrap()
                .to_vec();
            assert_eq!(
                got.is_empty(),
                !case.delivered,
                "case {i} ({}): {engine:?}",
                case.source
            );
        }
    }
}

#[test]
fn literals_and_dotted_keys_have_one_canonical_form() {
    let s = Scope::MessageBody;
    let canonical = |v: Value| Policy::parse(&v, s).unwrap().canonical_json();
    assert_eq!(
        canonical(json!({"a.b": [1]})),
        canonical(json!({"a": {"b": [1]}}))
    );
    assert_eq!(
        canonical(json!({"a.b": [1], "a": {"c": [2]}})),
        canonical(json!({"a": {"b": [1], "c": [2]}}))
    );
    assert_eq!(
        canonical(json!({"f": [null, false, true, null]})),
        r#"{"f":[false,null,true]}"#
    );
    assert_ne!(canonical(json!({"f": [true]})), canonical(json!({"f": ["true"]})));
    // In attribute scope a dot is part of the name.
    let attributes = Policy::parse(&json!({"a.b": ["x"]}), Scope::MessageAttributes).unwrap();
    assert_eq!(attributes.canonical_json(), r#"{"a.b":["x"]}"#);
}

#[test]
fn explanations_name_the_recorded_rules() {
    let p = Policy::parse(&json!({"store": [{"exists": false}]}), Scope::MessageAttributes).unwrap();
    let e = p.explain(&attrs(&[]));
    assert!(!e.matched);
    assert!(e.keys[0].reason.contains("no attributes"), "{}", e.keys[0].reason);
    let p = Policy::parse(&json!({"items": {"sku": ["x"], "qty": [1]}}), Scope::MessageBody).unwrap();
    let e = p.explain(&Message::Body(
        json!({"items": [{"sku": "x", "qty": 2}, {"sku": "y", "qty": 1}]}),
    ));
    assert!(!e.matched);
    assert!(e.keys[0].reason.contains("2 objects"), "{}", e.keys[0].reason);
    let p = Policy::parse(&json!({"a.b": [true]}), Scope::MessageBody).unwrap();
    let e = p.explain(&Message::Body(json!({"a.b": true})));
    assert!(e.matched);
    assert_eq!(e.keys[0].path, "a.b");
    assert!(e.keys[0].reason.contains("true"), "{}", e.keys[0].reason);
}

/// Policies AWS refused, from the snapshots of test_validate_policy, test_validate_policy_string_operators,
/// test_validate_policy_numeric_operator, test_validate_policy_exists_operator,
/// test_validate_policy_nested_anything_but_operator, test_policy_complexity,
/// test_policy_complexity_with_or, test_sub_filter_policy_nested_property(_constraints).
fn refused_by_aws() -> Vec<(Scope, Value)> {
    let a = Scope::MessageAttributes;
    let b = Scope::MessageBody;
    let values = |n: usize| -> Vec<String> { (0..n).map(|i| format!("value{i}")).collect() };
    let mut policies = vec![
        (a, json!({"key": [["value"]]})),
        (a, json!({"key": [{"wrong-operator": true}]})),
        (a, json!({"key": [{"suffix": "value", "prefix": "value2"}]})),
        (a, json!({"key": []})),
        (a, json!({"key": {"suffix": "value"}})),
        (a, json!({"key": {"not-an-operator": "value"}})),
        (a, json!({"object": {"key": [{"prefix": "auto-"}]}})),
        (b, json!({"key_a": "value_one"})),
        (a, json!({"key": [{"exists": null}]})),
        (a, json!({"key": [{"exists": "no"}]})),
        (a, json!({"key": [{"anything-but": {"wrong-operator": null}}]})),
        (a, json!({"key": [{"anything-but": {"exists": false}}]})),
        (a, json!({"key": [{"anything-but": {"prefix": false}}]})),
        (a, json!({"key": values(151)})),
        (a, json!({"key1": values(100), "key2": values(51)})),
        (
            a,
            json!({"key1": ["v"], "key2": ["v"], "key3": ["v"], "key4": ["v"], "key5": ["v"], "key6": ["v"]}),
        ),
        (
            b,
            json!({"key_a": ["v"], "key_b": ["v"], "key_c": ["v"], "key_d": ["v"], "key_e": ["v"], "key_f": ["v"]}),
        ),
        (
            b,
            json!({"key_a": {"key_b": {"key_c": values(4)}}, "key_d": {"key_e": values(3)}, "key_f": values(3)}),
        ),
        (
            a,
            json!({"source": values(4), "$or": [{"metricName": values(6)}, {"metricType": values(4), "$or": [{"metricId": [1234, 4321, 5678, 9012]}, {"spaceId": [1, 2, 3, 4]}]}]}),
        ),
        (
            b,
            json!({"$or": [{"metricName": values(3)}, {"namespace": values(2)}], "detail": {"scope": values(2), "$or": [{"source": values(1)}, {"type": values(3)}]}}),
        ),
    ];
    for bad in [json!(100), Value::Null, json!([]), json!(["test", "test2"])] {
        policies.push((a, json!({"key": [{"suffix": bad}]})));
    }
    for cidr in [
        json!(["bad-filter"]),
        json!("bad-filter"),
        json!("bad-filter/64"),
        json!("bad-/64filter"),
        json!("xx.11.xx/8"),
        json!("xxxx:db8:1234:1a00::/64"),
    ] {
        policies.push((a, json!({"key": [{"cidr": cidr}]})));
    }
    for numeric in [
        json!([]),
        json!(["operator"]),
        json!([1, "<="]),
        json!(["=", "000"]),
        json!([">="]),
        json!(["<", 100, ">", 10]),
        json!([">=", 1, ">", 2]),
        json!([">", 3, "<", 1]),
        json!([">", 20, "<="]),
        json!([">", 20, 30]),
        json!([">", 20, "test"]),
        json!([">", "20", "<", "30"]),
        json!([">", 20, "<", "30"]),
        json!([">", 20, "<", 30, "<", 50]),
    ] {
        policies.push((a, json!({"key": [{"numeric": numeric}]})));
    }
    policies
}

/// Policies AWS accepted in the same tests (and in the delivery tests above).
fn accepted_by_aws() -> Vec<(Scope, Value)> {
    let a = Scope::MessageAttributes;
    let b = Scope::MessageBody;
    let values = |n: usize| -> Vec<String> { (0..n).map(|i| format!("value{i}")).collect() };
    vec![
        (a, json!({"key": [{"anything-but": {"prefix": "test-"}}]})),
        (a, json!({"key": [{"anything-but": ["test", "test2"]}]})),
        (a, json!({"key": [{"anything-but": "test"}]})),
        (a, json!({"attr1": [null, {"anything-but": "whatever"}]})),
        (b, json!({"object": {"key": [{"prefix": "auto-"}]}})),
        // 18 + 48 + 84 = 150 combinations: the limit itself.
        (
            a,
            json!({"source": values(3), "$or": [{"metricName": values(6)}, {"metricType": values(4), "$or": [{"metricId": [1234, 4321, 5678, 9012]}, {"spaceId": [1, 2, 3, 4, 5, 6, 7]}]}]}),
        ),
        (
            b,
            json!({"detail": {"payload.nested.another-level.deep": {"inside-list": [{"prefix": "q-test"}]}}}),
        ),
    ]
}

#[test]
fn the_engine_refuses_what_aws_refused_and_accepts_what_it_accepted() {
    for (scope, policy) in refused_by_aws() {
        assert!(
            Policy::parse(&policy, scope).is_err(),
            "AWS refused {policy} in {scope} scope"
        );
    }
    for (scope, policy) in accepted_by_aws() {
        if let Err(e) = Policy::parse(&policy, scope) {
            panic!("AWS accepted {policy} in {scope} scope: {e}");
        }
    }
}
