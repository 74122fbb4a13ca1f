//! Cloud provider plumbing: the capability traits the controllers call ([`traits`]), the classified
//! error every implementation returns ([`Error`], [`ErrorKind`]), and one module per provider. The AWS
//! implementation ([`aws::AwsCloud`]) provides topics, queues, subscriptions, queue messages and Order
//! tables (whose items the DynamoDB client reads through [`TableItems`]); the Azure one
//! ([`azure::AzureCloud`]) Event Hubs, Storage Queues, consumer lag and hub producers; [`fake`] holds
//! in-memory fakes of both ([`fake::FakeAws`], [`fake::FakeAzure`]). [`queue`] is the message-queue contract
//! the worker runtime and the redrive share, implemented once per cloud (and in memory in [`fake`]);
//! [`redrive`] is the provider-neutral fallback for moving dead-lettered messages.

pub mod aws;
pub mod azure;
pub mod documents;
mod error;
pub mod fake;
pub mod names;
pub mod queue;
pub mod redrive;
pub mod traits;

pub use documents::Documents;
pub use error::{Error, ErrorKind, Operation, Result};
pub use queue::MessageQueue;
#[cfg(test)]
pub(crate) use traits::attributes_of;
pub use traits::{
    Attributes, ConsumerLag, EventHubsAdmin, HubProducer, HubProducers, QueueMessages, Queues,
    StorageQueueAdmin, StorageQueueMessages, Subscriptions, TableItem, TableItems, TableValue, Tables, Tags,
    Topics,
};
