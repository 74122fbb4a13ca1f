//! The Azure capability traits in memory: Event Hubs namespaces (with a provisioning state a test can
//! script), hubs (partitions, retention, ownership mark, status, consumer groups, Listen rule), Storage
//! Queues by (account, queue) with their metadata and message counts, consumer-group lag a test sets,
//! and hub producers that keep what they were sent. Every call is recorded as `Operation resource` (e.g.
//! `PutHub plant/telemetry`), and a test can make the next call of an operation fail
//! ([`FakeAzure::fail_next`]). The rules kept are the services': what is missing is `NotFound` (a hub
//! needs its namespace), creates are idempotent and refused for other metadata, partitions never shrink,
//! deletes of what is gone succeed.

mod event_hubs;
mod kafka;
mod storage;

use std::{
    collections::{BTreeMap, VecDeque},
    sync::{Arc, Mutex, MutexGuard, PoisonError},
};

pub use event_hubs::FakeHub;
pub use kafka::{FakeProducer, SentEvent};
use storage::StoredQueue;

use super::queue::FakeQueues;
use crate::cloud::{Error, ErrorKind, Operation, Result, azure::kafka::Lag};

/// An Azure subscription, storage accounts and Kafka endpoint in memory. Clones share it.
#[derive(Clone, Debug, Default)]
pub struct FakeAzure {
    state: Arc<Mutex<State>>,
    /// The messages of the Storage Queues, by unsigned URL.
    messages: FakeQueues,
}

#[derive(Debug, Default)]
struct State {
    /// Namespaces by resource id.
    namespaces: BTreeMap<String, event_hubs::Namespace>,
    /// Hubs by resource id.
    hubs: BTreeMap<String, FakeHub>,
    /// Puts of namespaces and hubs that answer `Pending` (still provisioning) before they settle.
    slow_puts: u32,
    /// Deletes of hubs that answer "still running" before one finishes.
    slow_deletes: u32,
    /// Storage Queues by (account, queue).
    queues: BTreeMap<(String, String), StoredQueue>,
    /// Account keys a test set: calls with another key are refused.
    keys: BTreeMap<String, String>,
    /// The message TTL each queue handle was opened with, by URL.
    ttls: BTreeMap<String, Option<i64>>,
    /// Lag by (topic, group).
    lags: BTreeMap<(String, String), Lag>,
    /// Events produced, by topic.
    events: BTreeMap<String, Vec<SentEvent>>,
    /// Failures to inject, by operation, oldest first.
    failures: BTreeMap<String, VecDeque<ErrorKind>>,
    calls: Vec<String>,
}

fn error(kind: ErrorKind, service: &'static str, name: &'static str, resource: &str, code: &str) -> Error {
    Error::Service {
        operation: Operation::new(service, name, resource),
        kind,
        code: code.to_owned(),
        message: format!("{code} (fake)"),
        status: None,
    }
}

fn not_found(service: &'static str, name: &'static str, resource: &str) -> Error {
    error(ErrorKind::NotFound, service, name, resource, "NotFound")
}

impl FakeAzure {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records the call `name resource` and fails it if a failure of `name` was injected.
    fn call(
        &self,
        service: &'static str,
        name: &'static str,
        resource: &str,
    ) -> Result<MutexGuard<'_, State>> {
        let mut state = self.lock();
        state.calls.push(format!("{name} {resource}"));
        let injected = state.failures.get_mut(name).and_then(VecDeque::pop_front);
        match injected {
            Some(kind) => Err(error(kind, service, name, resource, "Injected")),
            None => Ok(state),
        }
    }

    /// Every call so far, as `Operation resource`, oldest first.
    pub fn calls(&self) -> Vec<String> {
        self.lock().calls.clone()
    }

    /// Makes the next call of operation `name` (as recorded, e.g. `PutHub`) fail with an error of `kind`;
    /// several injections of one operation fail that many calls.
    pub fn fail_next(&self, name: &str, kind: ErrorKind) {
        self.lock()
            .failures
            .entry(name.to_owned())
            .or_default()
            .push_back(kind);
    }
}

#[cfg(test)]
mod tests;
