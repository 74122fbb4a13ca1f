//! Filter engine throughput: ~1 KB JSON events (body scope) and attribute messages matched against 10, 100
//! and 1,000 subscription policies with a mix of operators, parsing included. Prints events per second on
//! one core. Run with `cargo bench --bench filter`.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tributary::filter::{Message, Policy, Scope};

/// A small deterministic generator, so every run measures the same workload.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[(self.next() as usize) % items.len()]
    }
}

const EVENTS: &[&str] = &[
    "OrderPlaced",
    "OrderShipped",
    "OrderCancelled",
    "PaymentFailed",
    "StockLow",
];
const REGIONS: &[&str] = &[
    "eu-west-1",
    "us-east-1",
    "us-west-2",
    "ap-south-1",
    "eu-central-1",
];
const TIERS: &[&str] = &["gold", "silver", "bronze"];

fn policy(rng: &mut Lcg, scope: Scope) -> Value {
    let mut p = serde_json::Map::new();
    p.insert("event".into(), json!([rng.pick(EVENTS), rng.pick(EVENTS)]));
    match rng.next() % 4 {
        0 => p.insert("region".into(), json!([{"prefix": &rng.pick(REGIONS)[..3]}])),
        1 => p.insert("region".into(), json!([{"anything-but": [rng.pick(REGIONS)]}])),
        2 => p.insert(
            "region".into(),
            json!([{"equals-ignore-case": rng.pick(REGIONS)}]),
        ),
        _ => p.insert("region".into(), json!([{"suffix": "-1"}])),
    };
    let low = (rng.next() % 500) as i64;
    let total = json!([{"numeric": [">=", low, "<", low + 250]}]);
    match scope {
        Scope::MessageAttributes => {
            p.insert("total".into(), total);
            if rng.next().is_multiple_of(3) {
                p.insert("tier".into(), json!([{"exists": true}]));
            }
        }
        Scope::MessageBody => {
            p.insert(
                "order".into(),
                json!({"total": total, "customer": {"tier": [rng.pick(TIERS)]}}),
            );
        }
    }
    Value::Object(p)
}

fn body_event(rng: &mut Lcg) -> String {
    let items: Vec<Value> = (0..6)
        .map(|i| json!({"sku": format!("SKU-{}-{i}", rng.next() % 1000), "qty": rng.next() % 5 + 1, "price": (rng.next() % 10_000) as f64 / 100.0}))
        .collect();
    json!({
        "event": rng.pick(EVENTS),
        "region": rng.pick(REGIONS),
        "orderId": format!("o-{:016x}", rng.next()),
        "order": {
            "total": rng.next() % 1000,
            "currency": "EUR",
            "customer": {"id": format!("c-{}", rng.next() % 100_000), "tier": rng.pick(TIERS), "email": "someone@example.com"},
            "items": items,
            "shipping": {"method": "courier", "address": {"street": "1 Example Street", "city": "Dublin", "country": "IE"}}
        },
        "traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    })
    .to_string()
}

fn attribute_event(rng: &mut Lcg) -> String {
    json!({
        "event": {"Type": "String", "Value": rng.pick(EVENTS)},
        "region": {"Type": "String", "Value": rng.pick(REGIONS)},
        "total": {"Type": "Number", "Value": (rng.next() % 1000).to_string()},
        "tier": {"Type": "String", "Value": rng.pick(TIERS)},
    })
    .to_string()
}

fn measure(scope: Scope, count: usize) -> (f64, usize) {
    let mut rng = Lcg(42);
    let policies: Vec<Policy> = (0..count)
        .map(|_| Policy::parse(&policy(&mut rng, scope), scope).expect("valid"))
        .collect();
    let events: Vec<String> = (0..2000)
        .map(|_| {
            if scope == Scope::MessageBody {
                body_event(&mut rng)
            } else {
                attribute_event(&mut rng)
            }
        })
        .collect();
    let mut matched = 0;
    let mut processed = 0_u64;
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(2) {
        for text in &events {
            let message = match scope {
                Scope::MessageBody => Message::from_body_json(text),
                Scope::MessageAttributes => Message::from_attributes_json(text),
            }
            .expect("valid event");
            matched += policies.iter().filter(|p| p.matches(&message)).count();
            processed += 1;
        }
    }
    (processed as f64 / start.elapsed().as_secs_f64(), matched)
}

fn main() {
    let size = body_event(&mut Lcg(1)).len();
    println!("filter engine, one core, parsing included (body events are {size} bytes)");
    println!("{:<18} {:>9} {:>14}", "scope", "policies", "events/s");
    for scope in [Scope::MessageBody, Scope::MessageAttributes] {
        for count in [10, 100, 1000] {
            let (rate, matched) = measure(scope, count);
            assert!(matched > 0, "the workload must match something");
            println!("{:<18} {count:>9} {rate:>14.0}", scope.to_string());
        }
    }
}
