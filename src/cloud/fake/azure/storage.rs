//! Storage Queues in the Azure fake: by (account, queue), with their metadata and message count, and
//! their messages as [`FakeQueue`]s at the queues' URLs.

use std::collections::HashMap;

use azure_core::http::Url;

use super::{FakeAzure, State, error, not_found};
use crate::cloud::{
    Error, ErrorKind, Operation, Result,
    azure::storage_queues::{Account, Observed},
    fake::FakeQueue,
    traits::{QueueStats, StorageQueueAdmin, StorageQueueMessages},
};

const STORAGE: &str = "storage-queue";

#[derive(Clone, Debug, Default)]
pub(super) struct StoredQueue {
    metadata: HashMap<String, String>,
    /// A count a test set, instead of the messages held.
    messages: Option<i64>,
    oldest_message_age_seconds: Option<i64>,
}

/// `account/queue`, as calls are recorded.
fn queue_of(account: &Account, queue: &str) -> String {
    format!("{}/{queue}", account.name)
}

fn key(account: &Account, queue: &str) -> (String, String) {
    (account.name.clone(), queue.to_owned())
}

/// The unsigned URL of a queue in the fake.
fn url_of(account: &str, queue: &str) -> Result<Url> {
    Url::parse(&format!("https://{account}.queue.fake/{queue}")).map_err(|e| Error::Invalid {
        operation: Operation::new(STORAGE, "Url", format!("{account}/{queue}")),
        detail: e.to_string(),
    })
}

/// Refuses a call signed with another key than the one a test set for the account.
fn signed(state: &State, account: &Account, name: &'static str, resource: &str) -> Result<()> {
    match state.keys.get(&account.name) {
        Some(key) if *key != account.key => Err(error(
            ErrorKind::Permanent,
            STORAGE,
            name,
            resource,
            "AuthenticationFailed",
        )),
        _ => Ok(()),
    }
}

impl FakeAzure {
    /// Calls for `account` must be signed with `key` from now on (others are refused, permanently).
    pub fn set_account_key(&self, account: &str, key: &str) {
        self.lock().keys.insert(account.to_owned(), key.to_owned());
    }

    /// A Storage Queue made outside Tributary, with `metadata`.
    pub fn add_storage_queue(&self, account: &str, queue: &str, metadata: &[(&str, &str)]) {
        let metadata = metadata
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let stored = StoredQueue {
            metadata,
            ..StoredQueue::default()
        };
        let key = (account.to_owned(), queue.to_owned());
        self.lock().queues.insert(key, stored);
    }

    /// The metadata of the queue, if it exists (not recorded as a call).
    pub fn storage_queue_metadata(&self, account: &str, queue: &str) -> Option<HashMap<String, String>> {
        let key = (account.to_owned(), queue.to_owned());
        self.lock().queues.get(&key).map(|q| q.metadata.clone())
    }

    /// The queue reports `messages` (instead of the messages it holds) and the age of its oldest one.
    pub fn set_message_count(&self, account: &str, queue: &str, messages: i64, oldest_age: Option<i64>) {
        let key = (account.to_owned(), queue.to_owned());
        if let Some(stored) = self.lock().queues.get_mut(&key) {
            stored.messages = Some(messages);
            stored.oldest_message_age_seconds = oldest_age;
        }
    }

    /// The messages of the queue (what the redrive receives from and sends to).
    pub fn storage_messages(&self, account: &str, queue: &str) -> FakeQueue {
        let url = url_of(account, queue).map_or_else(|_| format!("{account}/{queue}"), |u| u.to_string());
        self.messages.queue(&url).with_attribute_limit(None)
    }

    /// The message TTL the queue's messages were last opened to send with (`Some(None)`: none given).
    pub fn message_ttl(&self, account: &str, queue: &str) -> Option<Option<i64>> {
        let url = url_of(account, queue).ok()?.to_string();
        self.lock().ttls.get(&url).copied()
    }

    fn held(&self, account: &Account, queue: &str) -> i64 {
        let held = self.storage_messages(&account.name, queue).held().len();
        i64::try_from(held).unwrap_or(i64::MAX)
    }
}

impl StorageQueueAdmin for FakeAzure {
    fn queue_url(&self, account: &str, queue: &str) -> Result<Url> {
        url_of(account, queue)
    }

    async fn observe(&self, account: &Account, queue: &str) -> Result<Option<Observed>> {
        let resource = queue_of(account, queue);
        let found = {
            let state = self.call(STORAGE, "GetQueueMetadata", &resource)?;
            signed(&state, account, "GetQueueMetadata", &resource)?;
            state.queues.get(&key(account, queue)).cloned()
        };
        Ok(found.map(|stored| Observed {
            messages: stored.messages.unwrap_or_else(|| self.held(account, queue)),
            metadata: stored.metadata,
        }))
    }

    async fn create(&self, account: &Account, queue: &str, metadata: &HashMap<String, String>) -> Result<()> {
        let resource = queue_of(account, queue);
        let mut state = self.call(STORAGE, "CreateQueue", &resource)?;
        signed(&state, account, "CreateQueue", &resource)?;
        match state.queues.get(&key(account, queue)) {
            Some(existing) if existing.metadata != *metadata => Err(error(
                ErrorKind::Permanent,
                STORAGE,
                "CreateQueue",
                &resource,
                "QueueAlreadyExists",
            )),
            Some(_) => Ok(()),
            None => {
                let stored = StoredQueue {
                    metadata: metadata.clone(),
                    ..StoredQueue::default()
                };
                state.queues.insert(key(account, queue), stored);
                Ok(())
            }
        }
    }

    async fn set_metadata(
        &self,
        account: &Account,
        queue: &str,
        metadata: &HashMap<String, String>,
    ) -> Result<()> {
        let resource = queue_of(account, queue);
        let mut state = self.call(STORAGE, "SetQueueMetadata", &resource)?;
        signed(&state, account, "SetQueueMetadata", &resource)?;
        let stored = state.queues.get_mut(&key(account, queue));
        let stored = stored.ok_or_else(|| not_found(STORAGE, "SetQueueMetadata", &resource))?;
        stored.metadata = metadata.clone();
        Ok(())
    }

    async fn stats(&self, account: &Account, queue: &str, messages: i64) -> Result<QueueStats> {
        let resource = queue_of(account, queue);
        let state = self.call(STORAGE, "PeekMessages", &resource)?;
        signed(&state, account, "PeekMessages", &resource)?;
        let stored = state.queues.get(&key(account, queue));
        let stored = stored.ok_or_else(|| not_found(STORAGE, "PeekMessages", &resource))?;
        Ok(QueueStats {
            visible: messages,
            oldest_message_age_seconds: stored.oldest_message_age_seconds,
            ..QueueStats::default()
        })
    }

    async fn delete(&self, account: &Account, queue: &str) -> Result<()> {
        let resource = queue_of(account, queue);
        let mut state = self.call(STORAGE, "DeleteQueue", &resource)?;
        signed(&state, account, "DeleteQueue", &resource)?;
        state.queues.remove(&key(account, queue));
        Ok(())
    }
}

impl StorageQueueMessages for FakeAzure {
    type Queue = FakeQueue;

    fn storage_queue(
        &self,
        account: &Account,
        queue: &str,
        message_ttl_seconds: Option<i64>,
    ) -> Result<FakeQueue> {
        let url = url_of(&account.name, queue)?.to_string();
        {
            let state = self.lock();
            signed(&state, account, "Sign", &queue_of(account, queue))?;
        }
        self.lock().ttls.insert(url, message_ttl_seconds);
        Ok(self.storage_messages(&account.name, queue))
    }
}
