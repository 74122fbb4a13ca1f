//! The supervisor's decisions, and the runtime on the in-memory queue fake with a processor that
//! panics and a source that goes down: the panicking message is retried and dead-lettered with the
//! panic's message while the loop goes on; readiness follows the source; the endpoints answer 503.

use std::{
    collections::BTreeMap,
    sync::atomic::{AtomicBool, AtomicU32, Ordering},
};

use super::*;
use crate::{
    cloud::{
        Error, Operation, Result,
        fake::FakeQueue,
        queue::{
            BatchOutcome, DEAD_LETTER_REASON, MessageQueue, OutgoingMessage, Receive, ReceivedMessage,
            VisibilityChange,
        },
    },
    worker::{
        config::Retry,
        endpoints,
        metrics::WorkerMetrics,
        queue::WorkQueue,
        runtime::{self, Settings},
    },
};

#[test]
fn backoff_doubles_to_thirty_seconds() {
    let pauses: Vec<u64> = (1..=8).map(|n| restart_backoff(n).as_secs()).collect();
    assert_eq!(pauses, [1, 2, 4, 8, 16, 30, 30, 30]);
    assert_eq!(restart_backoff(0), Duration::from_secs(1));
}

#[test]
fn panic_messages_are_read_from_str_and_string() {
    let text: Box<dyn Any + Send> = Box::new("boom");
    assert_eq!(panic_message(&*text), "boom");
    let formatted: Box<dyn Any + Send> = Box::new(format!("bad {}", 7));
    assert_eq!(panic_message(&*formatted), "bad 7");
    let other: Box<dyn Any + Send> = Box::new(7_u8);
    assert_eq!(panic_message(&*other), "(no message)");
}

/// No pause between restarts: the test is about what is restarted and counted.
fn at_once(_: usize) -> Duration {
    Duration::ZERO
}

#[tokio::test]
async fn a_dying_loop_is_restarted_counted_and_fails_liveness() {
    let health = Health::default();
    let starts = Arc::new(AtomicU32::new(0));
    let counted = starts.clone();
    // Dies seven times, then runs to its normal end.
    let shutdown = std::future::pending::<()>().boxed().shared();
    supervise("test".into(), health.clone(), (shutdown, at_once), move || {
        let n = counted.fetch_add(1, Ordering::SeqCst);
        async move {
            assert!(n >= 7, "loop {n} dies");
        }
    })
    .await;
    assert_eq!(starts.load(Ordering::SeqCst), 8);
    assert_eq!(health.restarts_total(), 7);
    assert!(
        !health.is_live_at(Instant::now()),
        "seven restarts within the window"
    );
}

#[tokio::test]
async fn shutdown_ends_the_backoff() {
    let health = Health::default();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let shutdown = async move {
        let _ = stopped.await;
    }
    .boxed()
    .shared();
    let _ = stop.send(());
    // With a day's backoff, only the shutdown can end this in time.
    let day: fn(usize) -> Duration = |_| Duration::from_secs(86_400);
    let supervised = supervise("test".into(), health.clone(), (shutdown, day), || async {
        panic!("always");
    });
    tokio::time::timeout(Duration::from_secs(10), supervised)
        .await
        .expect("the shutdown ended the backoff");
    assert_eq!(health.restarts_total(), 1);
}

/// Panics on bodies starting with `panic`, succeeds on the others.
struct Panicky;

impl Processor for Panicky {
    fn name(&self) -> &'static str {
        "panicky"
    }

    async fn process(&self, message: &Message) -> Outcome {
        assert!(
            !message.body.starts_with("panic"),
            "cannot handle {}",
            message.body
        );
        Outcome::Done
    }
}

/// A fake queue whose receives fail while `down` is set, as an unreachable server's would.
#[derive(Clone)]
struct Flaky {
    queue: FakeQueue,
    down: Arc<AtomicBool>,
}

impl MessageQueue for Flaky {
    fn url(&self) -> &str {
        self.queue.url()
    }

    async fn receive(&self, request: &Receive) -> Result<Vec<ReceivedMessage>> {
        if self.down.load(Ordering::SeqCst) {
            return Err(Error::Unreachable {
                operation: Operation::new("fake", "Receive", "work"),
                detail: "connection refused".into(),
            });
        }
        self.queue.receive(request).await
    }

    async fn delete(&self, receipts: &[(String, String)]) -> Result<BatchOutcome> {
        self.queue.delete(receipts).await
    }

    async fn change_visibility(&self, changes: &[VisibilityChange]) -> Result<BatchOutcome> {
        self.queue.change_visibility(changes).await
    }

    async fn send(&self, messages: &[OutgoingMessage]) -> Result<BatchOutcome> {
        self.queue.send(messages).await
    }

    async fn send_one(&self, message: &OutgoingMessage) -> Result<()> {
        self.queue.send_one(message).await
    }

    fn attribute_limit(&self) -> Option<usize> {
        self.queue.attribute_limit()
    }
}

fn settings() -> Settings {
    Settings {
        consumer: "test/panicky".into(),
        receivers: 1,
        wait_seconds: 1,
        visibility_timeout: Duration::from_secs(30),
        // No backoff: a retried message is visible again at once.
        retry: Retry {
            max_attempts: 3,
            initial_backoff_seconds: 0,
            max_backoff_seconds: 0,
        },
        drain: Duration::from_secs(1),
        max_receive_count: None,
    }
}

/// Polls `done` every 10 ms for at most 10 s.
async fn until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(Instant::now() < deadline, "not {what} within 10 s");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn a_panicking_processor_fails_its_message_not_its_loop() {
    let (source, dead) = (FakeQueue::new("work"), FakeQueue::new("dead"));
    source.push("panic 1", BTreeMap::new(), BTreeMap::new());
    source.push("ok 1", BTreeMap::new(), BTreeMap::new());
    let metrics = WorkerMetrics::new();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let shutdown = async {
        let _ = stopped.await;
    }
    .boxed()
    .shared();
    let queue = WorkQueue::new(source.clone(), Some(dead.clone()));
    let worker = tokio::spawn(runtime::run(
        queue,
        Arc::new(Panicky),
        settings(),
        metrics.clone(),
        shutdown,
    ));
    until("settled", || {
        metrics.processed_total() == 1 && metrics.dead_lettered_total() == 1
    })
    .await;
    // Messages pushed after the panics are still received: the loop lives on.
    source.push("ok 2", BTreeMap::new(), BTreeMap::new());
    until("processed after the panics", || metrics.processed_total() == 2).await;
    stop.send(()).unwrap();
    worker.await.unwrap();

    assert_eq!(
        metrics.failed_total(),
        3,
        "each attempt of the panicking message failed"
    );
    assert_eq!(metrics.health().restarts_total(), 0, "no loop died");
    assert!(source.held().is_empty(), "everything settled");
    let letters = dead.held();
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].body, "panic 1", "dead-lettered, not lost");
    let reason = letters[0].attributes[DEAD_LETTER_REASON]
        .string_value
        .clone()
        .unwrap_or_default();
    assert!(
        reason.contains("the processor panicked: cannot handle panic 1"),
        "{reason}"
    );
}

#[tokio::test]
async fn readiness_follows_a_source_that_goes_down_and_comes_back() {
    let source = Flaky {
        queue: FakeQueue::new("work"),
        down: Arc::new(AtomicBool::new(false)),
    };
    let metrics = WorkerMetrics::new();
    let health = metrics.health().clone();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let shutdown = async {
        let _ = stopped.await;
    }
    .boxed()
    .shared();
    let queue = WorkQueue::new(source.clone(), None);
    let worker = tokio::spawn(runtime::run(
        queue,
        Arc::new(Panicky),
        settings(),
        metrics.clone(),
        shutdown,
    ));
    // Judged 31 s ahead, so the test needs no 30 s wait: has a failure streak begun or not?
    let ready_later = || health.is_ready_at(Instant::now() + Duration::from_secs(31));
    source.queue.push("ok 1", BTreeMap::new(), BTreeMap::new());
    until("processed", || metrics.processed_total() == 1).await;
    assert!(ready_later());

    source.down.store(true, Ordering::SeqCst);
    until("unready while the source is down", || !ready_later()).await;
    assert!(health.is_ready_at(Instant::now()), "not before the bound");
    assert!(
        health.is_live_at(Instant::now()),
        "an unreachable source is not a dead worker"
    );

    source.down.store(false, Ordering::SeqCst);
    until("ready again", ready_later).await;
    source.queue.push("ok 2", BTreeMap::new(), BTreeMap::new());
    until("processed after the outage", || metrics.processed_total() == 2).await;
    stop.send(()).unwrap();
    worker.await.unwrap();
}

#[tokio::test]
async fn the_endpoints_answer_503_when_not_live_or_not_ready() {
    use tower::ServiceExt as _;
    let metrics = WorkerMetrics::new();
    let state = endpoints::State {
        metrics: metrics.clone(),
        consumer: "test/c".into(),
        processor: "panicky",
    };
    let get = |path: &str| {
        let request = axum::http::Request::get(path)
            .body(axum::body::Body::empty())
            .unwrap();
        endpoints::router(state.clone()).oneshot(request)
    };
    assert_eq!(get("/healthz").await.unwrap().status(), 200);
    assert_eq!(get("/readyz").await.unwrap().status(), 200);
    let now = Instant::now();
    for _ in 0..6 {
        metrics.health().loop_restarted(now);
    }
    assert_eq!(get("/healthz").await.unwrap().status(), 503);
    assert_eq!(
        get("/readyz").await.unwrap().status(),
        200,
        "readiness is about the source"
    );
    let text = axum::body::to_bytes(get("/metrics").await.unwrap().into_body(), usize::MAX)
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&text);
    assert!(
        text.contains("tributary_worker_loop_restarts_total{consumer=\"test/c\",processor=\"panicky\"} 6"),
        "{text}"
    );
}
