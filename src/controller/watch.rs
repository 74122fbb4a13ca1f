//! Which changes wake which reconciler. Each controller's own watch passes only spec changes
//! (`generation`), finalizer changes and the start of a deletion, so the status a reconcile writes does
//! not wake it again (resync requeues catch drift instead). Related kinds wake the objects that depend
//! on them, filtered to the changes that matter (generation, deletion, cloud identity, readiness):
//! a Topic or Queue getting its ARN wakes its Subscriptions, a Subscription wakes its Queue (whose policy
//! lists the topics), a DeadLetter wakes the Queues that use it and a Queue wakes its DeadLetter (whose
//! redrive allow policy lists the sources).

use std::{
    collections::hash_map::DefaultHasher,
    hash::{Hash, Hasher},
    sync::Arc,
};

use futures::{Stream, StreamExt};
use kube::{
    Api, Resource, ResourceExt,
    runtime::{
        Controller, WatchStreamExt,
        reflector::{self, ObjectRef, Store},
        watcher,
    },
};

use super::{Cloud, Context, conditions::types, status::Kind};
use crate::api::{DeadLetter, Queue, Subscription, Topic};

/// A controller's own watch: the store it reads and the filtered trigger stream.
pub struct Primary<K: Kind> {
    /// The objects, as the watch last saw them.
    pub store: Store<K>,
    /// Objects whose spec, finalizers or deletion changed.
    pub stream: futures::stream::BoxStream<'static, Result<K, watcher::Error>>,
}

fn api<K: Kind, C>(ctx: &Context<C>) -> Api<K> {
    match &ctx.config.namespace {
        Some(namespace) => Api::namespaced(ctx.client.clone(), namespace),
        None => Api::all(ctx.client.clone()),
    }
}

fn hash(value: &impl Hash) -> u64 {
    let mut hasher = DefaultHasher::new();
    value.hash(&mut hasher);
    hasher.finish()
}

/// The primary predicate: generation, finalizers and whether a deletion started. Adding the finalizer
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

/// The trigger stream and store of kind `K`.
pub fn primary<K: Kind, C: Cloud>(ctx: &Context<C>) -> Primary<K> {
    let (store, writer) = reflector::store();
    let stream = watcher(api::<K, C>(ctx), watcher::Config::default())
        .default_backoff()
        .reflect(writer)
        .applied_objects()
        .predicate_filter(spec_or_lifecycle::<K>, Default::default())
        .boxed();
    Primary { store, stream }
}

/// A watch of a related kind, passing only changes that `identity` sees.
fn related<K: Kind, C>(
    ctx: &Context<C>,
    identity: fn(&K) -> Option<u64>,
) -> impl Stream<Item = Result<K, watcher::Error>> + Send + 'static {
    watcher(api::<K, C>(ctx), watcher::Config::default())
        .default_backoff()
        .touched_objects()
        .predicate_filter(identity, Default::default())
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

fn topic_identity(topic: &Topic) -> Option<u64> {
    let arn = topic.status.as_ref().and_then(|s| s.arn.clone());
    Some(hash(&(
        topic.meta().generation,
        topic.meta().deletion_timestamp.is_some(),
        arn,
        ready_status(topic),
    )))
}

fn queue_identity(queue: &Queue) -> Option<u64> {
    let observed = queue
        .status
        .as_ref()
        .map(|s| (s.observed.arn.clone(), s.observed.url.clone()));
    Some(hash(&(
        queue.meta().generation,
        queue.meta().deletion_timestamp.is_some(),
        observed,
        ready_status(queue),
    )))
}

fn dead_letter_identity(dead_letter: &DeadLetter) -> Option<u64> {
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

fn subscription_identity(subscription: &Subscription) -> Option<u64> {
    let arn = subscription.status.as_ref().and_then(|s| s.arn.clone());
    Some(hash(&(
        subscription.meta().generation,
        subscription.meta().deletion_timestamp.is_some(),
        arn,
    )))
}

/// The Queue controller also wakes a Queue when a Subscription to it changes (its policy lists the
/// topics) and when its DeadLetter changes (the redrive policy needs the DeadLetter's ARN).
pub fn queue_watches<C: Cloud>(
    controller: Controller<Queue>,
    ctx: &Arc<Context<C>>,
    queues: Store<Queue>,
) -> Controller<Queue> {
    controller
        .watches_stream(
            related::<Subscription, C>(ctx, subscription_identity),
            |subscription| {
                let namespace = subscription.namespace().unwrap_or_default();
                Some(ObjectRef::new(&subscription.spec.queue_ref.name).within(&namespace))
            },
        )
        .watches_stream(
            related::<DeadLetter, C>(ctx, dead_letter_identity),
            move |dead_letter| {
                let namespace = dead_letter.namespace();
                let name = dead_letter.name_any();
                queues
                    .state()
                    .into_iter()
                    .filter(|queue| {
                        queue.namespace() == namespace
                            && queue.spec.dead_letter.as_ref().map(|d| d.target.name.as_str())
                                == Some(name.as_str())
                    })
                    .map(|queue| ObjectRef::from_obj(&*queue))
                    .collect::<Vec<_>>()
            },
        )
}

/// The DeadLetter controller also wakes a DeadLetter when a Queue using it changes.
pub fn dead_letter_watches<C: Cloud>(
    controller: Controller<DeadLetter>,
    ctx: &Arc<Context<C>>,
) -> Controller<DeadLetter> {
    controller.watches_stream(related::<Queue, C>(ctx, queue_identity), |queue| {
        let namespace = queue.namespace().unwrap_or_default();
        queue
            .spec
            .dead_letter
            .as_ref()
            .map(|target| ObjectRef::new(&target.target.name).within(&namespace))
    })
}

/// The Subscription controller also wakes a Subscription when its Topic or Queue changes.
pub fn subscription_watches<C: Cloud>(
    controller: Controller<Subscription>,
    ctx: &Arc<Context<C>>,
    subscriptions: Store<Subscription>,
) -> Controller<Subscription> {
    let by_queue = subscriptions.clone();
    controller
        .watches_stream(related::<Topic, C>(ctx, topic_identity), move |topic| {
            referencing(&subscriptions, &topic, |s| &s.spec.topic_ref.name)
        })
        .watches_stream(related::<Queue, C>(ctx, queue_identity), move |queue| {
            referencing(&by_queue, &queue, |s| &s.spec.queue_ref.name)
        })
}

/// The Subscriptions in `target`'s namespace whose reference (`field`) names it.
fn referencing<T: Resource>(
    subscriptions: &Store<Subscription>,
    target: &T,
    field: fn(&Subscription) -> &String,
) -> Vec<ObjectRef<Subscription>> {
    let namespace = target.namespace();
    let name = target.name_any();
    subscriptions
        .state()
        .into_iter()
        .filter(|s| s.namespace() == namespace && *field(s) == name)
        .map(|s| ObjectRef::from_obj(&*s))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::topic::TopicStatus;

    #[test]
    fn status_only_changes_do_not_pass_the_primary_predicate() {
        let mut topic = Topic::new("t", Default::default());
        topic.metadata.generation = Some(1);
        let before = spec_or_lifecycle(&topic);
        topic.status = Some(TopicStatus {
            arn: Some("arn".into()),
            ..TopicStatus::default()
        });
        assert_eq!(spec_or_lifecycle(&topic), before);
        assert_ne!(topic_identity(&topic), {
            let mut bare = topic.clone();
            bare.status = None;
            topic_identity(&bare)
        });
        topic.metadata.finalizers = Some(vec!["tributary.dev/cleanup".into()]);
        assert_ne!(
            spec_or_lifecycle(&topic),
            before,
            "adding the finalizer must pass"
        );
    }
}
