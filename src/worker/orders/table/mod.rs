//! The order processors' data layout in the Order table on DynamoDB (the table itself, its keys and the
//! outbox indexes, is the cloud capability `cloud::aws::tables`): one table, partition key `pk` and sort key `sk` (both strings), holding
//! per order `ORDER#<id>` the items `ORDER` (the order, its state and history, and the `principal` that placed it), `RESERVATION`,
//! `SHIPMENT`, `NOTIFICATION#<event>` and, while `OrderPlaced` is unpublished, `OUTBOX`; and per product
//! `STOCK#<sku>`/`STOCK`. The outbox entries are found through a sparse global index sharded by order id
//! and sorted by age ([`outbox`], which also reads the one-partition index of earlier versions).
//!
//! Items are read by attribute name and events are parsed ignoring fields this version does not know,
//! so an item written by a newer version (a rolling upgrade) is read, not refused.
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
    types::{AttributeValue, Put, TransactWriteItem, Update},
};

pub mod outbox;
mod store;

use super::model::{OrderEvent, states};
use super::store::Reservation;
use crate::cloud::{
    Error, Operation, Result,
    aws::{
        error::from_sdk,
        tables::{self, DYNAMODB},
    },
};
/// Attribute of the `ORDER` item naming the principal that placed it (absent on orders recorded before
/// the endpoint authenticated: those are readable by no principal).
const PRINCIPAL: &str = "principal";
/// Sort key of an order's outbox entry.
const OUTBOX: &str = "OUTBOX";

/// The Order table.
#[derive(Clone, Debug)]
pub struct OrderTable {
    client: aws_sdk_dynamodb::Client,
    table: String,
    outbox: outbox::OutboxReader,
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
            outbox: outbox::OutboxReader::default(),
        }
    }

    /// Creates the table (on-demand capacity, with the outbox indexes) if it does not exist, adds an
    /// outbox index an older table lacks, and waits until it is active: the cloud capability [`tables::ensure_order_table`].
    pub async fn ensure(&self) -> Result<()> {
        tables::ensure_order_table(&self.client, &self.table).await
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
