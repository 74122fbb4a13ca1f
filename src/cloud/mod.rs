//! Cloud provider plumbing: the capability traits the controllers call ([`traits`]), the classified
//! error every implementation returns ([`Error`], [`ErrorKind`]), and one module per provider. The AWS
//! implementation ([`aws::AwsCloud`]) provides topics, queues, subscriptions and queue messages; the
//! Azure module holds what every Azure data-plane client needs. [`redrive`] is the provider-neutral
//! fallback for moving dead-lettered messages; [`work_queue`] is what a worker needs of a queue.

pub mod aws;
pub mod azure;
mod error;
pub mod names;
pub mod redrive;
pub mod traits;
pub mod work_queue;

pub use error::{Error, ErrorKind, Operation, Result};
#[cfg(test)]
pub(crate) use traits::attributes_of;
pub use traits::{Attributes, QueueMessages, Queues, Subscriptions, Tables, Tags, Topics};
