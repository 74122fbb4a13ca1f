//! Publishing order events, as a narrow trait (SNS in `cloud::aws::publisher`).

use std::future::Future;

use super::model::OrderEvent;
use crate::cloud::Result;

/// Publishes order events with their message attributes and trace context.
pub trait Publisher: Clone + Send + Sync + 'static {
    /// Publishes `event`; `traceparent` travels as a message attribute.
    fn publish(&self, event: &OrderEvent, traceparent: &str) -> impl Future<Output = Result<()>> + Send;
}
