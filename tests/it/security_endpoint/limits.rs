//! How much, how slow and how many: the body cap, the timeout, the rate limit and load shedding.

use std::time::{Duration, Instant};

use super::{
    Suite,
    harness::{TIMEOUT_MILLIS, expect, memory, post_head, raw},
};

const TEN_MB: usize = 10 * 1024 * 1024;

/// 10 MB bodies are refused with 413 without the worker's memory growing by them (by `Content-Length`
/// and on a chunked stream), and without credentials with 401. Returns RSS before and after, in KiB.
pub(crate) async fn body_cap(suite: &Suite) -> (u64, u64) {
    let (port, tally) = (suite.endpoint.port, &suite.tally);
    let (before, _) = memory(suite.endpoint.worker.id());
    let length = format!("Content-Length: {TEN_MB}\r\n");
    let cases = [
        (
            "a 10 MB body (Content-Length)",
            post_head(&suite.alice, &length),
            false,
            413,
        ),
        (
            "a 10 MB body (chunked)",
            post_head(&suite.alice, "Transfer-Encoding: chunked\r\n"),
            true,
            413,
        ),
        (
            "a 10 MB body without credentials",
            format!("POST /orders HTTP/1.1\r\nHost: x\r\n{length}\r\n"),
            false,
            401,
        ),
    ];
    for (what, head, chunked, want) in cases {
        let (status, _, text) = raw(port, head, Some((TEN_MB, chunked))).await;
        tally.record(what, status == want, &text, Some(text.clone()));
    }
    let (after, _) = memory(suite.endpoint.worker.id());
    let growth = after.saturating_sub(before);
    assert!(growth < 5 * 1024, "RSS grew by {growth} KiB for 10 MB bodies");
    (before, after)
}

/// The headers and a few bytes, then nothing: 408 when the timeout passes. Returns when it came.
pub(crate) async fn slow_body(suite: &Suite) -> Duration {
    let head = post_head(&suite.alice, "Content-Length: 1000\r\n") + "{\"customerId\":";
    let (status, took, text) = raw(suite.endpoint.port, head, None).await;
    suite
        .tally
        .record("a stalled body", status == 408, &text, Some(text.clone()));
    let timeout = Duration::from_millis(TIMEOUT_MILLIS);
    assert!(
        took >= timeout && took < timeout + Duration::from_secs(2),
        "answered after {took:?}"
    );
    took
}

/// The flood's outcome.
pub(crate) struct Flood {
    pub(crate) served: usize,
    pub(crate) limited: usize,
    pub(crate) shed: usize,
    pub(crate) took: Duration,
    pub(crate) peak_kib: u64,
}

/// 1,000 requests at once from one principal: its burst and rate are served, the rest 429 (or 503)
/// with `Retry-After`; the worker survives and serves afterwards.
pub(crate) async fn flood(suite: &mut Suite, alice_order: &str) -> Flood {
    let key = suite.endpoint.add_key("flood", "flood");
    suite.endpoint.wait_accepts(&suite.http, &key).await;
    let started = Instant::now();
    let requests = (0..1000).map(|i| {
        let request = suite.get(&format!("o-flood-{i}")).bearer_auth(&key);
        async move {
            match request.send().await {
                Ok(response) => {
                    let status = response.status().as_u16();
                    let retry_after = response.headers().contains_key("retry-after");
                    (status, retry_after, response.text().await.unwrap_or_default())
                }
                Err(error) => (0, false, error.to_string()),
            }
        }
    });
    let answers = futures::future::join_all(requests).await;
    let took = started.elapsed();
    let count = |s: u16| answers.iter().filter(|(status, _, _)| *status == s).count();
    let (served, limited, shed) = (count(404), count(429), count(503));
    for (status, retry_after, body) in answers {
        let expected = status == 404 || (matches!(status, 429 | 503) && retry_after);
        suite.tally.record(
            "a flood request",
            expected,
            &format!("{status} {body}"),
            Some(body),
        );
    }
    assert!(limited > 0, "{served} served, {limited} 429, {shed} 503");
    let allowed = 40 + 20 * (usize::try_from(took.as_secs()).unwrap() + 1);
    assert!(served <= allowed, "at most the burst and the rate: {served}");
    let (_, peak_kib) = memory(suite.endpoint.worker.id());
    assert!(suite.endpoint.alive(), "the worker survived the flood");
    super::common::eventually(
        "the endpoint to serve after the flood",
        Duration::from_secs(10),
        || {
            let request = suite.get(alice_order).bearer_auth(&suite.alice);
            async move { (request.send().await.ok()?.status() == 200).then_some(()) }
        },
    )
    .await;
    Flood {
        served,
        limited,
        shed,
        took,
        peak_kib,
    }
}

/// Stalled bodies from three principals (24 each, within their burst) want more than the pod's 64
/// slots: those beyond are shed at once with 503 and `Retry-After`, requests meanwhile are answered at
/// once (never queued), and once the stalled ones time out the endpoint serves again. Returns (held,
/// shed).
pub(crate) async fn shedding(suite: &Suite, alice_order: &str, key: &str) -> (usize, usize) {
    let mut heads = Vec::new();
    for name in ["hold-a", "hold-b", "hold-c"] {
        let holder = suite.endpoint.add_key(name, name);
        suite.endpoint.wait_accepts(&suite.http, &holder).await;
        heads.push(post_head(&holder, "Content-Length: 1000\r\n") + "{");
    }
    let port = suite.endpoint.port;
    let holders: Vec<_> = heads
        .iter()
        .flat_map(|head| (0..24).map(|_| tokio::spawn(raw(port, head.clone(), None))))
        .collect();
    // While the slots are held, requests of another principal are answered at once (served in a free
    // slot, refused by its rate, or shed with 503 and Retry-After), never queued behind the stalled ones.
    let deadline = Instant::now() + Duration::from_millis(TIMEOUT_MILLIS / 2);
    for _ in 0..50 {
        if Instant::now() >= deadline {
            break;
        }
        let sent = Instant::now();
        let response = suite.get(alice_order).bearer_auth(key).send().await.unwrap();
        let (status, took) = (response.status().as_u16(), sent.elapsed());
        let shed_now = status == 503 && response.headers().contains_key("retry-after");
        let ok = (matches!(status, 200 | 429) || shed_now) && took < Duration::from_millis(500);
        let what = "a request while the slots are held";
        let body = response.text().await.unwrap_or_default();
        suite
            .tally
            .record(what, ok, &format!("{status} after {took:?}"), Some(body));
    }
    let (mut held, mut shed) = (0, 0);
    for holder in holders {
        let (status, took, text) = holder.await.unwrap();
        let timed_out = status == 408 && took >= Duration::from_millis(TIMEOUT_MILLIS);
        let refused = status == 503 && text.to_ascii_lowercase().contains("retry-after");
        held += usize::from(timed_out);
        shed += usize::from(refused);
        let what = "a stalled request over the concurrency limit";
        suite.tally.record(
            what,
            timed_out || refused,
            &format!("{status} {took:?}"),
            Some(text),
        );
    }
    assert!(held <= 64 && shed >= 72 - 64, "{held} held, {shed} shed");
    let tally = &suite.tally;
    expect(
        tally,
        "served again after the shedding",
        suite.get(alice_order).bearer_auth(key),
        200,
    )
    .await;
    (held, shed)
}

/// A client that trickles its request head (slowloris) is disconnected once the header read timeout has
/// passed, before authentication or any limit sees it. Returns how long the connection was held.
pub(crate) async fn slow_headers(suite: &Suite) -> Duration {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let started = Instant::now();
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", suite.endpoint.port))
        .await
        .unwrap();
    // A head that never ends: the request line and one header, then a byte a second.
    stream
        .write_all(b"POST /orders HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        .await
        .unwrap();
    let mut closed = false;
    let limit = tributary::worker::orders::security::serve::HEADER_READ_TIMEOUT + Duration::from_secs(10);
    while started.elapsed() < limit {
        if stream.write_all(b"X").await.is_err() {
            closed = true;
            break;
        }
        let mut buf = [0u8; 512];
        if let Ok(Ok(0) | Err(_)) = tokio::time::timeout(Duration::from_secs(1), stream.read(&mut buf)).await
        {
            closed = true;
            break;
        }
    }
    let held = started.elapsed();
    suite.tally.record(
        "a request head trickled a byte a second",
        closed && held >= Duration::from_secs(5),
        &format!("closed {closed} after {held:?}"),
        None,
    );
    held
}
