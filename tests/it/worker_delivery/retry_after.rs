//! `Retry-After` on the container's answer, against the test processor from SQS: a 503 asking for 5 s
//! is retried no sooner; a 429 asking for an hour is retried after the Consumer's longest backoff (6 s),
//! not an hour; an HTTP-date is read; a bad value is ignored (the 1 s backoff applies). Measured as the
//! time between the first and the second request of each message at the test processor.

use std::time::Duration;

use super::{CONVERGE, config_at, left_in, processor, send, sqs_queue, start_worker, stop};
use crate::support as common;

/// The gap between the first two requests of `body`.
fn gap(log: &processor::Log, body: &str) -> Duration {
    let requests = log.requests_of(body);
    assert_eq!(requests.len(), 2, "{body}: one retry, then done");
    requests[1].at - requests[0].at
}

#[tokio::test]
async fn retry_after_delays_the_retry_within_the_longest_backoff() {
    let _bed = common::shared().await;
    let aws = common::aws_config().await;
    let sqs = aws_sdk_sqs::Client::new(&aws);
    let source = sqs_queue(&sqs, "retry-after").await;
    let bodies = ["after5-1", "afterlong-1", "afterdate-1", "afterbad-1"];
    for body in bodies {
        send(&sqs, &source, body, &[]).await;
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let log = processor::Log::default();
    let server = processor::serve(listener, log.clone());
    let sqs_source = format!("  sqs: {{queueUrl: '{source}', receivers: 2, waitTimeSeconds: 1}}");
    let config = config_at(&sqs_source, port, "", common::free_port(), "")
        .replace("maxBackoffSeconds: 1}", "maxBackoffSeconds: 6}");
    assert!(config.contains("maxBackoffSeconds: 6"), "{config}");
    let (worker, worker_log) = start_worker("delivery-retry-after", &config);
    common::eventually("every message retried once and done", CONVERGE, || async {
        (log.done().len() == bodies.len()).then_some(())
    })
    .await;
    stop(worker, &worker_log).await;
    server.abort();

    let asked = gap(&log, "after5-1");
    assert!(asked >= Duration::from_secs(5), "Retry-After: 5 waited {asked:?}");
    let capped = gap(&log, "afterlong-1");
    assert!(
        capped >= Duration::from_secs(6) && capped < Duration::from_secs(10),
        "Retry-After: 3600 waits maxBackoffSeconds (6 s), not an hour: {capped:?}"
    );
    // The date is written in whole seconds: 6 s ahead is at least 5 s after the answer.
    let dated = gap(&log, "afterdate-1");
    assert!(
        dated >= Duration::from_secs(5),
        "an HTTP-date 6 s ahead waited {dated:?}"
    );
    let ignored = gap(&log, "afterbad-1");
    assert!(
        ignored < Duration::from_secs(4),
        "Retry-After: soon is ignored, the 1 s backoff applies: {ignored:?}"
    );
    assert_eq!(left_in(&sqs, &source).await, 0, "nothing left");
    println!(
        "Retry-After: asked 5 s → {:.1} s, asked 3600 s → {:.1} s (max backoff 6 s), a date 6 s ahead → {:.1} s, a bad value → {:.1} s",
        asked.as_secs_f64(),
        capped.as_secs_f64(),
        dated.as_secs_f64(),
        ignored.as_secs_f64()
    );
}
