//! [`WorkQueue`] on SQS: long-polling receives of up to 10 messages with every attribute, batch deletes,
//! batch visibility changes, and dead-lettering by send. Straight SDK calls without the controller's rate
//! limiter: workers move messages as fast as SQS allows, and SQS's message APIs have no low quota.

use aws_sdk_sqs::types::{
    ChangeMessageVisibilityBatchRequestEntry, DeleteMessageBatchRequestEntry, MessageSystemAttributeName,
};

use super::{
    SQS,
    error::{from_sdk, missing},
    messages::{received, sqs_message_attributes},
};
use crate::{
    cloud::{
        Error, Operation, Result,
        work_queue::{Delivery, WorkQueue, dead_letter_attributes},
    },
    worker::message::Message,
};

/// An SQS queue drained by a worker, and its dead-letter queue.
#[derive(Clone, Debug)]
pub struct SqsWorkQueue {
    client: aws_sdk_sqs::Client,
    url: String,
    dead_letter_url: Option<String>,
}

impl SqsWorkQueue {
    /// The queue at `url`, dead-lettering to `dead_letter_url`.
    pub fn new(client: aws_sdk_sqs::Client, url: String, dead_letter_url: Option<String>) -> Self {
        Self {
            client,
            url,
            dead_letter_url,
        }
    }
}

impl WorkQueue for SqsWorkQueue {
    async fn receive(&self, max: i32, wait_seconds: i32) -> Result<Vec<Delivery>> {
        let operation = Operation::new(SQS, "ReceiveMessage", &self.url);
        let output = self
            .client
            .receive_message()
            .queue_url(&self.url)
            .max_number_of_messages(max.clamp(1, 10))
            .wait_time_seconds(wait_seconds)
            .message_attribute_names("All")
            .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
            .send()
            .await
            .map_err(|e| from_sdk(operation.clone(), e))?;
        let mut deliveries = Vec::new();
        for message in output.messages.unwrap_or_default() {
            let message = received(message);
            if message.receipt_handle.is_empty() {
                return Err(missing(operation, "ReceiptHandle"));
            }
            let strings = message
                .attributes
                .iter()
                .filter_map(|(name, value)| Some((name.clone(), value.string_value.clone()?)))
                .collect();
            let receive_count = message.receive_count().unwrap_or(1);
            deliveries.push(Delivery {
                message: Message::delivered(message.message_id, message.body.clone(), strings, receive_count)
                    .with_types(&message.attributes),
                receipt: message.receipt_handle,
                raw_body: message.body,
                raw_attributes: message.attributes,
            });
        }
        Ok(deliveries)
    }

    async fn acknowledge(&self, receipts: Vec<String>) -> Result<Vec<String>> {
        if receipts.is_empty() {
            return Ok(Vec::new());
        }
        let operation = Operation::new(SQS, "DeleteMessageBatch", &self.url);
        let entries = receipts
            .iter()
            .enumerate()
            .map(|(i, receipt)| {
                DeleteMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .receipt_handle(receipt)
                    .build()
                    .map_err(|e| Error::Invalid {
                        operation: operation.clone(),
                        detail: e.to_string(),
                    })
            })
            .collect::<Result<Vec<_>>>()?;
        let output = self
            .client
            .delete_message_batch()
            .queue_url(&self.url)
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(|e| from_sdk(operation, e))?;
        Ok(failed_receipts(
            &receipts,
            output.failed.iter().map(|f| f.id.as_str()),
        ))
    }

    async fn postpone(&self, entries: Vec<(String, i32)>) -> Result<Vec<String>> {
        if entries.is_empty() {
            return Ok(Vec::new());
        }
        let operation = Operation::new(SQS, "ChangeMessageVisibilityBatch", &self.url);
        let batch = entries
            .iter()
            .enumerate()
            .map(|(i, (receipt, seconds))| {
                ChangeMessageVisibilityBatchRequestEntry::builder()
                    .id(i.to_string())
                    .receipt_handle(receipt)
                    .visibility_timeout(*seconds)
                    .build()
                    .map_err(|e| Error::Invalid {
                        operation: operation.clone(),
                        detail: e.to_string(),
                    })
            })
            .collect::<Result<Vec<_>>>()?;
        let output = self
            .client
            .change_message_visibility_batch()
            .queue_url(&self.url)
            .set_entries(Some(batch))
            .send()
            .await
            .map_err(|e| from_sdk(operation, e))?;
        let receipts: Vec<String> = entries.into_iter().map(|(receipt, _)| receipt).collect();
        Ok(failed_receipts(
            &receipts,
            output.failed.iter().map(|f| f.id.as_str()),
        ))
    }

    async fn dead_letter(&self, delivery: &Delivery, reason: &str) -> Result<()> {
        let Some(url) = &self.dead_letter_url else {
            return Err(Error::Invalid {
                operation: Operation::new(SQS, "SendMessage", "(no dead-letter queue)"),
                detail: "the Consumer has no deadLetterRef".to_owned(),
            });
        };
        let operation = Operation::new(SQS, "SendMessage", url);
        let attributes = dead_letter_attributes(&delivery.raw_attributes, reason);
        self.client
            .send_message()
            .queue_url(url)
            .message_body(&delivery.raw_body)
            .set_message_attributes(Some(sqs_message_attributes(&operation, &attributes)?))
            .send()
            .await
            .map_err(|e| from_sdk(operation, e))?;
        Ok(())
    }

    fn has_dead_letter(&self) -> bool {
        self.dead_letter_url.is_some()
    }

    fn url(&self) -> &str {
        &self.url
    }
}

/// The receipts whose batch entry ids (their indexes) failed.
fn failed_receipts<'a>(receipts: &[String], failed_ids: impl Iterator<Item = &'a str>) -> Vec<String> {
    failed_ids
        .filter_map(|id| id.parse::<usize>().ok())
        .filter_map(|i| receipts.get(i).cloned())
        .collect()
}
