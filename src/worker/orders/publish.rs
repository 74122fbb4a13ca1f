//! Publishing order events, as a narrow trait, and its SNS implementation: the event as the message body,
//! its attributes (`event`, `region`, `delivery`, `total`, `priority`) and `traceparent` as message
//! attributes. On a FIFO topic the order id is the message group (events of one order stay in order) and
//! the event kind plus order id the deduplication id.

use std::future::Future;

use super::model::OrderEvent;
use crate::{
    cloud::{
        Error, Operation, Result,
        aws::{SnsPublisher, publisher::Publication},
    },
    worker::message::TRACEPARENT,
};

/// Publishes order events with their message attributes and trace context.
pub trait Publisher: Clone + Send + Sync + 'static {
    /// Publishes `event`; `traceparent` travels as a message attribute.
    fn publish(&self, event: &OrderEvent, traceparent: &str) -> impl Future<Output = Result<()>> + Send;
}

impl Publisher for SnsPublisher {
    async fn publish(&self, event: &OrderEvent, traceparent: &str) -> Result<()> {
        let body = serde_json::to_string(event).map_err(|e| Error::Invalid {
            operation: Operation::new("sns", "Publish", self.topic_arn()),
            detail: e.to_string(),
        })?;
        let mut attributes = event.attributes();
        attributes.push((TRACEPARENT, "String", traceparent.to_owned()));
        let fifo = Some((
            event.order_id.clone(),
            format!("{}-{}", event.kind, event.order_id),
        ));
        self.publish_message(Publication {
            body,
            attributes,
            fifo,
        })
        .await
    }
}
