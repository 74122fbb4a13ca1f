//! The fallback redrive: move messages out of a dead-letter queue by receiving them, sending copies (body,
//! message attributes, FIFO group) to the destination and deleting the originals. A copy sent to a FIFO
//! queue keeps its group (a message that has none, from a standard dead letter, is its own group) and
//! gets a deduplication id of its own, derived from the redrive and the dead letter's message id: the
//! original's id would make the destination drop the copy as a duplicate of the original if it came within
//! SQS's 5-minute deduplication interval (and the dead letter would be deleted: lost), while the derived
//! one drops only a second copy of the same redrive (a crash between send and delete). A copy sent to a
//! standard queue carries no FIFO ids, which a standard queue refuses.
//! Used when the cloud has no server-side move task (an `Unsupported` error from
//! [`QueueMessages::start_message_move`]), e.g. on emulators, and on Azure. A [`Mover`] gives the dead
//! letter as a [`MessageQueue`] and the places its messages go as [`Destinations`] (SQS queues of the
//! account, or on Azure Storage Queues and Event Hubs).
//!
//! Delivery is at least once: a message is deleted only after its copy was accepted, so a crash between
//! the two leaves a duplicate, never a loss; every copy carries [`ORIGINAL_ID_ATTRIBUTE`], the same on
//! both, for consumers to drop the second. Messages whose copy failed stay in the dead-letter queue and
//! reappear after the visibility timeout.

use std::{collections::BTreeMap, future::Future, time::Duration};

use super::{
    Result,
    queue::{
        BatchFailure, BatchOutcome, DEAD_LETTER_REASON, MessageQueue, OutgoingMessage, Receive,
        ReceivedMessage, VisibilityChange, copy_deduplication_id, dead_lettered_from, with_attribute,
    },
    traits::QueueMessages,
};

/// Where a redrive can send messages, by the address [`Destination::route`] gives.
pub trait Destinations: Send + Sync {
    /// Sends up to 10 messages to `url`. Per-message failures are reported in the outcome.
    fn send_to(
        &self,
        url: &str,
        messages: &[OutgoingMessage],
    ) -> impl Future<Output = Result<BatchOutcome>> + Send;

    /// The most attributes a message may carry at `url`, or `None` for no limit.
    fn attribute_limit(&self, url: &str) -> Option<usize>;

    /// Whether `url` is a FIFO queue (its messages need a group and a deduplication id).
    fn is_fifo(&self, _url: &str) -> bool {
        false
    }
}

/// The queues of an account are the destinations of its dead letters (SQS).
impl<T: QueueMessages> Destinations for T {
    async fn send_to(&self, url: &str, messages: &[OutgoingMessage]) -> Result<BatchOutcome> {
        self.message_queue(url).send(messages).await
    }

    fn attribute_limit(&self, url: &str) -> Option<usize> {
        self.message_queue(url).attribute_limit()
    }

    fn is_fifo(&self, url: &str) -> bool {
        self.message_queue(url).is_fifo()
    }
}

/// What a fallback redrive moves with: the dead-letter queue it receives from and deletes in (by its
/// URL), and the destinations it sends to.
pub trait Mover: Destinations {
    /// The handle on a dead-letter queue.
    type Queue: MessageQueue;

    /// The dead-letter queue at `url`.
    fn dead_letter_queue(&self, url: &str) -> Self::Queue;
}

/// An account's dead letters and destinations are its own queues (SQS).
impl<T: QueueMessages> Mover for T {
    type Queue = T::Queue;

    fn dead_letter_queue(&self, url: &str) -> T::Queue {
        self.message_queue(url)
    }
}

/// Where redriven messages go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Destination {
    /// Every message to this queue URL.
    Queue(String),
    /// Each message back to the queue it came from: looked up by the message's
    /// `DeadLetterQueueSourceArn` in `by_arn` (ARN to URL), else by the queue a worker recorded in its
    /// dead-letter reason (when it is one of the sources), else `default` (the only source queue, when
    /// there is exactly one; some servers do not record the source on the message).
    Sources {
        /// Source queue ARN to URL.
        by_arn: BTreeMap<String, String>,
        /// Where messages without a known source go; `None` leaves them in the dead-letter queue.
        default: Option<String>,
    },
}

impl Destination {
    /// The URL this message goes to, if it can be routed.
    pub fn route(&self, message: &ReceivedMessage) -> Option<&str> {
        match self {
            Self::Queue(url) => Some(url),
            Self::Sources { by_arn, default } => {
                if let Some(url) = message.dead_letter_source_arn().and_then(|arn| by_arn.get(arn)) {
                    return Some(url);
                }
                // A message that names where it came from goes only there: to the default it could
                // land in a queue of another kind (an event in a Storage Queue).
                match dead_lettered_from(&message.attributes) {
                    Some(origin) => by_arn.values().find(|source| **source == origin),
                    None => default.as_ref(),
                }
                .map(String::as_str)
            }
        }
    }
}

/// The attribute a redriven copy carries: the id of the redrive that moved it.
pub const REDRIVE_ATTRIBUTE: &str = "tributary-redrive";

/// The redrive that moved `message` back before, if any.
fn moved_by(message: &ReceivedMessage) -> Option<&str> {
    message.attributes.get(REDRIVE_ATTRIBUTE)?.string_value.as_deref()
}

/// The attribute every redriven copy carries: the id of the message it is a copy of, as the dead letter
/// first held it. Copies of one message carry the same id (a second copy after a crash between send and
/// delete, or a copy of a copy that failed again), so a consumer can recognise them.
pub const ORIGINAL_ID_ATTRIBUTE: &str = "tributary-original-message-id";

/// The original id a copy of `message` carries: the one it carries already (it was redriven before),
/// else its own.
pub fn original_id(message: &ReceivedMessage) -> &str {
    message
        .attributes
        .get(ORIGINAL_ID_ATTRIBUTE)
        .and_then(|attribute| attribute.string_value.as_deref())
        .unwrap_or(&message.message_id)
}

/// What a redrive's copies are deduplicated by when it has no id of its own.
const REDRIVE: &str = "redrive";

/// The copy of `message` that goes back as batch entry `entry_id`: its FIFO ids fitted to the destination
/// (`fifo`), without the dead-letter reason (history, not part of it), with its [`original_id`] and marked
/// as moved by `redrive`, each if the destination has an attribute slot left (`limit`: SQS allows 10).
fn copy(
    message: &ReceivedMessage,
    entry_id: String,
    redrive: Option<&str>,
    fifo: bool,
    limit: Option<usize>,
) -> OutgoingMessage {
    let mut copy = message.to_outgoing(entry_id);
    if fifo {
        copy.group_id = copy.group_id.or_else(|| Some(message.message_id.clone()));
        let purpose = redrive.map_or_else(|| REDRIVE.to_owned(), |id| format!("{REDRIVE}-{id}"));
        copy.deduplication_id = Some(copy_deduplication_id(&purpose, &message.message_id));
    } else {
        copy.group_id = None;
        copy.deduplication_id = None;
    }
    // The original id goes first: a consumer's way to drop a second copy outranks the redrive's mark
    // when only one attribute slot is left.
    let id = original_id(message);
    copy.attributes.remove(DEAD_LETTER_REASON);
    copy.attributes = with_attribute(copy.attributes, ORIGINAL_ID_ATTRIBUTE, id, limit);
    marked(copy, redrive, limit)
}

/// `message` as it goes back: without the dead-letter reason (history, not part of it), marked as moved
/// by `redrive` if the destination has an attribute slot left (`limit`: SQS allows 10).
fn marked(mut message: OutgoingMessage, redrive: Option<&str>, limit: Option<usize>) -> OutgoingMessage {
    message.attributes.remove(DEAD_LETTER_REASON);
    if let Some(id) = redrive {
        message.attributes = with_attribute(message.attributes, REDRIVE_ATTRIBUTE, id, limit);
    }
    message
}

/// What one or more rounds of the fallback did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MoveTotals {
    /// Messages received from the dead-letter queue.
    pub received: u64,
    /// Messages sent to their destination and deleted from the dead-letter queue.
    pub moved: u64,
    /// Messages left in place because no destination was known for them.
    pub unroutable: u64,
    /// Receipts of the messages left in place because this redrive moved them already: they failed again
    /// and came back. [`move_messages`] makes them visible again when it is done.
    pub again: Vec<String>,
    /// Sends or deletes that failed (the message stays, or may be duplicated if only the delete failed).
    pub failed: Vec<BatchFailure>,
}

impl MoveTotals {
    fn add(&mut self, other: Self) {
        self.received += other.received;
        self.moved += other.moved;
        self.unroutable += other.unroutable;
        self.again.extend(other.again);
        self.failed.extend(other.failed);
    }
}

/// One round: receive up to 10 messages from the dead letter at `source_url`, copy them to their destination, delete the
/// ones copied. `visibility_timeout_seconds` hides the received messages from other receivers meanwhile.
/// With `redrive`, each copy carries [`REDRIVE_ATTRIBUTE`] with that id (when the message has an attribute
/// slot left), and a message that already carries it is left in place: this redrive moved it before, and
/// it failed again (the workers keep a message's attributes when they dead-letter it).
pub async fn move_round<M: Mover>(
    mover: &M,
    source_url: &str,
    destination: &Destination,
    visibility_timeout_seconds: i32,
    redrive: Option<&str>,
) -> Result<MoveTotals> {
    let source = mover.dead_letter_queue(source_url);
    let messages = source
        .receive(&Receive::to_move(10, visibility_timeout_seconds))
        .await?;
    let mut totals = MoveTotals {
        received: messages.len() as u64,
        ..MoveTotals::default()
    };
    // Group by destination so each destination gets one batch.
    let mut batches: BTreeMap<&str, Vec<(String, &ReceivedMessage)>> = BTreeMap::new();
    for message in &messages {
        if redrive.is_some() && moved_by(message) == redrive {
            totals.again.push(message.receipt_handle.clone());
        }
    }
    for (index, message) in messages.iter().enumerate() {
        if redrive.is_some() && moved_by(message) == redrive {
            continue;
        }
        match destination.route(message) {
            Some(url) => batches
                .entry(url)
                .or_default()
                .push((format!("m{index}"), message)),
            None => totals.unroutable += 1,
        }
    }
    for (url, entries) in batches {
        let (fifo, limit) = (mover.is_fifo(url), mover.attribute_limit(url));
        let outgoing: Vec<_> = entries
            .iter()
            .map(|(id, m)| copy(m, id.clone(), redrive, fifo, limit))
            .collect();
        let sent = mover.send_to(url, &outgoing).await?;
        totals.failed.extend(sent.failed);
        let receipts: Vec<(String, String)> = entries
            .iter()
            .filter(|(id, _)| sent.succeeded.contains(id))
            .map(|(id, m)| (id.clone(), m.receipt_handle.clone()))
            .collect();
        if receipts.is_empty() {
            continue;
        }
        let deleted = source.delete(&receipts).await?;
        totals.moved += deleted.succeeded.len() as u64;
        totals.failed.extend(deleted.failed);
    }
    Ok(totals)
}

/// Rounds of [`move_round`] until the dead-letter queue answers with no message, a round moves nothing
/// (everything left failed, is unroutable or was moved by this `redrive` before), or `limit` messages were
/// moved.
/// `max_per_second` throttles between rounds, like the server-side task's `MaxNumberOfMessagesPerSecond`.
pub async fn move_messages<M: Mover>(
    mover: &M,
    source_url: &str,
    destination: &Destination,
    limit: u64,
    max_per_second: Option<u32>,
    redrive: Option<&str>,
) -> Result<MoveTotals> {
    // Long enough that a round finishes before its messages become visible again.
    const VISIBILITY_TIMEOUT_SECONDS: i32 = 60;
    let mut totals = MoveTotals::default();
    while totals.moved < limit {
        let round = move_round(
            mover,
            source_url,
            destination,
            VISIBILITY_TIMEOUT_SECONDS,
            redrive,
        )
        .await?;
        let (received, moved, again) = (round.received, round.moved, round.again.len());
        totals.add(round);
        // A round of messages this redrive moved before (hidden until the end) is progress too.
        if received == 0 || moved + again as u64 == 0 {
            break;
        }
        if let Some(rate) = max_per_second.filter(|rate| *rate > 0) {
            tokio::time::sleep(Duration::from_secs_f64(moved as f64 / f64::from(rate))).await;
        }
    }
    // Back in sight: they stay in the dead letter, for a later redrive or a look.
    for chunk in totals.again.chunks(10) {
        let entries: Vec<VisibilityChange> = chunk
            .iter()
            .enumerate()
            .map(|(index, receipt)| VisibilityChange {
                entry_id: format!("m{index}"),
                receipt: receipt.clone(),
                seconds: 0,
            })
            .collect();
        if let Err(error) = mover
            .dead_letter_queue(source_url)
            .change_visibility(&entries)
            .await
        {
            tracing::warn!(%error, "messages that came back could not be made visible again; they reappear later");
        }
    }
    Ok(totals)
}

#[cfg(test)]
#[path = "redrive_fifo_tests.rs"]
mod fifo_tests;

#[cfg(test)]
#[path = "redrive_origin_tests.rs"]
mod origin_tests;

#[cfg(test)]
mod tests {
    use super::*;

    fn message(source: Option<&str>) -> ReceivedMessage {
        let mut system_attributes = BTreeMap::new();
        if let Some(arn) = source {
            system_attributes.insert("DeadLetterQueueSourceArn".to_owned(), arn.to_owned());
        }
        ReceivedMessage {
            message_id: "id".into(),
            receipt_handle: "receipt".into(),
            body: "body".into(),
            attributes: BTreeMap::new(),
            system_attributes,
        }
    }

    #[test]
    fn copies_go_back_without_the_reason_and_with_the_redrive_id() {
        let mut received = message(None);
        received.attributes = crate::cloud::queue::dead_letter_attributes(&BTreeMap::new(), "{}", Some(10));
        let copy = marked(received.to_outgoing("m0"), Some("fix-1"), Some(10));
        assert!(!copy.attributes.contains_key(DEAD_LETTER_REASON));
        assert_eq!(
            copy.attributes[REDRIVE_ATTRIBUTE].string_value.as_deref(),
            Some("fix-1")
        );
        received.attributes = copy.attributes;
        assert_eq!(
            moved_by(&received),
            Some("fix-1"),
            "recognised when it comes back"
        );

        let full: BTreeMap<_, _> = (0..10)
            .map(|i| (format!("a{i}"), crate::cloud::queue::reason_attribute("v")))
            .collect();
        received.attributes = full;
        let sqs = marked(received.to_outgoing("m0"), Some("fix-1"), Some(10));
        assert!(
            !sqs.attributes.contains_key(REDRIVE_ATTRIBUTE),
            "no slot left on SQS"
        );
        let azure = marked(received.to_outgoing("m0"), Some("fix-1"), None);
        assert!(
            azure.attributes.contains_key(REDRIVE_ATTRIBUTE),
            "no limit on azure"
        );
    }

    #[test]
    fn a_recorded_origin_that_is_no_source_is_not_sent_to_the_default() {
        let only = Destination::Sources {
            by_arn: BTreeMap::from([("url-a".to_owned(), "url-a".to_owned())]),
            default: Some("url-a".into()),
        };
        let mut event = message(None);
        event.attributes = crate::cloud::queue::dead_letter_attributes(
            &BTreeMap::new(),
            r#"{"queue":"kafka://broker/telemetry","reason":"x"}"#,
            None,
        );
        assert_eq!(only.route(&event), None);
        assert_eq!(
            only.route(&message(None)),
            Some("url-a"),
            "no origin recorded: the default"
        );
    }

    #[test]
    fn routes_by_source_arn_then_default() {
        let destination = Destination::Sources {
            by_arn: BTreeMap::from([("arn:a".to_owned(), "url-a".to_owned())]),
            default: Some("url-default".into()),
        };
        assert_eq!(destination.route(&message(Some("arn:a"))), Some("url-a"));
        assert_eq!(destination.route(&message(Some("arn:b"))), Some("url-default"));
        assert_eq!(destination.route(&message(None)), Some("url-default"));
        let no_default = Destination::Sources {
            by_arn: BTreeMap::new(),
            default: None,
        };
        assert_eq!(no_default.route(&message(None)), None);
        let two = Destination::Sources {
            by_arn: BTreeMap::from([
                ("arn:a".to_owned(), "url-a".to_owned()),
                ("arn:b".to_owned(), "url-b".to_owned()),
            ]),
            default: None,
        };
        let mut from_worker = message(None);
        from_worker.attributes = crate::cloud::queue::dead_letter_attributes(
            &BTreeMap::new(),
            r#"{"queue":"url-b","reason":"x"}"#,
            Some(10),
        );
        assert_eq!(
            two.route(&from_worker),
            Some("url-b"),
            "the queue the worker recorded"
        );
        from_worker.attributes = crate::cloud::queue::dead_letter_attributes(
            &BTreeMap::new(),
            r#"{"queue":"url-elsewhere","reason":"x"}"#,
            Some(10),
        );
        assert_eq!(two.route(&from_worker), None, "only a source queue");
        assert_eq!(Destination::Queue("q".into()).route(&message(None)), Some("q"));
    }

    fn from_source(arn: Option<&str>) -> BTreeMap<String, String> {
        arn.map(|arn| ("DeadLetterQueueSourceArn".to_owned(), arn.to_owned()))
            .into_iter()
            .collect()
    }

    #[tokio::test]
    #[allow(clippy::unwrap_used)]
    async fn a_batch_move_on_the_fake_routes_marks_and_leaves_what_it_cannot_move() {
        use crate::cloud::fake::FakeQueues;
        let account = FakeQueues::default();
        let dead = account.queue("dlq");
        for i in 0..11 {
            let reason = crate::cloud::queue::dead_letter_attributes(&BTreeMap::new(), "{}", Some(10));
            dead.push(&format!("a{i}"), reason, from_source(Some("arn:a")));
        }
        dead.push("b", BTreeMap::new(), from_source(Some("arn:b")));
        dead.push("lost", BTreeMap::new(), from_source(None));
        let home = Destination::Sources {
            by_arn: BTreeMap::from([
                ("arn:a".to_owned(), "url-a".to_owned()),
                ("arn:b".to_owned(), "url-b".to_owned()),
            ]),
            default: None,
        };

        let totals = move_messages(&account, "dlq", &home, 100, None, Some("fix-1"))
            .await
            .unwrap();
        assert_eq!((totals.received, totals.moved, totals.unroutable), (13, 12, 1));
        let a = account.queue("url-a").held();
        assert_eq!(a.len(), 11);
        assert!(a.iter().all(|m| !m.attributes.contains_key(DEAD_LETTER_REASON)
            && m.attributes[REDRIVE_ATTRIBUTE].string_value.as_deref() == Some("fix-1")));
        assert_eq!(account.queue("url-b").held().len(), 1);
        assert_eq!(dead.held().len(), 1, "the unroutable one stays");
        assert_eq!(dead.visible(), 0, "hidden for the round's visibility timeout");

        // A copy this redrive moved before that failed again stays, visible again for a look.
        let again = account.queue("url-a").held().remove(0).attributes;
        dead.push("again", again, from_source(Some("arn:a")));
        let totals = move_messages(&account, "dlq", &home, 100, None, Some("fix-1"))
            .await
            .unwrap();
        assert_eq!((totals.moved, totals.again.len()), (0, 1));
        assert_eq!(dead.visible(), 1, "released when the redrive is done");
    }
}
