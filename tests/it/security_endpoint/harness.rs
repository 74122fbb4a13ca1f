//! The suite's harness: the worker process, its key directory, the tally of requests tried and answered
//! as expected (and every body, for the leak scan), and raw HTTP/1.1 for what a client library will not
//! send (a 10 MB body the server refuses midway, a body that stalls).

use std::{
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tributary::worker::orders::security::api_keys::new_key;

use super::{common, issuer::AUDIENCE};

/// The request timeout the endpoints are given (short, so the stalled body is answered quickly).
pub(crate) const TIMEOUT_MILLIS: u64 = 2000;

/// Requests tried and answered as expected, the unexpected ones, and every response body.
#[derive(Default)]
pub(crate) struct Tally {
    pub(crate) tried: usize,
    pub(crate) expected: usize,
    pub(crate) failures: Vec<String>,
    pub(crate) bodies: Vec<String>,
}

/// The tally, shared by the phases and the tasks they spawn.
#[derive(Clone, Default)]
pub(crate) struct Shared(Arc<Mutex<Tally>>);

impl Shared {
    /// Records one request: whether it was answered as expected, and its body.
    pub(crate) fn record(&self, what: &str, ok: bool, detail: &str, body: Option<String>) {
        let mut tally = self.0.lock().unwrap();
        tally.tried += 1;
        if ok {
            tally.expected += 1;
        } else {
            tally.failures.push(format!("{what}: {detail}"));
        }
        tally.bodies.extend(body);
    }

    /// The tally, to report.
    pub(crate) fn lock(&self) -> std::sync::MutexGuard<'_, Tally> {
        self.0.lock().unwrap()
    }
}

/// Sends a request and records whether its status was `want`: (status, headers, JSON body).
pub(crate) async fn expect(
    tally: &Shared,
    what: &str,
    request: reqwest::RequestBuilder,
    want: u16,
) -> (u16, reqwest::header::HeaderMap, Value) {
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let text = response.text().await.unwrap_or_default();
    let body = serde_json::from_str(&text).unwrap_or(Value::Null);
    tally.record(what, status == want, &format!("{status} {text}"), Some(text));
    (status, headers, body)
}

/// (VmRSS, VmHWM) of `pid` in KiB.
pub(crate) fn memory(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// A running `tributary worker` (order-ack) and the directory its API keys are read from.
pub(crate) struct Endpoint {
    pub(crate) base: String,
    pub(crate) port: u16,
    pub(crate) worker: std::process::Child,
    pub(crate) key_dir: PathBuf,
}

impl Drop for Endpoint {
    fn drop(&mut self) {
        let _ = self.worker.kill();
        let _ = self.worker.wait();
    }
}

impl Endpoint {
    /// Starts an order-ack worker on `table` and `topic_arn` with API keys from its own directory, JWTs
    /// from `issuer`, small limits (64 at once, 20/s with bursts of 40, 2 s), and `tls` if given.
    pub(crate) fn start(
        work: &Path,
        name: &str,
        sink: (&str, &str),
        issuer: &str,
        tls: Option<Value>,
    ) -> Self {
        let port = common::free_port();
        let key_dir = work.join(format!("{name}-keys"));
        std::fs::create_dir_all(&key_dir).unwrap();
        let mut http = json!({
            "listen": format!("127.0.0.1:{port}"),
            "auth": {
                "apiKeys": {"dir": key_dir, "reloadSeconds": 1},
                // Two algorithm families, as during an issuer's key migration: RS256 tokens must still pass.
                "jwt": {
                    "issuer": issuer, "audiences": [AUDIENCE], "jwksUri": format!("{issuer}/jwks"),
                    "algorithms": ["ES256", "RS256"],
                },
            },
            "limits": {
                "maxBodyBytes": 65536, "requestTimeoutMillis": TIMEOUT_MILLIS,
                "maxConcurrentRequests": 64, "requestsPerSecond": 20, "burst": 40,
            },
        });
        if let Some(tls) = tls {
            http["tls"] = tls;
        }
        let config = json!({
            "consumer": {"namespace": "security", "name": name},
            "processor": "order-ack",
            "source": {"http": http},
            "sink": {"table": sink.0, "topicArn": sink.1},
            "metricsListen": format!("127.0.0.1:{}", common::free_port()),
        });
        let path = work.join(format!("{name}.yaml"));
        std::fs::write(&path, serde_yaml_ng::to_string(&config).unwrap()).unwrap();
        let worker = common::spawn_worker(&path, &work.join(format!("{name}.log")));
        Self {
            base: format!("http://127.0.0.1:{port}"),
            port,
            worker,
            key_dir,
        }
    }

    /// A new key of `principal` in the key directory, named `name` (as a Secret entry is mounted).
    pub(crate) fn add_key(&self, name: &str, principal: &str) -> String {
        let key = new_key(Some(principal)).unwrap();
        std::fs::write(self.key_dir.join(name), &key.entry).unwrap();
        key.key
    }

    /// Whether the worker process still runs.
    pub(crate) fn alive(&mut self) -> bool {
        matches!(self.worker.try_wait(), Ok(None))
    }

    /// Waits until `key` is accepted (`GET` of a missing order answers 404): the key file was read.
    pub(crate) async fn wait_accepts(&self, http: &reqwest::Client, key: &str) {
        common::eventually("the endpoint to accept the key", Duration::from_secs(30), || {
            let request = http.get(format!("{}/orders/o-none", self.base)).bearer_auth(key);
            async move { (request.send().await.ok()?.status() == 404).then_some(()) }
        })
        .await;
    }

    /// Waits until an authenticated request is answered at all (a broken endpoint answers 5xx).
    pub(crate) async fn wait_answers(&self, http: &reqwest::Client, key: &str) {
        common::eventually("the endpoint to answer", Duration::from_secs(30), || {
            let request = http.get(format!("{}/orders/o-none", self.base)).bearer_auth(key);
            async move { (request.send().await.ok()?.status() != 401).then_some(()) }
        })
        .await;
    }
}

/// An order body with `key` as its idempotency key.
pub(crate) fn order(key: &str) -> Value {
    json!({
        "customerId": "c-1",
        "items": [{"sku": "sku-a", "quantity": 1, "unitPriceCents": 100}],
        "region": "eu-west",
        "delivery": "standard",
        "idempotencyKey": key,
    })
}

/// The head of a `POST /orders` with `key` and `extra` headers.
pub(crate) fn post_head(key: &str, extra: &str) -> String {
    format!(
        "POST /orders HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nAuthorization: Bearer {key}\r\n{extra}\r\n"
    )
}

/// Raw HTTP/1.1: `head`, then `body` (`(bytes, chunked)`) written from another task (errors ignored: the
/// server may close early), or no body at all (a stalled client); the status read back, how long it
/// took, and the whole answer.
pub(crate) async fn raw(port: u16, head: String, body: Option<(usize, bool)>) -> (u16, Duration, String) {
    let stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let (mut read, mut write) = stream.into_split();
    let started = Instant::now();
    write.write_all(head.as_bytes()).await.unwrap();
    let writer = tokio::spawn(async move {
        if let Some((total, chunked)) = body {
            send_body(&mut write, total, chunked).await;
        }
        write // kept open until the answer is read
    });
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    let read_all = async {
        while let Ok(n @ 1..) = read.read(&mut buf).await {
            answer.extend_from_slice(&buf[..n]);
            if answer.windows(4).any(|w| w == b"\r\n\r\n") && answer.ends_with(b"}") {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(30), read_all).await;
    let took = started.elapsed();
    writer.abort();
    let text = String::from_utf8_lossy(&answer).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, took, text)
}

async fn send_body(write: &mut tokio::net::tcp::OwnedWriteHalf, total: usize, chunked: bool) {
    let block = vec![b'x'; 64 * 1024];
    let mut sent = 0;
    while sent < total {
        let n = block.len().min(total - sent);
        let frame = if chunked {
            [
                format!("{n:x}\r\n").into_bytes(),
                block[..n].to_vec(),
                b"\r\n".to_vec(),
            ]
            .concat()
        } else {
            block[..n].to_vec()
        };
        if write.write_all(&frame).await.is_err() {
            return;
        }
        sent += n;
    }
    if chunked {
        let _ = write.write_all(b"0\r\n\r\n").await;
    }
}
