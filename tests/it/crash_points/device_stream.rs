//! A DeviceStream through the run's Resource Manager fake (behind its counting proxy): the Event Hubs
//! namespace created, its hub, consumer groups and Listen rule, the connection Secret; then deleted. The
//! oracle reads the fake's resources directly.

use std::collections::BTreeSet;

use futures::FutureExt;
use k8s_openapi::api::core::v1::Secret;

use super::{
    checks::{ensure, gone, ready, status},
    harness::{AZURE_RESOURCE_GROUP, AZURE_SUBSCRIPTION, Run, Scenario, Step},
};

/// The Event Hubs namespace (each run has a fake of its own, so the name is fixed).
const HUB_NAMESPACE: &str = "crash-hubs";

const STREAM: &str = "
apiVersion: tributary.dev/v1alpha1
kind: DeviceStream
metadata: {name: ds}
spec:
  provider: azure
  azure:
    namespace: crash-hubs
    createNamespace: true
    location: westeurope
    partitions: 2
    retentionHours: 24
    consumerGroups: [processor, analytics]
";

/// A DeviceStream created with its namespace, then deleted.
pub const DEVICE_STREAM: Scenario = Scenario {
    name: "devices",
    policy: None,
    steps: &[
        Step::Apply(STREAM),
        Step::Converge("ds Ready: namespace, hub, groups, rule, Secret", |run| {
            provisioned(run).boxed()
        }),
        Step::Delete("DeviceStream", "ds"),
        Step::Converge("ds and its hub gone", |run| deleted(run).boxed()),
    ],
};

fn namespace_id() -> String {
    format!(
        "/subscriptions/{AZURE_SUBSCRIPTION}/resourcegroups/{AZURE_RESOURCE_GROUP}/providers/microsoft.eventhub/namespaces/{HUB_NAMESPACE}"
    )
}

/// The ids the fake holds besides the namespace's own.
fn under_namespace(run: &Run) -> BTreeSet<String> {
    let prefix = format!("{}/", namespace_id());
    run.arm
        .ids()
        .into_iter()
        .filter(|id| id.starts_with(&prefix))
        .map(|id| id[prefix.len()..].to_owned())
        .collect()
}

/// The namespace provisioned; under it exactly the status's hub with its two consumer groups (and
/// `$Default`, if the service lists it) and the Listen rule; the connection Secret naming the hub.
async fn provisioned(run: &Run) -> Result<(), String> {
    let stream = ready(run, "DeviceStream", "ds").await?;
    let hub = status(&stream, "hubName")?.to_lowercase();
    let partitions = stream.data["status"]["partitions"].as_i64();
    ensure(partitions == Some(2), || {
        format!("ds status.partitions {partitions:?}")
    })?;
    let namespace = run
        .arm
        .resource(&namespace_id())
        .ok_or("no Event Hubs namespace")?;
    let state = &namespace["properties"]["provisioningState"];
    ensure(state == "Succeeded", || {
        format!("namespace provisioningState {state}")
    })?;
    let found = under_namespace(run);
    let want: BTreeSet<String> = ["", "/consumergroups/processor", "/consumergroups/analytics"]
        .iter()
        .map(|rest| format!("eventhubs/{hub}{rest}"))
        .chain([format!("eventhubs/{hub}/authorizationrules/tributary-listen")])
        .collect();
    let extra: Vec<_> = found
        .difference(&want)
        .filter(|id| !id.ends_with("/$default"))
        .collect();
    ensure(found.is_superset(&want) && extra.is_empty(), || {
        format!("under the namespace {found:?}, want exactly {want:?}")
    })?;
    let secret = kube::Api::<Secret>::namespaced(run.client.clone(), &run.namespace)
        .get_opt("ds-eventhub")
        .await
        .map_err(|e| format!("reading Secret ds-eventhub: {e}"))?
        .ok_or("no Secret ds-eventhub")?;
    let topic = secret.data.unwrap_or_default().get("topic").map(|t| t.0.clone());
    ensure(
        topic.is_some_and(|t| t.eq_ignore_ascii_case(hub.as_bytes())),
        || "Secret ds-eventhub does not name the hub".to_owned(),
    )
}

/// ds gone, no hub (nor anything of one) left under the namespace; the namespace, created on request,
/// stays (the controller deletes what a DeviceStream owns: its hub).
async fn deleted(run: &Run) -> Result<(), String> {
    gone(run, "DeviceStream", "ds").await?;
    let left = under_namespace(run);
    ensure(left.is_empty(), || format!("left under the namespace: {left:?}"))
}
