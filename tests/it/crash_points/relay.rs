//! The Subscription relay: a Subscription from a Topic on aws to a Queue on azure, for which the
//! controller makes an SQS relay queue, subscribes it to the Topic and runs a relay worker Deployment.
//! Created and deleted: exactly one SNS subscription, to the relay queue, while it exists; nothing of the
//! relay left after.

use aws_sdk_sqs::types::QueueAttributeName;
use futures::FutureExt;

use super::{
    azure::{only_storage_queues, storage_secret},
    checks::{ensure, gone, only_queues, only_topics, queue_attribute, ready, status, subscriptions},
    harness::{Run, Scenario, Step},
};

const RELAYED: &str = "
apiVersion: tributary.dev/v1alpha1
kind: Topic
metadata: {name: t}
spec: {provider: aws, aws: {}}
---
apiVersion: tributary.dev/v1alpha1
kind: Queue
metadata: {name: q}
spec:
  provider: azure
  azure: {storageAccount: '{storageAccount}', accountKeySecretRef: {name: storage, key: accountKey}}
---
apiVersion: tributary.dev/v1alpha1
kind: Subscription
metadata: {name: s}
spec:
  topicRef: {name: t}
  queueRef: {name: q}
  filter: {policy: {event: [OrderPlaced]}}
";

/// Topic, Queue on azure and Subscription created together, the Subscription deleted, then the rest.
pub const RELAY: Scenario = Scenario {
    name: "relay",
    policy: None,
    steps: &[
        Step::Cloud(|run| storage_secret(run).boxed()),
        Step::Apply(RELAYED),
        Step::Converge(
            "t, q and s Ready, one SNS subscription to the relay queue",
            |run| relayed(run).boxed(),
        ),
        Step::Delete("Subscription", "s"),
        Step::Converge("s gone, no SNS subscription, no relay", |run| {
            unrelayed(run).boxed()
        }),
        Step::Delete("Queue", "q"),
        Step::Delete("Topic", "t"),
        Step::Converge("everything gone", |run| everything_gone(run).boxed()),
    ],
};

/// The SQS relay queues of the run's namespace (`tributary-relay-<namespace>_<name>`).
async fn relay_queues(run: &Run) -> Result<Vec<String>, String> {
    let listed = run
        .sqs
        .list_queues()
        .queue_name_prefix(format!("tributary-relay-{}_", run.namespace))
        .send()
        .await
        .map_err(|e| format!("ListQueues: {e}"))?;
    Ok(listed.queue_urls.unwrap_or_default())
}

fn deployments(run: &Run) -> kube::Api<k8s_openapi::api::apps::v1::Deployment> {
    kube::Api::namespaced(run.client.clone(), &run.namespace)
}

/// t, q and s Ready; one relay queue, the one in s's status, letting t send; exactly one SNS
/// subscription on t, to that queue, the one in s's status; the relay Deployment owned by s.
async fn relayed(run: &Run) -> Result<(), String> {
    let topic_arn = status(&ready(run, "Topic", "t").await?, "arn")?;
    ready(run, "Queue", "q").await?;
    let subscription = ready(run, "Subscription", "s").await?;
    only_topics(run, &["t"]).await?;
    only_queues(run, &[]).await?;
    only_storage_queues(run, &["q"]).await?;
    let relays = relay_queues(run).await?;
    let relay_url = status(&subscription, "relayQueueUrl")?;
    ensure(relays == [relay_url.clone()], || {
        format!("relay queues {relays:?}, s status.relayQueueUrl {relay_url}")
    })?;
    let relay_arn = queue_attribute(run, &relay_url, QueueAttributeName::QueueArn).await?;
    let found = subscriptions(run, &topic_arn).await?;
    ensure(found.len() == 1 && found[0].0 == relay_arn, || {
        format!("SNS subscriptions of t {found:?}, want one to {relay_arn}")
    })?;
    let recorded = status(&subscription, "arn")?;
    ensure(found[0].1 == recorded, || {
        format!("s status.arn {recorded}, live {}", found[0].1)
    })?;
    let policy = queue_attribute(run, &relay_url, QueueAttributeName::Policy).await?;
    ensure(policy.contains(&topic_arn), || {
        format!("the relay queue's policy does not let t send: {policy}")
    })?;
    let deployment = deployments(run)
        .get_opt("s-relay")
        .await
        .map_err(|e| format!("reading Deployment s-relay: {e}"))?
        .ok_or("no Deployment s-relay")?;
    let owner = deployment.metadata.owner_references.unwrap_or_default();
    ensure(
        owner.iter().any(|o| o.kind == "Subscription" && o.name == "s"),
        || format!("Deployment s-relay owned by {owner:?}"),
    )
}

/// The relay's Deployment gone or being deleted (the garbage collector removes it after its owner).
async fn relay_worker_gone(run: &Run) -> Result<(), String> {
    let left = deployments(run)
        .get_opt("s-relay")
        .await
        .map_err(|e| format!("reading Deployment s-relay: {e}"))?;
    let deleting = left
        .as_ref()
        .is_some_and(|d| d.metadata.deletion_timestamp.is_some());
    ensure(left.is_none() || deleting, || {
        "Deployment s-relay left behind".to_owned()
    })
}

/// s gone, no SNS subscription on t, no relay queue; t and q still Ready.
async fn unrelayed(run: &Run) -> Result<(), String> {
    gone(run, "Subscription", "s").await?;
    let topic_arn = status(&ready(run, "Topic", "t").await?, "arn")?;
    ready(run, "Queue", "q").await?;
    let found = subscriptions(run, &topic_arn).await?;
    ensure(found.is_empty(), || {
        format!("SNS subscriptions left on t: {found:?}")
    })?;
    let relays = relay_queues(run).await?;
    ensure(relays.is_empty(), || format!("relay queues left: {relays:?}"))?;
    relay_worker_gone(run).await
}

async fn everything_gone(run: &Run) -> Result<(), String> {
    for (kind, name) in [("Subscription", "s"), ("Queue", "q"), ("Topic", "t")] {
        gone(run, kind, name).await?;
    }
    only_topics(run, &[]).await?;
    only_queues(run, &[]).await?;
    only_storage_queues(run, &[]).await?;
    let relays = relay_queues(run).await?;
    ensure(relays.is_empty(), || format!("relay queues left: {relays:?}"))?;
    relay_worker_gone(run).await
}
