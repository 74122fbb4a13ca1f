//! Cloud provider plumbing: the capability traits the controllers call ([`traits`]), the classified
//! error every implementation returns ([`Error`], [`ErrorKind`]), and one module per provider. The AWS
//! implementation ([`aws::AwsCloud`]) provides topics, queues, subscriptions and queue messages; the
//! Azure module holds what every Azure data-plane client needs. [`queue`] is the message-queue contract
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
pub use traits::{Attributes, QueueMessages, Queues, Subscriptions, Tables, Tags, Topics};
