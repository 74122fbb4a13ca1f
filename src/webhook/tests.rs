use std::sync::Arc;

use kube::core::{
    DynamicObject,
    admission::{AdmissionRequest, AdmissionReview},
};
use serde_json::{Value, json};

use super::{
    check_filter,
    review::{decide, needs_review},
};
use crate::{admission::Referenced, api::DeadLetter};

#[test]
fn a_valid_filter_or_none_is_allowed() {
    assert!(check_filter(&json!({"spec": {"topicRef": {"name": "t"}}})).is_ok());
    assert!(check_filter(&json!({"spec": {"filter": {"policy": {"event": ["OrderPlaced"]}}}})).is_ok());
}

#[test]
fn an_invalid_filter_is_denied_naming_the_key() {
    let err = check_filter(&json!({"spec": {"filter": {"scope": "MessageAttributes", "policy": {"customer": {"tier": ["gold"]}}}}}))
        .expect_err("nested keys need body scope");
    assert!(
        err.starts_with("spec.filter.policy.customer: nested keys"),
        "{err}"
    );
    let err =
        check_filter(&json!({"spec": {"filter": {"policy": {"total": [{"numeric": ["<", 5, ">", 1]}]}}}}))
            .unwrap_err();
    assert!(
        err.contains("spec.filter.policy.total") && err.contains("lower bound"),
        "{err}"
    );
}

/// An AdmissionRequest as the API server sends it.
fn request(
    operation: &str,
    kind: &str,
    object: Value,
    old: Option<Value>,
) -> AdmissionRequest<DynamicObject> {
    let review: AdmissionReview<DynamicObject> = serde_json::from_value(json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "0001",
            "kind": {"group": "tributary.dev", "version": "v1alpha1", "kind": kind},
            "resource": {"group": "tributary.dev", "version": "v1alpha1", "resource": format!("{}s", kind.to_lowercase())},
            "operation": operation,
            "namespace": "shop",
            "name": "x",
            "userInfo": {},
            "object": object,
            "oldObject": old,
            "dryRun": false
        }
    }))
    .expect("an AdmissionReview");
    review.try_into().expect("a request")
}

fn queue(spec: Value, metadata: Value) -> Value {
    json!({"apiVersion": "tributary.dev/v1alpha1", "kind": "Queue", "metadata": metadata, "spec": spec})
}

#[test]
fn creates_and_spec_changes_are_reviewed_deletions_and_metadata_updates_never() {
    let meta = json!({"name": "q", "namespace": "shop"});
    let spec = json!({"aws": {"fifo": true}});
    assert!(needs_review(&request(
        "CREATE",
        "Queue",
        queue(spec.clone(), meta.clone()),
        None
    )));
    let relabelled = json!({"name": "q", "namespace": "shop", "labels": {"team": "a"}});
    assert!(!needs_review(&request(
        "UPDATE",
        "Queue",
        queue(spec.clone(), relabelled),
        Some(queue(spec.clone(), meta.clone()))
    )));
    let changed = json!({"aws": {"fifo": true, "delaySeconds": 5}});
    assert!(needs_review(&request(
        "UPDATE",
        "Queue",
        queue(changed.clone(), meta.clone()),
        Some(queue(spec.clone(), meta.clone()))
    )));
    let deleting = json!({"name": "q", "namespace": "shop", "deletionTimestamp": "2026-01-01T00:00:00Z", "finalizers": []});
    assert!(!needs_review(&request(
        "UPDATE",
        "Queue",
        queue(changed, deleting),
        Some(queue(spec.clone(), meta.clone()))
    )));
    assert!(!needs_review(&request(
        "DELETE",
        "Queue",
        Value::Null,
        Some(queue(spec, meta))
    )));
}

fn dead_letter(fifo: bool) -> Arc<DeadLetter> {
    let spec = serde_json::from_value(json!({"provider": "aws", "aws": {"fifo": fifo}})).unwrap();
    Arc::new(DeadLetter::new("dlq", spec))
}

#[test]
fn a_fifo_queue_with_a_standard_dead_letter_is_denied_naming_the_field() {
    let object = queue(
        json!({"aws": {"fifo": true}, "deadLetter": {"ref": {"name": "dlq"}}}),
        json!({"name": "q", "namespace": "shop"}),
    );
    let create = request("CREATE", "Queue", object, None);
    let mut referenced = Referenced::default();
    assert!(
        decide(&create, &referenced, Vec::new()).allowed,
        "a missing reference is allowed"
    );
    referenced.dead_letters.insert("dlq".into(), dead_letter(false));
    let response = decide(&create, &referenced, Vec::new());
    assert!(!response.allowed);
    assert!(
        response
            .result
            .message
            .starts_with("spec.deadLetter.ref: DeadLetter dlq is a standard queue"),
        "{}",
        response.result.message
    );
    referenced.dead_letters.insert("dlq".into(), dead_letter(true));
    assert!(decide(&create, &referenced, Vec::new()).allowed);
}

#[test]
fn a_subscription_is_denied_for_its_filter_and_its_references_at_once() {
    let object = json!({
        "apiVersion": "tributary.dev/v1alpha1", "kind": "Subscription", "metadata": {"name": "s"},
        "spec": {"topicRef": {"name": "t"}, "queueRef": {"name": "q"}, "filter": {"policy": {"a": [1], "b": [1], "c": [1], "d": [1], "e": [1], "f": [1]}}}
    });
    let mut referenced = Referenced::default();
    referenced.topics.insert(
        "t".into(),
        Arc::new(crate::api::Topic::new(
            "t",
            serde_json::from_value(json!({"aws": {}})).unwrap(),
        )),
    );
    referenced.queues.insert(
        "q".into(),
        Arc::new(crate::api::Queue::new(
            "q",
            serde_json::from_value(json!({"aws": {"fifo": true}})).unwrap(),
        )),
    );
    let response = decide(
        &request("CREATE", "Subscription", object, None),
        &referenced,
        vec!["w".into()],
    );
    assert!(!response.allowed);
    let message = &response.result.message;
    assert!(message.contains("spec.filter.policy: 6 keys"), "{message}");
    assert!(message.contains("spec.queueRef: Queue q is FIFO"), "{message}");
    assert_eq!(response.warnings, Some(vec!["w".to_owned()]));
}

#[test]
fn an_unknown_kind_is_denied() {
    let response = decide(
        &request(
            "CREATE",
            "Widget",
            json!({"metadata": {"name": "w"}, "spec": {}}),
            None,
        ),
        &Referenced::default(),
        Vec::new(),
    );
    assert!(!response.allowed);
    assert!(response.result.message.contains("not a Tributary kind"));
}
