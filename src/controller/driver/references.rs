//! Validate step of the shared driver, pure: the cross-object rules of [`crate::admission`] (the same the
//! webhook applies), checked against the watch caches, so that without the webhook a broken rule is still
//! reported as `InvalidSpec` naming the field. Referenced objects that do not exist yet are left to each
//! kind's resolve step, which reports them as `DependencyNotReady`.

use super::{error::Error, status::Kind, status::describe, watch};
use crate::admission::{self, Reference, Referenced, Spec};

/// The referenced objects of `spec` that exist in `namespace`, from the watch caches.
pub fn referenced(spec: Spec<'_>, namespace: &str, stores: &watch::Stores) -> Referenced {
    let mut referenced = Referenced::default();
    for reference in admission::references(spec) {
        match reference {
            Reference::Topic(name) => {
                if let Some(topic) = watch::get(&stores.topics, namespace, &name) {
                    referenced.topics.insert(name, topic);
                }
            }
            Reference::Queue(name) => {
                if let Some(queue) = watch::get(&stores.queues, namespace, &name) {
                    referenced.queues.insert(name, queue);
                }
            }
            Reference::DeadLetter(name) => {
                if let Some(dead_letter) = watch::get(&stores.dead_letters, namespace, &name) {
                    referenced.dead_letters.insert(name, dead_letter);
                }
            }
            Reference::DeviceStream(name) => {
                if let Some(stream) = watch::get(&stores.device_streams, namespace, &name) {
                    referenced.device_streams.insert(name, stream);
                }
            }
        }
    }
    referenced
}

/// `InvalidSpec` naming every field of `object` (whose spec is `spec`) that breaks a cross-object rule.
pub fn validate<K: Kind>(object: &K, spec: Spec<'_>, stores: &watch::Stores) -> Result<(), Error> {
    let namespace = object.meta().namespace.clone().unwrap_or_default();
    let violations = admission::check(spec, &referenced(spec, &namespace, stores));
    if violations.is_empty() {
        return Ok(());
    }
    let message = violations
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ");
    Err(Error::InvalidSpec {
        object: describe(object),
        message,
    })
}

#[cfg(test)]
mod tests {
    use kube::runtime::watcher::Event;
    use serde_json::json;

    use super::*;
    use crate::api::{DeadLetter, Queue};

    fn in_shop<K: kube::Resource>(mut object: K) -> K {
        object.meta_mut().namespace = Some("shop".into());
        object
    }

    #[test]
    fn a_broken_rule_is_invalid_spec_naming_the_field_and_a_missing_reference_is_left_to_resolve() {
        let (stores, mut writers) = watch::stores();
        let queue = in_shop(Queue::new(
            "jobs",
            serde_json::from_value(json!({"aws": {"fifo": true}, "deadLetter": {"ref": {"name": "dlq"}}}))
                .unwrap(),
        ));
        assert!(
            validate(&queue, Spec::Queue(&queue.spec), &stores).is_ok(),
            "no DeadLetter yet"
        );

        let standard = in_shop(DeadLetter::new(
            "dlq",
            serde_json::from_value(json!({"aws": {}})).unwrap(),
        ));
        writers.dead_letters.apply_watcher_event(&Event::Apply(standard));
        let error = validate(&queue, Spec::Queue(&queue.spec), &stores).unwrap_err();
        assert_eq!(error.reason(), "InvalidSpec");
        assert!(
            error
                .to_string()
                .contains("Queue shop/jobs: spec.deadLetter.ref: DeadLetter dlq is a standard queue"),
            "{error}"
        );

        // Another namespace's objects are never looked at.
        let elsewhere = Queue::new("jobs", queue.spec.clone());
        assert!(validate(&elsewhere, Spec::Queue(&elsewhere.spec), &stores).is_ok());
    }
}
