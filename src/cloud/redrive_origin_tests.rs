//! A redrive's copies carry the id of the message they copy: the same on a second copy left by a crash
//! between send and delete, and kept when a copy that failed again is redriven once more.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;

use super::*;
use crate::cloud::{
    fake::{FakeQueue, FakeQueues},
    queue::{MessageAttribute, VisibilityChange, dead_letter_attributes},
};

/// The dead letter as a process killed before its delete left it: every delete is lost.
#[derive(Clone)]
struct NeverDeleted(FakeQueue);

impl MessageQueue for NeverDeleted {
    fn url(&self) -> &str {
        self.0.url()
    }
    async fn receive(&self, request: &Receive) -> Result<Vec<ReceivedMessage>> {
        self.0.receive(request).await
    }
    async fn delete(&self, _receipts: &[(String, String)]) -> Result<BatchOutcome> {
        Ok(BatchOutcome::default())
    }
    async fn change_visibility(&self, changes: &[VisibilityChange]) -> Result<BatchOutcome> {
        self.0.change_visibility(changes).await
    }
    async fn send(&self, messages: &[OutgoingMessage]) -> Result<BatchOutcome> {
        self.0.send(messages).await
    }
    async fn send_one(&self, message: &OutgoingMessage) -> Result<()> {
        self.0.send_one(message).await
    }
    fn attribute_limit(&self) -> Option<usize> {
        self.0.attribute_limit()
    }
}

/// An account whose dead letter loses its deletes.
struct CrashBeforeDelete(FakeQueues);

impl Destinations for CrashBeforeDelete {
    async fn send_to(&self, url: &str, messages: &[OutgoingMessage]) -> Result<BatchOutcome> {
        self.0.send_to(url, messages).await
    }
    fn attribute_limit(&self, url: &str) -> Option<usize> {
        Destinations::attribute_limit(&self.0, url)
    }
}

impl Mover for CrashBeforeDelete {
    type Queue = NeverDeleted;
    fn dead_letter_queue(&self, url: &str) -> NeverDeleted {
        NeverDeleted(self.0.queue(url))
    }
}

fn original_ids(held: &[crate::cloud::fake::Held]) -> Vec<(String, String)> {
    let mut ids: Vec<_> = held
        .iter()
        .map(|m| {
            let id = m
                .attributes
                .get(ORIGINAL_ID_ATTRIBUTE)
                .and_then(|a| a.string_value.clone());
            (m.body.clone(), id.unwrap_or_default())
        })
        .collect();
    ids.sort();
    ids
}

#[tokio::test]
async fn a_second_copy_after_a_crash_between_send_and_delete_carries_the_same_original_id() {
    let account = FakeQueues::default();
    let dead = account.queue("dlq");
    for body in ["m1", "m2", "m3"] {
        dead.push(body, BTreeMap::new(), BTreeMap::new());
    }
    let home = Destination::Queue("q".into());
    // Killed after the send: the copies are out, the originals stay (visible again at once here).
    let crashed = CrashBeforeDelete(account.clone());
    let first = move_round(&crashed, "dlq", &home, 0, Some("fix-1"))
        .await
        .unwrap();
    assert_eq!((first.received, first.moved), (3, 0));
    assert_eq!(dead.held().len(), 3, "nothing deleted");

    let again = move_messages(&account, "dlq", &home, 10, None, Some("fix-1"))
        .await
        .unwrap();
    assert_eq!(again.moved, 3);
    assert!(dead.held().is_empty());

    let copies = original_ids(&account.queue("q").held());
    assert_eq!(copies.len(), 6, "at least once: each message twice");
    for pair in copies.chunks(2) {
        assert_eq!(pair[0], pair[1], "twins carry one original id");
        assert!(
            pair[0].1.starts_with("message-"),
            "the dead letter's id: {pair:?}"
        );
    }
    assert_ne!(copies[0].1, copies[2].1, "each message its own id");
}

#[test]
fn a_copy_redriven_again_keeps_the_first_original_id_and_it_outranks_the_redrive_mark() {
    let message = |attributes| ReceivedMessage {
        message_id: "dead-2".into(),
        receipt_handle: "r".into(),
        body: "b".into(),
        attributes,
        system_attributes: BTreeMap::new(),
    };
    let first = copy(
        &message(BTreeMap::new()),
        "m0".into(),
        Some("fix-1"),
        false,
        Some(10),
    );
    assert_eq!(
        first.attributes[ORIGINAL_ID_ATTRIBUTE].string_value.as_deref(),
        Some("dead-2")
    );
    // A worker dead-letters the copy again (its attributes kept, the reason added); a new redrive.
    let dead_again = message(dead_letter_attributes(&first.attributes, "{}", Some(10)));
    let second = copy(&dead_again, "m0".into(), Some("fix-2"), true, Some(10));
    assert_eq!(original_id(&dead_again), "dead-2");
    assert_eq!(
        second.attributes[ORIGINAL_ID_ATTRIBUTE].string_value.as_deref(),
        Some("dead-2")
    );
    assert!(!second.attributes.contains_key(DEAD_LETTER_REASON));

    // One slot left: the original id takes it.
    let nine: BTreeMap<String, MessageAttribute> = (0..9)
        .map(|i| (format!("a{i}"), crate::cloud::queue::reason_attribute("v")))
        .collect();
    let full = copy(&message(nine), "m0".into(), Some("fix-1"), false, Some(10));
    assert!(full.attributes.contains_key(ORIGINAL_ID_ATTRIBUTE));
    assert!(!full.attributes.contains_key(REDRIVE_ATTRIBUTE));
    assert_eq!(full.attributes.len(), 10);
}
