use std::collections::HashMap;

use super::*;

/// Pairs that collided under `<namespace>-<name>`, and others built to be tricky: a dash moved across
/// the boundary, dots against dashes, names cut at the limit, names that look like the hashed form.
fn tricky_pairs() -> Vec<(String, String)> {
    let long = "x".repeat(63);
    let mut pairs: Vec<(String, String)> = [
        ("a-b", "c"),
        ("a", "b-c"),
        ("a-b-c", "d"),
        ("a", "b-c-d"),
        ("shop", "orders.v1"),
        ("shop", "orders-v1"),
        ("shop-orders", "v1"),
        ("shop", "orders"),
        ("shop", "orders--x"),
        ("team.a", "q"),
        ("team-a", "q"),
    ]
    .into_iter()
    .map(|(a, b)| (a.to_owned(), b.to_owned()))
    .collect();
    for n in [1, 60, 200, 253] {
        pairs.push((long.clone(), "q".repeat(n)));
        pairs.push((long.clone(), format!("{}z", "q".repeat(n - 1))));
        pairs.push((format!("{}-y", &long[..61]), "q".repeat(n)));
    }
    // The hash of one pair spelled as the name of another.
    let hashed = separated("a", "b.c", "", 80);
    pairs.push(("a".into(), hashed.rsplit('_').next().unwrap().to_owned()));
    pairs
}

fn assert_injective(what: &str, name: impl Fn(&str, &str) -> String) {
    let mut seen: HashMap<String, (String, String)> = HashMap::new();
    for (namespace, object) in tricky_pairs() {
        let out = name(&namespace, &object);
        if let Some(first) = seen.insert(out.clone(), (namespace.clone(), object.clone())) {
            assert_eq!(first, (namespace, object), "{what}: {out} twice");
        }
    }
}

#[test]
fn separated_names_join_with_an_underscore() {
    assert_eq!(separated("shop", "orders", "", 80), "shop_orders");
    assert_eq!(separated("shop", "orders", ".fifo", 80), "shop_orders.fifo");
    assert_ne!(separated("a-b", "c", "", 80), separated("a", "b-c", "", 80));
}

#[test]
fn no_tricky_pair_collides_in_any_scheme() {
    assert_injective("SQS", |ns, n| separated(ns, n, "", 80));
    assert_injective("SQS FIFO", |ns, n| separated(ns, n, ".fifo", 80));
    assert_injective("SNS", |ns, n| separated(ns, n, "", 256));
    assert_injective("Storage Queue", |ns, n| hashed_dns(ns, n, 63));
}

#[test]
fn hashed_names_keep_the_separator_and_differ_from_plain_ones() {
    let dotted = separated("shop", "orders.v1", "", 80);
    assert!(dotted.starts_with("shop_orders-v1_"), "{dotted}");
    assert_eq!(dotted.matches('_').count(), 2);
    // The longest namespace keeps its `_` even in a FIFO name, the shortest room there is.
    let long = separated(&"n".repeat(63), &"q".repeat(253), ".fifo", 80);
    assert!(long.starts_with(&format!("{}_", "n".repeat(63))), "{long}");
    assert_eq!(long.matches('_').count(), 2);
}

#[test]
fn every_name_fits_its_cloud() {
    let sqs = regex_like(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    for (namespace, name) in tricky_pairs() {
        for (suffix, limit) in [("", 80), (".fifo", 80), ("", 256), (".fifo", 256)] {
            let out = separated(&namespace, &name, suffix, limit);
            assert!(out.len() <= limit, "{out} is longer than {limit}");
            assert!(out.ends_with(suffix));
            assert!(sqs(out.trim_end_matches(suffix)), "{out}");
            assert!(out.starts_with(|c: char| c.is_ascii_alphanumeric()), "{out}");
        }
        let queue = hashed_dns(&namespace, &name, 63);
        assert!((3..=63).contains(&queue.len()), "{queue}");
        assert!(
            !queue.contains("--") && !queue.starts_with('-') && !queue.ends_with('-'),
            "{queue}"
        );
        assert!(
            queue
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'),
            "{queue}"
        );
    }
}

fn regex_like(allowed: impl Fn(char) -> bool) -> impl Fn(&str) -> bool {
    move |s: &str| s.chars().all(&allowed)
}

#[test]
fn the_recorded_name_is_the_last_segment() {
    assert_eq!(
        last_segment("http://127.0.0.1:4566/000000000000/shop-orders"),
        Some("shop-orders")
    );
    assert_eq!(
        last_segment("arn:aws:sns:eu-west-1:000000000000:shop-orders.fifo"),
        Some("shop-orders.fifo")
    );
    assert_eq!(
        last_segment("https://acct.queue.core.windows.net/shop-orders/"),
        Some("shop-orders")
    );
    assert_eq!(last_segment(""), None);
}
