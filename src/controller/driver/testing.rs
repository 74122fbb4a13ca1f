//! Test support for the kinds' apply decisions, without a cluster: a [`Context`] over the in-memory cloud
//! fakes ([`Fakes`]: [`FakeAws`] and [`FakeAzure`]) and an in-process Kubernetes API ([`FakeApi`]), with
//! watch stores the test fills ([`Harness::store`]) and the default [`Config`] with no quiet start (every
//! outcome is reported).

use std::{
    collections::BTreeMap,
    convert::Infallible,
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use http::{Method, Request, Response, StatusCode};
use kube::{
    Client, Resource,
    client::Body,
    runtime::{reflector::store::Writer, watcher},
};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::{
    error::Error,
    reconcile::{Applied, Reconciler},
    status::{self, Kind},
    watch::Writers,
};
use crate::{
    api::{Consumer, DeadLetter, DeviceStream, Queue, Subscription, TenantPolicy, Topic},
    cloud::fake::{FakeAws, FakeAzure},
    controller::{Cloud, Config, Context},
    operate::Metrics,
};

/// The namespace of the objects of these tests.
pub const NAMESPACE: &str = "shop";
/// The controller's cluster identity in these tests.
pub const CLUSTER: &str = "test-cluster";

/// A request the API was sent.
#[derive(Clone, Debug)]
pub struct Sent {
    /// The method.
    pub method: Method,
    /// The path, without the query.
    pub path: String,
    /// The JSON body (`Null` when there is none).
    pub body: Value,
}

/// An in-process Kubernetes API: creates and patches (the Event recorder's, server-side applies) are
/// echoed back (a patch with the status a test set for its path, [`Self::put_status`]; a status write of an
/// object a test put with that object), a GET answers the object a test put at that path or 404 with a
/// Kubernetes `Status`; every request is kept.
#[derive(Clone, Debug, Default)]
pub struct FakeApi {
    state: Arc<Mutex<ApiState>>,
}

#[derive(Debug, Default)]
struct ApiState {
    objects: BTreeMap<String, Value>,
    /// The status a patch of a path is answered with.
    statuses: BTreeMap<String, Value>,
    sent: Vec<Sent>,
}

fn not_found(path: &str) -> (StatusCode, Value) {
    let status = json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": format!("{path} not found"),
        "reason": "NotFound",
        "code": 404,
    });
    (StatusCode::NOT_FOUND, status)
}

/// The answer to a patch of `path`: a status write of an object a test put answers with that object and
/// the written status, as the API server does; any other patch is echoed, with the status a test set for
/// that path ([`FakeApi::put_status`]).
fn patched(state: &ApiState, path: &str, mut body: Value) -> Value {
    let stored = path
        .strip_suffix("/status")
        .and_then(|object| state.objects.get(object));
    if let Some(stored) = stored {
        let mut object = stored.clone();
        object["status"] = body["status"].take();
        return object;
    }
    if let (Some(status), Some(object)) = (state.statuses.get(path), body.as_object_mut()) {
        object.insert("status".to_owned(), status.clone());
    }
    body
}

impl FakeApi {
    fn lock(&self) -> std::sync::MutexGuard<'_, ApiState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Answers GETs of `path` with `object` from now on.
    pub fn put(&self, path: &str, object: Value) {
        self.lock().objects.insert(path.to_owned(), object);
    }

    /// Answers patches of `path` with the patch and `status` from now on, as the API server answers an
    /// apply with the object and the status its own controller wrote (a Deployment's ready replicas).
    pub fn put_status(&self, path: &str, status: Value) {
        self.lock().statuses.insert(path.to_owned(), status);
    }

    /// The body of the last patch (a server-side apply) of `path`, if any.
    pub fn patched(&self, path: &str) -> Option<Value> {
        self.sent()
            .into_iter()
            .rev()
            .find(|s| s.method == Method::PATCH && s.path == path)
            .map(|s| s.body)
    }

    /// Every request so far, oldest first.
    pub fn sent(&self) -> Vec<Sent> {
        self.lock().sent.clone()
    }

    /// The reasons of the Events recorded so far (created, or folded into a series), oldest first.
    pub fn event_reasons(&self) -> Vec<String> {
        self.sent()
            .into_iter()
            .filter(|s| s.path.ends_with("/events") || s.path.contains("/events/"))
            .filter_map(|s| s.body.get("reason")?.as_str().map(str::to_owned))
            .collect()
    }

    fn answer(&self, method: Method, path: String, body: Value) -> (StatusCode, Value) {
        let mut state = self.lock();
        state.sent.push(Sent {
            method: method.clone(),
            path: path.clone(),
            body: body.clone(),
        });
        if method == Method::POST {
            (StatusCode::CREATED, body)
        } else if method == Method::PATCH {
            (StatusCode::OK, patched(&state, &path, body))
        } else if let Some(object) = state.objects.get(&path).filter(|_| method == Method::GET) {
            (StatusCode::OK, object.clone())
        } else {
            not_found(&path)
        }
    }

    /// A client whose requests this API answers.
    pub fn client(&self) -> Client {
        let api = self.clone();
        let service = tower::service_fn(move |request: Request<Body>| {
            let api = api.clone();
            async move {
                let (parts, body) = request.into_parts();
                let bytes = body.collect_bytes().await.unwrap_or_default();
                let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
                let (code, answer) = api.answer(parts.method, parts.uri.path().to_owned(), body);
                let response = Response::builder()
                    .status(code)
                    .header("content-type", "application/json")
                    .body(Body::from(answer.to_string().into_bytes()))
                    .expect("a valid response");
                Ok::<_, Infallible>(response)
            }
        });
        Client::new(service, NAMESPACE)
    }
}

/// A kind whose watch store a test fills.
pub trait Stored: Resource<DynamicType = ()> + Clone + Sized + 'static {
    /// Its store's write half.
    fn writer(writers: &mut Writers) -> &mut Writer<Self>;
}

macro_rules! stored {
    ($kind:ty, $field:ident) => {
        impl Stored for $kind {
            fn writer(writers: &mut Writers) -> &mut Writer<Self> {
                &mut writers.$field
            }
        }
    };
}

stored!(Topic, topics);
stored!(Queue, queues);
stored!(DeadLetter, dead_letters);
stored!(Subscription, subscriptions);
stored!(TenantPolicy, policies);
stored!(DeviceStream, device_streams);
stored!(Consumer, consumers);

/// The clouds of the unit tests: the in-memory fakes.
#[derive(Debug)]
pub enum Fakes {}

impl Cloud for Fakes {
    type Aws = FakeAws;
    type Azure = FakeAzure;
}

/// A controller context over [`FakeAws`], [`FakeAzure`] and [`FakeApi`], and the write halves of its
/// watch stores.
pub struct Harness {
    /// The context the reconcilers get.
    pub ctx: Arc<Context<Fakes>>,
    /// The AWS cloud (shared with the context).
    pub cloud: FakeAws,
    /// The Azure cloud (shared with the context).
    pub azure: FakeAzure,
    /// The Kubernetes API (shared with the context's client).
    pub api: FakeApi,
    writers: Writers,
    /// How many cloud calls [`Self::new_calls`] has returned.
    seen_calls: AtomicUsize,
    /// How many cloud calls [`Self::new_azure_calls`] has returned.
    seen_azure_calls: AtomicUsize,
}

impl Default for Harness {
    fn default() -> Self {
        Self::new()
    }
}

impl Harness {
    /// A context over an empty [`FakeAws`]. Needs a Tokio runtime (the client spawns its buffer).
    pub fn new() -> Self {
        Self::with_cloud(FakeAws::default())
    }

    /// A context over `cloud` and an empty [`FakeAzure`].
    pub fn with_cloud(cloud: FakeAws) -> Self {
        Self::with_clouds(cloud, FakeAzure::default(), Config::default())
    }

    /// A context over `azure` and an empty [`FakeAws`] (with the default [`Config`]: no Resource Manager
    /// access; give `event_hubs` through [`Self::with_clouds`]).
    pub fn with_azure(azure: FakeAzure) -> Self {
        Self::with_clouds(FakeAws::default(), azure, Config::default())
    }

    /// A context over `aws` and `azure` with `config`, whose quiet start is then made zero and whose
    /// cluster identity [`CLUSTER`].
    pub fn with_clouds(cloud: FakeAws, azure: FakeAzure, config: Config) -> Self {
        let api = FakeApi::default();
        let config = Config {
            quiet_start: Duration::ZERO,
            cluster: CLUSTER.to_owned(),
            ..config
        };
        let ctx = Context::<Fakes>::new(api.client(), cloud.clone(), azure.clone(), Metrics::new(), config);
        let writers = ctx
            .writers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
            .expect("a new context has its writers");
        Self {
            ctx: Arc::new(ctx),
            cloud,
            azure,
            api,
            writers,
            seen_calls: AtomicUsize::new(0),
            seen_azure_calls: AtomicUsize::new(0),
        }
    }

    /// Puts `object` into its kind's watch store (or replaces it), as a watch event would.
    pub fn store<K: Stored>(&mut self, object: K) {
        K::writer(&mut self.writers).apply_watcher_event(&watcher::Event::Apply(object));
    }

    /// The AWS calls made since the last time this was asked (all of them the first time).
    pub fn new_calls(&self) -> Vec<String> {
        let calls = self.cloud.calls();
        let seen = self.seen_calls.swap(calls.len(), Ordering::SeqCst);
        calls.into_iter().skip(seen).collect()
    }

    /// The Azure calls made since the last time this was asked (all of them the first time).
    pub fn new_azure_calls(&self) -> Vec<String> {
        let calls = self.azure.calls();
        let seen = self.seen_azure_calls.swap(calls.len(), Ordering::SeqCst);
        calls.into_iter().skip(seen).collect()
    }

    /// Lets the objects of [`NAMESPACE`] adopt cloud resources: their TenantPolicy, read from the API.
    pub fn allow_adoption(&self) {
        self.policy(json!({"allowAdoption": true}));
    }

    /// Puts the Secret `name` holding `value` under `key` into the API (as the kubelet and the controller
    /// read it: base64 in `data`).
    pub fn secret(&self, name: &str, key: &str, value: &str) {
        use base64::Engine as _;
        let encoded = base64::engine::general_purpose::STANDARD.encode(value);
        let secret = json!({
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": name, "namespace": NAMESPACE},
            "data": {key: encoded},
        });
        self.api
            .put(&path::<k8s_openapi::api::core::v1::Secret>(name), secret);
    }

    /// Gives [`NAMESPACE`] its own TenantPolicy with `spec` (JSON), read from the API.
    pub fn policy(&self, spec: Value) {
        let path = format!("{}/{NAMESPACE}", TenantPolicy::url_path(&(), None));
        let policy = json!({
            "apiVersion": TenantPolicy::api_version(&()),
            "kind": TenantPolicy::kind(&()),
            "metadata": {"name": NAMESPACE},
            "spec": spec,
        });
        self.api.put(&path, policy);
    }

    /// Runs the kind's apply step on `object`.
    pub async fn apply<K: Reconciler<Fakes>>(&self, object: &K) -> Result<Applied<K::Status>, Error> {
        K::apply(Arc::new(object.clone()), self.ctx.clone()).await
    }

    /// Runs the kind's cleanup step on `object`.
    pub async fn cleanup<K: Reconciler<Fakes>>(&self, object: &K) -> Result<(), Error> {
        K::cleanup(Arc::new(object.clone()), self.ctx.clone()).await
    }

    /// Forgets what was verified of `object`, as when its next full check is due.
    pub fn resync<K: Kind>(&self, object: &K) {
        self.ctx.verified.forget(&status::describe(object));
    }
}

/// An object of kind `K` called `name` in [`NAMESPACE`] with `spec` (JSON, defaults filled in by the
/// kind's own deserialisation), a uid and generation 1, as the API server gives it.
pub fn object<K>(name: &str, spec: Value) -> K
where
    K: Resource<DynamicType = ()> + DeserializeOwned,
{
    let object = json!({
        "apiVersion": K::api_version(&()),
        "kind": K::kind(&()),
        "metadata": {"name": name, "namespace": NAMESPACE, "uid": format!("uid-{name}"), "generation": 1},
        "spec": spec,
    });
    serde_json::from_value(object).expect("a valid object")
}

/// The API path of the object of kind `K` called `name` in [`NAMESPACE`].
pub fn path<K: Resource<DynamicType = ()>>(name: &str) -> String {
    format!("{}/{name}", K::url_path(&(), Some(NAMESPACE)))
}

/// `status` with Ready and Synced true for the object's generation, as after a successful reconcile
/// (a difference found later is then drift, not a spec change).
pub fn synced<K: Kind>(object: &K, status: K::Status) -> K::Status {
    status::with_conditions(object, status, &status::applied("in sync", None))
}

/// `object` with `status` as the controller last wrote it ([`synced`]): what the watch hands the next
/// reconcile. Through JSON, so that one helper serves every kind.
pub fn with_status<K>(object: &K, status: K::Status) -> K
where
    K: Kind + serde::Serialize + DeserializeOwned,
    K::Status: serde::Serialize,
{
    let mut value = serde_json::to_value(object).expect("an object serializes");
    value["status"] = serde_json::to_value(synced(object, status)).expect("a status serializes");
    serde_json::from_value(value).expect("a kind reads its own status back")
}
