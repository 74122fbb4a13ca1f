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
    let items: Vec<Value> = (0..12)
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

/// The policies and events of one scope, generated the same way for every engine.
fn workload(scope: Scope, count: usize) -> (Vec<Value>, Vec<String>) {
    let mut rng = Lcg(42);
    let policies = (0..count).map(|_| policy(&mut rng, scope)).collect();
    let events = (0..2000)
        .map(|_| {
            if scope == Scope::MessageBody {
                body_event(&mut rng)
            } else {
                attribute_event(&mut rng)
            }
        })
        .collect();
    (policies, events)
}

fn measure(scope: Scope, count: usize) -> (f64, usize) {
    let (raw, events) = workload(scope, count);
    let policies: Vec<Policy> = raw
        .iter()
        .map(|p| Policy::parse(p, scope).expect("valid"))
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

/// Writes the workloads for the peer engines (bench/filter/), so they match the same events against the
/// same patterns.
fn write_workload() {
    let mut all = serde_json::Map::new();
    for scope in [Scope::MessageBody, Scope::MessageAttributes] {
        for count in [10, 100, 1000] {
            let (policies, events) = workload(scope, count);
            // Peers match JSON events: attribute messages become flat objects (Number attributes as numbers).
            let peer_events: Vec<String> = events
                .iter()
                .map(|text| match scope {
                    Scope::MessageBody => text.clone(),
                    Scope::MessageAttributes => {
                        let attrs: serde_json::Map<String, Value> =
                            serde_json::from_str(text).expect("event");
                        let flat: serde_json::Map<String, Value> = attrs
                            .into_iter()
                            .map(|(k, a)| {
                                let v = a["Value"].as_str().unwrap_or_default().to_owned();
                                let v = if a["Type"] == "Number" {
                                    json!(v.parse::<f64>().unwrap_or_default())
                                } else {
                                    json!(v)
                                };
                                (k, v)
                            })
                            .collect();
                        Value::Object(flat).to_string()
                    }
                })
                .collect();
            all.insert(
                format!("{scope}/{count}"),
                json!({"scope": scope.to_string(), "policies": policies, "events": events, "peerEvents": peer_events}),
            );
        }
    }
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench");
    std::fs::create_dir_all(&dir).expect("target/bench");
    std::fs::write(dir.join("filter-workload.json"), Value::Object(all).to_string())
        .expect("workload written");
}

fn main() {
    write_workload();
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
