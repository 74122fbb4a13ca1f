//! The order processors and the order endpoint against moto (DynamoDB, SNS, SQS): each effect happens
//! once however often a message comes (stock reserved once, one shipment, one notification, one
//! `OrderShipped`), out of stock is an outcome (`OrderCancelled`), inventory publishes `OrderReserved` and shipment
//! starts from it, malformed events are
//! rejected; `POST /orders` answers 202 only after `OrderPlaced` reached the topic with the attributes the
//! filters use and the caller's trace id, refuses bad orders naming the field, gives a retried POST the
//! same order, and a publish that fails leaves the event in the outbox for the relay.
#![allow(clippy::unwrap_used)]

use crate::support as common;

use std::{
    collections::BTreeMap,
    sync::{
        Arc,
        atomic::{AtomicU32, Ordering},
    },
    time::Duration,
};

use serde_json::json;
use tributary::{
    cloud::{Error, Operation, aws::SnsPublisher},
    worker::{
        message::Message,
        metrics::WorkerMetrics,
        orders::{
            ingress::Ingress,
            model::{Delivery, Item, OrderEvent, OrderRequest, events, states, tracking_id},
            processors::{Inventory, Notification, Shipment},
            publish::Publisher,
            security::{
                Security,
                api_keys::new_key,
                config::{ApiKeyFiles, AuthConfig, LimitsConfig},
            },
            store::{OrderStore, Reservation},
            table::OrderTable,
        },
        processor::{Outcome, Processor},
    },
};

async fn table() -> OrderTable {
    let aws = common::aws_config().await;
    let table = OrderTable::new(aws_sdk_dynamodb::Client::new(&aws), common::unique("orders"));
    table.ensure().await.unwrap();
    table.ensure().await.unwrap();
    table
}

/// A topic with a raw-delivery queue subscribed to it: (topic ARN, queue URL).
async fn topic_with_queue() -> (String, String) {
    let aws = common::aws_config().await;
    let (sns, sqs) = (aws_sdk_sns::Client::new(&aws), aws_sdk_sqs::Client::new(&aws));
    let topic = sns
        .create_topic()
        .name(common::unique("events"))
        .send()
        .await
        .unwrap()
        .topic_arn
        .unwrap();
    let url = sqs
        .create_queue()
        .queue_name(common::unique("sink"))
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    let arn = common::queue_arn(&sqs, &url).await;
    sns.subscribe()
        .topic_arn(&topic)
        .protocol("sqs")
        .endpoint(arn)
        .attributes("RawMessageDelivery", "true")
        .send()
        .await
        .unwrap();
    (topic, url)
}

/// Every message in the queue: (body, attributes by name).
async fn received(url: &str) -> Vec<(String, std::collections::HashMap<String, String>)> {
    let sqs = aws_sdk_sqs::Client::new(&common::aws_config().await);
    common::receive_messages(&sqs, url)
        .await
        .into_iter()
        .map(|m| {
            let attributes = m
                .message_attributes
                .unwrap_or_default()
                .into_iter()
                .map(|(k, v)| (k, v.string_value.unwrap_or_default()))
                .collect();
            (m.body.unwrap_or_default(), attributes)
        })
        .collect()
}

fn order(customer: &str, items: &[(&str, u32)], delivery: Delivery) -> OrderRequest {
    OrderRequest {
        customer_id: customer.into(),
        items: items
            .iter()
            .map(|(sku, quantity)| Item {
                sku: (*sku).into(),
                quantity: *quantity,
                unit_price_cents: 1000,
            })
            .collect(),
        region: "eu-west".into(),
        delivery,
        idempotency_key: None,
    }
}

fn message_of(event: &OrderEvent, receive_count: u32) -> Message {
    let attributes = event
        .attributes()
        .into_iter()
        .map(|(name, _, value)| (name.to_owned(), value))
        .collect();
    Message::delivered(
        "m".into(),
        serde_json::to_string(event).unwrap(),
        attributes,
        receive_count,
    )
}

#[tokio::test]
async fn each_processor_makes_its_effect_once() {
    let _bed = common::shared().await;
    let table = table().await;
    let (topic, sink) = topic_with_queue().await;
    let publisher = SnsPublisher::new(aws_sdk_sns::Client::new(&common::aws_config().await), topic);
    table.set_stock("sku-a", 5).await.unwrap();
    table.set_stock("sku-b", 1).await.unwrap();
    let shipped = OrderEvent::placed(
        "o-ship",
        &order("c1", &[("sku-a", 1), ("sku-a", 1)], Delivery::Standard),
    );
    let short = OrderEvent::placed(
        "o-short",
        &order("c2", &[("sku-a", 1), ("sku-b", 2)], Delivery::Express),
    );
    for event in [&shipped, &short] {
        assert!(table.create_order(event, "", None).await.unwrap());
        assert!(
            !table.create_order(event, "", None).await.unwrap(),
            "created once"
        );
    }
    let inventory = Inventory::new(table.clone(), Some(publisher.clone()));
    let notification = Notification::new(table.clone());
    let shipment = Shipment::new(table.clone(), Some(publisher));

    // Shipment starts from OrderReserved, not from OrderPlaced.
    assert_eq!(shipment.process(&message_of(&shipped, 1)).await, Outcome::Done);
    assert_eq!(
        table.order("o-ship").await.unwrap().unwrap().state,
        states::PLACED
    );

    let reserved = shipped.followed_by(events::RESERVED, None);
    for attempt in 1..=2 {
        for event in [&shipped, &short] {
            assert_eq!(
                inventory.process(&message_of(event, attempt)).await,
                Outcome::Done
            );
            assert_eq!(
                notification.process(&message_of(event, attempt)).await,
                Outcome::Done
            );
        }
        assert_eq!(
            shipment.process(&message_of(&reserved, attempt)).await,
            Outcome::Done
        );
    }
    assert_eq!(
        table.stock("sku-a").await.unwrap(),
        Some(3),
        "2 reserved once; the short order none"
    );
    assert_eq!(table.stock("sku-b").await.unwrap(), Some(1));
    assert_eq!(
        table.reservation("o-short").await.unwrap(),
        Some(Reservation::OutOfStock("sku-b".into()))
    );

    let record = table.order("o-ship").await.unwrap().unwrap();
    assert_eq!(record.state, states::SHIPPED);
    let history: Vec<&str> = record.history.iter().map(|t| t.state.as_str()).collect();
    assert_eq!(history, [states::PLACED, states::RESERVED, states::SHIPPED]);
    assert_eq!(record.tracking_id, Some(tracking_id("o-ship")));
    assert_eq!(record.notifications, ["OrderPlaced"]);
    let short_record = table.order("o-short").await.unwrap().unwrap();
    assert_eq!(short_record.state, states::OUT_OF_STOCK);
    assert_eq!(short_record.history.len(), 2);

    // Inventory publishes its outcome on every delivery (at least once); OrderShipped goes out once.
    let mut kinds: BTreeMap<(String, String), usize> = BTreeMap::new();
    let mut shipped_event = None;
    for (body, attributes) in received(&sink).await {
        let event = OrderEvent::parse(&body).unwrap();
        assert_eq!(attributes["event"], event.kind);
        assert!(attributes["traceparent"].starts_with("00-"));
        if event.kind == events::SHIPPED {
            shipped_event = Some(event.clone());
        }
        *kinds.entry((event.kind, event.order_id)).or_default() += 1;
    }
    let count = |kind: &str, id: &str| kinds.get(&(kind.to_owned(), id.to_owned())).copied().unwrap_or(0);
    assert_eq!(count("OrderShipped", "o-ship"), 1, "{kinds:?}");
    assert!(count("OrderReserved", "o-ship") >= 1, "{kinds:?}");
    assert!(count("OrderCancelled", "o-short") >= 1, "{kinds:?}");
    assert_eq!(count("OrderReserved", "o-short"), 0, "{kinds:?}");
    let event = shipped_event.unwrap();
    assert_eq!(event.tracking_id, Some(tracking_id("o-ship")));
    assert_eq!(notification.process(&message_of(&event, 1)).await, Outcome::Done);
    assert_eq!(
        table.order("o-ship").await.unwrap().unwrap().notifications,
        ["OrderPlaced", "OrderShipped"]
    );

    // A product with no stock record: retried (then dead-lettered) until the catalogue has it.
    let unknown = OrderEvent::placed(
        "o-new",
        &order("c3", &[("sku-a", 1), ("sku-new", 1)], Delivery::Standard),
    );
    assert!(table.create_order(&unknown, "", None).await.unwrap());
    let outcome = inventory.process(&message_of(&unknown, 1)).await;
    assert!(
        matches!(&outcome, Outcome::Retry(r) if r.contains("sku-new has no stock record")),
        "{outcome:?}"
    );
    assert_eq!(table.stock("sku-a").await.unwrap(), Some(3), "nothing reserved");
    assert_eq!(
        table.reservation("o-new").await.unwrap(),
        None,
        "nothing recorded"
    );
    table.set_stock("sku-new", 1).await.unwrap();
    assert_eq!(inventory.process(&message_of(&unknown, 1)).await, Outcome::Done);
    assert_eq!(
        table.reservation("o-new").await.unwrap(),
        Some(Reservation::Reserved)
    );

    let malformed = Message::delivered("m".into(), "{\"orderId\": 7}".into(), Default::default(), 1);
    for outcome in [
        inventory.process(&malformed).await,
        notification.process(&malformed).await,
        shipment.process(&malformed).await,
    ] {
        assert!(
            matches!(&outcome, Outcome::Reject(reason) if reason.contains("not an order event")),
            "{outcome:?}"
        );
    }
}

/// SNS, but the first `failures` publishes fail.
#[derive(Clone)]
struct Flaky {
    inner: SnsPublisher,
    failures: Arc<AtomicU32>,
}

impl Publisher for Flaky {
    async fn publish(&self, event: &OrderEvent, traceparent: &str) -> tributary::cloud::Result<()> {
        if self
            .failures
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            return Err(Error::Unreachable {
                operation: Operation::new("sns", "Publish", "test"),
                detail: "injected failure".into(),
            });
        }
        self.inner.publish(event, traceparent).await
    }
}

#[tokio::test]
async fn the_order_endpoint_acknowledges_only_published_orders() {
    let _bed = common::shared().await;
    let table = table().await;
    let (topic, sink) = topic_with_queue().await;
    let failures = Arc::new(AtomicU32::new(1));
    let publisher = Flaky {
        inner: SnsPublisher::new(aws_sdk_sns::Client::new(&common::aws_config().await), topic),
        failures: failures.clone(),
    };
    let ingress = Ingress::new(table.clone(), publisher, WorkerMetrics::new());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let relay = tokio::spawn(ingress.clone().relay(
        Duration::from_millis(500),
        Duration::from_secs(2),
        async {
            let _ = stopped.await;
        },
    ));
    // Clients authenticate with an API key, kept hashed in a directory as the mounted Secret gives it.
    let keys = std::env::temp_dir().join(common::unique("order-keys"));
    std::fs::create_dir_all(&keys).unwrap();
    let key = new_key(None).unwrap();
    std::fs::write(keys.join("shop"), &key.entry).unwrap();
    let auth = AuthConfig {
        api_keys: Some(ApiKeyFiles {
            dir: keys.clone(),
            reload_seconds: 1,
        }),
        ..AuthConfig::default()
    };
    let security = Security::new(&auth, LimitsConfig::default(), "shop/order-ack").unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let app = ingress.router(&security);
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    let http = common::orders_bed::bearer(&key.key).build().unwrap();
    let anonymous = reqwest::Client::new();
    assert_eq!(
        anonymous
            .get(format!("{base}/orders/o-none"))
            .send()
            .await
            .unwrap()
            .status(),
        401,
        "no credentials, no answer"
    );
    let trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let body = json!({
        "customerId": "c-7",
        "items": [{"sku": "sku-a", "quantity": 2, "unitPriceCents": 1250}],
        "region": "eu-west",
        "delivery": "express",
        "idempotencyKey": "first"
    });

    // The first publish fails once and is retried within the request.
    let placed = http
        .post(format!("{base}/orders"))
        .header("traceparent", format!("00-{trace}-00f067aa0ba902b7-01"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(placed.status(), 202);
    let placed: serde_json::Value = placed.json().await.unwrap();
    let id = placed["orderId"].as_str().unwrap().to_owned();
    assert_eq!(placed["traceId"], trace);
    let again: serde_json::Value = http
        .post(format!("{base}/orders"))
        .json(&body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(again["orderId"], id.as_str(), "same key, same order");

    let events = received(&sink).await;
    assert_eq!(events.len(), 1, "published once: {events:?}");
    let (event_body, attributes) = &events[0];
    assert_eq!(OrderEvent::parse(event_body).unwrap().order_id, id);
    assert_eq!(attributes["event"], "OrderPlaced");
    assert_eq!(attributes["total"], "25.00");
    assert_eq!(attributes["delivery"], "express");
    assert_eq!(attributes["region"], "eu-west");
    assert!(attributes["traceparent"].contains(trace), "{attributes:?}");

    let shown: serde_json::Value = http
        .get(format!("{base}/orders/{id}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(shown["state"], "PLACED");
    assert_eq!(shown["outboxPending"], false);
    assert_eq!(
        http.get(format!("{base}/orders/o-none"))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );

    let mut bad = body.clone();
    bad["items"][0]["quantity"] = json!(0);
    let refused = http
        .post(format!("{base}/orders"))
        .json(&bad)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 400);
    let refused: serde_json::Value = refused.json().await.unwrap();
    assert!(
        refused["message"]
            .as_str()
            .unwrap()
            .starts_with("items[0].quantity"),
        "{refused}"
    );
    let unknown = http
        .post(format!("{base}/orders"))
        .json(&json!({"customer": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 400);

    // Every attempt of the request fails: 503, the order is in the outbox, and the relay publishes it.
    failures.store(3, Ordering::SeqCst);
    let mut second = body.clone();
    second["idempotencyKey"] = json!("second");
    let unavailable = http
        .post(format!("{base}/orders"))
        .json(&second)
        .send()
        .await
        .unwrap();
    assert_eq!(unavailable.status(), 503);
    let message: serde_json::Value = unavailable.json().await.unwrap();
    assert!(
        message["message"]
            .as_str()
            .unwrap()
            .contains("retry with the same idempotencyKey"),
        "{message}"
    );
    assert!(
        !message.to_string().contains("arn:"),
        "no cloud detail: {message}"
    );
    let relayed = common::eventually("the relay to publish", Duration::from_secs(20), || {
        let sink = sink.clone();
        async move {
            let events = received(&sink).await;
            (!events.is_empty()).then_some(events)
        }
    })
    .await;
    assert_eq!(relayed.len(), 1);
    assert!(
        table.pending_outbox(10).await.unwrap().ready.is_empty(),
        "outbox cleared"
    );

    stop.send(()).unwrap();
    relay.await.unwrap();
    server.abort();
    std::fs::remove_dir_all(&keys).unwrap();
}
