//! The processor runtime behind `tributary worker`: it reads the configuration the Consumer reconciler
//! renders ([`config`]), drains a queue with the [`runtime`] or serves the order REST endpoint
//! ([`orders::ingress`]), runs one of the built-in processors ([`processor`], [`orders`]), and serves
//! `/metrics` and `/healthz` ([`endpoints`]); each message is processed in a span of its trace ([`trace`]).
//!
//! The runtime knows nothing of orders and the processors nothing of queues: a processor answers with
//! an [`processor::Outcome`] and the runtime turns it into acknowledgements, retries and dead letters.

pub mod config;
pub mod endpoints;
pub mod message;
pub mod metrics;
pub mod orders;
pub mod processor;
pub mod runtime;
pub mod trace;

use std::{future::Future, sync::Arc, time::Duration};

use anyhow::Context as _;
use futures::{FutureExt, future::Shared};

use self::{
    config::{ProcessorKind, SqsSource, WorkerConfig},
    metrics::WorkerMetrics,
    orders::{
        ingress::Ingress,
        processors::{Inventory, Notification, Shipment},
    },
    processor::{Noop, Processor},
};
use crate::cloud::aws::{OrderTable, SnsPublisher, SqsWorkQueue};

/// How often the order endpoint's relay looks at the outbox, and how long it leaves an entry to the
/// request that wrote it.
const RELAY_EVERY: Duration = Duration::from_secs(2);
const RELAY_GRACE: Duration = Duration::from_secs(30);

/// Runs the worker described by `config` until `shutdown` resolves, then drains and returns.
pub async fn run(
    config: WorkerConfig,
    aws: &aws_config::SdkConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let shutdown = shutdown.boxed().shared();
    let metrics = WorkerMetrics::new();
    let consumer = config.consumer.to_string();
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

    if let Some(http) = &config.source.http {
        let (Some(table), Some(publisher)) = (table, publisher) else {
            anyhow::bail!("order-ack needs sink.table and sink.topicArn");
        };
        let ingress = Ingress::new(table, publisher, metrics.clone());
        let relay = tokio::spawn(ingress.clone().relay(RELAY_EVERY, RELAY_GRACE, shutdown.clone()));
        let http_listener = tokio::net::TcpListener::bind(http.listen)
            .await
            .with_context(|| format!("failed to bind the order endpoint on {}", http.listen))?;
        let state = endpoints::State {
            metrics: metrics.clone(),
            consumer: consumer.clone(),
            processor: "order-ack",
        };
        let metrics_server = tokio::spawn(endpoints::serve(listener, state, shutdown.clone()));
        tracing::info!(%consumer, listen = %http.listen, "order endpoint started");
        axum::serve(http_listener, ingress.router())
            .with_graceful_shutdown(shutdown.clone())
            .await
            .context("the order endpoint failed")?;
        let _ = relay.await;
        metrics_server.abort();
        return Ok(());
    }

    let Some(sqs) = config.source.sqs.clone() else {
        anyhow::bail!("the worker configuration has no source");
    };
    let queue = SqsWorkQueue::new(
        aws_sdk_sqs::Client::new(aws),
        sqs.queue_url.clone(),
        config.dead_letter.as_ref().map(|d| d.queue_url.clone()),
    );
    let table = || table.clone().context("this processor needs sink.table");
    let drain = Drain {
        config: &config,
        sqs: &sqs,
        queue,
        metrics: metrics.clone(),
        listener,
        shutdown,
    };
    match config.processor {
        ProcessorKind::Noop => drain.run(Noop).await,
        ProcessorKind::Notification => drain.run(Notification::new(table()?)).await,
        ProcessorKind::Inventory => drain.run(Inventory::new(table()?, publisher)).await,
        ProcessorKind::Shipment => drain.run(Shipment::new(table()?, publisher)).await,
        ProcessorKind::OrderAck => anyhow::bail!("processor order-ack serves HTTP: it needs source.http"),
        ProcessorKind::Custom => {
            anyhow::bail!("processor custom is run by the Consumer's own image, not by tributary worker")
        }
    }
}

/// A queue worker about to start.
struct Drain<'a, S: Future<Output = ()> + Send + 'static> {
    config: &'a WorkerConfig,
    sqs: &'a SqsSource,
    queue: SqsWorkQueue,
    metrics: WorkerMetrics,
    listener: tokio::net::TcpListener,
    shutdown: Shared<S>,
}

impl<S: Future<Output = ()> + Send + 'static> Drain<'_, S> {
    async fn run<P: Processor>(self, processor: P) -> anyhow::Result<()> {
        let consumer = self.config.consumer.to_string();
        let state = endpoints::State {
            metrics: self.metrics.clone(),
            consumer: consumer.clone(),
            processor: processor.name(),
        };
        let server = tokio::spawn(endpoints::serve(self.listener, state, self.shutdown.clone()));
        let settings = runtime::Settings {
            consumer: consumer.clone(),
            receivers: self.sqs.receivers,
            wait_seconds: self.sqs.wait_time_seconds,
            visibility_timeout: Duration::from_secs(
                u64::try_from(self.sqs.visibility_timeout_seconds).unwrap_or(30),
            ),
            retry: self.config.retry.clone(),
            drain: Duration::from_secs(self.config.drain_seconds),
        };
        tracing::info!(%consumer, processor = processor.name(), queue = %self.sqs.queue_url, "worker started");
        runtime::run(
            self.queue,
            Arc::new(processor),
            settings,
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
