//! Filter engine throughput: ~1 KB JSON events (body scope) and attribute messages matched against 10, 100
//! and 1,000 subscription policies with a mix of operators, parsing included. Prints events per second on
//! one core. Run with `cargo bench -p sns-filter --bench filter` (or `make bench`, next to event-ruler).
//!
//! Two shapes of policy set. `partitioned` is what a topic with many subscriptions looks like: each
//! subscription serves one slice of the stream (here a store, 1-3 of 50 per policy, next to the operator
//! mix), so an event reaches a handful of them whatever their number. `broad` drops the store: every policy
//! matches about 5% of events, so the deliveries per event grow with the number of policies (about 50 at
//! 1,000) and so does the work of any engine, which must at least produce them.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sns_filter::{Engine, Matcher, Message, Policy, Scope};

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

/// The two shapes of policy set (see the module doc).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Shape {
    Partitioned,
    Broad,
}

impl Shape {
    fn name(self) -> &'static str {
        match self {
            Shape::Partitioned => "partitioned",
            Shape::Broad => "broad",
        }
    }
}

/// One measured case.
#[derive(Clone, Copy)]
struct Case {
    scope: Scope,
    shape: Shape,
    count: usize,
}

impl Case {
    fn name(self) -> String {
        format!("{}/{}/{}", self.scope, self.shape.name(), self.count)
    }
}

const STORES: u64 = 50;

/// Events generated per case; every engine matches the same ones.
const EVENTS_PER_CASE: usize = 2000;

fn store(n: u64) -> String {
    format!("store-{:02}", n % STORES)
}

fn policy(rng: &mut Lcg, scope: Scope, shape: Shape) -> Value {
    let mut p = serde_json::Map::new();
    if shape == Shape::Partitioned {
        let stores: Vec<String> = (0..=rng.next() % 3).map(|_| store(rng.next())).collect();
        p.insert("store".into(), json!(stores));
    }
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
        "store": store(rng.next()),
        "orderId": format!("o-{:016x}", rng.next()),
        "order": {
            "total": rng.next() % 1000,
            "currency": "EUR",
            "customer": {"id": format!("c-{}", rng.next() % 100_000), "tier": rng.pick(TIERS), "email": "someone@example.com"},
            "items": items,
            "shipping": {"method": "courier", "address": {"street": "1 Example Street", "city": "Dublin", "country": "IE"}}
        },
        "source": "checkout-service/2.14.0",
        "createdAt": "2026-11-28T06:00:00.000Z",
        "traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    })
    .to_string()
}

fn attribute_event(rng: &mut Lcg) -> String {
    json!({
        "event": {"Type": "String", "Value": rng.pick(EVENTS)},
        "region": {"Type": "String", "Value": rng.pick(REGIONS)},
        "store": {"Type": "String", "Value": store(rng.next())},
        "total": {"Type": "Number", "Value": (rng.next() % 1000).to_string()},
        "tier": {"Type": "String", "Value": rng.pick(TIERS)},
    })
    .to_string()
}

/// The policies and events of one case, generated the same way for every engine.
fn workload(case: Case) -> (Vec<Value>, Vec<String>) {
    let Case { scope, shape, count } = case;
    let mut rng = Lcg(42);
    let policies = (0..count).map(|_| policy(&mut rng, scope, shape)).collect();
    let events = (0..EVENTS_PER_CASE)
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

/// The case's policies, parsed, and its events.
fn parsed(case: Case) -> (Vec<Policy>, Vec<String>) {
    let (raw, events) = workload(case);
    let policies = raw
        .iter()
        .map(|p| Policy::parse(p, case.scope).expect("valid"))
        .collect();
    (policies, events)
}

/// Before timing anything: both compiled engines and the one-by-one evaluation agree on every event.
/// Returns how many policies an event matches on average: the output every engine must produce.
fn check_agreement(case: Case) -> f64 {
    let scope = case.scope;
    let (policies, events) = parsed(case);
    let matchers = [Engine::Bitsets, Engine::Trie].map(|engine| {
        let matcher = Matcher::with_engine(scope, policies.clone(), engine).expect("one scope");
        assert_eq!(matcher.engine(), engine, "{} fits the bitsets", case.name());
        matcher
    });
    let mut scratches = matchers.each_ref().map(Matcher::scratch);
    let mut matched = 0;
    for text in &events {
        let message = match scope {
            Scope::MessageBody => Message::from_body_json(text),
            Scope::MessageAttributes => Message::from_attributes_json(text),
        }
        .expect("valid event");
        let one_by_one: Vec<usize> = (0..policies.len())
            .filter(|&i| policies[i].matches(&message))
            .collect();
        for (matcher, scratch) in matchers.iter().zip(&mut scratches) {
            assert_eq!(matcher.matching(text, scratch).expect("valid event"), one_by_one);
        }
        matched += one_by_one.len();
    }
    matched as f64 / events.len() as f64
}

/// The policies compiled into one matcher by `engine`.
fn measure_compiled(case: Case, engine: Engine) -> (f64, usize) {
    let scope = case.scope;
    let (policies, events) = parsed(case);
    let matcher = Matcher::with_engine(scope, policies, engine).expect("one scope");
    let mut scratch = matcher.scratch();
    best_of_three(|| {
        events
            .iter()
            .map(|text| matcher.matching(text, &mut scratch).expect("valid event").len())
            .sum()
    })
}

/// Events per second of the best of three one-second windows (a shared 2-core machine is noisy; the best
/// window is the closest to the engine's own speed), and the matches counted.
fn best_of_three(mut pass: impl FnMut() -> usize) -> (f64, usize) {
    let events = EVENTS_PER_CASE as f64;
    let mut best = 0.0_f64;
    let mut matched = 0;
    for _ in 0..3 {
        let mut passes = 0_u32;
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(1) {
            matched += pass();
            passes += 1;
        }
        best = best.max(f64::from(passes) * events / start.elapsed().as_secs_f64());
    }
    (best, matched)
}

/// The policies tested one by one against a parsed message: the baseline the matcher is built to beat.
fn measure(case: Case) -> (f64, usize) {
    let scope = case.scope;
    let (policies, events) = parsed(case);
    best_of_three(|| {
        events
            .iter()
            .map(|text| {
                let message = match scope {
                    Scope::MessageBody => Message::from_body_json(text),
                    Scope::MessageAttributes => Message::from_attributes_json(text),
                }
                .expect("valid event");
                policies.iter().filter(|p| p.matches(&message)).count()
            })
            .sum()
    })
}

/// Writes the workloads for the peer engines (bench/filter/), so they match the same events against the
/// same patterns.
fn write_workload() {
    let mut all = serde_json::Map::new();
    for case in cases() {
        let scope = case.scope;
        {
            let (policies, events) = workload(case);
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
                case.name(),
                json!({"scope": scope.to_string(), "policies": policies, "events": events, "peerEvents": peer_events}),
            );
        }
    }
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench");
    std::fs::create_dir_all(&dir).expect("target/bench");
    std::fs::write(dir.join("filter-workload.json"), Value::Object(all).to_string())
        .expect("workload written");
}

/// Every case, in the order both harnesses print them.
fn cases() -> Vec<Case> {
    let mut cases = Vec::new();
    for scope in [Scope::MessageBody, Scope::MessageAttributes] {
        for shape in [Shape::Partitioned, Shape::Broad] {
            for count in [10, 100, 1000] {
                cases.push(Case { scope, shape, count });
            }
        }
    }
    cases
}

fn main() {
    // `cargo bench -p sns-filter --bench filter -- MessageBody/broad` runs only the cases whose name
    // contains the text.
    let only: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    write_workload();
    let size = body_event(&mut Lcg(1)).len();
    println!("filter engine, one core, parsing included (body events are {size} bytes)");
    // Matcher::new takes the trie up to 64 alternatives (the 10-policy cases) and the bitsets above.
    println!(
        "{:<36} {:>14} {:>14} {:>16} {:>14}",
        "case (scope/shape/policies)", "bitsets ev/s", "trie ev/s", "one-by-one ev/s", "matches/event"
    );
    for case in cases() {
        let name = case.name();
        if !only.is_empty() && !only.iter().any(|o| name.contains(o.as_str())) {
            continue;
        }
        let fan_out = check_agreement(case);
        let (bitsets, matched_compiled) = measure_compiled(case, Engine::Bitsets);
        let (trie, _) = measure_compiled(case, Engine::Trie);
        // FILTER_BENCH_COMPILED_ONLY=1 skips the slow baseline (for profiling the matcher).
        let (single, matched) = if std::env::var_os("FILTER_BENCH_COMPILED_ONLY").is_some() {
            (0.0, matched_compiled)
        } else {
            measure(case)
        };
        assert!(
            matched > 0 && matched_compiled > 0,
            "the workload must match something"
        );
        println!("{name:<36} {bitsets:>14.0} {trie:>14.0} {single:>16.0} {fan_out:>14.2}");
    }
}
