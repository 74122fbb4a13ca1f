//! [`MessageQueue`] on an Azure Storage Queue: the queue of the Azure half of a pipeline, a dead letter,
//! and a relay's destination.
//!
//! A storage queue differs from SQS in ways the callers must not see:
//! - no long polling: a receive asks again, every 100 ms at first and at most every second, until a
//!   message arrives or the wait is over;
//! - no attributes: they travel in the message text (`envelope.rs`), so there is no attribute limit, but
//!   a message holds 64 KiB ([`MessageQueue::fits`]);
//! - no batch calls: deletes, visibility updates and sends are one call per message, sent concurrently;
//! - every visibility update replaces the message's pop receipt. The receipt handle names the delivery
//!   (message id and the pop receipt it was received with), and the handle keeps each delivery's newest pop
//!   receipt; a delivery superseded by a later receive of the same message fails as a stale SQS receipt
//!   handle does, instead of acting on the newer one;
//! - no receive count attribute: the dequeue count is reported as `ApproximateReceiveCount`;
//! - the time to live of what is sent is the handle's (a dead letter's never ends).

use std::{
    collections::{BTreeMap, HashMap},
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
    account::{Account, STORAGE_QUEUE, signed_client, unsigned},
    envelope,
    error::from_azure,
};
use crate::cloud::{
    Error, ErrorKind, Operation, Result,
    queue::{
        BatchFailure, BatchOutcome, MessageQueue, OutgoingMessage, Receive, ReceivedMessage, VisibilityChange,
    },
};

/// The most messages one receive may ask for.
const MAX_RECEIVE: i32 = 32;

/// The longest visibility timeout the service takes (7 days).
const MAX_VISIBILITY_SECONDS: i32 = 604_800;

/// The largest message text the service takes.
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024;

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

/// One storage queue's messages. Clones share the client and the deliveries in flight.
#[derive(Clone)]
pub struct StorageQueue {
    client: Client,
    /// The queue's URL without its signature, for logs and dead-letter reasons.
    url: String,
    /// How long a received message stays hidden when the receive does not say (storage queues have no
    /// queue-wide setting).
    visibility_timeout: i32,
    /// Time to live of the messages sent, in seconds (`-1`: never expire); `None`: the service's 7 days.
    message_ttl_seconds: Option<i32>,
    /// Deliveries in flight, by receipt handle.
    held: Arc<Mutex<HashMap<String, Held>>>,
}

impl std::fmt::Debug for StorageQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StorageQueue")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

/// The receipt handle of a delivery: the message id and the pop receipt it was received with.
fn receipt_of(id: &str, pop_receipt: &str) -> String {
    format!("{id}\n{pop_receipt}")
}

/// The message id and first pop receipt in a receipt handle.
fn parse_receipt(receipt: &str) -> (&str, &str) {
    receipt.split_once('\n').unwrap_or((receipt, ""))
}

/// Whether a failed delete or update says the delivery is over (the message is gone, or was received
/// again by someone else): its entry is then dropped.
fn delivery_over(error: &Error) -> bool {
    error.kind() == ErrorKind::NotFound
        || matches!(error, Error::Service { code, .. } if code == "PopReceiptMismatch" || code == "MessageNotFound")
}

/// A failed entry of `call`. A delete or visibility update that fails is never the request's fault (the
/// redrive tries it again later); a send is when the service refused it for good.
fn failure(entry_id: &str, call: &str, error: &Error, sender_fault: bool) -> BatchFailure {
    BatchFailure {
        entry_id: entry_id.to_owned(),
        code: call.to_owned(),
        message: error.to_string(),
        sender_fault,
    }
}

impl StorageQueue {
    /// The queue behind `client` (signed by the caller).
    pub fn new(client: QueueClient) -> Self {
        Self::with_client(Client::Given(Arc::new(client)))
    }

    /// The queue at `url` (unsigned), signed with `account`'s key and signed anew every hour.
    pub fn signed(url: azure_core::http::Url, account: &Account) -> Self {
        Self::with_client(Client::Signed {
            url,
            account: account.clone(),
            current: Arc::default(),
        })
    }

    fn with_client(client: Client) -> Self {
        Self {
            url: client.url(),
            client,
            visibility_timeout: 30,
            message_ttl_seconds: None,
            held: Arc::default(),
        }
    }

    /// Received messages stay hidden for `visibility_timeout` (1 s to 7 days) unless a receive says.
    #[must_use]
    pub fn with_visibility_timeout(mut self, visibility_timeout: Duration) -> Self {
        let seconds = visibility_timeout
            .as_secs()
            .clamp(1, MAX_VISIBILITY_SECONDS.unsigned_abs().into());
        self.visibility_timeout = i32::try_from(seconds).unwrap_or(i32::MAX);
        self
    }

    /// Messages sent are kept for `seconds` (`-1`: never expire).
    #[must_use]
    pub fn with_message_ttl(mut self, seconds: i64) -> Self {
        self.message_ttl_seconds = Some(i32::try_from(seconds).unwrap_or(i32::MAX));
        self
    }

    /// A dead letter: what it is sent waits for a redrive however long that takes, it never expires.
    #[must_use]
    pub fn never_expiring(self) -> Self {
        self.with_message_ttl(-1)
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

    async fn receive_once(&self, max: i32, visibility_timeout: i32) -> Result<Vec<ReceivedMessage>> {
        let operation = self.operation("ReceiveMessages");
        let options = QueueClientReceiveMessagesOptions {
            number_of_messages: Some(max.clamp(1, MAX_RECEIVE)),
            visibility_timeout: Some(visibility_timeout),
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
        let mut messages = Vec::new();
        for message in received.items.unwrap_or_default() {
            let (Some(id), Some(pop_receipt)) = (message.message_id, message.pop_receipt) else {
                tracing::warn!(queue = %self.url, "a received message has no MessageId or PopReceipt; skipped");
                continue;
            };
            let (body, attributes) = envelope::decode(message.message_text.as_deref().unwrap_or_default());
            let count = message.dequeue_count.unwrap_or(1);
            let receipt = receipt_of(&id, &pop_receipt);
            self.hold(&receipt, pop_receipt, visibility_timeout);
            messages.push(ReceivedMessage {
                message_id: id,
                receipt_handle: receipt,
                body,
                attributes,
                system_attributes: system_attributes(count, message.insertion_time),
            });
        }
        Ok(messages)
    }

    /// Makes one delivery visible again after `seconds`, keeping the pop receipt the service answers with.
    async fn update(&self, receipt: &str, seconds: i32) -> Result<()> {
        let (id, pop_receipt) = self.current(receipt);
        let seconds = seconds.clamp(0, MAX_VISIBILITY_SECONDS);
        let response = self
            .client
            .get()?
            .update_message(&id, &pop_receipt, seconds, None)
            .await
            .map_err(|e| from_azure(self.operation("UpdateMessage"), e))?;
        // The old pop receipt is void from now on.
        match response.headers().get_optional_str(&"x-ms-popreceipt".into()) {
            Some(next) => {
                self.hold(receipt, next.to_owned(), seconds);
                Ok(())
            }
            None => Err(Error::Response {
                operation: self.operation("UpdateMessage"),
                detail: "the answer has no x-ms-popreceipt".to_owned(),
            }),
        }
    }

    /// Deletes one delivery with its newest pop receipt.
    async fn delete_one(&self, receipt: &str) -> Result<()> {
        let (id, pop_receipt) = self.current(receipt);
        self.client
            .get()?
            .delete_message(&id, &pop_receipt, None)
            .await
            .map_err(|e| from_azure(self.operation("DeleteMessage"), e))?;
        self.release(receipt);
        Ok(())
    }

    /// The outcome of one call per entry; a delivery that is over is forgotten.
    fn outcome(&self, results: Vec<(&String, &str, Result<()>)>, call: &str) -> BatchOutcome {
        let mut outcome = BatchOutcome::default();
        for (entry, receipt, result) in results {
            match result {
                Ok(()) => outcome.succeeded.push(entry.clone()),
                Err(error) => {
                    tracing::debug!(queue = %self.url, %error, "{call} failed");
                    if delivery_over(&error) {
                        self.release(receipt);
                    }
                    outcome.failed.push(failure(entry, call, &error, false));
                }
            }
        }
        outcome
    }
}

impl MessageQueue for StorageQueue {
    fn url(&self) -> &str {
        &self.url
    }

    async fn receive(&self, request: &Receive) -> Result<Vec<ReceivedMessage>> {
        let visibility = request
            .visibility_timeout_seconds
            .unwrap_or(self.visibility_timeout);
        let wait = Duration::from_secs(u64::try_from(request.wait_seconds).unwrap_or(0));
        let deadline = Instant::now() + wait;
        let mut pause = Duration::from_millis(100);
        loop {
            let messages = self.receive_once(request.max, visibility).await?;
            let now = Instant::now();
            if !messages.is_empty() || now >= deadline {
                return Ok(messages);
            }
            tokio::time::sleep(pause.min(deadline - now)).await;
            pause = (pause * 2).min(Duration::from_secs(1));
        }
    }

    async fn delete(&self, receipts: &[(String, String)]) -> Result<BatchOutcome> {
        let deletes = receipts
            .iter()
            .map(|(entry, receipt)| async move { (entry, receipt.as_str(), self.delete_one(receipt).await) });
        Ok(self.outcome(join_all(deletes).await, "DeleteMessage"))
    }

    async fn change_visibility(&self, changes: &[VisibilityChange]) -> Result<BatchOutcome> {
        let updates = changes.iter().map(|change| async move {
            let result = self.update(&change.receipt, change.seconds).await;
            (&change.entry_id, change.receipt.as_str(), result)
        });
        Ok(self.outcome(join_all(updates).await, "UpdateMessage"))
    }

    async fn send(&self, messages: &[OutgoingMessage]) -> Result<BatchOutcome> {
        let sent = join_all(messages.iter().map(|m| self.send_one(m))).await;
        Ok(messages
            .iter()
            .zip(sent)
            .map(|(message, result)| {
                let id = &message.entry_id;
                let result = result.map_err(|error| {
                    let permanent = error.kind() == ErrorKind::Permanent;
                    failure(id, "SendMessage", &error, permanent)
                });
                (id.clone(), result)
            })
            .collect())
    }

    /// The body and attributes in the envelope; a message larger than the service takes is refused here
    /// (an `Invalid` error: no retry changes it).
    async fn send_one(&self, message: &OutgoingMessage) -> Result<()> {
        let operation = self.operation("SendMessage");
        let text = envelope::encode(&message.body, &message.attributes);
        if text.len() > MAX_MESSAGE_BYTES {
            return Err(Error::Invalid {
                operation,
                detail: format!(
                    "the message is {} bytes, more than a Storage Queue message holds ({MAX_MESSAGE_BYTES})",
                    text.len()
                ),
            });
        }
        let content = QueueMessage {
            message_text: Some(text),
        }
        .try_into()
        .map_err(|e| from_azure(operation.clone(), e))?;
        let options = QueueClientSendMessageOptions {
            message_time_to_live: self.message_ttl_seconds,
            ..Default::default()
        };
        self.client
            .get()?
            .send_message(content, Some(options))
            .await
            .map_err(|e| from_azure(operation, e))?;
        Ok(())
    }

    /// The envelope has no attribute limit.
    fn attribute_limit(&self) -> Option<usize> {
        None
    }

    fn fits(&self, message: &OutgoingMessage) -> bool {
        envelope::encode(&message.body, &message.attributes).len() <= MAX_MESSAGE_BYTES
    }
}

/// The system attributes of a received message as SQS names them: its dequeue count, and when it was
/// inserted (`SentTimestamp`, milliseconds since the epoch).
fn system_attributes(count: i64, inserted: Option<time::OffsetDateTime>) -> BTreeMap<String, String> {
    let mut attributes = BTreeMap::from([("ApproximateReceiveCount".to_owned(), count.to_string())]);
    if let Some(at) = inserted {
        let millis = at.unix_timestamp_nanos() / 1_000_000;
        attributes.insert("SentTimestamp".to_owned(), millis.to_string());
    }
    attributes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_receipt_names_the_delivery() {
        assert_eq!(
            parse_receipt(&receipt_of("id-1", "AgAAAA==")),
            ("id-1", "AgAAAA==")
        );
    }

    #[test]
    fn a_message_fits_while_its_envelope_does() {
        let url = azure_core::http::Url::parse("http://127.0.0.1:1/acct/q").unwrap();
        let queue = StorageQueue::new(QueueClient::new(url, None, None).unwrap());
        let message = |body: String| OutgoingMessage {
            entry_id: "0".into(),
            body,
            attributes: BTreeMap::new(),
            group_id: None,
            deduplication_id: None,
        };
        assert!(queue.fits(&message("x".repeat(MAX_MESSAGE_BYTES))));
        // Quotes double when the body is put in the envelope: a body that fitted the queue may not.
        let mut quoted = message("\"".repeat(40_000));
        assert!(queue.fits(&quoted), "no attributes: the bare body");
        quoted.attributes.insert(
            "event".into(),
            crate::cloud::queue::reason_attribute("OrderPlaced"),
        );
        assert!(!queue.fits(&quoted), "in the envelope: too large");
        assert_eq!(queue.attribute_limit(), None);
        assert_eq!(queue.url(), "http://127.0.0.1:1/acct/q");
    }
}
