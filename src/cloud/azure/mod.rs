//! Azure: credentials and request signing shared by the Storage Queue, Cosmos DB and Event Hubs clients.

pub mod storage_sas;
