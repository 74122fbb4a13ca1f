//! What the order processors need of the Order table, as one narrow trait: the DynamoDB implementation
//! is the `table` module beside it. Every write is conditional, so a redelivered message finds its effect
//! already there and makes no second one.

use std::future::Future;

use serde::Serialize;

use super::model::OrderEvent;
use crate::cloud::Result;

/// A state change of an order, with its time (RFC 3339).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Transition {
    /// The state reached.
    pub state: String,
    /// When.
    pub at: String,
}

/// An order as stored, with everything recorded about it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderRecord {
    /// The `OrderPlaced` event (what was ordered).
    pub placed: OrderEvent,
    /// The current state.
    pub state: String,
    /// Every state reached, oldest first.
    pub history: Vec<Transition>,
    /// Who placed it (the authenticated principal); `None` for an order recorded before principals were,
    /// which no principal may read. Never shown.
    #[serde(skip)]
    pub principal: Option<String>,
    /// Whether `OrderPlaced` still waits in the outbox to be published.
    pub outbox_pending: bool,
    /// The shipment's tracking id, once shipped.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tracking_id: Option<String>,
    /// The events the customer was notified of.
    pub notifications: Vec<String>,
}

/// The outcome of reserving an order's stock.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reservation {
    /// Every item reserved.
    Reserved,
    /// This item had not enough stock; nothing was reserved.
    OutOfStock(String),
    /// This item has no stock record at all: a catalogue problem, not a business outcome. Nothing was
    /// reserved or recorded; the message is retried and, failing that, dead-lettered for a redrive once
    /// the product exists.
    UnknownProduct(String),
}

/// An `OrderPlaced` waiting in the outbox.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pending {
    /// The event.
    pub event: OrderEvent,
    /// The trace context it was recorded with.
    pub traceparent: String,
    /// When it was recorded, milliseconds since the epoch.
    pub recorded_at_millis: i64,
}

/// An outbox entry that could not be read as an `OrderPlaced` and was moved aside (quarantined) so that
/// the relay goes on with the next; its item stays in the table as it was written, for an operator.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Quarantined {
    /// The entry's partition key (`ORDER#<id>`).
    pub order_key: String,
    /// Why it could not be read.
    pub reason: String,
}

/// What one read of the outbox found, oldest first.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OutboxBatch {
    /// The entries to publish, oldest first.
    pub ready: Vec<Pending>,
    /// The entries quarantined by this read.
    pub quarantined: Vec<Quarantined>,
}

/// The Order table.
pub trait OrderStore: Clone + Send + Sync + 'static {
    /// Records a new order placed by `principal` in state PLACED with its `OrderPlaced` in the outbox.
    /// `false` if an order with this id exists already (a retried POST).
    fn create_order(
        &self,
        event: &OrderEvent,
        traceparent: &str,
        principal: Option<&str>,
    ) -> impl Future<Output = Result<bool>> + Send;

    /// The order and everything recorded about it.
    fn order(&self, order_id: &str) -> impl Future<Output = Result<Option<OrderRecord>>> + Send;

    /// Marks the order's `OrderPlaced` as published.
    fn clear_outbox(&self, order_id: &str) -> impl Future<Output = Result<()>> + Send;

    /// The oldest `limit` orders whose `OrderPlaced` has not been published yet, oldest first; an entry
    /// that cannot be read is quarantined (moved aside, kept) and reported instead of stopping the read.
    fn pending_outbox(&self, limit: i32) -> impl Future<Output = Result<OutboxBatch>> + Send;

    /// Claims the order's outbox entry for the relay `holder` for a bounded time, so that no other
    /// replica's relay publishes it meanwhile. `false` when another relay holds it or it is gone.
    fn claim_outbox(&self, order_id: &str, holder: &str) -> impl Future<Output = Result<bool>> + Send;

    /// Records that the customer was notified of `event` for the order. `false` if already recorded.
    fn record_notification(
        &self,
        order_id: &str,
        event: &str,
        text: &str,
    ) -> impl Future<Output = Result<bool>> + Send;

    /// Reserves the order's stock and moves it to RESERVED, or records it OUT_OF_STOCK; all or nothing.
    /// Reserving an order again returns the first outcome.
    fn reserve(&self, event: &OrderEvent) -> impl Future<Output = Result<Reservation>> + Send;

    /// The reservation outcome, if the order has been through inventory.
    fn reservation(&self, order_id: &str) -> impl Future<Output = Result<Option<Reservation>>> + Send;

    /// Creates the shipment with `tracking_id` and moves the order from RESERVED to SHIPPED. Returns
    /// whether `OrderShipped` was already published for it (a redelivery after the publish).
    fn ship(&self, order_id: &str, tracking_id: &str) -> impl Future<Output = Result<bool>> + Send;

    /// Marks the shipment's `OrderShipped` as published.
    fn shipment_published(&self, order_id: &str) -> impl Future<Output = Result<()>> + Send;

    /// Sets the stock of `sku`.
    fn set_stock(&self, sku: &str, available: i64) -> impl Future<Output = Result<()>> + Send;

    /// The stock of `sku`, if it has any record.
    fn stock(&self, sku: &str) -> impl Future<Output = Result<Option<i64>>> + Send;
}
