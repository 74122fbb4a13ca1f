//! SQS messages for dead-letter redrive: the server-side message move task (`StartMessageMoveTask`,
//! `ListMessageMoveTasks`), and the handle on a queue's messages ([`super::SqsQueue`]) that the fallback in
//! [`crate::cloud::redrive`] moves with, sharing the controller's client and rate limits. moto 5.2.5 does
//! not implement the move-task API; its answer is classified `Unsupported` (see [`super::error::classify`]).

use super::{
    AwsCloud, SQS, SqsQueue,
    error::{from_sdk, missing},
};
use crate::cloud::{
    Operation, Result,
    traits::{MoveRequest, MoveTask, MoveTaskStatus, QueueMessages},
};

impl QueueMessages for AwsCloud {
    type Queue = SqsQueue;

    fn message_queue(&self, url: &str) -> SqsQueue {
        SqsQueue::limited(self.inner.sqs.clone(), url, self.inner.limiter.clone())
    }

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
}
