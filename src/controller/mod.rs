//! The controllers: one reconciler per kind sharing one [`Context`]. Each follows the same pipeline:
//! resolve and validate (pure) → build the desired cloud state (pure) → apply through the cloud traits →
//! write status.
//!
//! - [`driver`]: what every kind shares: the reconcile loop ([`driver::reconcile`]: finalizer, failure
//!   classes, status of the outcome), status and conditions, Events, errors, ownership, drift, the watch
//!   stores that decide which changes wake whom (a dependency becoming ready wakes the objects that wait
//!   for it; status-only writes wake nobody), references, Secrets, tenancy and child apply.
//! - [`resources`]: what two kinds manage alike (SQS queues, Storage Queues, a DeviceStream's Event Hub as
//!   its readers reach it, worker objects).
//! - One folder per kind: [`topic`], [`queue`], [`subscription`] (with its relay), [`dead_letter`] (with
//!   its redrives), [`consumer`], [`device_stream`]. A kind imports the driver and the resources, never
//!   another kind.
//! - [`run`] wires them together (module `wiring`): one watch per kind, shared by the controllers that
//!   read it.

pub mod consumer;
pub mod dead_letter;
pub mod device_stream;
pub mod driver;
pub mod queue;
pub mod resources;
pub mod subscription;
pub mod topic;
mod wiring;

use std::{future::Future, sync::Arc, time::Duration};

use futures::FutureExt;
use kube::{
    Client,
    runtime::events::{Recorder, Reporter},
};

pub use driver::error::Error;
use driver::{error, ownership, reconcile, status, verified, watch};

use crate::{
    api::{Consumer, DeadLetter, DeviceStream, Queue, Subscription, Topic},
    cloud::{
        ConsumerLag, EventHubsAdmin, HubProducers, QueueMessages, Queues, StorageQueueAdmin,
        StorageQueueMessages, Subscriptions, Tables, Topics, aws::AwsCloud, azure::AzureCloud,
    },
    operate::Metrics,
};

/// Field manager of every write the controller makes (server-side apply).
pub const FIELD_MANAGER: &str = "tributary-controller";

/// The finalizer on every object backed by a cloud resource.
pub const FINALIZER: &str = "tributary.dev/cleanup";

/// The clouds the controllers reconcile against: an implementation of every AWS capability and one of
/// every Azure capability. [`Live`] pairs the real clients; the unit tests pair the in-memory fakes.
pub trait Cloud: Send + Sync + 'static {
    /// SNS, SQS and DynamoDB.
    type Aws: Topics + Queues + Subscriptions + QueueMessages + Tables + Clone + 'static;
    /// Resource Manager / Event Hubs, Storage Queues and the Kafka clients.
    type Azure: EventHubsAdmin
        + StorageQueueAdmin
        + StorageQueueMessages
        + ConsumerLag
        + HubProducers
        + Clone
        + 'static;
}

/// The real clouds: [`AwsCloud`] and [`AzureCloud`]. Never made; it only names the pairing.
#[derive(Debug)]
pub enum Live {}

impl Cloud for Live {
    type Aws = AwsCloud;
    type Azure = AzureCloud;
}

/// Settings of the controllers.
#[derive(Clone, Debug)]
pub struct Config {
    /// Every object is reconciled again this long after a success, which detects and corrects drift
    /// made outside Kubernetes.
    pub resync: Duration,
    /// Watch only this namespace (all namespaces when `None`).
    pub namespace: Option<String>,
    /// How soon an object waiting for a dependency looks again; the delay doubles with each wait, up
    /// to eight times this. Watches wake it as soon as the dependency changes, so this is a safety net.
    pub dependency_retry: Duration,
    /// A new object that waits for a dependency (or for its queue policy) gets no status until it has
    /// waited this long: objects applied together wait for each other briefly, and each such write
    /// would be an API request (see [`status::unannounced`]). Zero writes every wait.
    pub quiet_start: Duration,
    /// Identity of this replica in Events (`reportingInstance`).
    pub instance: Option<String>,
    /// How often a Consumer draining a queue looks at the backlog to scale.
    pub scale_interval: Duration,
    /// A Consumer's workers' metrics are read for its status at most this often (see
    /// [`consumer::throughput`]).
    pub throughput_interval: Duration,
    /// How long one read of a worker's metrics may take.
    pub worker_metrics_timeout: Duration,
    /// Read the metrics of pods whose IP is loopback, at the port their `tributary.dev/metrics-port`
    /// annotation names: only a test bed, whose simulated pods run their workers as local processes.
    pub scrape_loopback_pods: bool,
    /// How worker pods are run.
    pub worker: resources::workers::WorkerSettings,
    /// The defaults of DeviceStreams' Event Hubs; `None` without Azure Resource Manager access.
    pub event_hubs: Option<device_stream::EventHubsConfig>,
    /// This cluster's identity, in the ownership tags of every cloud resource (see [`ownership`]).
    pub cluster: String,
    /// How far apart one object's periodic drift check must be per object of its kind, so that checking
    /// them all stays within the cloud's quotas (see [`Context::resync`]); zero: no such bound.
    pub check_spacing: CheckSpacing,
}

/// Per kind, the time one object's drift check costs at the rate limits (e.g. SNS allows 10
/// `ListTagsForResource` per second: checking 3,000 Topics within half of that takes 600 s).
#[derive(Clone, Debug, Default)]
pub struct CheckSpacing {
    /// Topics.
    pub topic: Duration,
    /// Queues and DeadLetters.
    pub queue: Duration,
    /// Subscriptions.
    pub subscription: Duration,
}

impl CheckSpacing {
    /// The spacing of `kind` (zero for kinds whose checks are not spaced).
    pub fn of(&self, kind: &str) -> Duration {
        match kind {
            "Topic" => self.topic,
            "Queue" | "DeadLetter" => self.queue,
            "Subscription" => self.subscription,
            _ => Duration::ZERO,
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            resync: Duration::from_secs(300),
            namespace: None,
            dependency_retry: Duration::from_secs(10),
            quiet_start: Duration::from_secs(30),
            instance: None,
            scale_interval: Duration::from_secs(15),
            throughput_interval: Duration::from_secs(60),
            worker_metrics_timeout: Duration::from_secs(2),
            scrape_loopback_pods: false,
            worker: resources::workers::WorkerSettings::default(),
            event_hubs: None,
            cluster: String::new(),
            check_spacing: CheckSpacing::default(),
        }
    }
}

/// Shared state of the reconcilers: one per process.
pub struct Context<C: Cloud> {
    /// Kubernetes client.
    pub client: Client,
    /// The AWS capabilities.
    pub aws: C::Aws,
    /// The Azure capabilities.
    pub azure: C::Azure,
    /// Reconcile and cloud-call metrics.
    pub metrics: Metrics,
    /// Records Kubernetes Events on the objects.
    pub recorder: Recorder,
    /// Settings.
    pub config: Config,
    /// Per-object backoff of transient failures.
    pub backoff: error::Backoff,
    /// Per-object backoff of the retries of an object waiting for a dependency.
    pub waits: error::Backoff,
    /// What the watches have seen, for the reconcilers' lookups.
    pub stores: watch::Stores,
    /// What was last verified in the cloud per object, so a reconcile woken by a dependency does not ask
    /// the cloud again within the resync period.
    pub verified: verified::Verified,
    /// Objects given the finalizer whose updated copy has not come back through the watch yet.
    pub finalizers: reconcile::AddedFinalizers,
    /// The status last written per object, so a stale copy does not write it again.
    pub written: status::Written,
    /// Reads worker pods' metrics (Consumers' counts); loopback pods only in a test bed.
    pub scraper: resources::workers::scrape::Scraper,
    /// What is remembered of each Consumer between reconciles (rate windows, replica asks).
    pub consumers: consumer::memory::Memory,
    /// The write halves of `stores`, taken by [`run`].
    writers: std::sync::Mutex<Option<watch::Writers>>,
}

impl<C: Cloud> Context<C> {
    /// The resync period of `kind`: the configured one, or longer when checking every object of the kind
    /// that often would exceed its share of the cloud's quotas (at 10,000 objects, the SNS tag listing
    /// of 10 calls per second bounds Topics to one check per topic every 200 ms).
    pub fn resync(&self, kind: &str) -> Duration {
        let count = match kind {
            "Topic" => self.stores.topics.len(),
            "Queue" => self.stores.queues.len(),
            "DeadLetter" => self.stores.dead_letters.len(),
            "Subscription" => self.stores.subscriptions.len(),
            _ => 0,
        };
        let each = self.config.check_spacing.of(kind);
        let all = each.saturating_mul(u32::try_from(count).unwrap_or(u32::MAX));
        self.config.resync.max(all)
    }

    /// The owner of `object`'s cloud resources, as kind `kind`, in this controller's cluster.
    pub fn owner<'a, K: kube::Resource>(&'a self, kind: &'a str, object: &'a K) -> ownership::Owner<'a> {
        ownership::Owner {
            cluster: &self.config.cluster,
            kind,
            namespace: object.meta().namespace.as_deref().unwrap_or_default(),
            name: object.meta().name.as_deref().unwrap_or_default(),
        }
    }

    /// A context with an Event recorder reporting as `tributary-controller` (and `config.instance`), over
    /// the clouds `aws` and `azure` (name the pairing: `Context::<Live>::new`).
    pub fn new(client: Client, aws: C::Aws, azure: C::Azure, metrics: Metrics, config: Config) -> Self {
        let reporter = Reporter {
            controller: FIELD_MANAGER.to_owned(),
            instance: config.instance.clone(),
        };
        let (stores, writers) = watch::stores();
        let verified = verified::Verified::spaced(config.check_spacing.clone());
        let scraper = resources::workers::scrape::Scraper::new(
            config.worker_metrics_timeout,
            config.scrape_loopback_pods,
        );
        Self {
            recorder: Recorder::new(client.clone(), reporter),
            client,
            aws,
            azure,
            metrics,
            config,
            backoff: error::Backoff::default(),
            waits: error::Backoff::default(),
            stores,
            verified,
            finalizers: reconcile::AddedFinalizers::default(),
            written: status::Written::default(),
            scraper,
            consumers: consumer::memory::Memory::default(),
            writers: std::sync::Mutex::new(Some(writers)),
        }
    }
}

/// Whether the API server serves kind `K` in `namespace` (all namespaces when `None`), i.e. its CRD is
/// installed. Checked once at start, so a missing CRD is one clear error instead of watches failing
/// forever; it uses only the `list` permission the controller needs anyway.
pub async fn ensure_served<K>(client: &Client, namespace: Option<&str>) -> Result<(), String>
where
    K: kube::Resource<DynamicType = (), Scope = kube::core::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    let api: kube::Api<K> = match namespace {
        Some(namespace) => kube::Api::namespaced(client.clone(), namespace),
        None => kube::Api::all(client.clone()),
    };
    match api
        .list_metadata(&kube::api::ListParams::default().limit(1))
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 404 => Err(format!(
            "the API server does not serve {} ({}/{}): install the CRDs first \
             (kubectl apply --server-side -f crds/tributary.yaml, or the Helm chart)",
            K::plural(&()),
            K::group(&()),
            K::version(&()),
        )),
        Err(error) => Err(format!("checking that {} are served: {error}", K::plural(&()))),
    }
}

/// [`ensure_served`] for every kind the controllers watch.
pub async fn ensure_crds(client: &Client, namespace: Option<&str>) -> Result<(), String> {
    ensure_served::<Topic>(client, namespace).await?;
    ensure_served::<Queue>(client, namespace).await?;
    ensure_served::<DeadLetter>(client, namespace).await?;
    ensure_served::<Subscription>(client, namespace).await?;
    ensure_served::<DeviceStream>(client, namespace).await?;
    ensure_served::<Consumer>(client, namespace).await
}

/// Runs the controllers of every kind concurrently until `shutdown` resolves; each then finishes the
/// reconciles in flight. The controllers start once every watch has listed its kind. A context runs its
/// controllers once.
pub async fn run<C: Cloud>(ctx: Arc<Context<C>>, shutdown: impl Future<Output = ()> + Send + 'static) {
    let writers = ctx
        .writers
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .take();
    let Some(writers) = writers else {
        tracing::error!("the controllers of this context have already run");
        return;
    };
    let shutdown: wiring::Shutdown = shutdown.boxed().shared();
    let stores = ctx.stores.clone();
    let mut watches = wiring::Watches::new(&ctx.client, writers);
    let controllers = wiring::Controllers::new(&mut watches, &stores);
    let watches = watches.run(&ctx.client, ctx.config.namespace.as_deref(), &ctx.metrics);
    let controllers = async {
        tokio::select! {
            ready = stores.ready() => if let Err(error) = ready {
                tracing::error!(%error, "a watch stopped before listing its kind");
                return;
            },
            () = shutdown.clone() => return,
        }
        controllers.run(ctx.clone(), shutdown.clone()).await;
    };
    // The watches end only with the controllers (a watch never ends by itself).
    tokio::select! {
        () = controllers => {}
        () = watches => {}
    }
}
