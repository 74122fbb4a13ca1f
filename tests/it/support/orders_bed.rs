//! The order example on the test bed for fault tests: the controller (in this process) provisions it
//! against moto, and its four workers run as `tributary worker` processes from the configuration the
//! controller rendered (as in `e2e_orders`, smaller: no scaling, no tracing), each pointed at an AWS
//! endpoint of the test's choosing (moto, or a proxy in front of it).
#![allow(clippy::unwrap_used)]

use std::{
    collections::BTreeMap,
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use k8s_openapi::api::core::v1::ConfigMap;
use kube::{
    Api,
    api::{Patch, PatchParams},
};
use serde_json::json;
use tributary::worker::{
    config::WorkerConfig,
    orders::{
        store::{OrderRecord, OrderStore},
        table::OrderTable,
    },
};

const CONVERGE: Duration = Duration::from_secs(90);
/// The workers of the example, by Consumer name.
pub const WORKERS: [&str; 4] = ["order-ack", "notification", "inventory", "shipment"];
/// The stock each product starts with.
pub const INITIAL_STOCK: i64 = 100_000;

/// A `tributary worker` process.
pub struct Worker {
    child: Child,
}

impl Worker {
    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits for it to exit (after a kill) and returns whether it was killed by a signal.
    pub fn reap(&mut self) -> bool {
        let status = self.child.wait().unwrap();
        status.code().is_none()
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The running order example.
pub struct OrderBed {
    /// The test bed's API server.
    pub client: kube::Client,
    /// The namespace of the example.
    pub ns: String,
    /// The Order table.
    pub table: OrderTable,
    /// Each worker's configuration file.
    pub configs: BTreeMap<&'static str, PathBuf>,
    /// Where the workers log.
    pub work: PathBuf,
    /// The running workers.
    pub workers: BTreeMap<&'static str, Worker>,
    /// POSTs orders to the order endpoint.
    pub poster: Poster,
    /// Where workers started from now on export their spans (`OTEL_EXPORTER_OTLP_ENDPOINT`); none: off.
    pub otlp: Option<String>,
    controller: Option<super::RunningController>,
}

/// A client of the order endpoint.
#[derive(Clone)]
pub struct Poster {
    http: reqwest::Client,
    base: String,
}

impl Poster {
    /// A client of the order endpoint at `base` (`http://host:port`), sending with `http`.
    pub fn new(http: reqwest::Client, base: String) -> Self {
        Poster { http, base }
    }

    /// POSTs `order` until it is accepted (a 503, a 429 or no answer mean: the same request again, as a
    /// client would), pausing `pause` between tries, for at most `within`; returns the order id.
    pub async fn post(&self, order: &serde_json::Value, pause: Duration, within: Duration) -> String {
        let deadline = Instant::now() + within;
        loop {
            let answer = self
                .http
                .post(format!("{}/orders", self.base))
                .json(order)
                .send()
                .await;
            if let Ok(answer) = answer {
                let status = answer.status();
                if status == 202 {
                    let body: serde_json::Value = answer.json().await.unwrap();
                    return body["orderId"].as_str().unwrap().to_owned();
                }
                assert!(
                    status == 503 || status == 429,
                    "{order}: {status}: {:?}",
                    answer.text().await
                );
            }
            assert!(
                Instant::now() < deadline,
                "{order} not accepted within {within:?}"
            );
            tokio::time::sleep(pause).await;
        }
    }
}

impl OrderBed {
    /// Provisions the example in a new namespace (`edit` may change each file's text first), waits for
    /// its Consumers and starts the four workers against moto.
    pub async fn start(prefix: &str, edit: impl Fn(&str) -> String) -> Self {
        Self::start_exporting(prefix, edit, None).await
    }

    /// [`OrderBed::start`] with the workers exporting their spans to `otlp` (an OTLP/HTTP endpoint).
    pub async fn start_exporting(prefix: &str, edit: impl Fn(&str) -> String, otlp: Option<String>) -> Self {
        let client = super::kube_client().await;
        super::install_crds(&client).await;
        let ns = super::namespace(&client, prefix).await;
        let aws = super::aws_config().await;
        let controller = super::start_controller(&client, &ns, &aws).await;
        for file in super::example_files("orders") {
            let text = edit(&std::fs::read_to_string(&file).unwrap());
            super::create_yaml(&client, &ns, &text).await;
        }
        let consumers = super::tributary_api(&client, &ns, "Consumer");
        let table_name = format!("{ns}-orders");
        for name in WORKERS {
            let sink = json!({"spec": {"sink": {"table": table_name}}});
            consumers
                .patch(name, &PatchParams::default(), &Patch::Merge(&sink))
                .await
                .unwrap();
        }
        for name in WORKERS {
            super::wait_reason(&client, &ns, "Consumer", name, "Available", CONVERGE).await;
        }
        let work = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("target/faults")
            .join(&ns);
        std::fs::create_dir_all(&work).unwrap();
        let api_key = tributary::worker::orders::security::api_keys::new_key(Some("faults")).unwrap();
        let (configs, ingress_port) = write_configs(&client, &ns, &table_name, &work, &api_key.entry).await;
        let table = OrderTable::new(aws_sdk_dynamodb::Client::new(&aws), table_name);
        let http = bearer(&api_key.key)
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap();
        let mut bed = Self {
            client,
            ns,
            table,
            configs,
            work,
            workers: BTreeMap::new(),
            poster: Poster {
                http,
                base: format!("http://127.0.0.1:{ingress_port}"),
            },
            otlp,
            controller: Some(controller),
        };
        for name in WORKERS {
            bed.start_worker(name, &super::var("AWS_ENDPOINT_URL"));
        }
        for name in ["a", "b", "c", "d", "e"] {
            bed.table.set_stock(&bed.sku(name), INITIAL_STOCK).await.unwrap();
        }
        wait_for_order_endpoint(&bed.poster.http, &bed.poster.base).await;
        bed
    }

    /// A product name of this namespace.
    pub fn sku(&self, name: &str) -> String {
        format!("{}-{name}", self.ns)
    }

    /// Starts (or restarts) worker `name` with `endpoint` as its AWS endpoint.
    pub fn start_worker(&mut self, name: &'static str, endpoint: &str) -> &Worker {
        self.workers.remove(name);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.work.join(format!("{name}.log")))
            .unwrap();
        let mut command = Command::new(super::tributary_bin());
        if let Some(otlp) = &self.otlp {
            command.env("OTEL_EXPORTER_OTLP_ENDPOINT", otlp);
        }
        let child = command
            .args(["worker", "--config"])
            .arg(&self.configs[name])
            .env("AWS_ENDPOINT_URL", endpoint)
            .env("AWS_REGION", super::var("AWS_REGION"))
            .env("AWS_ACCESS_KEY_ID", super::var("AWS_ACCESS_KEY_ID"))
            .env("AWS_SECRET_ACCESS_KEY", super::var("AWS_SECRET_ACCESS_KEY"))
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.workers.insert(name, Worker { child });
        &self.workers[name]
    }

    /// The `i`th order of a test: one line of a product, standard delivery (so it ends SHIPPED).
    pub fn order(&self, key: &str, product: &str, quantity: i64) -> serde_json::Value {
        json!({
            "customerId": "c-faults",
            "items": [{"sku": self.sku(product), "quantity": quantity, "unitPriceCents": 1999}],
            "region": "eu-west",
            "delivery": "standard",
            "idempotencyKey": format!("{}-{key}", self.ns),
        })
    }

    /// The order's record, if it can be read.
    pub async fn record(&self, id: &str) -> Option<OrderRecord> {
        self.table.order(id).await.ok().flatten()
    }

    /// Waits until every order of `ids` is SHIPPED with both notifications, for at most `within`
    /// (orders found done are not read again).
    pub async fn wait_shipped(&self, ids: &[String], within: Duration) {
        let deadline = Instant::now() + within;
        let mut pending: Vec<String> = ids.to_vec();
        loop {
            let mut still = Vec::new();
            for id in pending {
                let done = self.record(&id).await.is_some_and(|r| {
                    r.state == "SHIPPED" && r.notifications == ["OrderPlaced", "OrderShipped"]
                });
                if !done {
                    still.push(id);
                }
            }
            if still.is_empty() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{} orders not SHIPPED and notified within {within:?}, e.g. {:?}",
                still.len(),
                self.record(&still[0]).await
            );
            pending = still;
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// Checks every effect of `orders` (id, product, quantity) happened once: each state once in the
    /// history, one tracking id, each notification once, and each product's stock down by exactly the
    /// quantities ordered of it.
    pub async fn assert_effects_once(&self, orders: &[(String, String, i64)]) {
        let mut reserved: BTreeMap<&str, i64> = BTreeMap::new();
        for (id, product, quantity) in orders {
            let record = self.record(id).await.unwrap();
            let history: Vec<&str> = record.history.iter().map(|t| t.state.as_str()).collect();
            assert_eq!(
                history,
                ["PLACED", "RESERVED", "SHIPPED"],
                "{id}: each state once"
            );
            assert!(record.tracking_id.is_some(), "{id}");
            assert_eq!(record.notifications, ["OrderPlaced", "OrderShipped"], "{id}");
            *reserved.entry(product).or_default() += quantity;
        }
        for (product, quantity) in reserved {
            let left = self.table.stock(&self.sku(product)).await.unwrap().unwrap();
            assert_eq!(left, INITIAL_STOCK - quantity, "{product}: reserved exactly once");
        }
    }

    /// The messages in the dead-letter queue orders-dlq, received (hidden) for `hide` seconds.
    pub async fn dead_letters(&self, hide: i32) -> Vec<aws_sdk_sqs::types::Message> {
        let dlq = super::tributary_api(&self.client, &self.ns, "DeadLetter")
            .get("orders-dlq")
            .await
            .unwrap();
        let url = dlq.data["status"]["url"].as_str().unwrap().to_owned();
        let sqs = aws_sdk_sqs::Client::new(&super::aws_config().await);
        let mut all = Vec::new();
        loop {
            let batch = sqs
                .receive_message()
                .queue_url(&url)
                .max_number_of_messages(10)
                .visibility_timeout(hide)
                .message_attribute_names("All")
                .send()
                .await
                .unwrap()
                .messages
                .unwrap_or_default();
            if batch.is_empty() {
                return all;
            }
            all.extend(batch);
        }
    }

    /// Stops the workers (SIGTERM) and the controller.
    pub async fn stop(mut self) {
        for (_, worker) in std::mem::take(&mut self.workers) {
            let _ = Command::new("kill")
                .args(["-TERM", &worker.pid().to_string()])
                .status();
            drop(worker);
        }
        if let Some(controller) = self.controller.take() {
            controller.stop().await;
        }
    }
}

/// Writes each worker's rendered configuration with local ports and 2 s long polls; returns the files
/// and the order endpoint's port.
async fn write_configs(
    client: &kube::Client,
    ns: &str,
    table_name: &str,
    work: &std::path::Path,
    key_entry: &str,
) -> (BTreeMap<&'static str, PathBuf>, u16) {
    let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    let mut files = BTreeMap::new();
    let mut ingress_port = 0;
    for name in WORKERS {
        let mut config = super::eventually("the rendered configuration", CONVERGE, || {
            let config_maps = config_maps.clone();
            async move {
                let map = config_maps.get(&format!("{name}-worker")).await.ok()?;
                let config: WorkerConfig = serde_yaml_ng::from_str(&map.data?["worker.yaml"]).ok()?;
                (config.sink.table.as_deref() == Some(table_name)).then_some(config)
            }
        })
        .await;
        config.metrics_listen = ([127, 0, 0, 1], super::free_port()).into();
        if let Some(http) = config.source.http.as_mut() {
            ingress_port = super::free_port();
            http.listen = ([127, 0, 0, 1], ingress_port).into();
            let keys = http
                .auth
                .api_keys
                .as_mut()
                .expect("the example authenticates with API keys");
            keys.dir = work.join("api-keys");
            std::fs::create_dir_all(&keys.dir).unwrap();
            std::fs::write(keys.dir.join("faults"), key_entry).unwrap();
        }
        if let Some(sqs) = config.source.sqs.as_mut() {
            sqs.wait_time_seconds = 2;
        }
        let path = work.join(format!("{name}.yaml"));
        std::fs::write(&path, serde_yaml_ng::to_string(&config).unwrap()).unwrap();
        files.insert(name, path);
    }
    (files, ingress_port)
}

/// An HTTP client builder whose every request carries `key` as its bearer token (the order endpoint's
/// API key).
pub fn bearer(key: &str) -> reqwest::ClientBuilder {
    reqwest::Client::builder().default_headers(reqwest::header::HeaderMap::from_iter([(
        reqwest::header::AUTHORIZATION,
        format!("Bearer {key}").parse().unwrap(),
    )]))
}

/// Waits until the order endpoint at `base` serves: it answers for an unknown order (its health is on the
/// metrics port).
pub async fn wait_for_order_endpoint(http: &reqwest::Client, base: &str) {
    super::eventually("the order endpoint", CONVERGE, || {
        let (http, base) = (http.clone(), base.to_owned());
        async move {
            let status = http
                .get(format!("{base}/orders/o-none"))
                .send()
                .await
                .ok()?
                .status();
            (status == 404).then_some(())
        }
    })
    .await;
}
