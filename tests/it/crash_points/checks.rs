//! The oracles of convergence, read from the API server and from moto directly (not through the proxies):
//! an object's conditions true to the state (Ready=True for the current generation, its cloud identifier
//! the live resource's), the cloud resources of a namespace exactly the desired ones (nothing orphaned,
//! nothing duplicated), the SNS subscriptions of a topic.

use std::collections::{BTreeMap, BTreeSet};

use aws_sdk_sqs::types::QueueAttributeName;
use kube::api::DynamicObject;
use tributary::cloud::redrive::ORIGINAL_ID_ATTRIBUTE;

use super::harness::Run;

/// `Err(message)` unless `condition`.
pub fn ensure(condition: bool, message: impl FnOnce() -> String) -> Result<(), String> {
    if condition { Ok(()) } else { Err(message()) }
}

/// The object `(kind, name)`, which must exist.
pub async fn object(run: &Run, kind: &str, name: &str) -> Result<DynamicObject, String> {
    super::common::tributary_api(&run.client, &run.namespace, kind)
        .get_opt(name)
        .await
        .map_err(|e| format!("reading {kind} {name}: {e}"))?
        .ok_or_else(|| format!("{kind} {name} does not exist"))
}

/// `(kind, name)` is Ready=True (Available) for its current generation, top level and condition, and
/// returns it.
pub async fn ready(run: &Run, kind: &str, name: &str) -> Result<DynamicObject, String> {
    let object = object(run, kind, name).await?;
    let generation = object.metadata.generation.unwrap_or_default();
    let (status, reason, message, observed) = super::common::condition(&object, "Ready")
        .ok_or_else(|| format!("{kind} {name} has no Ready condition"))?;
    ensure(status == "True" && reason == "Available", || {
        format!("{kind} {name} Ready={status} {reason}: {message}")
    })?;
    ensure(observed == generation, || {
        format!("{kind} {name} Ready describes generation {observed}, not {generation}")
    })?;
    let top = object.data["status"]["observedGeneration"].as_i64();
    ensure(top == Some(generation), || {
        format!("{kind} {name} status.observedGeneration {top:?}, generation {generation}")
    })?;
    Ok(object)
}

/// `(kind, name)` is gone from the API server (its finalizer ran).
pub async fn gone(run: &Run, kind: &str, name: &str) -> Result<(), String> {
    let found = super::common::tributary_api(&run.client, &run.namespace, kind)
        .get_opt(name)
        .await
        .map_err(|e| format!("reading {kind} {name}: {e}"))?;
    ensure(found.is_none(), || format!("{kind} {name} still exists"))
}

/// A status field of an object, as text.
pub fn status(object: &DynamicObject, field: &str) -> Result<String, String> {
    object.data["status"][field]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| format!("no status.{field}"))
}

/// The ARNs of the SNS topics of the run's namespace (default names `<namespace>_<name>`).
pub async fn topics(run: &Run) -> Result<Vec<String>, String> {
    let marker = format!(":{}_", run.namespace);
    let mut arns = Vec::new();
    let mut next = None;
    loop {
        let page = run
            .sns
            .list_topics()
            .set_next_token(next)
            .send()
            .await
            .map_err(|e| format!("ListTopics: {e}"))?;
        let found = page
            .topics
            .unwrap_or_default()
            .into_iter()
            .filter_map(|t| t.topic_arn);
        arns.extend(found.filter(|arn| arn.contains(&marker)));
        next = page.next_token;
        if next.is_none() {
            return Ok(arns);
        }
    }
}

/// The URLs of the SQS queues of the run's namespace.
pub async fn queues(run: &Run) -> Result<Vec<String>, String> {
    let mut urls = run
        .sqs
        .list_queues()
        .queue_name_prefix(format!("{}_", run.namespace))
        .send()
        .await
        .map_err(|e| format!("ListQueues: {e}"))?
        .queue_urls
        .unwrap_or_default();
    urls.sort();
    Ok(urls)
}

/// The namespace's topics are exactly `names` (no orphan, no duplicate), by default name.
pub async fn only_topics(run: &Run, names: &[&str]) -> Result<Vec<String>, String> {
    let mut arns = topics(run).await?;
    arns.sort();
    let mut want: Vec<String> = names.iter().map(|n| format!(":{}_{n}", run.namespace)).collect();
    want.sort();
    let matches = arns.len() == want.len() && want.iter().all(|w| arns.iter().any(|a| a.ends_with(w)));
    ensure(matches, || format!("SNS topics {arns:?}, want exactly {names:?}"))?;
    Ok(arns)
}

/// The namespace's queues are exactly `names` (no orphan, no duplicate).
pub async fn only_queues(run: &Run, names: &[&str]) -> Result<Vec<String>, String> {
    let urls = queues(run).await?;
    let want = |n: &&str| format!("/{}_{n}", run.namespace);
    let matches =
        urls.len() == names.len() && names.iter().all(|n| urls.iter().any(|u| u.ends_with(&want(n))));
    ensure(matches, || format!("SQS queues {urls:?}, want exactly {names:?}"))?;
    Ok(urls)
}

/// The SNS subscriptions of a topic: (endpoint, subscription ARN).
pub async fn subscriptions(run: &Run, topic_arn: &str) -> Result<Vec<(String, String)>, String> {
    let listed = run
        .sns
        .list_subscriptions_by_topic()
        .topic_arn(topic_arn)
        .send()
        .await
        .map_err(|e| format!("ListSubscriptionsByTopic: {e}"))?;
    Ok(listed
        .subscriptions
        .unwrap_or_default()
        .into_iter()
        .map(|s| {
            (
                s.endpoint.unwrap_or_default(),
                s.subscription_arn.unwrap_or_default(),
            )
        })
        .collect())
}

/// One attribute of a queue.
pub async fn queue_attribute(run: &Run, url: &str, name: QueueAttributeName) -> Result<String, String> {
    let attributes = run
        .sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(name.clone())
        .send()
        .await
        .map_err(|e| format!("GetQueueAttributes {url}: {e}"))?
        .attributes
        .unwrap_or_default();
    Ok(attributes.get(&name).cloned().unwrap_or_default())
}

/// The URL of the run's queue `name` (default name), asked of moto.
pub async fn queue_url(run: &Run, name: &str) -> Result<String, String> {
    run.sqs
        .get_queue_url()
        .queue_name(format!("{}_{name}", run.namespace))
        .send()
        .await
        .map_err(|e| format!("GetQueueUrl {name}: {e}"))?
        .queue_url
        .ok_or_else(|| format!("no URL for queue {name}"))
}

/// Receives (and deletes) every message of the queue at `url`: its body and the string value of its
/// message attribute `attribute`, if it has one.
pub async fn received_with(
    run: &Run,
    url: &str,
    attribute: &str,
) -> Result<Vec<(String, Option<String>)>, String> {
    let mut messages = Vec::new();
    loop {
        let received = run
            .sqs
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .message_attribute_names("All")
            .send()
            .await
            .map_err(|e| format!("ReceiveMessage {url}: {e}"))?
            .messages
            .unwrap_or_default();
        if received.is_empty() {
            return Ok(messages);
        }
        for message in received {
            let value = message
                .message_attributes
                .as_ref()
                .and_then(|attributes| attributes.get(attribute))
                .and_then(|value| value.string_value.clone());
            messages.push((message.body.unwrap_or_default(), value));
            run.sqs
                .delete_message()
                .queue_url(url)
                .receipt_handle(message.receipt_handle.unwrap_or_default())
                .send()
                .await
                .map_err(|e| format!("DeleteMessage {url}: {e}"))?;
        }
    }
}

/// The messages a redrive must deliver back (the same five in every redrive scenario).
pub const DEAD: [&str; 5] = ["m1", "m2", "m3", "m4", "m5"];

/// Judges the `copies` (body, original id) a redrive delivered back: every dead message there (none
/// lost, ever), each copy with its original id, one id per message; exactly once, unless the crash fell
/// `in_window` (a redrive round's send→delete window): then a message may come twice, both copies with
/// the same original id (the at-least-once promise of docs/kinds/dead-letter.md).
pub fn judge_redriven(run: &Run, copies: &[(String, Option<String>)], in_window: bool) -> Result<(), String> {
    let mut by_body: BTreeMap<&str, Vec<Option<&str>>> = BTreeMap::new();
    for (body, id) in copies {
        by_body.entry(body).or_default().push(id.as_deref());
    }
    ensure(by_body.keys().copied().eq(DEAD), || {
        format!("q holds {copies:?}, want each of {DEAD:?}: none lost, nothing else")
    })?;
    let ids: BTreeSet<_> = copies.iter().map(|(_, id)| id.as_deref()).collect();
    ensure(ids.len() == DEAD.len() && !ids.contains(&None), || {
        format!("copies {copies:?}: want one {ORIGINAL_ID_ATTRIBUTE} per message, on every copy")
    })?;
    let duplicates = copies.len() - DEAD.len();
    if !in_window {
        ensure(duplicates == 0, || {
            format!("exactly once (crash outside a send→delete window): q holds {copies:?}")
        })?;
        run.note(format!("exactly once: {} copies of {}", copies.len(), DEAD.len()));
        return Ok(());
    }
    for (body, ids) in &by_body {
        ensure(ids.len() <= 2 && ids.iter().all(|id| *id == ids[0]), || {
            format!("at least once: the copies of {body} carry {ids:?}, want at most two, one id")
        })?;
    }
    run.note(format!(
        "at least once, killed in the send→delete window: {} copies of {}, {duplicates} twins with one original id",
        copies.len(),
        DEAD.len()
    ));
    Ok(())
}
