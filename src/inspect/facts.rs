//! What a node shows of its object: readiness from the `Ready` condition, and the few numbers and words
//! that say what flows and what is stuck (depths, ages, backlog, replicas, the filter in short).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;

use crate::api::{
    Consumer, DeadLetter, DeviceStream, Queue, Subscription, Topic,
    common::{Provider, QueueObservation},
    consumer::{CosmosSink, Throughput},
    http_source::{AuthMode, HttpSource},
    subscription::FilterScope,
};

use super::graph::{Fact, Readiness, Value};

/// The longest filter summary shown; longer ones end in `…`.
const FILTER_WIDTH: usize = 72;

/// A node's readiness and facts.
pub type Shown = (Readiness, Vec<Fact>);

/// Readiness from `conditions`' `Ready`.
pub fn readiness(conditions: &[Condition]) -> Readiness {
    match conditions.iter().find(|c| c.type_ == "Ready") {
        None => Readiness::Pending,
        Some(c) if c.status == "True" => Readiness::Ready,
        Some(c) => Readiness::NotReady {
            reason: c.reason.clone(),
            message: c.message.clone(),
        },
    }
}

fn provider(provider: &Provider) -> Fact {
    Fact::text(
        "on",
        match provider {
            Provider::Aws => "aws",
            Provider::Azure => "azure",
        },
    )
}

/// Depth and oldest message age, where the cloud tells them.
fn observed(observed: &QueueObservation) -> Vec<Fact> {
    let mut facts = Vec::new();
    if let Some(depth) = observed.depth {
        facts.push(Fact::count("depth", depth));
    }
    if let Some(age) = observed.oldest_message_age_seconds {
        facts.push(Fact {
            label: "oldest",
            value: Value::Seconds(age),
        });
    }
    facts
}

/// A Topic: its cloud and confirmed subscriptions.
pub fn topic(topic: &Topic) -> Shown {
    let status = topic.status.clone().unwrap_or_default();
    let mut facts = vec![provider(&topic.spec.provider)];
    if topic.spec.aws.as_ref().is_some_and(|a| a.fifo) {
        facts.push(Fact::text("fifo", "yes"));
    }
    if let Some(confirmed) = status.subscriptions_confirmed {
        facts.push(Fact::count("subscriptions", confirmed));
    }
    (readiness(&status.common.conditions), facts)
}

/// A DeviceStream: its partitions.
pub fn device_stream(stream: &DeviceStream) -> Shown {
    let status = stream.status.clone().unwrap_or_default();
    let mut facts = vec![provider(&stream.spec.provider)];
    if let Some(partitions) = status.partitions {
        facts.push(Fact::text("partitions", partitions.to_string()));
    }
    (readiness(&status.common.conditions), facts)
}

/// A Queue: its cloud, depth and oldest message age.
pub fn queue(queue: &Queue) -> Shown {
    let status = queue.status.clone().unwrap_or_default();
    let mut facts = vec![provider(&queue.spec.provider)];
    facts.extend(observed(&status.observed));
    (readiness(&status.common.conditions), facts)
}

/// A DeadLetter: its depth, oldest message age and last redrive.
pub fn dead_letter(dead_letter: &DeadLetter) -> Shown {
    let status = dead_letter.status.clone().unwrap_or_default();
    let mut facts = vec![provider(&dead_letter.spec.provider)];
    facts.extend(observed(&status.observed));
    if let Some(redrive) = &status.last_redrive {
        let moved = redrive.moved;
        facts.push(Fact::text(
            "last redrive",
            format!("{} {} ({moved} moved)", redrive.id, redrive.state.to_lowercase()),
        ));
    }
    (readiness(&status.common.conditions), facts)
}

/// A Subscription: its filter in short.
pub fn subscription(subscription: &Subscription) -> Shown {
    let status = subscription.status.clone().unwrap_or_default();
    let filter = match &subscription.spec.filter {
        None => "none (everything)".to_owned(),
        Some(filter) => {
            let body = if filter.scope == FilterScope::MessageBody {
                "body: "
            } else {
                ""
            };
            shorten(&format!("{body}{}", policy_summary(&filter.policy, "")))
        }
    };
    (
        readiness(&status.common.conditions),
        vec![Fact::text("filter", filter)],
    )
}

/// The relay hop of a Subscription to an Azure Storage Queue: what its filter admitted and dropped.
pub fn relay(subscription: &Subscription) -> Vec<Fact> {
    let relay = subscription.status.as_ref().and_then(|s| s.relay.as_ref());
    relay.map_or_else(Vec::new, |counts| {
        vec![
            Fact::count("admitted", counts.admitted),
            Fact::count("dropped", counts.dropped),
        ]
    })
}

/// A Consumer's counts from its workers' metrics: rates per minute once two reads made a window, and
/// the totals.
fn throughput(throughput: &Throughput) -> Vec<Fact> {
    let rates = [
        ("processed/min", throughput.processed_per_minute),
        ("failed/min", throughput.failed_per_minute),
        ("dead-lettered/min", throughput.dead_lettered_per_minute),
    ];
    let mut facts: Vec<Fact> = rates
        .into_iter()
        .filter_map(|(label, rate)| rate.map(|rate| Fact::count(label, rate)))
        .collect();
    facts.push(Fact::count("processed", throughput.processed));
    facts.push(Fact::count("failed", throughput.failed));
    facts.push(Fact::count("dead-lettered", throughput.dead_lettered));
    facts
}

/// A Consumer: processor, replicas, backlog, throughput (when the controller has read it), table.
pub fn consumer(consumer: &Consumer) -> Shown {
    let status = consumer.status.clone().unwrap_or_default();
    let mut facts = Vec::new();
    if let Some(processor) = &consumer.spec.processor {
        let name = serde_json::to_value(processor).ok();
        let name = name.as_ref().and_then(|v| v.as_str()).unwrap_or("custom");
        facts.push(Fact::text("processor", name));
    } else if let Some(container) = &consumer.spec.container {
        facts.push(Fact::text("container", container.image.clone()));
    }
    if let Some(replicas) = status.replicas {
        facts.push(Fact::count("replicas", i64::from(replicas)));
    }
    if let Some(backlog) = status.backlog {
        facts.push(Fact::count("backlog", backlog));
    }
    if let Some(counts) = &status.throughput {
        facts.extend(throughput(counts));
    }
    if let Some(table) = consumer.spec.sink.as_ref().and_then(|s| s.table.as_ref()) {
        facts.push(Fact::text("table", table.clone()));
    }
    (readiness(&status.common.conditions), facts)
}

/// The order endpoint's Service: its port and how clients authenticate.
pub fn endpoint(http: &HttpSource) -> Vec<Fact> {
    let auth = &http.auth;
    let mut ways = Vec::new();
    if auth.mode == AuthMode::None {
        ways.push("none");
    }
    if auth.mode == AuthMode::Required && auth.api_keys.is_some() {
        ways.push("api keys");
    }
    if auth.mode == AuthMode::Required && auth.jwt.is_some() {
        ways.push("jwt");
    }
    let mut facts = vec![Fact::text("port", http.port.to_string())];
    if !ways.is_empty() {
        facts.push(Fact::text("auth", ways.join(", ")));
    }
    facts
}

/// A Cosmos DB sink: its partition key.
pub fn cosmos(cosmos: &CosmosSink) -> Vec<Fact> {
    vec![Fact::text("partition key", cosmos.partition_key_path.clone())]
}

/// A filter policy in one line: `event=[OrderPlaced] total=[numeric > 0]`; nested keys (body scope)
/// joined with dots, `$or` alternatives with `|`.
pub fn policy_summary(policy: &serde_json::Map<String, serde_json::Value>, prefix: &str) -> String {
    let mut parts = Vec::new();
    for (key, value) in policy {
        match value {
            serde_json::Value::Array(items) if key == "$or" => {
                let alternatives: Vec<String> = items
                    .iter()
                    .filter_map(|item| item.as_object().map(|o| policy_summary(o, prefix)))
                    .collect();
                parts.push(format!("({})", alternatives.join(" | ")));
            }
            serde_json::Value::Array(items) => {
                let items: Vec<String> = items.iter().map(condition).collect();
                parts.push(format!("{prefix}{key}=[{}]", items.join(", ")));
            }
            serde_json::Value::Object(nested) => {
                parts.push(policy_summary(nested, &format!("{prefix}{key}.")));
            }
            other => parts.push(format!("{prefix}{key}={other}")),
        }
    }
    parts.join(" ")
}

/// One value or condition of a filter: `OrderPlaced`, `anything-but pickup`, `numeric > 0`.
fn condition(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::String(text) => text.clone(),
        serde_json::Value::Object(operator) => operator
            .iter()
            .map(|(name, operand)| match operand {
                serde_json::Value::Array(items) => {
                    let items: Vec<String> = items.iter().map(condition).collect();
                    format!("{name} {}", items.join(" "))
                }
                other => format!("{name} {}", condition(other)),
            })
            .collect::<Vec<_>>()
            .join(", "),
        other => other.to_string(),
    }
}

fn shorten(text: &str) -> String {
    if text.chars().count() <= FILTER_WIDTH {
        return text.to_owned();
    }
    let mut short: String = text.chars().take(FILTER_WIDTH - 1).collect();
    short.push('…');
    short
}
