//! Publishing to one SNS topic: a body with string and number message attributes, and on a FIFO topic
//! the message group and deduplication ids. What an order event puts in them is the order processors'
//! business (`worker::orders::publish`).

use aws_sdk_sns::types::MessageAttributeValue;

use super::{SNS, error::from_sdk};
use crate::cloud::{Error, Operation, Result};

/// Publishes to one SNS topic.
#[derive(Clone, Debug)]
pub struct SnsPublisher {
    client: aws_sdk_sns::Client,
    topic_arn: String,
}

/// One message to publish.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Publication {
    /// The body.
    pub body: String,
    /// Message attributes as (name, data type, value).
    pub attributes: Vec<(&'static str, &'static str, String)>,
    /// The FIFO message group and deduplication id, used when the topic is FIFO.
    pub fifo: Option<(String, String)>,
}

impl SnsPublisher {
    /// Publishes to `topic_arn`.
    pub fn new(client: aws_sdk_sns::Client, topic_arn: impl Into<String>) -> Self {
        Self {
            client,
            topic_arn: topic_arn.into(),
        }
    }

    /// Publishes `publication` (its FIFO ids only if the topic is FIFO).
    pub async fn publish_message(&self, publication: Publication) -> Result<()> {
        let attributes = publication
            .attributes
            .into_iter()
            .map(|(name, data_type, value)| (name.to_owned(), data_type, value));
        self.publish(publication.body, attributes, publication.fifo).await
    }

    /// Publishes `body` with `String` attributes whose names are known only at run time (a reply of a
    /// user's processor), and on a FIFO topic the message group and deduplication ids.
    pub async fn publish_strings(
        &self,
        body: String,
        attributes: Vec<(String, String)>,
        fifo: Option<(String, String)>,
    ) -> Result<()> {
        let attributes = attributes
            .into_iter()
            .map(|(name, value)| (name, "String", value));
        self.publish(body, attributes, fifo).await
    }

    async fn publish(
        &self,
        body: String,
        attributes: impl Iterator<Item = (String, &str, String)>,
        fifo: Option<(String, String)>,
    ) -> Result<()> {
        let operation = Operation::new(SNS, "Publish", &self.topic_arn);
        let mut request = self.client.publish().topic_arn(&self.topic_arn).message(body);
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
        if let Some((group, deduplication)) = fifo.filter(|_| self.topic_arn.ends_with(".fifo")) {
            request = request
                .message_group_id(group)
                .message_deduplication_id(deduplication);
        }
        request.send().await.map_err(|e| from_sdk(operation, e))?;
        Ok(())
    }

    /// The topic's ARN, for errors.
    pub fn topic_arn(&self) -> &str {
        &self.topic_arn
    }
}
