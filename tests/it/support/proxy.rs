//! A counting HTTP proxy on 127.0.0.1 in front of an AWS endpoint (moto), for crash points: it forwards
//! every request, names its action (the `X-Amz-Target` header of the JSON protocols — SQS, DynamoDB —
//! or the `Action` parameter of the query protocol — SNS), counts it, and can SIGKILL a process right
//! after the service answered the n-th request of an action, before the answer is passed on. The
//! service has then made the effect; the killed process never learns it did. No test hook in the
//! worker: the step is told apart by the request it makes.
#![allow(clippy::unwrap_used)]

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex},
};

use axum::{body::Body, extract::State, http::Request, response::Response};

/// When to kill, and whom.
#[derive(Clone, Debug)]
pub struct KillAt {
    /// The action, e.g. `ReceiveMessage`, `TransactWriteItems`, `Publish`, `DeleteMessageBatch`.
    pub action: &'static str,
    /// Counted only when the answer contains this (e.g. `ReceiptHandle`: a receive that got messages).
    pub answer_contains: Option<&'static str>,
    /// Counted only when the request contains this (e.g. the dead-letter queue's URL).
    pub request_contains: Option<String>,
    /// Kill after the n-th counted request (1 = the first).
    pub nth: u32,
    /// The process to kill.
    pub pid: u32,
}

#[derive(Default)]
struct Shared {
    /// Requests forwarded, per action.
    counts: BTreeMap<String, u64>,
    kill: Option<(KillAt, u32)>,
    /// The kills made: (action, nth).
    killed: Vec<(String, u32)>,
}

/// The running proxy.
pub struct Proxy {
    /// Its endpoint URL, to give the proxied process as its AWS endpoint.
    pub endpoint: String,
    shared: Arc<Mutex<Shared>>,
    task: tokio::task::JoinHandle<()>,
}

#[derive(Clone)]
struct Upstream {
    base: String,
    http: reqwest::Client,
    shared: Arc<Mutex<Shared>>,
}

impl Proxy {
    /// A proxy to `upstream` (e.g. `http://127.0.0.1:26010`).
    pub async fn start(upstream: &str) -> Self {
        let shared = Arc::new(Mutex::new(Shared::default()));
        let state = Upstream {
            base: upstream.trim_end_matches('/').to_owned(),
            http: reqwest::Client::new(),
            shared: shared.clone(),
        };
        let app = axum::Router::new().fallback(forward).with_state(state);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self {
            endpoint,
            shared,
            task,
        }
    }

    /// Arms a kill (replacing any armed one).
    pub fn arm(&self, kill: KillAt) {
        self.shared.lock().unwrap().kill = Some((kill, 0));
    }

    /// Disarms, returning whether the armed kill happened.
    pub fn disarm(&self) -> bool {
        let mut shared = self.shared.lock().unwrap();
        shared.kill = None;
        !shared.killed.is_empty()
    }

    /// The kills made so far.
    pub fn killed(&self) -> Vec<(String, u32)> {
        self.shared.lock().unwrap().killed.clone()
    }

    /// Requests forwarded of `action`.
    pub fn count(&self, action: &str) -> u64 {
        self.shared
            .lock()
            .unwrap()
            .counts
            .get(action)
            .copied()
            .unwrap_or(0)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The action a request asks for.
fn action(target: Option<&str>, body: &[u8]) -> String {
    if let Some(target) = target {
        return target.rsplit('.').next().unwrap_or(target).to_owned();
    }
    let body = String::from_utf8_lossy(body);
    body.split('&')
        .find_map(|pair| pair.strip_prefix("Action="))
        .unwrap_or("")
        .to_owned()
}

async fn forward(State(upstream): State<Upstream>, request: Request<Body>) -> Response {
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, usize::MAX).await.unwrap();
    let target = parts.headers.get("x-amz-target").and_then(|v| v.to_str().ok());
    let action = action(target, &body);
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let mut outgoing = upstream
        .http
        .request(parts.method.clone(), format!("{}{path}", upstream.base));
    for (name, value) in &parts.headers {
        if name != "host" && name != "content-length" {
            outgoing = outgoing.header(name, value);
        }
    }
    let answer = match outgoing.body(body.clone()).send().await {
        Ok(answer) => answer,
        Err(_) => return Response::builder().status(502).body(Body::empty()).unwrap(),
    };
    let status = answer.status();
    let headers = answer.headers().clone();
    let answer_body = answer.bytes().await.unwrap_or_default();
    let kill = {
        let mut shared = upstream.shared.lock().unwrap();
        *shared.counts.entry(action.clone()).or_default() += 1;
        let mut kill = None;
        if let Some((rule, seen)) = shared.kill.as_mut() {
            let answer_matches = rule
                .answer_contains
                .is_none_or(|text| String::from_utf8_lossy(&answer_body).contains(text));
            let request_matches = rule
                .request_contains
                .as_deref()
                .is_none_or(|text| String::from_utf8_lossy(&body).contains(text));
            if rule.action == action && answer_matches && request_matches {
                *seen += 1;
                if *seen == rule.nth {
                    kill = Some((rule.pid, rule.nth));
                }
            }
        }
        if let Some((_, nth)) = kill {
            shared.kill = None;
            shared.killed.push((action.clone(), nth));
        }
        kill
    };
    if let Some((pid, _)) = kill {
        // The service has answered; the process dies before it reads the answer.
        let _ = std::process::Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status();
        return Response::builder().status(502).body(Body::empty()).unwrap();
    }
    let mut response = Response::builder().status(status.as_u16());
    for (name, value) in &headers {
        if name != "content-length" && name != "transfer-encoding" {
            response = response.header(name, value);
        }
    }
    response.body(Body::from(answer_body)).unwrap()
}

#[cfg(test)]
mod tests {
    #[test]
    fn actions_come_from_the_target_or_the_query() {
        assert_eq!(
            super::action(Some("AmazonSQS.ReceiveMessage"), b""),
            "ReceiveMessage"
        );
        assert_eq!(super::action(None, b"Action=Publish&TopicArn=x"), "Publish");
    }
}
