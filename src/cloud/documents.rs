//! The document-store capability the device processor needs of Cosmos DB: upsert a JSON document by id
//! in a partition, and read one back. Narrow on purpose, so the processor's decisions (what is written,
//! what is dead-lettered, what is retried) are unit-tested against the in-memory
//! [`crate::cloud::fake::FakeDocuments`]; the real [`crate::cloud::azure::cosmos::CosmosContainer`] is
//! tested against cosmium in the integration tests.

use std::future::Future;

use super::Result;

/// A container of JSON documents, each named by an id within a partition key.
pub trait Documents: Send + Sync {
    /// Writes `body` as the document `id` in partition `partition_key`, replacing any earlier version
    /// (so writing the same document twice has the effect of writing it once). A refusal of the document
    /// itself is a [`crate::cloud::Error::Service`] with `status` 400 or 413.
    fn upsert(
        &self,
        partition_key: &str,
        id: &str,
        body: &serde_json::Value,
    ) -> impl Future<Output = Result<()>> + Send;

    /// Reads the document `id`, or `None` when there is none.
    fn read(
        &self,
        partition_key: &str,
        id: &str,
    ) -> impl Future<Output = Result<Option<serde_json::Value>>> + Send;
}
