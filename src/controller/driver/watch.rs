//! One watch per kind, the caches the reconcilers read, and which changes wake which reconciler.
//!
//! Each kind has one watch ([`Reflector`]) feeding its [`Store`]; the reconcilers look their dependencies
//! up in the [`Stores`] instead of asking the API server on every reconcile (a Queue used to list every
//! Subscription and Topic of its namespace each time). A watch passes an object to its subscribers only
//! once the store holds it, so a reconcile woken by a change always reads at least that change.
//!
//! Each controller's own subscription passes only spec changes (`generation`), finalizer changes and the
//! start of a deletion, so the status a reconcile writes does not wake it again (resync requeues catch
//! drift instead). Related kinds wake the objects that depend on them, filtered to the changes that
//! matter: a Topic or Queue getting its ARN wakes its Subscriptions; a Subscription appearing, changing or
//! going, or the ARN of its Topic, wakes its Queue (whose policy lists the topics); a DeadLetter wakes
//! the Queues that use it; a Queue wakes the DeadLetters that list it as a source or redrive to it.

use std::{
    collections::{HashMap, hash_map::DefaultHasher},
    hash::{Hash, Hasher},
    pin::pin,
    sync::Arc,
};

use futures::{Stream, StreamExt, channel::mpsc};
use kube::{
    Api, Resource, ResourceExt,
    runtime::{
        WatchStreamExt,
        reflector::{self, ObjectRef, Store, store::Writer},
        watcher,
    },
};

use super::{conditions::types, status::Kind};
use crate::api::{Consumer, DeadLetter, DeviceStream, Queue, Subscription, TenantPolicy, Topic};
use crate::operate::Metrics;

/// What the watches have seen of each kind: the reconcilers read their dependencies here.
#[derive(Clone)]
pub struct Stores {
    /// Topics.
    pub topics: Store<Topic>,
    /// Queues.
    pub queues: Store<Queue>,
    /// DeadLetters.
    pub dead_letters: Store<DeadLetter>,
    /// Subscriptions.
    pub subscriptions: Store<Subscription>,
    /// Consumers.
    pub consumers: Store<Consumer>,
    /// DeviceStreams.
    pub device_streams: Store<DeviceStream>,
    /// TenantPolicies (cluster-scoped); ready once their watch has listed them, which needs the CRD and
    /// the permission (until then [`super::tenancy::load`] reads them from the API server).
    pub policies: Store<TenantPolicy>,
}

/// The write halves of [`Stores`], taken by the watches when the controllers run.
pub struct Writers {
    pub(crate) topics: Writer<Topic>,
    pub(crate) queues: Writer<Queue>,
    pub(crate) dead_letters: Writer<DeadLetter>,
    pub(crate) subscriptions: Writer<Subscription>,
    pub(crate) consumers: Writer<Consumer>,
    pub(crate) device_streams: Writer<DeviceStream>,
    pub(crate) policies: Writer<TenantPolicy>,
}

/// Empty stores and their writers.
pub fn stores() -> (Stores, Writers) {
    let (topics, topic_writer) = reflector::store();
    let (queues, queue_writer) = reflector::store();
    let (dead_letters, dead_letter_writer) = reflector::store();
    let (subscriptions, subscription_writer) = reflector::store();
    let (consumers, consumer_writer) = reflector::store();
    let (device_streams, device_stream_writer) = reflector::store();
    let (policies, policy_writer) = reflector::store();
    (
        Stores {
            topics,
            queues,
            dead_letters,
            subscriptions,
            consumers,
            device_streams,
            policies,
        },
        Writers {
            topics: topic_writer,
            queues: queue_writer,
            dead_letters: dead_letter_writer,
            subscriptions: subscription_writer,
            consumers: consumer_writer,
            device_streams: device_stream_writer,
            policies: policy_writer,
        },
    )
}

impl Stores {
    /// Waits until every watch has listed its kind once, so no reconcile takes an empty cache for
    /// "nothing there" (a Queue would drop its topics from its policy). Fails if a watch has stopped.
    pub async fn ready(&self) -> Result<(), reflector::store::WriterDropped> {
        self.topics.wait_until_ready().await?;
        self.queues.wait_until_ready().await?;
        self.dead_letters.wait_until_ready().await?;
        self.subscriptions.wait_until_ready().await?;
        self.consumers.wait_until_ready().await?;
        self.device_streams.wait_until_ready().await
    }
}

/// The objects of `store` in `namespace`.
pub fn in_namespace<K: Kind>(store: &Store<K>, namespace: &str) -> Vec<Arc<K>> {
    store
        .state()
        .into_iter()
        .filter(|object| object.namespace().as_deref() == Some(namespace))
        .collect()
}

/// The object `name` of `store` in `namespace`.
pub fn get<K: Kind>(store: &Store<K>, namespace: &str, name: &str) -> Option<Arc<K>> {
    store.get(&ObjectRef::new(name).within(namespace))
}

/// Which changes of an object a subscriber cares about: equal values mean no change.
pub type Identity<K> = fn(&K) -> Option<u64>;

/// A subscriber of a watch: the objects whose identity changed since it last saw them.
struct Subscriber<K: Kind> {
    identity: Identity<K>,
    /// Whether objects gone from the API server are passed too (a related kind's deletion matters to
    /// the objects that used it; a controller's own deleted object has nothing left to reconcile).
    deletions: bool,
    /// The uid and identity last passed, per object.
    seen: HashMap<ObjectRef<K>, (Option<String>, Option<u64>)>,
    sender: mpsc::UnboundedSender<Arc<K>>,
}

impl<K: Kind> Subscriber<K> {
    /// Whether `object` is new to this subscriber (another uid is another object) or its identity
    /// changed; no identity means always.
    fn changed(&mut self, key: ObjectRef<K>, object: &K) -> bool {
        let identity = (self.identity)(object);
        let seen = (object.meta().uid.clone(), identity);
        let changed = identity.is_none() || self.seen.get(&key) != Some(&seen);
        self.seen.insert(key, seen);
        changed
    }
}

/// The watch of kind `K`: keeps its store and passes changes on to its subscribers.
pub struct Reflector<K: Kind> {
    writer: Writer<K>,
    subscribers: Vec<Subscriber<K>>,
}

impl<K: Kind> Reflector<K> {
    /// A watch writing through `writer`, with no subscribers yet.
    pub fn new(writer: Writer<K>) -> Self {
        Self {
            writer,
            subscribers: Vec::new(),
        }
    }

    /// The objects whose `identity` changes, from now on (every object once after the first list).
    /// The channel is unbounded so that a busy controller never holds up the watch, which the other
    /// controllers share; it holds only `Arc`s of objects the store already has.
    pub fn subscribe(
        &mut self,
        identity: Identity<K>,
        deletions: bool,
    ) -> impl Stream<Item = Arc<K>> + Send + 'static {
        let (sender, receiver) = mpsc::unbounded();
        self.subscribers.push(Subscriber {
            identity,
            deletions,
            seen: HashMap::new(),
            sender,
        });
        receiver
    }

    /// Watches `api` until the subscribers are gone (the controllers stopped). A list is passed on
    /// when it is complete and in the store, as the store swaps it in only then. A deleted object's
    /// per-object gauges are removed from `metrics`.
    pub async fn run(self, api: Api<K>, metrics: Metrics) {
        let Self {
            writer,
            mut subscribers,
        } = self;
        let store = writer.as_reader();
        let mut listed: Vec<ObjectRef<K>> = Vec::new();
        let mut events = pin!(
            watcher(api, watcher::Config::default())
                .default_backoff()
                // The stores keep every object of the kind: managedFields (several KiB per object
                // applied server-side) are never read, so they are not kept (kube-rs' advice).
                .modify(|object| object.managed_fields_mut().clear())
                .reflect(writer)
        );
        while let Some(event) = events.next().await {
            match event {
                Ok(watcher::Event::Apply(object)) => {
                    let key = ObjectRef::from_obj(&object);
                    let object = store.get(&key).unwrap_or_else(|| Arc::new(object));
                    publish(&mut subscribers, key, object, false);
                }
                Ok(watcher::Event::Delete(object)) => {
                    let namespace = object.namespace().unwrap_or_default();
                    metrics.forget_object(K::KIND, &namespace, &object.name_any());
                    publish(
                        &mut subscribers,
                        ObjectRef::from_obj(&object),
                        Arc::new(object),
                        true,
                    );
                }
                Ok(watcher::Event::Init) => listed.clear(),
                Ok(watcher::Event::InitApply(object)) => listed.push(ObjectRef::from_obj(&object)),
                Ok(watcher::Event::InitDone) => {
                    // Objects deleted while the watch was down are in no list: forget them.
                    for subscriber in &mut subscribers {
                        subscriber.seen.retain(|key, _| store.get(key).is_some());
                    }
                    metrics.retain_objects(K::KIND, |namespace, name| get(&store, namespace, name).is_some());
                    for key in listed.drain(..) {
                        if let Some(object) = store.get(&key) {
                            publish(&mut subscribers, key, object, false);
                        }
                    }
                }
                Err(error) => tracing::warn!(kind = K::KIND, %error, "watch failed; retrying with backoff"),
            }
            if subscribers.is_empty() {
                return;
            }
        }
    }
}

/// Passes `object` to the subscribers that care; drops those whose controller has stopped.
fn publish<K: Kind>(subscribers: &mut Vec<Subscriber<K>>, key: ObjectRef<K>, object: Arc<K>, deleted: bool) {
    subscribers.retain_mut(|subscriber| {
        let pass = if deleted {
            subscriber.seen.remove(&key);
            subscriber.deletions
        } else {
            subscriber.changed(key.clone(), &object)
        };
        !pass || subscriber.sender.unbounded_send(object.clone()).is_ok()
    });
}

/// The API of kind `K` in the watched namespace (all namespaces when `None`).
pub fn api<K: Kind>(client: &kube::Client, namespace: Option<&str>) -> Api<K> {
    match namespace {
        Some(namespace) => Api::namespaced(client.clone(), namespace),
        None => Api::all(client.clone()),
    }
}

fn hash(value: &impl Hash) -> u64 {
    let mut hasher = DefaultHasher::new();
    value.hash(&mut hasher);
    hasher.finish()
}

/// The primary identity: generation, finalizers and whether a deletion started. Adding the finalizer
/// leaves the generation alone, so finalizers are part of it (the finalizer helper waits for that
/// change); status-only writes change none of it.
pub fn spec_or_lifecycle<K: Resource>(object: &K) -> Option<u64> {
    let meta = object.meta();
    Some(hash(&(
        meta.generation,
        &meta.finalizers,
        meta.deletion_timestamp.is_some(),
    )))
}

fn ready_status<K: Kind>(object: &K) -> Option<String> {
    object.status().and_then(|status| {
        K::common(status)
            .conditions
            .iter()
            .find(|c| c.type_ == types::READY)
            .map(|c| c.status.clone())
    })
}

/// What a Subscription needs of its Topic.
pub fn topic_identity(topic: &Topic) -> Option<u64> {
    let arn = topic.status.as_ref().and_then(|s| s.arn.clone());
    Some(hash(&(
        topic.meta().generation,
        topic.meta().deletion_timestamp.is_some(),
        arn,
        ready_status(topic),
    )))
}

/// What a Consumer needs of its DeviceStream: endpoint, partitions and Secret, and readiness.
pub fn device_stream_identity(stream: &DeviceStream) -> Option<u64> {
    let observed = stream.status.as_ref().map(|s| {
        (
            s.kafka_endpoint.clone(),
            s.partitions,
            s.connection_secret_name.clone(),
        )
    });
    Some(hash(&(
        stream.meta().generation,
        stream.meta().deletion_timestamp.is_some(),
        observed,
        ready_status(stream),
    )))
}

/// What a Queue's policy needs of a Topic subscribed to it: its ARN.
pub fn topic_arn(topic: &Topic) -> Option<u64> {
    Some(hash(&topic.status.as_ref().and_then(|s| s.arn.as_ref())))
}

/// What a Subscription and a DeadLetter need of a Queue (a Subscription's readiness: the topics its
/// policy lets send).
pub fn queue_identity(queue: &Queue) -> Option<u64> {
    let observed = queue.status.as_ref().map(|s| {
        (
            s.observed.arn.clone(),
            s.observed.url.clone(),
            s.allowed_topics.clone(),
        )
    });
    Some(hash(&(
        queue.meta().generation,
        queue.meta().deletion_timestamp.is_some(),
        observed,
        ready_status(queue),
    )))
}

/// What a Queue needs of its DeadLetter.
pub fn dead_letter_identity(dead_letter: &DeadLetter) -> Option<u64> {
    let observed = dead_letter
        .status
        .as_ref()
        .map(|s| (s.observed.arn.clone(), s.observed.url.clone()));
    Some(hash(&(
        dead_letter.meta().generation,
        dead_letter.meta().deletion_timestamp.is_some(),
        observed,
        ready_status(dead_letter),
    )))
}

/// What a Queue's policy needs of a Subscription to it: that it exists (its references are immutable)
/// and is not being deleted. Its own ARN does not matter; its Topic's ARN is watched directly.
pub fn subscription_identity(subscription: &Subscription) -> Option<u64> {
    Some(hash(&(
        subscription.meta().generation,
        subscription.meta().deletion_timestamp.is_some(),
    )))
}

/// The Queue a Subscription delivers to.
pub fn queue_of(subscription: &Subscription) -> Option<ObjectRef<Queue>> {
    let namespace = subscription.namespace().unwrap_or_default();
    Some(ObjectRef::new(&subscription.spec.queue_ref.name).within(&namespace))
}

/// The Queues with a Subscription to `topic`.
pub fn queues_subscribed_to(subscriptions: &Store<Subscription>, topic: &Topic) -> Vec<ObjectRef<Queue>> {
    let namespace = topic.namespace().unwrap_or_default();
    let name = topic.name_any();
    let mut queues: Vec<ObjectRef<Queue>> = in_namespace(subscriptions, &namespace)
        .into_iter()
        .filter(|s| s.spec.topic_ref.name == name)
        .map(|s| ObjectRef::new(&s.spec.queue_ref.name).within(&namespace))
        .collect();
    queues.sort_by(|a, b| a.name.cmp(&b.name));
    queues.dedup();
    queues
}

/// The Queues whose dead letter is `dead_letter`.
pub fn queues_using(queues: &Store<Queue>, dead_letter: &DeadLetter) -> Vec<ObjectRef<Queue>> {
    let namespace = dead_letter.namespace().unwrap_or_default();
    let name = dead_letter.name_any();
    in_namespace(queues, &namespace)
        .into_iter()
        .filter(|queue| {
            queue.spec.dead_letter.as_ref().map(|d| d.target.name.as_str()) == Some(name.as_str())
        })
        .map(|queue| ObjectRef::from_obj(&*queue))
        .collect()
}

/// The DeadLetters that `queue` matters to: its own (whose redrive allow policy lists it) and those
/// whose redrive sends messages to it.
pub fn dead_letters_of(dead_letters: &Store<DeadLetter>, queue: &Queue) -> Vec<ObjectRef<DeadLetter>> {
    let namespace = queue.namespace().unwrap_or_default();
    let name = queue.name_any();
    let mut out: Vec<ObjectRef<DeadLetter>> = in_namespace(dead_letters, &namespace)
        .into_iter()
        .filter(|d| {
            d.spec
                .redrive
                .as_ref()
                .and_then(|r| r.destination_ref.as_ref())
                .is_some_and(|target| target.name == name)
        })
        .map(|d| ObjectRef::from_obj(&*d))
        .collect();
    if let Some(target) = &queue.spec.dead_letter {
        out.push(ObjectRef::new(&target.target.name).within(&namespace));
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out.dedup();
    out
}

/// The Subscriptions in `target`'s namespace whose reference (`field`) names it.
pub fn referencing<T: Resource>(
    subscriptions: &Store<Subscription>,
    target: &T,
    field: fn(&Subscription) -> &String,
) -> Vec<ObjectRef<Subscription>> {
    let namespace = target.namespace().unwrap_or_default();
    let name = target.name_any();
    in_namespace(subscriptions, &namespace)
        .into_iter()
        .filter(|s| *field(s) == name)
        .map(|s| ObjectRef::from_obj(&*s))
        .collect()
}

#[cfg(test)]
#[path = "watch_tests.rs"]
mod tests;
