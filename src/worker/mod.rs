//! The processor runtime behind `tributary worker`: it reads the configuration the Consumer reconciler
//! renders ([`config`]), drains a queue with the [`runtime`] or serves the order REST endpoint
//! ([`orders::ingress`]) or reads device telemetry from a Kafka endpoint ([`devices`]), runs one of the
//! built-in processors ([`processor`], [`orders`], [`devices`]), and serves
//! `/metrics`, `/healthz` and `/readyz` ([`endpoints`], judged by [`health`]); each message is processed in
//! a span of its trace ([`trace`]). A processor's panic fails its message, and receive loops that die are
//! restarted ([`supervisor`]).
//!
//! The runtime knows nothing of orders and the processors nothing of queues: a processor answers with
//! an [`processor::Outcome`] and the runtime turns it into acknowledgements, retries and dead letters.

pub mod config;
pub mod delivery;
pub mod devices;
pub mod endpoints;
pub mod health;
pub mod hold;
pub mod message;
pub mod metrics;
pub mod ordering;
pub mod orders;
pub mod processor;
pub mod queue;
pub mod relay;
pub mod runtime;
pub mod secrets;
pub mod stalls;
pub mod supervisor;
pub mod trace;

use std::{future::Future, sync::Arc, time::Duration};

use anyhow::Context as _;
use futures::{FutureExt, future::Shared};

pub use self::secrets::Secrets;
use self::secrets::{device_dead_letter, kafka_endpoint, required};
use self::{
    config::{HttpSource, KafkaSource, ProcessorKind, WorkerConfig},
    metrics::WorkerMetrics,
    orders::{
        ingress::Ingress,
        processors::{Inventory, Notification, Shipment},
        security::{self, Security},
        table::OrderTable,
    },
    processor::{Noop, Processor},
    queue::WorkQueue,
};
use crate::cloud::{
    MessageQueue,
    aws::{SnsPublisher, SqsQueue},
    azure::{
        cosmos::{ContainerAddress, CosmosContainer},
        queue::StorageQueue,
        storage_queues::Account,
    },
};

/// How often the order endpoint's relay looks at the outbox, and how long it leaves an entry to the
/// request that wrote it.
const RELAY_EVERY: Duration = Duration::from_secs(2);
const RELAY_GRACE: Duration = Duration::from_secs(30);

/// Runs the worker described by `config` until `shutdown` resolves, then drains and returns.
pub async fn run(
    config: WorkerConfig,
    secrets: &Secrets,
    aws: &aws_config::SdkConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let shutdown = shutdown.boxed().shared();
    let metrics = WorkerMetrics::with_health(health::Health::with_bounds(health::Bounds {
        unreachable_after: Duration::from_secs(config.unreachable_after_seconds),
        ..health::Bounds::default()
    }));
    metrics.health().name_source(config.source_name());
    let table = config
        .sink
        .table
        .as_ref()
        .map(|table| OrderTable::new(aws_sdk_dynamodb::Client::new(aws), table.clone()));
    let publisher = config
        .sink
        .topic_arn
        .as_ref()
        .map(|arn| SnsPublisher::new(aws_sdk_sns::Client::new(aws), arn.clone()));
    let listener = tokio::net::TcpListener::bind(config.metrics_listen)
        .await
        .with_context(|| format!("failed to bind the metrics endpoint on {}", config.metrics_listen))?;
    let started = Started {
        config: &config,
        secrets,
        metrics,
        listener,
        shutdown,
    };

    if let Some(http) = &config.source.http {
        let (Some(table), Some(publisher)) = (table, publisher) else {
            anyhow::bail!("order-ack needs sink.table and sink.topicArn");
        };
        return started.serve_orders(http, table, publisher).await;
    }
    if let Some(kafka) = &config.source.kafka
        && config.processor == ProcessorKind::Container
    {
        return started.stream_to_container(kafka, publisher).await;
    }
    if let Some(kafka) = &config.source.kafka {
        return run_devices(
            &config,
            secrets,
            kafka,
            started.metrics,
            started.listener,
            started.shutdown,
        )
        .await;
    }
    match queue_source(&config, secrets, aws)? {
        (Queue::Sqs(queue), settings) => started.drain(settings).processor(queue, table, publisher).await,
        (Queue::Storage(queue), settings) => {
            started.drain(settings).processor(*queue, table, publisher).await
        }
    }
}

/// A worker whose metrics endpoint is bound, about to serve its source.
struct Started<'a, S: Future<Output = ()> + Send + 'static> {
    config: &'a WorkerConfig,
    secrets: &'a Secrets,
    metrics: WorkerMetrics,
    listener: tokio::net::TcpListener,
    shutdown: Shared<S>,
}

impl<'a, S: Future<Output = ()> + Send + 'static> Started<'a, S> {
    /// The order endpoint (processor order-ack) and its outbox relay, until shutdown.
    async fn serve_orders(
        self,
        http: &HttpSource,
        table: OrderTable,
        publisher: SnsPublisher,
    ) -> anyhow::Result<()> {
        let consumer = self.config.consumer.to_string();
        let security = Security::new(&http.auth, http.limits.clone(), &consumer)
            .map_err(|e| anyhow::anyhow!("source.http: {e}"))?;
        let background = security.spawn_background(&http.auth);
        let ingress = Ingress::new(table, publisher, self.metrics.clone());
        let relay = tokio::spawn(
            ingress
                .clone()
                .relay(RELAY_EVERY, RELAY_GRACE, self.shutdown.clone()),
        );
        let state = endpoints::State {
            metrics: self.metrics.clone(),
            consumer: consumer.clone(),
            processor: "order-ack",
        };
        let metrics_server = tokio::spawn(endpoints::serve(self.listener, state, self.shutdown.clone()));
        tracing::info!(
            %consumer,
            listen = %http.listen,
            tls = http.tls.is_some(),
            anonymous = http.auth.anonymous,
            api_keys = http.auth.api_keys.is_some(),
            jwt = http.auth.jwt.is_some(),
            "order endpoint started"
        );
        let app = ingress.router(&security);
        let served = security::serve(http.listen, http.tls.as_ref(), app, self.shutdown).await;
        background.iter().for_each(tokio::task::JoinHandle::abort);
        served?;
        let _ = relay.await;
        metrics_server.abort();
        Ok(())
    }

    /// Processor container on a Kafka source, with the stream's bounds and dead letters.
    async fn stream_to_container(
        self,
        kafka: &KafkaSource,
        publisher: Option<SnsPublisher>,
    ) -> anyhow::Result<()> {
        let endpoint = kafka_endpoint(kafka, self.secrets)?;
        let dead_letter = device_dead_letter(self.config, self.secrets)?;
        let delivery =
            (self.config.delivery.as_ref()).context("processor container needs the delivery block")?;
        let health = self.metrics.health().clone();
        let container = delivery::start(delivery, publisher, health, self.shutdown.clone())?;
        let consumer = self.config.consumer.to_string();
        let state = endpoints::State {
            metrics: self.metrics.clone(),
            consumer: consumer.clone(),
            processor: "container",
        };
        let server = tokio::spawn(endpoints::serve(self.listener, state, self.shutdown.clone()));
        tracing::info!(%consumer, topic = %kafka.topic, group = %kafka.consumer_group, "container processor started on a stream");
        let processor = devices::settle::OnStream {
            processor: container,
            consumer,
            dead_letter,
            retry: self.config.retry.clone(),
            metrics: self.metrics,
        };
        let drain = Duration::from_secs(self.config.drain_seconds);
        let result = devices::stream::run(kafka, &endpoint, processor, self.shutdown, drain).await;
        server.abort();
        result
    }

    /// A queue worker with `settings`.
    fn drain(self, settings: runtime::Settings) -> Drain<'a, S> {
        Drain {
            config: self.config,
            secrets: self.secrets,
            settings,
            metrics: self.metrics,
            listener: self.listener,
            shutdown: self.shutdown,
        }
    }
}

/// The queue a worker drains.
enum Queue {
    Sqs(WorkQueue<SqsQueue>),
    Storage(Box<WorkQueue<StorageQueue>>),
}

/// The queue source of `config` (a Storage Queue signed with the storage account key, or an SQS queue)
/// with its dead letter, and the runtime settings for it.
fn queue_source(
    config: &WorkerConfig,
    secrets: &Secrets,
    aws: &aws_config::SdkConfig,
) -> anyhow::Result<(Queue, runtime::Settings)> {
    if let Some(storage) = &config.source.storage_queue {
        let key = required(
            &secrets.storage_key,
            "AZURE_STORAGE_KEY",
            "source.storageQueue: the storage account key",
        )?;
        let account = Account {
            name: storage.account.clone(),
            key,
        };
        let url = url::Url::parse(&storage.queue_url).context("source.storageQueue.queueUrl is not a URL")?;
        let dead_letter = config
            .dead_letter
            .as_ref()
            .map(|d| url::Url::parse(&d.queue_url))
            .transpose()
            .context("deadLetter.queueUrl is not a URL")?;
        let mut settings = settings(
            config,
            storage.receivers,
            storage.wait_time_seconds,
            storage.visibility_timeout_seconds,
        );
        settings.max_receive_count = storage.max_receive_count;
        let source = StorageQueue::signed(url, &account).with_visibility_timeout(settings.visibility_timeout);
        let dead_letter = dead_letter.map(|url| StorageQueue::signed(url, &account).never_expiring());
        let queue = WorkQueue::new(source, dead_letter);
        return Ok((Queue::Storage(Box::new(queue)), settings));
    }
    let Some(sqs) = &config.source.sqs else {
        anyhow::bail!("the worker configuration has no source");
    };
    let client = aws_sdk_sqs::Client::new(aws);
    let dead_letter = config
        .dead_letter
        .as_ref()
        .map(|d| SqsQueue::new(client.clone(), d.queue_url.clone()));
    let queue = WorkQueue::new(SqsQueue::new(client, sqs.queue_url.clone()), dead_letter);
    let settings = settings(
        config,
        sqs.receivers,
        sqs.wait_time_seconds,
        sqs.visibility_timeout_seconds,
    );
    Ok((Queue::Sqs(queue), settings))
}

/// The device processor: the stream, Cosmos DB and the dead letter, with their `secrets`.
async fn run_devices<S: Future<Output = ()> + Send + 'static>(
    config: &WorkerConfig,
    secrets: &Secrets,
    kafka: &KafkaSource,
    metrics: WorkerMetrics,
    listener: tokio::net::TcpListener,
    shutdown: Shared<S>,
) -> anyhow::Result<()> {
    let endpoint = kafka_endpoint(kafka, secrets)?;
    let sink = config
        .sink
        .cosmos
        .as_ref()
        .context("processor device needs sink.cosmos")?;
    let address = ContainerAddress {
        endpoint: sink.endpoint.clone(),
        key: required(
            &secrets.cosmos_key,
            "AZURE_COSMOS_KEY",
            "sink.cosmos: the Cosmos DB account key",
        )?,
        database: sink.database.clone(),
        container: sink.container.clone(),
        partition_key_path: sink.partition_key_path.clone(),
        preferred_region: sink.preferred_region.clone(),
    };
    let dead_letter = device_dead_letter(config, secrets)?;
    let container = CosmosContainer::open(&address, sink.create_if_missing)
        .await
        .with_context(|| {
            format!(
                "cannot open the Cosmos DB container {}/{}",
                sink.database, sink.container
            )
        })?;
    let consumer = config.consumer.to_string();
    let state = endpoints::State {
        metrics: metrics.clone(),
        consumer: consumer.clone(),
        processor: "device",
    };
    let server = tokio::spawn(endpoints::serve(listener, state, shutdown.clone()));
    tracing::info!(%consumer, topic = %kafka.topic, group = %kafka.consumer_group, "device processor started");
    let processor = devices::processor::DeviceProcessor {
        consumer: consumer.clone(),
        documents: container,
        partition_key_path: sink.partition_key_path.clone(),
        dead_letter,
        retry: config.retry.clone(),
        metrics: metrics.clone(),
    };
    let drain = Duration::from_secs(config.drain_seconds);
    let result = devices::stream::run(kafka, &endpoint, processor, shutdown, drain).await;
    tracing::info!(
        %consumer,
        processed = metrics.processed_total(),
        dead_lettered = metrics.dead_lettered_total(),
        writes = metrics.sink_writes_total(),
        "device processor stopped"
    );
    server.abort();
    result
}

/// The runtime settings of a queue source.
fn settings(
    config: &WorkerConfig,
    receivers: usize,
    wait_seconds: i32,
    visibility_seconds: i32,
) -> runtime::Settings {
    runtime::Settings {
        consumer: config.consumer.to_string(),
        receivers,
        wait_seconds,
        visibility_timeout: Duration::from_secs(u64::try_from(visibility_seconds).unwrap_or(30)),
        retry: config.retry.clone(),
        drain: Duration::from_secs(config.drain_seconds),
        max_receive_count: None,
    }
}

/// A queue worker about to start.
struct Drain<'a, S: Future<Output = ()> + Send + 'static> {
    config: &'a WorkerConfig,
    secrets: &'a Secrets,
    settings: runtime::Settings,
    metrics: WorkerMetrics,
    listener: tokio::net::TcpListener,
    shutdown: Shared<S>,
}

impl<S: Future<Output = ()> + Send + 'static> Drain<'_, S> {
    /// Runs the configured processor on `queue`.
    async fn processor<Q: MessageQueue + Clone + 'static>(
        self,
        queue: WorkQueue<Q>,
        table: Option<OrderTable>,
        publisher: Option<SnsPublisher>,
    ) -> anyhow::Result<()> {
        let table = || table.clone().context("this processor needs sink.table");
        match self.config.processor {
            ProcessorKind::Noop => self.run(queue, Noop).await,
            ProcessorKind::Relay => {
                let target = (self.config.relay.as_ref()).context("processor relay needs the relay block")?;
                let key = required(
                    &self.secrets.storage_key,
                    "AZURE_STORAGE_KEY",
                    "relay: the storage account key",
                )?;
                let relay = target
                    .processor(key)
                    .map_err(anyhow::Error::msg)?
                    .with_metrics(self.metrics.clone());
                self.run(queue, relay).await
            }
            ProcessorKind::Notification => self.run(queue, Notification::new(table()?)).await,
            ProcessorKind::Inventory => self.run(queue, Inventory::new(table()?, publisher)).await,
            ProcessorKind::Shipment => self.run(queue, Shipment::new(table()?, publisher)).await,
            ProcessorKind::OrderAck => anyhow::bail!("processor order-ack serves HTTP: it needs source.http"),
            ProcessorKind::Device => anyhow::bail!("processor device reads a stream: it needs source.kafka"),
            ProcessorKind::Container => {
                let delivery = self
                    .config
                    .delivery
                    .as_ref()
                    .context("processor container needs the delivery block")?;
                let health = self.metrics.health().clone();
                let container = delivery::start(delivery, publisher, health, self.shutdown.clone())?;
                self.run(queue, container).await
            }
        }
    }

    async fn run<Q: MessageQueue + Clone + 'static, P: Processor>(
        self,
        queue: WorkQueue<Q>,
        processor: P,
    ) -> anyhow::Result<()> {
        let consumer = self.config.consumer.to_string();
        let state = endpoints::State {
            metrics: self.metrics.clone(),
            consumer: consumer.clone(),
            processor: processor.name(),
        };
        let server = tokio::spawn(endpoints::serve(self.listener, state, self.shutdown.clone()));
        tracing::info!(%consumer, processor = processor.name(), queue = %queue.url(), "worker started");
        runtime::run(
            queue,
            Arc::new(processor),
            self.settings,
            self.metrics.clone(),
            self.shutdown,
        )
        .await;
        tracing::info!(
            %consumer,
            processed = self.metrics.processed_total(),
            dead_lettered = self.metrics.dead_lettered_total(),
            "worker stopped"
        );
        server.abort();
        Ok(())
    }
}
