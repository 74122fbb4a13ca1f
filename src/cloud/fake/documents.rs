//! The document-store capability in memory, for fast tests of the device processor: [`FakeDocuments`]
//! keeps documents by (partition key, id) with upsert's replace semantics, counts writes, and fails on
//! request as Cosmos DB does: a refused document (400), an unavailable service (503), one that does not answer
//! at all, or a number of failing writes.

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::{Arc, Mutex, PoisonError},
};

use serde_json::Value;

use crate::cloud::{Documents, Error, ErrorKind, Operation, Result};

/// A container in memory. Clones share the documents.
#[derive(Clone, Debug, Default)]
pub struct FakeDocuments {
    state: Arc<Mutex<State>>,
}

#[derive(Debug, Default)]
struct State {
    documents: BTreeMap<(String, String), Value>,
    writes: u64,
    /// Writes that fail transiently before the next one succeeds.
    failing: u64,
    /// Every write fails transiently while set.
    unavailable: bool,
    /// Every write gets no answer at all while set (the service is down).
    unreachable: bool,
    /// Ids whose documents are refused (400), as Cosmos DB refuses a malformed or oversized one.
    refused: BTreeSet<String>,
}

impl FakeDocuments {
    /// An empty container that takes every write.
    pub fn new() -> Self {
        Self::default()
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The next `writes` upserts fail with a 503, as during a short outage.
    pub fn fail_next(&self, writes: u64) {
        self.state().failing = writes;
    }

    /// Every upsert fails with a 503 until called again with `false`.
    pub fn set_unavailable(&self, unavailable: bool) {
        self.state().unavailable = unavailable;
    }

    /// Every upsert gets no answer (connection refused) until called again with `false`.
    pub fn set_unreachable(&self, unreachable: bool) {
        self.state().unreachable = unreachable;
    }

    /// Upserts of the document `id` are refused with a 400.
    pub fn refuse(&self, id: &str) {
        self.state().refused.insert(id.to_owned());
    }

    /// Upserts tried so far, failed ones included.
    pub fn writes(&self) -> u64 {
        self.state().writes
    }

    /// How many documents the container holds.
    pub fn len(&self) -> usize {
        self.state().documents.len()
    }

    /// Whether the container holds no document.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The document `id` in `partition_key`, if written.
    pub fn get(&self, partition_key: &str, id: &str) -> Option<Value> {
        self.state()
            .documents
            .get(&(partition_key.to_owned(), id.to_owned()))
            .cloned()
    }
}

fn error(id: &str, status: u16, kind: ErrorKind, message: &str) -> Error {
    Error::Service {
        operation: Operation::new("cosmos", "UpsertItem", format!("fake/{id}")),
        kind,
        code: String::new(),
        message: message.to_owned(),
        status: Some(status),
    }
}

impl Documents for FakeDocuments {
    async fn upsert(&self, partition_key: &str, id: &str, body: &Value) -> Result<()> {
        let mut state = self.state();
        state.writes += 1;
        if state.unreachable {
            return Err(Error::Unreachable {
                operation: Operation::new("cosmos", "UpsertItem", format!("fake/{id}")),
                detail: "Connection refused".to_owned(),
            });
        }
        if state.refused.contains(id) {
            return Err(error(id, 400, ErrorKind::Permanent, "the document is refused"));
        }
        if state.unavailable {
            return Err(error(id, 503, ErrorKind::Transient, "the service is unavailable"));
        }
        if state.failing > 0 {
            state.failing -= 1;
            return Err(error(id, 503, ErrorKind::Transient, "the service is unavailable"));
        }
        state
            .documents
            .insert((partition_key.to_owned(), id.to_owned()), body.clone());
        Ok(())
    }

    async fn read(&self, partition_key: &str, id: &str) -> Result<Option<Value>> {
        Ok(self.get(partition_key, id))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_upsert_replaces_and_failures_are_classified() {
        let fake = FakeDocuments::new();
        fake.upsert("d", "e-1", &serde_json::json!({"v": 1}))
            .await
            .unwrap();
        fake.upsert("d", "e-1", &serde_json::json!({"v": 2}))
            .await
            .unwrap();
        assert_eq!(fake.len(), 1);
        assert_eq!(fake.read("d", "e-1").await.unwrap().unwrap()["v"], 2);
        assert_eq!(fake.read("other", "e-1").await.unwrap(), None);

        fake.fail_next(1);
        let failed = fake.upsert("d", "e-2", &Value::Null).await.unwrap_err();
        assert_eq!(failed.kind(), ErrorKind::Transient);
        fake.upsert("d", "e-2", &Value::Null).await.unwrap();
        fake.refuse("e-3");
        let refused = fake.upsert("d", "e-3", &Value::Null).await.unwrap_err();
        assert_eq!(refused.kind(), ErrorKind::Permanent);
        assert_eq!(fake.writes(), 5);
    }
}
