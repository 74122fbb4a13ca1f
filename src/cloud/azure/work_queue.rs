//! [`WorkQueue`] on an Azure Storage Queue, the queue of the Azure half of a pipeline.
//!
//! A storage queue differs from SQS in ways the worker runtime must not see:
//! - no long polling: a receive asks again, every 100 ms at first and at most every second, until a
//!   message arrives or the wait is over;
//! - no attributes: they travel in the message text (`envelope.rs`);
//! - no batch calls: deletes and visibility updates are one call per message, sent concurrently;
//! - every visibility update replaces the message's pop receipt, so the queue keeps the newest receipt per
//!   message id, and the runtime's receipt is the message id;
//! - no dead-lettering: [`WorkQueue::dead_letter`] sends the message, its attributes and the reason to the
//!   dead-letter queue before the runtime deletes it here.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use azure_storage_queue::{
    QueueClient,
    models::{QueueClientReceiveMessagesOptions, QueueMessage},
};
use futures::future::join_all;

use super::{envelope, error::from_azure};
use crate::{
    cloud::{
        Error, Operation, Result,
        work_queue::{Delivery, WorkQueue, dead_letter_attributes},
    },
    worker::message::Message,
};

/// The service name in errors.
pub const STORAGE_QUEUE: &str = "storage-queue";

/// The most messages one receive may ask for.
const MAX_RECEIVE: i32 = 32;

/// A storage queue drained by a worker, and its dead-letter queue.
#[derive(Clone)]
pub struct StorageWorkQueue {
    client: Arc<QueueClient>,
    dead_letter: Option<Arc<QueueClient>>,
    /// The queue's URL without its signature, for logs and dead-letter reasons.
    url: String,
    /// How long a received message stays hidden (storage queues have no queue-wide setting).
    visibility_timeout: i32,
    /// The newest pop receipt of each message in flight, by message id.
    receipts: Arc<Mutex<HashMap<String, String>>>,
}

impl std::fmt::Debug for StorageWorkQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StorageWorkQueue")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

/// A URL without its query (which holds the SAS signature).
pub fn unsigned(url: &azure_core::http::Url) -> String {
    let mut url = url.clone();
    url.set_query(None);
    url.to_string()
}

impl StorageWorkQueue {
    /// The queue behind `client`, dead-lettering to `dead_letter`, hiding received messages for
    /// `visibility_timeout`.
    pub fn new(client: QueueClient, dead_letter: Option<QueueClient>, visibility_timeout: Duration) -> Self {
        Self {
            url: unsigned(client.url()),
            client: Arc::new(client),
            dead_letter: dead_letter.map(Arc::new),
            visibility_timeout: i32::try_from(visibility_timeout.as_secs().max(1)).unwrap_or(604_800),
            receipts: Arc::default(),
        }
    }

    fn operation(&self, name: &'static str) -> Operation {
        Operation::new(STORAGE_QUEUE, name, &self.url)
    }

    fn receipt(&self, id: &str) -> Option<String> {
        self.receipts.lock().ok()?.get(id).cloned()
    }

    fn remember(&self, id: &str, receipt: String) {
        if let Ok(mut receipts) = self.receipts.lock() {
            receipts.insert(id.to_owned(), receipt);
        }
    }

    fn forget(&self, id: &str) {
        if let Ok(mut receipts) = self.receipts.lock() {
            receipts.remove(id);
        }
    }

    async fn receive_once(&self, max: i32) -> Result<Vec<Delivery>> {
        let operation = self.operation("ReceiveMessages");
        let options = QueueClientReceiveMessagesOptions {
            number_of_messages: Some(max.clamp(1, MAX_RECEIVE)),
            visibility_timeout: Some(self.visibility_timeout),
            ..Default::default()
        };
        let received = self
            .client
            .receive_messages(Some(options))
            .await
            .map_err(|e| from_azure(operation.clone(), e))?
            .into_model()
            .map_err(|e| from_azure(operation.clone(), e))?;
        let mut deliveries = Vec::new();
        for message in received.items.unwrap_or_default() {
            let (Some(id), Some(receipt)) = (message.message_id, message.pop_receipt) else {
                return Err(Error::Response {
                    operation,
                    detail: "a received message has no MessageId or PopReceipt".to_owned(),
                });
            };
            let (body, attributes) = envelope::decode(message.message_text.as_deref().unwrap_or_default());
            let strings = attributes
                .iter()
                .filter_map(|(name, value)| Some((name.clone(), value.string_value.clone()?)))
                .collect();
            let count = u32::try_from(message.dequeue_count.unwrap_or(1)).unwrap_or(u32::MAX);
            self.remember(&id, receipt);
            deliveries.push(Delivery {
                message: Message::delivered(id.clone(), body.clone(), strings, count),
                receipt: id,
                raw_body: body,
                raw_attributes: attributes,
            });
        }
        Ok(deliveries)
    }
}

impl WorkQueue for StorageWorkQueue {
    async fn receive(&self, max: i32, wait_seconds: i32) -> Result<Vec<Delivery>> {
        let deadline =
            tokio::time::Instant::now() + Duration::from_secs(u64::try_from(wait_seconds).unwrap_or(0));
        let mut pause = Duration::from_millis(100);
        loop {
            let deliveries = self.receive_once(max).await?;
            let now = tokio::time::Instant::now();
            if !deliveries.is_empty() || now >= deadline {
                return Ok(deliveries);
            }
            tokio::time::sleep(pause.min(deadline - now)).await;
            pause = (pause * 2).min(Duration::from_secs(1));
        }
    }

    async fn acknowledge(&self, ids: Vec<String>) -> Result<Vec<String>> {
        let deletes = ids.iter().map(|id| async move {
            let Some(receipt) = self.receipt(id) else {
                return Some(id.clone());
            };
            match self.client.delete_message(id, &receipt, None).await {
                Ok(_) => {
                    self.forget(id);
                    None
                }
                Err(error) => {
                    tracing::debug!(message_id = %id, error = %from_azure(self.operation("DeleteMessage"), error), "delete failed");
                    Some(id.clone())
                }
            }
        });
        Ok(join_all(deletes).await.into_iter().flatten().collect())
    }

    async fn postpone(&self, entries: Vec<(String, i32)>) -> Result<Vec<String>> {
        let updates = entries.iter().map(|(id, seconds)| async move {
            let Some(receipt) = self.receipt(id) else {
                return Some(id.clone());
            };
            match self.client.update_message(id, &receipt, (*seconds).max(0), None).await {
                Ok(response) => {
                    // The old pop receipt is void from now on.
                    if let Some(next) = response.headers().get_optional_str(&"x-ms-popreceipt".into()) {
                        self.remember(id, next.to_owned());
                    }
                    None
                }
                Err(error) => {
                    tracing::debug!(message_id = %id, error = %from_azure(self.operation("UpdateMessage"), error), "visibility update failed");
                    Some(id.clone())
                }
            }
        });
        Ok(join_all(updates).await.into_iter().flatten().collect())
    }

    async fn dead_letter(&self, delivery: &Delivery, reason: &str) -> Result<()> {
        let Some(dead_letter) = &self.dead_letter else {
            return Err(Error::Invalid {
                operation: Operation::new(STORAGE_QUEUE, "SendMessage", "(no dead-letter queue)"),
                detail: "the Consumer has no deadLetterRef".to_owned(),
            });
        };
        let operation = Operation::new(STORAGE_QUEUE, "SendMessage", unsigned(dead_letter.url()));
        let attributes = dead_letter_attributes(&delivery.raw_attributes, reason);
        let text = envelope::encode(&delivery.raw_body, &attributes);
        let message = QueueMessage {
            message_text: Some(text),
        };
        let content = message.try_into().map_err(|e| from_azure(operation.clone(), e))?;
        dead_letter
            .send_message(content, None)
            .await
            .map_err(|e| from_azure(operation, e))?;
        Ok(())
    }

    fn has_dead_letter(&self) -> bool {
        self.dead_letter.is_some()
    }

    fn url(&self) -> &str {
        &self.url
    }
}
