//! Queue reconciler (SQS queue). validate: the `aws` block, FIFO parity with the DeadLetter →
//! dependencies: the DeadLetter's ARN (for `RedrivePolicy`) and the ARNs of the Topics that have a
//! Subscription to this Queue (for the queue policy) → build: name, attributes, policy, tags → apply:
//! find or create, adopt or refuse, set what differs, tag → status: URL, ARN, depth.
//!
//! Every SetQueueAttributes call carries `Policy`: moto (unlike SQS) drops the queue policy on a call
//! that leaves it out, and sending the desired value is correct on both.

use std::{borrow::Borrow, collections::BTreeMap, sync::Arc};

use kube::ResourceExt;

use super::{
    Cloud, Context,
    drift::{self, names_of},
    error::Error,
    events::{self, reasons},
    finalize::{Applied, Reconciler},
    ownership::{Ownership, desired_tags, lost, missing_tags, ownership, refusal, stale_tags},
    references,
    status::{describe, was_synced},
    storage_queue, tenancy, verified, watch,
};
use crate::{
    admission::Spec,
    api::{
        Queue, Subscription, Topic,
        common::{DeletionPolicy, Provider, QueueObservation},
        queue::{QueueAws, QueueAzure, QueueStatus},
    },
    cloud::{
        Attributes, Tags,
        aws::{
            attributes::{self, RedriveTarget, names},
            queue_stats_from,
        },
        names as names_for_cloud,
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

/// The URL recorded in status, if it is that of the queue named `name` (a renamed queue is looked up).
pub(crate) fn recorded_url<'a>(observed: Option<&'a QueueObservation>, name: &str) -> Option<&'a str> {
    observed
        .and_then(|o| o.url.as_deref())
        .filter(|url| url.rsplit('/').next() == Some(name))
}

/// A Queue on `aws`: its SQS queue, created with its attributes, tags and (when its Topics have ARNs)
/// its policy in one call; what differs set in one call and read back. The status lists the topics the
/// policy SQS answered lets send, which is what a Subscription's readiness waits for.
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
        &topics,
        &tags,
    ));
    if let Some(hit) = ctx.verified.get::<QueueStatus>(&key, print, ctx.resync("Queue")) {
        let url = hit.status.observed.url.clone().unwrap_or_default();
        return Ok(Applied {
            status: hit.status,
            message: format!("SQS queue {url}"),
            requeue: Some(hit.next_check),
            not_ready: None,
        });
    }
    let mut creation = base.clone();
    if let Some(arn) = topics
        .first()
        .and_then(|topic| attributes::queue_arn_beside(topic, &name))
    {
        creation = desired_attributes(aws, redrive.as_ref(), &arn, &topics);
    }
    let observed = queue.status.as_ref().map(|s| &s.observed);
    let adopt = queue.spec.lifecycle.adopt;
    let target = Target {
        name: &name,
        attributes: &creation,
        tags: &tags,
        adopt,
        recorded: recorded_url(observed, &name),
    };
    let mut ensured = ensure_queue(ctx, queue, "Queue", &target).await?;

    let desired = desired_attributes(aws, redrive.as_ref(), &ensured.arn, &topics);
    let changed = sync_attributes(ctx, queue, &ensured, &desired).await?;
    if !changed.is_empty() {
        // Read back what SQS now holds: readiness is what SQS answers, not what was sent.
        ensured.attributes = ctx
            .cloud
            .queue_attributes(&ensured.url)
            .await
            .map_err(|source| Error::cloud(&key, source))?;
    }
    let allowed =
        attributes::allowed_topics(ensured.attributes.get(names::POLICY).map_or("", String::as_str));
    let recorded_topics = queue
        .status
        .as_ref()
        .map(|s| s.allowed_topics.clone())
        .unwrap_or_default();
    // A policy following the Subscriptions is their news, not the Queue's: no Event for it alone.
    let only_policy_followed = changed == names::POLICY && allowed != recorded_topics;
    if !changed.is_empty() && !ensured.created && !only_policy_followed {
        let reason = events::change_reason(was_synced(queue));
        let note = format!("set {changed} on SQS queue {name}");
        events::normal(&ctx.recorder, queue, reason, note).await;
    }
    let stats = queue_stats_from(&ensured.attributes);
    let status = QueueStatus {
        observed: QueueObservation {
            url: Some(ensured.url.clone()),
            arn: Some(ensured.arn.clone()),
            depth: Some(stats.visible),
            oldest_message_age_seconds: stats.oldest_message_age_seconds,
        },
        allowed_topics: allowed,
        ..QueueStatus::default()
    };
    // SQS applies attribute changes within about a minute: until the read-back shows them, look again
    // soon instead of recording this observation as verified.
    let settled = drift::diff(&desired, &ensured.attributes).is_empty();
    if settled {
        ctx.verified
            .record(&key, print, status.clone(), ctx.resync("Queue"));
    }
    Ok(Applied {
        status,
        message: format!("SQS queue {}", ensured.url),
        requeue: (!settled).then_some(SETTLE_RETRY),
        not_ready: None,
    })
}

/// How soon a queue whose read-back does not show a change yet is read again.
const SETTLE_RETRY: std::time::Duration = std::time::Duration::from_secs(2);

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

/// An SQS queue found or created, with its attributes as observed.
pub(crate) struct Ensured {
    pub url: String,
    pub arn: String,
    pub created: bool,
    pub attributes: Attributes,
}

/// The SQS queue an object asks for.
pub(crate) struct Target<'a> {
    /// Queue name.
    pub name: &'a str,
    /// Attributes to create it with.
    pub attributes: &'a Attributes,
    /// Spec tags plus ownership tags.
    pub tags: &'a Tags,
    /// `spec.adopt`.
    pub adopt: bool,
    /// The URL recorded in status for this name: no lookup by name while it is there.
    pub recorded: Option<&'a str>,
}

/// Finds the queue (by the URL recorded in status, else by name) or creates it with its attributes and
/// tags; an existing queue must be ours, or is adopted when `adopt` and it carries no Tributary tag, or is
/// refused (`OwnedByAnother`, `AlreadyExists`). Missing tags are added and, on a queue already ours, tags
/// the spec no longer has are removed.
pub(crate) async fn ensure_queue<K: super::status::Kind, C: Cloud>(
    ctx: &Context<C>,
    owner: &K,
    kind: &str,
    target: &Target<'_>,
) -> Result<Ensured, Error> {
    let object = describe(owner);
    let err = |source| Error::cloud(&object, source);
    let cloud = &ctx.cloud;
    let mut found = None;
    if let Some(url) = target.recorded {
        match cloud.queue_tags(url).await {
            Ok(tags) => found = Some((url.to_owned(), tags)),
            Err(error) if error.is_not_found() => {}
            Err(error) => return Err(err(error)),
        }
    }
    if found.is_none()
        && let Some(url) = cloud.find_queue(target.name).await.map_err(err)?
    {
        let tags = cloud.queue_tags(&url).await.map_err(err)?;
        found = Some((url, tags));
    }
    let (url, created) = match found {
        None => {
            let url = cloud
                .create_queue(target.name, target.attributes, target.tags)
                .await
                .map_err(err)?;
            let note = format!("created SQS queue {url}");
            events::normal(&ctx.recorder, owner, reasons::CREATED, note).await;
            (url, true)
        }
        Some((url, observed_tags)) => {
            claim(ctx, owner, kind, target, &url, &observed_tags).await?;
            (url, false)
        }
    };
    let attributes = cloud.queue_attributes(&url).await.map_err(err)?;
    let arn = attributes.get(names::QUEUE_ARN).cloned().ok_or_else(|| {
        err(crate::cloud::Error::Response {
            operation: crate::cloud::Operation::new("sqs", "GetQueueAttributes", url.clone()),
            detail: "the answer has no QueueArn".to_owned(),
        })
    })?;
    Ok(Ensured {
        url,
        arn,
        created,
        attributes,
    })
}

/// An existing queue: refused unless ours or adoptable; adopted (tagged) or its tags brought in line.
async fn claim<K: super::status::Kind, C: Cloud>(
    ctx: &Context<C>,
    owner: &K,
    kind: &str,
    target: &Target<'_>,
    url: &str,
    observed_tags: &Tags,
) -> Result<(), Error> {
    let object = describe(owner);
    let err = |source| Error::cloud(&object, source);
    let cloud = &ctx.cloud;
    let found = ownership(observed_tags, &ctx.owner(kind, owner), target.adopt);
    if let Some(refused) = refusal(&object, &format!("SQS queue {}", target.name), &found) {
        return Err(refused);
    }
    if found == Ownership::Adopt {
        cloud.tag_queue(url, target.tags).await.map_err(err)?;
        let note = format!("adopted the existing SQS queue {url}");
        events::normal(&ctx.recorder, owner, reasons::ADOPTED, note).await;
    } else {
        cloud
            .tag_queue(url, &missing_tags(target.tags, observed_tags))
            .await
            .map_err(err)?;
        cloud
            .untag_queue(url, &stale_tags(target.tags, observed_tags))
            .await
            .map_err(err)?;
    }
    Ok(())
}

/// Sets the attributes that differ from `desired` in one call (with `Policy`, see the module doc) and
/// returns their names (empty when in sync). An immutable difference is refused with `ImmutableChange`.
pub(crate) async fn sync_attributes<K: super::status::Kind, C: Cloud>(
    ctx: &Context<C>,
    owner: &K,
    ensured: &Ensured,
    desired: &Attributes,
) -> Result<String, Error> {
    let object = describe(owner);
    let changes = drift::diff(desired, &ensured.attributes);
    if let Some(change) = changes.immutable.first() {
        return Err(Error::ImmutableChange {
            object,
            message: format!(
                "SQS cannot change {} of queue {} in place (it is {:?}, the spec asks for {:?}); create a new \
                 object with another name",
                change.name, ensured.url, change.observed, change.desired
            ),
        });
    }
    if changes.to_set.is_empty() {
        return Ok(String::new());
    }
    let mut set = changes.to_set_map();
    set.insert(
        names::POLICY.to_owned(),
        desired.get(names::POLICY).cloned().unwrap_or_default(),
    );
    ctx.cloud
        .set_queue_attributes(&ensured.url, &set)
        .await
        .map_err(|source| Error::cloud(&object, source))?;
    Ok(names_of(&changes))
}

/// Cleanup of a Queue or DeadLetter: keep the queue (`Retain`), or delete it (by the URL in status, else
/// by name) if it still carries this object's tags, read again now. A queue that is not ours is never
/// deleted: it is kept, with a Warning Event.
pub(crate) async fn delete_queue<K: super::status::Kind, C: Cloud>(
    ctx: &Context<C>,
    owner: &K,
    kind: &str,
    policy: DeletionPolicy,
    url: Option<String>,
    name: Option<String>,
) -> Result<(), Error> {
    if policy == DeletionPolicy::Retain {
        let note = "deletionPolicy is Retain: the SQS queue is kept".to_owned();
        events::normal(&ctx.recorder, owner, reasons::RETAINED, note).await;
        return Ok(());
    }
    let object = describe(owner);
    let err = |source| Error::cloud(&object, source);
    let url = match (url, name) {
        (Some(url), _) => url,
        (None, Some(name)) => match ctx.cloud.find_queue(&name).await.map_err(err)? {
            Some(url) => url,
            None => return Ok(()),
        },
        (None, None) => return Ok(()),
    };
    // The marks are read again right before the delete: the queue may have been retagged since.
    let tags = match ctx.cloud.queue_tags(&url).await {
        Ok(tags) => tags,
        Err(error) if error.is_not_found() => return Ok(()),
        Err(error) => return Err(err(error)),
    };
    if let Some(note) = lost(&format!("SQS queue {url}"), &tags, &ctx.owner(kind, owner)) {
        events::warning(&ctx.recorder, owner, reasons::OWNERSHIP_LOST, note).await;
        return Ok(());
    }
    ctx.cloud.delete_queue(&url).await.map_err(err)?;
    let note = format!("deleted SQS queue {url}");
    events::normal(&ctx.recorder, owner, reasons::DELETED, note).await;
    Ok(())
}

#[cfg(test)]
#[path = "queue_tests.rs"]
mod tests;
