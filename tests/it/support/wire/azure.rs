//! The proxies in front of the Azure services the controller calls: Azurite's queue service (Queues and
//! DeadLetters on azure) and the Resource Manager fake (DeviceStreams). Both speak REST, so one proxy
//! serves both; what differs is how a request is named and which requests only read.
//!
//! Kafka is not proxied: the controller's Kafka calls (consumer lag, a redrive's produce to an Event Hub)
//! read or send data; every Event Hubs resource it manages goes through Resource Manager.

use std::sync::Arc;

use axum::{
    extract::{Request, State},
    http::Method,
    response::Response,
};

use super::{Wire, bad_gateway, forward_http, serve};

/// Which Azure service a proxy stands in front of.
#[derive(Clone, Copy, Debug)]
pub enum Azure {
    /// The queue service (`<endpoint>/<queue>[/messages[/<id>]]`).
    Storage,
    /// Resource Manager (`/subscriptions/…/providers/Microsoft.EventHub/namespaces/…`).
    Arm,
}

#[derive(Clone)]
struct AzureProxy {
    wire: Arc<Wire>,
    service: Azure,
    /// `scheme://host:port` of the service.
    origin: String,
    http: reqwest::Client,
}

/// A proxy in front of `upstream` (a URL, possibly with a path, as Azurite's `…/devstoreaccount1`);
/// returns the same URL with the proxy's address, to give the controller instead.
pub async fn azure_proxy(wire: Arc<Wire>, service: Azure, upstream: &str) -> String {
    let url = reqwest::Url::parse(upstream).unwrap();
    let origin = url.origin().ascii_serialization();
    let path = url.path().trim_end_matches('/').to_owned();
    let state = AzureProxy {
        wire,
        service,
        origin,
        http: reqwest::Client::new(),
    };
    let router = axum::Router::new().fallback(azure_call).with_state(state);
    format!("http://{}{path}", serve(router).await)
}

async fn azure_call(State(proxy): State<AzureProxy>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let Ok(body) = axum::body::to_bytes(body, 64 << 20).await else {
        return bad_gateway("unreadable request body");
    };
    let query = parts.uri.query().unwrap_or_default();
    let (name, read) = match proxy.service {
        Azure::Storage => storage_call(&parts.method, parts.uri.path(), query),
        Azure::Arm => arm_call(&parts.method, parts.uri.path()),
    };
    let counted = (!read).then_some(name);
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let url = format!("{}{path}", proxy.origin);
    let forward = forward_http(&proxy.http, parts.method.clone(), url, &parts.headers, body);
    proxy.wire.call(counted, forward).await
}

/// A queue service request's name (`storage PUT queue?comp=metadata`, `storage DELETE message`) and
/// whether it only reads. Receiving messages is not a read (it hides them); peeking is.
fn storage_call(method: &Method, path: &str, query: &str) -> (String, bool) {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    // <account>/<queue>[/messages[/<id>]]
    let what = match segments.len() {
        0..=1 => "service",
        2 => "queue",
        3 => "messages",
        _ => "message",
    };
    let comp = query
        .split('&')
        .find_map(|p| p.strip_prefix("comp="))
        .map(|c| format!("?comp={c}"))
        .unwrap_or_default();
    let peek = query.split('&').any(|p| p == "peekonly=true");
    let read = matches!(*method, Method::GET | Method::HEAD) && (what != "messages" || peek);
    (format!("storage {method} {what}{comp}"), read)
}

/// A Resource Manager request's name by the type of what it addresses (`arm PUT eventhubs`,
/// `arm POST listkeys`) and whether it only reads (`listKeys` is a POST that changes nothing).
fn arm_call(method: &Method, path: &str) -> (String, bool) {
    let path = path.to_lowercase();
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    // …/<type>/<name> addresses a resource, …/<type> a collection or an action.
    let what = match segments.len() % 2 {
        0 => segments[segments.len().saturating_sub(2)],
        _ => segments[segments.len() - 1],
    };
    let read = matches!(*method, Method::GET | Method::HEAD) || what == "listkeys";
    (format!("arm {method} {what}"), read)
}
