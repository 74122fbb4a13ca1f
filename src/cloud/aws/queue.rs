//! [`MessageQueue`] on SQS: receives of up to 10 messages with their message attributes, batch deletes,
//! batch visibility changes, and sends (one, or a batch of up to 10). A handle made by the controller's
//! [`super::AwsCloud`] waits for its rate limits and is counted in its metrics; a worker's
//! ([`SqsQueue::new`]) makes straight SDK calls: workers move messages as fast as SQS allows, and SQS's
//! message APIs have no low quota.

use std::{
    collections::{BTreeMap, HashMap},
    sync::Arc,
};

use aws_sdk_sqs::{
    primitives::Blob,
    types::{
        BatchResultErrorEntry, ChangeMessageVisibilityBatchRequestEntry, DeleteMessageBatchRequestEntry,
        Message, MessageAttributeValue, MessageSystemAttributeName, SendMessageBatchRequestEntry,
    },
};

use super::{
    SQS,
    error::{from_sdk, missing},
    ratelimit::Limiter,
};
use crate::cloud::{
    Error, Operation, Result,
    queue::{
        BatchFailure, BatchOutcome, MessageAttribute, MessageQueue, OutgoingMessage, Receive,
        ReceivedMessage, SystemAttributes, VisibilityChange,
    },
};

/// SQS's batch limit.
const MAX_BATCH: usize = 10;

/// SQS's limit on message attributes per message.
pub const MAX_ATTRIBUTES: usize = 10;

/// One SQS queue's messages.
#[derive(Clone, Debug)]
pub struct SqsQueue {
    client: aws_sdk_sqs::Client,
    url: String,
    /// The controller's rate limits; `None` for a worker.
    limiter: Option<Arc<Limiter>>,
}

impl SqsQueue {
    /// The queue at `url`, called without client-side rate limits (a worker's queue).
    pub fn new(client: aws_sdk_sqs::Client, url: impl Into<String>) -> Self {
        Self {
            client,
            url: url.into(),
            limiter: None,
        }
    }

    /// The queue at `url`, each call waiting for its action's rate limit first.
    pub(super) fn limited(client: aws_sdk_sqs::Client, url: &str, limiter: Arc<Limiter>) -> Self {
        Self {
            client,
            url: url.to_owned(),
            limiter: Some(limiter),
        }
    }

    fn operation(&self, name: &'static str) -> Operation {
        Operation::new(SQS, name, &self.url)
    }

    /// Waits for the rate limit of `operation`'s action, if this handle has limits.
    async fn limit(&self, operation: &Operation) {
        if let Some(limiter) = &self.limiter {
            limiter.acquire(operation.service, operation.name).await;
        }
    }
}

/// A received SQS message with its user and system attributes.
fn received(message: Message) -> ReceivedMessage {
    let attributes = message
        .message_attributes
        .unwrap_or_default()
        .into_iter()
        .map(|(name, value)| {
            let attribute = MessageAttribute {
                data_type: value.data_type,
                string_value: value.string_value,
                binary_value: value.binary_value.map(Blob::into_inner),
            };
            (name, attribute)
        })
        .collect();
    let system_attributes = message
        .attributes
        .unwrap_or_default()
        .into_iter()
        .map(|(name, value)| (name.as_str().to_owned(), value))
        .collect();
    ReceivedMessage {
        message_id: message.message_id.unwrap_or_default(),
        receipt_handle: message.receipt_handle.unwrap_or_default(),
        body: message.body.unwrap_or_default(),
        attributes,
        system_attributes,
    }
}

/// Message attributes in the SDK's form (for sending).
fn sqs_message_attributes(
    operation: &Operation,
    attributes: &BTreeMap<String, MessageAttribute>,
) -> Result<HashMap<String, MessageAttributeValue>> {
    attributes
        .iter()
        .map(|(name, attribute)| {
            let value = MessageAttributeValue::builder()
                .data_type(&attribute.data_type)
                .set_string_value(attribute.string_value.clone())
                .set_binary_value(attribute.binary_value.clone().map(Blob::new))
                .build()
                .map_err(|e| invalid(operation, e.to_string()))?;
            Ok((name.clone(), value))
        })
        .collect()
}

fn invalid(operation: &Operation, detail: String) -> Error {
    Error::Invalid {
        operation: operation.clone(),
        detail,
    }
}

fn failure(entry: BatchResultErrorEntry) -> BatchFailure {
    BatchFailure {
        entry_id: entry.id,
        code: entry.code,
        message: entry.message.unwrap_or_default(),
        sender_fault: entry.sender_fault,
    }
}

fn check_batch_size(operation: &Operation, len: usize) -> Result<()> {
    if len > MAX_BATCH {
        return Err(invalid(
            operation,
            format!("{len} entries; SQS takes at most {MAX_BATCH} per batch"),
        ));
    }
    Ok(())
}

impl MessageQueue for SqsQueue {
    fn url(&self) -> &str {
        &self.url
    }

    async fn receive(&self, request: &Receive) -> Result<Vec<ReceivedMessage>> {
        let operation = self.operation("ReceiveMessage");
        let system_attributes = match request.system_attributes {
            SystemAttributes::ReceiveCountAndGroup => vec![
                MessageSystemAttributeName::ApproximateReceiveCount,
                MessageSystemAttributeName::MessageGroupId,
                MessageSystemAttributeName::SentTimestamp,
            ],
            SystemAttributes::All => vec![MessageSystemAttributeName::All],
        };
        self.limit(&operation).await;
        let output = self
            .client
            .receive_message()
            .queue_url(&self.url)
            .max_number_of_messages(request.max.clamp(1, MAX_BATCH as i32))
            .wait_time_seconds(request.wait_seconds)
            .set_visibility_timeout(request.visibility_timeout_seconds)
            .set_message_system_attribute_names(Some(system_attributes))
            .message_attribute_names("All")
            .send()
            .await
            .map_err(|e| from_sdk(operation.clone(), e))?;
        let messages: Vec<_> = output
            .messages
            .unwrap_or_default()
            .into_iter()
            .map(received)
            .collect();
        if messages.iter().any(|m| m.receipt_handle.is_empty()) {
            return Err(missing(operation, "ReceiptHandle"));
        }
        Ok(messages)
    }

    async fn delete(&self, receipts: &[(String, String)]) -> Result<BatchOutcome> {
        let operation = self.operation("DeleteMessageBatch");
        if receipts.is_empty() {
            return Ok(BatchOutcome::default());
        }
        check_batch_size(&operation, receipts.len())?;
        let entries = receipts
            .iter()
            .map(|(id, receipt_handle)| {
                DeleteMessageBatchRequestEntry::builder()
                    .id(id)
                    .receipt_handle(receipt_handle)
                    .build()
                    .map_err(|e| invalid(&operation, e.to_string()))
            })
            .collect::<Result<Vec<_>>>()?;
        self.limit(&operation).await;
        let output = self
            .client
            .delete_message_batch()
            .queue_url(&self.url)
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(|e| from_sdk(operation, e))?;
        Ok(BatchOutcome {
            succeeded: output.successful.into_iter().map(|entry| entry.id).collect(),
            failed: output.failed.into_iter().map(failure).collect(),
        })
    }

    async fn change_visibility(&self, changes: &[VisibilityChange]) -> Result<BatchOutcome> {
        let operation = self.operation("ChangeMessageVisibilityBatch");
        if changes.is_empty() {
            return Ok(BatchOutcome::default());
        }
        check_batch_size(&operation, changes.len())?;
        let entries = changes
            .iter()
            .map(|change| {
                ChangeMessageVisibilityBatchRequestEntry::builder()
                    .id(&change.entry_id)
                    .receipt_handle(&change.receipt)
                    .visibility_timeout(change.seconds)
                    .build()
                    .map_err(|e| invalid(&operation, e.to_string()))
            })
            .collect::<Result<Vec<_>>>()?;
        self.limit(&operation).await;
        let output = self
            .client
            .change_message_visibility_batch()
            .queue_url(&self.url)
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(|e| from_sdk(operation, e))?;
        Ok(BatchOutcome {
            succeeded: output.successful.into_iter().map(|entry| entry.id).collect(),
            failed: output.failed.into_iter().map(failure).collect(),
        })
    }

    async fn send(&self, messages: &[OutgoingMessage]) -> Result<BatchOutcome> {
        let operation = self.operation("SendMessageBatch");
        if messages.is_empty() {
            return Ok(BatchOutcome::default());
        }
        check_batch_size(&operation, messages.len())?;
        let entries = messages
            .iter()
            .map(|message| {
                SendMessageBatchRequestEntry::builder()
                    .id(&message.entry_id)
                    .message_body(&message.body)
                    .set_message_attributes(
                        Some(sqs_message_attributes(&operation, &message.attributes)?)
                            .filter(|attributes| !attributes.is_empty()),
                    )
                    .set_message_group_id(message.group_id.clone())
                    .set_message_deduplication_id(message.deduplication_id.clone())
                    .build()
                    .map_err(|e| invalid(&operation, e.to_string()))
            })
            .collect::<Result<Vec<_>>>()?;
        self.limit(&operation).await;
        let output = self
            .client
            .send_message_batch()
            .queue_url(&self.url)
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(|e| from_sdk(operation, e))?;
        Ok(BatchOutcome {
            succeeded: output.successful.into_iter().map(|entry| entry.id).collect(),
            failed: output.failed.into_iter().map(failure).collect(),
        })
    }

    async fn send_one(&self, message: &OutgoingMessage) -> Result<()> {
        let operation = self.operation("SendMessage");
        let attributes = sqs_message_attributes(&operation, &message.attributes)?;
        self.limit(&operation).await;
        self.client
            .send_message()
            .queue_url(&self.url)
            .message_body(&message.body)
            .set_message_attributes(Some(attributes))
            .set_message_group_id(message.group_id.clone())
            .set_message_deduplication_id(message.deduplication_id.clone())
            .send()
            .await
            .map_err(|e| from_sdk(operation, e))?;
        Ok(())
    }

    fn attribute_limit(&self) -> Option<usize> {
        Some(MAX_ATTRIBUTES)
    }

    /// SQS requires a FIFO queue's name to end in `.fifo`, and only a FIFO queue's may.
    fn is_fifo(&self) -> bool {
        self.url.ends_with(".fifo")
    }
}
