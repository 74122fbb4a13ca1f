//! Consumers of a DeviceStream (the device processor). resolve, from the watch caches: the stream's
//! Kafka endpoint, hub, partitions and connection Secret, the consumer group (it must exist on the
//! stream), the Cosmos DB sink and its key, and the dead letter's storage account and key; the secrets
//! reach the workers as environment from their Secrets, never through the ConfigMap. apply: the group's
//! lag, the backlog the replicas are scaled on (capped at the partition count).

use kube::ResourceExt;

use super::resolved::{Resolved, StreamSource, not_ready};
use crate::{
    api::{Consumer, DeadLetter, DeviceStream, consumer::Scaling},
    cloud::ConsumerLag,
    controller::{
        Cloud, Context,
        driver::{error::Error, status::describe, watch},
        resources::event_hub::{hub_name, stream_endpoint},
    },
    worker::config::CosmosSink,
};

/// The replica bounds of a Consumer: a stream's readers are capped at its partitions, since more than
/// one reader per partition in a group would sit idle.
pub fn bounds(scaling: &Scaling, stream: Option<&StreamSource>) -> Scaling {
    let mut bounds = scaling.clone();
    if let Some(stream) = stream {
        bounds.max_replicas = bounds.max_replicas.min(stream.partitions.max(1));
        bounds.min_replicas = bounds.min_replicas.min(bounds.max_replicas);
    }
    bounds
}

/// Fills `resolved` with what a DeviceStream source needs, or says which reference is not ready.
pub fn resolve(consumer: &Consumer, stores: &watch::Stores, resolved: &mut Resolved) -> Result<(), Error> {
    let Some(source) = &consumer.spec.source.device_stream_ref else {
        return Ok(());
    };
    let namespace = consumer.namespace().unwrap_or_default();
    let stream = watch::get::<DeviceStream>(&stores.device_streams, &namespace, &source.name);
    let message = || {
        format!(
            "spec.source.deviceStreamRef: DeviceStream {} does not exist or is not ready yet",
            source.name
        )
    };
    let stream = stream.ok_or_else(|| not_ready(consumer, message()))?;
    let status = stream
        .status
        .as_ref()
        .ok_or_else(|| not_ready(consumer, message()))?;
    let (Some(bootstrap), Some(secret), Some(partitions), Some(azure)) = (
        status.kafka_endpoint.clone(),
        status.connection_secret_name.clone(),
        status.partitions,
        stream.spec.azure.as_ref(),
    ) else {
        return Err(not_ready(consumer, message()));
    };
    resolved.stream = Some(StreamSource {
        bootstrap,
        topic: hub_name(&stream, azure),
        group: source.consumer_group.clone(),
        secret: secret.clone(),
        partitions,
    });
    resolved
        .secret_env
        .push(("KAFKA_SASL_PASSWORD".into(), secret, "connectionString".into()));
    resolve_cosmos(consumer, resolved)?;
    resolve_dead_letter(consumer, stores, resolved)
}

/// The Cosmos DB sink of the device processor, and its key as environment from its Secret.
fn resolve_cosmos(consumer: &Consumer, resolved: &mut Resolved) -> Result<(), Error> {
    if let Some(cosmos) = consumer.spec.sink.as_ref().and_then(|s| s.cosmos.as_ref()) {
        let key = cosmos.key_secret_ref.as_ref().ok_or_else(|| Error::InvalidSpec {
            object: describe(consumer),
            message:
                "spec.sink.cosmos.keySecretRef is required: workers write Cosmos DB with the account key \
                      (their Azure identity is not used for it yet)"
                    .to_owned(),
        })?;
        resolved.cosmos = Some(CosmosSink {
            endpoint: cosmos.endpoint.clone(),
            database: cosmos.database.clone(),
            container: cosmos.container.clone(),
            partition_key_path: cosmos.partition_key_path.clone(),
            create_if_missing: cosmos.create_if_missing,
            preferred_region: "East US".to_owned(),
        });
        resolved
            .secret_env
            .push(("AZURE_COSMOS_KEY".into(), key.name.clone(), key.key.clone()));
    }
    Ok(())
}

/// The Storage Queue dead letter of a device Consumer: its account, and the account key as environment
/// from its Secret.
fn resolve_dead_letter(
    consumer: &Consumer,
    stores: &watch::Stores,
    resolved: &mut Resolved,
) -> Result<(), Error> {
    let namespace = consumer.namespace().unwrap_or_default();
    if let Some(dead_letter_ref) = &consumer.spec.dead_letter_ref {
        // Its provider was checked with the other cross-object rules (`references::validate`); one that does
        // not exist yet is waited for.
        let name = &dead_letter_ref.name;
        let location = watch::get::<DeadLetter>(&stores.dead_letters, &namespace, name)
            .and_then(|d| d.spec.azure.clone())
            .ok_or_else(|| {
                not_ready(
                    consumer,
                    format!("spec.deadLetterRef: DeadLetter {name} does not exist"),
                )
            })?;
        let key = location.account_key_secret_ref.clone().ok_or_else(|| {
            not_ready(
                consumer,
                format!("DeadLetter {} has no accountKeySecretRef", dead_letter_ref.name),
            )
        })?;
        resolved.dead_letter_account = Some(location.storage_account.clone());
        resolved
            .secret_env
            .push(("AZURE_STORAGE_KEY".into(), key.name, key.key));
    }
    Ok(())
}

/// The group's lag on the stream: the connection string from the stream's Secret, the offsets from the
/// broker ([`ConsumerLag`]).
pub async fn lag<C: Cloud>(
    ctx: &Context<C>,
    consumer: &Consumer,
    source: &StreamSource,
) -> Result<i64, Error> {
    let object = describe(consumer);
    let namespace = consumer.namespace().unwrap_or_default();
    let field = "spec.source.deviceStreamRef (the DeviceStream's connection Secret)";
    let endpoint =
        stream_endpoint(ctx, &namespace, &object, field, &source.bootstrap, &source.secret).await?;
    let lag = ctx
        .azure
        .lag(&endpoint, &source.topic, &source.group)
        .await
        .map_err(|e| Error::cloud(&object, e))?;
    Ok(lag.total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_readers_are_capped_at_the_partitions() {
        let scaling = Scaling {
            min_replicas: 6,
            max_replicas: 20,
            ..Scaling::default()
        };
        let stream = StreamSource {
            partitions: 4,
            ..StreamSource::default()
        };
        let capped = bounds(&scaling, Some(&stream));
        assert_eq!((capped.min_replicas, capped.max_replicas), (4, 4));
        assert_eq!(bounds(&scaling, None), scaling, "a queue source keeps its bounds");
    }
}
