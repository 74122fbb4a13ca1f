//! Cross-object admission rules: what one Tributary object may say about another that it references, as
//! pure functions of the object's spec and the referenced objects that exist.
//!
//! Two callers use the same rules so that they cannot drift apart: the validating webhook (which refuses
//! the object at `kubectl apply`, fetching the referenced objects from the API server) and the controller
//! (which reports `InvalidSpec` naming the field when no webhook is installed, reading its watch caches).
//! A referenced object that does not exist yet is no violation: GitOps tools apply in any order, and the
//! controller reports it as `DependencyNotReady` until it appears.
//!
//! This module sits below `controller` and `webhook` and imports nothing of Tributary's but `api`.

#[cfg(test)]
mod tests;

use std::{collections::BTreeMap, fmt, sync::Arc};

use crate::api::{
    DeadLetter, DeviceStream, Queue, Topic, common::Provider, consumer::ConsumerSpec,
    dead_letter::DeadLetterSpec, device_stream::DeviceStreamSpec, queue::QueueSpec,
    subscription::SubscriptionSpec, topic::TopicSpec,
};

/// The consumer group every Event Hub has.
pub const DEFAULT_CONSUMER_GROUP: &str = "$Default";

/// A broken cross-object rule: the field of the checked object, and the rule in words.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// The field of the checked object, e.g. `spec.deadLetter.ref`.
    pub field: &'static str,
    /// What is wrong and what the clouds require.
    pub rule: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.rule)
    }
}

/// The spec of an object of one of the six kinds, as the rules see it.
#[derive(Clone, Copy, Debug)]
pub enum Spec<'a> {
    /// A Topic.
    Topic(&'a TopicSpec),
    /// A Queue.
    Queue(&'a QueueSpec),
    /// A Subscription.
    Subscription(&'a SubscriptionSpec),
    /// A Consumer.
    Consumer(&'a ConsumerSpec),
    /// A DeviceStream.
    DeviceStream(&'a DeviceStreamSpec),
    /// A DeadLetter.
    DeadLetter(&'a DeadLetterSpec),
}

/// An object another object references, by kind and name (always in the same namespace).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Reference {
    /// A Topic.
    Topic(String),
    /// A Queue.
    Queue(String),
    /// A DeadLetter.
    DeadLetter(String),
    /// A DeviceStream.
    DeviceStream(String),
}

/// The referenced objects that exist, by name. Missing entries are objects not created yet.
#[derive(Clone, Debug, Default)]
pub struct Referenced {
    /// Topics.
    pub topics: BTreeMap<String, Arc<Topic>>,
    /// Queues.
    pub queues: BTreeMap<String, Arc<Queue>>,
    /// DeadLetters.
    pub dead_letters: BTreeMap<String, Arc<DeadLetter>>,
    /// DeviceStreams.
    pub device_streams: BTreeMap<String, Arc<DeviceStream>>,
}

/// The objects `spec` references, which [`check`] needs to see.
pub fn references(spec: Spec<'_>) -> Vec<Reference> {
    let mut out = Vec::new();
    match spec {
        Spec::Topic(_) | Spec::DeviceStream(_) => {}
        Spec::Queue(queue) => {
            if let Some(target) = &queue.dead_letter {
                out.push(Reference::DeadLetter(target.target.name.clone()));
            }
        }
        Spec::Subscription(subscription) => {
            out.push(Reference::Topic(subscription.topic_ref.name.clone()));
            out.push(Reference::Queue(subscription.queue_ref.name.clone()));
        }
        Spec::Consumer(consumer) => {
            if let Some(queue) = &consumer.source.queue_ref {
                out.push(Reference::Queue(queue.name.clone()));
            }
            if let Some(stream) = &consumer.source.device_stream_ref {
                out.push(Reference::DeviceStream(stream.name.clone()));
            }
            if let Some(dead_letter) = &consumer.dead_letter_ref {
                out.push(Reference::DeadLetter(dead_letter.name.clone()));
            }
        }
        Spec::DeadLetter(dead_letter) => {
            if let Some(destination) = dead_letter
                .redrive
                .as_ref()
                .and_then(|r| r.destination_ref.as_ref())
            {
                out.push(Reference::Queue(destination.name.clone()));
            }
        }
    }
    out
}

/// Every cross-object rule `spec` breaks against the referenced objects that exist.
pub fn check(spec: Spec<'_>, referenced: &Referenced) -> Vec<Violation> {
    match spec {
        Spec::Topic(_) | Spec::DeviceStream(_) => Vec::new(),
        Spec::Queue(queue) => check_queue(queue, referenced),
        Spec::Subscription(subscription) => check_subscription(subscription, referenced),
        Spec::Consumer(consumer) => check_consumer(consumer, referenced),
        Spec::DeadLetter(dead_letter) => check_dead_letter(dead_letter, referenced),
    }
}

/// Advice that is no refusal, for the webhook to return as admission warnings: what the clouds accept but
/// recommend against.
pub fn warnings(spec: Spec<'_>, referenced: &Referenced) -> Vec<String> {
    let Spec::Queue(queue) = spec else {
        return Vec::new();
    };
    let (Some(aws), Some(target)) = (&queue.aws, &queue.dead_letter) else {
        return Vec::new();
    };
    let name = &target.target.name;
    let Some(dead_letter_aws) = referenced
        .dead_letters
        .get(name)
        .and_then(|d| d.spec.aws.as_ref())
    else {
        return Vec::new();
    };
    // SQS keeps a standard message's original enqueue time in the dead-letter queue (a FIFO message's is
    // reset), so a dead letter that keeps messages no longer than the source may drop them at once.
    if aws.fifo || dead_letter_aws.message_retention_seconds > aws.message_retention_seconds {
        return Vec::new();
    }
    vec![format!(
        "spec.deadLetter.ref: DeadLetter {name} keeps messages {} s, not longer than this queue's {} s; SQS keeps \
         a standard message's original enqueue time, so dead messages may expire early (SQS recommends a \
         longer retention for the dead-letter queue)",
        dead_letter_aws.message_retention_seconds, aws.message_retention_seconds
    )]
}

/// What the rules need to know of the queue (or stream) messages are dead-lettered from.
#[derive(Clone, Copy, Debug)]
struct Source<'a> {
    provider: Provider,
    /// FIFO, when the source is an SQS queue whose dead letter SQS moves messages to.
    fifo: Option<bool>,
    /// The storage account, when the source is a Storage Queue (the workers use its key for both).
    storage_account: Option<&'a str>,
}

fn provider_name(provider: Provider) -> &'static str {
    match provider {
        Provider::Aws => "aws",
        Provider::Azure => "azure",
    }
}

fn queue_fifo(queue: &QueueSpec) -> bool {
    queue.aws.as_ref().is_some_and(|aws| aws.fifo)
}

/// The dead letter `dead_letter` (named `name`) of `source`: same provider; on aws the same queue type
/// (SQS: "the dead-letter queue of a FIFO queue must also be a FIFO queue", and of a standard queue a
/// standard queue); on azure the same storage account as a Storage Queue source.
fn check_dead_letter_of(
    field: &'static str,
    source: Source<'_>,
    name: &str,
    dead_letter: &DeadLetter,
) -> Option<Violation> {
    let violation = |rule: String| Some(Violation { field, rule });
    let provider = dead_letter.spec.provider;
    if provider != source.provider {
        return violation(format!(
            "DeadLetter {name} is on {}, but the source is on {}: a dead letter must be on the same provider",
            provider_name(provider),
            provider_name(source.provider)
        ));
    }
    let dead_letter_fifo = dead_letter.spec.aws.as_ref().is_some_and(|aws| aws.fifo);
    match source.fifo {
        Some(true) if !dead_letter_fifo => {
            return violation(format!(
                "DeadLetter {name} is a standard queue; SQS requires a FIFO queue's dead letter to be FIFO"
            ));
        }
        Some(false) if dead_letter_fifo => {
            return violation(format!(
                "DeadLetter {name} is FIFO; SQS requires a standard queue's dead letter to be standard"
            ));
        }
        _ => {}
    }
    let dead_letter_account = dead_letter
        .spec
        .azure
        .as_ref()
        .map(|a| a.storage_account.as_str());
    match (source.storage_account, dead_letter_account) {
        (Some(account), Some(other)) if account != other => violation(format!(
            "DeadLetter {name} is in storage account {other}; it must be in {account}, the source queue's \
             account, because the workers dead-letter with the queue's account key"
        )),
        _ => None,
    }
}

fn queue_source(queue: &QueueSpec) -> Source<'_> {
    Source {
        provider: queue.provider,
        fifo: queue.aws.as_ref().map(|aws| aws.fifo),
        storage_account: queue.azure.as_ref().map(|a| a.location.storage_account.as_str()),
    }
}

fn check_queue(queue: &QueueSpec, referenced: &Referenced) -> Vec<Violation> {
    let Some(target) = &queue.dead_letter else {
        return Vec::new();
    };
    let name = &target.target.name;
    referenced
        .dead_letters
        .get(name)
        .and_then(|dead_letter| {
            check_dead_letter_of("spec.deadLetter.ref", queue_source(queue), name, dead_letter)
        })
        .into_iter()
        .collect()
}

/// SNS: a FIFO queue can subscribe only to a FIFO topic; a FIFO topic may deliver to a standard queue
/// (allowed since 2023), and to a Storage Queue through the relay's standard SQS queue.
fn check_subscription(subscription: &SubscriptionSpec, referenced: &Referenced) -> Vec<Violation> {
    let topic_name = &subscription.topic_ref.name;
    let queue_name = &subscription.queue_ref.name;
    let (Some(topic), Some(queue)) = (
        referenced.topics.get(topic_name),
        referenced.queues.get(queue_name),
    ) else {
        return Vec::new();
    };
    let topic_fifo = topic.spec.aws.as_ref().is_some_and(|aws| aws.fifo);
    if queue_fifo(&queue.spec) && !topic_fifo {
        return vec![Violation {
            field: "spec.queueRef",
            rule: format!(
                "Queue {queue_name} is FIFO but Topic {topic_name} is standard: SNS delivers to a FIFO queue only \
                 from a FIFO topic (a FIFO topic may deliver to a standard queue)"
            ),
        }];
    }
    Vec::new()
}

fn check_consumer(consumer: &ConsumerSpec, referenced: &Referenced) -> Vec<Violation> {
    let mut out = Vec::new();
    let mut source = None;
    if let Some((name, queue)) = consumer
        .source
        .queue_ref
        .as_ref()
        .and_then(|r| Some((&r.name, referenced.queues.get(&r.name)?)))
    {
        out.extend(check_drained_visibility(&queue.spec, name));
        // The workers dead-letter themselves (SQS moves to a Queue's own dead letter), so only the
        // provider, and a Storage Queue's account, must match.
        source = Some(Source {
            fifo: None,
            ..queue_source(&queue.spec)
        });
    }
    if let Some(stream_ref) = &consumer.source.device_stream_ref {
        source = Some(Source {
            provider: Provider::Azure,
            fifo: None,
            storage_account: None,
        });
        if let Some(stream) = referenced.device_streams.get(&stream_ref.name) {
            out.extend(check_consumer_group(
                &stream_ref.name,
                &stream_ref.consumer_group,
                stream,
            ));
        }
    }
    if let (Some(source), Some(dead_letter_ref)) = (source, &consumer.dead_letter_ref) {
        let name = &dead_letter_ref.name;
        if let Some(dead_letter) = referenced.dead_letters.get(name) {
            out.extend(check_dead_letter_of(
                "spec.deadLetterRef",
                source,
                name,
                dead_letter,
            ));
        }
    }
    out
}

/// A Consumer's workers keep each message they work on hidden from other receivers for the Queue's
/// visibility timeout (and extend it while the work goes on). With 0 every receiver gets each message at
/// once, so it is processed more than once and a FIFO group's order is lost; the workers refuse such a
/// source. SQS and Storage Queues accept 0, so only a drained Queue is refused.
fn check_drained_visibility(queue: &QueueSpec, name: &str) -> Option<Violation> {
    let (field, visibility) = match (&queue.aws, &queue.azure) {
        (Some(aws), _) => (
            "spec.aws.visibilityTimeoutSeconds",
            aws.visibility_timeout_seconds,
        ),
        (None, Some(azure)) => (
            "spec.azure.visibilityTimeoutSeconds",
            azure.visibility_timeout_seconds,
        ),
        (None, None) => return None,
    };
    (visibility < 1).then(|| Violation {
        field: "spec.source.queueRef",
        rule: format!(
            "Queue {name} has {field} {visibility}: a Consumer's workers need the messages they work on hidden \
             from other receivers, or every receiver gets each message at once (processed more than once, \
             a FIFO group out of order); set the Queue's {field} to at least 1"
        ),
    })
}

/// Event Hubs: a reader's consumer group must exist on the hub: `$Default`, or one the DeviceStream lists.
fn check_consumer_group(stream_name: &str, group: &str, stream: &DeviceStream) -> Option<Violation> {
    let listed = stream
        .spec
        .azure
        .as_ref()
        .is_some_and(|a| a.consumer_groups.iter().any(|g| g == group));
    (group != DEFAULT_CONSUMER_GROUP && !listed).then(|| Violation {
        field: "spec.source.deviceStreamRef.consumerGroup",
        rule: format!(
            "{group} is not a consumer group of DeviceStream {stream_name}: use $Default or one listed in its \
             spec.azure.consumerGroups"
        ),
    })
}

/// A redrive moves messages within one cloud: the destination Queue must be on the DeadLetter's provider.
fn check_dead_letter(dead_letter: &DeadLetterSpec, referenced: &Referenced) -> Vec<Violation> {
    let Some(destination) = dead_letter
        .redrive
        .as_ref()
        .and_then(|r| r.destination_ref.as_ref())
    else {
        return Vec::new();
    };
    let name = &destination.name;
    let Some(queue) = referenced.queues.get(name) else {
        return Vec::new();
    };
    if queue.spec.provider == dead_letter.provider {
        return Vec::new();
    }
    vec![Violation {
        field: "spec.redrive.destinationRef",
        rule: format!(
            "Queue {name} is on {}, but this DeadLetter is on {}: a redrive moves messages within one provider",
            provider_name(queue.spec.provider),
            provider_name(dead_letter.provider)
        ),
    }]
}
