//! The admission webhook for all six kinds on the test bed, registered with the real API server exactly as
//! the chart registers it (its rules and `matchConditions`, rendered by helm): cross-object rules checked
//! against the referenced objects, and SNS's filter-policy limits, each refused naming the field; valid
//! combinations at their edges accepted (a FIFO topic delivering to a standard queue); references that do
//! not exist yet accepted; and an object whose references no longer satisfy the rules can still be
//! relabelled, deleted and have its finalizer removed.
#![allow(clippy::unwrap_used)]

use crate::support as common;

use std::time::Duration;

use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use serde_json::json;

fn manifest(kind: &str, name: &str, spec: &str) -> kube::api::DynamicObject {
    let indented: String = spec.lines().map(|l| format!("  {l}\n")).collect();
    let yaml = format!(
        "apiVersion: tributary.dev/v1alpha1\nkind: {kind}\nmetadata: {{name: {name}}}\nspec:\n{indented}"
    );
    common::yaml_objects(&yaml).remove(0)
}

/// The objects the cases reference. No controller runs: only the specs matter.
const REFERENCED: &[(&str, &str, &str)] = &[
    ("Topic", "std-topic", "aws: {}"),
    ("Topic", "fifo-topic", "aws: {fifo: true}"),
    ("Queue", "std-q", "aws: {}"),
    ("Queue", "fifo-q", "aws: {fifo: true}"),
    ("Queue", "az-q", "provider: azure\nazure: {storageAccount: acct}"),
    ("Queue", "still-q", "aws: {visibilityTimeoutSeconds: 0}"),
    ("DeadLetter", "std-dlq", "aws: {}"),
    ("DeadLetter", "fifo-dlq", "aws: {fifo: true}"),
    (
        "DeadLetter",
        "az-dlq",
        "provider: azure\nazure: {storageAccount: acct}",
    ),
    (
        "DeadLetter",
        "other-dlq",
        "provider: azure\nazure: {storageAccount: other}",
    ),
    (
        "DeviceStream",
        "ds",
        "azure: {namespace: devices-ns, consumerGroups: [readers]}",
    ),
];

const DEVICE: &str =
    "processor: device\nsink: {cosmos: {endpoint: 'https://127.0.0.1:8081/', database: d, container: c}}";

/// (what is wrong, kind, spec, text the refusal must contain).
fn refused() -> Vec<(&'static str, &'static str, String, &'static str)> {
    let device =
        |source: &str, rest: &str| format!("source: {{deviceStreamRef: {source}}}\n{DEVICE}\n{rest}");
    let keys = |n: usize| {
        (0..n)
            .map(|i| format!("k{i}: [x]"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let values = |n: usize| {
        format!(
            "[{}]",
            (0..n).map(|i| format!("v{i}")).collect::<Vec<_>>().join(", ")
        )
    };
    let sub = |filter: String| {
        format!("topicRef: {{name: std-topic}}\nqueueRef: {{name: std-q}}\nfilter: {filter}")
    };
    vec![
        ("standard queue, FIFO dead letter", "Queue", "aws: {}\ndeadLetter: {ref: {name: fifo-dlq}}".into(), "spec.deadLetter.ref: DeadLetter fifo-dlq is FIFO"),
        ("FIFO queue, standard dead letter", "Queue", "aws: {fifo: true}\ndeadLetter: {ref: {name: std-dlq}}".into(), "spec.deadLetter.ref: DeadLetter std-dlq is a standard queue"),
        ("SQS queue, azure dead letter", "Queue", "aws: {}\ndeadLetter: {ref: {name: az-dlq}}".into(), "spec.deadLetter.ref: DeadLetter az-dlq is on azure"),
        ("Storage Queue, SQS dead letter", "Queue", "provider: azure\nazure: {storageAccount: acct}\ndeadLetter: {ref: {name: std-dlq}}".into(), "spec.deadLetter.ref: DeadLetter std-dlq is on aws"),
        ("Storage Queue, dead letter in another account", "Queue", "provider: azure\nazure: {storageAccount: acct}\ndeadLetter: {ref: {name: other-dlq}}".into(), "spec.deadLetter.ref: DeadLetter other-dlq is in storage account other"),
        ("standard topic to FIFO queue", "Subscription", "topicRef: {name: std-topic}\nqueueRef: {name: fifo-q}".into(), "spec.queueRef: Queue fifo-q is FIFO but Topic std-topic is standard"),
        ("SQS source, azure dead letter", "Consumer", "source: {queueRef: {name: std-q}}\ncontainer: {image: w}\ndeadLetterRef: {name: az-dlq}".into(), "spec.deadLetterRef: DeadLetter az-dlq is on azure"),
        ("Storage Queue source, SQS dead letter", "Consumer", "source: {queueRef: {name: az-q}}\ncontainer: {image: w}\ndeadLetterRef: {name: fifo-dlq}".into(), "spec.deadLetterRef: DeadLetter fifo-dlq is on aws"),
        ("Storage Queue source, dead letter in another account", "Consumer", "source: {queueRef: {name: az-q}}\ncontainer: {image: w}\ndeadLetterRef: {name: other-dlq}".into(), "spec.deadLetterRef: DeadLetter other-dlq is in storage account other"),
        ("Consumer of a queue with visibility 0", "Consumer", "source: {queueRef: {name: still-q}}\ncontainer: {image: w}".into(), "spec.source.queueRef: Queue still-q has spec.aws.visibilityTimeoutSeconds 0"),
        ("consumer group the stream lacks", "Consumer", device("{name: ds, consumerGroup: writers}", ""), "spec.source.deviceStreamRef.consumerGroup: writers is not a consumer group"),
        ("device stream source, SQS dead letter", "Consumer", device("{name: ds}", "deadLetterRef: {name: std-dlq}"), "spec.deadLetterRef: DeadLetter std-dlq is on aws"),
        ("SQS redrive to a Storage Queue", "DeadLetter", "aws: {}\nredrive: {id: r1, destinationRef: {name: az-q}}".into(), "spec.redrive.destinationRef: Queue az-q is on azure"),
        ("Storage Queue redrive to SQS", "DeadLetter", "provider: azure\nazure: {storageAccount: acct}\nredrive: {id: r1, destinationRef: {name: std-q}}".into(), "spec.redrive.destinationRef: Queue std-q is on aws"),
        ("filter with 6 keys", "Subscription", sub(format!("{{policy: {{{}}}}}", keys(6))), "spec.filter.policy: 6 keys in one alternative; SNS allows at most 5"),
        ("filter with 156 combinations", "Subscription", sub(format!("{{policy: {{a: {}, b: {}}}}}", values(13), values(12))), "combinations; SNS allows at most 150"),
        ("$or alternatives over 5 keys", "Subscription", sub(format!("{{policy: {{{}, $or: [{{d: [x], e: [x], f: [x]}}, {{g: [x]}}]}}}}", keys(3))), "spec.filter.policy: 6 keys"),
        ("filter over 256 KB", "Subscription", sub(format!("{{policy: {{a: [{}]}}}}", "x".repeat(300 * 1024))), "spec.filter.policy: 307"),
        ("number beyond 1e9", "Subscription", sub("{policy: {price: [{numeric: ['>', 1000000001]}]}}".into()), "spec.filter.policy.price"),
        ("nested keys in attribute scope", "Subscription", sub("{policy: {customer: {tier: [gold]}}}".into()), "spec.filter.policy.customer: nested keys"),
        ("body policy nested under 6 keys", "Subscription", sub(format!("{{scope: MessageBody, policy: {{a: {{{}}}}}}}", keys(6))), "spec.filter.policy: 6 keys"),
    ]
}

/// (what is at an edge, kind, spec): each must be accepted.
fn accepted() -> Vec<(&'static str, &'static str, String)> {
    let sub = |topic: &str, queue: &str, rest: &str| {
        format!("topicRef: {{name: {topic}}}\nqueueRef: {{name: {queue}}}\n{rest}")
    };
    vec![
        (
            "FIFO topic to standard queue (SNS, since 2023)",
            "Subscription",
            sub("fifo-topic", "std-q", ""),
        ),
        (
            "FIFO topic to FIFO queue",
            "Subscription",
            sub("fifo-topic", "fifo-q", ""),
        ),
        (
            "FIFO topic to a Storage Queue (standard relay queue)",
            "Subscription",
            sub("fifo-topic", "az-q", ""),
        ),
        (
            "queue that does not exist yet",
            "Subscription",
            sub("std-topic", "later-q", ""),
        ),
        (
            "filter at 5 keys and 150 combinations",
            "Subscription",
            sub(
                "std-topic",
                "std-q",
                "filter: {policy: {a: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10], b: [1, 2, 3, 4, 5], c: [1, 2, 3], d: [x], e: [y]}}",
            ),
        ),
        (
            "FIFO queue, FIFO dead letter",
            "Queue",
            "aws: {fifo: true}\ndeadLetter: {ref: {name: fifo-dlq}}".into(),
        ),
        (
            "dead letter that does not exist yet",
            "Queue",
            "aws: {fifo: true}\ndeadLetter: {ref: {name: later-dlq}}".into(),
        ),
        (
            "Storage Queue, dead letter in its account",
            "Queue",
            "provider: azure\nazure: {storageAccount: acct}\ndeadLetter: {ref: {name: az-dlq}}".into(),
        ),
        (
            "listed consumer group, azure dead letter",
            "Consumer",
            format!(
                "source: {{deviceStreamRef: {{name: ds, consumerGroup: readers}}}}\n{DEVICE}\ndeadLetterRef: {{name: other-dlq}}"
            ),
        ),
        (
            "FIFO SQS source, standard dead letter (workers dead-letter)",
            "Consumer",
            "source: {queueRef: {name: fifo-q}}\ncontainer: {image: w}\ndeadLetterRef: {name: std-dlq}"
                .into(),
        ),
        (
            "SQS redrive to an SQS queue",
            "DeadLetter",
            "aws: {}\nredrive: {id: r1, destinationRef: {name: std-q}}".into(),
        ),
        (
            "topic",
            "Topic",
            "aws: {fifo: true, contentBasedDeduplication: true}".into(),
        ),
        (
            "device stream",
            "DeviceStream",
            "azure: {namespace: devices-ns, consumerGroups: [a, b]}".into(),
        ),
    ]
}

fn refusal(result: Result<kube::api::DynamicObject, kube::Error>) -> Option<String> {
    match result {
        Err(kube::Error::Api(status)) => Some(status.message),
        _ => None,
    }
}

#[tokio::test]
async fn the_webhook_refuses_cross_object_and_filter_violations_naming_the_field() {
    let _bed = common::shared().await;
    let client = common::kube_client().await;
    common::install_crds(&client).await;
    let ns = common::namespace(&client, "admission").await;
    for (kind, name, spec) in REFERENCED {
        let api = common::tributary_api(&client, &ns, kind);
        api.create(&PostParams::default(), &manifest(kind, name, spec))
            .await
            .unwrap();
    }
    let webhook = common::webhook::Webhook::start(
        &client,
        &ns,
        tributary::webhook::VALIDATE_PATH,
        common::webhook::chart_webhooks(),
    )
    .await;
    // The API server picks up a new webhook configuration within a moment: wait until it answers.
    let queues = common::tributary_api(&client, &ns, "Queue");
    let probe = manifest("Queue", "probe", "aws: {}\ndeadLetter: {ref: {name: fifo-dlq}}");
    common::eventually("the webhook to answer", Duration::from_secs(30), || {
        let (queues, probe) = (queues.clone(), probe.clone());
        async move {
            let dry = PostParams {
                dry_run: true,
                ..Default::default()
            };
            refusal(queues.create(&dry, &probe).await).filter(|m| m.contains("admission webhook"))
        }
    })
    .await;

    let mut failures = Vec::new();
    let cases = refused();
    for (i, (what, kind, spec, expected)) in cases.iter().enumerate() {
        let api = common::tributary_api(&client, &ns, kind);
        match refusal(
            api.create(&PostParams::default(), &manifest(kind, &format!("bad-{i}"), spec))
                .await,
        ) {
            Some(message) if message.contains(expected) => {}
            Some(message) => failures.push(format!("{what}: message lacks {expected:?}: {message}")),
            None => failures.push(format!("{what}: accepted")),
        }
    }
    let edges = accepted();
    let mut refused_edges = Vec::new();
    for (i, (what, kind, spec)) in edges.iter().enumerate() {
        let api = common::tributary_api(&client, &ns, kind);
        if let Some(message) = refusal(
            api.create(&PostParams::default(), &manifest(kind, &format!("ok-{i}"), spec))
                .await,
        ) {
            refused_edges.push(format!("{what}: {message}"));
        }
    }
    // An update that changes the spec is reviewed like a create.
    let updated = manifest("Queue", "std-q", "aws: {}\ndeadLetter: {ref: {name: fifo-dlq}}");
    let patch = PatchParams::apply("admission-test").force();
    match refusal(queues.patch("std-q", &patch, &Patch::Apply(&updated)).await) {
        Some(message) if message.contains("spec.deadLetter.ref") => {}
        other => failures.push(format!("spec update to a FIFO dead letter: {other:?}")),
    }
    let kinds: std::collections::BTreeSet<_> = cases.iter().map(|c| c.1).collect();
    println!(
        "webhook: {} of {} invalid manifests (one a spec update) refused naming the field across {kinds:?}; {} of {} edge cases accepted",
        cases.len() + 1 - failures.len(),
        cases.len() + 1,
        edges.len() - refused_edges.len(),
        edges.len()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(refused_edges.is_empty(), "refused: {}", refused_edges.join("\n"));
    webhook.stop().await;
}

#[tokio::test]
async fn metadata_updates_and_deletion_pass_even_when_the_references_no_longer_fit() {
    let _bed = common::shared().await;
    let client = common::kube_client().await;
    common::install_crds(&client).await;
    let ns = common::namespace(&client, "admission-delete").await;
    let webhook = common::webhook::Webhook::start(
        &client,
        &ns,
        tributary::webhook::VALIDATE_PATH,
        common::webhook::chart_webhooks(),
    )
    .await;
    let queues = common::tributary_api(&client, &ns, "Queue");
    let dead_letters = common::tributary_api(&client, &ns, "DeadLetter");
    // A FIFO dead letter exists, so a standard queue naming it is refused once the webhook answers.
    dead_letters
        .create(
            &PostParams::default(),
            &manifest("DeadLetter", "dlq", "aws: {fifo: true}"),
        )
        .await
        .unwrap();
    let bad = manifest("Queue", "bad", "aws: {}\ndeadLetter: {ref: {name: dlq}}");
    common::eventually("the webhook to answer", Duration::from_secs(30), || {
        let (queues, bad) = (queues.clone(), bad.clone());
        async move {
            let dry = PostParams {
                dry_run: true,
                ..Default::default()
            };
            refusal(queues.create(&dry, &bad).await).filter(|m| m.contains("spec.deadLetter.ref"))
        }
    })
    .await;

    // The queue was accepted while its dead letter did not exist; then the dead letter came as FIFO.
    let mut held = manifest("Queue", "held", "aws: {}\ndeadLetter: {ref: {name: later}}");
    held.metadata.finalizers = Some(vec!["test.tributary.dev/hold".into()]);
    queues.create(&PostParams::default(), &held).await.unwrap();
    dead_letters
        .create(
            &PostParams::default(),
            &manifest("DeadLetter", "later", "aws: {fifo: true}"),
        )
        .await
        .unwrap();

    let merge = PatchParams::default();
    queues
        .patch(
            "held",
            &merge,
            &Patch::Merge(json!({"metadata": {"labels": {"team": "a"}}})),
        )
        .await
        .expect("a metadata-only update is never reviewed");
    let spec_change = queues
        .patch(
            "held",
            &merge,
            &Patch::Merge(json!({"spec": {"aws": {"delaySeconds": 5}}})),
        )
        .await;
    assert!(
        refusal(spec_change).is_some_and(|m| m.contains("spec.deadLetter.ref")),
        "a spec change is reviewed"
    );
    queues.delete("held", &DeleteParams::default()).await.unwrap();
    queues
        .patch(
            "held",
            &merge,
            &Patch::Merge(json!({"metadata": {"finalizers": null}})),
        )
        .await
        .expect("removing the finalizer of an object being deleted is never reviewed");
    common::eventually("the queue to be gone", Duration::from_secs(10), || {
        let queues = queues.clone();
        async move { queues.get_opt("held").await.unwrap().is_none().then_some(()) }
    })
    .await;
    webhook.stop().await;
}
