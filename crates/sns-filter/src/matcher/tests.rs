//! The compiled matcher, with either engine, must agree with `Policy::matches` on every policy and message.

use proptest::prelude::*;
use serde_json::{Value, json};

use super::super::proptests::{any_json, condition, message, policy};
use super::super::{Message, Policy, Scope};
use super::{Engine, Matcher};

/// The policies compiled by each engine.
fn engines(scope: Scope, policies: &[Policy]) -> Vec<Matcher> {
    [Engine::Trie, Engine::Bitsets]
        .into_iter()
        .map(|engine| {
            let matcher = Matcher::with_engine(scope, policies.to_vec(), engine).expect("compiles");
            assert_eq!(matcher.engine(), engine, "within the bitsets' limits");
            matcher
        })
        .collect()
}

/// What the one-policy evaluator says, policy by policy.
fn expected(policies: &[Policy], message: &Message) -> Vec<usize> {
    (0..policies.len())
        .filter(|&i| policies[i].matches(message))
        .collect()
}

fn attributes_text(message: &Message) -> String {
    let Message::Attributes(attrs) = message else {
        unreachable!()
    };
    let map: serde_json::Map<String, Value> = attrs
        .iter()
        .map(|(k, (t, v))| (k.clone(), json!({"Type": t, "Value": v})))
        .collect();
    Value::Object(map).to_string()
}

fn check_body(policies: &[Value], bodies: &[Value]) {
    let parsed: Vec<Policy> = policies
        .iter()
        .map(|p| Policy::parse(p, Scope::MessageBody).expect("valid"))
        .collect();
    for matcher in engines(Scope::MessageBody, &parsed) {
        let mut scratch = matcher.scratch();
        for body in bodies {
            let got = matcher
                .matching(&body.to_string(), &mut scratch)
                .expect("readable")
                .to_vec();
            assert_eq!(
                got,
                expected(&parsed, &Message::Body(body.clone())),
                "{:?}: body {body}",
                matcher.engine()
            );
        }
    }
}

/// The value indexes (ranges, affixes, case-insensitive equality) at their edges: every comparison form on
/// the bounds themselves, just beside them, signed zeros, lists, and case folding beyond ASCII.
#[test]
fn indexed_conditions_at_their_boundaries() {
    let mut policies = Vec::new();
    for (lo, hi) in [(-1.0, 0.5), (0.0, 3.0), (0.5, 0.5), (3.0, 0.0)] {
        for lower in [">", ">="] {
            for upper in ["<", "<="] {
                policies.push(json!({"n": [{"numeric": [lower, lo, upper, hi]}]}));
            }
            policies.push(json!({"n": [{"numeric": [lower, lo]}]}));
        }
        policies.push(json!({"n": [{"numeric": ["<", hi]}]}));
        policies.push(json!({"n": [{"numeric": ["<=", hi]}]}));
        policies.push(json!({"n": [{"numeric": ["=", lo]}, hi]}));
    }
    for word in ["", "a", "ab", "é", "K", "kelvin"] {
        policies.push(json!({"s": [{"prefix": word}]}));
        policies.push(json!({"s": [{"suffix": word}]}));
        policies.push(json!({"s": [{"equals-ignore-case": word}, {"prefix": "x"}]}));
    }
    // Empty and inverted ranges are refused by the parser; the rest must all compile.
    let before = policies.len();
    policies.retain(|p| Policy::parse(p, Scope::MessageBody).is_ok());
    assert!(policies.len() > before / 2, "most of the policies are valid");
    let mut bodies: Vec<Value> = [
        -2.0, -1.0, -0.5, -0.0, 0.0, 0.25, 0.5, 0.75, 3.0, 3.5, 1e300, -1e300,
    ]
    .iter()
    .map(|n| json!({"n": n}))
    .collect();
    bodies.push(json!({"n": [-2.0, 0.5]}));
    bodies.push(json!({"n": "0.5"}));
    for s in [
        "", "a", "ab", "abc", "bab", "é", "aé", "\u{212A}", "KELVIN", "Kelvin", "xK",
    ] {
        bodies.push(json!({"s": s}));
    }
    bodies.push(json!({"s": ["zz", "ab"]}));
    check_body(&policies, &bodies);
}

#[test]
fn nested_paths_through_objects_lists_and_scalars() {
    let policies = [
        json!({"order": {"tier": ["gold"]}}),
        json!({"order": {"tier": [{"exists": false}]}}),
        json!({"order": {"tier": ["gold"], "total": [{"numeric": [">", 10]}]}}),
        json!({"order": [{"exists": true}]}),
        json!({"order": {"customer": {"id": [{"prefix": "c-"}]}}}),
    ];
    let bodies = [
        json!({"order": {"tier": "gold", "total": 20}}),
        json!({"order": {"tier": "silver", "total": 20}}),
        json!({"order": {"total": 5}}),
        json!({}),
        json!({"order": "gold"}),
        json!({"order": null}),
        json!({"order": []}),
        json!({"order": [{"tier": "gold", "total": 20}]}),
        // Several objects: a nested policy must hold within one of them.
        json!({"order": [{"tier": "gold", "total": 5}, {"tier": "silver", "total": 20}]}),
        json!({"order": [{"tier": "gold", "total": 5}, {"tier": "gold", "total": 20}]}),
        json!({"order": [{"tier": "silver"}, {"total": 1}]}),
        // A mixed list holds values and objects; lists within lists are read through.
        json!({"order": [{"tier": "gold"}, "gold"]}),
        json!({"order": ["gold", {"tier": "gold", "total": 20}]}),
        json!({"order": [[{"tier": "gold", "total": 20}]]}),
        json!({"order": [[{"tier": "gold"}], {"total": 20}]}),
        json!({"order": [null]}),
        json!({"order": [[]]}),
        // Keys with dots name nested paths.
        json!({"order.tier": "gold", "order": {"total": 20}}),
        json!({"order.tier": "gold", "order.total": 20}),
        json!({"order": {"customer.id": "c-1"}}),
        json!({"order.customer": [{"id": "c-1"}]}),
        json!({"order": {"customer": [{"id": "c-1"}, {"id": "d-2"}]}}),
        json!({"order": {"customer": {"id": ["x", "c-9"]}}}),
        // A repeated key: the last one counts.
        serde_json::from_str(r#"{"order": {"tier": "gold"}, "order": {"tier": "silver"}}"#).unwrap(),
        json!([1, 2]),
        json!("text"),
    ];
    check_body(&policies, &bodies);
}

#[test]
fn a_repeated_key_in_the_text_is_read_as_the_last_one() {
    let policies = [
        json!({"order": {"tier": ["gold"]}}),
        json!({"order": {"tier": ["silver"]}}),
    ];
    let parsed: Vec<Policy> = policies
        .iter()
        .map(|p| Policy::parse(p, Scope::MessageBody).unwrap())
        .collect();
    for matcher in engines(Scope::MessageBody, &parsed) {
        let mut scratch = matcher.scratch();
        let text = r#"{"order": {"tier": "gold", "x": 1}, "order": {"y": 2, "tier": "silver"}}"#;
        assert_eq!(matcher.matching(text, &mut scratch).unwrap(), &[1]);
        let text = r#"{"order": {"tier": "gold"}, "order": 7}"#;
        assert_eq!(matcher.matching(text, &mut scratch).unwrap(), &[] as &[usize]);
    }
}

/// A scratch kept across a change of policies (a topic that grew, so `Auto` switched engines) is made anew
/// instead of dropping the policies it has no room for.
#[test]
fn a_scratch_made_for_another_matcher_still_gives_every_match() {
    let policy =
        |i: usize| Policy::parse(&json!({"n": [{"numeric": [">=", i]}]}), Scope::MessageAttributes).unwrap();
    let small: Vec<Policy> = (0..3).map(policy).collect();
    let large: Vec<Policy> = (0..100).map(policy).collect();
    let text = r#"{"n": {"Type": "Number", "Value": "1000"}}"#;
    let all: Vec<usize> = (0..100).collect();
    for (first, second) in [
        (Engine::Trie, Engine::Bitsets),
        (Engine::Bitsets, Engine::Trie),
        (Engine::Bitsets, Engine::Bitsets),
    ] {
        let before = Matcher::with_engine(Scope::MessageAttributes, small.clone(), first).unwrap();
        let after = Matcher::with_engine(Scope::MessageAttributes, large.clone(), second).unwrap();
        let mut scratch = before.scratch();
        assert_eq!(before.matching(text, &mut scratch).unwrap(), &[0, 1, 2]);
        assert_eq!(
            after.matching(text, &mut scratch).unwrap(),
            all.as_slice(),
            "{first:?} then {second:?}"
        );
    }
}

#[test]
fn bad_messages_are_errors_not_panics() {
    let p = Policy::parse(&json!({"a": ["x"]}), Scope::MessageAttributes).unwrap();
    for matcher in engines(Scope::MessageAttributes, std::slice::from_ref(&p)) {
        let mut scratch = matcher.scratch();
        for text in [
            "{",
            "[1]",
            r#"{"a": 1}"#,
            r#"{"a": {"Type": "String"}}"#,
            r#"{"b": {"Value": "x"}}"#,
        ] {
            let one = Message::from_attributes_json(text);
            let many = matcher.matching(text, &mut scratch);
            assert_eq!(one.is_err(), many.is_err(), "{text}");
        }
    }
    let body = Matcher::new(Scope::MessageBody, vec![]).unwrap();
    assert!(body.matching("{\"a\": ", &mut body.scratch()).is_err());
    assert!(body.matching("{} x", &mut body.scratch()).is_err());
    assert!(
        Matcher::new(Scope::MessageBody, vec![p]).is_err(),
        "scopes must agree"
    );
}

#[test]
fn sqs_attribute_form_and_binary_attributes() {
    let policies: Vec<Policy> = [json!({"a": ["x"]}), json!({"b": [{"exists": false}]})]
        .iter()
        .map(|p| Policy::parse(p, Scope::MessageAttributes).unwrap())
        .collect();
    let text =
        r#"{"a": {"DataType": "String", "StringValue": "x"}, "b": {"Type": "Binary", "Value": "AAE="}}"#;
    let message = Message::from_attributes_json(text).unwrap();
    for matcher in engines(Scope::MessageAttributes, &policies) {
        let mut scratch = matcher.scratch();
        assert_eq!(
            matcher.matching(text, &mut scratch).unwrap(),
            expected(&policies, &message)
        );
        assert_eq!(matcher.matching(text, &mut scratch).unwrap(), &[0, 1]);
    }
}

const BODY_KEYS: &[&str] = &["event", "region", "total", "tier"];

fn leaf() -> impl Strategy<Value = Value> {
    prop::collection::vec(condition(), 1..3).prop_map(Value::from)
}

fn body_policy() -> impl Strategy<Value = Value> {
    let nested = prop::collection::btree_map(prop::sample::select(BODY_KEYS), leaf(), 1..3)
        .prop_map(|m| Value::Object(m.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()));
    let entry = prop_oneof![3 => leaf(), 1 => nested];
    prop::collection::btree_map(
        prop::sample::select(&["event", "order", "items", "total", "order.tier", "items.event"][..]),
        entry,
        1..4,
    )
    .prop_map(|m| Value::Object(m.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()))
}

fn body() -> impl Strategy<Value = Value> {
    let scalar = prop_oneof![
        prop::sample::select(super::super::proptests::WORDS).prop_map(Value::from),
        (-20_i32..20).prop_map(|n| Value::from(f64::from(n) / 2.0)),
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
    ];
    let object = prop::collection::btree_map(prop::sample::select(BODY_KEYS), scalar.clone(), 0..4)
        .prop_map(|m| Value::Object(m.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()));
    let element = prop_oneof![3 => object.clone(), 1 => scalar.clone()];
    let value = prop_oneof![
        scalar.clone(),
        object.clone(),
        prop::collection::vec(object.clone(), 0..3).prop_map(Value::from),
        prop::collection::vec(scalar.clone(), 0..3).prop_map(Value::from),
        // Mixed lists and lists of lists.
        prop::collection::vec(element.clone(), 0..3).prop_map(Value::from),
        prop::collection::vec(prop::collection::vec(element, 0..2), 0..2).prop_map(Value::from),
    ];
    // Keys with dots name nested paths (SNS reads "order.tier" as tier inside order).
    prop::collection::btree_map(
        prop::sample::select(&["event", "order", "items", "total", "order.tier", "items.total"][..]),
        value,
        0..4,
    )
    .prop_map(|m| Value::Object(m.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()))
}

proptest! {
    #[test]
    fn agrees_with_each_policy_on_attributes(
        raw in prop::collection::vec(policy(), 1..12),
        messages in prop::collection::vec(message(), 1..8),
    ) {
        let policies: Vec<Policy> = raw.iter().filter_map(|p| Policy::parse(p, Scope::MessageAttributes).ok()).collect();
        for matcher in engines(Scope::MessageAttributes, &policies) {
            let mut scratch = matcher.scratch();
            for m in &messages {
                let got = matcher.matching(&attributes_text(m), &mut scratch).unwrap().to_vec();
                prop_assert_eq!(got, expected(&policies, m), "{:?}: message {:?}", matcher.engine(), m);
            }
        }
    }

    #[test]
    fn agrees_with_each_policy_on_bodies(
        raw in prop::collection::vec(body_policy(), 1..12),
        bodies in prop::collection::vec(body(), 1..8),
    ) {
        let policies: Vec<Policy> = raw.iter().filter_map(|p| Policy::parse(p, Scope::MessageBody).ok()).collect();
        for matcher in engines(Scope::MessageBody, &policies) {
            let mut scratch = matcher.scratch();
            for b in &bodies {
                let got = matcher.matching(&b.to_string(), &mut scratch).unwrap().to_vec();
                prop_assert_eq!(got, expected(&policies, &Message::Body(b.clone())), "{:?}: body {}", matcher.engine(), b);
            }
        }
    }

    #[test]
    fn reading_arbitrary_bodies_never_panics(raw in prop::collection::vec(body_policy(), 1..4), b in any_json()) {
        let policies: Vec<Policy> = raw.iter().filter_map(|p| Policy::parse(p, Scope::MessageBody).ok()).collect();
        for matcher in engines(Scope::MessageBody, &policies) {
            let got = matcher.matching(&b.to_string(), &mut matcher.scratch()).unwrap().to_vec();
            prop_assert_eq!(got, expected(&policies, &Message::Body(b.clone())), "{:?}", matcher.engine());
        }
    }
}
