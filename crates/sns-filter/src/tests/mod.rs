//! Cases from AWS's own documentation of SNS filter policies, grouped by the page they come from
//! (docs.aws.amazon.com/sns/latest/dg/<page>), plus canonical-form cases.

use serde_json::{Value, json};

use super::{Message, Policy, Scope};

pub(super) fn attrs(pairs: &[(&str, &str, &str)]) -> Message {
    Message::Attributes(
        pairs
            .iter()
            .map(|(k, t, v)| ((*k).to_owned(), ((*t).to_owned(), (*v).to_owned())))
            .collect(),
    )
}

pub(super) fn check(policy: Value, scope: Scope, cases: &[(Message, bool)]) {
    let p = Policy::parse(&policy, scope).unwrap_or_else(|e| panic!("{policy} should be valid: {e}"));
    for (i, (message, expected)) in cases.iter().enumerate() {
        assert_eq!(
            p.matches(message),
            *expected,
            "case {i} of {policy}: {message:?}\n{}",
            p.explain(message)
        );
        // Canonicalisation preserves meaning.
        let again = Policy::parse(&p.canonical(), scope).expect("canonical form is valid");
        assert_eq!(
            again.matches(message),
            *expected,
            "canonical form of {policy} changed case {i}"
        );
    }
}

pub(super) fn invalid(policy: Value, scope: Scope, path: &str, rule_fragment: &str) {
    let e = Policy::parse(&policy, scope).expect_err(&format!("{policy} should be invalid"));
    assert_eq!(e.path, path, "{policy}: {e}");
    assert!(
        e.rule.contains(rule_fragment),
        "{policy}: {e} lacks {rule_fragment:?}"
    );
}

// --- string-value-matching.html ---------------------------------------------------------------------------

#[test]
fn exact_string_matching() {
    check(
        json!({"customer_interests": ["rugby", "tennis"]}),
        Scope::MessageAttributes,
        &[
            (attrs(&[("customer_interests", "String", "rugby")]), true),
            (attrs(&[("customer_interests", "String", "Rugby")]), false),
            (
                attrs(&[("customer_interests", "String.Array", "[\"soccer\", \"tennis\"]")]),
                true,
            ),
            (
                attrs(&[("customer_interests", "String.Array", "[\"soccer\"]")]),
                false,
            ),
            (attrs(&[]), false),
        ],
    );
}

#[test]
fn anything_but_values_and_prefix() {
    check(
        json!({"customer_interests": [{"anything-but": ["rugby", "tennis"]}]}),
        Scope::MessageAttributes,
        &[
            (attrs(&[("customer_interests", "String", "baseball")]), true),
            (attrs(&[("customer_interests", "String", "rugby")]), false),
            // Absent keys never satisfy anything-but.
            (attrs(&[]), false),
        ],
    );
    check(
        json!({"event": [{"anything-but": {"prefix": "order-"}}]}),
        Scope::MessageAttributes,
        &[
            (attrs(&[("event", "String", "data-entry")]), true),
            (attrs(&[("event", "String", "order-cancelled")]), false),
        ],
    );
    check(
        json!({"event": [{"anything-but": "order_cancelled"}]}),
        Scope::MessageAttributes,
        &[
            (attrs(&[("event", "String", "order_placed")]), true),
            (attrs(&[("event", "String", "order_cancelled")]), false),
        ],
    );
}

#[test]
fn prefix_suffix_and_equals_ignore_case() {
    check(
        json!({"customer_interests": [{"prefix": "bas"}]}),
        Scope::MessageAttributes,
        &[
            (attrs(&[("customer_interests", "String", "baseball")]), true),
            (attrs(&[("customer_interests", "String", "rugby")]), false),
        ],
    );
    check(
        json!({"customer_interests": [{"suffix": "ball"}]}),
        Scope::MessageAttributes,
        &[
            (attrs(&[("customer_interests", "String", "baseball")]), true),
            (attrs(&[("customer_interests", "String", "tennis")]), false),
        ],
    );
    check(
        json!({"customer_interests": [{"equals-ignore-case": "tennis"}]}),
        Scope::MessageAttributes,
        &[
            (attrs(&[("customer_interests", "String", "TeNnIs")]), true),
            (attrs(&[("customer_interests", "String", "rugby")]), false),
        ],
    );
}

#[test]
fn wildcard_matching() {
    check(
        json!({"file": [{"wildcard": "*.png"}]}),
        Scope::MessageAttributes,
        &[
            (attrs(&[("file", "String", "cat.png")]), true),
            (attrs(&[("file", "String", ".png")]), true),
            (attrs(&[("file", "String", "cat.jpg")]), false),
        ],
    );
    check(
        json!({"path": [{"wildcard": "dir/*/file*.txt"}]}),
        Scope::MessageAttributes,
        &[
            (attrs(&[("path", "String", "dir/a/b/file1.txt")]), true),
            (attrs(&[("path", "String", "dir/file1.txt")]), false),
        ],
    );
    check(
        json!({"s": [{"wildcard": "a\\*b"}]}),
        Scope::MessageAttributes,
        &[
            (attrs(&[("s", "String", "a*b")]), true),
            (attrs(&[("s", "String", "axb")]), false),
        ],
    );
    check(
        json!({"file": [{"anything-but": {"wildcard": "*.tmp"}}]}),
        Scope::MessageAttributes,
        &[
            (attrs(&[("file", "String", "a.txt")]), true),
            (attrs(&[("file", "String", "a.tmp")]), false),
        ],
    );
}

#[test]
fn ip_address_matching() {
    check(
        json!({"source_ip": [{"cidr": "10.0.0.0/24"}]}),
        Scope::MessageAttributes,
        &[
            (attrs(&[("source_ip", "String", "10.0.0.255")]), true),
            (attrs(&[("source_ip", "String", "10.0.1.0")]), false),
            (attrs(&[("source_ip", "String", "not an ip")]), false),
        ],
    );
    check(
        json!({"source_ip": [{"cidr": "2001:db8::/32"}]}),
        Scope::MessageAttributes,
        &[
            (attrs(&[("source_ip", "String", "2001:db8:1::7")]), true),
            (attrs(&[("source_ip", "String", "2001:db9::1")]), false),
            (attrs(&[("source_ip", "String", "10.0.0.1")]), false),
        ],
    );
}

// --- numeric-value-matching.html --------------------------------------------------------------------------

#[test]
fn numeric_exact_range_and_anything_but() {
    check(
        json!({"price_usd": [{"numeric": ["=", 301.5]}]}),
        Scope::MessageAttributes,
        &[
            (attrs(&[("price_usd", "Number", "301.5")]), true),
            (attrs(&[("price_usd", "Number", "301.50")]), true),
            (attrs(&[("price_usd", "Number", "300")]), false),
            // A String attribute never matches a numeric condition.
            (attrs(&[("price_usd", "String", "301.5")]), false),
        ],
    );
    check(
        json!({"price_usd": [{"numeric": [">", 0, "<=", 150]}]}),
        Scope::MessageAttributes,
        &[
            (attrs(&[("price_usd", "Number", "150")]), true),
            (attrs(&[("price_usd", "Number", "0")]), false),
            (attrs(&[("price_usd", "Number", "150.00001")]), false),
        ],
    );
    check(
        json!({"price_usd": [{"anything-but": [100, 500]}]}),
        Scope::MessageAttributes,
        &[
            (attrs(&[("price_usd", "Number", "200")]), true),
            (attrs(&[("price_usd", "Number", "100.0")]), false),
        ],
    );
    check(
        json!({"price_usd": [301.5]}),
        Scope::MessageAttributes,
        &[(attrs(&[("price_usd", "Number", "301.50")]), true)],
    );
}

// --- attribute-key-matching.html --------------------------------------------------------------------------

#[test]
fn exists_true_and_false() {
    check(
        json!({"store": [{"exists": true}]}),
        Scope::MessageAttributes,
        &[
            (attrs(&[("store", "String", "example_corp")]), true),
            (attrs(&[("event", "String", "x")]), false),
        ],
    );
    check(
        json!({"store": [{"exists": false}]}),
        Scope::MessageAttributes,
        &[
            (attrs(&[("event", "String", "x")]), true),
            (attrs(&[("store", "String", "example_corp")]), false),
        ],
    );
    // SNS does not filter on Binary attributes: for a filter they are absent.
    check(
        json!({"blob": [{"exists": false}]}),
        Scope::MessageAttributes,
        &[(attrs(&[("blob", "Binary", "AAE=")]), true)],
    );
}

// --- and-or-logic.html -------------------------------------------------------------------------------------

#[test]
fn and_across_keys_or_across_values_and_or_operator() {
    check(
        json!({"customer_interests": ["rugby", "football"], "price_usd": [{"numeric": [">", 100]}]}),
        Scope::MessageAttributes,
        &[
            (
                attrs(&[
                    ("customer_interests", "String", "football"),
                    ("price_usd", "Number", "150"),
                ]),
                true,
            ),
            (
                attrs(&[
                    ("customer_interests", "String", "football"),
                    ("price_usd", "Number", "50"),
                ]),
                false,
            ),
            (
                attrs(&[
                    ("customer_interests", "String", "chess"),
                    ("price_usd", "Number", "150"),
                ]),
                false,
            ),
        ],
    );
    let or = json!({"source": ["aws.cloudwatch"], "$or": [{"metricName": ["CPUUtilization"]}, {"namespace": ["AWS/EC2"]}]});
    check(
        or,
        Scope::MessageAttributes,
        &[
            (
                attrs(&[
                    ("source", "String", "aws.cloudwatch"),
                    ("namespace", "String", "AWS/EC2"),
                ]),
                true,
            ),
            (
                attrs(&[
                    ("source", "String", "aws.cloudwatch"),
                    ("metricName", "String", "CPUUtilization"),
                ]),
                true,
            ),
            (
                attrs(&[
                    ("source", "String", "aws.cloudwatch"),
                    ("metricName", "String", "Memory"),
                ]),
                false,
            ),
            (attrs(&[("namespace", "String", "AWS/EC2")]), false),
        ],
    );
}

// --- example-filter-policies.html and message body filtering -----------------------------------------------

#[test]
fn message_body_nested_keys_arrays_and_nulls() {
    // Five leaf keys: SNS counts nested leaves against the limit of 5.
    let policy = json!({
        "event": [{"anything-but": "order_cancelled"}],
        "customer": {"interests": ["rugby", "football"], "tier": [{"exists": false}]},
        "price_usd": [{"numeric": [">=", 100]}],
        "coupon": [null]
    });
    let body = |v: Value| Message::Body(v);
    check(
        policy,
        Scope::MessageBody,
        &[
            (
                body(
                    json!({"store": "example_corp", "event": "order_placed", "customer": {"interests": ["chess", "rugby"]}, "price_usd": 210.75, "coupon": null}),
                ),
                true,
            ),
            (
                body(
                    json!({"store": "example_corp", "event": "order_cancelled", "customer": {"interests": ["rugby"]}, "price_usd": 210.75, "coupon": null}),
                ),
                false,
            ),
            (
                body(
                    json!({"store": "example_corp", "event": "order_placed", "customer": {"interests": ["rugby"], "tier": "gold"}, "price_usd": 210.75, "coupon": null}),
                ),
                false,
            ),
            (
                body(
                    json!({"store": "example_corp", "event": "order_placed", "customer": {"interests": ["rugby"]}, "price_usd": 210.75}),
                ),
                false,
            ),
            (body(json!("not an object")), false),
        ],
    );
}

mod aws_recorded;
mod rules;
