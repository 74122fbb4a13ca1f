//! A Consumer with `spec.container`: the pod's shape (the user's container as a native sidecar beside
//! Tributary's worker), and the Consumers the validate step refuses.

use k8s_openapi::api::core::v1::{Container, PodSpec};
use kube::api::ObjectMeta;
use serde_json::json;

use super::*;
use crate::controller::{
    consumer::{
        resolved::{Resolved, StreamSource},
        validate::validate,
    },
    resources::workers::{METRICS_PORT, PORT_ENV, SIDECAR_NAME},
};

fn consumer(spec: serde_json::Value) -> Consumer {
    let mut consumer = Consumer::new("audit", serde_json::from_value(spec).unwrap());
    consumer.metadata = ObjectMeta {
        name: Some("audit".into()),
        namespace: Some("shop".into()),
        uid: Some("uid-1".into()),
        ..ObjectMeta::default()
    };
    consumer
}

/// A Consumer of Queue `orders` running the audit image, with a literal and a Secret variable.
fn audit() -> Consumer {
    consumer(json!({
        "source": {"queueRef": {"name": "orders"}},
        "container": {
            "image": "registry.example.com/shop/audit:1.0",
            "args": ["--verbose"],
            "env": [
                {"name": "AUDIT_LEVEL", "value": "full"},
                {"name": "AUDIT_TOKEN", "secretKeyRef": {"name": "audit", "key": "token"}}
            ],
            "resources": {"limits": {"memory": "128Mi"}},
            "port": 8081,
            "readinessPath": "/ready"
        },
        "delivery": {"timeoutSeconds": 10, "concurrency": 4}
    }))
}

fn resolved() -> Resolved {
    Resolved {
        queue: Some(("http://sqs/q".into(), 60)),
        dead_letter_url: Some("http://sqs/dlq".into()),
        secret_env: vec![("AWS_SECRET_ACCESS_KEY".into(), "aws".into(), "secret".into())],
        ..Resolved::default()
    }
}

fn pod_of(consumer: &Consumer) -> PodSpec {
    let settings = WorkerSettings {
        image: "tributary:test".into(),
        env_secret: Some("aws-credentials".to_owned()),
        ..WorkerSettings::default()
    };
    let resolved = resolved();
    children(consumer, &worker_config(consumer, &resolved), &settings, 1)
        .with_secret_env(&resolved.secret_env)
        .deployment
        .spec
        .unwrap()
        .template
        .spec
        .unwrap()
}

fn sidecar(pod: &PodSpec) -> Container {
    let sidecars = pod.init_containers.clone().expect("an init container");
    assert_eq!(sidecars.len(), 1);
    sidecars[0].clone()
}

#[test]
fn the_users_container_is_a_restricted_native_sidecar_probed_on_its_readiness_path() {
    let pod = pod_of(&audit());
    let sidecar = sidecar(&pod);
    assert_eq!(sidecar.name, SIDECAR_NAME);
    assert_eq!(
        sidecar.image.as_deref(),
        Some("registry.example.com/shop/audit:1.0")
    );
    assert_eq!(
        sidecar.restart_policy.as_deref(),
        Some("Always"),
        "a native sidecar"
    );
    assert_eq!(sidecar.args, Some(vec!["--verbose".to_owned()]));
    assert_eq!(sidecar.ports.as_ref().unwrap()[0].container_port, 8081);
    for probe in [&sidecar.startup_probe, &sidecar.readiness_probe] {
        let get = probe.as_ref().unwrap().http_get.as_ref().unwrap();
        assert_eq!(get.path.as_deref(), Some("/ready"));
        assert_eq!(serde_json::to_value(&get.port).unwrap(), json!(8081));
    }
    let security = sidecar.security_context.as_ref().unwrap();
    assert_eq!(security.run_as_non_root, Some(true));
    assert_eq!(security.allow_privilege_escalation, Some(false));
    assert_eq!(
        security.capabilities.as_ref().unwrap().drop.as_deref(),
        Some(&["ALL".to_owned()][..])
    );
    assert_eq!(security.seccomp_profile.as_ref().unwrap().type_, "RuntimeDefault");
    let limits = sidecar.resources.as_ref().unwrap().limits.as_ref().unwrap();
    assert_eq!(limits["memory"].0, "128Mi");
    assert_eq!(pod.automount_service_account_token, Some(false), "no API token");

    // The worker is Tributary's, ready through /readyz (which waits for the sidecar), the only container.
    assert_eq!(pod.containers.len(), 1);
    let worker = &pod.containers[0];
    assert_eq!(worker.image.as_deref(), Some("tributary:test"));
    let readiness = worker
        .readiness_probe
        .as_ref()
        .unwrap()
        .http_get
        .as_ref()
        .unwrap();
    assert_eq!(readiness.path.as_deref(), Some("/readyz"));
}

#[test]
fn the_sidecar_gets_its_own_environment_and_none_of_the_workers_credentials() {
    let container = sidecar(&pod_of(&audit()));
    let env = serde_json::to_value(container.env.unwrap()).unwrap();
    assert_eq!(
        env,
        json!([
            {"name": "AUDIT_LEVEL", "value": "full"},
            {"name": "AUDIT_TOKEN", "valueFrom": {"secretKeyRef": {"name": "audit", "key": "token", "optional": false}}},
            {"name": PORT_ENV, "value": "8081"}
        ])
    );
    assert!(
        container.env_from.is_none(),
        "the workers' env Secret stays the worker's"
    );

    // A PORT of the user's own wins.
    let mut own = audit();
    own.spec.container.as_mut().unwrap().env =
        vec![serde_json::from_value(json!({"name": "PORT", "value": "9000"})).unwrap()];
    let env = sidecar(&pod_of(&own)).env.unwrap();
    assert_eq!(env.len(), 1);
    assert_eq!(env[0].value.as_deref(), Some("9000"));
}

#[test]
fn a_built_in_processor_has_no_sidecar() {
    let built_in = consumer(json!({"source": {"queueRef": {"name": "orders"}}, "processor": "inventory"}));
    assert!(pod_of(&built_in).init_containers.is_none());
}

#[test]
fn the_api_names_the_workers_own_ports() {
    assert!(
        crate::api::consumer::WORKER_PORTS.contains(&i32::from(METRICS_PORT)),
        "the CEL rule on spec.container.port and the validate step refuse the metrics port"
    );
}

#[test]
fn the_validate_step_refuses_what_the_cel_rules_refuse_naming_the_field() {
    let refused = |spec: serde_json::Value, field: &str| {
        let error = validate(&consumer(spec)).unwrap_err();
        assert_eq!(error.reason(), "InvalidSpec");
        let message = error.condition_message();
        assert!(message.contains(field), "{field}: {message}");
    };
    let queue = json!({"queueRef": {"name": "orders"}});
    // Stored before spec.image was replaced: pruned to neither.
    refused(json!({"source": queue}), "spec.container");
    refused(
        json!({"source": queue, "processor": "inventory", "container": {"image": "a"}}),
        "set exactly one",
    );
    refused(
        json!({"source": queue, "processor": "inventory", "delivery": {}}),
        "spec.delivery",
    );
    refused(
        json!({"source": {"http": {}}, "container": {"image": "a"}}),
        "spec.source.http",
    );
    refused(
        json!({"source": queue, "container": {"image": "a", "port": 9090}}),
        "spec.container.port 9090",
    );
    validate(&audit()).unwrap();
}

#[test]
fn worker_yaml_delivers_to_the_sidecar_with_the_consumers_delivery_settings() {
    let config = worker_config(&audit(), &resolved());
    config.validate().unwrap();
    assert_eq!(config.processor, ProcessorKind::Container);
    assert!(config.sink.table.is_none(), "no Order table for a container");
    let delivery = config.delivery.as_ref().unwrap();
    assert_eq!(delivery.url, "http://127.0.0.1:8081/");
    assert_eq!(delivery.ready_url.as_deref(), Some("http://127.0.0.1:8081/ready"));
    assert_eq!((delivery.timeout_seconds, delivery.concurrency), (10, 4));
    assert_eq!(delivery.type_attribute, "type", "the default");
    assert_eq!(
        delivery.source,
        "/apis/tributary.dev/v1alpha1/namespaces/shop/queues/orders"
    );
    let text = serde_yaml_ng::to_string(&config).unwrap();
    assert!(
        text.contains("processor: container\n") && text.contains("readyUrl: http://127.0.0.1:8081/ready\n"),
        "{text}"
    );

    // No spec.delivery: the defaults; a DeviceStream is the source, and a path of the user's own.
    let stream = consumer(json!({
        "source": {"deviceStreamRef": {"name": "telemetry"}},
        "container": {"image": "a", "path": "/events"}
    }));
    let resolved = Resolved {
        stream: Some(StreamSource {
            bootstrap: "hub:9093".into(),
            topic: "shop_telemetry".into(),
            group: "$Default".into(),
            secret: "telemetry-connection".into(),
            partitions: 4,
        }),
        ..Resolved::default()
    };
    let config = worker_config(&stream, &resolved);
    config.validate().unwrap();
    let delivery = config.delivery.unwrap();
    assert_eq!(delivery.url, "http://127.0.0.1:8080/events");
    assert_eq!(
        delivery.ready_url.as_deref(),
        Some("http://127.0.0.1:8080/healthz")
    );
    assert_eq!((delivery.timeout_seconds, delivery.concurrency), (30, 8));
    assert_eq!(delivery.type_attribute, "type");
    assert_eq!(
        delivery.source,
        "/apis/tributary.dev/v1alpha1/namespaces/shop/devicestreams/telemetry"
    );
}

#[test]
fn a_built_in_processor_has_no_delivery_block() {
    let built_in = consumer(json!({"source": {"queueRef": {"name": "orders"}}, "processor": "inventory"}));
    let config = worker_config(&built_in, &resolved());
    assert!(config.delivery.is_none());
}
