//! The secrets a worker reads from its environment, and the clients of its sources and dead letters that
//! need one.

use anyhow::Context as _;

use super::config::{KafkaSource, WorkerConfig};
use crate::cloud::azure::{kafka::KafkaEndpoint, queue::StorageQueue, storage_queues::Account};

/// The secrets a worker may need, which its Consumer's Deployment gives it from Secrets (declared by
/// `tributary worker`, which reads them from the environment); each is required only by the sources and
/// sinks that use it.
#[derive(Clone, Default)]
pub struct Secrets {
    /// The storage account key of a Storage Queue source, dead letter or relay (`AZURE_STORAGE_KEY`).
    pub storage_key: Option<String>,
    /// The Cosmos DB account key of the device processor's sink (`AZURE_COSMOS_KEY`).
    pub cosmos_key: Option<String>,
    /// The Event Hubs connection string of a `SASL_SSL` Kafka source (`KAFKA_SASL_PASSWORD`).
    pub kafka_sasl_password: Option<String>,
}

/// The secret `value`, or an error saying `what` must be in the variable `name`.
pub(super) fn required(value: &Option<String>, name: &str, what: &str) -> anyhow::Result<String> {
    value.clone().with_context(|| format!("{what} must be in {name}"))
}

/// The Kafka endpoint of a device source, with the Event Hubs connection string when it signs in.
pub(super) fn kafka_endpoint(kafka: &KafkaSource, secrets: &Secrets) -> anyhow::Result<KafkaEndpoint> {
    let password = if kafka.security_protocol == "SASL_SSL" {
        required(
            &secrets.kafka_sasl_password,
            "KAFKA_SASL_PASSWORD",
            "source.kafka: the Event Hubs connection string",
        )?
    } else {
        String::new()
    };
    Ok(KafkaEndpoint {
        bootstrap_servers: kafka.bootstrap_servers.clone(),
        security_protocol: kafka.security_protocol.clone(),
        username: kafka.username.clone(),
        password,
        ca_file: kafka.ca_file.clone(),
    })
}

/// The device processor's dead-letter Storage Queue, signed with the storage account key.
pub(super) fn device_dead_letter(
    config: &WorkerConfig,
    secrets: &Secrets,
) -> anyhow::Result<Option<StorageQueue>> {
    let Some(target) = &config.dead_letter else {
        return Ok(None);
    };
    let account = Account {
        name: target
            .storage_account
            .clone()
            .context("deadLetter.storageAccount is required with a kafka source")?,
        key: required(
            &secrets.storage_key,
            "AZURE_STORAGE_KEY",
            "deadLetter: the storage account key",
        )?,
    };
    let url = url::Url::parse(&target.queue_url).context("deadLetter.queueUrl is not a URL")?;
    Ok(Some(StorageQueue::signed(url, &account).never_expiring()))
}
