use std::collections::BTreeMap;

use k8s_openapi::{
    api::networking::v1::NetworkPolicyPeer,
    apimachinery::pkg::{apis::meta::v1::LabelSelector, util::intstr::IntOrString},
};
use kube::api::ObjectMeta;

use super::*;
use crate::api::{
    consumer::{ConsumerSink, ConsumerSource, ConsumerSpec, Processor},
    http_source::{ApiKeys, HttpAuth, HttpTls, JwtAlgorithm, JwtAuth, TlsSecretRef},
};
use crate::controller::consumer::{
    render::{WorkerSettings, children, worker_config},
    resolved::Resolved,
};
use crate::controller::resources::workers::{
    METRICS_PORT, NAMESPACE_NAME_LABEL, WorkerOwner, network_policy,
};

fn order_ack(http: HttpSource) -> Consumer {
    let mut consumer = Consumer::new(
        "order-ack",
        ConsumerSpec {
            source: ConsumerSource {
                http: Some(http),
                ..ConsumerSource::default()
            },
            processor: Some(Processor::OrderAck),
            sink: Some(ConsumerSink::default()),
            ..ConsumerSpec::default()
        },
    );
    consumer.metadata = ObjectMeta {
        name: Some("order-ack".into()),
        namespace: Some("shop".into()),
        uid: Some("uid-1".into()),
        generation: Some(1),
        ..ObjectMeta::default()
    };
    consumer
}

fn jwt() -> JwtAuth {
    JwtAuth {
        issuer: "https://issuer.example".into(),
        audiences: vec!["orders".into()],
        principal_claim: "sub".into(),
        algorithms: vec![JwtAlgorithm::RS256, JwtAlgorithm::ES256],
        ..JwtAuth::default()
    }
}

fn resolved() -> Resolved {
    Resolved {
        topic_arn: Some("arn:aws:sns:us-east-1:1:orders".into()),
        table: Some("shop-orders".into()),
        ..Resolved::default()
    }
}

#[test]
fn api_keys_are_the_default_from_the_conventional_secret() {
    let consumer = order_ack(HttpSource::default());
    assert_eq!(api_key_secret(&consumer).as_deref(), Some("order-ack-api-keys"));
    let config = worker_config(&consumer, &resolved());
    config.validate().unwrap();
    let http = config.source.http.unwrap();
    assert!(!http.auth.anonymous);
    assert_eq!(http.auth.api_keys.unwrap().dir, PathBuf::from(API_KEYS_DIR));
    assert_eq!(
        http.limits,
        LimitsConfig::default(),
        "the Consumer's defaults are the worker's"
    );
    assert!(http.tls.is_none());

    let named = order_ack(HttpSource {
        auth: HttpAuth {
            api_keys: Some(ApiKeys {
                secret_name: Some("keys".into()),
            }),
            jwt: Some(jwt()),
            ..HttpAuth::default()
        },
        ..HttpSource::default()
    });
    assert_eq!(api_key_secret(&named).as_deref(), Some("keys"));
    let jwt_only = order_ack(HttpSource {
        auth: HttpAuth {
            jwt: Some(jwt()),
            ..HttpAuth::default()
        },
        ..HttpSource::default()
    });
    assert_eq!(api_key_secret(&jwt_only), None, "JWT alone: no key Secret");
    let http = worker_config(&jwt_only, &resolved()).source.http.unwrap();
    let rendered = http.auth.jwt.unwrap();
    assert_eq!(rendered.algorithms, ["RS256", "ES256"]);
    assert!(http.auth.api_keys.is_none());
}

#[test]
fn anonymous_access_is_explicit_and_flagged() {
    let open = order_ack(HttpSource {
        auth: HttpAuth {
            mode: AuthMode::None,
            ..HttpAuth::default()
        },
        ..HttpSource::default()
    });
    assert_eq!(api_key_secret(&open), None);
    assert!(
        worker_config(&open, &resolved())
            .source
            .http
            .unwrap()
            .auth
            .anonymous
    );
    let condition = authenticated(&open, None).unwrap();
    assert_eq!((condition.status, condition.reason), ("False", ANONYMOUS_ACCESS));

    let keys = order_ack(HttpSource::default());
    let missing = authenticated(&keys, Some(false)).unwrap();
    assert_eq!(
        (missing.status, missing.reason),
        ("False", API_KEY_SECRET_MISSING)
    );
    assert!(
        missing.message.contains("order-ack-api-keys"),
        "{}",
        missing.message
    );
    let present = authenticated(&keys, Some(true)).unwrap();
    assert_eq!(present.status, "True");
}

#[test]
fn the_secrets_are_mounted_read_only_the_key_secret_optional() {
    let consumer = order_ack(HttpSource {
        tls: Some(HttpTls {
            secret_ref: TlsSecretRef {
                name: "orders-tls".into(),
            },
        }),
        ..HttpSource::default()
    });
    let config = worker_config(&consumer, &resolved());
    assert_eq!(
        config
            .source
            .http
            .as_ref()
            .unwrap()
            .tls
            .as_ref()
            .unwrap()
            .cert_file,
        PathBuf::from("/var/run/tributary/tls/tls.crt")
    );
    let children = children(&consumer, &config, &WorkerSettings::default(), 1);
    let pod = children.deployment.spec.unwrap().template.spec.unwrap();
    let fs_group = pod.security_context.as_ref().and_then(|c| c.fs_group);
    assert_eq!(
        fs_group,
        Some(65_532),
        "the 0440 Secret files are the worker's group's"
    );
    let volumes = pod.volumes.unwrap();
    let keys = volumes.iter().find(|v| v.name == "api-keys").unwrap();
    let source = keys.secret.as_ref().unwrap();
    assert_eq!(source.secret_name.as_deref(), Some("order-ack-api-keys"));
    assert_eq!(source.optional, Some(true), "pods start before the Secret exists");
    let tls = volumes.iter().find(|v| v.name == "tls").unwrap();
    assert_eq!(tls.secret.as_ref().unwrap().optional, Some(false));
    let mounts = pod.containers[0].volume_mounts.clone().unwrap();
    for (name, path) in [("api-keys", API_KEYS_DIR), ("tls", TLS_DIR)] {
        let mount = mounts.iter().find(|m| m.name == name).unwrap();
        assert_eq!((mount.mount_path.as_str(), mount.read_only), (path, Some(true)));
    }
}

#[test]
fn the_network_policy_admits_the_allowed_peers_and_the_monitoring_namespace_only() {
    let settings = WorkerSettings {
        monitoring_namespace: Some("monitoring".into()),
        ..WorkerSettings::default()
    };
    let consumer = order_ack(HttpSource::default());
    let rendered = children(&consumer, &worker_config(&consumer, &resolved()), &settings, 1);
    let policy = rendered.network_policy;
    assert_eq!(policy.metadata.name.as_deref(), Some("order-ack-worker"));
    let owner = &policy.metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!((owner.kind.as_str(), owner.controller), ("Consumer", Some(true)));
    let spec = policy.spec.unwrap();
    assert_eq!(
        spec.pod_selector.unwrap().match_labels.unwrap()["tributary.dev/consumer"],
        "order-ack"
    );
    assert_eq!(spec.policy_types.unwrap(), ["Ingress"]);
    let rules = spec.ingress.unwrap();
    assert_eq!(rules.len(), 2);
    let order_rule = &rules[0];
    assert_eq!(
        order_rule.ports.as_ref().unwrap()[0].port,
        Some(IntOrString::Int(8080))
    );
    let peers = order_rule.from.as_ref().unwrap();
    assert_eq!(peers.len(), 1);
    assert_eq!(
        peers[0].pod_selector,
        Some(LabelSelector::default()),
        "same namespace"
    );
    assert!(peers[0].namespace_selector.is_none());
    let metrics_rule = &rules[1];
    assert_eq!(
        metrics_rule.ports.as_ref().unwrap()[0].port,
        Some(IntOrString::Int(9090))
    );
    let selector = metrics_rule.from.as_ref().unwrap()[0]
        .namespace_selector
        .clone()
        .unwrap();
    assert_eq!(selector.match_labels.unwrap()[NAMESPACE_NAME_LABEL], "monitoring");

    let ingress_ns = NetworkPolicyPeer {
        namespace_selector: Some(LabelSelector {
            match_labels: Some(BTreeMap::from([(
                NAMESPACE_NAME_LABEL.to_owned(),
                "ingress".to_owned(),
            )])),
            match_expressions: None,
        }),
        ..NetworkPolicyPeer::default()
    };
    let exposed = order_ack(HttpSource {
        allow_from: Some(vec![ingress_ns.clone()]),
        ..HttpSource::default()
    });
    let no_monitoring = WorkerSettings::default();
    let policy = children(&exposed, &worker_config(&exposed, &resolved()), &no_monitoring, 1).network_policy;
    let rules = policy.spec.unwrap().ingress.unwrap();
    assert_eq!(rules.len(), 1, "no monitoring namespace: metrics closed");
    assert_eq!(rules[0].from.as_ref().unwrap(), &vec![ingress_ns]);
}

#[test]
fn a_queue_consumers_workers_admit_the_monitoring_namespace_to_metrics_only() {
    let mut consumer = order_ack(HttpSource::default());
    consumer.spec.source.http = None;
    consumer.spec.source.queue_ref = Some(crate::api::common::ObjectRef { name: "q".to_owned() });
    let settings = WorkerSettings {
        monitoring_namespace: Some("monitoring".to_owned()),
        ..WorkerSettings::default()
    };
    let policy = network_policy(
        &WorkerOwner::of_consumer(&consumer),
        consumer.spec.source.http.as_ref(),
        settings.monitoring_namespace.as_deref(),
    );
    let rules = policy.spec.unwrap().ingress.unwrap();
    assert_eq!(rules.len(), 1, "metrics only");
    assert_eq!(
        rules[0].ports.as_ref().unwrap()[0].port,
        Some(IntOrString::Int(i32::from(METRICS_PORT)))
    );
    let closed = network_policy(&WorkerOwner::of_consumer(&consumer), None, None);
    assert_eq!(
        closed.spec.unwrap().ingress,
        Some(Vec::new()),
        "nothing may reach it"
    );
}

#[test]
fn queue_consumers_get_no_policy_and_no_condition() {
    let mut consumer = order_ack(HttpSource::default());
    consumer.spec.source.http = None;
    assert!(authenticated(&consumer, None).is_none());
    assert!(api_key_secret(&consumer).is_none());
}
