//! The order processors that drain queues: notification, inventory and shipment. Each parses the event
//! (a malformed one is rejected, so dead-lettered with the reason), makes its effect with a conditional
//! write (so a redelivery makes none), and answers `Retry` when the table or topic failed.

use super::{
    model::{Delivery, OrderEvent, events, tracking_id},
    publish::Publisher,
    store::{OrderStore, Reservation},
};
use crate::worker::{
    message::Message,
    processor::{Outcome, Processor},
    trace::next_traceparent,
};

fn parse(message: &Message) -> Result<OrderEvent, Outcome> {
    let event = OrderEvent::parse(&message.body).map_err(Outcome::Reject)?;
    if let Some(attribute) = message.attribute("event")
        && attribute != event.kind
    {
        return Err(Outcome::Reject(format!(
            "attribute event {attribute:?} does not match the body's type {:?}",
            event.kind
        )));
    }
    Ok(event)
}

fn retry(what: &str, error: impl std::fmt::Display) -> Outcome {
    Outcome::Retry(format!("{what}: {error}"))
}

/// Records each customer notification once per order and event.
#[derive(Clone, Debug)]
pub struct Notification<S> {
    store: S,
}

impl<S> Notification<S> {
    /// Records in `store`.
    pub fn new(store: S) -> Self {
        Self { store }
    }
}

/// What the customer is told.
fn notification_text(event: &OrderEvent) -> String {
    match event.kind.as_str() {
        events::PLACED => format!("Thank you! Order {} is confirmed.", event.order_id),
        events::SHIPPED => format!(
            "Order {} is on its way (tracking {}).",
            event.order_id,
            event.tracking_id.as_deref().unwrap_or("pending")
        ),
        events::CANCELLED => format!("Order {} was cancelled.", event.order_id),
        other => format!("Order {}: {other}.", event.order_id),
    }
}

impl<S: OrderStore> Processor for Notification<S> {
    fn name(&self) -> &'static str {
        "notification"
    }

    async fn process(&self, message: &Message) -> Outcome {
        let event = match parse(message) {
            Ok(event) => event,
            Err(outcome) => return outcome,
        };
        match self
            .store
            .record_notification(&event.order_id, &event.kind, &notification_text(&event))
            .await
        {
            Ok(created) => {
                tracing::info!(
                    order_id = %event.order_id,
                    trace_id = message.trace_id().unwrap_or_default(),
                    event = %event.kind,
                    duplicate = !created,
                    "customer notified"
                );
                Outcome::Done
            }
            Err(error) => retry("recording the notification", error),
        }
    }
}

/// Reserves stock for placed orders and publishes `OrderReserved`; out of stock is an outcome (the order
/// is cancelled, `OrderCancelled`), not a failure.
#[derive(Clone, Debug)]
pub struct Inventory<S, P> {
    store: S,
    publisher: Option<P>,
}

impl<S, P> Inventory<S, P> {
    /// Reserves in `store`, publishing the outcome with `publisher` when there is one.
    pub fn new(store: S, publisher: Option<P>) -> Self {
        Self { store, publisher }
    }
}

impl<S: OrderStore, P: Publisher> Processor for Inventory<S, P> {
    fn name(&self) -> &'static str {
        "inventory"
    }

    async fn process(&self, message: &Message) -> Outcome {
        let event = match parse(message) {
            Ok(event) => event,
            Err(outcome) => return outcome,
        };
        if event.kind != events::PLACED {
            return Outcome::Done;
        }
        let (next, out_of_stock) = match self.store.reserve(&event).await {
            Ok(Reservation::UnknownProduct(sku)) => {
                return Outcome::Retry(format!(
                    "sku {sku} has no stock record: add the product, then redrive the dead letter"
                ));
            }
            Ok(Reservation::Reserved) => (events::RESERVED, None),
            Ok(Reservation::OutOfStock(sku)) => (events::CANCELLED, Some(sku)),
            Err(error) => return retry("reserving stock", error),
        };
        // Published on every successful delivery, so a crash between the reservation and the publish
        // cannot lose the event; a second copy changes nothing downstream (every processor is
        // idempotent).
        if let Some(publisher) = &self.publisher {
            let outcome = event.followed_by(next, None);
            if let Err(error) = publisher
                .publish(&outcome, &next_traceparent(message.trace_id()))
                .await
            {
                return retry(&format!("publishing {next}"), error);
            }
        }
        tracing::info!(
            order_id = %event.order_id,
            trace_id = message.trace_id().unwrap_or_default(),
            out_of_stock,
            "stock reserved or refused"
        );
        Outcome::Done
    }
}

/// Ships reserved orders (`OrderReserved`): a shipment with a tracking id, the order SHIPPED, and
/// `OrderShipped` published once.
#[derive(Clone, Debug)]
pub struct Shipment<S, P> {
    store: S,
    publisher: Option<P>,
}

impl<S, P> Shipment<S, P> {
    /// Ships in `store`, publishing `OrderShipped` with `publisher` when there is one.
    pub fn new(store: S, publisher: Option<P>) -> Self {
        Self { store, publisher }
    }
}

impl<S: OrderStore, P: Publisher> Processor for Shipment<S, P> {
    fn name(&self) -> &'static str {
        "shipment"
    }

    async fn process(&self, message: &Message) -> Outcome {
        let event = match parse(message) {
            Ok(event) => event,
            Err(outcome) => return outcome,
        };
        // Inventory publishes OrderReserved once the stock is reserved, so the order is RESERVED here.
        if event.kind != events::RESERVED || event.delivery == Delivery::Pickup {
            return Outcome::Done;
        }
        let order_id = &event.order_id;
        let tracking = tracking_id(order_id);
        let published = match self.store.ship(order_id, &tracking).await {
            Ok(published) => published,
            Err(error) => return retry("creating the shipment", error),
        };
        if let (Some(publisher), false) = (&self.publisher, published) {
            let shipped = event.followed_by(events::SHIPPED, Some(tracking.clone()));
            let traceparent = next_traceparent(message.trace_id());
            if let Err(error) = publisher.publish(&shipped, &traceparent).await {
                return retry("publishing OrderShipped", error);
            }
            if let Err(error) = self.store.shipment_published(order_id).await {
                return retry("recording the OrderShipped publish", error);
            }
        }
        tracing::info!(
            order_id = %order_id,
            trace_id = message.trace_id().unwrap_or_default(),
            tracking_id = %tracking,
            "shipped"
        );
        Outcome::Done
    }
}
