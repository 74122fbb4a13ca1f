//! Azure: [`AzureCloud`], the controllers' capabilities in one value (the traits of `cloud/traits.rs`);
//! Storage Queues (signed with the account key): managed (`storage_queues`) and their messages
//! ([`queue`], the message-queue contract), the Cosmos DB
//! container the device processor writes, and the Event Hubs Kafka endpoint it reads.

pub mod account;
pub mod arm;
mod cloud;
pub mod cosmos;
pub mod credential;
pub mod envelope;
pub mod error;
pub mod event_hubs;
pub mod kafka;
pub mod queue;
pub mod redrive;
pub mod storage_queues;
pub mod storage_sas;

pub use cloud::AzureCloud;
