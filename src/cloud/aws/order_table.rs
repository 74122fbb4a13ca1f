//! The Order table on DynamoDB: one table, partition key `pk` and sort key `sk` (both strings), holding
//! per order `ORDER#<id>` the items `ORDER` (the order, its state and history), `RESERVATION`,
//! `SHIPMENT`, `NOTIFICATION#<event>` and, while `OrderPlaced` is unpublished, `OUTBOX`; and per product
//! `STOCK#<sku>`/`STOCK`. A sparse global index `outbox` on the `outbox` attribute (only outbox entries
//! have it) finds the outbox.
//!
//! No item is written by two processors at once: besides being tidy, moto 5.2.5 loses a transaction's
//! write when an UpdateItem on the same item runs concurrently (measured: 39 of 40 increments kept),
//! which is why the outbox entry is an item of its own rather than an attribute of the order.
//!
//! Writes that must happen together are one transaction (reserve: the reservation, every stock
//! decrement and the state change), and each carries the condition that makes it happen once.

use std::collections::HashMap;

use aws_sdk_dynamodb::{
    error::SdkError,
    operation::transact_write_items::TransactWriteItemsError,
    types::{
        AttributeDefinition, AttributeValue, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType,
        Projection, ProjectionType, Put, ScalarAttributeType, TransactWriteItem, Update,
    },
};

use super::error::from_sdk;
use crate::{
    cloud::{Error, Operation, Result},
    worker::orders::{
        model::{OrderEvent, states},
        store::{OrderRecord, OrderStore, Pending, Reservation, Transition},
    },
};

const DYNAMODB: &str = "dynamodb";
const OUTBOX_INDEX: &str = "outbox";
const PENDING: &str = "pending";
/// Sort key of an order's outbox entry.
const OUTBOX: &str = "OUTBOX";

/// The Order table.
#[derive(Clone, Debug)]
pub struct OrderTable {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

type Item = HashMap<String, AttributeValue>;

fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

fn n(value: impl ToString) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

fn order_key(order_id: &str, sort: &str) -> Item {
    HashMap::from([
        ("pk".to_owned(), s(format!("ORDER#{order_id}"))),
        ("sk".to_owned(), s(sort)),
    ])
}

fn stock_key(sku: &str) -> Item {
    HashMap::from([
        ("pk".to_owned(), s(format!("STOCK#{sku}"))),
        ("sk".to_owned(), s("STOCK")),
    ])
}

fn now() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

fn now_millis() -> i64 {
    i64::try_from(time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000).unwrap_or(0)
}

fn transition(state: &str) -> AttributeValue {
    AttributeValue::L(vec![AttributeValue::M(HashMap::from([
        ("state".to_owned(), s(state)),
        ("at".to_owned(), s(now())),
    ]))])
}

fn text<'a>(item: &'a Item, name: &str) -> Option<&'a str> {
    item.get(name).and_then(|v| v.as_s().ok()).map(String::as_str)
}

fn invalid(operation: &Operation, detail: impl Into<String>) -> Error {
    Error::Invalid {
        operation: operation.clone(),
        detail: detail.into(),
    }
}

/// The cancellation reason codes of a cancelled transaction, one per action (`None` for those that
/// passed), or `None` when the error is something else.
fn cancellation_codes(
    error: &SdkError<TransactWriteItemsError, aws_smithy_runtime_api::http::Response>,
) -> Option<Vec<String>> {
    let TransactWriteItemsError::TransactionCanceledException(cancelled) = error.as_service_error()? else {
        return None;
    };
    Some(
        cancelled
            .cancellation_reasons()
            .iter()
            .map(|reason| reason.code().unwrap_or("None").to_owned())
            .collect(),
    )
}

fn is_condition_failure(code: &str) -> bool {
    code == "ConditionalCheckFailed"
}

impl OrderTable {
    /// The table `table`.
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    /// Creates the table (on-demand capacity, with the outbox index) if it does not exist, and waits
    /// until it is active.
    pub async fn ensure(&self) -> Result<()> {
        let operation = Operation::new(DYNAMODB, "CreateTable", &self.table);
        let key = |name: &str, kind| {
            KeySchemaElement::builder()
                .attribute_name(name)
                .key_type(kind)
                .build()
        };
        let attribute = |name: &str| {
            AttributeDefinition::builder()
                .attribute_name(name)
                .attribute_type(ScalarAttributeType::S)
                .build()
        };
        let build = |e: aws_sdk_dynamodb::error::BuildError| invalid(&operation, e.to_string());
        let index = GlobalSecondaryIndex::builder()
            .index_name(OUTBOX_INDEX)
            .key_schema(key("outbox", KeyType::Hash).map_err(build)?)
            .key_schema(key("pk", KeyType::Range).map_err(build)?)
            .projection(Projection::builder().projection_type(ProjectionType::All).build())
            .build()
            .map_err(build)?;
        let created = self
            .client
            .create_table()
            .table_name(&self.table)
            .billing_mode(BillingMode::PayPerRequest)
            .key_schema(key("pk", KeyType::Hash).map_err(build)?)
            .key_schema(key("sk", KeyType::Range).map_err(build)?)
            .attribute_definitions(attribute("pk").map_err(build)?)
            .attribute_definitions(attribute("sk").map_err(build)?)
            .attribute_definitions(attribute("outbox").map_err(build)?)
            .global_secondary_indexes(index)
            .send()
            .await;
        match created {
            Ok(_) => {}
            Err(error)
                if error.as_service_error().is_some_and(
                    aws_sdk_dynamodb::operation::create_table::CreateTableError::is_resource_in_use_exception,
                ) => {}
            Err(error) => return Err(from_sdk(operation, error)),
        }
        let describe = Operation::new(DYNAMODB, "DescribeTable", &self.table);
        for _ in 0..100 {
            let table = self
                .client
                .describe_table()
                .table_name(&self.table)
                .send()
                .await
                .map_err(|e| from_sdk(describe.clone(), e))?;
            let status = table
                .table()
                .and_then(|t| t.table_status())
                .map(|s| s.as_str().to_owned());
            if status.as_deref() == Some("ACTIVE") {
                return Ok(());
            }
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
        Err(invalid(&describe, "the table did not become ACTIVE in 20 s"))
    }

    fn put(&self, item: Item, condition: &str) -> Result<TransactWriteItem> {
        let operation = Operation::new(DYNAMODB, "TransactWriteItems", &self.table);
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression(condition)
            .build()
            .map_err(|e| invalid(&operation, e.to_string()))?;
        Ok(TransactWriteItem::builder().put(put).build())
    }

    fn update(
        &self,
        key: Item,
        expression: &str,
        condition: &str,
        values: Item,
        names: &[(&str, &str)],
    ) -> Result<TransactWriteItem> {
        let operation = Operation::new(DYNAMODB, "TransactWriteItems", &self.table);
        let mut update = Update::builder()
            .table_name(&self.table)
            .set_key(Some(key))
            .update_expression(expression)
            .condition_expression(condition)
            .set_expression_attribute_values(Some(values));
        for (placeholder, name) in names {
            update = update.expression_attribute_names(*placeholder, *name);
        }
        let update = update.build().map_err(|e| invalid(&operation, e.to_string()))?;
        Ok(TransactWriteItem::builder().update(update).build())
    }

    /// The order's state change `from` → `to` with a history entry, as a transaction action.
    fn advance(
        &self,
        order_id: &str,
        from: &str,
        to: &str,
        extra_set: &str,
        mut values: Item,
    ) -> Result<TransactWriteItem> {
        values.insert(":from".to_owned(), s(from));
        values.insert(":to".to_owned(), s(to));
        values.insert(":h".to_owned(), transition(to));
        self.update(
            order_key(order_id, "ORDER"),
            &format!("SET #state = :to, history = list_append(history, :h){extra_set}"),
            "#state = :from",
            values,
            &[("#state", "state")],
        )
    }

    /// Runs a transaction: `Ok(None)` on success, `Ok(Some(codes))` when a condition cancelled it.
    async fn transact(&self, actions: Vec<TransactWriteItem>) -> Result<Option<Vec<String>>> {
        let operation = Operation::new(DYNAMODB, "TransactWriteItems", &self.table);
        match self
            .client
            .transact_write_items()
            .set_transact_items(Some(actions))
            .send()
            .await
        {
            Ok(_) => Ok(None),
            Err(error) => match cancellation_codes(&error) {
                Some(codes) if codes.iter().any(|c| is_condition_failure(c)) => Ok(Some(codes)),
                _ => Err(from_sdk(operation, error)),
            },
        }
    }

    async fn get(&self, key: Item) -> Result<Option<Item>> {
        let operation = Operation::new(DYNAMODB, "GetItem", &self.table);
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| from_sdk(operation, e))?;
        Ok(output.item)
    }

    async fn put_if_absent(&self, item: Item) -> Result<bool> {
        let operation = Operation::new(DYNAMODB, "PutItem", &self.table);
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(error)
                if error
                    .as_service_error()
                    .is_some_and(aws_sdk_dynamodb::operation::put_item::PutItemError::is_conditional_check_failed_exception) =>
            {
                Ok(false)
            }
            Err(error) => Err(from_sdk(operation, error)),
        }
    }
    /// Records the order OUT_OF_STOCK for `sku` (reservation and state together).
    async fn refuse(&self, order_id: &str, sku: &str) -> Result<Reservation> {
        let mut refused = order_key(order_id, "RESERVATION");
        refused.extend([
            ("state".to_owned(), s(states::OUT_OF_STOCK)),
            ("sku".to_owned(), s(sku)),
            ("at".to_owned(), s(now())),
        ]);
        let actions = vec![
            self.put(refused, "attribute_not_exists(pk)")?,
            self.advance(order_id, states::PLACED, states::OUT_OF_STOCK, "", HashMap::new())?,
        ];
        if self.transact(actions).await?.is_some() {
            let item = self.get(order_key(order_id, "RESERVATION")).await?;
            return Ok(item
                .as_ref()
                .map_or_else(|| Reservation::OutOfStock(sku.to_owned()), reservation_of));
        }
        Ok(Reservation::OutOfStock(sku.to_owned()))
    }
}

fn parse_event(operation: &Operation, item: &Item) -> Result<OrderEvent> {
    let body = text(item, "event").ok_or_else(|| invalid(operation, "order item without its event"))?;
    OrderEvent::parse(body).map_err(|e| invalid(operation, e))
}

fn reservation_of(item: &Item) -> Reservation {
    match text(item, "state") {
        Some(states::OUT_OF_STOCK) => {
            Reservation::OutOfStock(text(item, "sku").unwrap_or_default().to_owned())
        }
        _ => Reservation::Reserved,
    }
}

impl OrderStore for OrderTable {
    async fn create_order(&self, event: &OrderEvent, traceparent: &str) -> Result<bool> {
        // Read first, as in `reserve`: a retried POST finds its order without a cancelled transaction.
        if self.get(order_key(&event.order_id, "ORDER")).await?.is_some() {
            return Ok(false);
        }
        let body = serde_json::to_string(event).unwrap_or_default();
        let mut order = order_key(&event.order_id, "ORDER");
        order.extend([
            ("state".to_owned(), s(states::PLACED)),
            ("history".to_owned(), transition(states::PLACED)),
            ("event".to_owned(), s(body.clone())),
        ]);
        // The outbox entry is an item of its own, deleted once published, so that clearing it never
        // writes the order item the processors change.
        let mut outbox = order_key(&event.order_id, OUTBOX);
        outbox.extend([
            ("outbox".to_owned(), s(PENDING)),
            ("event".to_owned(), s(body)),
            ("traceparent".to_owned(), s(traceparent)),
            ("recordedAt".to_owned(), n(now_millis())),
        ]);
        let actions = vec![
            self.put(order, "attribute_not_exists(pk)")?,
            self.put(outbox, "attribute_not_exists(pk)")?,
        ];
        Ok(self.transact(actions).await?.is_none())
    }

    async fn order(&self, order_id: &str) -> Result<Option<OrderRecord>> {
        let operation = Operation::new(DYNAMODB, "Query", &self.table);
        let output = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk")
            .expression_attribute_values(":pk", s(format!("ORDER#{order_id}")))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| from_sdk(operation.clone(), e))?;
        let items = output.items.unwrap_or_default();
        let Some(order) = items.iter().find(|item| text(item, "sk") == Some("ORDER")) else {
            return Ok(None);
        };
        let history = order
            .get("history")
            .and_then(|h| h.as_l().ok())
            .map(|entries| {
                entries
                    .iter()
                    .filter_map(|entry| entry.as_m().ok())
                    .map(|entry| Transition {
                        state: text(entry, "state").unwrap_or_default().to_owned(),
                        at: text(entry, "at").unwrap_or_default().to_owned(),
                    })
                    .collect()
            })
            .unwrap_or_default();
        let mut notifications: Vec<String> = items
            .iter()
            .filter_map(|item| text(item, "sk")?.strip_prefix("NOTIFICATION#").map(str::to_owned))
            .collect();
        notifications.sort();
        Ok(Some(OrderRecord {
            placed: parse_event(&operation, order)?,
            state: text(order, "state").unwrap_or_default().to_owned(),
            history,
            outbox_pending: items.iter().any(|item| text(item, "sk") == Some(OUTBOX)),
            tracking_id: text(order, "trackingId").map(str::to_owned),
            notifications,
        }))
    }

    async fn clear_outbox(&self, order_id: &str) -> Result<()> {
        let operation = Operation::new(DYNAMODB, "DeleteItem", &self.table);
        self.client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(order_key(order_id, OUTBOX)))
            .send()
            .await
            .map_err(|e| from_sdk(operation, e))?;
        Ok(())
    }

    async fn pending_outbox(&self, limit: i32) -> Result<Vec<Pending>> {
        let operation = Operation::new(DYNAMODB, "Query", &self.table);
        let output = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(OUTBOX_INDEX)
            .key_condition_expression("outbox = :pending")
            .expression_attribute_values(":pending", s(PENDING))
            .limit(limit)
            .send()
            .await
            .map_err(|e| from_sdk(operation.clone(), e))?;
        output
            .items
            .unwrap_or_default()
            .iter()
            .map(|item| {
                Ok(Pending {
                    event: parse_event(&operation, item)?,
                    traceparent: text(item, "traceparent").unwrap_or_default().to_owned(),
                    recorded_at_millis: item
                        .get("recordedAt")
                        .and_then(|v| v.as_n().ok())
                        .and_then(|v| v.parse().ok())
                        .unwrap_or(0),
                })
            })
            .collect()
    }

    async fn record_notification(&self, order_id: &str, event: &str, message: &str) -> Result<bool> {
        let mut item = order_key(order_id, &format!("NOTIFICATION#{event}"));
        item.extend([("message".to_owned(), s(message)), ("at".to_owned(), s(now()))]);
        self.put_if_absent(item).await
    }

    async fn reserve(&self, event: &OrderEvent) -> Result<Reservation> {
        let order_id = &event.order_id;
        // One decrement per product: a transaction may not touch an item twice.
        let mut quantities: Vec<(String, u64)> = Vec::new();
        for item in &event.items {
            match quantities.iter_mut().find(|(sku, _)| *sku == item.sku) {
                Some((_, quantity)) => *quantity += u64::from(item.quantity),
                None => quantities.push((item.sku.clone(), u64::from(item.quantity))),
            }
        }
        // Conditions are checked by reading first, so that the transactions below are cancelled only
        // by a real race: a cancelled transaction costs twice the writes, and moto 5.2.5 answers one by
        // restoring a copy of the whole table, undoing the writes other requests made meanwhile.
        if let Some(item) = self.get(order_key(order_id, "RESERVATION")).await? {
            return Ok(reservation_of(&item));
        }
        for (sku, quantity) in &quantities {
            match self.stock(sku).await? {
                None => return Ok(Reservation::UnknownProduct(sku.clone())),
                Some(available) if available < i64::try_from(*quantity).unwrap_or(i64::MAX) => {
                    return self.refuse(order_id, sku).await;
                }
                Some(_) => {}
            }
        }
        let mut reservation = order_key(order_id, "RESERVATION");
        reservation.extend([
            ("state".to_owned(), s(states::RESERVED)),
            ("at".to_owned(), s(now())),
        ]);
        let mut actions = vec![self.put(reservation, "attribute_not_exists(pk)")?];
        for (sku, quantity) in &quantities {
            actions.push(self.update(
                stock_key(sku),
                "SET available = available - :q",
                "available >= :q",
                HashMap::from([(":q".to_owned(), n(quantity))]),
                &[],
            )?);
        }
        actions.push(self.advance(order_id, states::PLACED, states::RESERVED, "", HashMap::new())?);
        let Some(codes) = self.transact(actions).await? else {
            return Ok(Reservation::Reserved);
        };
        // Reserved (or refused) before, maybe by a concurrent delivery: the first outcome stands. Read
        // back rather than trusting which condition the server reports first.
        if let Some(item) = self.get(order_key(order_id, "RESERVATION")).await? {
            return Ok(reservation_of(&item));
        }
        let short = codes
            .iter()
            .skip(1)
            .take(quantities.len())
            .position(|c| is_condition_failure(c))
            .map(|i| quantities[i].0.clone());
        let Some(sku) = short else {
            let operation = Operation::new(DYNAMODB, "TransactWriteItems", &self.table);
            return Err(invalid(
                &operation,
                format!("order {order_id} is not in state PLACED"),
            ));
        };
        if self.stock(&sku).await?.is_none() {
            return Ok(Reservation::UnknownProduct(sku));
        }
        self.refuse(order_id, &sku).await
    }

    async fn reservation(&self, order_id: &str) -> Result<Option<Reservation>> {
        Ok(self
            .get(order_key(order_id, "RESERVATION"))
            .await?
            .as_ref()
            .map(reservation_of))
    }

    async fn ship(&self, order_id: &str, tracking_id: &str) -> Result<bool> {
        // Read first, as in `reserve`: a redelivery finds the shipment without a cancelled transaction.
        if let Some(item) = self.get(order_key(order_id, "SHIPMENT")).await? {
            return Ok(item.contains_key("published"));
        }
        let mut shipment = order_key(order_id, "SHIPMENT");
        shipment.extend([
            ("trackingId".to_owned(), s(tracking_id)),
            ("at".to_owned(), s(now())),
        ]);
        let values = HashMap::from([(":t".to_owned(), s(tracking_id))]);
        let actions = vec![
            self.put(shipment, "attribute_not_exists(pk)")?,
            self.advance(
                order_id,
                states::RESERVED,
                states::SHIPPED,
                ", trackingId = :t",
                values,
            )?,
        ];
        match self.transact(actions).await? {
            None => Ok(false),
            // Shipped before, maybe by a concurrent delivery: read back what was recorded.
            Some(_) => match self.get(order_key(order_id, "SHIPMENT")).await? {
                Some(item) => Ok(item.contains_key("published")),
                None => {
                    let operation = Operation::new(DYNAMODB, "TransactWriteItems", &self.table);
                    Err(invalid(
                        &operation,
                        format!("order {order_id} is not in state RESERVED"),
                    ))
                }
            },
        }
    }

    async fn shipment_published(&self, order_id: &str) -> Result<()> {
        let operation = Operation::new(DYNAMODB, "UpdateItem", &self.table);
        self.client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(order_key(order_id, "SHIPMENT")))
            .update_expression("SET published = :t")
            .expression_attribute_values(":t", AttributeValue::Bool(true))
            .send()
            .await
            .map_err(|e| from_sdk(operation, e))?;
        Ok(())
    }

    async fn set_stock(&self, sku: &str, available: i64) -> Result<()> {
        let operation = Operation::new(DYNAMODB, "PutItem", &self.table);
        let mut item = stock_key(sku);
        item.insert("available".to_owned(), n(available));
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .send()
            .await
            .map_err(|e| from_sdk(operation, e))?;
        Ok(())
    }

    async fn stock(&self, sku: &str) -> Result<Option<i64>> {
        Ok(self
            .get(stock_key(sku))
            .await?
            .and_then(|item| item.get("available")?.as_n().ok()?.parse().ok()))
    }
}
