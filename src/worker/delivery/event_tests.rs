//! Tests of the message → CloudEvent mapping and of the verdicts on answers.

use super::*;

const SOURCE: &str = "/apis/tributary.dev/v1alpha1/namespaces/shop/queues/orders";
const PARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

fn message(body: &str, attributes: &[(&str, &str)]) -> Message {
    Message {
        id: "m-1".into(),
        body: body.into(),
        attributes: attributes
            .iter()
            .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
            .collect(),
        receive_count: 1,
        ..Message::default()
    }
}

fn mapping() -> Mapping<'static> {
    Mapping {
        source: SOURCE,
        type_attribute: "event",
    }
}

#[test]
fn every_attribute_extension_and_the_trace_context_become_headers() {
    let mut message = message(
        "{\"orderId\":\"o-1\"}",
        &[
            ("event", "OrderPlaced"),
            ("traceparent", PARENT),
            ("tracestate", "vendor=1"),
            ("Region", "eu west"),
            ("order_total", "42"),
        ],
    );
    message.sent_at = Some("2026-12-06T15:00:00Z".into());
    let headers = headers(&message, mapping());
    let expected = [
        ("ce-specversion", "1.0"),
        ("ce-id", "m-1"),
        ("ce-source", SOURCE),
        ("ce-type", "OrderPlaced"),
        ("ce-time", "2026-12-06T15:00:00Z"),
        ("content-type", "application/json"),
        ("traceparent", PARENT),
        ("tracestate", "vendor=1"),
        ("ce-ordertotal", "42"),
        ("ce-region", "eu%20west"),
    ];
    let got: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
    assert_eq!(got, expected);
}

#[test]
fn without_the_type_attribute_or_a_time_the_defaults_apply() {
    let headers = headers(&message("x", &[]), mapping());
    assert!(headers.contains(&("ce-type".into(), DEFAULT_TYPE.into())));
    assert!(!headers.iter().any(|(n, _)| n == "ce-time"));
    assert!(!headers.iter().any(|(n, _)| n == "traceparent"));
}

#[test]
fn the_content_type_is_the_attribute_else_json_else_bytes() {
    assert_eq!(
        content_type(&message("{}", &[("content-type", "text/csv")])),
        "text/csv"
    );
    assert_eq!(content_type(&message("[1, 2]", &[])), "application/json");
    assert_eq!(content_type(&message("\"s\"", &[])), "application/json");
    assert_eq!(content_type(&message("a,b", &[])), "application/octet-stream");
    assert_eq!(content_type(&message("", &[])), "application/octet-stream");
}

#[test]
fn extension_names_are_reduced_and_collisions_keep_the_first_name() {
    assert_eq!(extension_name("Order-Total_2"), "ordertotal2");
    assert_eq!(extension_name("été"), "t");
    assert_eq!(extension_name("-_."), "");
    let attributes: BTreeMap<String, String> = [
        ("Tenant", "first"),
        ("tenant", "second"),
        ("te-nant", "third"),
        ("event", "the type"),
        ("Source", "a context name"),
        ("--", "nothing left"),
        ("content-type", "text/plain"),
    ]
    .into_iter()
    .map(|(n, v)| (n.to_owned(), v.to_owned()))
    .collect();
    let extensions = extensions(&attributes, "event");
    assert_eq!(
        extensions.into_iter().collect::<Vec<_>>(),
        [("tenant".to_owned(), "first")],
        "byte order: `Tenant` < `te-nant` < `tenant`"
    );
}

#[test]
fn header_values_are_percent_encoded_where_the_binding_says_and_decode_back() {
    assert_eq!(encode("a b\"c%d"), "a%20b%22c%25d");
    assert_eq!(encode("ü"), "%C3%BC");
    assert_eq!(encode("plain-value_1.0/x"), "plain-value_1.0/x");
    for value in ["a b\"c%d", "ü €", "plain", "100%"] {
        assert_eq!(decode(&encode(value)), value);
    }
    assert_eq!(decode("%zz%4"), "%zz%4", "a malformed escape stays");
}

#[test]
fn statuses_decide_the_outcome() {
    assert_eq!(verdict(200, b""), Verdict::Done);
    assert_eq!(verdict(204, b""), Verdict::Done);
    assert_eq!(
        verdict(400, b"sku missing\n"),
        Verdict::Reject("HTTP 400: sku missing".into())
    );
    assert_eq!(verdict(404, b""), Verdict::Reject("HTTP 404".into()));
    for status in [408, 429, 500, 503, 302, 100] {
        assert!(
            matches!(verdict(status, b"busy"), Verdict::Retry(ref r) if r == &format!("HTTP {status}: busy")),
            "{status}"
        );
    }
}

#[test]
fn a_reason_quotes_the_first_256_bytes_without_splitting_a_character() {
    let long = "x".repeat(300);
    assert_eq!(
        reason(500, long.as_bytes()),
        format!("HTTP 500: {}", "x".repeat(256))
    );
    let mut cut = "y".repeat(255);
    cut.push('é'); // two bytes, the second past the 256th
    assert_eq!(
        reason(400, cut.as_bytes()),
        format!("HTTP 400: {}", "y".repeat(255))
    );
    assert_eq!(reason(400, &[0xff, b'a']), "HTTP 400: \u{fffd}a");
}
