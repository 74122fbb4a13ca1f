//! The Queue's apply and cleanup decisions on `azure` against the Azure fake, through the Storage Queue
//! code shared with the DeadLetter (`resources/storage_queue.rs`): created with the ownership marks as
//! its metadata, adopted or refused when not ours, a missing mark set back, its message count into
//! status, the account key waited for by name, and deleted by deletionPolicy with ownership read again.

use std::collections::HashMap;

use serde_json::{Value, json};

use super::*;
use crate::{
    cloud::StorageQueueAdmin as _,
    controller::{
        driver::{
            ownership::Owner,
            testing::{CLUSTER, Harness, NAMESPACE, object, with_status},
        },
        resources::storage_queue::marks,
    },
};

const ACCOUNT: &str = "acct";
const KEY: &str = "YWNjb3VudC1rZXk=";
/// The Storage Queue of Queue `shop/jobs` (named in its spec), and its URL in the fake.
const NAME: &str = "shop-jobs";
const URL: &str = "https://acct.queue.fake/shop-jobs";

/// Queue `jobs` on azure with `extra` spec fields, its key Secret in the API and the fake taking only
/// that key.
fn queue(h: &Harness, extra: Value) -> Queue {
    h.secret("acct-key", "key", KEY);
    h.azure.set_account_key(ACCOUNT, KEY);
    let mut spec = json!({"provider": "azure", "azure": {"storageAccount": ACCOUNT, "name": NAME,
                          "accountKeySecretRef": {"name": "acct-key", "key": "key"}}});
    for (key, value) in extra.as_object().unwrap() {
        spec[key] = value.clone();
    }
    object("jobs", spec)
}

/// The marks of Queue `shop/jobs` of cluster `cluster`.
fn marks_of(cluster: &str) -> HashMap<String, String> {
    marks(&Owner {
        cluster,
        kind: "Queue",
        namespace: NAMESPACE,
        name: "jobs",
    })
}

/// A Storage Queue made outside Tributary with `metadata`.
fn existing(h: &Harness, metadata: &HashMap<String, String>) {
    let pairs: Vec<(&str, &str)> = metadata.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    h.azure.add_storage_queue(ACCOUNT, NAME, &pairs);
}

fn metadata(h: &Harness) -> HashMap<String, String> {
    h.azure
        .storage_queue_metadata(ACCOUNT, NAME)
        .expect("the queue exists")
}

fn calls(names: &[&str]) -> Vec<String> {
    names.iter().map(|n| format!("{n} {ACCOUNT}/{NAME}")).collect()
}

#[tokio::test]
async fn a_storage_queue_is_created_with_the_ownership_marks_as_metadata() {
    let h = Harness::new();
    let applied = h.apply(&queue(&h, json!({}))).await.unwrap();
    assert_eq!(
        h.new_azure_calls(),
        calls(&["GetQueueMetadata", "CreateQueue", "PeekMessages"])
    );
    assert_eq!(metadata(&h), marks_of(CLUSTER));
    assert_eq!(applied.status.observed.url.as_deref(), Some(URL));
    assert_eq!(applied.status.observed.depth, Some(0));
    assert_eq!(applied.message, format!("Storage Queue {URL}"));
    assert!(applied.not_ready.is_none());
    assert_eq!(h.api.event_reasons(), ["Created"]);
    assert!(h.new_calls().is_empty(), "nothing asked of AWS");
}

#[tokio::test]
async fn a_queue_of_ours_is_taken_as_it_is_and_its_stats_go_into_status() {
    let h = Harness::new();
    existing(&h, &marks_of(CLUSTER));
    h.azure.set_message_count(ACCOUNT, NAME, 7, Some(42));
    let applied = h.apply(&queue(&h, json!({}))).await.unwrap();
    assert_eq!(h.new_azure_calls(), calls(&["GetQueueMetadata", "PeekMessages"]));
    assert_eq!(applied.status.observed.depth, Some(7));
    assert_eq!(applied.status.observed.oldest_message_age_seconds, Some(42));
    assert!(h.api.event_reasons().is_empty(), "nothing to announce");
}

#[tokio::test]
async fn an_unmarked_queue_is_adopted_only_when_asked_and_allowed_keeping_its_metadata() {
    let h = Harness::new();
    let theirs = HashMap::from([("team".to_owned(), "shop".to_owned())]);
    existing(&h, &theirs);
    let refused = h.apply(&queue(&h, json!({}))).await.unwrap_err();
    assert_eq!(refused.reason(), "AlreadyExists");
    let adopt = queue(&h, json!({"adopt": true}));
    let forbidden = h.apply(&adopt).await.unwrap_err();
    assert_eq!(forbidden.reason(), "Forbidden", "{forbidden}");
    assert_eq!(metadata(&h), theirs, "untouched");
    assert!(
        !h.new_azure_calls()
            .iter()
            .any(|c| c.starts_with("SetQueueMetadata")),
        "no mark while refused"
    );

    h.allow_adoption();
    h.apply(&adopt).await.unwrap();
    let mut expected = marks_of(CLUSTER);
    expected.insert("team".into(), "shop".into());
    assert_eq!(metadata(&h), expected, "marked, and its own metadata kept");
    assert_eq!(h.api.event_reasons(), ["Adopted"]);
}

#[tokio::test]
async fn a_queue_of_another_cluster_is_refused_and_left_alone() {
    let h = Harness::new();
    existing(&h, &marks_of("other-cluster"));
    h.allow_adoption();
    let refused = h.apply(&queue(&h, json!({"adopt": true}))).await.unwrap_err();
    assert_eq!(refused.reason(), "OwnedByAnother");
    assert!(
        refused.condition_message().contains("of cluster other-cluster"),
        "{refused}"
    );
    assert_eq!(
        h.new_azure_calls(),
        calls(&["GetQueueMetadata"]),
        "no mark, no create"
    );
    assert_eq!(metadata(&h), marks_of("other-cluster"));
}

#[tokio::test]
async fn a_mark_removed_by_hand_is_set_back_keeping_the_rest() {
    let h = Harness::new();
    let mut drifted = marks_of(CLUSTER);
    drifted.remove("tributary_cluster");
    drifted.insert("note".into(), "kept".into());
    existing(&h, &drifted);
    h.apply(&queue(&h, json!({}))).await.unwrap();
    assert_eq!(
        h.new_azure_calls(),
        calls(&["GetQueueMetadata", "SetQueueMetadata", "PeekMessages"])
    );
    let mut expected = marks_of(CLUSTER);
    expected.insert("note".into(), "kept".into());
    assert_eq!(metadata(&h), expected);
    assert!(
        h.api.event_reasons().is_empty(),
        "ours all along: not an adoption"
    );
}

#[tokio::test]
async fn the_account_key_secret_is_waited_for_by_name_and_required() {
    let h = Harness::new();
    let q = queue(&h, json!({}));
    h.secret("acct-key", "other", KEY);
    let waiting = h.apply(&q).await.unwrap_err();
    assert_eq!(waiting.reason(), "DependencyNotReady");
    assert!(
        waiting
            .condition_message()
            .contains("spec.azure.accountKeySecretRef: Secret acct-key has no key key"),
        "{waiting}"
    );
    assert!(h.new_azure_calls().is_empty(), "nothing asked without the key");

    let keyless: Queue = object(
        "jobs",
        json!({"provider": "azure", "azure": {"storageAccount": ACCOUNT, "name": NAME}}),
    );
    let invalid = h.apply(&keyless).await.unwrap_err();
    assert_eq!(invalid.reason(), "InvalidSpec");
    assert!(
        invalid
            .condition_message()
            .contains("spec.azure.accountKeySecretRef is required"),
        "{invalid}"
    );

    h.secret("acct-key", "key", "not-the-key");
    let rejected = h.apply(&q).await.unwrap_err();
    assert_eq!(rejected.reason(), "CloudRejected", "the account refuses it");
    assert!(h.azure.storage_queue_metadata(ACCOUNT, NAME).is_none());
}

#[tokio::test]
async fn a_dead_letter_that_does_not_exist_yet_is_waited_for() {
    let h = Harness::new();
    let q = queue(&h, json!({"deadLetter": {"ref": {"name": "dlq"}}}));
    let waiting = h.apply(&q).await.unwrap_err();
    assert_eq!(waiting.reason(), "DependencyNotReady");
    assert!(
        waiting
            .condition_message()
            .contains("DeadLetter dlq does not exist"),
        "{waiting}"
    );
    assert!(h.new_azure_calls().is_empty());
}

#[tokio::test]
async fn deletion_keeps_a_retained_queue_and_deletes_only_what_is_still_ours() {
    let h = Harness::new();
    let retained = queue(&h, json!({"deletionPolicy": "Retain"}));
    let status = h.apply(&retained).await.unwrap().status;
    h.cleanup(&with_status(&retained, status.clone())).await.unwrap();
    assert!(h.azure.storage_queue_metadata(ACCOUNT, NAME).is_some(), "kept");
    assert_eq!(h.api.event_reasons(), ["Created", "Retained"]);

    // Marked as another cluster's since: kept, with a Warning.
    let deleted = with_status(&queue(&h, json!({})), status);
    let account = crate::cloud::azure::storage_queues::Account {
        name: ACCOUNT.into(),
        key: KEY.into(),
    };
    h.azure
        .set_metadata(&account, NAME, &marks_of("other-cluster"))
        .await
        .unwrap();
    h.cleanup(&deleted).await.unwrap();
    assert!(
        h.azure.storage_queue_metadata(ACCOUNT, NAME).is_some(),
        "not ours"
    );
    assert_eq!(
        h.api.event_reasons().last().map(String::as_str),
        Some("OwnershipLost")
    );

    h.azure
        .set_metadata(&account, NAME, &marks_of(CLUSTER))
        .await
        .unwrap();
    h.new_azure_calls();
    h.cleanup(&deleted).await.unwrap();
    assert_eq!(
        h.new_azure_calls(),
        calls(&["GetQueueMetadata", "DeleteQueue"]),
        "ownership read again right before the delete"
    );
    assert!(h.azure.storage_queue_metadata(ACCOUNT, NAME).is_none());
    assert_eq!(h.api.event_reasons().last().map(String::as_str), Some("Deleted"));
    // Gone already: nothing to do.
    h.cleanup(&deleted).await.unwrap();
    assert_eq!(h.new_azure_calls(), calls(&["GetQueueMetadata"]));
}

#[tokio::test]
async fn without_its_key_a_deleted_queue_is_left_in_place_not_stuck() {
    let h = Harness::new();
    let q = queue(&h, json!({}));
    let status = h.apply(&q).await.unwrap().status;
    h.secret("acct-key", "other", KEY);
    h.new_azure_calls();
    h.cleanup(&with_status(&q, status)).await.unwrap();
    assert!(h.new_azure_calls().is_empty());
    assert!(h.azure.storage_queue_metadata(ACCOUNT, NAME).is_some());
    assert_eq!(h.api.event_reasons().last().map(String::as_str), Some("Retained"));
}
