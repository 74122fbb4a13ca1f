//! The relay processor: delivers a Topic's messages to a Queue on azure, for a Subscription whose Queue is a
//! Storage Queue. SNS cannot deliver there, so the controller subscribes an SQS queue of its own to the
//! Topic and runs this processor on it. A Storage Queue has no filtering either: the relay applies the
//! Subscription's filter policy with Tributary's engine (the one that validates it), drops what does not
//! match, and sends the rest, its attributes in the envelope, to the Storage Queue.

use serde::{Deserialize, Serialize};

// One path per use (not `super::{…}`): this module needs its siblings, not the worker's root.
use super::message::Message;
use super::processor::{Outcome, Processor};
use crate::{
    api::subscription::{FilterScope, SubscriptionFilter},
    cloud::{
        azure::{queue::StorageQueue, storage_queues::Account},
        queue::{MessageAttribute, MessageQueue as _, OutgoingMessage},
    },
    filter::{self, Policy, Scope},
};

/// Where the relay delivers, and what it lets through.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RelayTarget {
    /// The Storage Queue's URL, without a signature.
    pub queue_url: String,
    /// Its storage account (the key in `AZURE_STORAGE_KEY`).
    pub account: String,
    /// Time to live of each message sent, in seconds; `-1` never expires.
    #[serde(default = "default_ttl")]
    pub message_ttl_seconds: i64,
    /// Only messages matching this SNS filter policy are delivered; without it every one is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<SubscriptionFilter>,
}

fn default_ttl() -> i64 {
    604_800
}

impl RelayTarget {
    /// The parsed filter policy, or the error naming `relay.<field>`.
    pub fn validate(&self) -> Result<Option<Policy>, String> {
        if url::Url::parse(&self.queue_url).is_err() {
            return Err("relay.queueUrl must be a URL".to_owned());
        }
        if self.message_ttl_seconds != -1 && self.message_ttl_seconds < 1 {
            return Err("relay.messageTtlSeconds must be -1 (never expire) or at least 1".to_owned());
        }
        self.filter
            .as_ref()
            .map(|f| {
                let policy = serde_json::Value::Object(f.policy.clone());
                Policy::parse(&policy, scope(f.scope)).map_err(|e| format!("relay.filter.policy: {e}"))
            })
            .transpose()
    }

    /// The relay processor delivering here: its Storage Queue signed with the account's `key`.
    pub fn processor(&self, key: String) -> Result<Relay, String> {
        let policy = self.validate()?;
        let account = Account {
            name: self.account.clone(),
            key,
        };
        let url = url::Url::parse(&self.queue_url).map_err(|e| format!("relay.queueUrl: {e}"))?;
        let queue = StorageQueue::signed(url, &account);
        Ok(Relay::new(queue, self.message_ttl_seconds, policy))
    }
}

/// The engine's scope of the API's.
pub fn scope(scope: FilterScope) -> Scope {
    match scope {
        FilterScope::MessageAttributes => Scope::MessageAttributes,
        FilterScope::MessageBody => Scope::MessageBody,
    }
}

/// What a filter sees of `message` in `scope`; `None` for a body that is not JSON, which no body policy
/// matches (as in SNS).
pub fn filter_view(message: &Message, scope: Scope) -> Option<filter::Message> {
    match scope {
        Scope::MessageAttributes => Some(filter::Message::Attributes(
            message
                .attributes
                .iter()
                .map(|(name, value)| {
                    let data_type = message.types.get(name).map_or("String", String::as_str);
                    (name.clone(), (data_type.to_owned(), value.clone()))
                })
                .collect(),
        )),
        Scope::MessageBody => filter::Message::from_body_json(&message.body).ok(),
    }
}

/// Whether `policy` lets `message` through.
pub fn admits(policy: Option<&Policy>, message: &Message) -> bool {
    policy.is_none_or(|policy| filter_view(message, policy.scope()).is_some_and(|view| policy.matches(&view)))
}

/// The relay: the filter, and the Storage Queue it sends to.
#[derive(Clone, Debug)]
pub struct Relay {
    target: StorageQueue,
    policy: Option<Policy>,
    metrics: Option<super::metrics::WorkerMetrics>,
}

impl Relay {
    /// Sends what `policy` admits to `target`, each kept for `ttl_seconds`.
    pub fn new(target: StorageQueue, ttl_seconds: i64, policy: Option<Policy>) -> Self {
        Self {
            target: target.with_message_ttl(ttl_seconds),
            policy,
            metrics: None,
        }
    }

    /// Counts what the filter drops in `metrics` (`tributary_worker_messages_filtered_total`, which the
    /// controller reads into the Subscription's `status.relay`).
    pub fn with_metrics(self, metrics: super::metrics::WorkerMetrics) -> Self {
        Self {
            metrics: Some(metrics),
            ..self
        }
    }
}

impl Processor for Relay {
    fn name(&self) -> &'static str {
        "relay"
    }

    async fn process(&self, message: &Message) -> Outcome {
        if !admits(self.policy.as_ref(), message) {
            tracing::debug!(message_id = %message.id, "filtered out");
            if let Some(metrics) = &self.metrics {
                metrics.filtered();
            }
            return Outcome::Done;
        }
        let attributes = message
            .attributes
            .iter()
            .map(|(name, value)| {
                let attribute = MessageAttribute {
                    data_type: message
                        .types
                        .get(name)
                        .cloned()
                        .unwrap_or_else(|| "String".to_owned()),
                    string_value: Some(value.clone()),
                    binary_value: None,
                };
                (name.clone(), attribute)
            })
            .collect();
        let relayed = OutgoingMessage {
            entry_id: message.id.clone(),
            body: message.body.clone(),
            attributes,
            group_id: None,
            deduplication_id: None,
        };
        match self.target.send_one(&relayed).await {
            Ok(()) => Outcome::Done,
            // Too large for a Storage Queue (checked before sending): no retry changes that. Any answer of
            // the service (a rotated key, an outage) is retried until it is fixed.
            Err(e @ crate::cloud::Error::Invalid { .. }) => Outcome::Reject(e.to_string()),
            Err(e) => Outcome::Retry(format!("relaying to {}: {e}", self.target.url())),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::collections::BTreeMap;

    use serde_json::json;

    use super::*;

    fn message(attributes: &[(&str, &str, &str)], body: &str) -> Message {
        let raw = attributes
            .iter()
            .map(|(name, data_type, value)| {
                let attribute = MessageAttribute {
                    data_type: (*data_type).to_owned(),
                    string_value: Some((*value).to_owned()),
                    binary_value: None,
                };
                ((*name).to_owned(), attribute)
            })
            .collect::<BTreeMap<_, _>>();
        let strings = raw
            .iter()
            .map(|(name, a)| (name.clone(), a.string_value.clone().unwrap()))
            .collect();
        Message::delivered("m".into(), body.into(), strings, 1).with_types(&raw)
    }

    fn policy(value: serde_json::Value, scope: Scope) -> Policy {
        Policy::parse(&value, scope).unwrap()
    }

    #[test]
    fn numeric_conditions_see_number_attributes_only() {
        let big = policy(
            json!({"total": [{"numeric": [">=", 100]}]}),
            Scope::MessageAttributes,
        );
        assert!(admits(
            Some(&big),
            &message(&[("total", "Number", "250.00")], "{}")
        ));
        assert!(!admits(
            Some(&big),
            &message(&[("total", "Number", "99.99")], "{}")
        ));
        assert!(
            !admits(Some(&big), &message(&[("total", "String", "250.00")], "{}")),
            "a String attribute is not a number to SNS"
        );
        assert!(admits(None, &message(&[], "anything")), "no policy: everything");
    }

    #[test]
    fn body_policies_read_the_json_body() {
        let express = policy(json!({"delivery": ["express"]}), Scope::MessageBody);
        assert!(admits(Some(&express), &message(&[], r#"{"delivery":"express"}"#)));
        assert!(!admits(
            Some(&express),
            &message(&[], r#"{"delivery":"standard"}"#)
        ));
        assert!(
            !admits(Some(&express), &message(&[], "not json")),
            "no JSON, no match"
        );
    }

    #[test]
    fn a_bad_target_names_the_field() {
        let target = RelayTarget {
            queue_url: "http://127.0.0.1/acct/q".into(),
            account: "acct".into(),
            message_ttl_seconds: 0,
            filter: None,
        };
        assert!(target.validate().unwrap_err().contains("relay.messageTtlSeconds"));
        let filtered = RelayTarget {
            message_ttl_seconds: -1,
            filter: Some(SubscriptionFilter {
                scope: FilterScope::MessageAttributes,
                policy: json!({"a": {"b": ["c"]}}).as_object().unwrap().clone(),
            }),
            ..target
        };
        let error = filtered.validate().unwrap_err();
        assert!(error.starts_with("relay.filter.policy: "), "{error}");
    }

    #[tokio::test]
    async fn what_the_filter_drops_is_counted_done_and_never_sent() {
        let target = RelayTarget {
            // Nothing listens on the discard port: a message the relay tried to send would be retried.
            queue_url: "http://127.0.0.1:9/acct/q".into(),
            account: "acct".into(),
            message_ttl_seconds: 60,
            filter: Some(SubscriptionFilter {
                scope: FilterScope::MessageAttributes,
                policy: json!({"event": ["OrderPlaced"]}).as_object().unwrap().clone(),
            }),
        };
        let metrics = super::super::metrics::WorkerMetrics::new();
        let relay = target
            .processor("a2V5".into())
            .unwrap()
            .with_metrics(metrics.clone());
        let shipped = message(&[("event", "String", "OrderShipped")], "{}");
        assert_eq!(relay.process(&shipped).await, Outcome::Done);
        let text = metrics.render("ns/relay", "relay");
        let line = text
            .lines()
            .find(|l| l.starts_with("tributary_worker_messages_filtered_total"))
            .unwrap();
        assert!(line.ends_with(" 1"), "{line}");
        let placed = message(&[("event", "String", "OrderPlaced")], "{}");
        assert!(
            matches!(relay.process(&placed).await, Outcome::Retry(_)),
            "an admitted message is sent (here: to nothing, so retried)"
        );
        let text = metrics.render("ns/relay", "relay");
        assert!(text.contains("tributary_worker_messages_filtered_total"));
        assert!(
            text.lines()
                .any(|l| l.starts_with("tributary_worker_messages_filtered_total") && l.ends_with(" 1")),
            "{text}"
        );
    }
}
