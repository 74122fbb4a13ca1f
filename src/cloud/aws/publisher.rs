//! [`Publisher`] on SNS: the event as the message body, its attributes (`event`, `region`, `delivery`,
//! `total`, `priority`) and `traceparent` as message attributes. On a FIFO topic the order id is the
//! message group (events of one order stay in order) and the event kind plus order id the deduplication id.

use aws_sdk_sns::types::MessageAttributeValue;

use super::{SNS, error::from_sdk};
use crate::{
    cloud::{Error, Operation, Result},
    worker::{
        message::TRACEPARENT,
        orders::{model::OrderEvent, publish::Publisher},
    },
};

/// Publishes to one SNS topic.
#[derive(Clone, Debug)]
pub struct SnsPublisher {
    client: aws_sdk_sns::Client,
    topic_arn: String,
}

impl SnsPublisher {
    /// Publishes to `topic_arn`.
    pub fn new(client: aws_sdk_sns::Client, topic_arn: impl Into<String>) -> Self {
        Self {
            client,
            topic_arn: topic_arn.into(),
        }
    }
}

impl Publisher for SnsPublisher {
    async fn publish(&self, event: &OrderEvent, traceparent: &str) -> Result<()> {
        let operation = Operation::new(SNS, "Publish", &self.topic_arn);
        let body = serde_json::to_string(event).map_err(|e| Error::Invalid {
            operation: operation.clone(),
            detail: e.to_string(),
        })?;
        let mut request = self.client.publish().topic_arn(&self.topic_arn).message(body);
        let mut attributes = event.attributes();
        attributes.push((TRACEPARENT, "String", traceparent.to_owned()));
        for (name, data_type, value) in attributes {
            let attribute = MessageAttributeValue::builder()
                .data_type(data_type)
                .string_value(value)
                .build()
                .map_err(|e| Error::Invalid {
                    operation: operation.clone(),
                    detail: e.to_string(),
                })?;
            request = request.message_attributes(name, attribute);
        }
        if self.topic_arn.ends_with(".fifo") {
            request = request
                .message_group_id(&event.order_id)
                .message_deduplication_id(format!("{}-{}", event.kind, event.order_id));
        }
        request.send().await.map_err(|e| from_sdk(operation, e))?;
        Ok(())
    }
}
