//! Cloud outages in the middle of the pipelines: one emulator is stopped (SIGTERM by its pid, through
//! testbed/service.sh, which keeps its state) while events flow, and started again. While it is down the
//! objects that depend on it go Ready=False with reason CloudUnavailable and a message naming the
//! service, and its clients back off: a listener on its port counts their connection attempts over a
//! window and the rate is bounded. After the restart everything converges and nothing is lost: every
//! order or device event published before or during the outage has its effect exactly once, and the
//! dead letters hold only what was meant for them. The figures (time to converge after the restart,
//! connection attempts per second during the outage) are printed.
#![allow(clippy::unwrap_used)]

use crate::support::{
    self as common,
    devices_bed::DeviceBed,
    orders_bed::OrderBed,
    outage::{Seen, Service, knocks_during},
};

use std::time::{Duration, Instant};

/// How long the clients' attempts are counted.
const WINDOW: Duration = Duration::from_secs(10);
/// The most connection attempts per second the stopped service may see from the controller and the
/// workers of one pipeline (a hot loop makes hundreds).
const MOST_PER_SECOND: f64 = 15.0;

/// No client of the stopped service in a hot loop: each process's connection attempts per second stay
/// under [`MOST_PER_SECOND`] (for the broker, the worker's).
fn assert_backed_off(seen: &Seen, service: &str) {
    for client in seen.counts.keys().map(|(c, _)| c) {
        // The test process also runs the ARM fake, whose Kafka admin clients (test infrastructure) reach
        // the broker too: its figure is printed, not bounded.
        if service == "kafka" && client == "controller" {
            continue;
        }
        let rate = seen.rate_of(client);
        assert!(
            rate <= MOST_PER_SECOND,
            "a hot loop: {client} made {rate:.1} connection attempts/s to the stopped {service} ({})",
            seen.breakdown()
        );
    }
}

/// Waits until `kind` `name` is Ready=False with CloudUnavailable and a message naming one of
/// `services` (as the cloud layer names them: `sqs`, `dynamodb`, `kafka`, `storage-queue`, ...);
/// returns the message.
pub async fn wait_unavailable(
    client: &kube::Client,
    ns: &str,
    kind: &str,
    name: &str,
    services: &[&str],
    within: Duration,
) -> String {
    let api = common::tributary_api(client, ns, kind);
    common::eventually(
        &format!("{kind} {name} Ready=False CloudUnavailable naming one of {services:?}"),
        within,
        || {
            let api = api.clone();
            async move {
                let object = api.get(name).await.ok()?;
                let (status, reason, message, _) = common::condition(&object, "Ready")?;
                let named = services.iter().any(|s| message.starts_with(&format!("{s} ")));
                (status == "False" && reason == "CloudUnavailable" && named).then_some(message)
            }
        },
    )
    .await
}

/// Waits until every `(kind, name)` is Ready again (reason Available).
pub async fn wait_available(client: &kube::Client, ns: &str, objects: &[(&str, &str)], within: Duration) {
    for (kind, name) in objects {
        common::wait_reason(client, ns, kind, name, "Available", within).await;
    }
}

#[tokio::test]
async fn a_moto_outage_mid_order_pipeline_is_reported_backed_off_and_loses_nothing() {
    // Alone: it stops moto, which every other AWS test uses.
    let _bed = common::exclusive().await;
    // Short visibility timeouts: a message a worker held when moto went away comes back soon after.
    let bed = OrderBed::start("outage-moto", |text| {
        text.replace("visibilityTimeoutSeconds: 60", "visibilityTimeoutSeconds: 10")
    })
    .await;
    let products = ["a", "b", "c", "d", "e"];
    let mut orders = Vec::new();
    // Before: 20 orders, and moto stopped while they flow.
    for i in 0..20 {
        let (product, quantity) = (products[i % 5], 1 + (i % 3) as i64);
        let order = bed.order(&format!("before-{i}"), product, quantity);
        let id = bed
            .poster
            .post(&order, Duration::from_millis(200), Duration::from_secs(60))
            .await;
        orders.push((id, product.to_owned(), quantity));
    }
    let down = Service::Moto.stop().await;
    let stopped = Instant::now();
    // During: 10 more, each retried once a second until the endpoint accepts it (after the restart).
    let during = tokio::spawn({
        let orders: Vec<_> = (0..10)
            .map(|i| {
                (
                    bed.order(&format!("during-{i}"), products[i % 5], 1),
                    products[i % 5],
                )
            })
            .collect();
        let poster = bed.poster.clone();
        async move {
            let mut placed = Vec::new();
            for (order, product) in orders {
                let id = poster
                    .post(&order, Duration::from_secs(1), Duration::from_secs(120))
                    .await;
                placed.push((id, product.to_owned(), 1));
            }
            placed
        }
    });
    let (client, ns) = (bed.client.clone(), bed.ns.clone());
    let unavailable: [(&str, &str, &[&str]); 5] = [
        ("Topic", "orders", &["sns"]),
        ("Queue", "inventory", &["sqs"]),
        ("DeadLetter", "orders-dlq", &["sqs"]),
        ("Subscription", "orders-to-inventory", &["sns", "sqs"]),
        ("Consumer", "inventory", &["dynamodb", "sqs"]),
    ];
    for (kind, name, services) in unavailable {
        let message = wait_unavailable(&client, &ns, kind, name, services, Duration::from_secs(30)).await;
        eprintln!("moto outage: {kind} {name}: {message}");
    }
    let noticed = stopped.elapsed();
    let mut clients = vec![("controller", std::process::id())];
    clients.extend(bed.workers.iter().map(|(name, worker)| (*name, worker.pid())));
    let seen = knocks_during(Service::Moto, WINDOW, &clients).await;
    down.start().await;
    let restarted = Instant::now();
    let outage = stopped.elapsed();

    let objects: Vec<(&str, &str)> = unavailable.iter().map(|(k, n, _)| (*k, *n)).collect();
    wait_available(&client, &ns, &objects, Duration::from_secs(60)).await;
    let objects_back = restarted.elapsed();
    orders.extend(during.await.unwrap());
    let ids: Vec<String> = orders.iter().map(|(id, _, _)| id.clone()).collect();
    bed.wait_shipped(&ids, Duration::from_secs(120)).await;
    let converged = restarted.elapsed();
    bed.assert_effects_once(&orders).await;
    let dead = bed.dead_letters(1).await;
    assert!(dead.is_empty(), "no dead letter: {dead:?}");
    eprintln!(
        "moto outage: {:.1} s down (all five objects CloudUnavailable {:.1} s after the stop); {} connection attempts in {:.1} s = {:.1}/s ({}); after the restart the objects were Available in {:.1} s and all {} orders (20 before, 10 during) SHIPPED, each effect once, in {:.1} s",
        outage.as_secs_f64(),
        noticed.as_secs_f64(),
        seen.total(),
        seen.seconds,
        seen.rate(),
        seen.breakdown(),
        objects_back.as_secs_f64(),
        orders.len(),
        converged.as_secs_f64(),
    );
    assert_backed_off(&seen, "moto");
    bed.stop().await;
}

/// One outage of the device pipeline as planned: the service, the objects that depend on it and the
/// words their message names it by, and how long its clients are counted.
struct Round {
    service: Service,
    objects: &'static [(&'static str, &'static str)],
    words: &'static [&'static str],
    window: Duration,
}

/// One outage of the device pipeline: what was seen and measured.
struct DeviceOutage {
    service: Service,
    /// Kind, name and message of each object that went CloudUnavailable.
    unavailable: Vec<(String, String, String)>,
    seen: Seen,
    /// From the restart until the lag was 0 and every event so far settled.
    converged: Duration,
}

#[tokio::test]
async fn cosmium_kafka_and_azurite_outages_mid_device_pipeline_lose_nothing() {
    // Alone: it stops the emulators other tests use.
    let _bed = common::exclusive().await;
    let bed = DeviceBed::start("outage-devices").await;
    let (mut valid, mut malformed) = (Vec::new(), Vec::new());
    let producer = DeviceBed::producer(Duration::from_secs(120));
    let (v, m) = bed.send(&producer, "before", 0..200).await;
    valid.extend(v);
    malformed.extend(m);
    drop(producer);
    let mut outages = Vec::new();
    // Which objects depend on each service, and the word their message names it by.
    // No object of the controller's reads or writes Cosmos DB (the workers create their containers).
    // Its outage is counted for 25 s: longer than the Consumer's write attempts (5, 15 s of pauses),
    // which an outage must not use up (its events would be dead-lettered).
    let plan = [
        Round {
            service: Service::Cosmium,
            objects: &[],
            words: &["cosmos"],
            window: Duration::from_secs(25),
        },
        Round {
            service: Service::Kafka,
            objects: &[("Consumer", "device-processor")],
            words: &["kafka"],
            window: WINDOW,
        },
        Round {
            service: Service::Azurite,
            objects: &[("DeadLetter", "devices-dlq")],
            words: &["storage-queue"],
            window: WINDOW,
        },
    ];
    for (round, plan) in plan.into_iter().enumerate() {
        let Round {
            service,
            objects,
            words,
            window,
        } = plan;
        let down = service.stop().await;
        // Events during the outage: sent before the counting window for the services the worker
        // writes to (the worker meets the outage with them in hand), after it for the broker (the
        // test's own producer would be counted otherwise); the producer waits for the broker.
        let tag = format!("during-{}", service.name());
        let range = round * 100..round * 100 + 100;
        let mut sending = None;
        if service != Service::Kafka {
            let producer = DeviceBed::producer(Duration::from_secs(120));
            let (v, m) = bed.send(&producer, &tag, range.clone()).await;
            valid.extend(v);
            malformed.extend(m);
        }
        let mut unavailable = Vec::new();
        for (kind, name) in objects {
            let message =
                wait_unavailable(&bed.client, &bed.ns, kind, name, words, Duration::from_secs(90)).await;
            unavailable.push((kind.to_string(), name.to_string(), message));
        }
        let clients = [("controller", std::process::id()), ("worker", bed.worker.id())];
        let seen = knocks_during(service, window, &clients).await;
        if service == Service::Kafka {
            sending = Some(tokio::spawn({
                let (topic, tag) = (bed.topic.clone(), tag.clone());
                async move {
                    let producer = DeviceBed::producer(Duration::from_secs(120));
                    crate::support::devices_bed::send(&producer, &topic, &tag, range).await
                }
            }));
        }
        down.start().await;
        let restarted = Instant::now();
        if let Some(sending) = sending {
            let (v, m) = sending.await.unwrap();
            valid.extend(v);
            malformed.extend(m);
        }
        let objects: Vec<(&str, &str)> = objects.to_vec();
        wait_available(&bed.client, &bed.ns, &objects, Duration::from_secs(60)).await;
        common::eventually(
            "the lag back to 0 and every valid event written",
            Duration::from_secs(120),
            || async { (bed.lag().await? == 0 && bed.missing(&valid).await.is_empty()).then_some(()) },
        )
        .await;
        let outage = DeviceOutage {
            service,
            unavailable,
            seen,
            converged: restarted.elapsed(),
        };
        eprintln!(
            "{} outage: {} connection attempts in {:.1} s = {:.1}/s ({}); converged {:.1} s after the restart; {:?}",
            outage.service.name(),
            outage.seen.total(),
            outage.seen.seconds,
            outage.seen.rate(),
            outage.seen.breakdown(),
            outage.converged.as_secs_f64(),
            outage.unavailable,
        );
        outages.push(outage);
    }
    // The dead letter holds each malformed event once, and nothing else.
    let dead = common::azure_read(&bed.dlq, 5).await;
    let mut bodies: Vec<&str> = dead.iter().map(|(b, _)| b.as_str()).collect();
    bodies.sort_unstable();
    let mut expected: Vec<&str> = malformed.iter().map(String::as_str).collect();
    expected.sort_unstable();
    assert_eq!(bodies, expected, "exactly the malformed events, once each");
    for outage in &outages {
        assert_backed_off(&outage.seen, outage.service.name());
    }
    bed.stop().await;
}
