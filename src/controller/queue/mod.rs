//! Queue reconciler (SQS queue). validate: the `aws` block, FIFO parity with the DeadLetter →
//! dependencies: the DeadLetter's ARN (for `RedrivePolicy`) and the ARNs of the Topics that have a
//! Subscription to this Queue (for the queue policy) → build: name, attributes, policy, tags → apply:
//! find or create, adopt or refuse, set what differs, tag → status: URL, ARN, depth.
//! The SQS queue itself is managed by [`crate::controller::resources::sqs_queue`], which the DeadLetter reconciler shares.

use std::{borrow::Borrow, collections::BTreeMap, sync::Arc, time::Duration};

use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::ResourceExt;

use crate::cloud::Queues as _;
use crate::{
    admission::Spec,
    api::{
        Queue, Subscription, Topic,
        common::{Provider, QueueObservation},
        queue::{QueueAws, QueueAzure, QueueStatus},
    },
    cloud::{
        Attributes,
        aws::{
            attributes::{self, RedriveTarget, names},
            queue_stats_from,
        },
        names as names_for_cloud,
    },
    controller::{
        Cloud, Context,
        driver::{
            drift,
            error::Error,
            events,
            ownership::desired_tags,
            reconcile::{Applied, Reconciler},
            references,
            status::{self, describe, was_synced},
            tenancy, verified, watch,
        },
        resources::{
            sqs_queue::{Ensured, Target, delete_queue, ensure_queue, recorded_url, sync_attributes},
            storage_queue,
        },
    },
};

/// The validate step: pure.
pub fn validate(queue: &Queue) -> Result<&QueueAws, Error> {
    queue.spec.aws.as_ref().ok_or_else(|| Error::InvalidSpec {
        object: describe(queue),
        message: "spec.aws is required when spec.provider is aws".to_owned(),
    })
}

/// The SQS queue name of a Queue: `spec.aws.name`, else the name recorded in status (a live queue is
/// never renamed), else the default `<namespace>_<name>`.
pub fn queue_name(queue: &Queue, aws: &QueueAws) -> String {
    let recorded = queue.status.as_ref().and_then(|s| s.observed.url.as_deref());
    aws.name.clone().unwrap_or_else(|| {
        names_for_cloud::recorded_or(recorded, || {
            attributes::default_queue_name(
                &queue.namespace().unwrap_or_default(),
                &queue.name_any(),
                aws.fifo,
            )
        })
    })
}

/// The ARNs of the Topics allowed to send to the queue `queue`: those of every Subscription to it that is
/// not being deleted, whose Topic has an ARN. Pure; the objects are those of the queue's namespace.
pub fn subscribed_topic_arns<S: Borrow<Subscription>, T: Borrow<Topic>>(
    queue: &str,
    subscriptions: &[S],
    topics: &[T],
) -> Vec<String> {
    let arns: BTreeMap<String, String> = topics
        .iter()
        .map(Borrow::borrow)
        .filter_map(|t| Some((t.name_any(), t.status.as_ref()?.arn.clone()?)))
        .collect();
    let mut out: Vec<String> = subscriptions
        .iter()
        .map(Borrow::borrow)
        .filter(|s| s.spec.queue_ref.name == queue && s.metadata.deletion_timestamp.is_none())
        .filter_map(|s| arns.get(&s.spec.topic_ref.name).cloned())
        .collect();
    out.sort();
    out.dedup();
    out
}

/// The desired attributes including `Policy` (empty when no topic may send).
pub fn desired_attributes(
    aws: &QueueAws,
    redrive: Option<&RedriveTarget>,
    queue_arn: &str,
    topic_arns: &[String],
) -> Attributes {
    let mut desired = attributes::queue_attributes(aws, redrive);
    desired.insert(
        names::POLICY.to_owned(),
        attributes::queue_policy(queue_arn, topic_arns).unwrap_or_default(),
    );
    desired
}

/// Resolves the dead-letter target: the DeadLetter must exist and have an ARN (its type was checked by
/// [`references::validate`]).
fn redrive_target<C: Cloud>(queue: &Queue, ctx: &Context<C>) -> Result<Option<RedriveTarget>, Error> {
    let Some(target) = &queue.spec.dead_letter else {
        return Ok(None);
    };
    let object = describe(queue);
    let namespace = queue.namespace().unwrap_or_default();
    let name = &target.target.name;
    let dead_letter =
        watch::get(&ctx.stores.dead_letters, &namespace, name).ok_or_else(|| Error::DependencyNotReady {
            object: object.clone(),
            message: format!("DeadLetter {name} does not exist"),
        })?;
    let arn = dead_letter
        .status
        .as_ref()
        .and_then(|s| s.observed.arn.clone())
        .ok_or_else(|| Error::DependencyNotReady {
            object,
            message: format!("DeadLetter {name} is not ready: it has no SQS ARN yet"),
        })?;
    Ok(Some(RedriveTarget {
        dead_letter_arn: arn,
        max_receive_count: target.max_receive_count,
    }))
}

/// The ARNs of the Topics with a Subscription to this queue, from the watches' stores.
fn topic_arns<C: Cloud>(queue: &Queue, ctx: &Context<C>) -> Vec<String> {
    let namespace = queue.namespace().unwrap_or_default();
    let name = queue.name_any();
    let subscriptions: Vec<_> = watch::in_namespace(&ctx.stores.subscriptions, &namespace)
        .into_iter()
        .filter(|s| s.spec.queue_ref.name == name)
        .collect();
    let topics: Vec<_> = subscriptions
        .iter()
        .filter_map(|s| watch::get(&ctx.stores.topics, &namespace, &s.spec.topic_ref.name))
        .collect();
    subscribed_topic_arns(&name, &subscriptions, &topics)
}

/// A Queue on `azure`: its Storage Queue (see [`storage_queue`]). A dead letter must be on `azure` too; the
/// workers send to it.
async fn apply_azure<C: Cloud>(
    queue: &Queue,
    azure: &QueueAzure,
    ctx: &Context<C>,
) -> Result<Applied<QueueStatus>, Error> {
    if let Some(target) = &queue.spec.dead_letter {
        let namespace = queue.namespace().unwrap_or_default();
        let name = &target.target.name;
        if watch::get(&ctx.stores.dead_letters, &namespace, name).is_none() {
            return Err(Error::DependencyNotReady {
                object: describe(queue),
                message: format!("DeadLetter {name} does not exist"),
            });
        }
    }
    let recorded = queue.status.as_ref().and_then(|s| s.observed.url.as_deref());
    let adopt = queue.spec.lifecycle.adopt;
    let observed = storage_queue::ensure(ctx, queue, "Queue", &azure.location, adopt, recorded).await?;
    let message = format!("Storage Queue {}", observed.url.as_deref().unwrap_or_default());
    Ok(Applied {
        status: QueueStatus {
            observed,
            ..QueueStatus::default()
        },
        message,
        requeue: None,
        not_ready: None,
    })
}

/// What was verified of a Queue's SQS queue: its status, its attributes as read back, and the topics
/// its policy was written for.
#[derive(Clone)]
struct Seen {
    status: QueueStatus,
    attributes: Attributes,
    topics: Vec<String>,
}

/// A Queue on `aws`: its SQS queue, created with its attributes, tags and (when its Topics have ARNs)
/// its policy in one call; what differs set in one call and read back. The status lists the topics the
/// policy SQS answered lets send, which is what a Subscription's readiness waits for. Within the resync
/// period a queue verified for the same spec is not read again: a new Subscription's Topic only sets the
/// policy and reads it back.
async fn apply_aws<C: Cloud>(
    queue: &Queue,
    aws: &QueueAws,
    ctx: &Context<C>,
) -> Result<Applied<QueueStatus>, Error> {
    let redrive = redrive_target(queue, ctx)?;
    let topics = topic_arns(queue, ctx);
    let name = queue_name(queue, aws);
    let tags = desired_tags(&ctx.owner("Queue", queue), &queue.spec.lifecycle.tags);
    let base = attributes::queue_attributes(aws, redrive.as_ref());
    let key = describe(queue);
    let print = verified::fingerprint(&(
        &queue.metadata.uid,
        queue.metadata.generation,
        &name,
        &base,
        &tags,
    ));
    let mut ensured = match ctx.verified.get::<Seen>(&key, print) {
        Some(hit) if hit.status.topics == topics => {
            let url = hit.status.status.observed.url.clone().unwrap_or_default();
            return Ok(Applied {
                status: hit.status.status,
                message: format!("SQS queue {url}"),
                requeue: Some(hit.next_check),
                not_ready: None,
            });
        }
        Some(hit) => Ensured {
            url: hit.status.status.observed.url.clone().unwrap_or_default(),
            arn: hit.status.status.observed.arn.clone().unwrap_or_default(),
            created: false,
            attributes: hit.status.attributes,
        },
        None => {
            let creation = creation_attributes(aws, redrive.as_ref(), &base, &name, &topics);
            let recorded = known_url(queue, ctx, &key, &name);
            if recorded.is_none()
                && let Some(wait) = wait_for_topic_arns(queue, ctx)?
            {
                return Ok(settling(queue, wait));
            }
            let target = Target {
                name: &name,
                attributes: &creation,
                tags: &tags,
                adopt: queue.spec.lifecycle.adopt,
                recorded: recorded.as_deref(),
            };
            ensure_queue(ctx, queue, "Queue", &target).await?
        }
    };
    let desired = desired_attributes(aws, redrive.as_ref(), &ensured.arn, &topics);
    let status = sync_and_read_back(queue, ctx, &mut ensured, &desired).await?;
    // SQS applies attribute changes within about a minute: until the read-back shows them, look again
    // soon instead of recording this observation as verified.
    let settled = drift::diff(&desired, &ensured.attributes).is_empty();
    if settled {
        let seen = Seen {
            status: status.clone(),
            attributes: ensured.attributes.clone(),
            topics,
        };
        ctx.verified.record(&key, print, seen, ctx.resync("Queue"));
    }
    Ok(Applied {
        status,
        message: format!("SQS queue {}", ensured.url),
        requeue: (!settled).then_some(SETTLE_RETRY),
        not_ready: None,
    })
}

/// The attributes a new queue named `name` is created with: `base`, and its policy when its Topics
/// have ARNs (the queue's own ARN is known beside theirs). Pure.
fn creation_attributes(
    aws: &QueueAws,
    redrive: Option<&RedriveTarget>,
    base: &Attributes,
    name: &str,
    topics: &[String],
) -> Attributes {
    match topics.first().and_then(|t| attributes::queue_arn_beside(t, name)) {
        Some(arn) => desired_attributes(aws, redrive, &arn, topics),
        None => base.clone(),
    }
}

/// The URL of the queue named `name` as far as it is known: recorded in status, else from the last
/// reconcile whose status the watch has not brought back yet.
fn known_url<C: Cloud>(queue: &Queue, ctx: &Context<C>, key: &str, name: &str) -> Option<String> {
    let last = ctx
        .verified
        .last::<Seen>(key)
        .and_then(|seen| seen.status.observed.url);
    let observed = queue.status.as_ref().map(|s| &s.observed);
    recorded_url(observed, name).map(str::to_owned).or(last)
}

/// How long a brand-new Queue that no Subscription names yet waits for one, before creating its queue
/// without a policy. Manifests applied together arrive within milliseconds of each other; a queue
/// created a moment before its Subscription would need its policy set, read back and its status written
/// a second time.
const NEW_QUEUE_SETTLE: Duration = Duration::from_secs(2);

/// Before a new queue is created: while the Queue is new (within the quiet start) and a Subscription to
/// it names a Topic that exists but has no ARN yet, wait for it, so the queue is created with its policy
/// in one call instead of created, then changed and read back. A Queue no Subscription names yet waits
/// [`NEW_QUEUE_SETTLE`] for one (`Some`: look again after that long; a new Subscription wakes it sooner).
fn wait_for_topic_arns<C: Cloud>(queue: &Queue, ctx: &Context<C>) -> Result<Option<Duration>, Error> {
    if !status::unannounced(queue, ctx.config.quiet_start) {
        return Ok(None);
    }
    let namespace = queue.namespace().unwrap_or_default();
    let name = queue.name_any();
    let subscriptions: Vec<_> = watch::in_namespace(&ctx.stores.subscriptions, &namespace)
        .into_iter()
        .filter(|s| s.spec.queue_ref.name == name && s.metadata.deletion_timestamp.is_none())
        .collect();
    if subscriptions.is_empty() {
        let age = queue
            .metadata
            .creation_timestamp
            .as_ref()
            .map(|created| Timestamp::now().duration_since(created.0));
        return Ok(settle_left(age, ctx.config.quiet_start.min(NEW_QUEUE_SETTLE)));
    }
    let pending = subscriptions.iter().find_map(|s| {
        let topic = watch::get(&ctx.stores.topics, &namespace, &s.spec.topic_ref.name)?;
        topic
            .status
            .as_ref()
            .and_then(|t| t.arn.as_ref())
            .is_none()
            .then(|| topic.name_any())
    });
    match pending {
        Some(topic) => Err(Error::DependencyNotReady {
            object: describe(queue),
            message: format!("waiting for Topic {topic} to have an ARN, to create the queue with its policy"),
        }),
        None => Ok(None),
    }
}

/// What is left of `settle` for an object `age` old (none when unknown or past it).
fn settle_left(age: Option<SignedDuration>, settle: Duration) -> Option<Duration> {
    let age = Duration::try_from(age?).ok()?;
    settle.checked_sub(age).filter(|left| !left.is_zero())
}

/// The outcome of a Queue that waits [`NEW_QUEUE_SETTLE`]: not ready, nothing written (it is within
/// the quiet start), looked at again after `wait`.
fn settling(queue: &Queue, wait: Duration) -> Applied<QueueStatus> {
    Applied {
        status: queue.status.clone().unwrap_or_default(),
        message: String::new(),
        requeue: Some(wait),
        not_ready: Some(status::NotReady {
            reason: "Progressing",
            message: "waiting a moment for the Subscriptions applied with it".to_owned(),
        }),
    }
}

/// Sets what differs from `desired`, reads the queue back after a change, and returns the status of what
/// SQS answered: the topics its policy lets send among it.
async fn sync_and_read_back<C: Cloud>(
    queue: &Queue,
    ctx: &Context<C>,
    ensured: &mut Ensured,
    desired: &Attributes,
) -> Result<QueueStatus, Error> {
    let changed = sync_attributes(ctx, queue, ensured, desired).await?;
    if !changed.is_empty() {
        // Readiness is what SQS answers, not what was sent.
        ensured.attributes = ctx
            .aws
            .queue_attributes(&ensured.url)
            .await
            .map_err(|source| Error::cloud(&describe(queue), source))?;
    }
    let policy = ensured.attributes.get(names::POLICY).map_or("", String::as_str);
    let allowed = attributes::allowed_topics(policy);
    let recorded_topics = queue
        .status
        .as_ref()
        .map(|s| s.allowed_topics.clone())
        .unwrap_or_default();
    // A policy following the Subscriptions is their news, not the Queue's: no Event for it alone.
    let only_policy_followed = changed == names::POLICY && allowed != recorded_topics;
    if !changed.is_empty() && !ensured.created && !only_policy_followed {
        let reason = events::change_reason(was_synced(queue));
        let note = format!("set {changed} on SQS queue {}", ensured.url);
        events::normal(&ctx.recorder, queue, reason, note).await;
    }
    let stats = queue_stats_from(&ensured.attributes);
    Ok(QueueStatus {
        observed: QueueObservation {
            url: Some(ensured.url.clone()),
            arn: Some(ensured.arn.clone()),
            depth: Some(stats.visible),
            oldest_message_age_seconds: stats.oldest_message_age_seconds,
        },
        allowed_topics: allowed,
        ..QueueStatus::default()
    })
}

/// How soon a queue whose read-back does not show a change yet is read again.
const SETTLE_RETRY: Duration = Duration::from_secs(2);

impl<C: Cloud> Reconciler<C> for Queue {
    /// SQS queues on `aws`, Storage Queues on `azure`.
    fn supports(_: Provider) -> bool {
        true
    }

    async fn apply(queue: Arc<Self>, ctx: Arc<Context<C>>) -> Result<Applied<QueueStatus>, Error> {
        references::validate(&*queue, Spec::Queue(&queue.spec), &ctx.stores)?;
        let namespace = queue.namespace().unwrap_or_default();
        tenancy::load(&ctx.client, &ctx.stores.policies, &describe(&*queue), &namespace)
            .await?
            .check_adoption(&describe(&*queue), queue.spec.lifecycle.adopt)?;
        if let (Provider::Azure, Some(azure)) = (queue.spec.provider, &queue.spec.azure) {
            return apply_azure(&queue, azure, &ctx).await;
        }
        apply_aws(&queue, validate(&queue)?, &ctx).await
    }

    async fn cleanup(queue: Arc<Self>, ctx: Arc<Context<C>>) -> Result<(), Error> {
        if let (Provider::Azure, Some(azure)) = (queue.spec.provider, &queue.spec.azure) {
            let policy = queue.spec.lifecycle.deletion_policy;
            let recorded = queue.status.as_ref().and_then(|s| s.observed.url.as_deref());
            return storage_queue::remove(&ctx, &*queue, "Queue", &azure.location, policy, recorded).await;
        }
        let url = queue.status.as_ref().and_then(|s| s.observed.url.clone());
        let name = queue.spec.aws.as_ref().map(|aws| queue_name(&queue, aws));
        delete_queue(
            &ctx,
            &*queue,
            "Queue",
            queue.spec.lifecycle.deletion_policy,
            url,
            name,
        )
        .await
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod apply_tests;

#[cfg(test)]
mod apply_azure_tests;
