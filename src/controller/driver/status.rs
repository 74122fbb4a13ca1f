//! The status step, shared by every kind: the [`Kind`] trait tells the driver where a kind keeps its
//! status, and [`write`] applies it with one server-side-apply patch of the status subresource. Conditions
//! are merged with [`super::conditions::merge`], so an unchanged outcome writes an identical status and
//! an unchanged status is not written at all.

use std::fmt::Debug;

use k8s_openapi::{NamespaceResourceScope, jiff::Timestamp};
use kube::{
    Api, Client, Resource, ResourceExt,
    api::{Patch, PatchParams},
};
use serde::{Serialize, de::DeserializeOwned};
use serde_json::json;

use super::{
    conditions::{self, Desired, types},
    error::{Error, reasons},
};
use crate::api::{
    Consumer, DeadLetter, DeviceStream, Queue, Subscription, Topic,
    common::{CommonStatus, Provider},
    consumer::ConsumerStatus,
    dead_letter::DeadLetterStatus,
    device_stream::DeviceStreamStatus,
    queue::QueueStatus,
    subscription::SubscriptionStatus,
    topic::TopicStatus,
};
use crate::controller::FIELD_MANAGER;

/// A Tributary kind reconciled by these controllers: where its status lives and which provider it uses.
pub trait Kind:
    Resource<DynamicType = (), Scope = NamespaceResourceScope>
    + Clone
    + Debug
    + DeserializeOwned
    + Serialize
    + Send
    + Sync
    + 'static
{
    /// The kind's name, for messages, metrics and the status patch.
    const KIND: &'static str;
    /// The status type.
    type Status: Clone + Debug + Default + PartialEq + Serialize + Send + Sync;
    /// The current status, if any.
    fn status(&self) -> Option<&Self::Status>;
    /// The conditions and generation part of a status.
    fn common(status: &Self::Status) -> &CommonStatus;
    /// The same, mutable.
    fn common_mut(status: &mut Self::Status) -> &mut CommonStatus;
    /// The cloud provider of the object.
    fn provider(&self) -> Provider;
}

macro_rules! kind {
    ($kind:ty, $status:ty, $name:literal, |$object:ident| $provider:expr) => {
        impl Kind for $kind {
            const KIND: &'static str = $name;
            type Status = $status;
            fn status(&self) -> Option<&Self::Status> {
                self.status.as_ref()
            }
            fn common(status: &Self::Status) -> &CommonStatus {
                &status.common
            }
            fn common_mut(status: &mut Self::Status) -> &mut CommonStatus {
                &mut status.common
            }
            fn provider(&self) -> Provider {
                let $object = self;
                $provider
            }
        }
    };
}

kind!(Topic, TopicStatus, "Topic", |topic| topic.spec.provider);
kind!(Queue, QueueStatus, "Queue", |queue| queue.spec.provider);
kind!(DeadLetter, DeadLetterStatus, "DeadLetter", |dead_letter| {
    dead_letter.spec.provider
});
// A Subscription has no provider of its own: it is SNS to SQS, so AWS.
kind!(
    Subscription,
    SubscriptionStatus,
    "Subscription",
    |_subscription| Provider::Aws
);

kind!(DeviceStream, DeviceStreamStatus, "DeviceStream", |stream| {
    stream.spec.provider
});

// A Consumer runs pods; its cloud is that of its source (AWS until the Azure provider lands).
kind!(Consumer, ConsumerStatus, "Consumer", |_consumer| Provider::Aws);

/// `Kind namespace/name`, the context every error and log line carries.
pub fn describe<K: Kind>(object: &K) -> String {
    format!(
        "{} {}/{}",
        K::KIND,
        object.namespace().unwrap_or_default(),
        object.name_any()
    )
}

/// The current conditions of `object`.
pub fn current_conditions<K: Kind>(
    object: &K,
) -> &[k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition] {
    object
        .status()
        .map(|status| K::common(status).conditions.as_slice())
        .unwrap_or_default()
}

/// Whether the last reconcile of this generation found the cloud in sync (so a difference now is drift
/// made outside Kubernetes, not a spec change).
pub fn was_synced<K: Kind>(object: &K) -> bool {
    current_conditions(object).iter().any(|c| {
        c.type_ == types::SYNCED && c.status == "True" && c.observed_generation == object.meta().generation
    })
}

/// `status` with conditions set to `desired` (merged over the current ones) and the generation stamped.
pub fn with_conditions<K: Kind>(object: &K, mut status: K::Status, desired: &[Desired]) -> K::Status {
    let generation = object.meta().generation;
    let merged = conditions::merge(current_conditions(object), desired, generation, Timestamp::now());
    let common = K::common_mut(&mut status);
    common.conditions = merged;
    common.observed_generation = generation;
    status
}

/// Ready=True `Available` and Synced=True `InSync`.
pub fn ready(message: impl Into<String>) -> Vec<Desired> {
    vec![
        Desired {
            type_: types::READY,
            status: "True",
            reason: reasons::AVAILABLE,
            message: message.into(),
        },
        Desired {
            type_: types::SYNCED,
            status: "True",
            reason: reasons::IN_SYNC,
            message: "the cloud resource matches the spec".to_owned(),
        },
    ]
}

/// Why an object whose cloud resources match its spec cannot be used yet (Ready=False, Synced=True): a
/// Subscription whose queue policy does not let its Topic send yet, a Consumer without its minimum of
/// ready workers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NotReady {
    /// CamelCase reason.
    pub reason: &'static str,
    /// What is awaited, naming the object that must change.
    pub message: String,
}

/// The conditions of a successful apply: [`ready`], or Ready=False with `not_ready`'s reason while
/// Synced=True (the cloud matches the spec; something it depends on is not there yet).
pub fn applied(message: impl Into<String>, not_ready: Option<&NotReady>) -> Vec<Desired> {
    let mut desired = ready(message);
    if let Some(not_ready) = not_ready {
        desired[0].status = "False";
        desired[0].reason = not_ready.reason;
        desired[0].message.clone_from(&not_ready.message);
    }
    desired
}

/// Whether a not-ready outcome of `object` may go unwritten: the object has never been given a Ready
/// condition and was created less than `quiet` ago. Objects applied together wait for each other for a
/// few seconds (a Subscription for its Topic, Queue and queue policy); writing each wait would double the
/// status writes of a bulk apply, and an object without conditions reads as not ready anyway.
pub fn unannounced<K: Kind>(object: &K, quiet: std::time::Duration) -> bool {
    let never_reported = !current_conditions(object).iter().any(|c| c.type_ == types::READY);
    let young = object.meta().creation_timestamp.as_ref().is_some_and(|created| {
        let age = Timestamp::now().duration_since(created.0);
        age.as_secs_f64() < quiet.as_secs_f64()
    });
    never_reported && young
}

/// Ready=False and Synced=False with the error's reason and message.
pub fn failed(error: &Error) -> Vec<Desired> {
    let message = error.condition_message();
    vec![
        Desired {
            type_: types::READY,
            status: "False",
            reason: error.reason(),
            message: message.clone(),
        },
        Desired {
            type_: types::SYNCED,
            status: "False",
            reason: error.reason(),
            message,
        },
    ]
}

/// Ready=Unknown and Synced=Unknown `ProviderNotImplemented`.
pub fn provider_not_implemented(provider: Provider) -> Vec<Desired> {
    let message = format!("no controller for provider {provider:?} yet; the object is not reconciled");
    [types::READY, types::SYNCED]
        .into_iter()
        .map(|type_| Desired {
            type_,
            status: "Unknown",
            reason: reasons::PROVIDER_NOT_IMPLEMENTED,
            message: message.clone(),
        })
        .collect()
}

/// The status last written per object (by UID), as a hash that leaves out the conditions' transition
/// times. A reconcile woken by a related object may run on a copy the watch has not updated with the
/// status written a moment ago; writing the same status again would be a request for nothing.
#[derive(Debug, Default)]
pub struct Written {
    last: std::sync::Mutex<std::collections::HashMap<String, u64>>,
}

impl Written {
    fn lock(&self) -> std::sync::MutexGuard<'_, std::collections::HashMap<String, u64>> {
        self.last
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The hash of `status` without `lastTransitionTime`s.
    fn print<S: Serialize>(status: &S) -> u64 {
        let mut value = serde_json::to_value(status).unwrap_or_default();
        if let Some(conditions) = value.get_mut("conditions").and_then(|c| c.as_array_mut()) {
            for condition in conditions {
                if let Some(condition) = condition.as_object_mut() {
                    condition.remove("lastTransitionTime");
                }
            }
        }
        super::verified::fingerprint(&value.to_string())
    }

    /// Forgets `uid` (the object is gone).
    pub fn forget(&self, uid: &str) {
        self.lock().remove(uid);
    }
}

/// Writes `status` with one server-side-apply patch (forced: the controller owns status), unless it is
/// what the object already has, or what this controller last wrote for it (see [`Written`]).
pub async fn write<K: Kind>(
    client: &Client,
    written: &Written,
    object: &K,
    status: &K::Status,
) -> Result<(), Error> {
    if object.status() == Some(status) {
        return Ok(());
    }
    let uid = object.uid().unwrap_or_default();
    let print = Written::print(status);
    if written.lock().get(&uid) == Some(&print) {
        return Ok(());
    }
    let name = object.name_any();
    let namespace = object.namespace().unwrap_or_default();
    let api: Api<K> = Api::namespaced(client.clone(), &namespace);
    let patch = json!({
        "apiVersion": K::api_version(&()),
        "kind": K::KIND,
        "status": status,
    });
    api.patch_status(
        &name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&patch),
    )
    .await
    .map_err(|source| Error::kube(&describe(object), "writing status", source))?;
    written.lock().insert(uid, print);
    Ok(())
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    use super::*;
    use crate::cloud::{self, ErrorKind, Operation};

    #[test]
    fn failure_conditions_carry_the_reason_on_ready_and_synced() {
        let error = Error::cloud(
            "Queue ns/q",
            cloud::Error::Service {
                operation: Operation::new("sqs", "SetQueueAttributes", "url"),
                kind: ErrorKind::Permanent,
                code: "InvalidAttributeValue".into(),
                message: "bad".into(),
                status: Some(400),
            },
        );
        let desired = failed(&error);
        assert_eq!(desired.len(), 2);
        assert!(
            desired
                .iter()
                .all(|d| d.status == "False" && d.reason == "CloudRejected")
        );
        assert!(desired[0].message.contains("SetQueueAttributes"));
    }

    #[test]
    fn only_a_young_object_never_reported_may_wait_unannounced() {
        let quiet = std::time::Duration::from_secs(30);
        let mut queue = Queue::new("q", Default::default());
        queue.metadata.creation_timestamp = Some(Time(Timestamp::now()));
        assert!(unannounced(&queue, quiet));
        assert!(
            !unannounced(&queue, std::time::Duration::ZERO),
            "zero writes every wait"
        );
        let old = Timestamp::now() - jiff_span(60);
        queue.metadata.creation_timestamp = Some(Time(old));
        assert!(!unannounced(&queue, quiet), "older than the quiet period");
        queue.metadata.creation_timestamp = Some(Time(Timestamp::now()));
        queue.status = Some(with_conditions(&queue, QueueStatus::default(), &ready("ok")));
        assert!(
            !unannounced(&queue, quiet),
            "once reported, every change is written"
        );
    }

    fn jiff_span(seconds: i64) -> k8s_openapi::jiff::SignedDuration {
        k8s_openapi::jiff::SignedDuration::from_secs(seconds)
    }

    #[test]
    fn a_written_status_is_recognised_whatever_its_transition_times() {
        let queue = Queue::new("q", Default::default());
        let first = with_conditions(&queue, QueueStatus::default(), &ready("ok"));
        let mut later = first.clone();
        later.common.conditions[0].last_transition_time = Time(Timestamp::now() + jiff_span(5));
        assert_eq!(Written::print(&first), Written::print(&later));
        let other = with_conditions(&queue, QueueStatus::default(), &ready("other"));
        assert_ne!(Written::print(&first), Written::print(&other));
    }

    #[test]
    fn an_unchanged_status_is_stamped_identically() {
        let mut queue = Queue::new("q", Default::default());
        queue.metadata.generation = Some(3);
        let first = with_conditions(&queue, QueueStatus::default(), &ready("ok"));
        queue.status = Some(first.clone());
        let again = with_conditions(&queue, QueueStatus::default(), &ready("ok"));
        assert_eq!(first, again);
        assert_eq!(again.common.observed_generation, Some(3));
        assert!(was_synced(&queue));
        queue.metadata.generation = Some(4);
        assert!(
            !was_synced(&queue),
            "a new generation is a spec change, not drift"
        );
    }
}
