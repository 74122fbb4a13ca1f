//! SQS messages for dead-letter redrive: the server-side message move task (`StartMessageMoveTask`,
//! `ListMessageMoveTasks`) and the receive/send/delete primitives of the fallback in
//! [`crate::cloud::redrive`]. moto 5.2.5 does not implement the move-task API; its answer is classified
//! `Unsupported` (see [`super::error::classify`]).

use std::collections::{BTreeMap, HashMap};

use aws_sdk_sqs::{
    primitives::Blob,
    types::{
        BatchResultErrorEntry, ChangeMessageVisibilityBatchRequestEntry, DeleteMessageBatchRequestEntry,
        Message, MessageAttributeValue, MessageSystemAttributeName, SendMessageBatchRequestEntry,
    },
};

use super::{
    AwsCloud, SQS,
    error::{from_sdk, missing},
};
use crate::cloud::{
    Error, Operation, Result,
    traits::{
        BatchFailure, BatchOutcome, MessageAttribute, MoveRequest, MoveTask, MoveTaskStatus, OutgoingMessage,
        QueueMessages, ReceivedMessage,
    },
};

/// SQS's batch limit.
const MAX_BATCH: usize = 10;

/// A received SQS message with its user and system attributes (also what a worker's delivery is made of).
pub(super) fn received(message: Message) -> ReceivedMessage {
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
pub(super) fn sqs_message_attributes(
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

impl QueueMessages for AwsCloud {
    async fn start_message_move(&self, request: &MoveRequest) -> Result<String> {
        let operation = Operation::new(SQS, "StartMessageMoveTask", &request.source_arn);
        self.limit(&operation).await;
        let output = self
            .inner
            .sqs
            .start_message_move_task()
            .source_arn(&request.source_arn)
            .set_destination_arn(request.destination_arn.clone())
            .set_max_number_of_messages_per_second(request.max_messages_per_second)
            .send()
            .await
            .map_err(|e| from_sdk(operation.clone(), e))?;
        output.task_handle.ok_or_else(|| missing(operation, "TaskHandle"))
    }

    async fn message_moves(&self, source_arn: &str) -> Result<Vec<MoveTask>> {
        let operation = Operation::new(SQS, "ListMessageMoveTasks", source_arn);
        self.limit(&operation).await;
        let output = self
            .inner
            .sqs
            .list_message_move_tasks()
            .source_arn(source_arn)
            .max_results(10)
            .send()
            .await
            .map_err(|e| from_sdk(operation, e))?;
        Ok(output
            .results
            .unwrap_or_default()
            .into_iter()
            .map(|task| MoveTask {
                status: MoveTaskStatus::parse(task.status().unwrap_or_default()),
                moved: task.approximate_number_of_messages_moved,
                to_move: task.approximate_number_of_messages_to_move,
                started_at_millis: task.started_timestamp,
                task_handle: task.task_handle,
                source_arn: task.source_arn,
                destination_arn: task.destination_arn,
                failure_reason: task.failure_reason,
            })
            .collect())
    }

    async fn receive_messages(
        &self,
        url: &str,
        max: i32,
        visibility_timeout_seconds: i32,
    ) -> Result<Vec<ReceivedMessage>> {
        let operation = Operation::new(SQS, "ReceiveMessage", url);
        self.limit(&operation).await;
        let output = self
            .inner
            .sqs
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(max.clamp(1, MAX_BATCH as i32))
            .visibility_timeout(visibility_timeout_seconds)
            // Short poll: an empty answer must mean "nothing left", not "nothing yet" after a long wait.
            .wait_time_seconds(0)
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .message_attribute_names("All")
            .send()
            .await
            .map_err(|e| from_sdk(operation, e))?;
        Ok(output
            .messages
            .unwrap_or_default()
            .into_iter()
            .map(received)
            .collect())
    }

    async fn send_messages(&self, url: &str, messages: &[OutgoingMessage]) -> Result<BatchOutcome> {
        let operation = Operation::new(SQS, "SendMessageBatch", url);
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
            .inner
            .sqs
            .send_message_batch()
            .queue_url(url)
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(|e| from_sdk(operation, e))?;
        Ok(BatchOutcome {
            succeeded: output.successful.into_iter().map(|entry| entry.id).collect(),
            failed: output.failed.into_iter().map(failure).collect(),
        })
    }

    async fn release_messages(&self, url: &str, receipts: &[(String, String)]) -> Result<BatchOutcome> {
        let operation = Operation::new(SQS, "ChangeMessageVisibilityBatch", url);
        if receipts.is_empty() {
            return Ok(BatchOutcome::default());
        }
        check_batch_size(&operation, receipts.len())?;
        let entries = receipts
            .iter()
            .map(|(id, receipt_handle)| {
                ChangeMessageVisibilityBatchRequestEntry::builder()
                    .id(id)
                    .receipt_handle(receipt_handle)
                    .visibility_timeout(0)
                    .build()
                    .map_err(|e| invalid(&operation, e.to_string()))
            })
            .collect::<Result<Vec<_>>>()?;
        self.limit(&operation).await;
        let output = self
            .inner
            .sqs
            .change_message_visibility_batch()
            .queue_url(url)
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(|e| from_sdk(operation, e))?;
        Ok(BatchOutcome {
            succeeded: output.successful.into_iter().map(|entry| entry.id).collect(),
            failed: output.failed.into_iter().map(failure).collect(),
        })
    }

    async fn delete_messages(&self, url: &str, receipts: &[(String, String)]) -> Result<BatchOutcome> {
        let operation = Operation::new(SQS, "DeleteMessageBatch", url);
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
            .inner
            .sqs
            .delete_message_batch()
            .queue_url(url)
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(|e| from_sdk(operation, e))?;
        Ok(BatchOutcome {
            succeeded: output.successful.into_iter().map(|entry| entry.id).collect(),
            failed: output.failed.into_iter().map(failure).collect(),
        })
    }
}
