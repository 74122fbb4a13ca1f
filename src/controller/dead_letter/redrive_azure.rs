//! Redrive of a DeadLetter on `azure`. A Storage Queue has no message-move task, so every redrive runs the
//! receive/send/delete rounds of [`redrive::fallback`] through [`StorageRedrive`]. The destinations come
//! from the watch caches and the referenced Secrets: `spec.redrive.destinationRef` (a Queue on azure), or
//! the place each message came from, as the worker recorded it in the reason: the Storage Queue of a
//! Queue whose dead letter this is or that a Consumer dead-lettering here drains, or the Event Hub of a
//! DeviceStream such a Consumer reads (the device processor then reads the event again).

use std::collections::{BTreeMap, BTreeSet};

use kube::ResourceExt;

use super::redrive::{self, Step};
use crate::controller::{
    Cloud, Context,
    driver::{error::Error, status::describe, watch},
    resources::{
        event_hub::{hub_name, stream_endpoint},
        storage_queue,
    },
};
use crate::{
    api::{
        Consumer, DeadLetter, DeviceStream, Queue,
        common::{Provider, StorageQueueLocation},
    },
    cloud::{
        HubProducers, StorageQueueAdmin as _, StorageQueueMessages,
        azure::redrive::{StorageRedrive, Target},
        redrive::Destination,
    },
};

/// A destination through the Azure capabilities of `C`.
type TargetOf<C> = Target<
    <<C as Cloud>::Azure as StorageQueueMessages>::Queue,
    <<C as Cloud>::Azure as HubProducers>::Producer,
>;

/// `lastRedrive.message` of a finished redrive on azure.
const HOW: &str = "moved by receive/send/delete: a Storage Queue has no message-move task";

fn not_ready(dead_letter: &DeadLetter, message: String) -> Error {
    Error::DependencyNotReady {
        object: describe(dead_letter),
        message,
    }
}

/// Advances the redrive of `dead_letter`, whose Storage Queue is `url` at `location`.
pub(crate) async fn step<C: Cloud>(
    ctx: &Context<C>,
    dead_letter: &DeadLetter,
    location: &StorageQueueLocation,
    url: &str,
) -> Result<Step, Error> {
    let request = match redrive::pending(dead_letter) {
        Ok((request, _)) => request.clone(),
        Err(settled) => return Ok(settled),
    };
    let object = describe(dead_letter);
    let namespace = dead_letter.namespace().unwrap_or_default();
    let account = storage_queue::account(ctx, dead_letter, location).await?;
    let name = storage_queue::queue_name(&namespace, &dead_letter.name_any(), location, Some(url));
    let dead_letter_queue = ctx
        .azure
        .storage_queue(&account, &name, None)
        .map_err(|source| Error::cloud(&object, source))?;

    let mut targets = BTreeMap::new();
    let destination = if let Some(target) = &request.destination_ref {
        let queue = watch::get::<Queue>(&ctx.stores.queues, &namespace, &target.name).ok_or_else(|| {
            not_ready(
                dead_letter,
                format!(
                    "spec.redrive.destinationRef: Queue {} does not exist",
                    target.name
                ),
            )
        })?;
        if queue.spec.provider != Provider::Azure {
            return Err(Error::InvalidSpec {
                object,
                message: format!(
                    "spec.redrive.destinationRef: Queue {} is not on azure; an azure dead letter redrives to \
                     Storage Queues",
                    target.name
                ),
            });
        }
        let (origin, target) = queue_target(ctx, &queue).await?;
        targets.insert(origin.clone(), target);
        Destination::Queue(origin)
    } else {
        for queue in source_queues(ctx, dead_letter) {
            let (origin, target) = queue_target(ctx, &queue).await?;
            targets.insert(origin, target);
        }
        for stream in source_streams(ctx, dead_letter) {
            let (origin, target) = hub_target(ctx, dead_letter, &stream).await?;
            targets.insert(origin, target);
        }
        let origins: BTreeMap<String, String> = targets.keys().map(|o| (o.clone(), o.clone())).collect();
        let default = match targets.keys().collect::<Vec<_>>()[..] {
            [only] => Some(only.clone()),
            _ => None,
        };
        Destination::Sources {
            by_arn: origins,
            default,
        }
    };
    let messages = StorageRedrive::new(dead_letter_queue, targets);
    // A Storage Queue counts hidden messages with the visible ones: the rounds tell them apart (what they
    // do not receive is hidden, e.g. by a controller killed between a round's receive and its delete).
    let total = ctx
        .azure
        .observe(&account, &name)
        .await
        .map_err(|source| Error::cloud(&describe(dead_letter), source))?
        .map_or(0, |o| o.messages);
    let from = redrive::DeadQueue {
        url,
        hidden: redrive::Hidden::InTotal(total),
    };
    redrive::fallback(ctx, dead_letter, &request, &messages, from, &destination, HOW).await
}

/// The azure Queues whose messages may be in `dead_letter`: those naming it as their dead letter, and
/// those drained by Consumers that dead-letter to it.
fn source_queues<C: Cloud>(ctx: &Context<C>, dead_letter: &DeadLetter) -> Vec<std::sync::Arc<Queue>> {
    let namespace = dead_letter.namespace().unwrap_or_default();
    let name = dead_letter.name_any();
    let drained: BTreeSet<String> = consumers_of(ctx, dead_letter)
        .iter()
        .filter_map(|c| Some(c.spec.source.queue_ref.as_ref()?.name.clone()))
        .collect();
    watch::in_namespace(&ctx.stores.queues, &namespace)
        .into_iter()
        .filter(|q| q.spec.provider == Provider::Azure)
        .filter(|q| {
            q.spec.dead_letter.as_ref().is_some_and(|d| d.target.name == name)
                || drained.contains(&q.name_any())
        })
        .collect()
}

/// The DeviceStreams read by Consumers that dead-letter to `dead_letter`.
fn source_streams<C: Cloud>(ctx: &Context<C>, dead_letter: &DeadLetter) -> Vec<std::sync::Arc<DeviceStream>> {
    let namespace = dead_letter.namespace().unwrap_or_default();
    let read: BTreeSet<String> = consumers_of(ctx, dead_letter)
        .iter()
        .filter_map(|c| Some(c.spec.source.device_stream_ref.as_ref()?.name.clone()))
        .collect();
    read.iter()
        .filter_map(|name| watch::get::<DeviceStream>(&ctx.stores.device_streams, &namespace, name))
        .collect()
}

fn consumers_of<C: Cloud>(ctx: &Context<C>, dead_letter: &DeadLetter) -> Vec<std::sync::Arc<Consumer>> {
    let name = dead_letter.name_any();
    watch::in_namespace(
        &ctx.stores.consumers,
        &dead_letter.namespace().unwrap_or_default(),
    )
    .into_iter()
    .filter(|c| c.spec.dead_letter_ref.as_ref().is_some_and(|r| r.name == name))
    .collect()
}

/// A Queue's Storage Queue as a destination: its URL (as workers record it) and a client signed with its
/// account key.
async fn queue_target<C: Cloud>(ctx: &Context<C>, queue: &Queue) -> Result<(String, TargetOf<C>), Error> {
    let object = describe(queue);
    let (Some(azure), Some(url)) = (
        queue.spec.azure.as_ref(),
        queue.status.as_ref().and_then(|s| s.observed.url.clone()),
    ) else {
        return Err(Error::DependencyNotReady {
            object,
            message: format!(
                "Queue {} has no Storage Queue yet: its messages cannot be sent back",
                queue.name_any()
            ),
        });
    };
    let account = storage_queue::account(ctx, queue, &azure.location).await?;
    let name = storage_queue::queue_name(
        &queue.namespace().unwrap_or_default(),
        &queue.name_any(),
        &azure.location,
        Some(&url),
    );
    let messages = ctx
        .azure
        .storage_queue(&account, &name, Some(azure.message_ttl_seconds))
        .map_err(|source| Error::cloud(&object, source))?;
    Ok((url, Target::Queue(messages)))
}

/// A DeviceStream's hub as a destination: `kafka://<endpoint>/<hub>` (as the device processor records it)
/// and a producer signed in with the stream's connection Secret.
async fn hub_target<C: Cloud>(
    ctx: &Context<C>,
    dead_letter: &DeadLetter,
    stream: &DeviceStream,
) -> Result<(String, TargetOf<C>), Error> {
    let status = stream.status.as_ref();
    let (Some(azure), Some(bootstrap), Some(secret)) = (
        stream.spec.azure.as_ref(),
        status.and_then(|s| s.kafka_endpoint.clone()),
        status.and_then(|s| s.connection_secret_name.clone()),
    ) else {
        return Err(not_ready(
            dead_letter,
            format!(
                "DeviceStream {} has no Kafka endpoint yet: its events cannot be sent back",
                stream.name_any()
            ),
        ));
    };
    let namespace = stream.namespace().unwrap_or_default();
    let topic = hub_name(stream, azure);
    let field = "the DeviceStream's connection Secret";
    let object = describe(dead_letter);
    let endpoint = stream_endpoint(ctx, &namespace, &object, field, &bootstrap, &secret).await?;
    let producer = ctx.azure.producer(&endpoint, &topic).map_err(|e| {
        not_ready(
            dead_letter,
            format!(
                "DeviceStream {}: the Kafka producer cannot be made: {e}",
                stream.name_any()
            ),
        )
    })?;
    let origin = format!("kafka://{bootstrap}/{topic}");
    Ok((origin, Target::Hub(producer)))
}
