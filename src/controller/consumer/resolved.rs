//! What the resolve step of the Consumer reconciler finds in the watch caches (no network), which the
//! build step (`render`) turns into the worker configuration; and the error of a reference that is not
//! ready yet. The source-specific resolvers (`storage_queue`, `device`) fill it; this module imports
//! none of them, so none of them depends on another.

use crate::{
    api::Consumer,
    controller::driver::{error::Error, status::describe},
    worker::config::{CosmosSink, StorageQueueSource},
};

/// The references of a Consumer, resolved from the watch caches.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Resolved {
    /// The source queue: URL and visibility timeout.
    pub queue: Option<(String, i32)>,
    /// The source Storage Queue.
    pub storage_queue: Option<StorageQueueSource>,
    /// The DeadLetter's queue URL.
    pub dead_letter_url: Option<String>,
    /// The sink Topic's ARN.
    pub topic_arn: Option<String>,
    /// The Order table.
    pub table: Option<String>,
    /// The DeviceStream source.
    pub stream: Option<StreamSource>,
    /// The Cosmos DB sink of the device processor.
    pub cosmos: Option<CosmosSink>,
    /// The storage account of a Storage Queue dead letter.
    pub dead_letter_account: Option<String>,
    /// Environment from Secrets: variable, Secret, key (connection strings and account keys).
    pub secret_env: Vec<(String, String, String)>,
    /// The CA bundle of the Kafka endpoint, when it is not the system's (an emulator's).
    pub kafka_ca_file: Option<String>,
}

/// The stream a device Consumer reads, resolved.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StreamSource {
    /// Kafka bootstrap endpoint.
    pub bootstrap: String,
    /// The hub: the Kafka topic.
    pub topic: String,
    /// Consumer group.
    pub group: String,
    /// The DeviceStream's connection Secret.
    pub secret: String,
    /// Partitions: the most replicas that can read at once.
    pub partitions: i32,
}

/// A reference of `consumer` that is not ready yet: `message` says which and why.
pub(crate) fn not_ready(consumer: &Consumer, message: String) -> Error {
    Error::DependencyNotReady {
        object: describe(consumer),
        message,
    }
}
