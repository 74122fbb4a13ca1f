//! A DeviceStream's Event Hub as its readers see it, shared by the DeviceStream (which names the hub),
//! the Consumers that read it and the DeadLetter redrive that sends events back to it: the hub's name and
//! its Kafka endpoint, signed in with the connection string in the stream's Secret.

use kube::ResourceExt;

use crate::{
    api::{
        common::SecretKeyRef,
        device_stream::{DeviceStream, DeviceStreamAzure},
    },
    cloud::azure::kafka::{self, KafkaEndpoint},
    controller::{
        Cloud, Context,
        driver::{error::Error, secrets},
    },
};

/// The hub name: `spec.azure.hubName`, else the name recorded in status, else (a hub made before names
/// were recorded, which has partitions in status) the old default `<namespace>-<name>`, else
/// `<namespace>_<name>` ([`crate::cloud::names::separated`]; `_` is legal in hub names and not in
/// Kubernetes names, so no two objects share it).
pub fn hub_name(stream: &DeviceStream, azure: &DeviceStreamAzure) -> String {
    let (namespace, name) = (stream.namespace().unwrap_or_default(), stream.name_any());
    let status = stream.status.as_ref();
    if let Some(hub) = azure.hub_name.clone().or_else(|| status?.hub_name.clone()) {
        return hub;
    }
    if status.is_some_and(|s| s.partitions.is_some()) {
        return format!("{namespace}-{name}");
    }
    crate::cloud::names::separated(&namespace, &name, "", EVENT_HUB_NAME_LIMIT)
}

/// Event Hubs' limit on hub names.
const EVENT_HUB_NAME_LIMIT: usize = 256;

/// A DeviceStream's Kafka endpoint at `bootstrap`, signed in with the connection string in its Secret
/// `secret` (read for `object`; `field` names the reference in errors).
pub async fn stream_endpoint<C: Cloud>(
    ctx: &Context<C>,
    namespace: &str,
    object: &str,
    field: &str,
    bootstrap: &str,
    secret: &str,
) -> Result<KafkaEndpoint, Error> {
    let key_ref = SecretKeyRef {
        name: secret.to_owned(),
        key: "connectionString".to_owned(),
    };
    let password = secrets::read_key(&ctx.client, namespace, object, field, &key_ref).await?;
    Ok(KafkaEndpoint {
        bootstrap_servers: bootstrap.to_owned(),
        security_protocol: "SASL_SSL".to_owned(),
        username: kafka::EVENT_HUBS_USERNAME.to_owned(),
        password,
        ca_file: ctx
            .config
            .event_hubs
            .as_ref()
            .and_then(|e| e.kafka_ca_file.clone()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::device_stream::DeviceStreamStatus;

    #[test]
    fn hub_names_are_separated_unless_recorded() {
        let azure = DeviceStreamAzure::default();
        let mut stream = DeviceStream::new("telemetry", Default::default());
        stream.metadata.namespace = Some("plant".into());
        assert_eq!(hub_name(&stream, &azure), "plant_telemetry");
        // A hub made before names were recorded keeps the old default.
        stream.status = Some(DeviceStreamStatus {
            partitions: Some(4),
            ..DeviceStreamStatus::default()
        });
        assert_eq!(hub_name(&stream, &azure), "plant-telemetry");
        stream.status = Some(DeviceStreamStatus {
            hub_name: Some("recorded".into()),
            ..DeviceStreamStatus::default()
        });
        assert_eq!(hub_name(&stream, &azure), "recorded");
    }
}
