//! The apply steps of a DeviceStream against [`EventHubsAdmin`]: the namespace (created on request; one
//! still provisioning is looked at again soon), the hub (created, adopted or refused; partitions and
//! retention corrected when they drift, never shrunk) and its consumer groups.

use super::tags_of_mark;
use crate::{
    api::device_stream::{DeviceStream, DeviceStreamAzure},
    cloud::{
        EventHubsAdmin,
        azure::{
            arm::Provisioned,
            event_hubs::{HubAddress, HubSettings},
        },
    },
    controller::{
        Cloud, Context,
        driver::{
            error::Error,
            events::{self, reasons},
            ownership::{Ownership, desired_tags, ownership, refusal},
            status::{Kind as _, describe},
        },
    },
};

/// A resource still being provisioned: not ready, and looked at again soon (the dependency retry).
pub(super) fn provisioning(object: &str, what: String) -> Error {
    Error::DependencyNotReady {
        object: object.to_owned(),
        message: format!("{what}: Resource Manager is still provisioning it"),
    }
}

/// The Event Hubs namespace: there and provisioned, or created on request (`spec.azure.createNamespace`).
pub(super) async fn ensure_namespace<C: Cloud>(
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
pub(super) async fn ensure_hub<C: Cloud>(
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
    check_partitions(&object, address, hub.partitions, settings.partitions)?;
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
pub(super) async fn ensure_consumer_groups<C: Cloud>(
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

/// Event Hubs never removes partitions: a hub with more than the spec asks for (grown outside, or
/// adopted) can only be matched by raising `spec.azure.partitions`.
fn check_partitions(object: &str, at: &HubAddress, have: i32, want: i32) -> Result<(), Error> {
    if have > want {
        return Err(Error::InvalidSpec {
            object: object.to_owned(),
            message: format!(
                "spec.azure.partitions: Event Hub {} has {have} partitions and Event Hubs cannot reduce them \
                 to {want}; set at least {have}",
                at.hub
            ),
        });
    }
    Ok(())
}
