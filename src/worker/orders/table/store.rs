//! [`OrderStore`] on the Order table: the operations the order processors use, each conditional so that a
//! redelivery makes no second effect, and each checking its conditions by reading first (see the parent
//! module on why).

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;

use super::{
    DYNAMODB, OUTBOX, OrderTable, PRINCIPAL, invalid, is_condition_failure, n, now, now_millis, order_key,
    outbox, parse_event, reservation_of, s, stock_key, text, transition,
};
use crate::{
    cloud::{Operation, Result, aws::error::from_sdk},
    worker::orders::{
        model::{OrderEvent, states},
        store::{OrderRecord, OrderStore, OutboxBatch, Reservation, Transition},
    },
};

impl OrderStore for OrderTable {
    async fn create_order(
        &self,
        event: &OrderEvent,
        traceparent: &str,
        principal: Option<&str>,
    ) -> Result<bool> {
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
        if let Some(principal) = principal {
            order.insert(PRINCIPAL.to_owned(), s(principal));
        }
        // The outbox entry is an item of its own, deleted once published, so that clearing it never
        // writes the order item the processors change.
        // Its index attributes place it in its shard of the outbox index, by age.
        let recorded_at = now_millis();
        let mut outbox = order_key(&event.order_id, OUTBOX);
        outbox.extend([
            ("event".to_owned(), s(body)),
            ("traceparent".to_owned(), s(traceparent)),
            ("recordedAt".to_owned(), n(recorded_at)),
        ]);
        outbox.extend(
            outbox::index_attributes(&event.order_id, recorded_at)
                .map(|(name, value)| (name.to_owned(), s(value))),
        );
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
            principal: text(order, PRINCIPAL).map(str::to_owned),
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

    async fn pending_outbox(&self, limit: i32) -> Result<OutboxBatch> {
        self.outbox.read(&self.client, &self.table, limit).await
    }

    async fn claim_outbox(&self, order_id: &str, holder: &str) -> Result<bool> {
        let now = time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000;
        let now = i64::try_from(now).unwrap_or(i64::MAX);
        outbox::claim(&self.client, &self.table, order_id, holder, now).await
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
