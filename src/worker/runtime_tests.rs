//! Tests of the runtime: its pure decisions (outcomes into queue operations, the receive limit, reasons), and
//! the drain on the fake queue.

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
    use std::collections::BTreeMap;

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
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let shutdown = futures::FutureExt::shared(futures::FutureExt::boxed(async {
        let _ = stopped.await;
    }));
    let queue = WorkQueue::new(source.clone(), None);
    let worker = tokio::spawn(run(
        queue,
        Arc::new(HalfDone),
        settings,
        metrics.clone(),
        shutdown,
    ));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while metrics.processed_total() < 2 {
        assert!(tokio::time::Instant::now() < deadline, "not processed in 10 s");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(5), worker)
        .await
        .expect("the drain is bounded")
        .unwrap();
    let left: Vec<String> = source.held().into_iter().map(|m| m.body).collect();
    assert_eq!(left, ["stuck 1"], "the finished ones are acknowledged");
    assert_eq!(source.visible(), 1, "the unfinished one is released at once");
}
