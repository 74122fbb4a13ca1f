//! The scenarios on azure through Azurite's queue service: a Queue's lifecycle, and a DeadLetter's
//! redrive to a Queue. Their oracles read Azurite directly (not through the proxies): the namespace's
//! Storage Queues exactly the desired ones, each carrying its object's ownership marks.

use std::collections::{BTreeMap, BTreeSet};

use azure_storage_queue::models::{
    ListQueuesIncludeType, QueueClientGetPropertiesResultHeaders as _, QueueClientPeekMessagesOptions,
    QueueServiceClientListQueuesOptions,
};
use futures::{FutureExt, TryStreamExt};
use tributary::cloud::{names::hashed_dns, redrive::ORIGINAL_ID_ATTRIBUTE};

use super::{
    checks::{DEAD, ensure, gone, judge_redriven, object, ready, status},
    common,
    harness::{Run, Scenario, Step},
};

/// The Secret `storage` with Azurite's account key, which the objects on azure name.
pub async fn storage_secret(run: &Run) -> Result<(), String> {
    common::storage_secret(&run.client, &run.namespace).await;
    Ok(())
}

/// The Storage Queues of the run's namespace (their default names begin with it), with their metadata.
pub async fn storage_queues(run: &Run) -> Result<BTreeMap<String, BTreeMap<String, String>>, String> {
    let options = QueueServiceClientListQueuesOptions {
        prefix: Some(format!("{}-", run.namespace)),
        include: Some(vec![ListQueuesIncludeType::Metadata]),
        ..Default::default()
    };
    let pager = run
        .storage
        .list_queues(Some(options))
        .map_err(|e| format!("ListQueues: {e}"))?;
    let items: Vec<_> = pager
        .try_collect()
        .await
        .map_err(|e| format!("ListQueues: {e}"))?;
    Ok(items
        .into_iter()
        .map(|q| {
            let metadata = q.metadata.unwrap_or_default().into_iter().collect();
            (q.name.unwrap_or_default(), metadata)
        })
        .collect())
}

/// The namespace's Storage Queues are exactly those of `names` (no orphan, no duplicate), each marked
/// as its object's (`tributary_name`).
pub async fn only_storage_queues(run: &Run, names: &[&str]) -> Result<(), String> {
    let found = storage_queues(run).await?;
    let want: BTreeSet<String> = names.iter().map(|n| hashed_dns(&run.namespace, n, 63)).collect();
    let have: BTreeSet<String> = found.keys().cloned().collect();
    ensure(have == want, || {
        format!("Storage Queues {have:?}, want exactly {want:?} (of {names:?})")
    })?;
    for name in names {
        let metadata = &found[&hashed_dns(&run.namespace, name, 63)];
        let marked = metadata.get("tributary_name").map(String::as_str) == Some(*name)
            && metadata.get("tributary_namespace") == Some(&run.namespace);
        ensure(marked, || format!("Storage Queue of {name} marked {metadata:?}"))?;
    }
    Ok(())
}

/// `(kind, name)` Ready and its `status.url` naming its Storage Queue.
async fn ready_on_azure(run: &Run, kind: &str, name: &str) -> Result<(), String> {
    let url = status(&ready(run, kind, name).await?, "url")?;
    let queue = hashed_dns(&run.namespace, name, 63);
    ensure(url.ends_with(&format!("/{queue}")), || {
        format!("{kind} {name} status.url {url}, want its Storage Queue {queue}")
    })
}

const QUEUE: &str = "
apiVersion: tributary.dev/v1alpha1
kind: Queue
metadata: {name: q}
spec:
  provider: azure
  azure: {storageAccount: '{storageAccount}', accountKeySecretRef: {name: storage, key: accountKey}}
";

/// A Queue on azure created, updated (its messages' time to live: a new generation, the same Storage
/// Queue), deleted.
pub const QUEUE_LIFECYCLE: Scenario = Scenario {
    name: "azqueue",
    policy: None,
    steps: &[
        Step::Cloud(|run| storage_secret(run).boxed()),
        Step::Apply(QUEUE),
        Step::Converge("q Ready, one Storage Queue", |run| queue_ready(run).boxed()),
        Step::Patch(
            "Queue",
            "q",
            r#"{"spec": {"azure": {"messageTtlSeconds": 3600}}}"#,
        ),
        Step::Converge("q Ready for generation 2, the same Storage Queue", |run| {
            queue_updated(run).boxed()
        }),
        Step::Delete("Queue", "q"),
        Step::Converge("q and its Storage Queue gone", |run| {
            azure_gone(run, &["Queue"]).boxed()
        }),
    ],
};

async fn queue_ready(run: &Run) -> Result<(), String> {
    ready_on_azure(run, "Queue", "q").await?;
    only_storage_queues(run, &["q"]).await
}

async fn queue_updated(run: &Run) -> Result<(), String> {
    let queue = object(run, "Queue", "q").await?;
    let generation = queue.metadata.generation.unwrap_or_default();
    ensure(generation == 2, || {
        format!("q at generation {generation}, want 2")
    })?;
    queue_ready(run).await
}

/// The objects of `kinds` (named as in every scenario: q, d) are gone, and so is every Storage Queue of
/// the namespace.
async fn azure_gone(run: &Run, kinds: &[&str]) -> Result<(), String> {
    for kind in kinds {
        gone(run, kind, if *kind == "Queue" { "q" } else { "d" }).await?;
    }
    only_storage_queues(run, &[]).await
}

const DEAD_LETTERED: &str = "
apiVersion: tributary.dev/v1alpha1
kind: DeadLetter
metadata: {name: d}
spec:
  provider: azure
  azure: {storageAccount: '{storageAccount}', accountKeySecretRef: {name: storage, key: accountKey}}
---
apiVersion: tributary.dev/v1alpha1
kind: Queue
metadata: {name: q}
spec:
  provider: azure
  azure: {storageAccount: '{storageAccount}', accountKeySecretRef: {name: storage, key: accountKey}}
  deadLetter: {ref: {name: d}, maxReceiveCount: 3}
";

/// A DeadLetter on azure and its Queue, five dead messages redriven to the Queue: none lost, none
/// duplicated unless the crash fell between a copy's send and its original's delete ([`delivered`]).
pub const REDRIVE: Scenario = Scenario {
    name: "azredrive",
    policy: None,
    steps: &[
        Step::Cloud(|run| storage_secret(run).boxed()),
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
            azure_gone(run, &["Queue", "DeadLetter"]).boxed()
        }),
    ],
};

async fn dead_lettered(run: &Run) -> Result<(), String> {
    ready_on_azure(run, "DeadLetter", "d").await?;
    ready_on_azure(run, "Queue", "q").await?;
    only_storage_queues(run, &["d", "q"]).await
}

fn queue_client(run: &Run, name: &str) -> Result<azure_storage_queue::QueueClient, String> {
    run.storage
        .queue_client(&hashed_dns(&run.namespace, name, 63))
        .map_err(|e| format!("queue client {name}: {e}"))
}

async fn send_dead(run: &Run) -> Result<(), String> {
    let dead = queue_client(run, "d")?;
    for body in DEAD {
        let message = azure_storage_queue::models::QueueMessage {
            message_text: Some(body.to_owned()),
        };
        dead.send_message(message.try_into().unwrap(), None)
            .await
            .map_err(|e| format!("sending {body} to d: {e}"))?;
    }
    Ok(())
}

/// d's last redrive is r1, Completed, and d holds no message, visible or hidden (Azure's approximate
/// count includes hidden ones; a peek sees the visible ones at once).
async fn redriven(run: &Run) -> Result<(), String> {
    let dead_letter = object(run, "DeadLetter", "d").await?;
    let last = &dead_letter.data["status"]["lastRedrive"];
    ensure(last["id"] == "r1" && last["state"] == "Completed", || {
        format!("d status.lastRedrive {last}")
    })?;
    ready(run, "DeadLetter", "d").await?;
    let dead = queue_client(run, "d")?;
    let properties = dead
        .get_properties(None)
        .await
        .map_err(|e| format!("GetQueueMetadata d: {e}"))?;
    let count = properties
        .approximate_messages_count()
        .map_err(|e| e.to_string())?;
    ensure(count.unwrap_or(0) == 0, || {
        format!("d still holds {count:?} messages")
    })?;
    let options = QueueClientPeekMessagesOptions {
        number_of_messages: Some(32),
        ..Default::default()
    };
    let peeked = dead
        .peek_messages(Some(options))
        .await
        .map_err(|e| e.to_string())?;
    let items = peeked
        .into_model()
        .map_err(|e| e.to_string())?
        .items
        .unwrap_or_default();
    ensure(items.is_empty(), || {
        format!("d still shows {} messages", items.len())
    })
}

/// Whether the controller died inside a round's send→delete window. A Storage Queue takes one message a
/// call, and a round sends (then deletes) its messages concurrently, so a crash at any send or delete of
/// a round, before or after it, may leave copies sent whose originals are not deleted (the AWS redrive's
/// window is narrower: one `SendMessageBatch`, one `DeleteMessageBatch`).
fn in_send_delete_window(run: &Run) -> bool {
    run.interrupted()
        .is_some_and(|(call, _)| call == "storage POST messages" || call == "storage DELETE message")
}

/// q holds every dead message (none lost, ever), each copy with its original id, one id per message:
/// exactly once, unless the crash fell in a send→delete window (then at most twice, one id), the rule
/// of the AWS redrive's oracle and of docs/kinds/dead-letter.md.
async fn delivered(run: &Run) -> Result<(), String> {
    let copies: Vec<(String, Option<String>)> = common::azure_drain(&queue_client(run, "q")?)
        .await
        .into_iter()
        .map(|(body, attributes)| (body, attributes.get(ORIGINAL_ID_ATTRIBUTE).cloned()))
        .collect();
    judge_redriven(run, &copies, in_send_delete_window(run))
}
