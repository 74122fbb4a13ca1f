//! A Consumer with `spec.container`: what the controller applies for it (the `container` worker
//! configuration and the pod with the user's container as a native sidecar, no Order table), and the
//! Consumer stored before `spec.image` was replaced, which is refused naming the field with nothing made.

use super::*;

/// The audit container of Queue `jobs`, allowed by the namespace's policy.
fn audit(h: &mut Harness) -> Consumer {
    h.policy(json!({"images": ["registry.example.com/*"]}));
    consumer(json!({
        "source": {"queueRef": {"name": "jobs"}},
        "container": {"image": "registry.example.com/audit:1", "port": 8081},
        "delivery": {"concurrency": 2}
    }))
}

#[tokio::test]
async fn a_container_consumer_gets_the_container_worker_and_its_sidecar_and_no_table() {
    let mut h = Harness::new();
    let url = jobs_queue(&mut h).await;
    let consumer = audit(&mut h);
    apply(&h, &consumer).await.unwrap();
    let config_map: ConfigMap = child(&h).unwrap();
    let config: crate::worker::config::WorkerConfig =
        serde_yaml_ng::from_str(&config_map.data.unwrap()["worker.yaml"]).unwrap();
    config.validate().unwrap();
    assert_eq!(config.processor, crate::worker::config::ProcessorKind::Container);
    assert_eq!(config.source.sqs.unwrap().queue_url, url);
    let delivery = config.delivery.unwrap();
    assert_eq!(delivery.url, "http://127.0.0.1:8081/");
    assert_eq!(delivery.concurrency, 2);
    assert!(config.sink.table.is_none());
    assert!(
        !h.new_calls().iter().any(|c| c.starts_with("CreateTable")),
        "no Order table"
    );
    let deployment: Deployment = child(&h).unwrap();
    let pod = deployment.spec.unwrap().template.spec.unwrap();
    let sidecar = &pod.init_containers.unwrap()[0];
    assert_eq!(sidecar.image.as_deref(), Some("registry.example.com/audit:1"));
    assert_eq!(sidecar.restart_policy.as_deref(), Some("Always"));
    assert_eq!(pod.containers.len(), 1, "the worker");
}

#[tokio::test]
async fn a_consumer_stored_with_the_removed_image_field_is_an_invalid_spec_and_nothing_is_made() {
    let mut h = Harness::new();
    jobs_queue(&mut h).await;
    // What structural pruning leaves of `{source, image}`: a source alone.
    let pruned = consumer(json!({"source": {"queueRef": {"name": "jobs"}}}));
    let error = apply(&h, &pruned).await.unwrap_err();
    assert_eq!(error.reason(), "InvalidSpec");
    let message = error.condition_message();
    assert!(
        message.contains("spec.processor / spec.container") && message.contains("spec.image was replaced"),
        "{message}"
    );
    assert!(h.new_calls().is_empty(), "no cloud call");
    assert!(patched_paths(&h).is_empty(), "nothing applied");
}
