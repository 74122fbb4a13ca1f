//! The test processor: an HTTP/1.1 server on 127.0.0.1 that records every request (headers and body) and
//! answers as the body's script says, the first time or every time. Hand-written on tokio rather than on
//! axum so that it can do what a crashing container does: read a request and close the connection without
//! answering. Its effect (what an idempotent processor would do) is recorded once per `ce-id`, on the 2xx
//! answers only.

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use tokio::{
    io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader},
    net::{TcpListener, TcpStream},
};

/// One request as received: lowercase header names, and when it came.
#[derive(Clone, Debug)]
pub struct Recorded {
    pub headers: BTreeMap<String, String>,
    pub body: String,
    pub at: tokio::time::Instant,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }
}

/// What the processor saw and did.
#[derive(Clone, Default)]
pub struct Log {
    inner: Arc<Mutex<Inner>>,
    /// Holds the first attempt of every `gated` message until opened.
    gate: Arc<tokio::sync::Notify>,
    opened: Arc<std::sync::atomic::AtomicBool>,
}

#[derive(Default)]
struct Inner {
    requests: Vec<Recorded>,
    /// 2xx answers per ce-id, and the effects (applied once per ce-id).
    done: BTreeMap<String, u32>,
}

impl Log {
    pub fn requests(&self) -> Vec<Recorded> {
        self.inner.lock().unwrap().requests.clone()
    }

    /// Requests whose body is `body`.
    pub fn requests_of(&self, body: &str) -> Vec<Recorded> {
        self.requests().into_iter().filter(|r| r.body == body).collect()
    }

    /// 2xx answers per ce-id.
    pub fn done(&self) -> BTreeMap<String, u32> {
        self.inner.lock().unwrap().done.clone()
    }

    /// Lets every held `gated` request (and every later one) answer.
    pub fn open_gate(&self) {
        self.opened.store(true, std::sync::atomic::Ordering::SeqCst);
        self.gate.notify_waiters();
    }

    async fn pass_gate(&self) {
        let notified = self.gate.notified();
        if !self.opened.load(std::sync::atomic::Ordering::SeqCst) {
            notified.await;
        }
    }
}

/// Serves the script on `listener` until dropped (the task is aborted with the returned handle).
pub fn serve(listener: TcpListener, log: Log) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(connection(stream, log.clone()));
        }
    })
}

/// Answers the requests of one keep-alive connection.
async fn connection(stream: TcpStream, log: Log) {
    let mut stream = BufReader::new(stream);
    loop {
        let Some((method, path, headers, body)) = read_request(&mut stream).await else {
            return;
        };
        if method == "GET" {
            let _ = respond(
                stream.get_mut(),
                200,
                &[],
                if path == "/healthz" { "ok" } else { "" },
            )
            .await;
            continue;
        }
        let at = tokio::time::Instant::now();
        let recorded = Recorded { headers, body, at };
        let id = recorded.header("ce-id").unwrap_or_default().to_owned();
        let attempt = {
            let mut inner = log.inner.lock().unwrap();
            inner.requests.push(recorded.clone());
            inner.requests.iter().filter(|r| r.body == recorded.body).count()
        };
        let (status, headers, body) = match script(&recorded.body, attempt, &log).await {
            // A container killed mid-request: the request read, the connection closed, no answer.
            Answer::Drop => return,
            Answer::Status(status, headers, body) => (status, headers, body),
        };
        if (200..300).contains(&status) {
            *log.inner.lock().unwrap().done.entry(id).or_default() += 1;
        }
        if respond(stream.get_mut(), status, &headers, &body).await.is_err() {
            return;
        }
    }
}

enum Answer {
    Status(u16, Vec<(String, String)>, String),
    Drop,
}

/// How long `slow` makes its first answer wait: longer than the worker's delivery timeout in the tests.
pub const SLOW: Duration = Duration::from_secs(3);

/// The script: `<kind>-<anything>`; kinds failing once answer 200 from the second attempt on.
async fn script(body: &str, attempt: usize, log: &Log) -> Answer {
    let ok = || Answer::Status(200, Vec::new(), String::new());
    let kind = body.split('-').next().unwrap_or_default();
    let first = attempt == 1;
    match kind {
        "reply" => Answer::Status(
            200,
            vec![
                ("ce-specversion".into(), "1.0".into()),
                ("ce-id".into(), format!("re-{body}")),
                ("ce-source".into(), "/test-processor".into()),
                ("ce-type".into(), "com.example.replied".into()),
                ("ce-shard".into(), "s%201".into()),
                ("content-type".into(), "application/json".into()),
            ],
            format!("{{\"reply\":\"{body}\"}}"),
        ),
        "bad" => Answer::Status(
            400,
            Vec::new(),
            format!("invalid order: {body} {}", "x".repeat(300)),
        ),
        "gone" => Answer::Status(404, Vec::new(), "no such route".into()),
        "t408" if first => Answer::Status(408, Vec::new(), "request timeout".into()),
        "t429" if first => Answer::Status(429, vec![("retry-after".into(), "1".into())], "slow down".into()),
        "t500" if first => Answer::Status(500, Vec::new(), "boom".into()),
        "slow" if first => {
            tokio::time::sleep(SLOW).await;
            ok()
        }
        "drop" if first => Answer::Drop,
        // Retry-After: seconds, longer than the Consumer's longest backoff, an HTTP-date, a bad value.
        "after5" if first => retry_after(503, "5".into()),
        "afterlong" if first => retry_after(429, "3600".into()),
        "afterdate" if first => {
            let at = std::time::SystemTime::now() + Duration::from_secs(6);
            retry_after(503, httpdate::fmt_http_date(at))
        }
        "afterbad" if first => retry_after(503, "soon".into()),
        "gated" if first => {
            log.pass_gate().await;
            ok()
        }
        _ => ok(),
    }
}

fn retry_after(status: u16, value: String) -> Answer {
    Answer::Status(status, vec![("retry-after".into(), value)], "busy".into())
}

/// Reads one request (method, path, lowercase headers, body); `None` at the end of the connection.
async fn read_request(
    stream: &mut BufReader<TcpStream>,
) -> Option<(String, String, BTreeMap<String, String>, String)> {
    let mut line = String::new();
    if stream.read_line(&mut line).await.ok()? == 0 {
        return None;
    }
    let mut parts = line.split_whitespace();
    let (method, path) = (parts.next()?.to_owned(), parts.next()?.to_owned());
    let mut headers = BTreeMap::new();
    loop {
        let mut line = String::new();
        stream.read_line(&mut line).await.ok()?;
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        let (name, value) = line.split_once(':')?;
        headers.insert(name.trim().to_ascii_lowercase(), value.trim().to_owned());
    }
    let length: usize = headers
        .get("content-length")
        .and_then(|l| l.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; length];
    stream.read_exact(&mut body).await.ok()?;
    Some((method, path, headers, String::from_utf8_lossy(&body).into_owned()))
}

async fn respond(
    stream: &mut TcpStream,
    status: u16,
    headers: &[(String, String)],
    body: &str,
) -> std::io::Result<()> {
    let mut head = format!("HTTP/1.1 {status} X\r\ncontent-length: {}\r\n", body.len());
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    head.push_str(body);
    stream.write_all(head.as_bytes()).await
}
