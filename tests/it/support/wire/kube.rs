//! The proxy in front of the API server: plain HTTP towards the controller, TLS and the test bed admin's
//! credentials towards the API server (through a kube client, so no certificate is minted). Besides
//! counting writes it serves the stale reads of [`super::Moment::StaleRestart`] and drops the watch event of
//! [`super::Moment::DropEvent`].

use std::sync::Arc;

use axum::{
    body::{Body, Bytes},
    extract::{Request, State},
    http::Method,
    response::Response,
};
use futures::StreamExt;

use super::{Stored, Wire, bad_gateway, end_to_end, serve};

#[derive(Clone)]
struct KubeProxy {
    wire: Arc<Wire>,
    client: kube::Client,
}

/// A plain-HTTP proxy in front of the test bed's API server, reaching it with `client` (the admin's
/// credentials); returns the path of a kubeconfig that points at it.
pub async fn kube_proxy(wire: Arc<Wire>, client: kube::Client, dir: &std::path::Path) -> std::path::PathBuf {
    let router = axum::Router::new()
        .fallback(kube_call)
        .with_state(KubeProxy { wire, client });
    let address = serve(router).await;
    let kubeconfig = dir.join("kubeconfig");
    let text = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: wire\n  cluster: {{server: 'http://{address}'}}\n\
         users:\n- name: wire\n  user: {{}}\ncontexts:\n- name: wire\n  context: {{cluster: wire, user: wire}}\n\
         current-context: wire\n"
    );
    std::fs::write(&kubeconfig, text).unwrap();
    kubeconfig
}

async fn kube_call(State(proxy): State<KubeProxy>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let Ok(body) = axum::body::to_bytes(body, 64 << 20).await else {
        return bad_gateway("unreadable request body");
    };
    let path = parts.uri.path().to_owned();
    let query = parts.uri.query().unwrap_or_default();
    let watch = query.split('&').any(|p| p == "watch=true" || p == "watch=1");
    let read = parts.method == Method::GET && !watch;
    if read && let Some(stale) = proxy.wire.stale_read(&path) {
        return stale;
    }
    let counted =
        is_kube_write(&parts.method, &path).then(|| format!("kube {} {}", parts.method, short(&path)));
    let forward = async {
        let mut request = http::Request::builder()
            .method(parts.method.clone())
            .uri(parts.uri.path_and_query().map_or("/", |p| p.as_str()));
        for (name, value) in &end_to_end(&parts.headers) {
            if name != "authorization" {
                request = request.header(name, value);
            }
        }
        let request = request.body(kube::client::Body::from(body.to_vec())).unwrap();
        let answer = match proxy.client.send(request).await {
            Ok(answer) => answer,
            Err(error) => return bad_gateway(&error.to_string()),
        };
        let (mut head, body) = answer.into_parts();
        head.headers = end_to_end(&head.headers);
        if read {
            return proxy.wire.remember_read(&path, head, Body::new(body)).await;
        }
        let body = if watch {
            proxy.wire.clone().filter_watch(Body::new(body))
        } else {
            Body::new(body)
        };
        Response::from_parts(head, body)
    };
    proxy.wire.call(counted, forward).await
}

impl Wire {
    /// The stale answer to a read of the restarted controller (`StaleRestart`), once per path.
    fn stale_read(&self, path: &str) -> Option<Response> {
        if !self.stale_restart() || self.killed_at().is_none() {
            return None;
        }
        let stored = self.first_reads.lock().unwrap().get(path).cloned()?;
        if !self.stale_served.lock().unwrap().insert(path.to_owned()) {
            return None;
        }
        let mut response = Response::new(Body::from(stored.body));
        *response.status_mut() = stored.status;
        *response.headers_mut() = stored.headers;
        Some(response)
    }

    /// Passes a read's answer on, keeping the killed-to-be controller's first answer per path for a
    /// `StaleRestart`.
    async fn remember_read(&self, path: &str, head: http::response::Parts, body: Body) -> Response {
        let keep = self.stale_restart() && self.killed_at().is_none();
        if !keep {
            return Response::from_parts(head, body);
        }
        let body = axum::body::to_bytes(body, 64 << 20).await.unwrap_or_default();
        let stored = Stored {
            status: head.status,
            headers: head.headers.clone(),
            body: body.clone(),
        };
        self.first_reads
            .lock()
            .unwrap()
            .entry(path.to_owned())
            .or_insert(stored);
        Response::from_parts(head, Body::from(body))
    }

    /// A watch's body, event by event (one JSON object a line). The event to drop is replaced by what the
    /// API server sends a watcher that fell too far behind, `410 Expired`, and the watch ends there: the
    /// controller lists again and sees the state after the event, never the event itself.
    fn filter_watch(self: Arc<Self>, body: Body) -> Body {
        let state = (body.into_data_stream(), Vec::<u8>::new(), false);
        let lines = futures::stream::unfold(state, move |(mut stream, mut buffer, ended)| {
            let wire = self.clone();
            async move {
                if ended {
                    return None;
                }
                loop {
                    if let Some(end) = buffer.iter().position(|b| *b == b'\n') {
                        let line: Vec<u8> = buffer.drain(..=end).collect();
                        if wire.drops(&line) {
                            return Some((Ok(Bytes::from_static(EXPIRED)), (stream, buffer, true)));
                        }
                        return Some((Ok(Bytes::from(line)), (stream, buffer, false)));
                    }
                    match stream.next().await {
                        Some(Ok(chunk)) => buffer.extend_from_slice(&chunk),
                        Some(Err(error)) => return Some((Err(error), (stream, Vec::new(), true))),
                        None if buffer.is_empty() => return None,
                        None => {
                            return Some((
                                Ok(Bytes::from(std::mem::take(&mut buffer))),
                                (stream, buffer, true),
                            ));
                        }
                    }
                }
            }
        });
        Body::from_stream(lines)
    }

    /// Whether this watch event line is the one to drop: the first change of a Tributary object after the
    /// `DropEvent` call.
    fn drops(&self, line: &[u8]) -> bool {
        let mut armed = self.drop_after.lock().unwrap();
        let Some(after) = armed.as_ref() else {
            return false;
        };
        let Ok(event) = serde_json::from_slice::<serde_json::Value>(line) else {
            return false;
        };
        let kind = event["type"].as_str().unwrap_or_default();
        let object = &event["object"];
        let ours = object["apiVersion"]
            .as_str()
            .is_some_and(|v| v.starts_with("tributary.dev/"));
        if !ours || !matches!(kind, "ADDED" | "MODIFIED" | "DELETED") {
            return false;
        }
        let what = format!(
            "{after}, dropped {kind} {}/{}",
            object["kind"], object["metadata"]["name"]
        );
        *self.dropped.lock().unwrap() = Some(what.replace('"', ""));
        *armed = None;
        true
    }
}

/// The watch event of a resourceVersion the API server no longer holds.
const EXPIRED: &[u8] = br#"{"type":"ERROR","object":{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"too old resource version","reason":"Expired","code":410}}
"#;

/// Whether a request to the API server changes state that a reconcile depends on (not a Lease renewal
/// nor an Event).
fn is_kube_write(method: &Method, path: &str) -> bool {
    let write = !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS);
    write && !path.contains("/leases") && !path.contains("/events")
}

/// A request path without its API group and namespace prefix: `topics/t/status`.
fn short(path: &str) -> String {
    match path.split_once("/namespaces/") {
        Some((_, rest)) => rest.split_once('/').map_or(rest, |(_, r)| r).to_owned(),
        None => path.to_owned(),
    }
}
