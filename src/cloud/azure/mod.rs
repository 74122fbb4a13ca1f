//! Azure: credentials and request signing shared by the Storage Queue, Cosmos DB and Event Hubs clients,
//! and the storage queue a worker drains.

pub mod envelope;
pub mod error;
pub mod storage_queues;
pub mod storage_sas;
pub mod work_queue;
