//! The SNS subscription itself, shared by a Subscription to an SQS queue and by its relay to a Queue on
//! azure: found (by the ARN in status, or the last one made) or subscribed, never twice, and its
//! attributes brought in line and read back.

use crate::cloud::Subscriptions as _;
use crate::{
    api::subscription::{Subscription, SubscriptionStatus},
    cloud::{Attributes, aws::attributes},
    controller::{
        Cloud, Context,
        driver::{
            drift::{self, names_of},
            error::Error,
            events::{self, reasons},
            status::{describe, was_synced},
        },
    },
};

/// The SNS subscription of `queue_arn` to `topic_arn` with `desired` attributes, and its attributes as
/// read back: the one in status if SNS still has it, else a new one (Subscribe returns the existing one
/// for the same endpoint, so a restart never subscribes twice; SNS refuses it when the attributes differ,
/// and the existing one is then looked up). What differs is set and read back.
pub(crate) async fn ensure_subscription<C: Cloud>(
    subscription: &Subscription,
    ctx: &Context<C>,
    topic_arn: &str,
    queue_arn: &str,
    desired: &Attributes,
) -> Result<(String, Attributes), Error> {
    let object = describe(subscription);
    let cloud = &ctx.aws;
    let err = |source| Error::cloud(&object, source);
    let mut existing = None;
    // The ARN in status, or the one the last reconcile made if the watch has not brought its status back.
    let last = ctx
        .verified
        .last::<(SubscriptionStatus, bool)>(&object)
        .and_then(|(status, _)| status.arn);
    if let Some(arn) = subscription.status.as_ref().and_then(|s| s.arn.clone()).or(last)
        && let Some(observed) = cloud.subscription_attributes(&arn).await.map_err(err)?
    {
        existing = Some((arn, observed));
    }
    let (arn, observed) = match existing {
        Some(found) => found,
        None => {
            let (arn, created) = subscribe_or_find(subscription, ctx, topic_arn, queue_arn, desired).await?;
            if created {
                let note = format!("subscribed {queue_arn} to {topic_arn}: {arn}");
                events::normal(&ctx.recorder, subscription, reasons::CREATED, note).await;
            }
            let observed = cloud
                .subscription_attributes(&arn)
                .await
                .map_err(err)?
                .ok_or_else(|| {
                    err(crate::cloud::Error::Response {
                        operation: crate::cloud::Operation::new(
                            "sns",
                            "GetSubscriptionAttributes",
                            arn.clone(),
                        ),
                        detail: "the subscription just made is gone".to_owned(),
                    })
                })?;
            (arn, observed)
        }
    };
    let changes = drift::diff(desired, &observed);
    if changes.to_set.is_empty() {
        return Ok((arn, observed));
    }
    for (name, value) in &changes.to_set {
        cloud
            .set_subscription_attribute(&arn, name, value)
            .await
            .map_err(err)?;
    }
    let reason = events::change_reason(was_synced(subscription));
    let note = format!("set {} on SNS subscription {arn}", names_of(&changes));
    events::normal(&ctx.recorder, subscription, reason, note).await;
    let observed = cloud
        .subscription_attributes(&arn)
        .await
        .map_err(err)?
        .unwrap_or_default();
    Ok((arn, observed))
}

/// Subscribes, or finds the existing subscription SNS refused to duplicate because its attributes differ.
/// Whether a new one was made: SNS does not say, so a subscription in status counts as found.
async fn subscribe_or_find<C: Cloud>(
    subscription: &Subscription,
    ctx: &Context<C>,
    topic_arn: &str,
    queue_arn: &str,
    desired: &Attributes,
) -> Result<(String, bool), Error> {
    let object = describe(subscription);
    let err = |source| Error::cloud(&object, source);
    match ctx.aws.subscribe(topic_arn, queue_arn, desired).await {
        Ok(arn) => Ok((arn, true)),
        Err(refused) if attributes::is_duplicate_subscription(&refused) => {
            match ctx
                .aws
                .find_subscription(topic_arn, queue_arn)
                .await
                .map_err(err)?
            {
                Some(arn) => Ok((arn, false)),
                None => Err(err(refused)),
            }
        }
        Err(error) => Err(err(error)),
    }
}
