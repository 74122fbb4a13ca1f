//! Consumers of a Queue on `azure`: a Storage Queue, which has no dead-lettering or redrive policy of its
//! own, so the workers carry them out. resolve, from the watch caches: the queue's URL, account,
//! visibility timeout and `deadLetter.maxReceiveCount`; its account key, which reaches the workers as
//! `AZURE_STORAGE_KEY` from the Queue's Secret; and the dead letter: the Consumer's `deadLetterRef`, else
//! the Queue's `deadLetter.ref`, a Storage Queue in the same account (the workers sign both with one
//! key). apply: the queue's approximate message count, visible and hidden, is the backlog.

use kube::ResourceExt;

use super::resolved::{Resolved, not_ready};
use crate::{
    api::{DeadLetter, Queue, common::Provider, consumer::Consumer},
    controller::{
        Cloud, Context,
        driver::{error::Error, status::describe, watch},
        resources::storage_queue,
    },
    worker::config::StorageQueueSource,
};

fn invalid(consumer: &Consumer, message: String) -> Error {
    Error::InvalidSpec {
        object: describe(consumer),
        message,
    }
}

/// Fills `resolved` for a `queue` on azure, or says which reference is not ready.
pub fn resolve(
    consumer: &Consumer,
    queue: &Queue,
    stores: &watch::Stores,
    resolved: &mut Resolved,
) -> Result<(), Error> {
    let name = queue.name_any();
    let (Some(azure), Some(url)) = (
        queue.spec.azure.as_ref(),
        queue.status.as_ref().and_then(|s| s.observed.url.clone()),
    ) else {
        return Err(not_ready(
            consumer,
            format!("spec.source.queueRef: Queue {name} has no Storage Queue yet"),
        ));
    };
    let location = &azure.location;
    let key = location.account_key_secret_ref.clone().ok_or_else(|| {
        invalid(
            consumer,
            format!(
                "spec.source.queueRef: Queue {name} has no spec.azure.accountKeySecretRef: workers read \
                 Storage Queues with the account key (their Azure identity is not used for it yet)"
            ),
        )
    })?;
    resolved.storage_queue = Some(StorageQueueSource {
        queue_url: url,
        account: location.storage_account.clone(),
        visibility_timeout_seconds: azure.visibility_timeout_seconds.max(1),
        receivers: 4,
        wait_time_seconds: 20,
        max_receive_count: queue
            .spec
            .dead_letter
            .as_ref()
            .and_then(|d| u32::try_from(d.max_receive_count).ok()),
    });
    resolved
        .secret_env
        .push(("AZURE_STORAGE_KEY".into(), key.name, key.key));
    resolved.dead_letter_url = dead_letter(consumer, queue, &location.storage_account, stores)?;
    Ok(())
}

/// The URL of the dead letter of a Consumer of `queue` on azure (whose account is `account`): the
/// Consumer's `deadLetterRef`, else the Queue's `deadLetter.ref`; a Storage Queue in the same account.
fn dead_letter(
    consumer: &Consumer,
    queue: &Queue,
    account: &str,
    stores: &watch::Stores,
) -> Result<Option<String>, Error> {
    let name = queue.name_any();
    let (field, dead_letter_name) = match (&consumer.spec.dead_letter_ref, &queue.spec.dead_letter) {
        (Some(own), _) => ("spec.deadLetterRef", own.name.clone()),
        (None, Some(queue_dead_letter)) => (
            "spec.source.queueRef (the Queue's deadLetter.ref)",
            queue_dead_letter.target.name.clone(),
        ),
        (None, None) => return Ok(None),
    };
    let namespace = consumer.namespace().unwrap_or_default();
    let dead_letter = watch::get::<DeadLetter>(&stores.dead_letters, &namespace, &dead_letter_name)
        .ok_or_else(|| {
            not_ready(
                consumer,
                format!("{field}: DeadLetter {dead_letter_name} does not exist"),
            )
        })?;
    let same_account = dead_letter.spec.provider == Provider::Azure
        && dead_letter
            .spec
            .azure
            .as_ref()
            .is_some_and(|d| d.storage_account == account);
    if !same_account {
        return Err(invalid(
            consumer,
            format!(
                "{field}: DeadLetter {dead_letter_name} must be a Storage Queue in account {account} like Queue \
                 {name}: the workers dead-letter with the queue's account key"
            ),
        ));
    }
    let url = dead_letter
        .status
        .as_ref()
        .and_then(|s| s.observed.url.clone())
        .ok_or_else(|| {
            not_ready(
                consumer,
                format!("{field}: DeadLetter {dead_letter_name} has no Storage Queue yet"),
            )
        })?;
    Ok(Some(url))
}

/// The backlog of the Consumer's Storage Queue: its approximate message count, visible and hidden, and
/// `with_age`, the age of its oldest visible message (one more call: a peek).
pub async fn backlog<C: Cloud>(
    ctx: &Context<C>,
    consumer: &Consumer,
    with_age: bool,
) -> Result<(i64, Option<i64>), Error> {
    let namespace = consumer.namespace().unwrap_or_default();
    let queue = consumer
        .spec
        .source
        .queue_ref
        .as_ref()
        .and_then(|r| watch::get::<Queue>(&ctx.stores.queues, &namespace, &r.name));
    let gone = || not_ready(consumer, "spec.source.queueRef: the Queue is gone".to_owned());
    let queue = queue.ok_or_else(gone)?;
    let azure = queue.spec.azure.as_ref().ok_or_else(gone)?;
    let recorded = queue.status.as_ref().and_then(|s| s.observed.url.as_deref());
    storage_queue::depth_and_age(
        ctx,
        &*queue,
        &azure.location,
        &describe(consumer),
        recorded,
        with_age,
    )
    .await
    .map_err(|error| match error {
        // What the Queue lacks (its key Secret, a key in it) is named as the Queue's, not as a field
        // of the Consumer's.
        Error::DependencyNotReady { message, .. } | Error::InvalidSpec { message, .. } => not_ready(
            consumer,
            format!("spec.source.queueRef: Queue {}: {message}", queue.name_any()),
        ),
        other => other,
    })
}
