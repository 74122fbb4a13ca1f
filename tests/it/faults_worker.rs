//! Worker crash points: the inventory worker of the order example is killed (SIGKILL) right after each
//! step of one message's handling — receive, effect (the stock reservation), publish (`OrderReserved`),
//! delete, dead-letter — then started again, and the order must converge with each effect once and
//! nothing lost. The worker talks to moto through a counting proxy (support/proxy.rs) that kills it
//! once the service has answered the step's request and before the worker reads the answer, so the
//! step is made and the worker never learns it: the point is found by the request the worker makes, with
//! no test hook in the worker. What each point duplicated (messages published or dead-lettered twice) is
//! printed: delivery is at least once, effects are exactly once.
#![allow(clippy::unwrap_used)]

use crate::support::{
    self as common,
    orders_bed::OrderBed,
    proxy::{KillAt, Proxy},
};

use std::time::{Duration, Instant};

use aws_sdk_sqs::types::QueueAttributeName;

/// One crash point: its name, the request after which the worker dies, and whether the order is one
/// that is dead-lettered (a product missing from the catalogue).
struct Point {
    step: &'static str,
    action: &'static str,
    answer_contains: Option<&'static str>,
    dead_letter: bool,
}

const POINTS: [Point; 5] = [
    Point {
        step: "receive",
        action: "ReceiveMessage",
        answer_contains: Some("ReceiptHandle"),
        dead_letter: false,
    },
    Point {
        step: "effect",
        action: "TransactWriteItems",
        answer_contains: None,
        dead_letter: false,
    },
    Point {
        step: "publish",
        action: "Publish",
        answer_contains: None,
        dead_letter: false,
    },
    Point {
        step: "delete",
        action: "DeleteMessageBatch",
        answer_contains: None,
        dead_letter: false,
    },
    Point {
        step: "dead-letter",
        action: "SendMessage",
        answer_contains: None,
        dead_letter: true,
    },
];

/// Messages in the queue at `url`, visible or not.
async fn in_queue(sqs: &aws_sdk_sqs::Client, url: &str) -> Option<u64> {
    let attributes = sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
        .send()
        .await
        .ok()?
        .attributes?;
    let count = |name| attributes.get(&name)?.parse::<u64>().ok();
    Some(
        count(QueueAttributeName::ApproximateNumberOfMessages)?
            + count(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)?,
    )
}

#[tokio::test]
async fn the_inventory_worker_killed_after_each_step_converges_with_each_effect_once() {
    let _bed = common::shared().await;
    // A 6 s visibility timeout: what the killed worker held comes back soon. One attempt: an order for
    // a product missing from the catalogue is dead-lettered on its first failure.
    let mut bed = OrderBed::start("crash-worker", |text| {
        text.replace("visibilityTimeoutSeconds: 60", "visibilityTimeoutSeconds: 6")
            .replace(
                "retry: {maxAttempts: 5, initialBackoffSeconds: 2, maxBackoffSeconds: 120}",
                "retry: {maxAttempts: 1, initialBackoffSeconds: 1, maxBackoffSeconds: 1}",
            )
    })
    .await;
    let proxy = Proxy::start(&common::var("AWS_ENDPOINT_URL")).await;
    let sqs = aws_sdk_sqs::Client::new(&common::aws_config().await);
    let queue = common::tributary_api(&bed.client, &bed.ns, "Queue")
        .get("inventory")
        .await
        .unwrap();
    let inventory_url = queue.data["status"]["url"].as_str().unwrap().to_owned();
    let products = ["a", "b", "c", "d"];
    let mut report = Vec::new();
    let mut dead_letters_before = 0;
    for (n, point) in POINTS.iter().enumerate() {
        let started = Instant::now();
        let pid = bed.start_worker("inventory", &proxy.endpoint).pid();
        let publishes = proxy.count("Publish");
        proxy.arm(KillAt {
            action: point.action,
            answer_contains: point.answer_contains,
            request_contains: None,
            nth: 1,
            pid,
        });
        let product = if point.dead_letter {
            "missing"
        } else {
            products[n % 4]
        };
        let order = bed.order(&format!("crash-{}", point.step), product, 2);
        let id = bed
            .poster
            .post(&order, Duration::from_millis(200), Duration::from_secs(60))
            .await;
        common::eventually(
            &format!("the kill after {}", point.step),
            Duration::from_secs(60),
            || {
                let killed = proxy.killed().len() > n;
                async move { killed.then_some(()) }
            },
        )
        .await;
        assert!(proxy.disarm());
        assert!(
            bed.workers.get_mut("inventory").unwrap().reap(),
            "{}: the worker was killed",
            point.step
        );
        bed.start_worker("inventory", &proxy.endpoint);
        let dead_copies = if point.dead_letter {
            common::eventually("the message settled", Duration::from_secs(60), || {
                let (sqs, url) = (sqs.clone(), inventory_url.clone());
                async move { (in_queue(&sqs, &url).await? == 0).then_some(()) }
            })
            .await;
            let dead = bed.dead_letters(1).await;
            let copies = dead
                .iter()
                .filter(|m| m.body().is_some_and(|b| b.contains(&id)))
                .count();
            assert!(copies >= 1, "dead-letter: the order is in the dead letter");
            let record = bed.record(&id).await.unwrap();
            assert_eq!(record.state, "PLACED", "dead-letter: nothing reserved");
            copies
        } else {
            bed.wait_shipped(std::slice::from_ref(&id), Duration::from_secs(60))
                .await;
            // Settled too: a copy the killed worker held comes back after the visibility timeout and
            // is handled (and counted) before the next point.
            common::eventually("the inventory queue settled", Duration::from_secs(60), || {
                let (sqs, url) = (sqs.clone(), inventory_url.clone());
                async move { (in_queue(&sqs, &url).await? == 0).then_some(()) }
            })
            .await;
            bed.assert_effects_once(&[(id.clone(), product.to_owned(), 2)])
                .await;
            let dead = bed.dead_letters(1).await.len();
            assert_eq!(dead, dead_letters_before, "{}: nothing dead-lettered", point.step);
            0
        };
        dead_letters_before += dead_copies;
        let published = proxy.count("Publish") - publishes;
        let effects = if point.dead_letter {
            "nothing reserved, the order PLACED and in the dead letter"
        } else {
            "stock reserved once, each state once, each notification once"
        };
        report.push(format!(
            "{}: killed after {} ({:?}); converged in {:.1} s; {effects}; lost none; \
             OrderReserved published {published}×; dead-letter copies {dead_copies}",
            point.step,
            point.action,
            proxy.killed().last().unwrap(),
            started.elapsed().as_secs_f64(),
        ));
    }
    for line in &report {
        eprintln!("worker crash point {line}");
    }
    bed.stop().await;
}
