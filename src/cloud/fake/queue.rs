//! The message-queue contract in memory, for fast tests of what runs on it (the worker runtime, the
//! redrive): [`FakeQueue`] keeps messages with their visibility, receive counts and current receipt
//! handles as SQS does, and [`FakeQueues`] is an account of such queues by URL, with no server-side move
//! task (like the emulators). A FIFO fake ([`FakeQueue::fifo`]) keeps SQS's group rule (no message of a
//! group is handed out while an earlier one of it is in flight), requires group and deduplication ids and
//! drops a send whose deduplication id it saw before; a standard fake refuses both ids, as SQS does.

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use tokio::time::Instant;

use crate::cloud::{
    Error, Operation, Result,
    queue::{
        BatchFailure, BatchOutcome, MessageAttribute, MessageQueue, OutgoingMessage, Receive,
        ReceivedMessage, VisibilityChange,
    },
    traits::{MoveRequest, MoveTask, QueueMessages},
};

/// One queue in memory. Clones share the messages.
#[derive(Clone, Debug)]
pub struct FakeQueue {
    url: String,
    attribute_limit: Option<usize>,
    /// The largest message (body, attribute names and values) the queue takes, if it checks before
    /// sending.
    max_bytes: Option<usize>,
    fifo: bool,
    state: Arc<Mutex<State>>,
}

#[derive(Debug, Default)]
struct State {
    messages: Vec<Stored>,
    sequence: u64,
    /// The deduplication ids of the messages sent to a FIFO fake (kept forever, not 5 minutes).
    deduplication_ids: HashSet<String>,
}

#[derive(Clone, Debug)]
struct Stored {
    id: String,
    body: String,
    attributes: BTreeMap<String, MessageAttribute>,
    system_attributes: BTreeMap<String, String>,
    visible_at: Instant,
    receive_count: u32,
    /// The receipt handle of the newest receive; older ones are stale.
    receipt: Option<String>,
}

/// A message in a fake queue, as a test looks at it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Held {
    /// The body.
    pub body: String,
    /// The message attributes.
    pub attributes: BTreeMap<String, MessageAttribute>,
    /// How often it was received.
    pub receive_count: u32,
    /// The FIFO message group.
    pub group_id: Option<String>,
}

const VISIBILITY_SECONDS: i32 = 30;
const GROUP_ID: &str = "MessageGroupId";
const DEDUPLICATION_ID: &str = "MessageDeduplicationId";

fn stale(entry_id: &str) -> BatchFailure {
    BatchFailure {
        entry_id: entry_id.to_owned(),
        code: "ReceiptHandleIsInvalid".to_owned(),
        message: "no message has this receipt handle".to_owned(),
        sender_fault: true,
    }
}

impl FakeQueue {
    /// An empty queue at `url` with SQS's attribute limit (10).
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            attribute_limit: Some(10),
            max_bytes: None,
            fifo: false,
            state: Arc::default(),
        }
    }

    /// An empty FIFO queue at `url`.
    pub fn fifo(url: impl Into<String>) -> Self {
        Self {
            fifo: true,
            ..Self::new(url)
        }
    }

    /// The same queue with another attribute limit (`None`: none, as on Azure).
    #[must_use]
    pub fn with_attribute_limit(mut self, limit: Option<usize>) -> Self {
        self.attribute_limit = limit;
        self
    }

    /// The same queue refusing messages larger than `bytes` (body, attribute names and values).
    #[must_use]
    pub fn with_max_bytes(mut self, bytes: usize) -> Self {
        self.max_bytes = Some(bytes);
        self
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Adds a message, visible at once, with `system_attributes` (e.g. `DeadLetterQueueSourceArn`).
    pub fn push(
        &self,
        body: &str,
        attributes: BTreeMap<String, MessageAttribute>,
        system_attributes: BTreeMap<String, String>,
    ) {
        let mut state = self.state();
        state.sequence += 1;
        let id = format!("message-{}", state.sequence);
        state.messages.push(Stored {
            id,
            body: body.to_owned(),
            attributes,
            system_attributes,
            visible_at: Instant::now(),
            receive_count: 0,
            receipt: None,
        });
    }

    /// Every message in the queue, visible or not, oldest first.
    pub fn held(&self) -> Vec<Held> {
        self.state()
            .messages
            .iter()
            .map(|m| Held {
                body: m.body.clone(),
                attributes: m.attributes.clone(),
                receive_count: m.receive_count,
                group_id: m.system_attributes.get(GROUP_ID).cloned(),
            })
            .collect()
    }

    /// The messages visible now.
    pub fn visible(&self) -> usize {
        let now = Instant::now();
        self.state()
            .messages
            .iter()
            .filter(|m| m.visible_at <= now)
            .count()
    }

    fn take(&self, request: &Receive) -> Vec<ReceivedMessage> {
        let now = Instant::now();
        let seconds = request.visibility_timeout_seconds.unwrap_or(VISIBILITY_SECONDS);
        let hidden_until = now + Duration::from_secs(u64::try_from(seconds).unwrap_or(0));
        let max = usize::try_from(request.max.clamp(1, 10)).unwrap_or(1);
        let mut state = self.state();
        let mut sequence = state.sequence;
        let mut received = Vec::new();
        // FIFO: a group whose oldest message is in flight hands out none of its messages.
        let mut blocked = HashSet::new();
        let fifo = self.fifo;
        let takeable = state.messages.iter_mut().filter(|m| {
            let group = m.system_attributes.get(GROUP_ID).filter(|_| fifo).cloned();
            let in_flight = m.visible_at > now;
            match group {
                Some(group) if in_flight || blocked.contains(&group) => {
                    blocked.insert(group);
                    false
                }
                _ => !in_flight,
            }
        });
        for message in takeable.take(max) {
            sequence += 1;
            let receipt = format!("receipt-{sequence}");
            message.receive_count += 1;
            message.visible_at = hidden_until;
            message.receipt = Some(receipt.clone());
            let mut system_attributes = message.system_attributes.clone();
            system_attributes.insert(
                "ApproximateReceiveCount".to_owned(),
                message.receive_count.to_string(),
            );
            received.push(ReceivedMessage {
                message_id: message.id.clone(),
                receipt_handle: receipt,
                body: message.body.clone(),
                attributes: message.attributes.clone(),
                system_attributes,
            });
        }
        state.sequence = sequence;
        received
    }

    fn check(&self, message: &OutgoingMessage) -> Result<()> {
        let ids = (message.group_id.is_some(), message.deduplication_id.is_some());
        let refused = if self.fifo {
            (ids != (true, true)).then_some("a FIFO queue needs MessageGroupId and MessageDeduplicationId")
        } else {
            (ids != (false, false)).then_some("MessageGroupId and MessageDeduplicationId are for FIFO queues")
        };
        if let Some(detail) = refused {
            return Err(Error::Invalid {
                operation: Operation::new("fake", "SendMessage", &self.url),
                detail: detail.to_owned(),
            });
        }
        if !self.fits(message)
            || self
                .attribute_limit
                .is_some_and(|max| message.attributes.len() > max)
        {
            return Err(Error::Invalid {
                operation: Operation::new("fake", "SendMessage", &self.url),
                detail: "the message is too large".to_owned(),
            });
        }
        Ok(())
    }

    /// Keeps a checked message, unless it is a FIFO duplicate: with its group and deduplication ids.
    fn accept(&self, message: &OutgoingMessage) {
        if let Some(id) = &message.deduplication_id
            && !self.state().deduplication_ids.insert(id.clone())
        {
            return;
        }
        let ids = [
            (GROUP_ID, &message.group_id),
            (DEDUPLICATION_ID, &message.deduplication_id),
        ];
        let system_attributes = ids
            .into_iter()
            .filter_map(|(name, value)| Some((name.to_owned(), value.clone()?)))
            .collect();
        self.push(&message.body, message.attributes.clone(), system_attributes);
    }
}

impl MessageQueue for FakeQueue {
    fn url(&self) -> &str {
        &self.url
    }

    async fn receive(&self, request: &Receive) -> Result<Vec<ReceivedMessage>> {
        let received = self.take(request);
        if received.is_empty() && request.wait_seconds > 0 {
            // A short wait, not the whole: enough that a receive loop does not spin.
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        Ok(received)
    }

    async fn delete(&self, receipts: &[(String, String)]) -> Result<BatchOutcome> {
        let mut state = self.state();
        let mut outcome = BatchOutcome::default();
        for (entry, receipt) in receipts {
            let before = state.messages.len();
            state.messages.retain(|m| m.receipt.as_ref() != Some(receipt));
            if state.messages.len() < before {
                outcome.succeeded.push(entry.clone());
            } else {
                outcome.failed.push(stale(entry));
            }
        }
        Ok(outcome)
    }

    async fn change_visibility(&self, changes: &[VisibilityChange]) -> Result<BatchOutcome> {
        let now = Instant::now();
        let mut state = self.state();
        let mut outcome = BatchOutcome::default();
        for change in changes {
            let seconds = u64::try_from(change.seconds).unwrap_or(0);
            match state
                .messages
                .iter_mut()
                .find(|m| m.receipt.as_ref() == Some(&change.receipt))
            {
                Some(message) => {
                    message.visible_at = now + Duration::from_secs(seconds);
                    outcome.succeeded.push(change.entry_id.clone());
                }
                None => outcome.failed.push(stale(&change.entry_id)),
            }
        }
        Ok(outcome)
    }

    async fn send(&self, messages: &[OutgoingMessage]) -> Result<BatchOutcome> {
        let mut outcome = BatchOutcome::default();
        for message in messages {
            match self.check(message) {
                Ok(()) => {
                    self.accept(message);
                    outcome.succeeded.push(message.entry_id.clone());
                }
                Err(error) => outcome.failed.push(BatchFailure {
                    entry_id: message.entry_id.clone(),
                    code: "InvalidMessageContents".to_owned(),
                    message: error.to_string(),
                    sender_fault: true,
                }),
            }
        }
        Ok(outcome)
    }

    async fn send_one(&self, message: &OutgoingMessage) -> Result<()> {
        self.check(message)?;
        self.accept(message);
        Ok(())
    }

    fn attribute_limit(&self) -> Option<usize> {
        self.attribute_limit
    }

    fn is_fifo(&self) -> bool {
        self.fifo
    }

    fn fits(&self, message: &OutgoingMessage) -> bool {
        let size = message.body.len()
            + message
                .attributes
                .iter()
                .map(|(name, a)| name.len() + a.string_value.as_ref().map_or(0, String::len))
                .sum::<usize>();
        self.max_bytes.is_none_or(|max| size <= max)
    }
}

/// An account of fake queues by URL (made on first use), without a server-side move task.
#[derive(Clone, Debug, Default)]
pub struct FakeQueues {
    queues: Arc<Mutex<HashMap<String, FakeQueue>>>,
}

impl FakeQueues {
    /// The queue at `url`, made empty on first use: FIFO if its name ends in `.fifo`, as on SQS.
    pub fn queue(&self, url: &str) -> FakeQueue {
        self.queues
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(url.to_owned())
            .or_insert_with(|| match url.ends_with(".fifo") {
                true => FakeQueue::fifo(url),
                false => FakeQueue::new(url),
            })
            .clone()
    }
}

impl QueueMessages for FakeQueues {
    type Queue = FakeQueue;

    fn message_queue(&self, url: &str) -> FakeQueue {
        self.queue(url)
    }

    async fn start_message_move(&self, request: &MoveRequest) -> Result<String> {
        Err(Error::Unsupported {
            operation: Operation::new("fake", "StartMessageMoveTask", &request.source_arn),
            detail: "the fake has no message-move task".to_owned(),
        })
    }

    async fn message_moves(&self, _source_arn: &str) -> Result<Vec<MoveTask>> {
        Ok(Vec::new())
    }
}
