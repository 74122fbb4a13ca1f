//! DeviceStream: an Event Hub, through Azure Resource Manager. validate: the `azure` block and where the
//! hub lives (the spec's subscription and group, or the controller's defaults) → build: the hub's
//! settings and its ownership mark → apply: the namespace (created on request; a namespace still
//! provisioning is looked at again soon), the hub (created, adopted or refused; partitions and retention
//! corrected when they drift), the consumer groups, and a Listen rule whose connection string goes into
//! the Secret `<name>-eventhub` that Consumers read → status: Kafka endpoint, partitions, Secret name.

use std::sync::Arc;

use k8s_openapi::{ByteString, api::core::v1::Secret, apimachinery::pkg::apis::meta::v1::ObjectMeta};
use kube::{Resource, ResourceExt};

use crate::{
    api::{
        common::{DeletionPolicy, Provider, Tags},
        device_stream::{DeviceStream, DeviceStreamAzure, DeviceStreamStatus},
    },
    cloud::{
        EventHubsAdmin,
        azure::{
            arm::Provisioned,
            event_hubs::{HubAddress, HubSettings, kafka_endpoint, partitions_cannot_shrink},
        },
    },
    controller::{
        Cloud, Context,
        driver::{
            children::apply_child,
            error::Error,
            events::{self, reasons},
            ownership::{Owner, Ownership, desired_tags, lost, ownership, ownership_tags, refusal},
            reconcile::{Applied, Reconciler},
            status::{Kind as _, describe},
            tenancy::{self, Effective},
        },
        resources::event_hub::hub_name,
    },
};

/// The defaults of the spec's optional fields. Set only when the controller has Resource Manager access
/// (the calls themselves are the [`EventHubsAdmin`] of the context's Azure).
#[derive(Clone, Debug, Default)]
pub struct EventHubsConfig {
    /// Subscription used when `spec.azure.subscriptionId` is not set.
    pub subscription: Option<String>,
    /// Resource group used when `spec.azure.resourceGroup` is not set.
    pub resource_group: Option<String>,
    /// The Kafka endpoint written to status and the Secret instead of `<namespace>.servicebus.windows.net:9093`
    /// (for an emulator).
    pub kafka_endpoint: Option<String>,
    /// CA bundle for that endpoint when it is not in the system's trust store (an emulator's); the
    /// controller reads consumer lag with it, and device workers are configured with the same path.
    pub kafka_ca_file: Option<String>,
}

/// The name of the Secret with the connection information.
pub fn secret_name(stream: &str) -> String {
    format!("{stream}-eventhub")
}

/// The ownership mark kept in a hub's `userMetadata`: the ownership tags as JSON.
pub fn mark(owner: &Owner<'_>) -> String {
    serde_json::to_string(&ownership_tags(owner)).unwrap_or_default()
}

fn tags_of_mark(mark: Option<&str>) -> Tags {
    mark.and_then(|m| serde_json::from_str(m).ok())
        .unwrap_or_default()
}

/// The validate step: the `azure` block, the controller's access, the hub's address and, with a
/// `policy`, that the namespace may use its subscription and resource group.
fn validate<'a>(
    stream: &'a DeviceStream,
    config: Option<&'a EventHubsConfig>,
    policy: Option<&Effective>,
) -> Result<(&'a DeviceStreamAzure, &'a EventHubsConfig, HubAddress), Error> {
    let object = describe(stream);
    let invalid = |message: &str| Error::InvalidSpec {
        object: object.clone(),
        message: message.to_owned(),
    };
    let azure = stream
        .spec
        .azure
        .as_ref()
        .ok_or_else(|| invalid("spec.azure is required"))?;
    let config = config.ok_or_else(|| Error::DependencyNotReady {
        object: object.clone(),
        message: "the controller has no Azure Resource Manager access configured \
                  (AZURE_SUBSCRIPTION_ID and an Azure identity, see the README)"
            .to_owned(),
    })?;
    let subscription = azure
        .subscription_id
        .clone()
        .or_else(|| config.subscription.clone())
        .ok_or_else(|| {
            invalid("spec.azure.subscriptionId is required: the controller has no default subscription")
        })?;
    let resource_group = azure
        .resource_group
        .clone()
        .or_else(|| config.resource_group.clone())
        .ok_or_else(|| {
            invalid("spec.azure.resourceGroup is required: the controller has no default resource group")
        })?;
    if let Some(policy) = policy {
        let defaults = (config.subscription.as_deref(), config.resource_group.as_deref());
        policy.check_azure(&object, &subscription, &resource_group, defaults)?;
        policy.check_adoption(&object, stream.spec.lifecycle.adopt)?;
    }
    let address = HubAddress {
        subscription,
        resource_group,
        namespace: azure.namespace.clone(),
        hub: hub_name(stream, azure),
    };
    Ok((azure, config, address))
}

/// A resource still being provisioned: not ready, and looked at again soon (the dependency retry).
fn provisioning(object: &str, what: String) -> Error {
    Error::DependencyNotReady {
        object: object.to_owned(),
        message: format!("{what}: Resource Manager is still provisioning it"),
    }
}

/// The Event Hubs namespace: there and provisioned, or created on request (`spec.azure.createNamespace`).
async fn ensure_namespace<C: Cloud>(
    ctx: &Context<C>,
    stream: &DeviceStream,
    azure: &DeviceStreamAzure,
    hubs: &C::Azure,
    address: &HubAddress,
) -> Result<(), Error> {
    let object = describe(stream);
    let err = |source| Error::cloud(&object, source);
    match hubs.namespace_state(address).await.map_err(err)? {
        None if azure.create_namespace => {
            let location = azure.location.as_deref().ok_or_else(|| Error::InvalidSpec {
                object: object.clone(),
                message: "spec.azure.location is required to create the namespace".to_owned(),
            })?;
            let ours = ctx.owner(DeviceStream::KIND, stream);
            let tags = desired_tags(&ours, &stream.spec.lifecycle.tags);
            let created = hubs
                .create_namespace(address, location, &tags)
                .await
                .map_err(err)?;
            let note = format!("created Event Hubs namespace {} in {location}", address.namespace);
            events::normal(&ctx.recorder, stream, reasons::CREATED, note).await;
            if let Provisioned::Pending { state } = created {
                return Err(provisioning(
                    &object,
                    format!("namespace {} is {state}", address.namespace),
                ));
            }
        }
        None => {
            return Err(Error::DependencyNotReady {
                object,
                message: format!(
                    "Event Hubs namespace {} does not exist in resource group {}; create it or set \
                     spec.azure.createNamespace",
                    address.namespace, address.resource_group
                ),
            });
        }
        Some(state) if !matches!(state.as_str(), "Succeeded" | "Active") => {
            return Err(provisioning(
                &object,
                format!("namespace {} is {state}", address.namespace),
            ));
        }
        Some(_) => {}
    }
    Ok(())
}

/// The hub with `settings`: created, adopted (or refused when it is not ours), marked with this cluster's
/// identity, or its partitions and retention corrected when they drifted. What Resource Manager answered
/// to the write, `None` when nothing was written.
async fn ensure_hub<C: Cloud>(
    ctx: &Context<C>,
    stream: &DeviceStream,
    hubs: &C::Azure,
    address: &HubAddress,
    settings: &HubSettings,
) -> Result<Option<Provisioned>, Error> {
    let object = describe(stream);
    let err = |source| Error::cloud(&object, source);
    let (recorder, owner, desired, at) = (&ctx.recorder, stream, settings, address);
    let put = move |reason: &'static str, note: String| async move {
        let done = hubs.put_hub(at, desired).await;
        if done.is_ok() {
            events::normal(recorder, owner, reason, note).await;
        }
        done
    };
    let Some(hub) = hubs.hub(address).await.map_err(err)? else {
        let note = format!(
            "created Event Hub {} with {} partitions",
            address.hub, settings.partitions
        );
        return Ok(Some(put(reasons::CREATED, note).await.map_err(err)?));
    };
    let ours = ctx.owner(DeviceStream::KIND, stream);
    let found = ownership(
        &tags_of_mark(hub.mark.as_deref()),
        &ours,
        stream.spec.lifecycle.adopt,
    );
    let resource = format!("Event Hub {}", address.hub);
    if let Some(refused) = refusal(&object, &resource, &found) {
        return Err(refused);
    }
    check_partitions(address, hub.partitions, settings.partitions).map_err(err)?;
    let drifted = hub.partitions != settings.partitions
        || hub.retention_hours != Some(i64::from(settings.retention_hours));
    let (reason, note) = match found {
        Ownership::Adopt => (
            reasons::ADOPTED,
            format!("adopted the existing Event Hub {}", address.hub),
        ),
        Ownership::Legacy => (
            reasons::UPDATED,
            format!("marked Event Hub {} with this cluster's identity", address.hub),
        ),
        _ if drifted => (
            reasons::DRIFT_CORRECTED,
            format!(
                "Event Hub {}: {} partitions and {:?} h retention corrected to {} and {}",
                address.hub,
                hub.partitions,
                hub.retention_hours,
                settings.partitions,
                settings.retention_hours
            ),
        ),
        _ => return Ok(None),
    };
    Ok(Some(put(reason, note).await.map_err(err)?))
}

/// The consumer groups: the listed ones are created; others (made outside) are left alone.
async fn ensure_consumer_groups<C: Cloud>(
    ctx: &Context<C>,
    stream: &DeviceStream,
    azure: &DeviceStreamAzure,
    hubs: &C::Azure,
    address: &HubAddress,
) -> Result<(), Error> {
    let object = describe(stream);
    let err = |source| Error::cloud(&object, source);
    let existing = hubs.consumer_groups(address).await.map_err(err)?;
    for group in azure.consumer_groups.iter().filter(|g| !existing.contains(g)) {
        hubs.create_consumer_group(address, group).await.map_err(err)?;
        let note = format!("created consumer group {group} on Event Hub {}", address.hub);
        events::normal(&ctx.recorder, stream, reasons::CREATED, note).await;
    }
    Ok(())
}

impl<C: Cloud> Reconciler<C> for DeviceStream {
    fn supports(provider: Provider) -> bool {
        provider == Provider::Azure
    }

    async fn apply(stream: Arc<Self>, ctx: Arc<Context<C>>) -> Result<Applied<DeviceStreamStatus>, Error> {
        let object = describe(&*stream);
        let err = |source| Error::cloud(&object, source);
        let (namespace, name) = (stream.namespace().unwrap_or_default(), stream.name_any());
        let policy = tenancy::load(&ctx.client, &ctx.stores.policies, &object, &namespace).await?;
        let (azure, config, address) = validate(&stream, ctx.config.event_hubs.as_ref(), Some(&policy))?;
        let hubs = &ctx.azure;
        ensure_namespace(&ctx, &stream, azure, hubs, &address).await?;

        let settings = HubSettings {
            partitions: azure.partitions,
            retention_hours: azure.retention_hours,
            mark: mark(&ctx.owner(DeviceStream::KIND, &*stream)),
        };
        if let Some(Provisioned::Pending { state }) =
            ensure_hub(&ctx, &stream, hubs, &address, &settings).await?
        {
            return Err(provisioning(
                &object,
                format!("Event Hub {} is {state}", address.hub),
            ));
        }
        let hub = hubs
            .hub(&address)
            .await
            .map_err(err)?
            .ok_or_else(|| Error::DependencyNotReady {
                object: object.clone(),
                message: format!("Event Hub {} is not visible yet", address.hub),
            })?;
        ensure_consumer_groups(&ctx, &stream, azure, hubs, &address).await?;

        // The connection Secret.
        let endpoint = config
            .kafka_endpoint
            .clone()
            .unwrap_or_else(|| kafka_endpoint(&address.namespace));
        let connection = hubs.listen_connection_string(&address).await.map_err(err)?;
        let secret = connection_secret(&stream, &endpoint, &address.hub, &connection);
        apply_child(&ctx, &object, &namespace, &secret).await?;

        Ok(Applied {
            status: DeviceStreamStatus {
                kafka_endpoint: Some(endpoint),
                partitions: Some(hub.partitions),
                connection_secret_name: Some(secret_name(&name)),
                hub_name: Some(address.hub.clone()),
                ..DeviceStreamStatus::default()
            },
            message: format!("Event Hub {} with {} partitions", address.hub, hub.partitions),
            requeue: None,
            not_ready: None,
        })
    }

    async fn cleanup(stream: Arc<Self>, ctx: Arc<Context<C>>) -> Result<(), Error> {
        if stream.spec.lifecycle.deletion_policy == DeletionPolicy::Retain {
            let note = "deletionPolicy is Retain: the Event Hub is kept".to_owned();
            events::normal(&ctx.recorder, &*stream, reasons::RETAINED, note).await;
            return Ok(());
        }
        let object = describe(&*stream);
        let err = |source| Error::cloud(&object, source);
        let (_, _, address) = match validate(&stream, ctx.config.event_hubs.as_ref(), None) {
            Ok(found) => found,
            // Without access nothing can be deleted; the object must not hang in deletion for that.
            Err(Error::InvalidSpec { .. } | Error::DependencyNotReady { .. }) => {
                let note = "no Azure Resource Manager access: the Event Hub is left in place".to_owned();
                events::warning(&ctx.recorder, &*stream, reasons::RETAINED, note).await;
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        let Some(hub) = ctx.azure.hub(&address).await.map_err(err)? else {
            return Ok(());
        };
        let marks = tags_of_mark(hub.mark.as_deref());
        let resource = format!("Event Hub {}", address.hub);
        if let Some(note) = lost(&resource, &marks, &ctx.owner(DeviceStream::KIND, &*stream)) {
            events::warning(&ctx.recorder, &*stream, reasons::OWNERSHIP_LOST, note).await;
            return Ok(());
        }
        if !ctx.azure.delete_hub(&address).await.map_err(err)? {
            return Err(Error::cloud(
                &object,
                crate::cloud::Error::Response {
                    operation: crate::cloud::Operation::new("arm", "Delete", address.hub_id()),
                    detail: "the deletion is still running".to_owned(),
                },
            ));
        }
        let note = format!("deleted Event Hub {}", address.hub);
        events::normal(&ctx.recorder, &*stream, reasons::DELETED, note).await;
        Ok(())
    }
}

fn check_partitions(at: &HubAddress, have: i32, want: i32) -> Result<(), crate::cloud::Error> {
    if have > want {
        return Err(partitions_cannot_shrink(at, have, want));
    }
    Ok(())
}

/// The Secret Consumers read: `bootstrapServers`, `topic`, `saslUsername` and `connectionString` (the
/// SASL password), owned by the DeviceStream.
pub fn connection_secret(stream: &DeviceStream, endpoint: &str, hub: &str, connection: &str) -> Secret {
    let data = [
        ("bootstrapServers", endpoint),
        ("topic", hub),
        ("saslUsername", crate::cloud::azure::kafka::EVENT_HUBS_USERNAME),
        ("connectionString", connection),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), ByteString(v.as_bytes().to_vec())))
    .collect();
    Secret {
        metadata: ObjectMeta {
            name: Some(secret_name(&stream.name_any())),
            namespace: stream.namespace(),
            owner_references: stream.controller_owner_ref(&()).map(|o| vec![o]),
            labels: Some([("app.kubernetes.io/managed-by".to_owned(), "tributary".to_owned())].into()),
            ..ObjectMeta::default()
        },
        data: Some(data),
        type_: Some("Opaque".to_owned()),
        ..Secret::default()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_mark_reads_back_as_ownership() {
        let owner = Owner {
            cluster: "c1",
            kind: "DeviceStream",
            namespace: "plant",
            name: "telemetry",
        };
        let tags = tags_of_mark(Some(&mark(&owner)));
        assert_eq!(ownership(&tags, &owner, false), Ownership::Ours);
        let other = Owner {
            name: "other",
            ..owner
        };
        assert!(matches!(
            ownership(&tags, &other, true),
            Ownership::OwnedByAnother(_)
        ));
        assert_eq!(tags_of_mark(Some("free text a user wrote")), Tags::new());
    }

    #[test]
    fn the_secret_is_owned_and_holds_the_kafka_settings() {
        let mut stream = DeviceStream::new("telemetry", Default::default());
        stream.metadata.namespace = Some("plant".into());
        stream.metadata.uid = Some("u-1".into());
        let secret = connection_secret(
            &stream,
            "ns.servicebus.windows.net:9093",
            "plant-telemetry",
            "Endpoint=sb://x/",
        );
        assert_eq!(secret.metadata.name.as_deref(), Some("telemetry-eventhub"));
        assert_eq!(secret.metadata.owner_references.unwrap()[0].uid, "u-1");
        let data = secret.data.unwrap();
        assert_eq!(data["bootstrapServers"].0, b"ns.servicebus.windows.net:9093");
        assert_eq!(data["saslUsername"].0, b"$ConnectionString");
        assert_eq!(data["connectionString"].0, b"Endpoint=sb://x/");
    }
}
