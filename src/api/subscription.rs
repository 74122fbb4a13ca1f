//! `Subscription`: delivery from a Topic to a Queue, optionally filtered by an SNS filter policy.

use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{CommonStatus, DeletionPolicy, ObjectRef, default_true};

/// Delivers a Topic's messages to a Queue. The queue policy that lets the topic send is wired by the
/// controller; nobody writes it by hand. SNS delivers to SQS only, so for a Queue on azure the controller
/// subscribes an SQS queue of its own and runs a relay (Deployment `<name>-relay`) that applies the filter
/// with Tributary's engine and sends the rest on to the Storage Queue.
#[derive(CustomResource, KubeSchema, Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[kube(
    group = "tributary.dev",
    version = "v1alpha1",
    kind = "Subscription",
    namespaced,
    status = "SubscriptionStatus",
    shortname = "trsub",
    category = "tributary",
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(name = "Topic", type_ = "string", json_path = ".spec.topicRef.name"),
    printcolumn(name = "Queue", type_ = "string", json_path = ".spec.queueRef.name"),
    printcolumn(
        name = "Scope",
        type_ = "string",
        json_path = ".spec.filter.scope",
        priority = 1
    ),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[serde(rename_all = "camelCase")]
pub struct SubscriptionSpec {
    /// The Topic to subscribe to. Immutable: a subscription cannot move to another topic.
    #[x_kube(validation = Rule::new("self == oldSelf").message("spec.topicRef is immutable; create a new Subscription"))]
    pub topic_ref: ObjectRef,
    /// The Queue that receives the messages. Immutable.
    #[x_kube(validation = Rule::new("self == oldSelf").message("spec.queueRef is immutable; create a new Subscription"))]
    pub queue_ref: ObjectRef,
    /// Only messages matching this filter are delivered; without it every message is. The policy is the
    /// SNS filter policy written as YAML (not a JSON string), in `MessageAttributes` or `MessageBody` scope.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<SubscriptionFilter>,
    /// Deliver the message body as published, without the SNS JSON envelope (attributes then travel as
    /// SQS message attributes). Default true. A Queue on azure always gets the body as published, with
    /// its attributes in Tributary's envelope.
    #[serde(default = "default_true")]
    pub raw_message_delivery: bool,
    /// What happens to the SNS subscription when this object is deleted: `Delete` (default) or `Retain`.
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,
}

/// Where the filter policy looks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum FilterScope {
    /// Match message attributes (String, String.Array, Number, Binary). No nesting.
    #[default]
    MessageAttributes,
    /// Match the JSON body of the message; keys may nest.
    MessageBody,
}

/// An SNS filter policy written as YAML, in the policy language itself: each key maps to a list of
/// accepted values or conditions (`prefix`, `suffix`, `anything-but`, `numeric`, `exists`,
/// `equals-ignore-case`, `cidr`), keys are ANDed, values ORed, and `$or` holds alternative policies.
/// In `MessageBody` scope a key may hold a nested policy for a nested object. For example:
///
///     scope: MessageAttributes
///     policy:
///       event: [OrderPlaced]
///       total: [{numeric: [">=", 100]}]
///
/// The schema only requires a non-empty object; the operator's filter engine checks the policy itself
/// (shape, operators, limits) when the object is applied.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct SubscriptionFilter {
    /// Where the policy looks: `MessageAttributes` (default) or `MessageBody`.
    #[serde(default)]
    pub scope: FilterScope,
    /// The SNS filter policy written as YAML. Each key maps to a list of accepted values or conditions
    /// (`prefix`, `suffix`, `anything-but`, `numeric`, `exists`, `equals-ignore-case`, `cidr`); keys are
    /// ANDed, values ORed; `$or` holds a list of alternative policies; in `MessageBody` scope a key may hold a
    /// nested policy. At most 10 top-level keys here; the filter engine enforces SNS's own limits.
    /// Example: `{event: [OrderPlaced], total: [{numeric: [">=", 100]}]}`.
    #[schemars(schema_with = "policy_schema")]
    pub policy: serde_json::Map<String, serde_json::Value>,
}

/// The policy's grammar is recursive and its lists mix strings, numbers and condition objects, which a
/// structural CRD schema cannot express and CEL cannot type-check (CEL cannot iterate an object of unknown
/// fields). So the schema accepts any non-empty object of at most 10 keys, and the filter engine
/// (validating webhook, and the controller's `Ready=False` when no webhook is installed) checks the rest.
fn policy_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": true,
        "minProperties": 1,
        "maxProperties": 10
    })
}

/// Observed state of a Subscription.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SubscriptionStatus {
    /// Generation and conditions.
    #[serde(flatten)]
    pub common: CommonStatus,
    /// ARN of the SNS subscription.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arn: Option<String>,
    /// The filter policy as sent to SNS (or applied by the relay), in canonical JSON.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applied_filter_policy: Option<String>,
    /// For a Queue on azure: the SQS queue subscribed to the Topic, from which the Deployment
    /// `<name>-relay` sends the messages the filter admits on to the Storage Queue.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub relay_queue_url: Option<String>,
    /// For a Queue on azure: what the relay let through and filtered out, from its workers' metrics.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub relay: Option<RelayCounts>,
}

/// Messages the relay of a Subscription to a Queue on azure has handled, summed over its pods (each pod
/// counts from its start), read by the controller from the pods' `/metrics` at a bounded rate.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RelayCounts {
    /// Messages the filter admitted and the relay sent on to the Storage Queue.
    pub admitted: i64,
    /// Messages the filter did not match, dropped (SNS would not have delivered them either).
    pub dropped: i64,
    /// When the metrics were read (RFC 3339).
    pub observed_time: String,
}
