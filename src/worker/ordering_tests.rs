//! The per-group scheduling: lanes of a batch, a lane run in order and stopped at its first failure, lanes
//! run at once; and the runtime on a FIFO fake queue (in order per group through retries, dead letters
//! in their group, a retried dead-letter send landing once).
#![allow(clippy::unwrap_used)]

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use super::*;
use crate::{
    cloud::{fake::FakeQueue, queue::ReceivedMessage},
    worker::{
        config::Retry,
        message::Message,
        metrics::WorkerMetrics,
        processor::Processor,
        queue::{Delivery, WorkQueue, send_dead_letter},
        runtime::{self, Settings},
    },
};

#[test]
fn a_fifo_batch_has_a_lane_per_group_in_receive_order_and_a_standard_one_a_lane_per_message() {
    let groups = [
        Some("a"),
        Some("b"),
        Some("a"),
        None,
        Some("c"),
        Some("b"),
        None,
        Some("a"),
    ];
    assert_eq!(
        lanes(groups, true),
        [vec![0, 2, 7], vec![1, 5], vec![3], vec![4], vec![6]],
        "a message without a group is a lane of its own"
    );
    let one_each: Vec<Vec<usize>> = (0..groups.len()).map(|i| vec![i]).collect();
    assert_eq!(lanes(groups, false), one_each);
    assert!(lanes([], true).is_empty());
}

/// What a lane run records: which message started and ended, in the order it happened.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Event {
    Start(usize),
    End(usize),
}

#[tokio::test]
async fn a_lane_runs_its_messages_one_after_another_and_holds_the_rest_after_a_failure() {
    let log = Arc::new(Mutex::new(Vec::new()));
    // Messages 0..4 are one group; 2 fails.
    let run = |index: usize| {
        let log = log.clone();
        async move {
            log.lock().unwrap().push(Event::Start(index));
            tokio::task::yield_now().await;
            log.lock().unwrap().push(Event::End(index));
            if index == 2 {
                Outcome::Retry("down".into())
            } else {
                Outcome::Done
            }
        }
    };
    let steps = run_lanes(5, vec![vec![0, 1, 2, 3, 4]], run, |_, o| *o == Outcome::Done).await;
    assert_eq!(
        steps,
        [
            Step::Ran(Outcome::Done),
            Step::Ran(Outcome::Done),
            Step::Ran(Outcome::Retry("down".into())),
            Step::Held,
            Step::Held
        ]
    );
    let log = log.lock().unwrap().clone();
    let expected: Vec<Event> = (0..3).flat_map(|i| [Event::Start(i), Event::End(i)]).collect();
    assert_eq!(log, expected, "one after another, nothing after the failure");
}

#[tokio::test]
async fn lanes_run_at_once() {
    // The first message of lane A waits for the first of lane B: run lane after lane, this never ends.
    let (tell, told) = tokio::sync::oneshot::channel::<()>();
    let (tell, told) = (Mutex::new(Some(tell)), Mutex::new(Some(told)));
    let run = |index: usize| {
        let told = (index == 0).then(|| told.lock().unwrap().take()).flatten();
        let tell = (index == 2).then(|| tell.lock().unwrap().take()).flatten();
        async move {
            if let Some(told) = told {
                told.await.unwrap();
            }
            if let Some(tell) = tell {
                tell.send(()).unwrap();
            }
            Outcome::Done
        }
    };
    let steps = tokio::time::timeout(
        Duration::from_secs(5),
        run_lanes(4, vec![vec![0, 1], vec![2, 3]], run, |_, _| true),
    )
    .await
    .expect("the lanes ran one after the other");
    assert!(steps.iter().all(|s| *s == Step::Ran(Outcome::Done)));
}

/// Records the bodies it sees per group, in order. `flaky…` fails on its first receive, `poison…` is
/// rejected; everything else succeeds.
#[derive(Clone, Default)]
struct Recorder {
    seen: Arc<Mutex<BTreeMap<String, Vec<String>>>>,
}

impl Processor for Recorder {
    fn name(&self) -> &'static str {
        "recorder"
    }

    async fn process(&self, message: &Message) -> Outcome {
        let group = message.group_id.clone().unwrap_or_default();
        let body = message.body.clone();
        self.seen
            .lock()
            .unwrap()
            .entry(group)
            .or_default()
            .push(body.clone());
        tokio::task::yield_now().await;
        if body.contains("poison") {
            Outcome::Reject("malformed".into())
        } else if body.contains("flaky") && message.receive_count == 1 {
            Outcome::Retry("first attempt fails".into())
        } else {
            Outcome::Done
        }
    }
}

fn grouped(group: &str) -> BTreeMap<String, String> {
    BTreeMap::from([("MessageGroupId".to_owned(), group.to_owned())])
}

fn settings() -> Settings {
    Settings {
        consumer: "test/recorder".into(),
        receivers: 2,
        wait_seconds: 1,
        visibility_timeout: Duration::from_secs(30),
        // No backoff: a retried message is visible again at once, and only the group rule keeps the
        // messages behind it from overtaking it.
        retry: Retry {
            max_attempts: 3,
            initial_backoff_seconds: 0,
            max_backoff_seconds: 0,
        },
        drain: Duration::from_secs(1),
        max_receive_count: None,
    }
}

#[tokio::test]
async fn the_runtime_on_a_fifo_fake_keeps_each_group_in_order_through_retries_and_dead_letters() {
    let (source, dead) = (FakeQueue::fifo("work.fifo"), FakeQueue::fifo("dead.fifo"));
    // Interleaved, so that a batch holds several groups: g1's second fails once, g2's second is poison
    // (the first batch of 10 holds the third of each too).
    let body = |group: usize, i: usize| match (group, i) {
        (1, 1) => format!("g{group} {i} flaky"),
        (2, 1) => format!("g{group} {i} poison"),
        _ => format!("g{group} {i}"),
    };
    for i in 0..5 {
        for group in 0..3 {
            source.push(&body(group, i), BTreeMap::new(), grouped(&format!("g{group}")));
        }
    }
    let (processor, metrics) = (Recorder::default(), WorkerMetrics::new());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let shutdown = futures::FutureExt::shared(futures::FutureExt::boxed(async {
        let _ = stopped.await;
    }));
    let queue = WorkQueue::new(source.clone(), Some(dead.clone()));
    assert!(queue.is_fifo());
    let worker = tokio::spawn(runtime::run(
        queue,
        Arc::new(processor.clone()),
        settings(),
        metrics.clone(),
        shutdown,
    ));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while metrics.processed_total() < 14 || metrics.dead_lettered_total() < 1 {
        assert!(tokio::time::Instant::now() < deadline, "not settled in 10 s");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    stop.send(()).unwrap();
    worker.await.unwrap();

    assert!(source.held().is_empty(), "everything settled is deleted");
    let seen = processor.seen.lock().unwrap().clone();
    let bodies =
        |group: usize, order: &[usize]| -> Vec<String> { order.iter().map(|&i| body(group, i)).collect() };
    assert_eq!(seen["g0"], bodies(0, &[0, 1, 2, 3, 4]));
    assert_eq!(
        seen["g1"],
        bodies(1, &[0, 1, 1, 2, 3, 4]),
        "the failed one again before the rest of its group"
    );
    assert_eq!(seen["g2"], bodies(2, &[0, 1, 2, 3, 4]), "each once");
    let letters = dead.held();
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].body, body(2, 1));
    assert_eq!(
        letters[0].group_id.as_deref(),
        Some("g2"),
        "dead-lettered in its group"
    );
}

#[tokio::test]
async fn a_dead_letter_sent_twice_to_a_fifo_queue_lands_once_in_its_group() {
    let received = ReceivedMessage {
        message_id: "5fea7756-0ea4-451a-a703-a558b933e274".into(),
        receipt_handle: "r".into(),
        body: "{}".into(),
        attributes: BTreeMap::new(),
        system_attributes: grouped("customer-7"),
    };
    let delivery = Delivery::received(received);
    assert_eq!(delivery.message.group_id.as_deref(), Some("customer-7"));
    let dead = FakeQueue::fifo("dead.fifo");
    for _ in 0..2 {
        send_dead_letter(&dead, &delivery, "bad").await.unwrap();
    }
    let letters = dead.held();
    assert_eq!(letters.len(), 1, "the retried send is deduplicated");
    assert_eq!(letters[0].group_id.as_deref(), Some("customer-7"));

    // To a standard queue without FIFO ids (which it would refuse), every send lands.
    let standard = FakeQueue::new("dead");
    send_dead_letter(&standard, &delivery, "bad").await.unwrap();
    assert_eq!(standard.held()[0].group_id, None);
}
