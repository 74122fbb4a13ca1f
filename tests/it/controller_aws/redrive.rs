//! DeadLetter redrive both ways: against moto, which has no message-move task, the controller falls back
//! to receive/send/delete, moves every message back to the only source queue, and reports the result;
//! against ElasticMQ, which has it, the controller uses SQS's message-move task.

use kube::api::{Patch, PatchParams};
use serde_json::json;

use super::*;

const PIPELINE: &str = "apiVersion: tributary.dev/v1alpha1
kind: DeadLetter
metadata: {name: dlq}
spec:
  provider: aws
  aws: {}
---
apiVersion: tributary.dev/v1alpha1
kind: Queue
metadata: {name: work}
spec:
  provider: aws
  aws: {receiveWaitTimeSeconds: 0}
  deadLetter:
    ref: {name: dlq}
    maxReceiveCount: 2
";

/// A namespace with the controller running against `aws` and the work queue and its DeadLetter Ready:
/// (client, namespace, SQS client, controller, Queue, DeadLetter).
async fn pipeline(
    prefix: &str,
    aws: aws_config::SdkConfig,
) -> (
    kube::Client,
    String,
    aws_sdk_sqs::Client,
    common::RunningController,
    DynamicObject,
    DynamicObject,
) {
    let client = common::kube_client().await;
    common::install_crds(&client).await;
    let ns = common::namespace(&client, prefix).await;
    let controller = common::start_controller(&client, &ns, &aws).await;
    common::create_yaml(&client, &ns, PIPELINE).await;
    let work = common::wait_reason(&client, &ns, "Queue", "work", "Available", CONVERGE).await;
    let dlq = common::wait_reason(&client, &ns, "DeadLetter", "dlq", "Available", CONVERGE).await;
    (client, ns, aws_sdk_sqs::Client::new(&aws), controller, work, dlq)
}

/// Requests redrive `id` of DeadLetter `dlq` at `rate` messages a second and waits until it completed.
async fn request_redrive(client: &kube::Client, ns: &str, id: &str, rate: u32) -> kube::api::DynamicObject {
    let dead_letters = common::tributary_api(client, ns, "DeadLetter");
    let request = json!({"spec": {"redrive": {"id": id, "maxMessagesPerSecond": rate}}});
    dead_letters
        .patch("dlq", &PatchParams::default(), &Patch::Merge(&request))
        .await
        .unwrap();
    common::eventually(&format!("redrive {id} Completed"), CONVERGE, || {
        let dead_letters = dead_letters.clone();
        async move {
            let dlq = dead_letters.get("dlq").await.ok()?;
            let last = dlq.data["status"]["lastRedrive"].clone();
            (last["id"] == id && last["state"] == "Completed").then_some(dlq)
        }
    })
    .await
}

#[tokio::test]
async fn a_redrive_moves_dead_messages_back_with_the_fallback() {
    let _bed = common::shared().await;
    let (client, ns, sqs, controller, work, dlq) = pipeline("ctrl-redrive", common::aws_config().await).await;
    let (work_url, dlq_url) = (status_str(&work, "url"), status_str(&dlq, "url"));
    let redrive = queue_attributes(&sqs, &work_url).await["RedrivePolicy"].clone();
    assert!(redrive.contains(&status_str(&dlq, "arn")), "{redrive}");

    for i in 0..25 {
        sqs.send_message()
            .queue_url(&dlq_url)
            .message_body(format!("dead {i:02}"))
            .send()
            .await
            .unwrap();
    }
    let done = request_redrive(&client, &ns, "r1", 20).await;
    let last = &done.data["status"]["lastRedrive"];
    assert_eq!(last["moved"], 25, "{last}");
    assert!(
        last["message"].as_str().unwrap().contains("receive/send/delete"),
        "{last}"
    );
    assert_eq!(done.data["status"]["depth"], 0);
    let moved = drain(&sqs, &work_url).await;
    let expected: Vec<String> = (0..25).map(|i| format!("dead {i:02}")).collect();
    assert_eq!(moved, expected);
    assert!(has_event(&client, &ns, "dlq", "Redrive", "r1 completed").await);

    controller.stop().await;
}

/// The same DeadLetter against ElasticMQ, which has SQS's message-move task: the controller starts the
/// task, follows it through `ListMessageMoveTasks` and reports it finished; the messages that
/// `maxReceiveCount` moved to the dead letter are back in the queue they came from.
#[tokio::test]
async fn a_redrive_uses_the_message_move_task_where_the_server_has_it() {
    let _bed = common::shared().await;
    let (client, ns, sqs, controller, work, dlq) =
        pipeline("ctrl-movetask", common::elasticmq_config().await).await;
    let (work_url, dlq_url) = (status_str(&work, "url"), status_str(&dlq, "url"));
    for i in 0..12 {
        sqs.send_message()
            .queue_url(&work_url)
            .message_body(format!("poison {i:02}"))
            .send()
            .await
            .unwrap();
    }
    // Received twice without being deleted (maxReceiveCount 2): SQS moves them to the dead letter.
    common::eventually("12 messages in the dead letter", CONVERGE, || {
        let (sqs, work_url, dlq_url) = (sqs.clone(), work_url.clone(), dlq_url.clone());
        async move {
            let _ = sqs
                .receive_message()
                .queue_url(&work_url)
                .max_number_of_messages(10)
                .visibility_timeout(0)
                .send()
                .await
                .unwrap();
            let depth = queue_attributes(&sqs, &dlq_url).await["ApproximateNumberOfMessages"].clone();
            (depth == "12").then_some(())
        }
    })
    .await;

    let done = request_redrive(&client, &ns, "task-1", 50).await;
    let last = &done.data["status"]["lastRedrive"];
    assert_eq!(last["moved"], 12, "{last}");
    assert!(
        last["message"].as_str().unwrap().contains("message-move task"),
        "{last}"
    );
    assert!(
        has_event(
            &client,
            &ns,
            "dlq",
            "Redrive",
            "task-1 started: SQS message-move task"
        )
        .await
    );
    assert!(has_event(&client, &ns, "dlq", "Redrive", "task-1 completed").await);
    let moved = drain(&sqs, &work_url).await;
    let expected: Vec<String> = (0..12).map(|i| format!("poison {i:02}")).collect();
    assert_eq!(moved, expected);

    controller.stop().await;
}
