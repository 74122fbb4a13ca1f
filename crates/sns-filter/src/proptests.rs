//! Property tests: parsing and evaluation never panic, and canonicalisation preserves meaning.

use proptest::prelude::*;
use serde_json::{Value, json};

use super::{Message, Policy, Scope};

pub(crate) const KEYS: &[&str] = &["event", "region", "total", "tier"];
pub(crate) const WORDS: &[&str] = &["OrderPlaced", "order", "eu-west-1", "gold", "10.0.0.7", ""];

pub(crate) fn word() -> impl Strategy<Value = String> {
    prop::sample::select(WORDS).prop_map(str::to_owned)
}

pub(crate) fn number() -> impl Strategy<Value = f64> {
    (-1000_i32..1000).prop_map(|n| f64::from(n) / 4.0)
}

pub(crate) fn condition() -> impl Strategy<Value = Value> {
    prop_oneof![
        word().prop_map(Value::from),
        number().prop_map(Value::from),
        word().prop_map(|w| json!({"prefix": w})),
        word().prop_map(|w| json!({"suffix": w})),
        word().prop_map(|w| json!({"equals-ignore-case": w})),
        word().prop_map(|w| json!({"wildcard": format!("*{w}*")})),
        prop::collection::vec(word(), 1..3).prop_map(|w| json!({"anything-but": w})),
        prop::collection::vec(number(), 1..3).prop_map(|n| json!({"anything-but": n})),
        word().prop_map(|w| json!({"anything-but": {"prefix": w}})),
        word().prop_map(|w| json!({"anything-but": {"suffix": w}})),
        (word(), number()).prop_map(|(w, n)| json!({"anything-but": [w, n]})),
        (number(), 1.0..100.0_f64)
            .prop_map(|(lo, span)| json!({"numeric": [">=", lo, "<", lo + span.round()]})),
        number().prop_map(|n| json!({"numeric": ["=", n]})),
        any::<bool>().prop_map(|b| json!({"exists": b})),
        Just(json!({"cidr": "10.0.0.0/24"})),
        any::<bool>().prop_map(Value::from),
        Just(Value::Null),
    ]
}

pub(crate) fn policy() -> impl Strategy<Value = Value> {
    let keys = prop::collection::btree_map(
        prop::sample::select(KEYS),
        prop::collection::vec(condition(), 1..4),
        1..4,
    );
    (
        keys,
        prop::option::of(prop::collection::vec(
            prop::collection::btree_map(
                prop::sample::select(KEYS),
                prop::collection::vec(condition(), 1..3),
                1..2,
            ),
            2..3,
        )),
    )
        .prop_map(|(keys, or)| {
            let mut map: serde_json::Map<String, Value> = keys
                .into_iter()
                .map(|(k, v)| (k.to_owned(), Value::from(v)))
                .collect();
            if let Some(alternatives) = or {
                let alts: Vec<Value> = alternatives
                    .into_iter()
                    .map(|a| {
                        Value::Object(
                            a.into_iter()
                                .map(|(k, v)| (k.to_owned(), Value::from(v)))
                                .collect(),
                        )
                    })
                    .collect();
                map.insert("$or".into(), Value::from(alts));
            }
            Value::Object(map)
        })
}

pub(crate) fn message() -> impl Strategy<Value = Message> {
    let attr = prop_oneof![
        word().prop_map(|w| ("String".to_owned(), w)),
        number().prop_map(|n| ("Number".to_owned(), n.to_string())),
        prop::collection::vec(word(), 0..3).prop_map(|w| ("String.Array".to_owned(), json!(w).to_string())),
        prop::sample::select(&["[true]", "[false, \"gold\"]", "[null]", "[1, null]"][..])
            .prop_map(|v| ("String.Array".to_owned(), v.to_owned())),
        Just(("Binary".to_owned(), "AAE=".to_owned())),
    ];
    prop::collection::btree_map(prop::sample::select(KEYS).prop_map(str::to_owned), attr, 0..4)
        .prop_map(Message::Attributes)
}

pub(crate) fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        "[a-z$-]{0,6}".prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 40, 5, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::from),
            prop::collection::btree_map("[a-z$.-]{1,6}", inner, 0..5)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #[test]
    fn parsing_arbitrary_json_never_panics(value in any_json(), body in any::<bool>()) {
        let scope = if body { Scope::MessageBody } else { Scope::MessageAttributes };
        let _ = Policy::parse(&value, scope);
    }

    #[test]
    fn evaluating_arbitrary_bodies_never_panics(p in policy(), body in any_json()) {
        if let Ok(p) = Policy::parse(&p, Scope::MessageBody) {
            let message = Message::Body(body);
            let _ = p.explain(&message);
        }
    }

    #[test]
    fn canonicalisation_preserves_meaning(p in policy(), messages in prop::collection::vec(message(), 1..8)) {
        if let Ok(parsed) = Policy::parse(&p, Scope::MessageAttributes) {
            let canonical = Policy::parse(&parsed.canonical(), Scope::MessageAttributes).expect("canonical form parses");
            prop_assert_eq!(canonical.canonical_json(), parsed.canonical_json(), "canonical form is a fixed point");
            for m in &messages {
                prop_assert_eq!(parsed.matches(m), canonical.matches(m));
                prop_assert_eq!(parsed.explain(m).matched, parsed.matches(m));
            }
        }
    }

    #[test]
    fn value_order_and_duplicates_do_not_change_the_canonical_form(p in policy()) {
        if let Ok(parsed) = Policy::parse(&p, Scope::MessageAttributes) {
            let mut reversed = p.clone();
            for (_, v) in reversed.as_object_mut().unwrap().iter_mut() {
                if let Value::Array(items) = v {
                    items.reverse();
                }
            }
            let reparsed = Policy::parse(&reversed, Scope::MessageAttributes).expect("order does not affect validity");
            prop_assert_eq!(reparsed.canonical_json(), parsed.canonical_json());
            // A duplicated value counts against SNS's combination limit, so it may make the policy invalid;
            // when it does not, the meaning is unchanged.
            let mut duplicated = p.clone();
            for (_, v) in duplicated.as_object_mut().unwrap().iter_mut() {
                if let Value::Array(items) = v {
                    items.push(items[0].clone());
                }
            }
            if let Ok(reparsed) = Policy::parse(&duplicated, Scope::MessageAttributes) {
                prop_assert_eq!(reparsed.canonical_json(), parsed.canonical_json());
            }
        }
    }
}
