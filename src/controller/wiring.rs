//! How [`super::run`] puts the controllers together: one watch per kind, shared by every controller that
//! reads that kind; each controller subscribed to its own kind's spec changes and to the changes of the
//! objects it depends on (which wake the objects waiting for them, see [`watch`]); a TenantPolicy change
//! re-reconciling every object; and every controller driven with the shared error policy until shutdown.

use std::{future::Future, sync::Arc};

use futures::{StreamExt, channel::mpsc::UnboundedReceiver, future::BoxFuture, future::Shared};
use kube::{Client, runtime::Controller};

use super::{
    Cloud, Context, Error, consumer,
    driver::{reconcile, status, tenancy, watch},
};
use crate::api::{Consumer, DeadLetter, DeviceStream, Queue, Subscription, Topic};
use crate::operate::Metrics;

/// The shutdown signal every controller shares.
pub(super) type Shutdown = Shared<BoxFuture<'static, ()>>;

/// A stream that fires when a TenantPolicy changes, one per controller.
type PolicyChanges = UnboundedReceiver<()>;

/// The number of controllers, each of which gets its own feed of TenantPolicy changes.
const CONTROLLERS: usize = 6;

/// One watch per kind; the controllers subscribe to them before they run.
pub(super) struct Watches {
    topics: watch::Reflector<Topic>,
    queues: watch::Reflector<Queue>,
    dead_letters: watch::Reflector<DeadLetter>,
    subscriptions: watch::Reflector<Subscription>,
    consumers: watch::Reflector<Consumer>,
    device_streams: watch::Reflector<DeviceStream>,
    /// The TenantPolicy watch, which feeds `policy_changes`.
    policy_feed: BoxFuture<'static, ()>,
    /// What is left of the per-controller feeds of TenantPolicy changes.
    policy_changes: Vec<PolicyChanges>,
}

impl Watches {
    /// The watches writing through `writers`.
    pub(super) fn new(client: &Client, writers: watch::Writers) -> Self {
        let watch::Writers {
            topics,
            queues,
            dead_letters,
            subscriptions,
            consumers,
            device_streams,
            policies,
        } = writers;
        // A TenantPolicy change re-reconciles every object of every kind.
        let (policy_feed, policy_changes) = tenancy::policy_changes(client, policies, CONTROLLERS);
        Self {
            topics: watch::Reflector::new(topics),
            queues: watch::Reflector::new(queues),
            dead_letters: watch::Reflector::new(dead_letters),
            subscriptions: watch::Reflector::new(subscriptions),
            consumers: watch::Reflector::new(consumers),
            device_streams: watch::Reflector::new(device_streams),
            policy_feed: Box::pin(policy_feed),
            policy_changes,
        }
    }

    /// The next controller's feed of TenantPolicy changes.
    fn policy_changed(&mut self) -> PolicyChanges {
        self.policy_changes
            .pop()
            .unwrap_or_else(|| futures::channel::mpsc::unbounded().1)
    }

    /// Runs every watch in `namespace` (all when `None`); a watch never ends by itself, so this ends only
    /// when the controllers are gone. `metrics` loses the per-object gauges of deleted objects.
    pub(super) async fn run(self, client: &Client, namespace: Option<&str>, metrics: &Metrics) {
        tokio::join!(
            self.topics.run(watch::api(client, namespace), metrics.clone()),
            self.queues.run(watch::api(client, namespace), metrics.clone()),
            self.dead_letters
                .run(watch::api(client, namespace), metrics.clone()),
            self.subscriptions
                .run(watch::api(client, namespace), metrics.clone()),
            self.consumers.run(watch::api(client, namespace), metrics.clone()),
            self.device_streams
                .run(watch::api(client, namespace), metrics.clone()),
            self.policy_feed,
        );
    }
}

/// Every controller, subscribed to the changes that wake its objects.
pub(super) struct Controllers {
    topic: Controller<Topic>,
    queue: Controller<Queue>,
    dead_letter: Controller<DeadLetter>,
    subscription: Controller<Subscription>,
    device_stream: Controller<DeviceStream>,
    consumer: Controller<Consumer>,
}

impl Controllers {
    /// The controllers over `watches`, reading `stores`.
    pub(super) fn new(watches: &mut Watches, stores: &watch::Stores) -> Self {
        Self {
            topic: topic(watches, stores),
            queue: queue(watches, stores),
            dead_letter: dead_letter(watches, stores),
            subscription: subscription(watches, stores),
            device_stream: device_stream(watches, stores),
            consumer: consumer(watches, stores),
        }
    }

    /// Runs every controller until `shutdown`; each then finishes the reconciles in flight.
    pub(super) async fn run<C: Cloud>(self, ctx: Arc<Context<C>>, shutdown: Shutdown) {
        tokio::join!(
            drive(
                self.topic,
                reconcile::reconcile::<Topic, C>,
                ctx.clone(),
                shutdown.clone()
            ),
            drive(
                self.queue,
                reconcile::reconcile::<Queue, C>,
                ctx.clone(),
                shutdown.clone()
            ),
            drive(
                self.dead_letter,
                reconcile::reconcile::<DeadLetter, C>,
                ctx.clone(),
                shutdown.clone()
            ),
            drive(
                self.subscription,
                reconcile::reconcile::<Subscription, C>,
                ctx.clone(),
                shutdown.clone()
            ),
            drive(
                self.device_stream,
                reconcile::reconcile::<DeviceStream, C>,
                ctx.clone(),
                shutdown.clone()
            ),
            drive(
                self.consumer,
                consumer::reconcile::<C>,
                ctx.clone(),
                shutdown.clone()
            ),
        );
    }
}

/// Topics: their own changes only.
fn topic(watches: &mut Watches, stores: &watch::Stores) -> Controller<Topic> {
    Controller::for_shared_stream(
        watches.topics.subscribe(watch::spec_or_lifecycle, false),
        stores.topics.clone(),
    )
    .reconcile_all_on(watches.policy_changed())
}

/// Queues: also their Subscriptions (the queue policy), those Subscriptions' Topics getting an ARN, and
/// their DeadLetters.
fn queue(watches: &mut Watches, stores: &watch::Stores) -> Controller<Queue> {
    let policy_changed = watches.policy_changed();
    Controller::for_shared_stream(
        watches.queues.subscribe(watch::spec_or_lifecycle, false),
        stores.queues.clone(),
    )
    .reconcile_all_on(policy_changed)
    .watches_shared_stream(
        watches
            .subscriptions
            .subscribe(watch::subscription_identity, true),
        |subscription| watch::queue_of(&subscription),
    )
    .watches_shared_stream(watches.topics.subscribe(watch::topic_arn, true), {
        let subscriptions = stores.subscriptions.clone();
        move |topic| watch::queues_subscribed_to(&subscriptions, &topic)
    })
    .watches_shared_stream(
        watches.dead_letters.subscribe(watch::dead_letter_identity, true),
        {
            let queues = stores.queues.clone();
            move |dead_letter| watch::queues_using(&queues, &dead_letter)
        },
    )
}

/// DeadLetters: also the Queues that use them (the redrive allow policy).
fn dead_letter(watches: &mut Watches, stores: &watch::Stores) -> Controller<DeadLetter> {
    let policy_changed = watches.policy_changed();
    Controller::for_shared_stream(
        watches.dead_letters.subscribe(watch::spec_or_lifecycle, false),
        stores.dead_letters.clone(),
    )
    .reconcile_all_on(policy_changed)
    .watches_shared_stream(watches.queues.subscribe(watch::queue_identity, true), {
        let dead_letters = stores.dead_letters.clone();
        move |queue| watch::dead_letters_of(&dead_letters, &queue)
    })
}

/// Subscriptions: also their Topic and their Queue.
fn subscription(watches: &mut Watches, stores: &watch::Stores) -> Controller<Subscription> {
    let policy_changed = watches.policy_changed();
    Controller::for_shared_stream(
        watches.subscriptions.subscribe(watch::spec_or_lifecycle, false),
        stores.subscriptions.clone(),
    )
    .reconcile_all_on(policy_changed)
    .watches_shared_stream(watches.topics.subscribe(watch::topic_identity, true), {
        let subscriptions = stores.subscriptions.clone();
        move |topic| watch::referencing(&subscriptions, &*topic, |s| &s.spec.topic_ref.name)
    })
    .watches_shared_stream(watches.queues.subscribe(watch::queue_identity, true), {
        let subscriptions = stores.subscriptions.clone();
        move |queue| watch::referencing(&subscriptions, &*queue, |s| &s.spec.queue_ref.name)
    })
}

/// DeviceStreams: their own changes only.
fn device_stream(watches: &mut Watches, stores: &watch::Stores) -> Controller<DeviceStream> {
    Controller::for_shared_stream(
        watches.device_streams.subscribe(watch::spec_or_lifecycle, false),
        stores.device_streams.clone(),
    )
    .reconcile_all_on(watches.policy_changed())
}

/// Consumers: also their source Queue or DeviceStream, their DeadLetter and their sink Topic.
fn consumer(watches: &mut Watches, stores: &watch::Stores) -> Controller<Consumer> {
    let policy_changed = watches.policy_changed();
    Controller::for_shared_stream(
        watches.consumers.subscribe(watch::spec_or_lifecycle, false),
        stores.consumers.clone(),
    )
    .reconcile_all_on(policy_changed)
    .watches_shared_stream(watches.queues.subscribe(watch::queue_identity, true), {
        let consumers = stores.consumers.clone();
        move |queue| consumer::consumers_referencing(&consumers, &*queue, consumer::source_queue)
    })
    .watches_shared_stream(
        watches.dead_letters.subscribe(watch::dead_letter_identity, true),
        {
            let consumers = stores.consumers.clone();
            move |dead_letter| {
                consumer::consumers_referencing(&consumers, &*dead_letter, consumer::dead_letter)
            }
        },
    )
    .watches_shared_stream(watches.topics.subscribe(watch::topic_identity, true), {
        let consumers = stores.consumers.clone();
        move |topic| consumer::consumers_referencing(&consumers, &*topic, consumer::sink_topic)
    })
    .watches_shared_stream(
        watches
            .device_streams
            .subscribe(watch::device_stream_identity, true),
        {
            let consumers = stores.consumers.clone();
            move |stream| consumer::consumers_referencing(&consumers, &*stream, consumer::source_stream)
        },
    )
}

/// Runs one controller with `reconciler` and the shared error policy until shutdown.
async fn drive<K, C, R, Fut>(
    controller: Controller<K>,
    reconciler: R,
    ctx: Arc<Context<C>>,
    shutdown: Shutdown,
) where
    K: status::Kind,
    C: Cloud,
    R: FnMut(Arc<K>, Arc<Context<C>>) -> Fut,
    Fut: Future<Output = Result<kube::runtime::controller::Action, Error>> + Send + 'static,
{
    controller
        .graceful_shutdown_on(shutdown)
        .run(reconciler, reconcile::error_policy::<K, C>, ctx)
        .for_each(|result| async move {
            if let Err(error) = result {
                tracing::debug!(kind = K::KIND, %error, "reconcile error");
            }
        })
        .await;
}
