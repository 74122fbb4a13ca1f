//! Subscription reconciler (SNS subscription of an SQS queue to a topic). validate: the filter policy,
//! by the filter engine (an invalid one is `InvalidFilter`, the engine's message in the condition, which
//! is what users see when no admission webhook is installed) → dependencies: the Topic's and the Queue's
//! ARNs (`DependencyNotReady` until both have one), FIFO parity → build: attributes with the filter policy
//! in the engine's canonical JSON → apply: find or subscribe (never a duplicate), set what differs →
//! status: ARN and the applied canonical policy. The queue policy letting the topic send is the Queue
//! reconciler's (it watches Subscriptions). A Subscription to a Queue on azure goes through a relay
//! ([`relay`]).

pub mod relay;
mod sns;

use std::sync::Arc;

use kube::ResourceExt;

use self::sns::ensure_subscription;
use crate::cloud::{Queues as _, Subscriptions as _};
use crate::{
    admission::Spec,
    api::{
        Queue,
        common::{DeletionPolicy, Provider},
        subscription::{FilterScope, Subscription, SubscriptionStatus},
    },
    cloud::{Attributes, aws::attributes},
    controller::{
        Cloud, Context,
        driver::{
            error::Error,
            events::{self, reasons},
            ownership::{Owner, lost},
            reconcile::{Applied, Reconciler},
            references,
            status::{NotReady, describe},
            verified, watch,
        },
    },
    filter::{Policy, Scope},
};

/// The validate step: pure. The parsed filter policy, if there is one.
pub fn validate(subscription: &Subscription) -> Result<Option<Policy>, Error> {
    let Some(filter) = &subscription.spec.filter else {
        return Ok(None);
    };
    let scope = match filter.scope {
        FilterScope::MessageAttributes => Scope::MessageAttributes,
        FilterScope::MessageBody => Scope::MessageBody,
    };
    Policy::parse(&serde_json::Value::Object(filter.policy.clone()), scope)
        .map(Some)
        .map_err(|e| Error::InvalidFilter {
            object: describe(subscription),
            message: format!("spec.filter.policy: {e}"),
        })
}

/// The build step: pure. Raw delivery, and the filter policy as the engine's canonical JSON with its
/// scope (or an empty policy, which removes a filter).
pub fn build(subscription: &Subscription, policy: Option<&Policy>) -> Attributes {
    attributes::subscription_attributes(subscription.spec.raw_message_delivery, policy)
}

/// Where a Subscription delivers.
pub(crate) enum Endpoints {
    /// An SQS queue: the Topic's and the queue's ARNs.
    Sqs(String, String),
    /// A Queue on azure, through a relay: the Topic's ARN and the Queue.
    Relay(String, Arc<Queue>),
}

/// The ARNs of the Topic and the Queue (from the watches' stores), or why there are none yet.
fn endpoints<C: Cloud>(subscription: &Subscription, ctx: &Context<C>) -> Result<Endpoints, Error> {
    let object = describe(subscription);
    let namespace = subscription.namespace().unwrap_or_default();
    let topic_name = &subscription.spec.topic_ref.name;
    let queue_name = &subscription.spec.queue_ref.name;
    let topic = watch::get(&ctx.stores.topics, &namespace, topic_name);
    let queue = watch::get(&ctx.stores.queues, &namespace, queue_name);
    let not_ready = |message: String| Error::DependencyNotReady {
        object: object.clone(),
        message,
    };
    let (topic, queue) = match (topic, queue) {
        (Some(topic), Some(queue)) => (topic, queue),
        (None, _) => return Err(not_ready(format!("Topic {topic_name} does not exist"))),
        (_, None) => return Err(not_ready(format!("Queue {queue_name} does not exist"))),
    };
    let topic_arn = topic.status.as_ref().and_then(|s| s.arn.clone());
    if queue.spec.provider == Provider::Azure {
        let topic_arn = topic_arn
            .ok_or_else(|| not_ready(format!("Topic {topic_name} is not ready: it has no SNS ARN yet")))?;
        return Ok(Endpoints::Relay(topic_arn, queue));
    }
    let queue_arn = queue.status.as_ref().and_then(|s| s.observed.arn.clone());
    match (topic_arn, queue_arn) {
        (Some(topic), Some(queue)) => Ok(Endpoints::Sqs(topic, queue)),
        (None, _) => Err(not_ready(format!(
            "Topic {topic_name} is not ready: it has no SNS ARN yet"
        ))),
        (_, None) => Err(not_ready(format!(
            "Queue {queue_name} is not ready: it has no SQS ARN yet"
        ))),
    }
}

/// Ready=False: the Queue's policy, as SQS answered it, does not let the Topic send yet.
pub const QUEUE_POLICY_PENDING: &str = "QueuePolicyPending";
/// Ready=False: SNS reports the subscription as awaiting confirmation.
pub const PENDING_CONFIRMATION: &str = "PendingConfirmation";

/// A Subscription to a Queue on `aws`: the SNS subscription with its attributes (from the last check
/// within the resync period when nothing it depends on changed), Ready only when the Queue's policy,
/// read back from SQS, lets the Topic send and SNS has confirmed the subscription.
async fn apply_sqs<C: Cloud>(
    subscription: &Subscription,
    ctx: &Context<C>,
    policy: Option<&Policy>,
    topic_arn: &str,
    queue_arn: &str,
) -> Result<Applied<SubscriptionStatus>, Error> {
    let desired = build(subscription, policy);
    let key = describe(subscription);
    let print = verified::fingerprint(&(
        &subscription.metadata.uid,
        subscription.metadata.generation,
        topic_arn,
        queue_arn,
        &desired,
    ));
    let (status, requeue, pending) = match ctx.verified.get::<(SubscriptionStatus, bool)>(&key, print) {
        Some(hit) => (hit.status.0, Some(hit.next_check), hit.status.1),
        None => {
            let (arn, observed) =
                ensure_subscription(subscription, ctx, topic_arn, queue_arn, &desired).await?;
            let status = SubscriptionStatus {
                arn: Some(arn),
                applied_filter_policy: policy.map(Policy::canonical_json),
                ..SubscriptionStatus::default()
            };
            let pending = observed.get("PendingConfirmation").is_some_and(|v| v == "true");
            ctx.verified
                .record(&key, print, (status.clone(), pending), ctx.resync("Subscription"));
            (status, None, pending)
        }
    };
    let arn = status.arn.clone().unwrap_or_default();
    Ok(Applied {
        not_ready: delivery_pending(subscription, ctx, topic_arn, pending),
        status,
        message: format!("SNS subscription {arn}"),
        requeue,
    })
}

/// Why SNS cannot deliver to the queue yet, if it cannot: the queue policy (from the Queue's status,
/// which holds what SQS answered) must list the Topic, and the subscription must be confirmed.
fn delivery_pending<C: Cloud>(
    subscription: &Subscription,
    ctx: &Context<C>,
    topic_arn: &str,
    pending_confirmation: bool,
) -> Option<NotReady> {
    let namespace = subscription.namespace().unwrap_or_default();
    let queue_name = &subscription.spec.queue_ref.name;
    let allowed = watch::get(&ctx.stores.queues, &namespace, queue_name)
        .and_then(|q| {
            q.status
                .as_ref()
                .map(|s| s.allowed_topics.iter().any(|t| t == topic_arn))
        })
        .unwrap_or(false);
    if !allowed {
        return Some(NotReady {
            reason: QUEUE_POLICY_PENDING,
            message: format!(
                "subscribed, but the policy of Queue {queue_name} does not let Topic {} ({topic_arn}) send \
                 yet: waiting for the Queue to write it and read it back",
                subscription.spec.topic_ref.name
            ),
        });
    }
    pending_confirmation.then(|| NotReady {
        reason: PENDING_CONFIRMATION,
        message: "SNS reports the subscription as awaiting confirmation".to_owned(),
    })
}

impl<C: Cloud> Reconciler<C> for Subscription {
    async fn apply(
        subscription: Arc<Self>,
        ctx: Arc<Context<C>>,
    ) -> Result<Applied<SubscriptionStatus>, Error> {
        let policy = validate(&subscription)?;
        references::validate(
            &*subscription,
            Spec::Subscription(&subscription.spec),
            &ctx.stores,
        )?;
        let (topic_arn, queue_arn) = match endpoints(&subscription, &ctx)? {
            Endpoints::Sqs(topic_arn, queue_arn) => (topic_arn, queue_arn),
            Endpoints::Relay(topic_arn, queue) => {
                return relay::apply(&subscription, &ctx, policy.as_ref(), &topic_arn, &queue).await;
            }
        };
        apply_sqs(&subscription, &ctx, policy.as_ref(), &topic_arn, &queue_arn).await
    }

    async fn cleanup(subscription: Arc<Self>, ctx: Arc<Context<C>>) -> Result<(), Error> {
        if subscription.spec.deletion_policy == DeletionPolicy::Retain {
            let note = "deletionPolicy is Retain: the SNS subscription is kept".to_owned();
            events::normal(&ctx.recorder, &*subscription, reasons::RETAINED, note).await;
            return Ok(());
        }
        let object = describe(&*subscription);
        let err = |source| Error::cloud(&object, source);
        let mut arn = subscription.status.as_ref().and_then(|s| s.arn.clone());
        if arn.is_none() {
            // Subscribed but the status was never written (a restart mid-reconcile): look it up.
            if let Ok(Endpoints::Sqs(topic_arn, queue_arn)) = endpoints(&subscription, &ctx) {
                arn = ctx
                    .aws
                    .find_subscription(&topic_arn, &queue_arn)
                    .await
                    .map_err(err)?;
            }
        }
        if let Some(arn) = arn {
            match before_unsubscribe(&subscription, &ctx, &arn).await? {
                Endpoint::Gone => {}
                Endpoint::Kept(note) => {
                    events::warning(&ctx.recorder, &*subscription, reasons::OWNERSHIP_LOST, note).await;
                }
                Endpoint::Ours => {
                    ctx.aws.unsubscribe(&arn).await.map_err(err)?;
                    let note = format!("unsubscribed {arn}");
                    events::normal(&ctx.recorder, &*subscription, reasons::DELETED, note).await;
                }
            }
        }
        let topic_arn = match endpoints(&subscription, &ctx) {
            Ok(Endpoints::Relay(topic_arn, _)) => Some(topic_arn),
            _ => None,
        };
        relay::cleanup(&subscription, &ctx, topic_arn.as_deref()).await
    }
}

/// What an SNS subscription about to be removed delivers to.
enum Endpoint {
    /// The subscription is gone already.
    Gone,
    /// A queue of this Subscription's (its Queue's, or its relay queue), or no queue any more.
    Ours,
    /// A queue whose tags name another owner: the subscription is kept; the Event's note.
    Kept(String),
}

/// SNS subscriptions have no tags, so before one is removed its endpoint is read again: the queue it
/// delivers to must carry the tags of this Subscription's Queue (or of its own relay queue).
async fn before_unsubscribe<C: Cloud>(
    subscription: &Subscription,
    ctx: &Context<C>,
    arn: &str,
) -> Result<Endpoint, Error> {
    let object = describe(subscription);
    let err = |source| Error::cloud(&object, source);
    let Some(observed) = ctx.aws.subscription_attributes(arn).await.map_err(err)? else {
        return Ok(Endpoint::Gone);
    };
    let endpoint = observed.get("Endpoint").map(String::as_str).unwrap_or_default();
    let Some(name) = attributes::name_from_arn(endpoint) else {
        return Ok(Endpoint::Kept(format!(
            "SNS subscription {arn} is kept: it delivers to {endpoint:?}, not to an SQS queue of this object"
        )));
    };
    let owner = if name == relay::relay_queue_name(subscription) {
        ctx.owner("Subscription", subscription)
    } else {
        Owner {
            kind: "Queue",
            name: &subscription.spec.queue_ref.name,
            ..ctx.owner("Subscription", subscription)
        }
    };
    let Some(url) = ctx.aws.find_queue(name).await.map_err(err)? else {
        return Ok(Endpoint::Ours);
    };
    let tags = match ctx.aws.queue_tags(&url).await {
        Ok(tags) => tags,
        Err(error) if error.is_not_found() => return Ok(Endpoint::Ours),
        Err(error) => return Err(err(error)),
    };
    let resource = format!("SNS subscription {arn} (to SQS queue {name})");
    Ok(lost(&resource, &tags, &owner).map_or(Endpoint::Ours, Endpoint::Kept))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::api::{
        common::ObjectRef,
        subscription::{SubscriptionFilter, SubscriptionSpec},
    };
    use crate::controller::driver::drift;

    fn subscription(policy: serde_json::Value, scope: FilterScope) -> Subscription {
        Subscription::new(
            "s",
            SubscriptionSpec {
                topic_ref: ObjectRef {
                    name: "orders".into(),
                },
                queue_ref: ObjectRef { name: "q".into() },
                filter: Some(SubscriptionFilter {
                    scope,
                    policy: policy.as_object().unwrap().clone(),
                }),
                raw_message_delivery: true,
                deletion_policy: DeletionPolicy::Delete,
            },
        )
    }

    #[test]
    fn an_invalid_filter_is_invalid_filter_with_the_engines_message() {
        let s = subscription(
            json!({"customer": {"tier": ["gold"]}}),
            FilterScope::MessageAttributes,
        );
        let error = validate(&s).unwrap_err();
        assert_eq!(error.reason(), "InvalidFilter");
        assert!(
            error
                .condition_message()
                .contains("customer: nested keys are not allowed in MessageAttributes scope"),
            "{error}"
        );
    }

    #[test]
    fn the_filter_is_sent_in_canonical_form_with_scope_and_raw_delivery() {
        let s = subscription(
            json!({"event": ["OrderShipped", "OrderPlaced"]}),
            FilterScope::MessageBody,
        );
        let policy = validate(&s).unwrap();
        let desired = build(&s, policy.as_ref());
        assert_eq!(desired["FilterPolicy"], policy.unwrap().canonical_json());
        assert_eq!(desired["FilterPolicyScope"], "MessageBody");
        assert_eq!(desired["RawMessageDelivery"], "true");
        // What SNS reports back, reordered, is not a difference.
        let observed: Attributes = [
            ("FilterPolicy", r#"{"event": ["OrderPlaced", "OrderShipped"]}"#),
            ("FilterPolicyScope", "MessageBody"),
            ("RawMessageDelivery", "True"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        assert!(drift::diff(&desired, &observed).is_empty());
    }

    #[test]
    fn without_a_filter_the_policy_is_cleared() {
        let mut s = subscription(json!({"a": ["b"]}), FilterScope::MessageAttributes);
        s.spec.filter = None;
        let desired = build(&s, validate(&s).unwrap().as_ref());
        assert_eq!(desired["FilterPolicy"], "");
    }
}

#[cfg(test)]
mod apply_relay_tests;
#[cfg(test)]
mod apply_tests;
