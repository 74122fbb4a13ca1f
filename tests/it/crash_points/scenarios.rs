//! The scenarios: each a few steps with what the system must converge to after each, ending with the
//! objects deleted (so a deletion's crash points are tried too, and moto is left as it was).

use aws_sdk_sqs::types::QueueAttributeName;
use futures::FutureExt;
use tributary::cloud::redrive::ORIGINAL_ID_ATTRIBUTE;

use super::{
    checks::{
        DEAD, ensure, gone, judge_redriven, object, only_queues, only_topics, queue_attribute, queue_url,
        ready, received_with, status, subscriptions,
    },
    common::wire::Moment,
    harness::{Run, Scenario, Step},
};

const TOPIC: &str = "
apiVersion: tributary.dev/v1alpha1
kind: Topic
metadata: {name: t}
spec: {provider: aws, aws: {}, tags: {stage: one}}
";

/// Topic create, update (a tag), delete.
pub const TOPIC_LIFECYCLE: Scenario = Scenario {
    name: "topic",
    policy: None,
    steps: &[
        Step::Apply(TOPIC),
        Step::Converge("Topic t Ready, tagged stage=one", |run| {
            topic_tagged(run, "one").boxed()
        }),
        Step::Patch("Topic", "t", r#"{"spec": {"tags": {"stage": "two"}}}"#),
        Step::Converge("Topic t Ready, tagged stage=two", |run| {
            topic_tagged(run, "two").boxed()
        }),
        Step::Delete("Topic", "t"),
        Step::Converge("Topic t and its SNS topic gone", |run| {
            nothing_left(run, &["Topic"]).boxed()
        }),
    ],
};

/// Topic t is Ready, the only SNS topic of the namespace is its ARN, tagged `stage`.
async fn topic_tagged(run: &Run, stage: &str) -> Result<(), String> {
    let topic = ready(run, "Topic", "t").await?;
    let arn = status(&topic, "arn")?;
    let arns = only_topics(run, &["t"]).await?;
    ensure(arns == [arn.clone()], || {
        format!("status.arn {arn}, SNS topics {arns:?}")
    })?;
    let tags = super::common::topic_tags(&run.sns, &arn).await;
    ensure(tags.get("stage").map(String::as_str) == Some(stage), || {
        format!("topic tags {tags:?}, want stage={stage}")
    })
}

/// Every object of `kinds` named t, q, s or d is gone, and so is every topic and queue of the namespace.
async fn nothing_left(run: &Run, kinds: &[&str]) -> Result<(), String> {
    for kind in kinds {
        let name = match *kind {
            "Topic" => "t",
            "Queue" => "q",
            "Subscription" => "s",
            "Consumer" => "c",
            _ => "d",
        };
        gone(run, kind, name).await?;
    }
    only_topics(run, &[]).await?;
    only_queues(run, &[]).await.map(|_| ())
}

const WIRED: &str = "
apiVersion: tributary.dev/v1alpha1
kind: Topic
metadata: {name: t}
spec: {provider: aws, aws: {}}
---
apiVersion: tributary.dev/v1alpha1
kind: Queue
metadata: {name: q}
spec: {provider: aws, aws: {visibilityTimeoutSeconds: 45}}
---
apiVersion: tributary.dev/v1alpha1
kind: Subscription
metadata: {name: s}
spec:
  topicRef: {name: t}
  queueRef: {name: q}
  filter: {policy: {event: [OrderPlaced]}}
";

/// Topic, Queue (with the policy the Subscription needs) and Subscription created together, the
/// Subscription deleted, then the rest.
pub const SUBSCRIPTION: Scenario = Scenario {
    name: "subscription",
    policy: None,
    steps: &[
        Step::Apply(WIRED),
        Step::Converge("t, q and s Ready, one SNS subscription", |run| {
            subscribed(run).boxed()
        }),
        Step::Delete("Subscription", "s"),
        Step::Converge("s gone, no SNS subscription", |run| unsubscribed(run).boxed()),
        Step::Delete("Queue", "q"),
        Step::Delete("Topic", "t"),
        Step::Converge("everything gone", |run| {
            nothing_left(run, &["Topic", "Queue"]).boxed()
        }),
    ],
};

/// t, q and s Ready; exactly one SNS subscription on t, to q's ARN, the one in s's status; q's policy
/// lets t send.
async fn subscribed(run: &Run) -> Result<(), String> {
    let topic_arn = status(&ready(run, "Topic", "t").await?, "arn")?;
    let queue = ready(run, "Queue", "q").await?;
    let subscription = ready(run, "Subscription", "s").await?;
    only_topics(run, &["t"]).await?;
    let urls = only_queues(run, &["q"]).await?;
    let queue_arn = status(&queue, "arn")?;
    let found = subscriptions(run, &topic_arn).await?;
    ensure(found.len() == 1 && found[0].0 == queue_arn, || {
        format!("SNS subscriptions of t {found:?}, want one to {queue_arn}")
    })?;
    let recorded = status(&subscription, "arn")?;
    ensure(found[0].1 == recorded, || {
        format!("s status.arn {recorded}, live {}", found[0].1)
    })?;
    let policy = queue_attribute(run, &urls[0], QueueAttributeName::Policy).await?;
    ensure(policy.contains(&topic_arn), || {
        format!("q's policy does not let t send: {policy}")
    })
}

/// s is gone, t has no SNS subscription left, t and q are still Ready.
async fn unsubscribed(run: &Run) -> Result<(), String> {
    gone(run, "Subscription", "s").await?;
    let topic_arn = status(&ready(run, "Topic", "t").await?, "arn")?;
    ready(run, "Queue", "q").await?;
    let found = subscriptions(run, &topic_arn).await?;
    ensure(found.is_empty(), || {
        format!("SNS subscriptions left on t: {found:?}")
    })
}

const DEAD_LETTERED: &str = "
apiVersion: tributary.dev/v1alpha1
kind: DeadLetter
metadata: {name: d}
spec: {provider: aws, aws: {}}
---
apiVersion: tributary.dev/v1alpha1
kind: Queue
metadata: {name: q}
spec:
  provider: aws
  aws: {}
  deadLetter: {ref: {name: d}, maxReceiveCount: 3}
";

/// A DeadLetter and its Queue, five dead messages redriven to the Queue: none lost, none duplicated
/// unless the crash fell between a round's send and its delete ([`delivered`]).
pub const REDRIVE: Scenario = Scenario {
    name: "redrive",
    policy: None,
    steps: &[
        Step::Apply(DEAD_LETTERED),
        Step::Converge("d and q Ready", |run| dead_lettered(run).boxed()),
        Step::Cloud(|run| send_dead(run).boxed()),
        Step::Patch(
            "DeadLetter",
            "d",
            r#"{"spec": {"redrive": {"id": "r1", "maxMessagesPerSecond": 100, "destinationRef": {"name": "q"}}}}"#,
        ),
        Step::Converge("redrive r1 Completed, d empty", |run| redriven(run).boxed()),
        Step::Cloud(|run| delivered(run).boxed()),
        Step::Delete("Queue", "q"),
        Step::Delete("DeadLetter", "d"),
        Step::Converge("everything gone", |run| {
            nothing_left(run, &["Queue", "DeadLetter"]).boxed()
        }),
    ],
};

async fn dead_lettered(run: &Run) -> Result<(), String> {
    ready(run, "DeadLetter", "d").await?;
    ready(run, "Queue", "q").await?;
    only_queues(run, &["d", "q"]).await.map(|_| ())
}

async fn send_dead(run: &Run) -> Result<(), String> {
    let url = queue_url(run, "d").await?;
    for body in DEAD {
        run.sqs
            .send_message()
            .queue_url(&url)
            .message_body(body)
            .send()
            .await
            .map_err(|e| format!("SendMessage: {e}"))?;
    }
    Ok(())
}

/// d's last redrive is r1, Completed, and d holds no message, visible or hidden.
async fn redriven(run: &Run) -> Result<(), String> {
    let dead_letter = object(run, "DeadLetter", "d").await?;
    let last = &dead_letter.data["status"]["lastRedrive"];
    ensure(last["id"] == "r1" && last["state"] == "Completed", || {
        format!("d status.lastRedrive {last}")
    })?;
    ready(run, "DeadLetter", "d").await?;
    let url = queue_url(run, "d").await?;
    for count in [
        QueueAttributeName::ApproximateNumberOfMessages,
        QueueAttributeName::ApproximateNumberOfMessagesNotVisible,
    ] {
        let depth = queue_attribute(run, &url, count.clone()).await?;
        ensure(depth == "0", || {
            format!("d still holds {depth} messages ({count:?})")
        })?;
    }
    Ok(())
}

/// Whether the controller died with a redrive round's copies sent and its originals not deleted: killed
/// after `SendMessageBatch` came back, or instead of forwarding `DeleteMessageBatch`.
fn in_send_delete_window(run: &Run) -> bool {
    match run.interrupted() {
        Some((call, Moment::AfterResponse | Moment::StaleRestart)) => call == "aws sqs:SendMessageBatch",
        Some((call, Moment::BeforeForward)) => call == "aws sqs:DeleteMessageBatch",
        _ => false,
    }
}

/// q holds every dead message (none lost, ever), each copy with its original id, one id per message.
/// Exactly once, unless the crash fell in a redrive round's send→delete window: then a message may come
/// twice, both copies with the same original id (the at-least-once promise of docs/kinds/dead-letter.md).
async fn delivered(run: &Run) -> Result<(), String> {
    let url = queue_url(run, "q").await?;
    let copies = received_with(run, &url, ORIGINAL_ID_ATTRIBUTE).await?;
    judge_redriven(run, &copies, in_send_delete_window(run))
}

const ADOPTED: &str = "
apiVersion: tributary.dev/v1alpha1
kind: Queue
metadata: {name: q}
spec: {provider: aws, adopt: true, aws: {visibilityTimeoutSeconds: 45}}
---
apiVersion: tributary.dev/v1alpha1
kind: Topic
metadata: {name: t}
spec: {provider: aws, adopt: true, aws: {}, tags: {stage: adopted}}
";

/// An SQS queue and an SNS topic made outside Tributary, adopted, then deleted with their objects.
pub const ADOPT: Scenario = Scenario {
    name: "adopt",
    policy: Some(r#"{"allowAdoption": true}"#),
    steps: &[
        Step::Cloud(|run| existing(run).boxed()),
        Step::Apply(ADOPTED),
        Step::Converge("q and t adopted", |run| adopted(run).boxed()),
        Step::Delete("Queue", "q"),
        Step::Delete("Topic", "t"),
        Step::Converge("everything gone", |run| {
            nothing_left(run, &["Queue", "Topic"]).boxed()
        }),
    ],
};

async fn existing(run: &Run) -> Result<(), String> {
    let name = format!("{}_", run.namespace);
    run.sqs
        .create_queue()
        .queue_name(format!("{name}q"))
        .send()
        .await
        .map_err(|e| format!("CreateQueue: {e}"))?;
    run.sns
        .create_topic()
        .name(format!("{name}t"))
        .send()
        .await
        .map_err(|e| format!("CreateTopic: {e}"))?;
    Ok(())
}

/// q and t Ready on the very resources made before, q's attribute and t's tags set by the spec.
async fn adopted(run: &Run) -> Result<(), String> {
    let queue = ready(run, "Queue", "q").await?;
    let urls = only_queues(run, &["q"]).await?;
    let url = status(&queue, "url")?;
    ensure(urls == [url.clone()], || {
        format!("q status.url {url}, queues {urls:?}")
    })?;
    let visibility = queue_attribute(run, &url, QueueAttributeName::VisibilityTimeout).await?;
    ensure(visibility == "45", || {
        format!("q VisibilityTimeout {visibility}, want 45")
    })?;
    topic_tagged(run, "adopted").await
}

const SCALED: &str = "
apiVersion: tributary.dev/v1alpha1
kind: Queue
metadata: {name: q}
spec: {provider: aws, aws: {}}
---
apiVersion: tributary.dev/v1alpha1
kind: Consumer
metadata: {name: c}
spec:
  source: {queueRef: {name: q}}
  processor: notification
  sink: {table: crash-orders}
  scaling: {minReplicas: 1, maxReplicas: 3, targetBacklogPerReplica: 2, scaleDownStabilizationSeconds: 2}
";

/// A Consumer of a Queue scaled up by a backlog and down when it is gone, then deleted with its worker
/// Deployment. The scaler decides every 15 s, so this is the slowest scenario.
pub const CONSUMER_SCALING: Scenario = Scenario {
    name: "consumer",
    policy: Some(r#"{"dynamodbTables": ["crash-orders"]}"#),
    steps: &[
        Step::Apply(SCALED),
        Step::Converge("q and c Ready, one replica", |run| replicas(run, 1).boxed()),
        Step::Cloud(|run| backlog(run).boxed()),
        Step::Converge("c scaled to three", |run| replicas(run, 3).boxed()),
        Step::Cloud(|run| purge(run).boxed()),
        Step::Converge("c back to one", |run| replicas(run, 1).boxed()),
        Step::Delete("Consumer", "c"),
        Step::Delete("Queue", "q"),
        Step::Converge("everything gone", |run| consumer_gone(run).boxed()),
    ],
};

fn deployments(run: &Run) -> kube::Api<k8s_openapi::api::apps::v1::Deployment> {
    kube::Api::namespaced(run.client.clone(), &run.namespace)
}

/// q and c Ready, c's worker Deployment asks for `count` replicas.
async fn replicas(run: &Run, count: i32) -> Result<(), String> {
    ready(run, "Queue", "q").await?;
    ready(run, "Consumer", "c").await?;
    let deployment = deployments(run)
        .get_opt("c-worker")
        .await
        .map_err(|e| format!("reading Deployment c-worker: {e}"))?
        .ok_or("no Deployment c-worker")?;
    let asked = deployment.spec.and_then(|s| s.replicas);
    ensure(asked == Some(count), || {
        format!("c-worker asks for {asked:?} replicas, want {count}")
    })
}

async fn backlog(run: &Run) -> Result<(), String> {
    let url = queue_url(run, "q").await?;
    for i in 0..10 {
        let body = format!("backlog {i}");
        let sent = run
            .sqs
            .send_message()
            .queue_url(&url)
            .message_body(body)
            .send()
            .await;
        sent.map_err(|e| format!("SendMessage: {e}"))?;
    }
    Ok(())
}

async fn purge(run: &Run) -> Result<(), String> {
    let url = queue_url(run, "q").await?;
    run.sqs
        .purge_queue()
        .queue_url(&url)
        .send()
        .await
        .map(|_| ())
        .map_err(|e| format!("PurgeQueue: {e}"))
}

/// c and q gone, and with them c's Deployment and q's SQS queue.
async fn consumer_gone(run: &Run) -> Result<(), String> {
    nothing_left(run, &["Consumer", "Queue"]).await?;
    let left = deployments(run)
        .get_opt("c-worker")
        .await
        .map_err(|e| format!("reading Deployment c-worker: {e}"))?;
    // Owned by c: the garbage collector removes it; a Deployment being deleted counts as gone.
    let deleting = left
        .as_ref()
        .is_some_and(|d| d.metadata.deletion_timestamp.is_some());
    ensure(left.is_none() || deleting, || {
        "Deployment c-worker left behind".to_owned()
    })
}
