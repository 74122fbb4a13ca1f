//! [`WorkQueue`] on an Azure Storage Queue, the queue of the Azure half of a pipeline.
//!
//! A storage queue differs from SQS in ways the worker runtime must not see:
//! - no long polling: a receive asks again, every 100 ms at first and at most every second, until a
//!   message arrives or the wait is over;
//! - no attributes: they travel in the message text (`envelope.rs`);
//! - no batch calls: deletes and visibility updates are one call per message, sent concurrently;
//! - every visibility update replaces the message's pop receipt. The runtime's receipt names the delivery
//!   (message id and the pop receipt it was received with), and the queue keeps each delivery's newest pop
//!   receipt; a delivery superseded by a later receive of the same message fails as a stale SQS receipt
//!   handle does, instead of acting on the newer one;
//! - no dead-lettering: [`WorkQueue::dead_letter`] sends the message, its attributes and the reason to the
//!   dead-letter queue (never expiring) before the runtime deletes it here. Without a dead-letter queue a
//!   rejected message is hidden for the longest delay and comes back until its time to live ends: a storage
//!   queue has no `maxReceiveCount` to move it.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use azure_storage_queue::{
    QueueClient,
    models::{QueueClientReceiveMessagesOptions, QueueClientSendMessageOptions, QueueMessage},
};
use futures::future::join_all;
use tokio::time::Instant;

use super::{
    envelope,
    error::from_azure,
    storage_queues::{Account, signed_client},
};
use crate::{
    cloud::{
        Error, ErrorKind, Operation, Result,
        work_queue::{DEAD_LETTER_REASON, Delivery, WorkQueue, reason_attribute},
    },
    worker::message::Message,
};

/// The service name in errors.
pub const STORAGE_QUEUE: &str = "storage-queue";

/// The most messages one receive may ask for.
const MAX_RECEIVE: i32 = 32;

/// The longest visibility timeout the service takes (7 days).
const MAX_VISIBILITY_SECONDS: i32 = 604_800;

/// The largest message text the service takes.
const MAX_MESSAGE_BYTES: usize = 64 * 1024;

/// A delivery's newest pop receipt, and until when the message is hidden (after which the entry is of no
/// more use: the message may be anyone's).
#[derive(Clone, Debug)]
struct Held {
    pop_receipt: String,
    until: Instant,
}

/// How long a worker's signature is valid, and how long before its end it is renewed.
const SIGNATURE_LIFETIME: Duration = Duration::from_secs(3600);
const SIGNATURE_RENEWAL: Duration = Duration::from_secs(600);

/// A queue client: given (signed by the caller), or signed here with the account key and signed anew
/// before the signature runs out, so a worker keeps working for as long as it runs.
#[derive(Clone)]
enum Client {
    Given(Arc<QueueClient>),
    Signed {
        url: azure_core::http::Url,
        account: Account,
        current: Arc<Mutex<Option<Signed>>>,
    },
}

/// A signed client and when its signature ends.
type Signed = (Arc<QueueClient>, Instant);

impl Client {
    fn signed(url: azure_core::http::Url, account: Account) -> Self {
        Self::Signed {
            url,
            account,
            current: Arc::default(),
        }
    }

    fn url(&self) -> String {
        match self {
            Self::Given(client) => unsigned(client.url()),
            Self::Signed { url, .. } => unsigned(url),
        }
    }

    fn get(&self) -> Result<Arc<QueueClient>> {
        let (url, account, current) = match self {
            Self::Given(client) => return Ok(client.clone()),
            Self::Signed {
                url,
                account,
                current,
            } => (url, account, current),
        };
        let mut current = current.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((client, until)) = &*current
            && Instant::now() + SIGNATURE_RENEWAL < *until
        {
            return Ok(client.clone());
        }
        let client = Arc::new(signed_client(url, account, SIGNATURE_LIFETIME)?);
        *current = Some((client.clone(), Instant::now() + SIGNATURE_LIFETIME));
        Ok(client)
    }
}

/// A storage queue drained by a worker, and its dead-letter queue.
#[derive(Clone)]
pub struct StorageWorkQueue {
    client: Client,
    dead_letter: Option<Client>,
    /// The queue's URL without its signature, for logs and dead-letter reasons.
    url: String,
    /// How long a received message stays hidden (storage queues have no queue-wide setting).
    visibility_timeout: i32,
    /// Deliveries in flight, by the runtime's receipt.
    held: Arc<Mutex<HashMap<String, Held>>>,
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

/// The runtime's receipt of a delivery: the message id and the pop receipt it was received with.
fn receipt_of(id: &str, pop_receipt: &str) -> String {
    format!("{id}\n{pop_receipt}")
}

/// The message id and first pop receipt in a runtime receipt.
fn parse_receipt(receipt: &str) -> (&str, &str) {
    receipt.split_once('\n').unwrap_or((receipt, ""))
}

/// Whether a failed delete or update says the delivery is over (the message is gone, or was received
/// again by someone else): its entry is then dropped.
fn delivery_over(error: &Error) -> bool {
    error.kind() == ErrorKind::NotFound
        || matches!(error, Error::Service { code, .. } if code == "PopReceiptMismatch" || code == "MessageNotFound")
}

impl StorageWorkQueue {
    /// The queue behind `client`, dead-lettering to `dead_letter`, hiding received messages for
    /// `visibility_timeout` (at most 7 days).
    pub fn new(client: QueueClient, dead_letter: Option<QueueClient>, visibility_timeout: Duration) -> Self {
        let given = |c: QueueClient| Client::Given(Arc::new(c));
        Self::with_clients(given(client), dead_letter.map(given), visibility_timeout)
    }

    /// The queue at `url` and its dead letter at `dead_letter` (unsigned URLs), signed with `account`'s
    /// key and signed anew every hour.
    pub fn signed(
        url: azure_core::http::Url,
        dead_letter: Option<azure_core::http::Url>,
        account: &Account,
        visibility_timeout: Duration,
    ) -> Self {
        let signed = |url| Client::signed(url, account.clone());
        Self::with_clients(signed(url), dead_letter.map(signed), visibility_timeout)
    }

    fn with_clients(client: Client, dead_letter: Option<Client>, visibility_timeout: Duration) -> Self {
        let seconds = visibility_timeout
            .as_secs()
            .clamp(1, MAX_VISIBILITY_SECONDS.unsigned_abs().into());
        Self {
            url: client.url(),
            client,
            dead_letter,
            visibility_timeout: i32::try_from(seconds).unwrap_or(i32::MAX),
            held: Arc::default(),
        }
    }

    fn operation(&self, name: &'static str) -> Operation {
        Operation::new(STORAGE_QUEUE, name, &self.url)
    }

    fn held(&self) -> std::sync::MutexGuard<'_, HashMap<String, Held>> {
        // A panic while holding the lock cannot leave the map inconsistent (single inserts and removes).
        self.held
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The message id and current pop receipt of a delivery.
    fn current(&self, receipt: &str) -> (String, String) {
        let (id, first) = parse_receipt(receipt);
        let pop = self
            .held()
            .get(receipt)
            .map_or_else(|| first.to_owned(), |h| h.pop_receipt.clone());
        (id.to_owned(), pop)
    }

    fn hold(&self, receipt: &str, pop_receipt: String, seconds: i32) {
        let until = Instant::now() + Duration::from_secs(u64::try_from(seconds).unwrap_or(0));
        self.held()
            .insert(receipt.to_owned(), Held { pop_receipt, until });
    }

    fn release(&self, receipt: &str) {
        self.held().remove(receipt);
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
            .get()?
            .receive_messages(Some(options))
            .await
            .map_err(|e| from_azure(operation.clone(), e))?
            .into_model()
            .map_err(|e| from_azure(operation.clone(), e))?;
        {
            // Entries of messages hidden no more are of no use: drop them (a minute's grace).
            let now = Instant::now();
            self.held().retain(|_, h| h.until + Duration::from_secs(60) > now);
        }
        let mut deliveries = Vec::new();
        for message in received.items.unwrap_or_default() {
            let (Some(id), Some(pop_receipt)) = (message.message_id, message.pop_receipt) else {
                tracing::warn!(queue = %self.url, "a received message has no MessageId or PopReceipt; skipped");
                continue;
            };
            let (body, attributes) = envelope::decode(message.message_text.as_deref().unwrap_or_default());
            let strings = attributes
                .iter()
                .filter_map(|(name, value)| Some((name.clone(), value.string_value.clone()?)))
                .collect();
            let count = u32::try_from(message.dequeue_count.unwrap_or(1)).unwrap_or(u32::MAX);
            let receipt = receipt_of(&id, &pop_receipt);
            self.hold(&receipt, pop_receipt, self.visibility_timeout);
            deliveries.push(Delivery {
                message: Message::delivered(id, body.clone(), strings, count).with_types(&attributes),
                receipt,
                raw_body: body,
                raw_attributes: attributes,
            });
        }
        Ok(deliveries)
    }

    /// Sends `text` to this queue, kept for `ttl_seconds` (`-1`: never expires): the queue as a sink.
    pub async fn send(&self, text: String, ttl_seconds: i32) -> Result<()> {
        let operation = self.operation("SendMessage");
        if text.len() > MAX_MESSAGE_BYTES {
            return Err(Error::Invalid {
                operation,
                detail: format!(
                    "the message is {} bytes, more than a Storage Queue message holds ({MAX_MESSAGE_BYTES})",
                    text.len()
                ),
            });
        }
        let message = QueueMessage {
            message_text: Some(text),
        };
        let content = message.try_into().map_err(|e| from_azure(operation.clone(), e))?;
        let options = QueueClientSendMessageOptions {
            message_time_to_live: Some(ttl_seconds),
            ..Default::default()
        };
        self.client
            .get()?
            .send_message(content, Some(options))
            .await
            .map_err(|e| from_azure(operation, e))?;
        Ok(())
    }

    /// The dead-letter text: the envelope with the reason, or without it if that is too large, or the
    /// body as it came (which fitted the queue it came from) if even that is.
    fn dead_letter_text(delivery: &Delivery, reason: &str) -> String {
        // No attribute limit here (the envelope has none), so the reason always goes in.
        let mut attributes = delivery.raw_attributes.clone();
        attributes.insert(DEAD_LETTER_REASON.to_owned(), reason_attribute(reason));
        let with_reason = envelope::encode(&delivery.raw_body, &attributes);
        if with_reason.len() <= MAX_MESSAGE_BYTES {
            return with_reason;
        }
        tracing::warn!(message_id = %delivery.message.id, %reason, "too large for the reason: dead-lettered without it");
        let without = envelope::encode(&delivery.raw_body, &delivery.raw_attributes);
        if without.len() <= MAX_MESSAGE_BYTES {
            return without;
        }
        tracing::warn!(message_id = %delivery.message.id, "too large for its attributes: dead-lettered as the bare body");
        delivery.raw_body.clone()
    }
}

impl WorkQueue for StorageWorkQueue {
    async fn receive(&self, max: i32, wait_seconds: i32) -> Result<Vec<Delivery>> {
        let deadline = Instant::now() + Duration::from_secs(u64::try_from(wait_seconds).unwrap_or(0));
        let mut pause = Duration::from_millis(100);
        loop {
            let deliveries = self.receive_once(max).await?;
            let now = Instant::now();
            if !deliveries.is_empty() || now >= deadline {
                return Ok(deliveries);
            }
            tokio::time::sleep(pause.min(deadline - now)).await;
            pause = (pause * 2).min(Duration::from_secs(1));
        }
    }

    async fn acknowledge(&self, receipts: Vec<String>) -> Result<Vec<String>> {
        let deletes = receipts.iter().map(|receipt| async move {
            let (id, pop_receipt) = self.current(receipt);
            let client = match self.client.get() {
                Ok(client) => client,
                Err(_) => return Some(receipt.clone()),
            };
            match client.delete_message(&id, &pop_receipt, None).await {
                Ok(_) => {
                    self.release(receipt);
                    None
                }
                Err(error) => {
                    let error = from_azure(self.operation("DeleteMessage"), error);
                    tracing::debug!(message_id = %id, %error, "delete failed");
                    if delivery_over(&error) {
                        self.release(receipt);
                    }
                    Some(receipt.clone())
                }
            }
        });
        Ok(join_all(deletes).await.into_iter().flatten().collect())
    }

    async fn postpone(&self, entries: Vec<(String, i32)>) -> Result<Vec<String>> {
        let updates = entries.iter().map(|(receipt, seconds)| async move {
            let (id, pop_receipt) = self.current(receipt);
            let seconds = (*seconds).clamp(0, MAX_VISIBILITY_SECONDS);
            let client = match self.client.get() {
                Ok(client) => client,
                Err(_) => return Some(receipt.clone()),
            };
            let result = client.update_message(&id, &pop_receipt, seconds, None).await;
            let error = match result {
                Ok(response) => {
                    // The old pop receipt is void from now on.
                    match response.headers().get_optional_str(&"x-ms-popreceipt".into()) {
                        Some(next) => {
                            self.hold(receipt, next.to_owned(), seconds);
                            return None;
                        }
                        None => Error::Response {
                            operation: self.operation("UpdateMessage"),
                            detail: "the answer has no x-ms-popreceipt".to_owned(),
                        },
                    }
                }
                Err(error) => from_azure(self.operation("UpdateMessage"), error),
            };
            tracing::debug!(message_id = %id, %error, "visibility update failed");
            if delivery_over(&error) {
                self.release(receipt);
            }
            Some(receipt.clone())
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
        let operation = Operation::new(STORAGE_QUEUE, "SendMessage", dead_letter.url());
        let message = QueueMessage {
            message_text: Some(Self::dead_letter_text(delivery, reason)),
        };
        let content = message.try_into().map_err(|e| from_azure(operation.clone(), e))?;
        // A dead letter waits for a redrive however long that takes: it never expires.
        let options = QueueClientSendMessageOptions {
            message_time_to_live: Some(-1),
            ..Default::default()
        };
        dead_letter
            .get()?
            .send_message(content, Some(options))
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

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::cloud::traits::MessageAttribute;

    fn delivery(body: &str) -> Delivery {
        Delivery {
            message: Message::delivered("m-1".into(), body.into(), BTreeMap::new(), 1),
            receipt: receipt_of("m-1", "pop"),
            raw_body: body.into(),
            raw_attributes: BTreeMap::from([(
                "event".to_owned(),
                MessageAttribute {
                    data_type: "String".into(),
                    string_value: Some("OrderPlaced".into()),
                    binary_value: None,
                },
            )]),
        }
    }

    #[test]
    fn a_receipt_names_the_delivery() {
        assert_eq!(
            parse_receipt(&receipt_of("id-1", "AgAAAA==")),
            ("id-1", "AgAAAA==")
        );
    }

    #[test]
    fn a_dead_letter_keeps_the_reason_while_it_fits_and_the_body_always() {
        let small = delivery("{\"orderId\":\"o-1\"}");
        let (body, attributes) = envelope::decode(&StorageWorkQueue::dead_letter_text(&small, "bad sku"));
        assert_eq!(body, small.raw_body);
        assert_eq!(
            attributes[DEAD_LETTER_REASON].string_value.as_deref(),
            Some("bad sku")
        );
        assert_eq!(attributes["event"], small.raw_attributes["event"]);

        // Quotes double when the body is put in the envelope: a body that fitted the queue may not.
        let large = delivery(&"\"".repeat(40_000));
        let text = StorageWorkQueue::dead_letter_text(&large, "too big");
        assert!(text.len() <= MAX_MESSAGE_BYTES);
        assert_eq!(
            envelope::decode(&text).0,
            large.raw_body,
            "the body is never lost"
        );
    }
}
