//! The webhook's decisions, pure: whether a request needs a review at all, and the review of an object's
//! spec against the objects it references (fetched by the caller).

use kube::core::{
    DynamicObject,
    admission::{AdmissionRequest, AdmissionResponse, Operation},
};
use serde::de::DeserializeOwned;

use crate::{
    admission::{self, Referenced, Spec},
    api::{
        consumer::ConsumerSpec, dead_letter::DeadLetterSpec, device_stream::DeviceStreamSpec,
        queue::QueueSpec, subscription::SubscriptionSpec, topic::TopicSpec,
    },
    filter::{Policy, Scope},
};

/// The spec of a reviewed object, owned.
#[derive(Clone, Debug)]
pub enum OwnedSpec {
    /// A Topic.
    Topic(TopicSpec),
    /// A Queue.
    Queue(QueueSpec),
    /// A Subscription.
    Subscription(SubscriptionSpec),
    /// A Consumer.
    Consumer(Box<ConsumerSpec>),
    /// A DeviceStream.
    DeviceStream(DeviceStreamSpec),
    /// A DeadLetter.
    DeadLetter(DeadLetterSpec),
}

impl OwnedSpec {
    /// The spec of `object` of kind `kind`, or why it cannot be read.
    pub fn parse(kind: &str, object: &DynamicObject) -> Result<Self, String> {
        let spec = object.data.get("spec").cloned().unwrap_or_default();
        fn read<T: DeserializeOwned>(spec: serde_json::Value) -> Result<T, String> {
            serde_json::from_value(spec).map_err(|e| format!("spec: {e}"))
        }
        Ok(match kind {
            "Topic" => Self::Topic(read(spec)?),
            "Queue" => Self::Queue(read(spec)?),
            "Subscription" => Self::Subscription(read(spec)?),
            "Consumer" => Self::Consumer(Box::new(read(spec)?)),
            "DeviceStream" => Self::DeviceStream(read(spec)?),
            "DeadLetter" => Self::DeadLetter(read(spec)?),
            other => {
                return Err(format!(
                    "kind {other} is not a Tributary kind this webhook reviews"
                ));
            }
        })
    }

    /// The spec as the admission rules see it.
    pub fn as_spec(&self) -> Spec<'_> {
        match self {
            Self::Topic(s) => Spec::Topic(s),
            Self::Queue(s) => Spec::Queue(s),
            Self::Subscription(s) => Spec::Subscription(s),
            Self::Consumer(s) => Spec::Consumer(s),
            Self::DeviceStream(s) => Spec::DeviceStream(s),
            Self::DeadLetter(s) => Spec::DeadLetter(s),
        }
    }
}

/// Whether the request needs a review: creates, and updates that change the spec. Never a deletion, an
/// object being deleted (`deletionTimestamp` set: removing its finalizer must always pass), or an update
/// of metadata or status only. The chart's `matchConditions` say the same, so the API server does not even
/// call the webhook for those; this is the same rule again, in case it does.
pub fn needs_review(request: &AdmissionRequest<DynamicObject>) -> bool {
    let Some(object) = &request.object else {
        return false;
    };
    if object.metadata.deletion_timestamp.is_some() {
        return false;
    }
    match request.operation {
        Operation::Create => true,
        Operation::Update => request
            .old_object
            .as_ref()
            .is_none_or(|old| old.data.get("spec") != object.data.get("spec")),
        Operation::Delete | Operation::Connect => false,
    }
}

/// The filter of a Subscription, checked with the filter engine (shape, operators and SNS's limits: keys,
/// value combinations, size, number range), naming `spec.filter.policy` and the key.
pub fn check_filter(data: &serde_json::Value) -> Result<(), String> {
    let Some(filter) = data.get("spec").and_then(|s| s.get("filter")) else {
        return Ok(());
    };
    let scope = match filter.get("scope").and_then(|s| s.as_str()) {
        None => Scope::MessageAttributes,
        Some(s) => s.parse().map_err(|e| format!("spec.filter.scope: {e}"))?,
    };
    let policy = filter
        .get("policy")
        .ok_or("spec.filter.policy: required when spec.filter is set")?;
    Policy::parse(policy, scope).map(|_| ()).map_err(|e| {
        let at = if e.path.is_empty() {
            "spec.filter.policy".to_owned()
        } else {
            format!("spec.filter.policy.{}", e.path)
        };
        format!("{at}: {} (scope {scope})", e.rule)
    })
}

/// The decision for a request that [`needs_review`]: allowed, or denied with every broken rule as
/// `<field>: <rule>`. `referenced` holds the referenced objects that exist; `warnings` are passed on.
pub fn decide(
    request: &AdmissionRequest<DynamicObject>,
    referenced: &Referenced,
    warnings: Vec<String>,
) -> AdmissionResponse {
    let mut response = AdmissionResponse::from(request);
    let Some(object) = &request.object else {
        return response;
    };
    let spec = match OwnedSpec::parse(&request.kind.kind, object) {
        Ok(spec) => spec,
        Err(message) => return response.deny(message),
    };
    let mut warnings = warnings;
    warnings.extend(admission::warnings(spec.as_spec(), referenced));
    if !warnings.is_empty() {
        response.warnings = Some(warnings);
    }
    let mut problems = Vec::new();
    if matches!(spec, OwnedSpec::Subscription(_))
        && let Err(message) = check_filter(&object.data)
    {
        problems.push(message);
    }
    problems.extend(
        admission::check(spec.as_spec(), referenced)
            .iter()
            .map(ToString::to_string),
    );
    if problems.is_empty() {
        response
    } else {
        response.deny(problems.join("; "))
    }
}
