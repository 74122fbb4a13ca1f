//! Tests of the runtime: its pure decisions (outcomes into queue operations, the receive limit, reasons), and
//! the drain on the fake queue.

use std::collections::BTreeMap;

use super::*;

const RETRY: Retry = Retry {
    max_attempts: 3,
    initial_backoff_seconds: 2,
    max_backoff_seconds: 60,
};

#[test]
fn outcomes_become_queue_operations() {
    assert_eq!(
        settlement(&Outcome::Done, 1, &RETRY, true),
        Settlement::Acknowledge
    );
    let retry = Outcome::Retry("table throttled".into());
    assert_eq!(settlement(&retry, 1, &RETRY, true), Settlement::Postpone(2));
    assert_eq!(settlement(&retry, 2, &RETRY, true), Settlement::Postpone(4));
    assert_eq!(
        settlement(&retry, 3, &RETRY, true),
        Settlement::DeadLetter(
            DeadLetterReason::Exhausted,
            "failed 3 times; last: table throttled".into()
        )
    );
    let reject = Outcome::Reject("body is not JSON".into());
    assert_eq!(
        settlement(&reject, 1, &RETRY, true),
        Settlement::DeadLetter(DeadLetterReason::Rejected, "body is not JSON".into())
    );
}

#[test]
fn a_retry_waits_what_the_processor_asked_within_the_longest_backoff() {
    let after = |seconds| Outcome::RetryAfter {
        reason: "HTTP 429: slow down".into(),
        seconds,
    };
    // The backoff of the first attempt is 2 s: asked for longer, the retry waits longer.
    assert_eq!(settlement(&after(10), 1, &RETRY, true), Settlement::Postpone(10));
    // Never beyond the Consumer's maxBackoffSeconds (60).
    assert_eq!(
        settlement(&after(3600), 1, &RETRY, true),
        Settlement::Postpone(60)
    );
    // Never sooner than the backoff: asking for less (or 0, a date in the past) does not hurry it.
    assert_eq!(settlement(&after(0), 2, &RETRY, true), Settlement::Postpone(4));
    // It is still an attempt: the last one is dead-lettered with its reason.
    assert_eq!(
        settlement(&after(10), 3, &RETRY, true),
        Settlement::DeadLetter(
            DeadLetterReason::Exhausted,
            "failed 3 times; last: HTTP 429: slow down".into()
        )
    );
    assert_eq!(
        settlement(&after(10), 3, &RETRY, false),
        Settlement::Postpone(Retry::MAX_DELAY_SECONDS)
    );
}

#[test]
fn a_message_received_too_often_is_not_processed_again() {
    assert_eq!(
        over_receive_limit(5, Some(5)),
        None,
        "the fifth receive is still processed"
    );
    let reason = over_receive_limit(6, Some(5)).unwrap_or_default();
    assert!(
        reason.contains("received 6 times") && reason.contains("maxReceiveCount of 5"),
        "{reason}"
    );
    assert_eq!(
        over_receive_limit(1000, None),
        None,
        "no limit: the queue decides"
    );
}

#[test]
fn without_a_dead_letter_nothing_is_deleted() {
    let reject = Outcome::Reject("bad".into());
    assert_eq!(
        settlement(&reject, 1, &RETRY, false),
        Settlement::Postpone(Retry::MAX_DELAY_SECONDS)
    );
    let retry = Outcome::Retry("down".into());
    assert_eq!(
        settlement(&retry, 9, &RETRY, false),
        Settlement::Postpone(Retry::MAX_DELAY_SECONDS)
    );
}

#[test]
fn the_reason_is_json_naming_the_consumer() {
    let reason: serde_json::Value =
        serde_json::from_str(&reason_json("shop/inventory", "http://q", "bad \"sku\"", 2)).unwrap();
    assert_eq!(reason["consumer"], "shop/inventory");
    assert_eq!(reason["reason"], "bad \"sku\"");
    assert_eq!(reason["attempts"], 2);
    assert_eq!(reason["queue"], "http://q");
}

/// Answers `ok…` at once and never answers anything else.
struct HalfDone;

impl Processor for HalfDone {
    fn name(&self) -> &'static str {
        "half-done"
    }

    async fn process(&self, message: &crate::worker::message::Message) -> Outcome {
        if !message.body.starts_with("ok") {
            std::future::pending::<()>().await;
        }
        Outcome::Done
    }
}

#[tokio::test]
async fn when_the_drain_time_runs_out_what_finished_is_settled_and_the_rest_released() {
    use crate::cloud::fake::FakeQueue;

    let source = FakeQueue::new("work");
    for body in ["ok 1", "stuck 1", "ok 2"] {
        source.push(body, BTreeMap::new(), BTreeMap::new());
    }
    let settings = Settings {
        consumer: "test/half-done".into(),
        receivers: 1,
        wait_seconds: 1,
        visibility_timeout: Duration::from_secs(30),
        retry: RETRY,
        drain: Duration::from_millis(100),
        max_receive_count: None,
    };
    let metrics = WorkerMetrics::new();
    let (stop, shutdown) = shutdown_signal();
    let queue = WorkQueue::new(source.clone(), None);
    let worker = tokio::spawn(run(
        queue,
        Arc::new(HalfDone),
        settings,
        metrics.clone(),
        shutdown,
    ));
    until("both processed", || metrics.processed_total() >= 2).await;
    stop_and_join(stop, worker).await;
    let left: Vec<String> = source.held().into_iter().map(|m| m.body).collect();
    assert_eq!(left, ["stuck 1"], "the finished ones are acknowledged");
    assert_eq!(source.visible(), 1, "the unfinished one is released at once");
}

/// Holds every message not starting with `ok` until the gate opens; counts what is in flight at once and
/// records the order messages start in.
#[derive(Clone)]
struct Gate {
    open: tokio::sync::watch::Receiver<bool>,
    in_flight: Arc<std::sync::atomic::AtomicUsize>,
    most: Arc<std::sync::atomic::AtomicUsize>,
    started: Arc<std::sync::Mutex<Vec<String>>>,
}

impl Gate {
    fn new() -> (Self, tokio::sync::watch::Sender<bool>) {
        let (opener, open) = tokio::sync::watch::channel(false);
        let gate = Gate {
            open,
            in_flight: Arc::default(),
            most: Arc::default(),
            started: Arc::default(),
        };
        (gate, opener)
    }

    fn in_flight(&self) -> usize {
        self.in_flight.load(std::sync::atomic::Ordering::SeqCst)
    }

    fn most(&self) -> usize {
        self.most.load(std::sync::atomic::Ordering::SeqCst)
    }

    fn started(&self) -> Vec<String> {
        self.started.lock().unwrap().clone()
    }
}

impl Processor for Gate {
    fn name(&self) -> &'static str {
        "gate"
    }

    async fn process(&self, message: &crate::worker::message::Message) -> Outcome {
        use std::sync::atomic::Ordering::SeqCst;
        self.started.lock().unwrap().push(message.body.clone());
        let now = self.in_flight.fetch_add(1, SeqCst) + 1;
        self.most.fetch_max(now, SeqCst);
        if !message.body.starts_with("ok") {
            let _ = self.open.clone().wait_for(|open| *open).await;
        }
        self.in_flight.fetch_sub(1, SeqCst);
        Outcome::Done
    }
}

fn pipelined_settings(receivers: usize) -> Settings {
    Settings {
        consumer: "test/gate".into(),
        receivers,
        wait_seconds: 1,
        visibility_timeout: Duration::from_secs(30),
        retry: RETRY,
        drain: Duration::from_millis(200),
        max_receive_count: None,
    }
}

type Shutdown = futures::future::Shared<futures::future::BoxFuture<'static, ()>>;

fn shutdown_signal() -> (tokio::sync::oneshot::Sender<()>, Shutdown) {
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let shutdown = futures::FutureExt::shared(futures::FutureExt::boxed(async {
        let _ = stopped.await;
    }));
    (stop, shutdown)
}

/// Starts the runtime with `receivers` loops on `source`, `gate` as its processor; returns its task, the
/// sender that shuts it down, and its metrics.
fn start_gated(
    source: &crate::cloud::fake::FakeQueue,
    gate: &Gate,
    receivers: usize,
) -> (
    tokio::task::JoinHandle<()>,
    tokio::sync::oneshot::Sender<()>,
    WorkerMetrics,
) {
    let (stop, shutdown) = shutdown_signal();
    let metrics = WorkerMetrics::new();
    let queue = WorkQueue::new(source.clone(), None);
    let worker = tokio::spawn(run(
        queue,
        Arc::new(gate.clone()),
        pipelined_settings(receivers),
        metrics.clone(),
        shutdown,
    ));
    (worker, stop, metrics)
}

/// Signals shutdown and waits, at most 5 s, until the worker has drained and stopped.
async fn stop_and_join(stop: tokio::sync::oneshot::Sender<()>, worker: tokio::task::JoinHandle<()>) {
    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(5), worker)
        .await
        .expect("the drain is bounded")
        .unwrap();
}

/// Waits (bounded) until `condition` holds.
async fn until(what: &str, condition: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !condition() {
        assert!(tokio::time::Instant::now() < deadline, "{what}: not in 10 s");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn one_loop_keeps_receiving_while_its_batches_are_processed_up_to_its_budget() {
    use crate::cloud::fake::FakeQueue;

    let source = FakeQueue::new("work");
    let (gate, opener) = Gate::new();
    let (worker, stop, metrics) = start_gated(&source, &gate, 1);
    // One at a time, each a batch of its own: every one starts while the earlier ones still wait.
    for i in 1..=BUDGET {
        source.push(&format!("slow {i}"), BTreeMap::new(), BTreeMap::new());
        until("the next batch starts", || gate.in_flight() == i).await;
    }
    // The budget is full: more wait in the queue until room is freed.
    for i in 1..=2 {
        source.push(&format!("more {i}"), BTreeMap::new(), BTreeMap::new());
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(gate.in_flight(), BUDGET, "no more than the budget in flight");
    assert_eq!(source.visible(), 2, "left in the queue while the budget is full");
    opener.send(true).unwrap();
    until("all processed", || metrics.processed_total() == 12).await;
    until("all acknowledged", || source.held().is_empty()).await;
    assert_eq!(gate.most(), BUDGET, "at most the budget at once");
    stop_and_join(stop, worker).await;
}

#[tokio::test]
async fn on_shutdown_every_batch_in_flight_drains_settling_the_finished_and_releasing_the_rest() {
    use crate::cloud::fake::FakeQueue;

    let source = FakeQueue::new("work");
    let (gate, _opener) = Gate::new();
    let (worker, stop, metrics) = start_gated(&source, &gate, 1);
    // Three batches in flight at once: two stuck, one between them finished.
    source.push("stuck 1", BTreeMap::new(), BTreeMap::new());
    until("the first batch starts", || gate.in_flight() == 1).await;
    source.push("ok 1", BTreeMap::new(), BTreeMap::new());
    until("the second batch is processed", || metrics.processed_total() == 1).await;
    source.push("stuck 2", BTreeMap::new(), BTreeMap::new());
    until("the third batch starts", || gate.in_flight() == 2).await;
    until("the finished one is acknowledged", || source.held().len() == 2).await;
    stop_and_join(stop, worker).await;
    let left: Vec<String> = source.held().into_iter().map(|m| m.body).collect();
    assert_eq!(left, ["stuck 1", "stuck 2"], "the finished one is acknowledged");
    assert_eq!(source.visible(), 2, "both unfinished ones are released at once");
}

#[tokio::test]
async fn a_fifo_group_stays_in_order_while_batches_are_pipelined() {
    use crate::cloud::fake::FakeQueue;

    let grouped = |group: &str| BTreeMap::from([("MessageGroupId".to_owned(), group.to_owned())]);
    let source = FakeQueue::fifo("work.fifo");
    let (gate, opener) = Gate::new();
    let (worker, stop, metrics) = start_gated(&source, &gate, 2);
    source.push("a 1", BTreeMap::new(), grouped("a"));
    until("a's first starts", || gate.in_flight() == 1).await;
    // While a's first is in flight its next ones wait in the queue; another group's start at once.
    source.push("a 2", BTreeMap::new(), grouped("a"));
    source.push("b 1", BTreeMap::new(), grouped("b"));
    source.push("a 3", BTreeMap::new(), grouped("a"));
    until("b's first starts", || gate.in_flight() == 2).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        gate.started(),
        ["a 1", "b 1"],
        "no second of a group while its first is in flight"
    );
    opener.send(true).unwrap();
    until("all processed", || metrics.processed_total() == 4).await;
    let a: Vec<String> = gate
        .started()
        .into_iter()
        .filter(|b| b.starts_with('a'))
        .collect();
    assert_eq!(a, ["a 1", "a 2", "a 3"]);
    stop_and_join(stop, worker).await;
    assert!(source.held().is_empty(), "everything settled is deleted");
}
