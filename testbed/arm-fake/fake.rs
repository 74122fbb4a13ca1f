//! A small fake of Azure Resource Manager for the Event Hubs calls Tributary makes. It is a fake (no ARM
//! emulator exists), owned by the test bed (the tests include this file; `make demo` runs it through
//! `main.rs`), that follows the documented REST contract
//! (`Microsoft.EventHub`, api-version 2024-01-01): bearer token required, `api-version` required, ARM
//! error bodies (`{"error": {"code", "message"}}`), a namespace PUT answered 201 with an
//! `Azure-AsyncOperation` URL that reports `InProgress` once before `Succeeded` (the namespace's
//! `provisioningState` is `Activating` until then; a read of the namespace counts as a poll, since
//! Resource Manager finishes an operation whether or not its caller polls it), a hub DELETE answered 202 with a `Location` URL that
//! answers 202 once and then 200, partition counts of 1 to 32 that never decrease, consumer groups with
//! `$Default`, authorization rules and `listKeys`.
//!
//! Hubs are real where it matters: creating or growing one creates or grows the topic on the test bed's
//! Kafka broker, deleting it deletes the topic, and `listKeys` answers the broker's connection string (it
//! knows one password), so what the controller writes into the connection Secret works with the broker.
//!
//! It also hands out its token as a managed identity endpoint (`GET /msi/token`, the App Service
//! protocol `azure_identity` speaks when `IDENTITY_ENDPOINT` and `IDENTITY_HEADER` are set), so a
//! controller process authenticates to it through its real credential chain.
#![allow(dead_code)]

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex},
};

use axum::{
    body::Bytes,
    extract::State,
    http::{HeaderMap, Method, StatusCode, Uri},
    response::{IntoResponse, Response},
};
use rdkafka::admin::{AdminClient, AdminOptions, NewPartitions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use serde_json::{Value, json};

/// The token the fake accepts.
pub const TOKEN: &str = "fake-arm-token";

#[derive(Default)]
struct Data {
    resources: BTreeMap<String, Value>,
    /// Operation id → polls left before it is done, and what to do then.
    operations: BTreeMap<String, (u32, Done)>,
    requests: Vec<(String, String)>,
    next: u64,
}

#[derive(Clone)]
enum Done {
    Provision(String),
    Delete(String),
}

/// A running fake.
#[derive(Clone)]
pub struct ArmFake {
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    data: Arc<Mutex<Data>>,
}

#[derive(Clone)]
struct Shared {
    base: String,
    data: Arc<Mutex<Data>>,
    kafka: Arc<Broker>,
}

/// The Kafka broker behind the hubs (SASL_SSL, PLAIN).
#[derive(Clone, Debug)]
pub struct Broker {
    /// `host:port`.
    pub bootstrap: String,
    /// SASL user.
    pub username: String,
    /// SASL password: the connection string `listKeys` answers.
    pub password: String,
    /// CA bundle of the broker's certificate.
    pub ca_file: String,
}

/// The header value `GET /msi/token` requires (`IDENTITY_HEADER`).
pub const IDENTITY_HEADER: &str = "tributary-test-bed";

/// A credential that hands out the fake's token (the fake is the only thing it is good for).
#[derive(Debug)]
pub struct FakeCredential;

#[async_trait::async_trait]
impl azure_core::credentials::TokenCredential for FakeCredential {
    async fn get_token(
        &self,
        _scopes: &[&str],
        _options: Option<azure_core::credentials::TokenRequestOptions<'_>>,
    ) -> azure_core::Result<azure_core::credentials::AccessToken> {
        Ok(azure_core::credentials::AccessToken::new(
            TOKEN,
            time::OffsetDateTime::now_utc() + std::time::Duration::from_secs(3600),
        ))
    }
}

impl ArmFake {
    /// Starts the fake on `listen` (`127.0.0.1:0` for a free port), its hubs on `kafka`.
    pub async fn start(listen: &str, kafka: Broker) -> Self {
        let listener = tokio::net::TcpListener::bind(listen).await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let data = Arc::new(Mutex::new(Data::default()));
        let shared = Shared {
            base: base.clone(),
            data: data.clone(),
            kafka: Arc::new(kafka),
        };
        let app = axum::Router::new().fallback(handle).with_state(shared);
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { base, data }
    }

    /// A resource as stored, by id.
    pub fn resource(&self, id: &str) -> Option<Value> {
        self.data
            .lock()
            .unwrap()
            .resources
            .get(&id.to_lowercase())
            .cloned()
    }

    /// The ids of every resource it holds (lower case), to tell what is left behind.
    pub fn ids(&self) -> Vec<String> {
        self.data.lock().unwrap().resources.keys().cloned().collect()
    }

    /// Changes a resource behind the controller's back: `pointer` (into the resource) set to `value`.
    pub fn tamper(&self, id: &str, pointer: &str, value: Value) {
        let mut data = self.data.lock().unwrap();
        let resource = data.resources.get_mut(&id.to_lowercase()).unwrap();
        *resource.pointer_mut(pointer).unwrap() = value;
    }

    /// Puts a resource in place as if someone else had made it.
    pub fn insert(&self, id: &str, resource: Value) {
        self.data
            .lock()
            .unwrap()
            .resources
            .insert(id.to_lowercase(), resource);
    }

    /// Requests so far with `method`.
    pub fn count(&self, method: &str) -> usize {
        self.data
            .lock()
            .unwrap()
            .requests
            .iter()
            .filter(|(m, _)| m == method)
            .count()
    }
}

fn error(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        axum::Json(json!({"error": {"code": code, "message": message}})),
    )
        .into_response()
}

fn admin(kafka: &Broker) -> AdminClient<DefaultClientContext> {
    let mut config = rdkafka::ClientConfig::new();
    config
        .set("bootstrap.servers", &kafka.bootstrap)
        .set("security.protocol", "SASL_SSL")
        .set("sasl.mechanisms", "PLAIN")
        .set("sasl.username", &kafka.username)
        .set("sasl.password", &kafka.password)
        .set("ssl.ca.location", &kafka.ca_file);
    config.create().unwrap()
}

/// The managed identity endpoint: the fake's token, valid for an hour.
fn msi_token(headers: &HeaderMap) -> Response {
    if headers.get("x-identity-header").and_then(|v| v.to_str().ok()) != Some(IDENTITY_HEADER) {
        return error(
            StatusCode::UNAUTHORIZED,
            "InvalidIdentityHeader",
            "X-IDENTITY-HEADER is wrong",
        );
    }
    let expires = time::OffsetDateTime::now_utc().unix_timestamp() + 3600;
    axum::Json(json!({
        "access_token": TOKEN,
        "expires_on": expires.to_string(),
        "resource": "https://management.azure.com",
        "token_type": "Bearer",
    }))
    .into_response()
}

async fn handle(
    State(mut shared): State<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    // Operation URLs name the address the caller used, as Resource Manager's are reachable by its callers:
    // a controller in a pod on the real node reaches this fake at the node address, not at 127.0.0.1.
    if let Some(host) = headers.get("host").and_then(|h| h.to_str().ok()) {
        shared.base = format!("http://{host}");
    }
    let path = uri.path().to_lowercase();
    shared
        .data
        .lock()
        .unwrap()
        .requests
        .push((method.to_string(), path.clone()));
    if path == "/msi/token" {
        return msi_token(&headers);
    }
    if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some(&format!("Bearer {TOKEN}")) {
        return error(
            StatusCode::UNAUTHORIZED,
            "AuthenticationFailed",
            "a bearer token is required",
        );
    }
    if let Some(id) = path.strip_prefix("/operations/") {
        return operation(&shared, id, false).await;
    }
    if let Some(id) = path.strip_prefix("/locations/") {
        return operation(&shared, id, true).await;
    }
    if !uri.query().unwrap_or_default().contains("api-version=2024-01-01") {
        return error(
            StatusCode::BAD_REQUEST,
            "InvalidApiVersionParameter",
            "api-version 2024-01-01 is required",
        );
    }
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    // subscriptions/{s}/resourcegroups/{g}/providers/microsoft.eventhub/namespaces/{n}[/eventhubs/{h}[/consumergroups[/{c}]|/authorizationrules/{r}[/listkeys]]]
    if segments.len() < 8
        || segments[4] != "providers"
        || segments[5] != "microsoft.eventhub"
        || segments[6] != "namespaces"
    {
        return error(
            StatusCode::NOT_FOUND,
            "InvalidResourceType",
            &format!("no such resource type: {path}"),
        );
    }
    let namespace_id = segments[..8].join("/");
    let namespace_id = format!("/{namespace_id}");
    let rest = &segments[8..];
    match (method.clone(), rest) {
        (Method::GET, []) => get(&shared, &path),
        (Method::PUT, []) => put_namespace(&shared, &path, segments[7], body),
        (Method::GET, ["eventhubs", _]) => get(&shared, &path),
        (Method::PUT, ["eventhubs", hub]) => put_hub(&shared, &namespace_id, &path, hub, body).await,
        (Method::DELETE, ["eventhubs", _]) => delete_hub(&shared, &path),
        (Method::GET, ["eventhubs", _, "consumergroups"]) => {
            let hub = path.trim_end_matches("/consumergroups");
            if !shared.data.lock().unwrap().resources.contains_key(hub) {
                return error(StatusCode::NOT_FOUND, "ResourceNotFound", "no such hub");
            }
            let prefix = format!("{path}/");
            let data = shared.data.lock().unwrap();
            let value: Vec<Value> = data
                .resources
                .iter()
                .filter(|(k, _)| k.starts_with(&prefix))
                .map(|(_, v)| v.clone())
                .collect();
            axum::Json(json!({"value": value})).into_response()
        }
        (Method::GET, ["eventhubs", _, "consumergroups" | "authorizationrules", _]) => get(&shared, &path),
        (
            Method::PUT,
            [
                "eventhubs",
                _,
                kind @ ("consumergroups" | "authorizationrules"),
                name,
            ],
        ) => {
            let hub = path.split(&format!("/{kind}/")).next().unwrap().to_owned();
            if !shared.data.lock().unwrap().resources.contains_key(&hub) {
                return error(StatusCode::NOT_FOUND, "ParentResourceNotFound", "no such hub");
            }
            let resource = json!({"id": path, "name": name, "properties": body["properties"]});
            shared
                .data
                .lock()
                .unwrap()
                .resources
                .insert(path.clone(), resource.clone());
            axum::Json(resource).into_response()
        }
        (Method::POST, ["eventhubs", _, "authorizationrules", _, "listkeys"]) => {
            let rule = path.trim_end_matches("/listkeys");
            if !shared.data.lock().unwrap().resources.contains_key(rule) {
                return error(StatusCode::NOT_FOUND, "ResourceNotFound", "no such rule");
            }
            axum::Json(json!({
                "keyName": "tributary-listen",
                "primaryKey": "testbed",
                "primaryConnectionString": shared.kafka.password,
            }))
            .into_response()
        }
        _ => error(
            StatusCode::NOT_FOUND,
            "ResourceNotFound",
            &format!("{method} {path}"),
        ),
    }
}

fn get(shared: &Shared, path: &str) -> Response {
    let mut data = shared.data.lock().unwrap();
    provision_on_read(&mut data, path);
    match data.resources.get(path) {
        Some(resource) => axum::Json(resource.clone()).into_response(),
        None => error(
            StatusCode::NOT_FOUND,
            "ResourceNotFound",
            &format!("{path} was not found"),
        ),
    }
}

/// Resource Manager finishes an operation whether or not its caller polls it (a caller killed after the
/// PUT never does): a read of a resource still provisioning counts as a poll of its operation.
fn provision_on_read(data: &mut Data, path: &str) {
    let pending = data
        .operations
        .values_mut()
        .find(|(_, done)| matches!(done, Done::Provision(p) if p == path));
    let Some((left, _)) = pending else {
        return;
    };
    if *left > 0 {
        *left -= 1;
        return;
    }
    if let Some(resource) = data.resources.get_mut(path) {
        resource["properties"]["provisioningState"] = "Succeeded".into();
        resource["properties"]["status"] = "Active".into();
    }
}

fn put_namespace(shared: &Shared, path: &str, name: &str, body: Value) -> Response {
    if body["location"].as_str().is_none_or(str::is_empty) {
        return error(
            StatusCode::BAD_REQUEST,
            "LocationRequired",
            "location is required",
        );
    }
    let mut data = shared.data.lock().unwrap();
    let resource = json!({
        "id": path, "name": name, "location": body["location"], "sku": body["sku"], "tags": body["tags"],
        "properties": {
            "provisioningState": "Activating", "status": "Activating", "kafkaEnabled": body["properties"]["kafkaEnabled"],
            "serviceBusEndpoint": format!("https://{name}.servicebus.windows.net:443/"),
        }
    });
    data.resources.insert(path.to_owned(), resource.clone());
    data.next += 1;
    let op = format!("op-{}", data.next);
    data.operations
        .insert(op.clone(), (1, Done::Provision(path.to_owned())));
    (
        StatusCode::CREATED,
        [
            ("azure-asyncoperation", format!("{}/operations/{op}", shared.base)),
            ("retry-after", "1".to_owned()),
        ],
        axum::Json(resource),
    )
        .into_response()
}

async fn put_hub(shared: &Shared, namespace_id: &str, path: &str, hub: &str, body: Value) -> Response {
    let existing = {
        let data = shared.data.lock().unwrap();
        match data.resources.get(namespace_id) {
            Some(ns) if ns["properties"]["provisioningState"] == "Succeeded" => {}
            Some(_) => {
                return error(
                    StatusCode::CONFLICT,
                    "NamespaceNotActive",
                    "the namespace is still activating",
                );
            }
            None => {
                return error(
                    StatusCode::NOT_FOUND,
                    "ParentResourceNotFound",
                    "no such namespace",
                );
            }
        }
        data.resources.get(path).cloned()
    };
    let partitions = body["properties"]["partitionCount"].as_i64().unwrap_or(4);
    if !(1..=32).contains(&partitions) {
        return error(
            StatusCode::BAD_REQUEST,
            "InvalidPartitionCount",
            "partitionCount must be 1 to 32",
        );
    }
    let had = existing
        .as_ref()
        .and_then(|h| h["properties"]["partitionCount"].as_i64());
    if had.is_some_and(|had| partitions < had) {
        return error(
            StatusCode::BAD_REQUEST,
            "PartitionCountCannotBeDecreased",
            "partitions cannot decrease",
        );
    }
    let hours = body["properties"]["retentionDescription"]["retentionTimeInHours"]
        .as_i64()
        .unwrap_or(24);
    // The broker's topic follows the hub.
    let admin = admin(&shared.kafka);
    let options = AdminOptions::new();
    match had {
        None => {
            let created = admin
                .create_topics(
                    &[NewTopic::new(
                        hub,
                        i32::try_from(partitions).unwrap(),
                        TopicReplication::Fixed(1),
                    )],
                    &options,
                )
                .await
                .unwrap();
            if let Some(Err((_, e))) = created.first()
                && *e != rdkafka::types::RDKafkaErrorCode::TopicAlreadyExists
            {
                return error(StatusCode::INTERNAL_SERVER_ERROR, "KafkaFailed", &e.to_string());
            }
        }
        Some(had) if had < partitions => {
            admin
                .create_partitions(
                    &[NewPartitions::new(hub, usize::try_from(partitions).unwrap())],
                    &options,
                )
                .await
                .unwrap();
        }
        Some(_) => {}
    }
    let resource = json!({
        "id": path, "name": hub,
        "properties": {
            "partitionCount": partitions,
            "partitionIds": (0..partitions).map(|p| p.to_string()).collect::<Vec<_>>(),
            "retentionDescription": {"cleanupPolicy": "Delete", "retentionTimeInHours": hours},
            "messageRetentionInDays": (hours + 23) / 24,
            "userMetadata": body["properties"]["userMetadata"],
            "status": "Active",
        }
    });
    let mut data = shared.data.lock().unwrap();
    data.resources.insert(path.to_owned(), resource.clone());
    let default_group = format!("{path}/consumergroups/$default");
    data.resources
        .entry(default_group.clone())
        .or_insert_with(|| json!({"id": default_group, "name": "$Default", "properties": {}}));
    axum::Json(resource).into_response()
}

fn delete_hub(shared: &Shared, path: &str) -> Response {
    let mut data = shared.data.lock().unwrap();
    if !data.resources.contains_key(path) {
        return StatusCode::NO_CONTENT.into_response();
    }
    data.next += 1;
    let op = format!("del-{}", data.next);
    data.operations
        .insert(op.clone(), (1, Done::Delete(path.to_owned())));
    (
        StatusCode::ACCEPTED,
        [
            ("location", format!("{}/locations/{op}", shared.base)),
            ("retry-after", "1".to_owned()),
        ],
    )
        .into_response()
}

async fn operation(shared: &Shared, id: &str, location: bool) -> Response {
    let done = {
        let mut data = shared.data.lock().unwrap();
        let Some((left, done)) = data.operations.get_mut(id) else {
            return error(StatusCode::NOT_FOUND, "OperationNotFound", id);
        };
        if *left > 0 {
            *left -= 1;
            None
        } else {
            Some(done.clone())
        }
    };
    let Some(done) = done else {
        return if location {
            (StatusCode::ACCEPTED, [("retry-after", "1")]).into_response()
        } else {
            axum::Json(json!({"status": "InProgress"})).into_response()
        };
    };
    match done {
        Done::Provision(path) => {
            let mut data = shared.data.lock().unwrap();
            if let Some(resource) = data.resources.get_mut(&path) {
                resource["properties"]["provisioningState"] = "Succeeded".into();
                resource["properties"]["status"] = "Active".into();
            }
        }
        Done::Delete(path) => {
            let hub = path.rsplit('/').next().unwrap().to_owned();
            let topics = shared
                .data
                .lock()
                .unwrap()
                .resources
                .get(&path)
                .and_then(|r| r["name"].as_str().map(str::to_owned))
                .unwrap_or(hub);
            shared
                .data
                .lock()
                .unwrap()
                .resources
                .retain(|k, _| k != &path && !k.starts_with(&format!("{path}/")));
            let _ = admin(&shared.kafka)
                .delete_topics(&[&topics], &AdminOptions::new())
                .await;
        }
    }
    if location {
        StatusCode::OK.into_response()
    } else {
        axum::Json(json!({"status": "Succeeded"})).into_response()
    }
}
