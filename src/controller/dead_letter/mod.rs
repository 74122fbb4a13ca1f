//! DeadLetter reconciler (SQS dead-letter queue). validate: the `aws` block → dependencies: the Queues
//! that use this dead letter (their ARNs go into the redrive allow policy) → build: name, attributes,
//! tags → apply: find or create, adopt or refuse, set what differs, then advance a requested redrive
//! ([`redrive`]) → status: URL, ARN, depth, last redrive.

mod redrive;
mod redrive_azure;

use std::{borrow::Borrow, sync::Arc};

use kube::ResourceExt;

use self::redrive::Source;
use crate::cloud::Queues as _;
use crate::{
    admission::Spec,
    api::{
        DeadLetter, Queue,
        common::{Provider, QueueObservation, StorageQueueLocation},
        dead_letter::{DeadLetterAws, DeadLetterStatus},
    },
    cloud::aws::{attributes, queue_stats_from},
    controller::{
        Cloud, Context,
        driver::{
            error::Error,
            events,
            ownership::desired_tags,
            reconcile::{Applied, Reconciler},
            references,
            status::{describe, was_synced},
            tenancy, watch,
        },
        resources::{
            sqs_queue::{
                Target, delete_queue, ensure_queue, recorded_url as recorded_queue_url, sync_attributes,
            },
            storage_queue,
        },
    },
};

/// The validate step: pure.
pub fn validate(dead_letter: &DeadLetter) -> Result<&DeadLetterAws, Error> {
    dead_letter.spec.aws.as_ref().ok_or_else(|| Error::InvalidSpec {
        object: describe(dead_letter),
        message: "spec.aws is required when spec.provider is aws".to_owned(),
    })
}

/// The SQS queue name of a DeadLetter: `spec.aws.name`, else the name recorded in status, else the
/// default `<namespace>_<name>`.
pub fn queue_name(dead_letter: &DeadLetter, aws: &DeadLetterAws) -> String {
    let recorded = recorded_url(dead_letter);
    aws.name.clone().unwrap_or_else(|| {
        crate::cloud::names::recorded_or(recorded, || {
            attributes::default_queue_name(
                &dead_letter.namespace().unwrap_or_default(),
                &dead_letter.name_any(),
                aws.fifo,
            )
        })
    })
}

/// The queue URL recorded in status.
fn recorded_url(dead_letter: &DeadLetter) -> Option<&str> {
    dead_letter
        .status
        .as_ref()
        .and_then(|s| s.observed.url.as_deref())
}

/// The source queues of `dead_letter` among `queues`: those that reference it, are not being deleted and
/// have an SQS queue. Pure.
pub fn sources<Q: Borrow<Queue>>(dead_letter: &str, queues: &[Q]) -> Vec<Source> {
    let mut out: Vec<Source> = queues
        .iter()
        .map(Borrow::borrow)
        .filter(|q| {
            q.metadata.deletion_timestamp.is_none()
                && q.spec.dead_letter.as_ref().map(|d| d.target.name.as_str()) == Some(dead_letter)
        })
        .filter_map(|q| {
            let observed = &q.status.as_ref()?.observed;
            Some((observed.arn.clone()?, observed.url.clone()?))
        })
        .collect();
    out.sort();
    out
}

/// A DeadLetter on `azure`: its Storage Queue, and the redrive through it.
async fn apply_azure<C: Cloud>(
    dead_letter: &DeadLetter,
    ctx: &Context<C>,
    location: &StorageQueueLocation,
) -> Result<Applied<DeadLetterStatus>, Error> {
    let adopt = dead_letter.spec.lifecycle.adopt;
    let recorded = recorded_url(dead_letter);
    let mut observed =
        storage_queue::ensure(ctx, dead_letter, "DeadLetter", location, adopt, recorded).await?;
    let url = observed.url.clone().unwrap_or_default();
    let step = redrive_azure::step(ctx, dead_letter, location, &url).await?;
    // A redrive changes the depth: read it again when one ran.
    if step.result != dead_letter.status.as_ref().and_then(|s| s.last_redrive.clone()) {
        observed = storage_queue::ensure(ctx, dead_letter, "DeadLetter", location, adopt, recorded).await?;
    }
    Ok(Applied {
        status: DeadLetterStatus {
            observed,
            last_redrive: step.result,
            ..DeadLetterStatus::default()
        },
        message: format!("Storage Queue {url}"),
        requeue: step.requeue,
        not_ready: None,
    })
}

/// A DeadLetter on `aws`: its SQS queue, whose redrive allow policy names its source queues, and the
/// redrive ([`redrive`]).
async fn apply_aws<C: Cloud>(
    dead_letter: &DeadLetter,
    ctx: &Context<C>,
    aws: &DeadLetterAws,
) -> Result<Applied<DeadLetterStatus>, Error> {
    let (object, adopt) = (describe(dead_letter), dead_letter.spec.lifecycle.adopt);
    let namespace = dead_letter.namespace().unwrap_or_default();
    let queues = watch::in_namespace(&ctx.stores.queues, &namespace);
    let sources = sources(&dead_letter.name_any(), &queues);
    let source_arns: Vec<String> = sources.iter().map(|(arn, _)| arn.clone()).collect();

    let name = queue_name(dead_letter, aws);
    let tags = desired_tags(
        &ctx.owner("DeadLetter", dead_letter),
        &dead_letter.spec.lifecycle.tags,
    );
    let desired = attributes::dead_letter_attributes(aws, &source_arns);
    let observed = dead_letter.status.as_ref().map(|s| &s.observed);
    let recorded = recorded_queue_url(observed, &name);
    let target = Target {
        name: &name,
        attributes: &desired,
        tags: &tags,
        adopt,
        recorded,
    };
    let ensured = ensure_queue(ctx, dead_letter, "DeadLetter", &target).await?;
    let changed = sync_attributes(ctx, dead_letter, &ensured, &desired).await?;
    if !changed.is_empty() && !ensured.created {
        let reason = events::change_reason(was_synced(dead_letter));
        let note = format!("set {changed} on SQS queue {name}");
        events::normal(&ctx.recorder, dead_letter, reason, note).await;
    }

    let step = redrive::step(dead_letter, ctx, &ensured.url, &ensured.arn, &sources).await?;
    // A redrive changes the depth: read it again when one ran.
    let stats = if step.result != dead_letter.status.as_ref().and_then(|s| s.last_redrive.clone()) {
        ctx.aws
            .queue_stats(&ensured.url)
            .await
            .map_err(|source| Error::cloud(&object, source))?
    } else {
        queue_stats_from(&ensured.attributes)
    };
    Ok(Applied {
        status: DeadLetterStatus {
            observed: QueueObservation {
                url: Some(ensured.url.clone()),
                arn: Some(ensured.arn.clone()),
                depth: Some(stats.visible),
                oldest_message_age_seconds: stats.oldest_message_age_seconds,
            },
            last_redrive: step.result,
            ..DeadLetterStatus::default()
        },
        message: format!("SQS queue {}", ensured.url),
        requeue: step.requeue,
        not_ready: None,
    })
}

impl<C: Cloud> Reconciler<C> for DeadLetter {
    /// SQS queues on `aws`, Storage Queues on `azure`.
    fn supports(_: Provider) -> bool {
        true
    }

    async fn apply(dead_letter: Arc<Self>, ctx: Arc<Context<C>>) -> Result<Applied<DeadLetterStatus>, Error> {
        references::validate(&*dead_letter, Spec::DeadLetter(&dead_letter.spec), &ctx.stores)?;
        let (object, adopt) = (describe(&*dead_letter), dead_letter.spec.lifecycle.adopt);
        let namespace = dead_letter.namespace().unwrap_or_default();
        tenancy::load(&ctx.client, &ctx.stores.policies, &object, &namespace)
            .await?
            .check_adoption(&object, adopt)?;
        if let (Provider::Azure, Some(location)) = (dead_letter.spec.provider, &dead_letter.spec.azure) {
            return apply_azure(&dead_letter, &ctx, location).await;
        }
        apply_aws(&dead_letter, &ctx, validate(&dead_letter)?).await
    }

    async fn cleanup(dead_letter: Arc<Self>, ctx: Arc<Context<C>>) -> Result<(), Error> {
        if let (Provider::Azure, Some(location)) = (dead_letter.spec.provider, &dead_letter.spec.azure) {
            let policy = dead_letter.spec.lifecycle.deletion_policy;
            let recorded = recorded_url(&dead_letter);
            return storage_queue::remove(&ctx, &*dead_letter, "DeadLetter", location, policy, recorded)
                .await;
        }
        let url = dead_letter.status.as_ref().and_then(|s| s.observed.url.clone());
        let name = dead_letter
            .spec
            .aws
            .as_ref()
            .map(|aws| queue_name(&dead_letter, aws));
        let policy = dead_letter.spec.lifecycle.deletion_policy;
        delete_queue(&ctx, &*dead_letter, "DeadLetter", policy, url, name).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{
        common::ObjectRef,
        queue::{DeadLetterTarget, QueueSpec, QueueStatus},
    };

    fn queue(name: &str, dead_letter: &str, observed: Option<(&str, &str)>) -> Queue {
        let mut queue = Queue::new(
            name,
            QueueSpec {
                dead_letter: Some(DeadLetterTarget {
                    target: ObjectRef {
                        name: dead_letter.into(),
                    },
                    max_receive_count: 5,
                }),
                ..QueueSpec::default()
            },
        );
        queue.status = observed.map(|(arn, url)| QueueStatus {
            observed: QueueObservation {
                arn: Some(arn.into()),
                url: Some(url.into()),
                ..QueueObservation::default()
            },
            ..QueueStatus::default()
        });
        queue
    }

    #[test]
    fn sources_are_the_provisioned_queues_that_use_this_dead_letter() {
        let queues = [
            queue("b", "dlq", Some(("arn:b", "url-b"))),
            queue("a", "dlq", Some(("arn:a", "url-a"))),
            queue("c", "dlq", None),
            queue("d", "other", Some(("arn:d", "url-d"))),
        ];
        assert_eq!(
            sources("dlq", &queues),
            [
                ("arn:a".to_owned(), "url-a".to_owned()),
                ("arn:b".to_owned(), "url-b".to_owned())
            ]
        );
        let allow = attributes::redrive_allow_policy(&["arn:b".to_owned(), "arn:a".to_owned()]);
        assert_eq!(
            allow,
            r#"{"redrivePermission":"byQueue","sourceQueueArns":["arn:a","arn:b"]}"#
        );
    }
}

#[cfg(test)]
mod apply_tests;

#[cfg(test)]
mod apply_azure_tests;
