//! The order endpoint's outbox relay against moto's DynamoDB: entries are relayed oldest first across the
//! shards of the outbox index, entries of the earlier one-partition layout too (and a table made by the
//! earlier version gets the new index), an entry that cannot be parsed is quarantined (kept, counted)
//! while the following ones are relayed, a backlog drains without waiting a pass interval per batch, and
//! an entry or order written by a newer version is read.
#![allow(clippy::unwrap_used)]

use crate::support as common;

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType,
};
use tributary::{
    cloud::{TableItem, TableItems, TableValue},
    worker::{
        metrics::WorkerMetrics,
        orders::{
            ingress::Ingress,
            model::{Delivery, Item, OrderEvent, OrderRequest},
            publish::Publisher,
            store::OrderStore,
            table::{
                OrderTable,
                outbox::{AGE_ATTRIBUTE, QUARANTINE, SHARD_ATTRIBUTE, index_attributes},
            },
        },
    },
};

/// Records the order ids it publishes, in order.
#[derive(Clone, Default)]
struct Recording(Arc<Mutex<Vec<String>>>);

impl Publisher for Recording {
    async fn publish(&self, event: &OrderEvent, _traceparent: &str) -> tributary::cloud::Result<()> {
        self.0.lock().unwrap().push(event.order_id.clone());
        Ok(())
    }
}

impl Recording {
    fn published(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }
}

fn s(value: &str) -> TableValue {
    TableValue::S(value.to_owned())
}

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

/// An outbox entry as this version writes it, holding `body`.
fn entry(order_id: &str, recorded_at: i64, body: &str) -> TableItem {
    let mut item = TableItem::from([
        ("pk".to_owned(), s(&format!("ORDER#{order_id}"))),
        ("sk".to_owned(), s("OUTBOX")),
        ("event".to_owned(), s(body)),
        ("traceparent".to_owned(), s("")),
        ("recordedAt".to_owned(), TableValue::N(recorded_at.to_string())),
    ]);
    item.extend(index_attributes(order_id, recorded_at).map(|(n, v)| (n.to_owned(), s(&v))));
    item
}

/// An outbox entry as the earlier version wrote it (one partition, `outbox = pending`).
fn legacy_entry(order_id: &str, recorded_at: i64) -> TableItem {
    let mut item = entry(order_id, recorded_at, &event_body(order_id));
    item.remove(SHARD_ATTRIBUTE);
    item.remove(AGE_ATTRIBUTE);
    item.insert("outbox".to_owned(), s("pending"));
    item
}

async fn put(client: &aws_sdk_dynamodb::Client, table: &str, items: &[TableItem]) {
    for item in items {
        TableItems::put_item(client, table, item).await.unwrap();
    }
}

/// A time well before now, in milliseconds, so that no entry waits for its grace.
fn long_ago() -> i64 {
    i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap()
        - 3_600_000
}

/// Runs the relay of `table`, a pass every `every`, until `expected` events are published (or 60 s
/// pass); the order published and how long it took.
async fn relay_until(
    table: &OrderTable,
    metrics: &WorkerMetrics,
    every: Duration,
    expected: usize,
) -> (Vec<String>, Duration) {
    let recording = Recording::default();
    let ingress = Ingress::new(table.clone(), recording.clone(), metrics.clone());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let started = Instant::now();
    let relay = tokio::spawn(ingress.relay(every, Duration::ZERO, async {
        let _ = stopped.await;
    }));
    let published = common::eventually(
        "the relay to publish every entry",
        Duration::from_secs(60),
        || {
            let published = recording.published();
            async move { (published.len() >= expected).then_some(published) }
        },
    )
    .await;
    let took = started.elapsed();
    stop.send(()).unwrap();
    relay.await.unwrap();
    (published, took)
}

fn client_and_table(aws: &aws_config::SdkConfig, name: &str) -> (aws_sdk_dynamodb::Client, OrderTable) {
    let client = aws_sdk_dynamodb::Client::new(aws);
    (client.clone(), OrderTable::new(client, name))
}

#[tokio::test]
async fn oldest_first_across_shards_with_a_poisoned_entry_quarantined() {
    let _bed = common::shared().await;
    let aws = common::aws_config().await;
    let name = common::unique("outbox");
    let (client, table) = client_and_table(&aws, &name);
    table.ensure().await.unwrap();
    let base = long_ago();
    // 60 entries of this layout written newest first, 5 of the earlier layout between them by age, a
    // poisoned one (an event this version cannot read) at the 11th place, one of a newer version.
    let mut items: Vec<TableItem> = (0..60)
        .rev()
        .map(|i| {
            let id = format!("o-n{i:02}");
            entry(&id, base + 10 * i, &event_body(&id))
        })
        .collect();
    items.extend((0..5).map(|i| legacy_entry(&format!("o-l{i}"), base + 10 * i + 5)));
    items.push(entry(
        "o-poison",
        base + 51,
        "{\"type\":\"OrderPlaced\",\"orderId\":42}",
    ));
    let mut newer: serde_json::Value = serde_json::from_str(&event_body("o-newer")).unwrap();
    newer["items"][0]["discountCents"] = 10.into();
    newer["channel"] = "app".into();
    let mut newer_item = entry("o-newer", base + 52, &newer.to_string());
    newer_item.insert("lane".to_owned(), s("express"));
    items.push(newer_item);
    put(&client, &name, &items).await;

    let metrics = WorkerMetrics::new();
    // One pass every 30 s: the backlog (three batches) drains at once, a full pass starting the next.
    let (published, took) = relay_until(&table, &metrics, Duration::from_secs(30), 66).await;
    assert!(
        took < Duration::from_secs(15),
        "drained without waiting for the next pass: {took:?}"
    );
    let mut expected: Vec<(i64, String)> = (0..60).map(|i| (10 * i, format!("o-n{i:02}"))).collect();
    expected.extend((0..5).map(|i| (10 * i + 5, format!("o-l{i}"))));
    expected.push((52, "o-newer".to_owned()));
    expected.sort();
    let expected: Vec<String> = expected.into_iter().map(|(_, id)| id).collect();
    assert_eq!(
        published, expected,
        "every entry once, oldest first, across shards and layouts"
    );
    assert_eq!(metrics.outbox_quarantined_total(), 1);
    eprintln!(
        "outbox relay on moto: {} entries relayed, 1 quarantined, in {} ms ({:.0}/s)",
        published.len(),
        took.as_millis(),
        published.len() as f64 / took.as_secs_f64()
    );

    // The poisoned entry is kept as written, in the quarantine partition, and the outbox is empty.
    let kept = client
        .query_index(&name, "outboxByAge", (SHARD_ATTRIBUTE, QUARANTINE), 10)
        .await
        .unwrap();
    assert_eq!(kept.len(), 1, "{kept:?}");
    assert_eq!(kept[0]["pk"], s("ORDER#o-poison"));
    assert_eq!(kept[0]["event"], s("{\"type\":\"OrderPlaced\",\"orderId\":42}"));
    assert!(matches!(&kept[0]["quarantineReason"], TableValue::S(r) if r.contains("not an order event")));
    let rest = table.pending_outbox(25).await.unwrap();
    assert!(rest.ready.is_empty() && rest.quarantined.is_empty(), "{rest:?}");
}

/// The Order table as the earlier version made it: one outbox index, on the constant `outbox` attribute.
async fn create_earlier_table(client: &aws_sdk_dynamodb::Client, name: &str) {
    let key = |name: &str, kind| {
        KeySchemaElement::builder()
            .attribute_name(name)
            .key_type(kind)
            .build()
            .unwrap()
    };
    let attribute = |name: &str| {
        AttributeDefinition::builder()
            .attribute_name(name)
            .attribute_type(ScalarAttributeType::S)
            .build()
            .unwrap()
    };
    let index = GlobalSecondaryIndex::builder()
        .index_name("outbox")
        .key_schema(key("outbox", KeyType::Hash))
        .key_schema(key("pk", KeyType::Range))
        .projection(Projection::builder().projection_type(ProjectionType::All).build())
        .build()
        .unwrap();
    client
        .create_table()
        .table_name(name)
        .billing_mode(BillingMode::PayPerRequest)
        .key_schema(key("pk", KeyType::Hash))
        .key_schema(key("sk", KeyType::Range))
        .attribute_definitions(attribute("pk"))
        .attribute_definitions(attribute("sk"))
        .attribute_definitions(attribute("outbox"))
        .global_secondary_indexes(index)
        .send()
        .await
        .unwrap();
}

#[tokio::test]
async fn an_earlier_versions_table_and_entries_are_upgraded_and_relayed() {
    let _bed = common::shared().await;
    let aws = common::aws_config().await;
    let name = common::unique("outbox-old");
    let (client, table) = client_and_table(&aws, &name);
    create_earlier_table(&client, &name).await;
    let base = long_ago();
    put(
        &client,
        &name,
        &(0..30)
            .map(|i| legacy_entry(&format!("o-l{i:02}"), base + i))
            .collect::<Vec<_>>(),
    )
    .await;

    table.ensure().await.unwrap();
    let described = client.describe_table().table_name(&name).send().await.unwrap();
    let mut indexes: Vec<&str> = described
        .table()
        .unwrap()
        .global_secondary_indexes()
        .iter()
        .filter_map(|i| i.index_name())
        .collect();
    indexes.sort_unstable();
    assert_eq!(
        indexes,
        ["outbox", "outboxByAge"],
        "the new index added, the earlier one kept"
    );
    table.ensure().await.unwrap();

    // A new order of this version, and an order (with its entry) written by a newer one.
    let request = OrderRequest {
        customer_id: "c-9".into(),
        items: vec![Item {
            sku: "sku-9".into(),
            quantity: 2,
            unit_price_cents: 300,
        }],
        region: "eu-west".into(),
        delivery: Delivery::Pickup,
        idempotency_key: None,
    };
    assert!(
        table
            .create_order(&OrderEvent::placed("o-fresh", &request), "", None)
            .await
            .unwrap()
    );
    let mut newer: serde_json::Value = serde_json::from_str(&event_body("o-newer")).unwrap();
    newer["items"][0]["discountCents"] = 10.into();
    let order = TableItem::from([
        ("pk".to_owned(), s("ORDER#o-newer")),
        ("sk".to_owned(), s("ORDER")),
        ("state".to_owned(), s("PLACED")),
        ("event".to_owned(), s(&newer.to_string())),
        ("loyaltyTier".to_owned(), s("gold")),
    ]);
    put(
        &client,
        &name,
        &[order, entry("o-newer", base + 100, &newer.to_string())],
    )
    .await;
    let record = table.order("o-newer").await.unwrap().unwrap();
    assert_eq!(
        record.placed.order_id, "o-newer",
        "a newer version's order is read"
    );
    assert!(record.outbox_pending);

    let metrics = WorkerMetrics::new();
    let (published, _) = relay_until(&table, &metrics, Duration::from_millis(20), 32).await;
    let mut expected: Vec<String> = (0..30).map(|i| format!("o-l{i:02}")).collect();
    expected.extend(["o-newer".to_owned(), "o-fresh".to_owned()]);
    assert_eq!(
        published, expected,
        "the earlier layout's entries relayed too, by age"
    );
    assert_eq!(metrics.outbox_quarantined_total(), 0);
    assert!(!table.order("o-fresh").await.unwrap().unwrap().outbox_pending);
}

#[tokio::test]
async fn two_relays_over_one_outbox_publish_each_entry_exactly_once() {
    let _bed = common::shared().await;
    let aws = common::aws_config().await;
    let name = common::unique("outbox-two");
    let (client, table) = client_and_table(&aws, &name);
    table.ensure().await.unwrap();
    let base = long_ago();
    let items: Vec<TableItem> = (0..40)
        .map(|i| {
            let id = format!("o-t{i:02}");
            entry(&id, base + i, &event_body(&id))
        })
        .collect();
    put(&client, &name, &items).await;
    // Two replicas' relays over the same table, both passing every 100 ms, publishing into one record.
    let recording = Recording::default();
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let relays: Vec<_> = (0..2)
        .map(|_| {
            let ingress = Ingress::new(table.clone(), recording.clone(), WorkerMetrics::new());
            let mut stopped = stopped.clone();
            tokio::spawn(
                ingress.relay(Duration::from_millis(100), Duration::ZERO, async move {
                    let _ = stopped.wait_for(|s| *s).await;
                }),
            )
        })
        .collect();
    common::eventually("the outbox to be empty", Duration::from_secs(60), || async {
        let rest = table.pending_outbox(25).await.ok()?;
        (rest.ready.is_empty() && recording.published().len() >= 40).then_some(())
    })
    .await;
    stop.send(true).unwrap();
    for relay in relays {
        relay.await.unwrap();
    }
    let mut published = recording.published();
    published.sort();
    let expected: Vec<String> = (0..40).map(|i| format!("o-t{i:02}")).collect();
    assert_eq!(
        published, expected,
        "each entry published once, by one of the relays"
    );
}
