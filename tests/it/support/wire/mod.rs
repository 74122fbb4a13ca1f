//! Crash points on the wire ([`kube`] holds the API server's proxy, [`azure`] those of the Azure services):
//! small proxies on 127.0.0.1 that a `tributary controller` process talks through, one in front of moto
//! (plain HTTP, every AWS call), one in front of the API server (plain HTTP towards the controller, TLS and
//! the test bed's admin credentials towards the API server, through a kube client), and one each in front
//! of Azurite's queue service and the Resource Manager fake. All count the controller's state-changing
//! calls in one sequence, and the proxy that sees the k-th one kills the controller process (SIGKILL)
//! right after its response came back, or before forwarding it. Nothing inside the product is
//! instrumented: what is counted is what went over the wire.
//!
//! Reads (AWS `Get*`/`List*`/`Describe*`, Azure GETs but a receive, Resource Manager's `listKeys`,
//! Kubernetes GET and watches) are forwarded but not counted: a crash after a read is the crash before the
//! next write. Lease renewals and Events are not counted either: their
//! number depends on timing, not on the scenario, and neither holds state a reconcile depends on.

use std::{
    collections::{HashMap, HashSet},
    process::Child,
    sync::{Arc, Mutex},
};

mod azure;
mod kube;
pub use azure::{Azure, azure_proxy};
pub use kube::kube_proxy;

use axum::{
    body::{Body, Bytes},
    extract::{Request, State},
    http::{HeaderMap, StatusCode},
    response::Response,
};

/// When the controller dies at its crash point.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Moment {
    /// The k-th call reached the server and its response came back; the controller never sees it.
    AfterResponse,
    /// The k-th call is never forwarded.
    BeforeForward,
    /// As `AfterResponse`, and the restarted controller reads a stale API server: its first read of each
    /// path is answered with what the killed one was answered first (lists with their old
    /// resourceVersion, from which its watches then catch up), as behind a lagging API server cache.
    StaleRestart,
    /// No crash: the first watch event of a Tributary kind after the k-th call never reaches the
    /// controller (resync stays 300 s); the watch ends with `410 Expired` instead, as when a watcher falls behind, so the
    /// controller lists again and sees the state after the event, not the event (Sieve's unobserved
    /// state). A watch that went on without the event would leave the controller's cache stale until
    /// that object's next change, which the API server's ordered watch never does.
    DropEvent,
}

/// The crash point of a run: the `at`-th counted call (from 1), at `moment`.
#[derive(Clone, Copy, Debug)]
pub struct CrashPoint {
    pub at: usize,
    pub moment: Moment,
}

/// What the proxies share: the counted calls in order, the crash point still to come and the process it
/// kills.
#[derive(Default)]
pub struct Wire {
    calls: Mutex<Vec<String>>,
    crash: Mutex<Option<CrashPoint>>,
    victim: Mutex<Option<Child>>,
    killed: tokio::sync::Notify,
    killed_at: Mutex<Option<String>>,
    /// `StaleRestart`: the first answer to each read of the killed controller, and the paths whose stale
    /// answer the restarted one got already.
    first_reads: Mutex<HashMap<String, Stored>>,
    stale_served: Mutex<HashSet<String>>,
    /// `DropEvent`: the call after which the next watch event is to be dropped, and once it was, what.
    drop_after: Mutex<Option<String>>,
    dropped: Mutex<Option<String>>,
}

/// A response kept to be served again.
#[derive(Clone)]
struct Stored {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl Wire {
    /// A wire that kills at `crash` (none: only counts).
    pub fn new(crash: Option<CrashPoint>) -> Arc<Self> {
        Arc::new(Self {
            crash: Mutex::new(crash),
            ..Self::default()
        })
    }

    /// The process the crash point kills (the controller now running).
    pub fn set_victim(&self, child: Child) {
        *self.victim.lock().unwrap() = Some(child);
    }

    /// Takes the running process back (to stop it at the end of a run).
    pub fn take_victim(&self) -> Option<Child> {
        self.victim.lock().unwrap().take()
    }

    /// The counted calls so far, in order.
    pub fn calls(&self) -> Vec<String> {
        self.calls.lock().unwrap().clone()
    }

    /// The call after which the controller was killed, once it was.
    pub fn killed_at(&self) -> Option<String> {
        self.killed_at.lock().unwrap().clone()
    }

    /// The watch event dropped (`DropEvent`) and the call it followed, once it was.
    pub fn dropped(&self) -> Option<String> {
        self.dropped.lock().unwrap().clone()
    }

    /// Waits until the crash point has killed the controller.
    pub async fn killed(&self) {
        let notified = self.killed.notified();
        if self.killed_at().is_some() {
            return;
        }
        notified.await;
    }

    /// Counts `call`; `Some(moment)` when it is the crash point (which is then used up).
    fn count(&self, call: String) -> Option<Moment> {
        let mut calls = self.calls.lock().unwrap();
        calls.push(call);
        let mut crash = self.crash.lock().unwrap();
        let point = (*crash).filter(|c| c.at == calls.len())?;
        // A stale restart's point stays known (its moment decides how reads are answered); the others
        // are used up.
        if point.moment != Moment::StaleRestart {
            *crash = None;
        }
        Some(point.moment)
    }

    /// Whether the restarted controller is to read stale answers.
    fn stale_restart(&self) -> bool {
        (*self.crash.lock().unwrap()).is_some_and(|c| c.moment == Moment::StaleRestart)
    }

    /// SIGKILLs the controller (std's `Child::kill` sends SIGKILL) and reaps it.
    fn kill(&self, call: &str) {
        if let Some(mut child) = self.take_victim() {
            let _ = child.kill();
            let _ = child.wait();
        }
        *self.killed_at.lock().unwrap() = Some(call.to_owned());
        self.killed.notify_waiters();
    }

    /// Runs `forward` for a call with the crash point's rule: counted calls may kill the controller
    /// before or after being forwarded.
    async fn call<F>(&self, counted: Option<String>, forward: F) -> Response
    where
        F: std::future::Future<Output = Response>,
    {
        let Some(call) = counted else {
            return forward.await;
        };
        match self.count(call.clone()) {
            Some(Moment::BeforeForward) => {
                self.kill(&call);
                bad_gateway("killed before forwarding")
            }
            Some(Moment::AfterResponse | Moment::StaleRestart) => {
                let response = forward.await;
                self.kill(&call);
                response
            }
            Some(Moment::DropEvent) => {
                *self.drop_after.lock().unwrap() = Some(call);
                forward.await
            }
            None => forward.await,
        }
    }
}

fn bad_gateway(message: &str) -> Response {
    let mut response = Response::new(Body::from(message.to_owned()));
    *response.status_mut() = StatusCode::BAD_GATEWAY;
    response
}

/// Serves `router` on a free port of 127.0.0.1; returns its address.
async fn serve(router: axum::Router) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    address
}

/// Headers that belong to one hop, not to the request or response forwarded.
fn end_to_end(headers: &HeaderMap) -> HeaderMap {
    let mut headers = headers.clone();
    for hop in [
        "host",
        "connection",
        "transfer-encoding",
        "content-length",
        "keep-alive",
    ] {
        headers.remove(hop);
    }
    headers
}

#[derive(Clone)]
struct AwsProxy {
    wire: Arc<Wire>,
    upstream: String,
    http: reqwest::Client,
}

/// A proxy in front of the AWS endpoint `upstream` (moto); returns its URL.
pub async fn aws_proxy(wire: Arc<Wire>, upstream: &str) -> String {
    let state = AwsProxy {
        wire,
        upstream: upstream.trim_end_matches('/').to_owned(),
        http: reqwest::Client::new(),
    };
    let router = axum::Router::new().fallback(aws_call).with_state(state);
    format!("http://{}", serve(router).await)
}

async fn aws_call(State(proxy): State<AwsProxy>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let Ok(body) = axum::body::to_bytes(body, 64 << 20).await else {
        return bad_gateway("unreadable request body");
    };
    let action = aws_action(&parts.headers, &body);
    let counted = (!is_aws_read(&action)).then(|| format!("aws {action}"));
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let url = format!("{}{path}", proxy.upstream);
    // Host is left to reqwest, so moto builds queue URLs with its own address, as without the proxy.
    let forward = forward_http(&proxy.http, parts.method.clone(), url, &parts.headers, body);
    proxy.wire.call(counted, forward).await
}

/// Sends a request on to `url` as it came (its end-to-end headers and body) and answers what came back.
async fn forward_http(
    http: &reqwest::Client,
    method: axum::http::Method,
    url: String,
    headers: &HeaderMap,
    body: Bytes,
) -> Response {
    let sent = http
        .request(method, url)
        .headers(end_to_end(headers))
        .body(body)
        .send()
        .await;
    match sent {
        Ok(answer) => {
            let (status, headers) = (answer.status(), end_to_end(answer.headers()));
            let bytes = answer.bytes().await.unwrap_or_default();
            let mut response = Response::new(Body::from(bytes));
            *response.status_mut() = status;
            *response.headers_mut() = headers;
            response
        }
        Err(error) => bad_gateway(&error.to_string()),
    }
}

/// The AWS action of a request: the JSON protocol's `X-Amz-Target` (`AmazonSQS.CreateQueue`), else the
/// query protocol's `Action` form field (SNS, STS).
pub fn aws_action(headers: &HeaderMap, body: &Bytes) -> String {
    if let Some(target) = headers.get("x-amz-target").and_then(|t| t.to_str().ok()) {
        return target.replace("AmazonSQS.", "sqs:");
    }
    let body = String::from_utf8_lossy(body);
    let action = body
        .split('&')
        .find_map(|pair| pair.strip_prefix("Action="))
        .unwrap_or("unknown");
    format!("sns:{action}")
}

/// Whether an AWS action only reads (ReceiveMessage is not a read: it hides the messages it returns).
fn is_aws_read(action: &str) -> bool {
    let name = action.rsplit([':', '.']).next().unwrap_or(action);
    ["Get", "List", "Describe"]
        .iter()
        .any(|read| name.starts_with(read))
}
