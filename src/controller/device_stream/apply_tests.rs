//! The DeviceStream's apply and cleanup decisions against the Azure fake: the namespace (created on
//! request, waited for while it provisions), the hub (created with the ownership mark, adopted or refused,
//! corrected, never shrunk), the consumer groups, the connection Secret, and delete or keep.

use base64::Engine as _;
use serde_json::{Value, json};

use super::*;
use crate::{
    cloud::{
        ErrorKind,
        fake::{FakeAws, FakeAzure, FakeHub},
    },
    controller::{
        Config,
        driver::{
            error::Class,
            ownership::desired_tags,
            status,
            testing::{CLUSTER, Harness, NAMESPACE, object},
        },
    },
};

/// The controller's default subscription and resource group.
const SUBSCRIPTION: &str = "00000000-0000-0000-0000-0000000000aa";
const GROUP: &str = "plant";
/// The Event Hubs namespace of the streams here.
const HUBS: &str = "plant-hubs";
/// The hub of DeviceStream `shop/telemetry`, as calls record it.
const HUB: &str = "plant-hubs/shop_telemetry";

/// A context over `azure` whose controller has Resource Manager access, with the defaults above.
fn harness(azure: &FakeAzure) -> Harness {
    let defaults = EventHubsConfig {
        subscription: Some(SUBSCRIPTION.to_owned()),
        resource_group: Some(GROUP.to_owned()),
        ..EventHubsConfig::default()
    };
    let config = Config {
        event_hubs: Some(defaults),
        ..Config::default()
    };
    Harness::with_clouds(FakeAws::default(), azure.clone(), config)
}

/// Where the hub of `shop/telemetry` lives.
fn at() -> HubAddress {
    HubAddress {
        subscription: SUBSCRIPTION.to_owned(),
        resource_group: GROUP.to_owned(),
        namespace: HUBS.to_owned(),
        hub: "shop_telemetry".to_owned(),
    }
}

/// DeviceStream `shop/telemetry` in namespace `plant-hubs` with `azure` over the defaults and `lifecycle`
/// (deletionPolicy, adopt) beside it.
fn stream(azure: Value, lifecycle: Value) -> DeviceStream {
    let mut spec = json!({"azure": {"namespace": HUBS}});
    for (key, value) in azure.as_object().into_iter().flatten() {
        spec["azure"][key] = value.clone();
    }
    for (key, value) in lifecycle.as_object().into_iter().flatten() {
        spec[key] = value.clone();
    }
    object("telemetry", spec)
}

fn owner(name: &str) -> Owner<'_> {
    Owner {
        cluster: CLUSTER,
        kind: "DeviceStream",
        namespace: NAMESPACE,
        name,
    }
}

/// The ownership mark of `shop/telemetry`.
fn ours() -> String {
    mark(&owner("telemetry"))
}

/// The (type, status, reason) of the conditions a failure writes.
fn failed_conditions(error: &Error) -> Vec<(&'static str, &'static str, &'static str)> {
    let conditions = status::failed(error);
    conditions.iter().map(|c| (c.type_, c.status, c.reason)).collect()
}

fn without_partitions(calls: &[String]) -> bool {
    !calls.iter().any(|c| c.starts_with("PutHub"))
}

#[tokio::test]
async fn a_missing_namespace_is_created_on_request_in_its_location() {
    let azure = FakeAzure::default();
    let h = harness(&azure);
    let asked = stream(json!({"createNamespace": true}), json!({}));
    let refused = h.apply(&asked).await.unwrap_err();
    assert_eq!(refused.reason(), "InvalidSpec");
    assert!(
        refused.condition_message().contains("spec.azure.location"),
        "{refused}"
    );
    assert_eq!(h.new_azure_calls(), [format!("GetNamespace {HUBS}")]);

    let located = stream(
        json!({"createNamespace": true, "location": "westeurope"}),
        json!({}),
    );
    let applied = h.apply(&located).await.unwrap();
    assert_eq!(
        h.new_azure_calls(),
        [
            format!("GetNamespace {HUBS}"),
            format!("CreateNamespace {HUBS}"),
            format!("GetHub {HUB}"),
            format!("PutHub {HUB}"),
            format!("GetHub {HUB}"),
            format!("ListConsumerGroups {HUB}"),
            format!("ListKeys {HUB}"),
        ]
    );
    let (location, tags) = azure.namespace(&at()).unwrap();
    assert_eq!(location, "westeurope");
    assert_eq!(tags, desired_tags(&owner("telemetry"), &Tags::new()));
    assert_eq!(h.api.event_reasons(), ["Created", "Created"], "namespace, hub");
    assert!(applied.not_ready.is_none());
}

#[tokio::test]
async fn a_namespace_still_provisioning_is_not_ready_and_looked_at_again_soon() {
    let azure = FakeAzure::default();
    azure.add_namespace(&at(), "Activating");
    azure.activate_after(&at(), 1);
    let h = harness(&azure);
    let stream = stream(json!({}), json!({}));
    let waiting = h.apply(&stream).await.unwrap_err();
    assert_eq!(
        waiting.class(),
        Class::Dependency,
        "retried at the dependency pace"
    );
    assert!(waiting.condition_message().contains("Activating"), "{waiting}");
    assert_eq!(
        failed_conditions(&waiting),
        [
            ("Ready", "False", "DependencyNotReady"),
            ("Synced", "False", "DependencyNotReady")
        ]
    );
    assert!(
        without_partitions(&h.new_azure_calls()),
        "no hub before the namespace"
    );

    let applied = h.apply(&stream).await.unwrap();
    assert_eq!(applied.status.partitions, Some(4));
    assert!(h.new_azure_calls().contains(&format!("PutHub {HUB}")));
}

#[tokio::test]
async fn a_namespace_created_but_still_activating_is_waited_for() {
    let azure = FakeAzure::default();
    azure.slow_puts(1);
    let h = harness(&azure);
    let located = stream(
        json!({"createNamespace": true, "location": "westeurope"}),
        json!({}),
    );
    let waiting = h.apply(&located).await.unwrap_err();
    assert_eq!(waiting.reason(), "DependencyNotReady");
    assert!(waiting.condition_message().contains("is Activating"), "{waiting}");
    assert!(without_partitions(&h.new_azure_calls()));
    assert_eq!(
        h.api.event_reasons(),
        ["Created"],
        "the creation is announced once"
    );

    // Still activating at the next look (one read, as scripted): waited for, not created again.
    let still = h.apply(&located).await.unwrap_err();
    assert_eq!(still.class(), Class::Dependency);
    assert_eq!(h.new_azure_calls(), [format!("GetNamespace {HUBS}")]);
    h.apply(&located).await.unwrap();
    let calls = h.new_azure_calls();
    assert!(!calls.contains(&format!("CreateNamespace {HUBS}")), "{calls:?}");
    assert!(calls.contains(&format!("PutHub {HUB}")), "{calls:?}");
    assert_eq!(h.api.event_reasons(), ["Created", "Created"], "namespace, hub");
}

#[tokio::test]
async fn a_missing_namespace_without_create_namespace_waits_naming_the_field() {
    let azure = FakeAzure::default();
    let h = harness(&azure);
    let waiting = h.apply(&stream(json!({}), json!({}))).await.unwrap_err();
    assert_eq!(waiting.class(), Class::Dependency);
    let message = waiting.condition_message();
    assert!(message.contains("spec.azure.createNamespace"), "{message}");
    assert!(message.contains(GROUP), "names where it looked: {message}");
    assert_eq!(h.new_azure_calls(), [format!("GetNamespace {HUBS}")]);
    assert!(azure.namespace(&at()).is_none(), "nothing created");
}

#[tokio::test]
async fn a_new_hub_is_created_with_the_ownership_mark_and_its_settings() {
    let azure = FakeAzure::default();
    azure.add_namespace(&at(), "Succeeded");
    let h = harness(&azure);
    let stream = stream(json!({"partitions": 8, "retentionHours": 48}), json!({}));
    let applied = h.apply(&stream).await.unwrap();
    let hub = azure.hub_at(&at()).unwrap();
    assert_eq!((hub.partitions, hub.retention_hours), (8, Some(48)));
    assert_eq!(hub.mark, Some(ours()));
    assert_eq!(applied.status.partitions, Some(8));
    assert_eq!(applied.status.hub_name.as_deref(), Some("shop_telemetry"));
    assert_eq!(
        applied.status.kafka_endpoint.as_deref(),
        Some("plant-hubs.servicebus.windows.net:9093")
    );
    let conditions = status::applied(&applied.message, applied.not_ready.as_ref());
    assert_eq!((conditions[0].type_, conditions[0].status), ("Ready", "True"));
    assert_eq!(h.api.event_reasons(), ["Created"]);
}

#[tokio::test]
async fn a_hub_made_outside_is_refused_unless_adopted_where_the_policy_allows() {
    let azure = FakeAzure::default();
    azure.add_hub(&at(), FakeHub::new(4, 24, None));
    let h = harness(&azure);
    let refused = h.apply(&stream(json!({}), json!({}))).await.unwrap_err();
    assert_eq!(refused.reason(), "AlreadyExists");
    assert!(refused.condition_message().contains("spec.adopt"), "{refused}");
    assert!(without_partitions(&h.new_azure_calls()));

    let adopt = stream(json!({}), json!({"adopt": true}));
    let forbidden = h.apply(&adopt).await.unwrap_err();
    assert_eq!(forbidden.reason(), "Forbidden", "{forbidden}");
    assert_eq!(
        h.new_azure_calls(),
        Vec::<String>::new(),
        "refused before any call"
    );
    assert_eq!(azure.hub_at(&at()).unwrap().mark, None, "untouched");

    h.allow_adoption();
    h.apply(&adopt).await.unwrap();
    assert_eq!(azure.hub_at(&at()).unwrap().mark, Some(ours()), "marked as ours");
    assert!(h.new_azure_calls().contains(&format!("PutHub {HUB}")));
    assert_eq!(h.api.event_reasons(), ["Adopted"]);
}

#[tokio::test]
async fn a_hub_of_another_object_is_refused_even_with_adopt() {
    let azure = FakeAzure::default();
    let theirs = mark(&owner("other"));
    azure.add_hub(&at(), FakeHub::new(4, 24, Some(&theirs)));
    let h = harness(&azure);
    h.allow_adoption();
    let refused = h
        .apply(&stream(json!({}), json!({"adopt": true})))
        .await
        .unwrap_err();
    assert_eq!(refused.reason(), "OwnedByAnother");
    assert!(refused.condition_message().contains("shop/other"), "{refused}");
    assert!(without_partitions(&h.new_azure_calls()));
    assert_eq!(azure.hub_at(&at()).unwrap().mark, Some(theirs));
}

#[tokio::test]
async fn partitions_never_shrink_the_spec_must_ask_for_at_least_as_many() {
    let azure = FakeAzure::default();
    azure.add_hub(&at(), FakeHub::new(8, 24, Some(&ours())));
    let h = harness(&azure);
    let refused = h
        .apply(&stream(json!({"partitions": 4}), json!({})))
        .await
        .unwrap_err();
    assert_eq!(refused.class(), Class::Permanent, "only a spec change fixes it");
    assert_eq!(refused.reason(), "InvalidSpec");
    let message = refused.condition_message();
    assert!(message.starts_with("spec.azure.partitions:"), "{message}");
    assert!(message.contains("at least 8"), "{message}");
    assert!(without_partitions(&h.new_azure_calls()));
    assert_eq!(azure.hub_at(&at()).unwrap().partitions, 8);
}

#[tokio::test]
async fn grown_partitions_and_changed_retention_are_written_as_drift_once() {
    let azure = FakeAzure::default();
    azure.add_hub(&at(), FakeHub::new(4, 24, Some(&ours())));
    let h = harness(&azure);
    let stream = stream(json!({"partitions": 6, "retentionHours": 72}), json!({}));
    let applied = h.apply(&stream).await.unwrap();
    let hub = azure.hub_at(&at()).unwrap();
    assert_eq!((hub.partitions, hub.retention_hours), (6, Some(72)));
    assert_eq!(applied.status.partitions, Some(6));
    assert_eq!(h.api.event_reasons(), ["DriftCorrected"]);

    h.new_azure_calls();
    h.apply(&stream).await.unwrap();
    assert!(
        without_partitions(&h.new_azure_calls()),
        "in sync: nothing written"
    );
    assert_eq!(h.api.event_reasons(), ["DriftCorrected"], "nothing new announced");
}

#[tokio::test]
async fn consumer_groups_are_created_once_and_others_left_alone() {
    let azure = FakeAzure::default();
    let mut hub = FakeHub::new(4, 24, Some(&ours()));
    hub.consumer_groups.insert("made-outside".to_owned());
    azure.add_hub(&at(), hub);
    let h = harness(&azure);
    let stream = stream(json!({"consumerGroups": ["readers", "archive"]}), json!({}));
    h.apply(&stream).await.unwrap();
    let created: Vec<String> = h
        .new_azure_calls()
        .into_iter()
        .filter(|c| c.starts_with("CreateConsumerGroup"))
        .collect();
    assert_eq!(
        created,
        [
            format!("CreateConsumerGroup {HUB}/readers"),
            format!("CreateConsumerGroup {HUB}/archive")
        ]
    );
    assert_eq!(h.api.event_reasons(), ["Created", "Created"]);

    h.apply(&stream).await.unwrap();
    let again = h.new_azure_calls();
    assert!(
        !again.iter().any(|c| c.starts_with("CreateConsumerGroup")),
        "{again:?}"
    );
    let groups = azure.hub_at(&at()).unwrap().consumer_groups;
    assert!(
        groups.contains("made-outside") && groups.contains("readers"),
        "{groups:?}"
    );
}

#[tokio::test]
async fn the_connection_string_goes_into_the_secret_never_into_status_or_events() {
    let azure = FakeAzure::default();
    azure.add_namespace(&at(), "Succeeded");
    let h = harness(&azure);
    let applied = h.apply(&stream(json!({}), json!({}))).await.unwrap();
    let secret_path = format!("/api/v1/namespaces/{NAMESPACE}/secrets/telemetry-eventhub");
    let sent = h.api.sent();
    let applied_secret = sent
        .iter()
        .find(|s| s.method == http::Method::PATCH && s.path == secret_path)
        .expect("the Secret is applied");
    let data = &applied_secret.body["data"];
    let decode = |key: &str| {
        let encoded = data[key].as_str().unwrap_or_default();
        let bytes = base64::engine::general_purpose::STANDARD.decode(encoded).unwrap();
        String::from_utf8(bytes).unwrap()
    };
    let connection = decode("connectionString");
    assert!(connection.contains("SharedAccessKey="), "{connection}");
    assert!(connection.contains("EntityPath=shop_telemetry"), "{connection}");
    assert_eq!(decode("topic"), "shop_telemetry");
    assert_eq!(
        applied.status.connection_secret_name.as_deref(),
        Some("telemetry-eventhub")
    );
    let status = serde_json::to_string(&applied.status).unwrap();
    assert!(!status.contains("SharedAccessKey"), "{status}");
    let mut elsewhere = sent.iter().filter(|s| s.path != secret_path);
    assert!(elsewhere.all(|s| !s.body.to_string().contains("SharedAccessKey")));
}

#[tokio::test]
async fn delete_removes_only_our_hub_reading_its_mark_again() {
    let azure = FakeAzure::default();
    azure.add_namespace(&at(), "Succeeded");
    let h = harness(&azure);
    let stream = stream(json!({}), json!({}));
    h.apply(&stream).await.unwrap();
    // Marked by another object since: kept.
    let theirs = mark(&owner("other"));
    azure.add_hub(&at(), FakeHub::new(4, 24, Some(&theirs)));
    h.new_azure_calls();
    h.cleanup(&stream).await.unwrap();
    assert_eq!(h.new_azure_calls(), [format!("GetHub {HUB}")]);
    assert!(azure.hub_at(&at()).is_some(), "not ours any more: kept");
    assert_eq!(
        h.api.event_reasons().last().map(String::as_str),
        Some("OwnershipLost")
    );

    azure.add_hub(&at(), FakeHub::new(4, 24, Some(&ours())));
    azure.slow_deletes(1);
    let running = h.cleanup(&stream).await.unwrap_err();
    assert_eq!(running.class(), Class::Transient, "looked at again: {running}");
    h.cleanup(&stream).await.unwrap();
    assert!(azure.hub_at(&at()).is_none());
    assert_eq!(h.api.event_reasons().last().map(String::as_str), Some("Deleted"));
    h.cleanup(&stream).await.unwrap();
    assert_eq!(
        h.new_azure_calls().last(),
        Some(&format!("GetHub {HUB}")),
        "gone: nothing to delete"
    );
}

#[tokio::test]
async fn retain_keeps_the_hub_without_a_call() {
    let azure = FakeAzure::default();
    azure.add_hub(&at(), FakeHub::new(4, 24, Some(&ours())));
    let h = harness(&azure);
    h.cleanup(&stream(json!({}), json!({"deletionPolicy": "Retain"})))
        .await
        .unwrap();
    assert!(azure.calls().is_empty());
    assert!(azure.hub_at(&at()).is_some());
    assert_eq!(h.api.event_reasons(), ["Retained"]);
}

#[tokio::test]
async fn without_resource_manager_access_the_stream_waits_and_deletes_nothing() {
    let azure = FakeAzure::default();
    azure.add_hub(&at(), FakeHub::new(4, 24, Some(&ours())));
    let h = Harness::with_azure(azure.clone());
    let stream = stream(
        json!({"subscriptionId": SUBSCRIPTION, "resourceGroup": GROUP}),
        json!({}),
    );
    let waiting = h.apply(&stream).await.unwrap_err();
    assert_eq!(waiting.reason(), "DependencyNotReady");
    assert!(
        waiting
            .condition_message()
            .contains("no Azure Resource Manager access"),
        "{waiting}"
    );
    h.cleanup(&stream).await.unwrap();
    assert!(azure.calls().is_empty(), "{:?}", azure.calls());
    assert!(azure.hub_at(&at()).is_some());
    assert_eq!(h.api.event_reasons(), ["Retained"], "a Warning says it is left");
}

#[tokio::test]
async fn a_failed_write_is_transient_and_announces_nothing() {
    let azure = FakeAzure::default();
    azure.add_namespace(&at(), "Succeeded");
    azure.fail_next("PutHub", ErrorKind::Transient);
    let h = harness(&azure);
    let failed = h.apply(&stream(json!({}), json!({}))).await.unwrap_err();
    assert_eq!(failed.class(), Class::Transient);
    assert_eq!(failed.reason(), "CloudUnavailable");
    assert!(h.api.event_reasons().is_empty());
    assert!(azure.hub_at(&at()).is_none());
}
