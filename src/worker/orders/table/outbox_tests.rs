//! The relay's read decisions on the DynamoDB fake: oldest first across shards, every shard and the
//! earlier layout's partition read, an unreadable entry quarantined and kept.
#![allow(clippy::unwrap_used)]

use super::*;
use crate::{
    cloud::{Tables as _, fake::FakeAws},
    worker::orders::model::{Delivery, Item, OrderRequest},
};

const TABLE: &str = "orders";

fn event_body(order_id: &str) -> String {
    let request = OrderRequest {
        customer_id: "c-1".into(),
        items: vec![Item {
            sku: "sku-1".into(),
            quantity: 1,
            unit_price_cents: 100,
        }],
        region: "eu-west".into(),
        delivery: Delivery::Standard,
        idempotency_key: None,
    };
    serde_json::to_string(&OrderEvent::placed(order_id, &request)).unwrap()
}

fn s(value: &str) -> TableValue {
    TableValue::S(value.to_owned())
}

/// An entry as this version writes it, with `body` as its event.
fn entry(order_id: &str, recorded_at: i64, body: &str) -> TableItem {
    let mut item = TableItem::from([
        ("pk".to_owned(), s(&format!("ORDER#{order_id}"))),
        ("sk".to_owned(), s("OUTBOX")),
        ("event".to_owned(), s(body)),
        ("traceparent".to_owned(), s("00-t-s-01")),
        ("recordedAt".to_owned(), TableValue::N(recorded_at.to_string())),
    ]);
    item.extend(index_attributes(order_id, recorded_at).map(|(n, v)| (n.to_owned(), s(&v))));
    item
}

/// An entry as the earlier version wrote it: under the one partition `outbox = pending`.
fn legacy_entry(order_id: &str, recorded_at: i64) -> TableItem {
    let mut item = entry(order_id, recorded_at, &event_body(order_id));
    item.remove(SHARD_ATTRIBUTE);
    item.remove(AGE_ATTRIBUTE);
    item.insert("outbox".to_owned(), s("pending"));
    item
}

async fn table_with(entries: &[TableItem]) -> FakeAws {
    let aws = FakeAws::default();
    aws.ensure_table(TABLE).await.unwrap();
    for item in entries {
        aws.put_item(TABLE, item).await.unwrap();
    }
    aws
}

fn ids(batch: &OutboxBatch) -> Vec<&str> {
    batch.ready.iter().map(|p| p.event.order_id.as_str()).collect()
}

#[tokio::test]
async fn the_oldest_entries_of_every_shard_come_first() {
    // Written newest first, spread over the shards by their ids.
    let entries: Vec<_> = (0..40)
        .rev()
        .map(|i| {
            let id = format!("o-{i:03}");
            entry(&id, 1_000 + i, &event_body(&id))
        })
        .collect();
    let aws = table_with(&entries).await;
    let batch = OutboxReader::default().read(&aws, TABLE, 5).await.unwrap();
    assert_eq!(ids(&batch), ["o-000", "o-001", "o-002", "o-003", "o-004"]);
    let shards: std::collections::BTreeSet<_> = ids(&batch).iter().map(|id| shard_of(id, SHARDS)).collect();
    assert!(
        shards.len() > 1,
        "the oldest five are in several shards: {shards:?}"
    );
    assert_eq!(batch.ready[0].recorded_at_millis, 1_000);
    assert_eq!(batch.ready[0].traceparent, "00-t-s-01");
    assert!(batch.quarantined.is_empty());
}

#[tokio::test]
async fn the_same_time_is_ordered_by_order_id() {
    let entries: Vec<_> = ["o-b", "o-c", "o-a"]
        .iter()
        .map(|id| entry(id, 7, &event_body(id)))
        .collect();
    let aws = table_with(&entries).await;
    let batch = OutboxReader::default().read(&aws, TABLE, 25).await.unwrap();
    assert_eq!(ids(&batch), ["o-a", "o-b", "o-c"]);
}

#[tokio::test]
async fn each_shard_is_queried_and_the_earlier_partition_until_it_is_empty() {
    let aws = table_with(&[
        legacy_entry("o-old", 5),
        entry("o-new", 10, &event_body("o-new")),
        legacy_entry("o-older", 1),
    ])
    .await;
    let reader = OutboxReader::new(4);
    let batch = reader.read(&aws, TABLE, 25).await.unwrap();
    assert_eq!(
        ids(&batch),
        ["o-older", "o-old", "o-new"],
        "legacy entries by age too"
    );
    let queries = |aws: &FakeAws| -> Vec<String> {
        aws.calls()
            .into_iter()
            .filter(|c| c.starts_with("Query "))
            .collect()
    };
    let expected: Vec<String> = (0..4)
        .map(|k| format!("Query orders outboxByAge pending#{k}"))
        .chain(["Query orders outbox pending".to_owned()])
        .collect();
    assert_eq!(queries(&aws), expected);

    // Relayed: the earlier partition is empty, and read once more to know it.
    for id in ["o-old", "o-older"] {
        let key = TableItem::from([
            ("pk".to_owned(), s(&format!("ORDER#{id}"))),
            ("sk".to_owned(), s("OUTBOX")),
        ]);
        aws.delete_item(TABLE, &key).await.unwrap();
    }
    reader.read(&aws, TABLE, 25).await.unwrap();
    assert_eq!(queries(&aws).len(), 10);
    let batch = reader.read(&aws, TABLE, 25).await.unwrap();
    assert_eq!(ids(&batch), ["o-new"]);
    assert_eq!(
        queries(&aws).len(),
        14,
        "only the shards until the recheck is due"
    );
}

#[test]
fn the_earlier_partition_is_rechecked_after_a_while() {
    let now = Instant::now();
    assert!(legacy_due(None, now), "read until found empty");
    assert!(!legacy_due(Some(now), now + Duration::from_secs(59)));
    assert!(legacy_due(Some(now), now + LEGACY_RECHECK));
    assert_eq!(partitions(2, false).len(), 2);
    assert_eq!(
        partitions(2, true)[2],
        (OUTBOX_INDEX, "outbox", "pending".to_owned())
    );
}

#[tokio::test]
async fn an_unreadable_entry_is_quarantined_and_the_next_are_read() {
    let poison = entry("o-bad", 1, "{\"type\": \"OrderPlaced\", \"orderId\": 7}");
    let mut no_event = legacy_entry("o-empty", 2);
    no_event.remove("event");
    let aws = table_with(&[
        poison,
        no_event,
        entry("o-2", 3, &event_body("o-2")),
        entry("o-3", 4, &event_body("o-3")),
    ])
    .await;
    let reader = OutboxReader::default();
    let batch = reader.read(&aws, TABLE, 25).await.unwrap();
    assert_eq!(ids(&batch), ["o-2", "o-3"], "the following entries are read");
    let quarantined: Vec<_> = batch.quarantined.iter().map(|q| q.order_key.as_str()).collect();
    assert_eq!(quarantined, ["ORDER#o-bad", "ORDER#o-empty"]);
    assert!(
        batch.quarantined[0].reason.starts_with("not an order event"),
        "{:?}",
        batch.quarantined
    );
    assert!(batch.quarantined[1].reason.contains("`event`"));

    // Kept as written, out of the relay's way, listed by age in the quarantine partition.
    let kept = aws
        .query_index(TABLE, OUTBOX_AGE_INDEX, (SHARD_ATTRIBUTE, QUARANTINE), 10)
        .await
        .unwrap();
    assert_eq!(kept.len(), 2);
    assert_eq!(kept[0]["event"], s("{\"type\": \"OrderPlaced\", \"orderId\": 7}"));
    assert_eq!(
        kept[0]["quarantinedFrom"],
        s(&shard_key(shard_of("o-bad", SHARDS)))
    );
    assert_eq!(kept[1]["quarantinedFrom"], s("outbox=pending"));
    assert!(!kept[1].contains_key("outbox"), "out of the earlier index");
    assert_eq!(kept[1][AGE_ATTRIBUTE], s(&age_key(2, "o-empty")));
    assert!(
        kept.iter()
            .all(|item| item.contains_key("quarantineReason") && item.contains_key("quarantinedAt"))
    );

    let again = reader.read(&aws, TABLE, 25).await.unwrap();
    assert_eq!(ids(&again), ["o-2", "o-3"]);
    assert!(again.quarantined.is_empty(), "quarantined once");
}

#[tokio::test]
async fn an_entry_of_a_newer_version_is_read() {
    let mut newer: serde_json::Value = serde_json::from_str(&event_body("o-n")).unwrap();
    newer["channel"] = "app".into();
    newer["items"][0]["discountCents"] = 5.into();
    let mut item = entry("o-n", 1, &newer.to_string());
    item.insert("priorityLane".to_owned(), s("fast"));
    let aws = table_with(&[item]).await;
    let batch = OutboxReader::default().read(&aws, TABLE, 25).await.unwrap();
    assert_eq!(ids(&batch), ["o-n"]);
    assert!(batch.quarantined.is_empty());
}

#[tokio::test]
async fn a_table_that_cannot_be_read_is_an_error() {
    let aws = FakeAws::default();
    let error = OutboxReader::default().read(&aws, TABLE, 25).await.unwrap_err();
    assert!(error.is_not_found(), "{error}");
}

#[test]
fn shards_are_stable_and_spread() {
    assert_eq!(
        shard_of("o-abc", 8),
        6,
        "the same shard in every version and process"
    );
    assert_eq!(shard_of("o-1", 8), 4);
    let mut counts = [0u32; SHARDS as usize];
    for i in 0..800 {
        counts[shard_of(&format!("o-{i}"), SHARDS) as usize] += 1;
    }
    assert!(counts.iter().all(|c| (60..=140).contains(c)), "{counts:?}");
    assert_eq!(age_key(42, "o-x"), "0000000000042#o-x");
    assert!(
        age_key(9_999, "o-b") < age_key(10_000, "o-a"),
        "sorts as time first"
    );
}

#[tokio::test]
async fn one_relay_at_a_time_holds_an_entry_until_its_claim_expires() {
    let aws = FakeAws::default();
    aws.ensure_table(TABLE).await.unwrap();
    aws.put_item(TABLE, &entry("o-1", 1, &event_body("o-1")))
        .await
        .unwrap();
    let now = 1_000_000;
    let lease = i64::try_from(CLAIM_FOR.as_millis()).unwrap();
    assert!(claim(&aws, TABLE, "o-1", "relay-a", now).await.unwrap());
    assert!(
        !claim(&aws, TABLE, "o-1", "relay-b", now + 1).await.unwrap(),
        "held by relay-a"
    );
    assert!(
        claim(&aws, TABLE, "o-1", "relay-a", now + 2).await.unwrap(),
        "its holder claims it again (a publish that failed is tried again on its next pass)"
    );
    assert!(
        !claim(&aws, TABLE, "o-1", "relay-b", now + 2 + lease - 1)
            .await
            .unwrap(),
        "the renewed claim runs from the renewal"
    );
    assert!(
        claim(&aws, TABLE, "o-1", "relay-b", now + 2 + lease + 1)
            .await
            .unwrap(),
        "an expired claim (a relay that died) is taken over"
    );
    let item = aws
        .table_items(TABLE)
        .into_iter()
        .find(|i| i["pk"] == s("ORDER#o-1"))
        .unwrap();
    assert_eq!(item[CLAIMED_BY], s("relay-b"));
    assert_eq!(
        item["event"],
        s(&event_body("o-1")),
        "the entry is otherwise as written"
    );
    // Published and cleared by one relay: the others' claims find nothing.
    aws.delete_item(
        TABLE,
        &TableItem::from([("pk".to_owned(), s("ORDER#o-1")), ("sk".to_owned(), s("OUTBOX"))]),
    )
    .await
    .unwrap();
    assert!(
        !claim(&aws, TABLE, "o-1", "relay-a", now + 10 * lease)
            .await
            .unwrap()
    );
}
