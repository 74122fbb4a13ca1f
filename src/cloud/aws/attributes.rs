//! The build step for AWS, pure: the SQS and SNS attribute maps a spec asks for, the queue policy that
//! lets topics deliver to a queue, default resource names and ARNs. Nothing here touches the network.
//!
//! Desired maps use the cloud's own attribute names and string values. An empty value means "absent"
//! (e.g. no `RedrivePolicy`); [`creation_attributes`] drops such entries and the `false` type flags before
//! a create call: the API documents leaving `FifoQueue`/`FifoTopic` out for standard resources, and moto
//! treats any `FifoTopic` value, even `false`, as true. The type flags are still in the desired maps so
//! that the `compare` module's `diff` can report a type change as needing a replacement.

use serde_json::json;
use sha2::{Digest, Sha256};

use crate::{
    api::{dead_letter::DeadLetterAws, queue::QueueAws, topic::TopicAws},
    cloud::{Attributes, names as names_for_cloud},
    filter::Policy,
};

/// Attribute names used by Tributary (SQS and SNS spell them the same way where they overlap).
pub mod names {
    /// SQS: FIFO queue flag. Immutable.
    pub const FIFO_QUEUE: &str = "FifoQueue";
    /// SNS: FIFO topic flag. Immutable.
    pub const FIFO_TOPIC: &str = "FifoTopic";
    /// SQS and SNS: deduplicate FIFO messages by a hash of the body.
    pub const CONTENT_BASED_DEDUPLICATION: &str = "ContentBasedDeduplication";
    /// SQS: visibility timeout, seconds.
    pub const VISIBILITY_TIMEOUT: &str = "VisibilityTimeout";
    /// SQS: retention, seconds.
    pub const MESSAGE_RETENTION_PERIOD: &str = "MessageRetentionPeriod";
    /// SQS: delivery delay, seconds.
    pub const DELAY_SECONDS: &str = "DelaySeconds";
    /// SQS: long-polling wait, seconds.
    pub const RECEIVE_MESSAGE_WAIT_TIME_SECONDS: &str = "ReceiveMessageWaitTimeSeconds";
    /// SQS: largest message, bytes.
    pub const MAXIMUM_MESSAGE_SIZE: &str = "MaximumMessageSize";
    /// SQS and SNS: KMS key for server-side encryption.
    pub const KMS_MASTER_KEY_ID: &str = "KmsMasterKeyId";
    /// SQS: SQS-managed server-side encryption.
    pub const SQS_MANAGED_SSE_ENABLED: &str = "SqsManagedSseEnabled";
    /// SQS: dead-letter target and receive count (JSON).
    pub const REDRIVE_POLICY: &str = "RedrivePolicy";
    /// SQS: which queues may use this queue as their dead-letter queue (JSON).
    pub const REDRIVE_ALLOW_POLICY: &str = "RedriveAllowPolicy";
    /// SQS and SNS: resource policy (IAM JSON).
    pub const POLICY: &str = "Policy";
    /// SQS: the queue's ARN (read-only).
    pub const QUEUE_ARN: &str = "QueueArn";
    /// SQS: visible messages (read-only).
    pub const APPROXIMATE_NUMBER_OF_MESSAGES: &str = "ApproximateNumberOfMessages";
    /// SQS: received, not yet deleted messages (read-only).
    pub const APPROXIMATE_NUMBER_OF_MESSAGES_NOT_VISIBLE: &str = "ApproximateNumberOfMessagesNotVisible";
    /// SQS: delayed messages (read-only).
    pub const APPROXIMATE_NUMBER_OF_MESSAGES_DELAYED: &str = "ApproximateNumberOfMessagesDelayed";
    /// SNS: display name.
    pub const DISPLAY_NAME: &str = "DisplayName";
    /// SNS: confirmed subscriptions (read-only).
    pub const SUBSCRIPTIONS_CONFIRMED: &str = "SubscriptionsConfirmed";
    /// SNS subscription: deliver the raw body.
    pub const RAW_MESSAGE_DELIVERY: &str = "RawMessageDelivery";
    /// SNS subscription: the filter policy (JSON).
    pub const FILTER_POLICY: &str = "FilterPolicy";
    /// SNS subscription: `MessageAttributes` or `MessageBody`.
    pub const FILTER_POLICY_SCOPE: &str = "FilterPolicyScope";
}

/// SQS's limit on queue names (including `.fifo`).
pub const SQS_NAME_LIMIT: usize = 80;
/// SNS's limit on topic names (including `.fifo`).
pub const SNS_NAME_LIMIT: usize = 256;
/// SQS's limit on `sourceQueueArns` in a `byQueue` redrive allow policy.
pub const MAX_REDRIVE_SOURCES: usize = 10;

/// A queue's dead-letter wiring, resolved: the DeadLetter's queue ARN and the receive count.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RedriveTarget {
    /// ARN of the dead-letter queue.
    pub dead_letter_arn: String,
    /// Receives before a message moves there.
    pub max_receive_count: i32,
}

fn flag(value: bool) -> String {
    value.to_string()
}

/// The SQS attributes a Queue's `spec.aws` asks for. Without `redrive` the `RedrivePolicy` is cleared.
pub fn queue_attributes(aws: &QueueAws, redrive: Option<&RedriveTarget>) -> Attributes {
    let QueueAws {
        name: _,
        fifo,
        content_based_deduplication,
        visibility_timeout_seconds,
        message_retention_seconds,
        delay_seconds,
        receive_wait_time_seconds,
        maximum_message_size_bytes,
        kms_master_key_id,
    } = aws;
    let mut attributes = Attributes::from([
        (names::FIFO_QUEUE.into(), flag(*fifo)),
        (
            names::VISIBILITY_TIMEOUT.into(),
            visibility_timeout_seconds.to_string(),
        ),
        (
            names::MESSAGE_RETENTION_PERIOD.into(),
            message_retention_seconds.to_string(),
        ),
        (names::DELAY_SECONDS.into(), delay_seconds.to_string()),
        (
            names::RECEIVE_MESSAGE_WAIT_TIME_SECONDS.into(),
            receive_wait_time_seconds.to_string(),
        ),
        (
            names::MAXIMUM_MESSAGE_SIZE.into(),
            maximum_message_size_bytes.to_string(),
        ),
        (
            names::REDRIVE_POLICY.into(),
            redrive.map(redrive_policy).unwrap_or_default(),
        ),
    ]);
    // SQS rejects ContentBasedDeduplication on standard queues, even as `false`.
    if *fifo {
        attributes.insert(
            names::CONTENT_BASED_DEDUPLICATION.into(),
            flag(*content_based_deduplication),
        );
    }
    encryption(&mut attributes, kms_master_key_id.as_deref());
    attributes
}

/// The SQS attributes a DeadLetter's `spec.aws` asks for, given the ARNs of the queues that use it.
/// The redrive allow policy lists them (`byQueue`) when there are 1 to 10; with none yet it allows all,
/// so a Queue can attach before the DeadLetter learns of it, and with more than SQS's 10 it allows all.
pub fn dead_letter_attributes(aws: &DeadLetterAws, source_queue_arns: &[String]) -> Attributes {
    let DeadLetterAws {
        name: _,
        fifo,
        message_retention_seconds,
    } = aws;
    Attributes::from([
        (names::FIFO_QUEUE.into(), flag(*fifo)),
        (
            names::MESSAGE_RETENTION_PERIOD.into(),
            message_retention_seconds.to_string(),
        ),
        (
            names::REDRIVE_ALLOW_POLICY.into(),
            redrive_allow_policy(source_queue_arns),
        ),
    ])
}

/// The SNS attributes a Topic's `spec.aws` asks for.
pub fn topic_attributes(aws: &TopicAws) -> Attributes {
    let TopicAws {
        name: _,
        fifo,
        content_based_deduplication,
        kms_master_key_id,
        display_name,
    } = aws;
    let mut attributes = Attributes::from([
        (names::FIFO_TOPIC.into(), flag(*fifo)),
        (
            names::KMS_MASTER_KEY_ID.into(),
            kms_master_key_id.clone().unwrap_or_default(),
        ),
        (
            names::DISPLAY_NAME.into(),
            display_name.clone().unwrap_or_default(),
        ),
    ]);
    if *fifo {
        attributes.insert(
            names::CONTENT_BASED_DEDUPLICATION.into(),
            flag(*content_based_deduplication),
        );
    }
    attributes
}

/// The SNS subscription attributes: raw delivery, and the filter policy in the filter engine's canonical
/// form (so two spellings of one policy are sent, and compared, alike) with its scope. Without a filter the
/// policy is cleared (SNS's way to remove one is an empty `FilterPolicy`).
pub fn subscription_attributes(raw_message_delivery: bool, filter: Option<&Policy>) -> Attributes {
    let mut attributes = Attributes::from([(names::RAW_MESSAGE_DELIVERY.into(), flag(raw_message_delivery))]);
    match filter {
        Some(policy) => {
            attributes.insert(names::FILTER_POLICY.into(), policy.canonical_json());
            attributes.insert(names::FILTER_POLICY_SCOPE.into(), policy.scope().to_string());
        }
        None => {
            attributes.insert(names::FILTER_POLICY.into(), String::new());
        }
    }
    attributes
}

/// SSE-KMS with the given key, or SSE-SQS (the Queue API's documented default) without one.
fn encryption(attributes: &mut Attributes, kms_master_key_id: Option<&str>) {
    match kms_master_key_id {
        Some(key) => {
            attributes.insert(names::KMS_MASTER_KEY_ID.into(), key.into());
        }
        None => {
            attributes.insert(names::KMS_MASTER_KEY_ID.into(), String::new());
            attributes.insert(names::SQS_MANAGED_SSE_ENABLED.into(), "true".into());
        }
    }
}

/// `RedrivePolicy`: `{"deadLetterTargetArn": …, "maxReceiveCount": n}`.
pub fn redrive_policy(target: &RedriveTarget) -> String {
    json!({
        "deadLetterTargetArn": target.dead_letter_arn,
        "maxReceiveCount": target.max_receive_count,
    })
    .to_string()
}

/// `RedriveAllowPolicy`: `byQueue` with the (sorted, deduplicated) source ARNs when there are 1 to 10,
/// else `allowAll` (see [`dead_letter_attributes`]).
pub fn redrive_allow_policy(source_queue_arns: &[String]) -> String {
    let mut arns: Vec<&str> = source_queue_arns.iter().map(String::as_str).collect();
    arns.sort_unstable();
    arns.dedup();
    if arns.is_empty() || arns.len() > MAX_REDRIVE_SOURCES {
        json!({"redrivePermission": "allowAll"}).to_string()
    } else {
        json!({"redrivePermission": "byQueue", "sourceQueueArns": arns}).to_string()
    }
}

/// The SQS queue policy letting the given SNS topics send to the queue: one statement for the SNS
/// service principal, `sqs:SendMessage` on the queue, conditioned on `aws:SourceArn` being one of the
/// topics. The topics are sorted and deduplicated, so the same set always gives the same text. `None`
/// when there is no topic (the policy should then be cleared).
pub fn queue_policy<S: AsRef<str>>(queue_arn: &str, topic_arns: &[S]) -> Option<String> {
    let mut topics: Vec<&str> = topic_arns.iter().map(AsRef::as_ref).collect();
    topics.sort_unstable();
    topics.dedup();
    if topics.is_empty() {
        return None;
    }
    let policy = json!({
        "Version": "2012-10-17",
        "Id": "tributary-sns-delivery",
        "Statement": [{
            "Sid": "AllowTopicsToSend",
            "Effect": "Allow",
            "Principal": {"Service": "sns.amazonaws.com"},
            "Action": "sqs:SendMessage",
            "Resource": queue_arn,
            "Condition": {"ArnEquals": {"aws:SourceArn": topics}},
        }],
    });
    Some(super::canonical::canonical(&policy, super::canonical::JsonMode::Plain).to_string())
}

/// The SNS topics a queue policy lets send to the queue: the `aws:SourceArn` values of its statements
/// that allow `sqs:SendMessage` to the SNS service principal (the statement [`queue_policy`] writes).
/// Sorted; empty for an empty or unparsable policy. Pure: it reads what SQS answered, so a Subscription
/// can be Ready only when its Topic really may send.
pub fn allowed_topics(policy: &str) -> Vec<String> {
    let Ok(policy) = serde_json::from_str::<serde_json::Value>(policy) else {
        return Vec::new();
    };
    let as_list = |value: Option<&serde_json::Value>| -> Vec<String> {
        match value {
            Some(serde_json::Value::String(one)) => vec![one.clone()],
            Some(serde_json::Value::Array(many)) => many
                .iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect(),
            _ => Vec::new(),
        }
    };
    let statements = match policy.get("Statement") {
        Some(serde_json::Value::Array(statements)) => statements.clone(),
        Some(statement) => vec![statement.clone()],
        None => Vec::new(),
    };
    let mut topics: Vec<String> = statements
        .iter()
        .filter(|s| s.get("Effect").and_then(|e| e.as_str()) == Some("Allow"))
        .filter(|s| {
            as_list(s.get("Action"))
                .iter()
                .any(|a| a == "sqs:SendMessage" || a == "sqs:*" || a == "*")
        })
        .filter(|s| {
            as_list(s.pointer("/Principal/Service"))
                .iter()
                .any(|p| p == "sns.amazonaws.com")
        })
        .flat_map(|s| as_list(s.pointer("/Condition/ArnEquals/aws:SourceArn")))
        .collect();
    topics.sort_unstable();
    topics.dedup();
    topics
}

/// The ARN of SQS queue `queue` in the partition, region and account of an SNS topic ARN of the same
/// caller (`arn:<partition>:sns:<region>:<account>:<topic>`), so that a queue can be created with its
/// policy in one call; the ARN SQS answers afterwards is what counts. `None` for a malformed ARN.
pub fn queue_arn_beside(topic_arn: &str, queue: &str) -> Option<String> {
    let mut parts = topic_arn.splitn(6, ':');
    let (arn, partition, service, region, account) = (
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
    );
    (arn == "arn" && service == "sns" && parts.next().is_some())
        .then(|| format!("arn:{partition}:sqs:{region}:{account}:{queue}"))
}

/// Whether SNS refused a Subscribe because the endpoint is already subscribed with other attributes
/// (`InvalidParameter`, "Subscription already exists with different attributes"): the caller then looks
/// the existing subscription up and sets its attributes.
pub fn is_duplicate_subscription(error: &crate::cloud::Error) -> bool {
    matches!(error, crate::cloud::Error::Service { code, message, .. }
        if code == "InvalidParameter" && message.contains("already exists with different attributes"))
}

/// The attributes to pass to a create call: entries with empty values (absent) and the `false` FIFO
/// flags (the default) left out.
pub fn creation_attributes(desired: &Attributes) -> Attributes {
    desired
        .iter()
        .filter(|(name, value)| {
            !value.is_empty()
                && !((name.as_str() == names::FIFO_QUEUE || name.as_str() == names::FIFO_TOPIC)
                    && value.as_str() == "false")
        })
        .map(|(name, value)| (name.clone(), value.clone()))
        .collect()
}

/// Default SQS queue name for a Queue or DeadLetter: `<namespace>_<name>` (see
/// [`crate::cloud::names::separated`], which keeps names of distinct objects distinct).
pub fn default_queue_name(namespace: &str, name: &str, fifo: bool) -> String {
    names_for_cloud::separated(namespace, name, fifo_suffix(fifo), SQS_NAME_LIMIT)
}

/// Default SNS topic name for a Topic: `<namespace>_<name>`, as [`default_queue_name`].
pub fn default_topic_name(namespace: &str, name: &str, fifo: bool) -> String {
    names_for_cloud::separated(namespace, name, fifo_suffix(fifo), SNS_NAME_LIMIT)
}

fn fifo_suffix(fifo: bool) -> &'static str {
    if fifo { ".fifo" } else { "" }
}

/// The scheme of default names before tenancy, kept for relay queue names (whose `name` part already
/// carries a `_`, so they never collided, and live relays keep theirs): `<namespace>-<name>` (plus
/// `.fifo`), made valid for AWS: characters outside `[A-Za-z0-9_-]` (the dots
/// Kubernetes names allow) become `-`. When that changed the name or it exceeds `limit`, the name is
/// cut to fit and ends with `-` and 8 hex digits of a hash of the original `namespace/name`.
/// Deterministic: the same object always gets the same name.
pub fn dashed_name(namespace: &str, name: &str, fifo: bool, limit: usize) -> String {
    const HASH_LEN: usize = 8;
    let suffix = if fifo { ".fifo" } else { "" };
    let raw = format!("{namespace}-{name}");
    let sanitised: String = raw
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect();
    let room = limit.saturating_sub(suffix.len());
    if sanitised == raw && sanitised.len() <= room {
        return format!("{sanitised}{suffix}");
    }
    let digest = Sha256::digest(format!("{namespace}/{name}").as_bytes());
    let hash: String = digest
        .iter()
        .take(HASH_LEN / 2)
        .map(|b| format!("{b:02x}"))
        .collect();
    let keep = room.saturating_sub(HASH_LEN + 1);
    let head: String = sanitised.chars().take(keep).collect();
    format!("{head}-{hash}{suffix}")
}

/// The AWS partition of a region (`aws`, `aws-cn`, `aws-us-gov`, …), for building ARNs.
pub fn partition(region: &str) -> &'static str {
    const PREFIXES: &[(&str, &str)] = &[
        ("cn-", "aws-cn"),
        ("us-gov-", "aws-us-gov"),
        ("us-isob-", "aws-iso-b"),
        ("us-iso-", "aws-iso"),
        ("eu-isoe-", "aws-iso-e"),
        ("us-isof-", "aws-iso-f"),
    ];
    PREFIXES
        .iter()
        .find(|(prefix, _)| region.starts_with(prefix))
        .map_or("aws", |(_, partition)| partition)
}

/// The ARN of the SNS topic `name` in `region` of `account`.
pub fn topic_arn(region: &str, account: &str, name: &str) -> String {
    format!("arn:{}:sns:{region}:{account}:{name}", partition(region))
}

/// The resource name at the end of an SNS topic or SQS queue ARN.
pub fn name_from_arn(arn: &str) -> Option<&str> {
    let mut parts = arn.splitn(6, ':');
    (parts.next() == Some("arn")).then_some(())?;
    parts.nth(4).filter(|name| !name.is_empty())
}

#[cfg(test)]
#[path = "attributes_tests.rs"]
mod tests;
