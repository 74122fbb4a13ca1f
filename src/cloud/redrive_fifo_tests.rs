//! A redrive's copies on FIFO queues: in the original's group, with a deduplication id of their own that
//! a second copy of the same redrive shares, and without FIFO ids on a standard destination.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;

use super::*;
use crate::cloud::{fake::FakeQueues, queue::MessageQueue};

fn fifo_ids(group: &str, deduplication: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("MessageGroupId".to_owned(), group.to_owned()),
        ("MessageDeduplicationId".to_owned(), deduplication.to_owned()),
    ])
}

fn outgoing(body: &str, group: &str, deduplication: &str) -> OutgoingMessage {
    OutgoingMessage {
        entry_id: "0".into(),
        body: body.into(),
        attributes: BTreeMap::new(),
        group_id: Some(group.into()),
        deduplication_id: Some(deduplication.into()),
    }
}

#[tokio::test]
async fn a_fifo_redrive_within_the_deduplication_interval_is_not_dropped_as_the_original() {
    let account = FakeQueues::default();
    let (work, dead) = (account.queue("work.fifo"), account.queue("dead.fifo"));
    // The original went through the work queue (its deduplication id is remembered there), failed, and
    // was moved to the dead letter with its ids.
    work.send_one(&outgoing("order 7", "customer-7", "original-7"))
        .await
        .unwrap();
    let taken = work.receive(&Receive::work(10, 0, None)).await.unwrap();
    work.delete(&[("0".into(), taken[0].receipt_handle.clone())])
        .await
        .unwrap();
    dead.push("order 7", BTreeMap::new(), fifo_ids("customer-7", "original-7"));

    let home = Destination::Queue("work.fifo".into());
    let totals = move_messages(&account, "dead.fifo", &home, 10, None, Some("fix-1"))
        .await
        .unwrap();
    assert_eq!(totals.moved, 1);
    let back = work.held();
    assert_eq!(back.len(), 1, "the copy is not taken for the original");
    assert_eq!(back[0].group_id.as_deref(), Some("customer-7"));
    assert!(dead.held().is_empty());
}

#[test]
fn copies_fit_their_destination() {
    let message = |system_attributes| ReceivedMessage {
        message_id: "m-1".into(),
        receipt_handle: "r".into(),
        body: "b".into(),
        attributes: BTreeMap::new(),
        system_attributes,
    };
    let fifo = message(fifo_ids("customer-7", "original-7"));
    let first = copy(&fifo, "m0".into(), Some("fix-1"), true, Some(10));
    let again = copy(&fifo, "m0".into(), Some("fix-1"), true, Some(10));
    assert_eq!(first.group_id.as_deref(), Some("customer-7"));
    assert_eq!(
        first.deduplication_id, again.deduplication_id,
        "a second copy of the same redrive is dropped"
    );
    assert_ne!(first.deduplication_id.as_deref(), Some("original-7"));
    let other = copy(&fifo, "m0".into(), Some("fix-2"), true, Some(10));
    assert_ne!(
        first.deduplication_id, other.deduplication_id,
        "another redrive moves it again"
    );

    let to_standard = copy(&fifo, "m0".into(), None, false, Some(10));
    assert_eq!((to_standard.group_id, to_standard.deduplication_id), (None, None));
    let from_standard = copy(&message(BTreeMap::new()), "m0".into(), None, true, Some(10));
    assert_eq!(from_standard.group_id.as_deref(), Some("m-1"), "its own group");
    assert!(from_standard.deduplication_id.is_some());
}
