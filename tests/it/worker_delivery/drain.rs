//! SIGTERM with deliveries in flight, against the test processor holding every first request (`gated`)
//! until the test lets it answer, with the worker's SQS calls going through a proxy of the test's that
//! records each call's action and when it began:
//! - drain within the grace: the worker stops receiving at once (no receive begins after the signal,
//!   though one began every second before it), waits for the deliveries in flight, deletes them (nothing
//!   redelivered: each answered once) and exits 0;
//! - the drain time runs out: the worker acknowledges what finished, releases the unfinished messages
//!   and exits 0; they are visible at once, well before the visibility timeout, and another worker does
//!   them;
//! - the worker SIGKILLed (the kubelet after the grace): the messages come back after the visibility
//!   timeout and another worker does them. Nothing lost in any case.

use std::{
    process::Child,
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{body::Body, extract::Request, response::Response};
use tokio::time::Instant;

use super::{CONVERGE, Reap, config_at, left_in, processor, send, sqs_queue, start_worker_with, stop};
use crate::support as common;

/// The SQS calls a worker made through the proxy: action and when it began.
#[derive(Clone, Default)]
struct Calls(Arc<Mutex<Vec<(String, Instant)>>>);

impl Calls {
    /// How many calls of `action` began after `since`.
    fn after(&self, action: &str, since: Instant) -> usize {
        let calls = self.0.lock().unwrap();
        calls.iter().filter(|(a, at)| a == action && *at > since).count()
    }
}

/// A proxy on 127.0.0.1 forwarding every request to the test bed's AWS endpoint, recording the SQS
/// action of each (the JSON protocol's `x-amz-target: AmazonSQS.<Action>`). Returns its URL.
async fn sqs_proxy(calls: Calls) -> (String, tokio::task::JoinHandle<()>) {
    let upstream = common::var("AWS_ENDPOINT_URL");
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let app = axum::Router::new().fallback(move |request: Request| {
        let (client, upstream, calls) = (client.clone(), upstream.clone(), calls.clone());
        async move { forward(&client, &upstream, &calls, request).await }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let server = tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    (url, server)
}

async fn forward(client: &reqwest::Client, upstream: &str, calls: &Calls, request: Request) -> Response {
    let target = request
        .headers()
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let action = target.rsplit('.').next().unwrap_or_default().to_owned();
    calls.0.lock().unwrap().push((action, Instant::now()));
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, 1 << 24).await.unwrap();
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let mut outgoing = client.request(parts.method, format!("{upstream}{path}"));
    for (name, value) in &parts.headers {
        if !matches!(name.as_str(), "host" | "content-length" | "connection") {
            outgoing = outgoing.header(name, value);
        }
    }
    let answer = outgoing.body(body).send().await.unwrap();
    let mut response = Response::builder().status(answer.status());
    for (name, value) in answer.headers() {
        if !matches!(
            name.as_str(),
            "content-length" | "transfer-encoding" | "connection"
        ) {
            response = response.header(name, value);
        }
    }
    response.body(Body::from(answer.bytes().await.unwrap())).unwrap()
}

/// A test processor and its log.
async fn gated_processor() -> (u16, processor::Log, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let log = processor::Log::default();
    let server = processor::serve(listener, log.clone());
    (port, log, server)
}

/// A worker configuration on SQS queue `url`: two receivers polling every second, deliveries that may
/// take 60 s, and `drain_seconds` to finish them after SIGTERM.
fn worker_config(url: &str, port: u16, drain_seconds: u32) -> String {
    let source = format!("  sqs: {{queueUrl: '{url}', receivers: 2, waitTimeSeconds: 1}}");
    let config = config_at(&source, port, "", common::free_port(), "")
        .replace("timeoutSeconds: 1\n", "timeoutSeconds: 60\n")
        .replace("drainSeconds: 5\n", &format!("drainSeconds: {drain_seconds}\n"));
    assert!(
        config.contains(&format!("drainSeconds: {drain_seconds}\n")),
        "{config}"
    );
    config
}

fn sigterm(worker: &Reap) {
    let pid = worker.0.as_ref().expect("running").id();
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

/// Waits for `worker` to exit, for at most `bound` (else it is killed with the failing test); its exit
/// status.
async fn exit_within(worker: &mut Reap, bound: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + bound;
    loop {
        if let Some(status) = running(worker).try_wait().unwrap() {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "the worker did not exit within {bound:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn running(worker: &mut Reap) -> &mut Child {
    worker.0.as_mut().expect("running")
}

/// Sends `n` gated messages to `url`; their bodies.
async fn send_gated(sqs: &aws_sdk_sqs::Client, url: &str, n: usize) -> Vec<String> {
    let mut bodies = Vec::new();
    for i in 0..n {
        let body = format!("gated-{i}");
        send(sqs, url, &body, &[]).await;
        bodies.push(body);
    }
    bodies
}

/// Waits until every one of `bodies` has a request in flight at the processor.
async fn all_in_flight(log: &processor::Log, bodies: &[String]) -> Instant {
    common::eventually("every delivery in flight", CONVERGE, || async {
        bodies
            .iter()
            .all(|b| !log.requests_of(b).is_empty())
            .then(Instant::now)
    })
    .await
}

#[tokio::test]
async fn sigterm_stops_receiving_at_once_and_settles_the_deliveries_in_flight() {
    let _bed = common::shared().await;
    let sqs = aws_sdk_sqs::Client::new(&common::aws_config().await);
    let url = sqs_queue(&sqs, "delivery-drain").await;
    let bodies = send_gated(&sqs, &url, 4).await;
    let (port, log, server) = gated_processor().await;
    let calls = Calls::default();
    let (proxy, proxy_server) = sqs_proxy(calls.clone()).await;
    let (worker, worker_log) = start_worker_with(
        "delivery-drain",
        &worker_config(&url, port, 20),
        &[("AWS_ENDPOINT_URL", proxy.as_str())],
    );
    let mut worker = Reap(Some(worker));
    let in_flight = all_in_flight(&log, &bodies).await;
    // The idle receiver keeps polling while the deliveries are in flight: the receives would show.
    common::eventually(
        "a receive while the deliveries are in flight",
        CONVERGE,
        || async { (calls.after("ReceiveMessage", in_flight) > 0).then_some(()) },
    )
    .await;

    let signalled = Instant::now();
    sigterm(&worker);
    // The drain: the deliveries stay unanswered for 2 s, in which a receive would have begun twice.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        running(&mut worker).try_wait().unwrap().is_none(),
        "the worker waits for its deliveries in flight"
    );
    // A receive may begin in the moment the signal takes to arrive; none after that.
    let settled_signal = signalled + Duration::from_millis(100);
    assert_eq!(
        calls.after("ReceiveMessage", settled_signal),
        0,
        "no receive after SIGTERM"
    );
    let answered = Instant::now();
    log.open_gate();
    let status = exit_within(&mut worker, Duration::from_secs(15)).await;
    assert!(
        status.success(),
        "exits 0 after draining: {status}\n{}",
        std::fs::read_to_string(&worker_log).unwrap_or_default()
    );
    server.abort();

    assert_eq!(
        calls.after("ReceiveMessage", settled_signal),
        0,
        "no receive after SIGTERM"
    );
    assert!(
        calls.after("DeleteMessageBatch", answered) + calls.after("DeleteMessage", answered) > 0,
        "the deliveries answered during the drain are deleted"
    );
    proxy_server.abort();
    for body in &bodies {
        assert_eq!(log.requests_of(body).len(), 1, "{body} delivered once");
    }
    assert!(log.done().values().all(|&n| n == 1));
    assert_eq!(left_in(&sqs, &url).await, 0, "settled: nothing to redeliver");
    println!(
        "SIGTERM with {} deliveries in flight: no receive after the signal, exited 0 {:.1} s after the answers",
        bodies.len(),
        answered.elapsed().as_secs_f64()
    );
}

#[tokio::test]
async fn when_the_drain_time_runs_out_the_unfinished_messages_are_released_for_another_worker() {
    let _bed = common::shared().await;
    let sqs = aws_sdk_sqs::Client::new(&common::aws_config().await);
    let url = sqs_queue(&sqs, "delivery-drain-out").await;
    let bodies = send_gated(&sqs, &url, 3).await;
    send(&sqs, &url, "ok-finished", &[]).await;
    let (port, log, server) = gated_processor().await;
    // One receiver: the four messages come in one batch, one of them answered before the drain ends.
    let config = worker_config(&url, port, 1).replace("receivers: 2", "receivers: 1");
    let (first, first_log) = start_worker_with("delivery-drain-out", &config, &[]);
    let mut first = Reap(Some(first));
    all_in_flight(&log, &bodies).await;
    common::eventually("ok-finished answered", CONVERGE, || async {
        (log.done().len() == 1).then_some(())
    })
    .await;
    let signalled = Instant::now();
    sigterm(&first);
    let status = exit_within(&mut first, Duration::from_secs(10)).await;
    assert!(
        status.success(),
        "exits 0 when the drain time is over: {status}\n{}",
        std::fs::read_to_string(&first_log).unwrap_or_default()
    );
    // The first requests are never answered; a second worker gets the messages, released at once
    // rather than after the queue's 30 s visibility timeout.
    let (second, second_log) = start_worker_with("delivery-drain-next", &worker_config(&url, port, 5), &[]);
    let mut second = Reap(Some(second));
    common::eventually("every message done by the second worker", CONVERGE, || async {
        (log.done().len() == bodies.len() + 1).then_some(())
    })
    .await;
    let back_in = signalled.elapsed();
    stop(second.take(), &second_log).await;
    server.abort();
    assert!(
        back_in < Duration::from_secs(20),
        "released, not left for the 30 s visibility timeout: {back_in:?}"
    );
    for body in &bodies {
        assert_eq!(
            log.requests_of(body).len(),
            2,
            "{body}: the held request, then the redelivery"
        );
    }
    assert_eq!(
        log.requests_of("ok-finished").len(),
        1,
        "what finished before the drain ran out is acknowledged, not redelivered"
    );
    assert!(log.done().values().all(|&n| n == 1));
    assert_eq!(left_in(&sqs, &url).await, 0, "nothing lost, nothing left");
}

#[tokio::test]
async fn a_worker_killed_with_deliveries_in_flight_loses_nothing() {
    let _bed = common::shared().await;
    let sqs = aws_sdk_sqs::Client::new(&common::aws_config().await);
    let url = sqs_queue(&sqs, "delivery-killed").await;
    let bodies = send_gated(&sqs, &url, 3).await;
    let (port, log, server) = gated_processor().await;
    // The shortest hold the worker takes: a 10 s visibility (see worker::hold).
    let config = worker_config(&url, port, 5).replace(
        "waitTimeSeconds: 1}",
        "waitTimeSeconds: 1, visibilityTimeoutSeconds: 10}",
    );
    let (first, _) = start_worker_with("delivery-killed", &config, &[]);
    let first = Reap(Some(first));
    let in_flight = all_in_flight(&log, &bodies).await;
    drop(first); // SIGKILL
    let (second, second_log) = start_worker_with("delivery-killed-next", &config, &[]);
    let mut second = Reap(Some(second));
    common::eventually("every message done by the second worker", CONVERGE, || async {
        (log.done().len() == bodies.len()).then_some(())
    })
    .await;
    stop(second.take(), &second_log).await;
    server.abort();
    for body in &bodies {
        let requests = log.requests_of(body);
        assert_eq!(requests.len(), 2, "{body}: the held request, then the redelivery");
        assert!(
            requests[1].at - in_flight >= Duration::from_secs(8),
            "{body} came back after the visibility timeout: {:?}",
            requests[1].at - in_flight
        );
    }
    assert!(log.done().values().all(|&n| n == 1));
    assert_eq!(left_in(&sqs, &url).await, 0, "nothing lost, nothing left");
}
