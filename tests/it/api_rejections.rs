//! Invalid objects are rejected by the real API server (OpenAPI schema and CEL rules of the generated
//! CRDs), each with a message that names the offending field; updates to immutable fields are refused with
//! a message saying so.
#![allow(clippy::unwrap_used)]

mod cloud_rules;

use crate::support as common;

use kube::api::{DynamicObject, PostParams};

/// (what is wrong, kind, spec as YAML, text the API server's message must contain).
const INVALID: &[(&str, &str, &str, &str)] = &[
    // Topic
    (
        "topic on azure",
        "Topic",
        "provider: azure\naws: {}",
        "spec.provider: a Topic is an SNS topic",
    ),
    (
        "topic without aws block",
        "Topic",
        "provider: aws",
        "spec.aws is required",
    ),
    (
        "fifo topic without .fifo name",
        "Topic",
        "aws: {name: orders, fifo: true}",
        "spec.aws.name must end with '.fifo'",
    ),
    (
        "dedup without fifo",
        "Topic",
        "aws: {contentBasedDeduplication: true}",
        "spec.aws.contentBasedDeduplication requires spec.aws.fifo",
    ),
    (
        "topic name with bad characters",
        "Topic",
        "aws: {name: 'orders!'}",
        "spec.aws.name",
    ),
    // Queue
    (
        "aws queue with azure block",
        "Queue",
        "provider: aws\naws: {}\nazure: {storageAccount: acct}",
        "exactly one provider block",
    ),
    (
        "azure queue without azure block",
        "Queue",
        "provider: azure\naws: {}",
        "exactly one provider block",
    ),
    (
        "visibility above 12 hours",
        "Queue",
        "aws: {visibilityTimeoutSeconds: 50000}",
        "spec.aws.visibilityTimeoutSeconds",
    ),
    (
        "retention below a minute",
        "Queue",
        "aws: {messageRetentionSeconds: 30}",
        "spec.aws.messageRetentionSeconds",
    ),
    (
        "retention above 14 days",
        "Queue",
        "aws: {messageRetentionSeconds: 1209601}",
        "spec.aws.messageRetentionSeconds",
    ),
    (
        "delay above 15 minutes",
        "Queue",
        "aws: {delaySeconds: 901}",
        "spec.aws.delaySeconds",
    ),
    (
        "long poll above 20 s",
        "Queue",
        "aws: {receiveWaitTimeSeconds: 21}",
        "spec.aws.receiveWaitTimeSeconds",
    ),
    (
        "message size above 1 MiB",
        "Queue",
        "aws: {maximumMessageSizeBytes: 2000000}",
        "spec.aws.maximumMessageSizeBytes",
    ),
    (
        "maxReceiveCount 0",
        "Queue",
        "aws: {}\ndeadLetter: {ref: {name: dlq}, maxReceiveCount: 0}",
        "spec.deadLetter.maxReceiveCount",
    ),
    (
        "maxReceiveCount 1001",
        "Queue",
        "aws: {}\ndeadLetter: {ref: {name: dlq}, maxReceiveCount: 1001}",
        "spec.deadLetter.maxReceiveCount",
    ),
    (
        "dead letter without ref",
        "Queue",
        "aws: {}\ndeadLetter: {maxReceiveCount: 3}",
        "spec.deadLetter.ref",
    ),
    (
        "azure queue name with capitals",
        "Queue",
        "provider: azure\nazure: {storageAccount: acct, name: Bad_Name}",
        "spec.azure.name",
    ),
    (
        "azure message ttl 0",
        "Queue",
        "provider: azure\nazure: {storageAccount: acct, messageTtlSeconds: 0}",
        "spec.azure.messageTtlSeconds",
    ),
    (
        "fifo queue without .fifo name",
        "Queue",
        "aws: {name: jobs, fifo: true}",
        "spec.aws.name must end with '.fifo'",
    ),
    // Subscription
    (
        "subscription without queue",
        "Subscription",
        "topicRef: {name: orders}",
        "spec.queueRef",
    ),
    (
        "empty filter policy",
        "Subscription",
        "topicRef: {name: t}\nqueueRef: {name: q}\nfilter: {policy: {}}",
        "spec.filter.policy",
    ),
    (
        "filter with 11 keys",
        "Subscription",
        "topicRef: {name: t}\nqueueRef: {name: q}\nfilter: {policy: {a: [1], b: [1], c: [1], d: [1], e: [1], f: [1], g: [1], h: [1], i: [1], j: [1], k: [1]}}",
        "spec.filter.policy",
    ),
    (
        "filter without policy",
        "Subscription",
        "topicRef: {name: t}\nqueueRef: {name: q}\nfilter: {scope: MessageBody}",
        "spec.filter.policy",
    ),
    (
        "unknown filter scope",
        "Subscription",
        "topicRef: {name: t}\nqueueRef: {name: q}\nfilter: {scope: Headers, policy: {a: [x]}}",
        "spec.filter.scope",
    ),
    // Consumer
    (
        "two sources",
        "Consumer",
        "source: {queueRef: {name: q}, http: {}}\nprocessor: notification",
        "spec.source must set exactly one",
    ),
    (
        "no source",
        "Consumer",
        "source: {}\ncontainer: {image: example/worker:1}",
        "spec.source must set exactly one",
    ),
    (
        "processor and container",
        "Consumer",
        "source: {queueRef: {name: q}}\nprocessor: notification\ncontainer: {image: example/worker:1}",
        "exactly one of spec.processor",
    ),
    (
        "the removed spec.image alone (pruned: neither processor nor container)",
        "Consumer",
        "source: {queueRef: {name: q}}\nimage: example/worker:1",
        "spec.image was replaced by spec.container",
    ),
    (
        "delivery without container",
        "Consumer",
        "source: {queueRef: {name: q}}\nprocessor: notification\ndelivery: {timeoutSeconds: 5}",
        "spec.delivery configures the delivery to spec.container",
    ),
    (
        "container serving http",
        "Consumer",
        "source: {http: {}}\ncontainer: {image: w}",
        "spec.container cannot serve spec.source.http",
    ),
    (
        "container on the worker's metrics port",
        "Consumer",
        "source: {queueRef: {name: q}}\ncontainer: {image: w, port: 9090}",
        "spec.container.port 9090",
    ),
    (
        "container path without a slash",
        "Consumer",
        "source: {queueRef: {name: q}}\ncontainer: {image: w, path: events}",
        "spec.container.path must start with '/'",
    ),
    (
        "container env with value and secret",
        "Consumer",
        "source: {queueRef: {name: q}}\ncontainer: {image: w, env: [{name: A, value: x, secretKeyRef: {name: s, key: k}}]}",
        "set exactly one of value and secretKeyRef",
    ),
    (
        "delivery timeout above 900",
        "Consumer",
        "source: {queueRef: {name: q}}\ncontainer: {image: w}\ndelivery: {timeoutSeconds: 901}",
        "spec.delivery.timeoutSeconds",
    ),
    (
        "unknown processor",
        "Consumer",
        "source: {queueRef: {name: q}}\nprocessor: billing",
        "spec.processor",
    ),
    (
        "min above max replicas",
        "Consumer",
        "source: {queueRef: {name: q}}\ncontainer: {image: w}\nscaling: {minReplicas: 5, maxReplicas: 2}",
        "spec.scaling.minReplicas must not exceed",
    ),
    (
        "device processor on a queue",
        "Consumer",
        "source: {queueRef: {name: q}}\nprocessor: device\nsink: {cosmos: {endpoint: 'https://a/', database: d, container: c}}",
        "spec.processor device reads telemetry",
    ),
    (
        "order-ack without http",
        "Consumer",
        "source: {queueRef: {name: q}}\nprocessor: order-ack\nsink: {topicRef: {name: orders}}",
        "spec.processor order-ack",
    ),
    (
        "inventory without queue",
        "Consumer",
        "source: {http: {}}\nprocessor: inventory",
        "need spec.source.queueRef",
    ),
    (
        "backoff initial above max",
        "Consumer",
        "source: {queueRef: {name: q}}\ncontainer: {image: w}\nretry: {initialBackoffSeconds: 600, maxBackoffSeconds: 60}",
        "spec.retry.initialBackoffSeconds",
    ),
    (
        "cosmos over http",
        "Consumer",
        "source: {deviceStreamRef: {name: s}}\nprocessor: device\nsink: {cosmos: {endpoint: 'http://a/', database: d, container: c}}",
        "spec.sink.cosmos.endpoint",
    ),
    (
        "device without cosmos sink",
        "Consumer",
        "source: {deviceStreamRef: {name: s}}\nprocessor: device",
        "spec.sink.cosmos",
    ),
    (
        "partition key without slash",
        "Consumer",
        "source: {deviceStreamRef: {name: s}}\nprocessor: device\nsink: {cosmos: {endpoint: 'https://a/', database: d, container: c, partitionKeyPath: deviceId}}",
        "spec.sink.cosmos.partitionKeyPath",
    ),
    (
        "anonymous access with API keys",
        "Consumer",
        "source: {http: {auth: {mode: none, apiKeys: {secretName: k}}}}\nprocessor: order-ack\nsink: {topicRef: {name: orders}}",
        "spec.source.http.auth: mode none",
    ),
    (
        "JWT issuer over plain http",
        "Consumer",
        "source: {http: {auth: {jwt: {issuer: 'http://issuer.example', audiences: [a]}}}}\nprocessor: order-ack\nsink: {topicRef: {name: orders}}",
        "spec.source.http.auth.jwt.issuer must be an https:// URL",
    ),
    (
        "JWT with HMAC",
        "Consumer",
        "source: {http: {auth: {jwt: {issuer: 'https://i', audiences: [a], algorithms: [HS256]}}}}\nprocessor: order-ack\nsink: {topicRef: {name: orders}}",
        "spec.source.http.auth.jwt.algorithms",
    ),
    (
        "JWT without audience",
        "Consumer",
        "source: {http: {auth: {jwt: {issuer: 'https://i', audiences: []}}}}\nprocessor: order-ack\nsink: {topicRef: {name: orders}}",
        "spec.source.http.auth.jwt.audiences",
    ),
    (
        "body cap over 10 MB",
        "Consumer",
        "source: {http: {limits: {maxBodyBytes: 20000000}}}\nprocessor: order-ack\nsink: {topicRef: {name: orders}}",
        "spec.source.http.limits.maxBodyBytes",
    ),
    (
        "zero rate",
        "Consumer",
        "source: {http: {limits: {requestsPerSecond: 0}}}\nprocessor: order-ack\nsink: {topicRef: {name: orders}}",
        "spec.source.http.limits.requestsPerSecond",
    ),
    // DeviceStream
    (
        "33 partitions",
        "DeviceStream",
        "azure: {namespace: devices-ns, createNamespace: true, location: westeurope, partitions: 33}",
        "spec.azure.partitions",
    ),
    (
        "device stream on aws",
        "DeviceStream",
        "provider: aws\nazure: {namespace: devices-ns}",
        "spec.provider: a DeviceStream is an Event Hub",
    ),
    (
        "$Default listed",
        "DeviceStream",
        "azure: {namespace: devices-ns, consumerGroups: [$Default]}",
        "spec.azure.consumerGroups",
    ),
    (
        "retention 0 hours",
        "DeviceStream",
        "azure: {namespace: devices-ns, retentionHours: 0}",
        "spec.azure.retentionHours",
    ),
    // DeadLetter
    (
        "redrive above 500 msg/s",
        "DeadLetter",
        "aws: {}\nredrive: {id: r1, maxMessagesPerSecond: 501}",
        "spec.redrive.maxMessagesPerSecond",
    ),
    (
        "fifo dead letter without .fifo name",
        "DeadLetter",
        "aws: {name: dlq, fifo: true}",
        "spec.aws.name must end with '.fifo'",
    ),
    (
        "azure dead letter without account",
        "DeadLetter",
        "provider: azure\nazure: {name: dead-letters}",
        "spec.azure.storageAccount",
    ),
];

fn object(kind: &str, name: &str, spec: &str) -> DynamicObject {
    let indented: String = spec.lines().map(|l| format!("  {l}\n")).collect();
    let yaml = format!(
        "apiVersion: tributary.dev/v1alpha1\nkind: {kind}\nmetadata: {{name: {name}}}\nspec:\n{indented}"
    );
    common::yaml_objects(&yaml).remove(0)
}

fn message(err: kube::Error) -> String {
    match err {
        kube::Error::Api(status) => status.message,
        other => panic!("expected a rejection from the API server, got {other}"),
    }
}

#[tokio::test]
async fn invalid_objects_are_rejected_naming_the_field() {
    let _bed = common::shared().await;
    let mut cases: Vec<cloud_rules::Case> = INVALID
        .iter()
        .map(|(what, kind, spec, expected)| (*what, *kind, (*spec).to_owned(), *expected))
        .collect();
    cases.extend(cloud_rules::invalid());
    assert!(cases.len() >= 100);
    let client = common::kube_client().await;
    common::install_crds(&client).await;
    let ns = common::namespace(&client, "rejections").await;
    let mut failures = Vec::new();
    for (i, (what, kind, spec, expected)) in cases.iter().enumerate() {
        let api = common::tributary_api(&client, &ns, kind);
        match api
            .create(&PostParams::default(), &object(kind, &format!("bad-{i}"), spec))
            .await
        {
            Ok(_) => failures.push(format!("{what}: accepted")),
            Err(e) => {
                let msg = message(e);
                if !msg.contains(expected) {
                    failures.push(format!("{what}: message lacks {expected:?}: {msg}"));
                }
            }
        }
    }
    let kinds: std::collections::BTreeSet<_> = cases.iter().map(|c| c.1).collect();
    println!(
        "CRD schema and CEL: {} of {} invalid manifests refused naming the field, across {} kinds",
        cases.len() - failures.len(),
        cases.len(),
        kinds.len()
    );
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

/// Objects right at the clouds' limits are accepted: the rules are not stricter than the clouds.
#[tokio::test]
async fn objects_at_the_limits_are_accepted() {
    let _bed = common::shared().await;
    let client = common::kube_client().await;
    common::install_crds(&client).await;
    let ns = common::namespace(&client, "boundaries").await;
    let cases = cloud_rules::valid();
    let mut failures = Vec::new();
    for (i, (what, kind, spec)) in cases.iter().enumerate() {
        let api = common::tributary_api(&client, &ns, kind);
        if let Err(e) = api
            .create(&PostParams::default(), &object(kind, &format!("edge-{i}"), spec))
            .await
        {
            failures.push(format!("{what}: refused: {e}"));
        }
    }
    println!(
        "CRD schema and CEL: {} of {} boundary manifests accepted",
        cases.len() - failures.len(),
        cases.len()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// (what changes, kind, spec at creation, spec of the update, text the refusal must contain).
const IMMUTABLE: &[(&str, &str, &str, &str, &str)] = &[
    (
        "queue fifo",
        "Queue",
        "aws: {name: jobs.fifo, fifo: true}",
        "aws: {name: jobs, fifo: false}",
        "spec.aws.fifo is immutable",
    ),
    (
        "queue name",
        "Queue",
        "aws: {name: jobs}",
        "aws: {name: jobs-2}",
        "spec.aws.name is immutable",
    ),
    (
        "queue provider",
        "Queue",
        "aws: {}",
        "provider: azure\nazure: {storageAccount: acct}",
        "spec.provider is immutable",
    ),
    (
        "subscription topic",
        "Subscription",
        "topicRef: {name: a}\nqueueRef: {name: q}",
        "topicRef: {name: b}\nqueueRef: {name: q}",
        "spec.topicRef is immutable",
    ),
    (
        "device stream partitions down",
        "DeviceStream",
        "azure: {namespace: devices-ns, partitions: 8}",
        "azure: {namespace: devices-ns, partitions: 4}",
        "cannot decrease",
    ),
    (
        "device stream namespace",
        "DeviceStream",
        "azure: {namespace: devices-ns}",
        "azure: {namespace: other-ns}",
        "spec.azure.namespace is immutable",
    ),
    (
        "topic fifo",
        "Topic",
        "aws: {name: t.fifo, fifo: true}",
        "aws: {name: t.fifo, fifo: false}",
        "spec.aws.fifo is immutable",
    ),
];

#[tokio::test]
async fn immutable_fields_cannot_change() {
    let _bed = common::shared().await;
    let client = common::kube_client().await;
    common::install_crds(&client).await;
    let ns = common::namespace(&client, "immutable").await;
    let mut failures = Vec::new();
    for (i, (what, kind, before, after, expected)) in IMMUTABLE.iter().enumerate() {
        let api = common::tributary_api(&client, &ns, kind);
        let name = format!("imm-{i}");
        let created = api
            .create(&PostParams::default(), &object(kind, &name, before))
            .await
            .unwrap();
        let mut update = object(kind, &name, after);
        update.metadata.resource_version = created.metadata.resource_version.clone();
        match api.replace(&name, &PostParams::default(), &update).await {
            Ok(_) => failures.push(format!("{what}: update accepted")),
            Err(e) => {
                let msg = message(e);
                if !msg.contains(expected) {
                    failures.push(format!("{what}: message lacks {expected:?}: {msg}"));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// A mutable field can still change: the immutability rules do not freeze the whole object.
#[tokio::test]
async fn mutable_fields_can_change() {
    let _bed = common::shared().await;
    let client = common::kube_client().await;
    common::install_crds(&client).await;
    let ns = common::namespace(&client, "mutable").await;
    let api = common::tributary_api(&client, &ns, "Queue");
    let created = api
        .create(&PostParams::default(), &object("Queue", "q", "aws: {name: jobs}"))
        .await
        .unwrap();
    let mut update = object(
        "Queue",
        "q",
        "aws: {name: jobs, visibilityTimeoutSeconds: 90}\ndeletionPolicy: Retain",
    );
    update.metadata.resource_version = created.metadata.resource_version;
    let updated = api.replace("q", &PostParams::default(), &update).await.unwrap();
    assert_eq!(updated.data["spec"]["aws"]["visibilityTimeoutSeconds"], 90);
    assert_eq!(updated.data["spec"]["deletionPolicy"], "Retain");
}
