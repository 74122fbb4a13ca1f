//! Readiness from the Deployment's ready replicas, the status a reconcile writes (replicas, backlog,
//! conditions for the generation) with nothing secret in it, the HTTP source's `Authenticated`
//! condition, and deletion (owner references do it; the cloud is left alone).

use k8s_openapi::api::core::v1::Secret;
use kube::runtime::controller::Action;

use super::*;
use crate::controller::consumer::{http::ANONYMOUS_ACCESS, readiness};

/// An order-ack Consumer serving HTTP on 8080 with `auth`, its sink Topic `orders` in the store.
fn order_ack(h: &mut Harness, auth: Value) -> Consumer {
    let mut topic: Topic = object("orders", json!({"aws": {}}));
    topic.status = Some(TopicStatus {
        arn: Some("arn:aws:sns:us-east-1:000000000000:shop_orders".into()),
        ..TopicStatus::default()
    });
    h.store(topic);
    consumer(json!({
        "source": {"http": {"port": 8080, "auth": auth}},
        "processor": "order-ack",
        "sink": {"topicRef": {"name": "orders"}},
    }))
}

/// Runs the whole reconcile of `consumer` (apply, then status), the API server holding it.
async fn reconcile(h: &Harness, consumer: &Consumer) -> Result<Action, Error> {
    let stored = serde_json::to_value(consumer).unwrap();
    h.api.put(&path::<Consumer>(CONSUMER), stored);
    super::super::reconcile(Arc::new(consumer.clone()), h.ctx.clone()).await
}

/// The status last written for the Consumer.
fn written_status(h: &Harness) -> Value {
    let status = format!("{}/status", path::<Consumer>(CONSUMER));
    h.api.patched(&status).expect("a status was written")["status"].clone()
}

/// The condition `type_` of a written `status`.
fn condition<'a>(status: &'a Value, type_: &str) -> &'a Value {
    status["conditions"]
        .as_array()
        .and_then(|all| all.iter().find(|c| c["type"] == type_))
        .unwrap_or_else(|| panic!("no {type_} condition in {status}"))
}

fn at_generation(mut consumer: Consumer, generation: i64) -> Consumer {
    consumer.metadata.generation = Some(generation);
    consumer
}

#[tokio::test]
async fn ready_follows_the_deployments_ready_replicas() {
    let mut h = Harness::new();
    let url = jobs_queue(&mut h).await;
    let deployment = path::<Deployment>(WORKER);
    h.api.put_status(
        &deployment,
        json!({
            "readyReplicas": 0,
            "conditions": [{"type": "Available", "status": "False", "reason": "MinimumReplicasUnavailable",
                            "message": "Deployment does not have minimum availability."}],
        }),
    );
    let starting = apply(&h, &of_jobs()).await.unwrap();
    let not_ready = starting.not_ready.unwrap();
    assert_eq!(not_ready.reason, readiness::PROGRESSING);
    assert!(
        not_ready.message.starts_with(&format!(
            "0/1 workers ready, at least 1 needed (Deployment {WORKER})"
        )),
        "{}",
        not_ready.message
    );
    assert!(not_ready.message.contains("MinimumReplicasUnavailable"));
    assert_eq!(starting.status.replicas, Some(0));

    let messages = h.cloud.messages(&url);
    for n in 0..300 {
        messages.push(&format!("{n}"), Default::default(), Default::default());
    }
    h.api.put_status(&deployment, json!({"readyReplicas": 2}));
    let up = apply(&h, &of_jobs()).await.unwrap();
    assert!(up.not_ready.is_none());
    assert_eq!(up.status.replicas, Some(2));
    assert_eq!(up.message, format!("2/3 workers ready (Deployment {WORKER})"));
}

#[tokio::test]
async fn a_deployment_past_its_progress_deadline_is_degraded_with_its_reason() {
    let mut h = Harness::new();
    jobs_queue(&mut h).await;
    h.api.put_status(
        &path::<Deployment>(WORKER),
        json!({
            "replicas": 1,
            "conditions": [{"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded",
                            "message": "ReplicaSet notify-worker-5d9 has timed out progressing."}],
        }),
    );
    let stuck = apply(&h, &of_jobs()).await.unwrap();
    let not_ready = stuck.not_ready.unwrap();
    assert_eq!(not_ready.reason, readiness::DEGRADED);
    assert!(
        not_ready
            .message
            .contains("has timed out progressing. (ProgressDeadlineExceeded)"),
        "{}",
        not_ready.message
    );
}

#[tokio::test]
async fn a_reconcile_writes_replicas_backlog_and_conditions_for_the_generation() {
    let mut h = Harness::new();
    let url = jobs_queue(&mut h).await;
    let messages = h.cloud.messages(&url);
    for n in 0..120 {
        messages.push(&format!("{n}"), Default::default(), Default::default());
    }
    h.api
        .put_status(&path::<Deployment>(WORKER), json!({"readyReplicas": 2}));
    let consumer = at_generation(of_jobs(), 4);
    let action = reconcile(&h, &consumer).await.unwrap();
    assert_eq!(action, Action::requeue(h.ctx.config.scale_interval));

    let status = written_status(&h);
    assert_eq!(status["observedGeneration"], 4);
    assert_eq!(status["replicas"], 2);
    assert_eq!(status["backlog"], 120);
    assert_eq!(status["lastScale"]["to"], 2);
    let ready = condition(&status, "Ready");
    assert_eq!(
        (&ready["status"], &ready["reason"], &ready["observedGeneration"]),
        (&json!("True"), &json!("Available"), &json!(4))
    );
    assert_eq!(
        ready["message"],
        format!("2/2 workers ready (Deployment {WORKER})")
    );
    let synced = condition(&status, "Synced");
    assert_eq!(
        (&synced["status"], &synced["observedGeneration"]),
        (&json!("True"), &json!(4))
    );
    assert!(
        status["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["type"] != "Authenticated"),
        "a queue Consumer has no Authenticated condition"
    );
}

#[tokio::test]
async fn a_waiting_consumer_says_which_reference_in_its_conditions_without_an_event() {
    let h = Harness::new();
    let consumer = at_generation(of_jobs(), 2);
    let action = reconcile(&h, &consumer).await.unwrap();
    assert_eq!(
        action,
        Action::requeue(h.ctx.config.dependency_retry),
        "the first wait"
    );
    let status = written_status(&h);
    let ready = condition(&status, "Ready");
    assert_eq!(
        (&ready["status"], &ready["reason"], &ready["observedGeneration"]),
        (&json!("False"), &json!("DependencyNotReady"), &json!(2))
    );
    assert!(
        ready["message"]
            .as_str()
            .unwrap()
            .contains("spec.source.queueRef: Queue jobs"),
        "{ready}"
    );
    assert!(
        h.api.event_reasons().is_empty(),
        "waiting is not a failure to announce"
    );
    assert!(
        patched_paths(&h).iter().all(|p| p.ends_with("/status")),
        "no child"
    );
}

#[tokio::test]
async fn a_refused_consumer_gets_a_warning_event_and_its_reason_in_status() {
    let mut h = Harness::new();
    jobs_queue(&mut h).await;
    let custom =
        consumer(json!({"source": {"queueRef": {"name": "jobs"}}, "container": {"image": "evil.example/x"}}));
    let error = reconcile(&h, &custom).await.unwrap_err();
    assert_eq!(error.reason(), "Forbidden");
    let status = written_status(&h);
    assert_eq!(condition(&status, "Ready")["reason"], "Forbidden");
    assert_eq!(condition(&status, "Synced")["status"], "False");
    assert_eq!(h.api.event_reasons(), ["ReconcileFailed"]);
}

#[tokio::test]
async fn an_http_consumer_is_authenticated_once_its_api_key_secret_exists_and_never_reads_it() {
    let mut h = Harness::new();
    let ack = order_ack(&mut h, json!({}));
    h.api
        .put_status(&path::<Deployment>(WORKER), json!({"readyReplicas": 1}));
    let action = reconcile(&h, &ack).await.unwrap();
    assert_eq!(
        action,
        Action::requeue(h.ctx.config.resync),
        "no backlog to watch"
    );
    let missing = written_status(&h);
    let authenticated = condition(&missing, "Authenticated");
    assert_eq!(
        (&authenticated["status"], &authenticated["reason"]),
        (&json!("False"), &json!("ApiKeySecretMissing"))
    );
    assert!(
        authenticated["message"]
            .as_str()
            .unwrap()
            .contains("notify-api-keys"),
        "{authenticated}"
    );
    assert_eq!(condition(&missing, "Ready")["status"], "True", "the workers run");

    let hash = "sha256:3f5a9c-the-hash-of-a-key";
    h.api.put(
        &path::<Secret>("notify-api-keys"),
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "notify-api-keys"},
               "stringData": {"keys": hash}, "data": {"keys": "c2hhMjU2OjNmNWE5Yw=="}}),
    );
    reconcile(&h, &ack).await.unwrap();
    let present = written_status(&h);
    let authenticated = condition(&present, "Authenticated");
    assert_eq!(
        (&authenticated["status"], &authenticated["reason"]),
        (&json!("True"), &json!("Required"))
    );
    for sent in h.api.sent() {
        let body = sent.body.to_string();
        assert!(
            !body.contains("3f5a9c") && !body.contains("c2hhMjU2"),
            "{} {} carries the Secret's data",
            sent.method,
            sent.path
        );
    }
    let deployment: Deployment = child(&h).unwrap();
    let volumes = deployment.spec.unwrap().template.spec.unwrap().volumes.unwrap();
    let keys = volumes.iter().find(|v| v.name == "api-keys").unwrap();
    assert_eq!(
        keys.secret.as_ref().unwrap().secret_name.as_deref(),
        Some("notify-api-keys"),
        "mounted by name: the kubelet reads it, not the controller"
    );
}

#[tokio::test]
async fn anonymous_access_is_warned_once_per_generation() {
    let mut h = Harness::new();
    let open = order_ack(&mut h, json!({"mode": "none"}));
    reconcile(&h, &open).await.unwrap();
    let status = written_status(&h);
    assert_eq!(condition(&status, "Authenticated")["reason"], ANONYMOUS_ACCESS);
    assert_eq!(h.api.event_reasons(), [SCALED, ANONYMOUS_ACCESS]);

    // Once the condition is recorded for this generation, no new warning.
    let mut seen = open.clone();
    seen.status = Some(serde_json::from_value(status).unwrap());
    reconcile(&h, &seen).await.unwrap();
    assert_eq!(h.api.event_reasons(), [SCALED, ANONYMOUS_ACCESS]);

    // A new generation still anonymous: warned again.
    let next = at_generation(seen, 2);
    reconcile(&h, &next).await.unwrap();
    assert_eq!(
        h.api
            .event_reasons()
            .iter()
            .filter(|r| *r == ANONYMOUS_ACCESS)
            .count(),
        2
    );
}

#[tokio::test]
async fn deletion_leaves_the_children_to_the_garbage_collector_and_the_cloud_alone() {
    let mut h = Harness::new();
    jobs_queue(&mut h).await;
    reconcile(&h, &of_jobs()).await.unwrap();
    let deployment: Deployment = child(&h).unwrap();
    let owner = &deployment.metadata.owner_references.unwrap()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.uid.as_str(), owner.controller),
        ("Consumer", "uid-notify", Some(true)),
        "the garbage collector removes it with the Consumer"
    );
    assert!(of_jobs().metadata.finalizers.is_none(), "no finalizer to remove");
    let requests = h.api.sent().len();
    h.new_calls();

    let mut deleted = serde_json::to_value(of_jobs()).unwrap();
    deleted["metadata"]["deletionTimestamp"] = json!("2026-12-06T12:00:00Z");
    let deleted: Consumer = serde_json::from_value(deleted).unwrap();
    let action = reconcile(&h, &deleted).await.unwrap();
    assert_eq!(action, Action::await_change());
    assert!(
        h.new_calls().is_empty(),
        "no cloud cleanup: the Order table stays"
    );
    assert!(h.cloud.has_table(TABLE));
    assert_eq!(
        h.api.sent().len(),
        requests,
        "no request: nothing to delete by hand"
    );
}
