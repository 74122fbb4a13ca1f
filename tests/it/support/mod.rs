//! Shared helpers for tests that run against the test bed (`make testbed-up`).
//!
//! The test bed writes its addresses and credentials to `$TESTBED_DIR/env` (default `target/testbed/env`).
//! Tests read that file rather than relying on a sourced shell, so `cargo test` works from any shell once
//! the test bed is up. A missing test bed fails the test with a message saying how to start it: a test
//! that cannot reach its server has not passed.
#![allow(clippy::unwrap_used)]

use std::{collections::HashMap, path::PathBuf, sync::OnceLock, time::Duration};

#[path = "../../../testbed/arm-fake/fake.rs"]
pub mod arm_fake;
pub mod collector;
pub mod devices_bed;
// Tributary installed by Helm on the real node, and the node itself: their tests fail saying so without it.
pub mod helm;
pub mod node;
pub mod orders_bed;
pub mod outage;
pub mod proxy;
pub mod share;
pub mod sidecar;
pub mod tools;
pub mod webhook;
pub mod wire;

/// The `tributary` binary the tests run as controller and worker processes: Cargo's build of this
/// checkout, or `TRIBUTARY_BIN` when set (a copy of it, where several checkouts share one target
/// directory and another's build could replace the binary during a run).
pub fn tributary_bin() -> std::path::PathBuf {
    std::env::var_os("TRIBUTARY_BIN").map_or_else(|| env!("CARGO_BIN_EXE_tributary").into(), Into::into)
}

pub use share::{exclusive, shared};

/// The test bed's environment: the `export K='V'` lines of its env file.
pub fn env() -> &'static HashMap<String, String> {
    static ENV: OnceLock<HashMap<String, String>> = OnceLock::new();
    ENV.get_or_init(|| {
        let dir = std::env::var_os("TESTBED_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/testbed"));
        let file = dir.join("env");
        let text = std::fs::read_to_string(&file).unwrap_or_else(|e| {
            panic!(
                "cannot read {}: {e}; start the test bed first with `make testbed-up`",
                file.display()
            )
        });
        parse_env(&text)
    })
}

/// One value of the test bed's environment.
pub fn var(key: &str) -> String {
    env()
        .get(key)
        .cloned()
        .unwrap_or_else(|| panic!("test bed env file has no {key}"))
}

fn parse_env(text: &str) -> HashMap<String, String> {
    text.lines()
        .filter_map(|line| line.strip_prefix("export "))
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.trim_matches('\'').to_owned()))
        .collect()
}

/// A name unique to this test run, for cloud resources and namespaces that must not collide with
/// leftovers of earlier runs against the same test bed.
pub fn unique(prefix: &str) -> String {
    // The clock alone is not enough: tests running at once in one process read the same nanoseconds.
    static COUNT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let count = COUNT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("{prefix}-{}-{count}-{nanos:x}", std::process::id())
}

/// Poll `check` every 200 ms until it returns `Some`, or panic with `what` after `timeout`.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The YAML files of `examples/<dir>`, sorted by name.
pub fn example_files(dir: &str) -> Vec<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("examples")
        .join(dir);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no examples in {}", dir.display());
    files
}

/// A kube client for the test bed's admin user, from its kubeconfig.
pub async fn kube_client() -> kube::Client {
    tributary::tls::install_crypto_provider();
    let kubeconfig = kube::config::Kubeconfig::read_from(var("KUBECONFIG")).unwrap();
    let config =
        kube::Config::from_custom_kubeconfig(kubeconfig, &kube::config::KubeConfigOptions::default())
            .await
            .unwrap();
    kube::Client::try_from(config).unwrap()
}

/// Publishes `body` to an SNS topic with message attributes given as (name, data type, value).
pub async fn publish(
    sns: &aws_sdk_sns::Client,
    topic_arn: &str,
    body: &str,
    attributes: &[(&str, &str, &str)],
) {
    let mut request = sns.publish().topic_arn(topic_arn).message(body);
    for (name, data_type, value) in attributes {
        let attribute = aws_sdk_sns::types::MessageAttributeValue::builder()
            .data_type(*data_type)
            .string_value(*value)
            .build()
            .unwrap();
        request = request.message_attributes(*name, attribute);
    }
    request.send().await.unwrap();
}

/// Receives and deletes the messages of an SQS queue until a one-second long poll comes back empty;
/// returns their bodies in the order received.
pub async fn receive_all(sqs: &aws_sdk_sqs::Client, url: &str) -> Vec<String> {
    let mut bodies = Vec::new();
    loop {
        let received = sqs
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .send()
            .await
            .unwrap();
        let messages = received.messages.unwrap_or_default();
        if messages.is_empty() {
            return bodies;
        }
        for message in messages {
            bodies.push(message.body.unwrap_or_default());
            sqs.delete_message()
                .queue_url(url)
                .receipt_handle(message.receipt_handle.unwrap_or_default())
                .send()
                .await
                .unwrap();
        }
    }
}

/// Receives and deletes every message of an SQS queue, with its message attributes, until a one-second
/// long poll comes back empty.
pub async fn receive_messages(sqs: &aws_sdk_sqs::Client, url: &str) -> Vec<aws_sdk_sqs::types::Message> {
    let mut all = Vec::new();
    loop {
        let received = sqs
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(10)
            .message_attribute_names("All")
            .wait_time_seconds(1)
            .send()
            .await
            .unwrap()
            .messages
            .unwrap_or_default();
        if received.is_empty() {
            return all;
        }
        for message in &received {
            sqs.delete_message()
                .queue_url(url)
                .receipt_handle(message.receipt_handle.clone().unwrap_or_default())
                .send()
                .await
                .unwrap();
        }
        all.extend(received);
    }
}

/// A client of the test bed's Azurite queue service, authenticated by an account SAS that Tributary signs
/// itself (the crate has no shared-key support).
pub fn azure_queue_service() -> azure_storage_queue::QueueServiceClient {
    let sas = tributary::cloud::azure::storage_sas::AccountSas::queues_full_access(
        &var("AZURE_STORAGE_ACCOUNT"),
        time::OffsetDateTime::now_utc() + Duration::from_secs(3600),
    );
    let endpoint = azure_core::http::Url::parse(&var("AZURE_STORAGE_QUEUE_ENDPOINT")).unwrap();
    let url = sas.sign_url(&endpoint, &var("AZURE_STORAGE_KEY")).unwrap();
    azure_storage_queue::QueueServiceClient::new(url, None, None).unwrap()
}

/// The controller's storage queue management pointed at Azurite, and Azurite's account with its key.
pub fn azure_storage() -> (
    tributary::cloud::azure::storage_queues::StorageQueues,
    tributary::cloud::azure::storage_queues::Account,
) {
    let endpoint = azure_core::http::Url::parse(&var("AZURE_STORAGE_QUEUE_ENDPOINT")).unwrap();
    let account = tributary::cloud::azure::storage_queues::Account {
        name: var("AZURE_STORAGE_ACCOUNT"),
        key: var("AZURE_STORAGE_KEY"),
    };
    (
        tributary::cloud::azure::storage_queues::StorageQueues::new(Some(endpoint)),
        account,
    )
}

/// Receives and deletes every message of a storage queue until a receive comes back empty: each body and
/// its string attributes, read from Tributary's envelope.
pub async fn azure_drain(
    queue: &azure_storage_queue::QueueClient,
) -> Vec<(String, std::collections::BTreeMap<String, String>)> {
    azure_receive_all(queue, None).await
}

/// A `tributary worker` process running `config`, with the test bed's AWS endpoint and credentials and
/// its storage account key in the environment (what a worker pod gets), logging to `log`.
pub fn spawn_worker(config: &std::path::Path, log: &std::path::Path) -> std::process::Child {
    std::process::Command::new(tributary_bin())
        .args(["worker", "--config"])
        .arg(config)
        .env("AZURE_STORAGE_KEY", var("AZURE_STORAGE_KEY"))
        .env("AWS_ENDPOINT_URL", var("AWS_ENDPOINT_URL"))
        .env("AWS_REGION", var("AWS_REGION"))
        .env("AWS_ACCESS_KEY_ID", var("AWS_ACCESS_KEY_ID"))
        .env("AWS_SECRET_ACCESS_KEY", var("AWS_SECRET_ACCESS_KEY"))
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .unwrap()
}

/// The Secret `storage` holding the test bed's storage account key as `accountKey`.
pub async fn storage_secret(client: &kube::Client, namespace: &str) {
    let secret: k8s_openapi::api::core::v1::Secret = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "storage"},
        "stringData": {"accountKey": var("AZURE_STORAGE_KEY")},
    }))
    .unwrap();
    kube::Api::<k8s_openapi::api::core::v1::Secret>::namespaced(client.clone(), namespace)
        .create(&kube::api::PostParams::default(), &secret)
        .await
        .unwrap();
}

/// Up to 32 messages of a storage queue, peeked (left in place and visible): body and string attributes.
pub async fn azure_peek(
    queue: &azure_storage_queue::QueueClient,
) -> Vec<(String, std::collections::BTreeMap<String, String>)> {
    let options = azure_storage_queue::models::QueueClientPeekMessagesOptions {
        number_of_messages: Some(32),
        ..Default::default()
    };
    let peeked = queue
        .peek_messages(Some(options))
        .await
        .unwrap()
        .into_model()
        .unwrap()
        .items
        .unwrap_or_default();
    peeked
        .into_iter()
        .map(|m| decoded(m.message_text.as_deref().unwrap_or_default()))
        .collect()
}

/// A message text's body and string attributes, read from Tributary's envelope.
fn decoded(text: &str) -> (String, std::collections::BTreeMap<String, String>) {
    let (body, attributes) = tributary::cloud::azure::envelope::decode(text);
    let strings = attributes
        .into_iter()
        .filter_map(|(k, v)| Some((k, v.string_value?)))
        .collect();
    (body, strings)
}

/// Receives every message of a storage queue like [`azure_drain`], but leaves them in the queue, hidden
/// for `hide_seconds` (a peek sees at most 32).
pub async fn azure_read(
    queue: &azure_storage_queue::QueueClient,
    hide_seconds: i32,
) -> Vec<(String, std::collections::BTreeMap<String, String>)> {
    azure_receive_all(queue, Some(hide_seconds)).await
}

async fn azure_receive_all(
    queue: &azure_storage_queue::QueueClient,
    keep_hidden_for: Option<i32>,
) -> Vec<(String, std::collections::BTreeMap<String, String>)> {
    let mut all = Vec::new();
    loop {
        let options = azure_storage_queue::models::QueueClientReceiveMessagesOptions {
            number_of_messages: Some(32),
            visibility_timeout: Some(keep_hidden_for.unwrap_or(30)),
            ..Default::default()
        };
        let received = queue
            .receive_messages(Some(options))
            .await
            .unwrap()
            .into_model()
            .unwrap()
            .items
            .unwrap_or_default();
        if received.is_empty() {
            return all;
        }
        for message in received {
            if keep_hidden_for.is_none() {
                queue
                    .delete_message(
                        message.message_id.as_deref().unwrap(),
                        message.pop_receipt.as_deref().unwrap(),
                        None,
                    )
                    .await
                    .unwrap();
            }
            all.push(decoded(message.message_text.as_deref().unwrap_or_default()));
        }
    }
}

/// The ARM fake on a free port, its hubs on the test bed's broker.
pub async fn arm_fake() -> arm_fake::ArmFake {
    arm_fake::ArmFake::start(
        "127.0.0.1:0",
        arm_fake::Broker {
            bootstrap: var("KAFKA_BOOTSTRAP"),
            username: var("KAFKA_SASL_USERNAME"),
            password: var("KAFKA_SASL_PASSWORD"),
            ca_file: var("KAFKA_CA_FILE"),
        },
    )
    .await
}

/// The controller's Event Hubs access: the Resource Manager client and the DeviceStreams' defaults.
pub struct EventHubsAccess {
    /// The management calls.
    pub hubs: tributary::cloud::azure::event_hubs::EventHubs,
    /// The defaults of the spec's optional fields.
    pub defaults: tributary::controller::device_stream::EventHubsConfig,
}

/// Event Hubs through the ARM fake `fake` (subscription and resource group as the controller's
/// defaults), the broker as the Kafka endpoint.
pub fn event_hubs_config(
    fake: &arm_fake::ArmFake,
    subscription: &str,
    resource_group: &str,
) -> EventHubsAccess {
    use tributary::cloud::azure::{arm::Arm, event_hubs::EventHubs};
    EventHubsAccess {
        hubs: EventHubs::new(Arm::new(
            &fake.base,
            std::sync::Arc::new(arm_fake::FakeCredential),
            Duration::from_secs(10),
        )),
        defaults: tributary::controller::device_stream::EventHubsConfig {
            subscription: Some(subscription.to_owned()),
            resource_group: Some(resource_group.to_owned()),
            kafka_endpoint: Some(var("KAFKA_BOOTSTRAP")),
            kafka_ca_file: Some(var("KAFKA_CA_FILE")),
        },
    }
}

/// A counter or gauge of a worker's `/metrics` on 127.0.0.1:`port`, summed over its label sets.
pub async fn metric(port: u16, name: &str) -> Option<u64> {
    metric_at(&format!("127.0.0.1:{port}"), name).await
}

/// A counter or gauge of the `/metrics` at `address` (`host:port`), summed over its label sets.
pub async fn metric_at(address: &str, name: &str) -> Option<u64> {
    let text = reqwest::get(format!("http://{address}/metrics"))
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    let values: Vec<u64> = text
        .lines()
        .filter(|l| l.starts_with(&format!("{name}{{")))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .map(|v| v as u64)
        .collect();
    (!values.is_empty()).then(|| values.iter().sum())
}

/// A TCP port free on 127.0.0.1 at the time of asking, for a server a test starts.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// AWS SDK configuration pointing at the test bed's moto server.
pub async fn aws_config() -> aws_config::SdkConfig {
    aws_config_at(&var("AWS_ENDPOINT_URL")).await
}

/// AWS SDK configuration pointing at the test bed's ElasticMQ server (SQS only, with message-move tasks).
pub async fn elasticmq_config() -> aws_config::SdkConfig {
    aws_config_at(&var("ELASTICMQ_ENDPOINT_URL")).await
}

async fn aws_config_at(endpoint: &str) -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(aws_config::Region::new(var("AWS_REGION")))
        .credentials_provider(aws_credential_types::Credentials::new(
            var("AWS_ACCESS_KEY_ID"),
            var("AWS_SECRET_ACCESS_KEY"),
            None,
            None,
            "testbed",
        ))
        .load()
        .await
}

/// Installs the Tributary CRDs (server-side apply) once per test binary and waits until each is
/// Established.
pub async fn install_crds(client: &kube::Client) {
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    use kube::{
        Api,
        api::{Patch, PatchParams},
    };
    static INSTALLED: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();
    INSTALLED
        .get_or_init(|| async {
            let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
            let params = PatchParams::apply("tributary-tests").force();
            for crd in tributary::api::crds() {
                let name = kube::ResourceExt::name_any(&crd);
                crds.patch(&name, &params, &Patch::Apply(&crd)).await.unwrap();
            }
            for crd in tributary::api::crds() {
                let name = kube::ResourceExt::name_any(&crd);
                eventually(
                    &format!("CRD {name} Established"),
                    Duration::from_secs(30),
                    || {
                        let (crds, name) = (crds.clone(), name.clone());
                        async move {
                            let crd = crds.get(&name).await.ok()?;
                            let established = crd
                                .status?
                                .conditions?
                                .into_iter()
                                .any(|c| c.type_ == "Established" && c.status == "True");
                            established.then_some(())
                        }
                    },
                )
                .await;
            }
        })
        .await;
}

/// Creates a namespace with a unique name and returns it.
pub async fn namespace(client: &kube::Client, prefix: &str) -> String {
    use k8s_openapi::api::core::v1::Namespace;
    use kube::{Api, api::PostParams};
    let name = unique(prefix);
    // Labelled so that testbed/clean.sh removes it after the run (a later controller would otherwise
    // reconcile its objects against emulators that no longer hold their resources).
    let ns: Namespace = serde_json::from_value(serde_json::json!({
        "metadata": {"name": name, "labels": {"tributary.dev/test": "true"}}
    }))
    .unwrap();
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await
        .unwrap();
    name
}

/// A dynamic API for a Tributary kind in `namespace`.
pub fn tributary_api(
    client: &kube::Client,
    namespace: &str,
    kind: &str,
) -> kube::Api<kube::api::DynamicObject> {
    let gvk = kube::api::GroupVersionKind::gvk("tributary.dev", "v1alpha1", kind);
    let resource = kube::api::ApiResource::from_gvk_with_plural(&gvk, &format!("{}s", kind.to_lowercase()));
    kube::Api::namespaced_with(client.clone(), namespace, &resource)
}

/// Every YAML document in `text`, as dynamic objects.
pub fn yaml_objects(text: &str) -> Vec<kube::api::DynamicObject> {
    use serde::Deserialize;
    serde_yaml_ng::Deserializer::from_str(text)
        .filter_map(|doc| Option::<kube::api::DynamicObject>::deserialize(doc).unwrap())
        .collect()
}

/// The ARN of the SQS queue at `url`.
pub async fn queue_arn(sqs: &aws_sdk_sqs::Client, url: &str) -> String {
    use aws_sdk_sqs::types::QueueAttributeName;
    sqs.get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .unwrap()
        .attributes
        .unwrap()
        .remove(&QueueAttributeName::QueueArn)
        .unwrap()
}

/// A controller running in this test process, watching one namespace.
pub struct RunningController {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
    /// Its metrics, as `/metrics` would serve them.
    pub metrics: tributary::operate::Metrics,
}

impl RunningController {
    /// Stops it gracefully and waits for it.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        (&mut self.task).await.unwrap();
    }

    /// Kills it at once, wherever it is (a crash).
    pub async fn abort(self) {
        self.task.abort();
        let _ = self.task.await;
    }
}

/// Starts the controllers for `namespace` against the AWS endpoint of `aws`, with a 3 s resync and a
/// 1 s dependency retry so that tests converge quickly.
pub async fn start_controller(
    client: &kube::Client,
    namespace: &str,
    aws: &aws_config::SdkConfig,
) -> RunningController {
    start_controller_with(client, namespace, aws, None).await
}

/// The cluster identity of the controllers the tests start (in the ownership tags).
pub const TEST_CLUSTER: &str = "tributary-tests";

/// [`start_controller`] with Event Hubs managed through `event_hubs` (the ARM fake).
pub async fn start_controller_with(
    client: &kube::Client,
    namespace: &str,
    aws: &aws_config::SdkConfig,
    event_hubs: Option<EventHubsAccess>,
) -> RunningController {
    let limits = tributary::cloud::aws::ratelimit::RateLimits::published(Some(&var("AWS_REGION")));
    start_controller_limited(client, namespace, aws, event_hubs, &limits).await
}

/// [`start_controller_with`] with the given client-side AWS rate limits.
pub async fn start_controller_limited(
    client: &kube::Client,
    namespace: &str,
    aws: &aws_config::SdkConfig,
    event_hubs: Option<EventHubsAccess>,
    limits: &tributary::cloud::aws::ratelimit::RateLimits,
) -> RunningController {
    use tributary::{
        cloud::{aws::AwsCloud, azure::AzureCloud},
        controller::{Config, Context, Live, run},
        operate::Metrics,
    };
    let (hubs, event_hubs) = event_hubs.map(|e| (e.hubs, e.defaults)).unzip();
    let storage = tributary::cloud::azure::storage_queues::StorageQueues::new(Some(
        azure_core::http::Url::parse(&var("AZURE_STORAGE_QUEUE_ENDPOINT")).unwrap(),
    ));
    let config = Config {
        resync: Duration::from_secs(3),
        namespace: Some(namespace.to_owned()),
        dependency_retry: Duration::from_secs(1),
        quiet_start: Duration::ZERO,
        instance: Some(format!("test-{}", std::process::id())),
        scale_interval: Duration::from_secs(1),
        throughput_interval: Duration::from_secs(2),
        scrape_loopback_pods: true,
        worker_metrics_timeout: Duration::from_secs(2),
        worker: tributary::controller::consumer::render::WorkerSettings {
            image: "tributary:test".to_owned(),
            env: std::collections::BTreeMap::from([("AWS_REGION".to_owned(), var("AWS_REGION"))]),
            ..Default::default()
        },
        event_hubs,
        cluster: TEST_CLUSTER.to_owned(),
        check_spacing: tributary::controller::CheckSpacing::default(),
    };
    let metrics = Metrics::new();
    let ctx = std::sync::Arc::new(Context::<Live>::new(
        client.clone(),
        AwsCloud::with_limits(aws, limits),
        AzureCloud::new(storage, hubs),
        metrics.clone(),
        config,
    ));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(run(ctx, async {
        let _ = stopped.await;
    }));
    RunningController {
        stop: Some(stop),
        task,
        metrics,
    }
}

/// The `(status, reason, message, observedGeneration)` of an object's condition `type_`.
pub fn condition(object: &kube::api::DynamicObject, type_: &str) -> Option<(String, String, String, i64)> {
    let conditions = object.data.get("status")?.get("conditions")?.as_array()?;
    let c = conditions.iter().find(|c| c["type"] == type_)?;
    let s = |k: &str| c[k].as_str().unwrap_or_default().to_owned();
    Some((
        s("status"),
        s("reason"),
        s("message"),
        c["observedGeneration"].as_i64()?,
    ))
}

/// Waits until `kind` `name` has condition Ready with `reason`, and returns the object.
pub async fn wait_reason(
    client: &kube::Client,
    namespace: &str,
    kind: &str,
    name: &str,
    reason: &str,
    timeout: Duration,
) -> kube::api::DynamicObject {
    let api = tributary_api(client, namespace, kind);
    let what = format!("{kind} {namespace}/{name} Ready reason {reason}");
    eventually(&what, timeout, || {
        let api = api.clone();
        async move {
            let object = api.get(name).await.ok()?;
            let (_, found, _, _) = condition(&object, "Ready")?;
            (found == reason).then_some(object)
        }
    })
    .await
}

/// Creates every object of a YAML text in `namespace`.
pub async fn create_yaml(client: &kube::Client, namespace: &str, text: &str) {
    for object in yaml_objects(text) {
        let kind = object.types.as_ref().unwrap().kind.clone();
        tributary_api(client, namespace, &kind)
            .create(&kube::api::PostParams::default(), &object)
            .await
            .unwrap_or_else(|e| panic!("creating {kind}: {e}"));
    }
}

/// Creates or replaces the TenantPolicy of `namespace` with `spec` (camelCase JSON). Tests share one API
/// server, so each grants what it needs to its own namespace only, never through the cluster default.
pub async fn tenant_policy(client: &kube::Client, namespace: &str, spec: serde_json::Value) {
    use kube::{
        Api,
        api::{Patch, PatchParams},
    };
    let api: Api<tributary::api::TenantPolicy> = Api::all(client.clone());
    let policy = serde_json::json!({
        "apiVersion": "tributary.dev/v1alpha1",
        "kind": "TenantPolicy",
        "metadata": {"name": namespace},
        "spec": spec,
    });
    api.patch(
        namespace,
        &PatchParams::apply("tributary-tests").force(),
        &Patch::Apply(&policy),
    )
    .await
    .unwrap();
}

/// The tags of an SQS queue.
pub async fn queue_tags(sqs: &aws_sdk_sqs::Client, url: &str) -> std::collections::BTreeMap<String, String> {
    sqs.list_queue_tags()
        .queue_url(url)
        .send()
        .await
        .unwrap()
        .tags
        .unwrap_or_default()
        .into_iter()
        .collect()
}

/// The tags of an SNS topic.
pub async fn topic_tags(sns: &aws_sdk_sns::Client, arn: &str) -> std::collections::BTreeMap<String, String> {
    sns.list_tags_for_resource()
        .resource_arn(arn)
        .send()
        .await
        .unwrap()
        .tags
        .unwrap_or_default()
        .into_iter()
        .map(|t| (t.key, t.value))
        .collect()
}

/// Whether an Event with `reason` whose note contains `text` was recorded on `name`.
pub async fn has_event(client: &kube::Client, namespace: &str, name: &str, reason: &str, text: &str) -> bool {
    use k8s_openapi::api::events::v1::Event;
    let events: kube::Api<Event> = kube::Api::namespaced(client.clone(), namespace);
    events
        .list(&Default::default())
        .await
        .unwrap()
        .items
        .iter()
        .any(|e| {
            e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name)
                && e.reason.as_deref() == Some(reason)
                && e.note.as_deref().unwrap_or_default().contains(text)
        })
}
