//! Storage queues as the controller manages them: whether one exists (with its metadata, where Tributary's
//! ownership marks live), create, set metadata, depth and oldest-message age, delete.
//!
//! Every call is signed with a short-lived account SAS made from the storage account key (see
//! `storage_sas.rs`). Queues are reached at `https://<account>.queue.core.windows.net`, or, for an
//! emulator, at one service URL (Azurite serves one account there; the controller's
//! `AZURE_STORAGE_QUEUE_ENDPOINT`).

use std::{collections::HashMap, time::Duration};

use azure_core::http::Url;
use azure_storage_queue::{
    QueueClient,
    models::{
        QueueClientCreateOptions, QueueClientGetPropertiesResultHeaders, QueueClientPeekMessagesOptions,
    },
};

// Where they were first defined: kept here so their paths stay.
pub use super::account::{Account, signed_client};
use super::{account::STORAGE_QUEUE, error::from_azure};
// Where it was first defined: kept here so its path stays.
pub use crate::cloud::traits::Observed;
use crate::cloud::{Error, ErrorKind, Operation, Result, traits::QueueStats};

/// How long the signature of one call stays valid.
const SIGNATURE_LIFETIME: Duration = Duration::from_secs(600);

/// Storage queue management for the controller.
#[derive(Clone, Debug, Default)]
pub struct StorageQueues {
    /// The queue service URL of every account (an emulator), instead of the account's public one.
    endpoint: Option<Url>,
}

impl StorageQueues {
    /// Queues at their accounts' public URLs, or at `endpoint` for every account.
    pub fn new(endpoint: Option<Url>) -> Self {
        Self { endpoint }
    }

    /// The unsigned URL of `queue` in `account`: what status shows and dead-letter reasons record.
    pub fn queue_url(&self, account: &str, queue: &str) -> Result<Url> {
        let operation = || Operation::new(STORAGE_QUEUE, "Url", format!("{account}/{queue}"));
        let mut url = match &self.endpoint {
            Some(endpoint) => endpoint.clone(),
            None => Url::parse(&format!("https://{account}.queue.core.windows.net/")).map_err(|e| {
                Error::Invalid {
                    operation: operation(),
                    detail: format!("storage account name {account:?}: {e}"),
                }
            })?,
        };
        let base = url.to_string();
        url.path_segments_mut()
            .map_err(|()| Error::Invalid {
                operation: operation(),
                detail: format!("{base} cannot hold a queue path"),
            })?
            .pop_if_empty()
            .push(queue);
        Ok(url)
    }

    /// A client of `queue`, signed for the next few minutes.
    pub fn client(&self, account: &Account, queue: &str) -> Result<QueueClient> {
        signed_client(
            &self.queue_url(&account.name, queue)?,
            account,
            SIGNATURE_LIFETIME,
        )
    }

    fn operation(&self, name: &'static str, account: &Account, queue: &str) -> Operation {
        let url = self
            .queue_url(&account.name, queue)
            .map_or_else(|_| format!("{}/{queue}", account.name), |u| u.to_string());
        Operation::new(STORAGE_QUEUE, name, url)
    }

    /// The queue's message count and metadata, or `None` if there is no such queue.
    pub async fn observe(&self, account: &Account, queue: &str) -> Result<Option<Observed>> {
        let operation = self.operation("GetQueueMetadata", account, queue);
        let Some(response) = absent_as_none(
            self.client(account, queue)?.get_properties(None).await,
            &operation,
        )?
        else {
            return Ok(None);
        };
        Ok(Some(Observed {
            messages: response
                .approximate_messages_count()
                .map_err(|e| from_azure(operation.clone(), e))?
                .unwrap_or(0),
            metadata: response.metadata().map_err(|e| from_azure(operation, e))?,
        }))
    }

    /// Creates the queue with `metadata`. Creating an existing queue with the same metadata succeeds; with
    /// other metadata the service refuses (409).
    pub async fn create(
        &self,
        account: &Account,
        queue: &str,
        metadata: &HashMap<String, String>,
    ) -> Result<()> {
        let operation = self.operation("CreateQueue", account, queue);
        let options = QueueClientCreateOptions {
            metadata: Some(metadata.clone()),
            ..Default::default()
        };
        self.client(account, queue)?
            .create(Some(options))
            .await
            .map_err(|e| from_azure(operation, e))?;
        Ok(())
    }

    /// Replaces the queue's metadata.
    pub async fn set_metadata(
        &self,
        account: &Account,
        queue: &str,
        metadata: &HashMap<String, String>,
    ) -> Result<()> {
        let operation = self.operation("SetQueueMetadata", account, queue);
        self.client(account, queue)?
            .set_metadata(metadata, None)
            .await
            .map_err(|e| from_azure(operation, e))?;
        Ok(())
    }

    /// Depth and the age of the message at the front (the oldest visible one), for status.
    pub async fn stats(&self, account: &Account, queue: &str, messages: i64) -> Result<QueueStats> {
        let operation = self.operation("PeekMessages", account, queue);
        let options = QueueClientPeekMessagesOptions {
            number_of_messages: Some(1),
            ..Default::default()
        };
        let peeked = self
            .client(account, queue)?
            .peek_messages(Some(options))
            .await
            .map_err(|e| from_azure(operation.clone(), e))?
            .into_model()
            .map_err(|e| from_azure(operation, e))?;
        let oldest = peeked
            .items
            .unwrap_or_default()
            .first()
            .and_then(|m| m.insertion_time)
            .map(|inserted| {
                (time::OffsetDateTime::now_utc() - inserted)
                    .whole_seconds()
                    .max(0)
            });
        Ok(QueueStats {
            visible: messages,
            oldest_message_age_seconds: oldest,
            ..QueueStats::default()
        })
    }

    /// Deletes the queue; one already gone is success.
    pub async fn delete(&self, account: &Account, queue: &str) -> Result<()> {
        let operation = self.operation("DeleteQueue", account, queue);
        absent_as_none(self.client(account, queue)?.delete(None).await, &operation)?;
        Ok(())
    }
}

/// A call's answer, `None` when the queue does not exist, or its error classified.
fn absent_as_none<T>(result: azure_core::Result<T>, operation: &Operation) -> Result<Option<T>> {
    match result {
        Ok(answer) => Ok(Some(answer)),
        Err(error) => match from_azure(operation.clone(), error) {
            e if e.kind() == ErrorKind::NotFound => Ok(None),
            e => Err(e),
        },
    }
}
