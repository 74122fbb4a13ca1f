//! The crash-point harness, Sieve-style: a `tributary controller` process runs a scenario behind two
//! counting proxies (AWS and the API server, [`common::wire`]); a first run counts its state-changing
//! calls, then for every k the scenario runs again in a fresh namespace with the controller SIGKILLed
//! right after the k-th call, restarted, and the system must converge: the desired cloud state, no
//! orphaned or duplicated cloud resource, no duplicate SNS subscription, no lost or duplicated message,
//! conditions true to the state.
//!
//! The Azure kinds run the same way behind two more proxies (Azurite's queue service and the Resource
//! Manager fake): a Queue and a DeadLetter's redrive on azure, a DeviceStream, and the relay of a
//! Subscription from a Topic on aws to a Queue on azure.
//!
//! `make test` sweeps three small scenarios (every crash point, after the call; the other tests are
//! `#[ignore]`d there and reported as ignored); `make chaos` (`TRIBUTARY_CHAOS=full`, with the ignored
//! tests included) sweeps every scenario: killed after and before each call, restarted against
//! stale reads, and (no kill) the next watch event after the call dropped;
//! `TRIBUTARY_CHAOS_ONLY=redrive,adopt` limits either to the scenarios named.
#![allow(clippy::unwrap_used)]

mod azure;
mod checks;
mod device_stream;
mod harness;
mod relay;
mod scenarios;

use crate::support as common;

use common::wire::Moment;
use harness::{Scenario, sweep};

/// Whether the full sweep was asked for (`make chaos`).
fn full() -> bool {
    std::env::var("TRIBUTARY_CHAOS").is_ok_and(|v| v == "full")
}

/// Sweeps `scenarios` and fails with every crash point that did not converge.
async fn sweep_all(scenarios: &[&Scenario], moments: &[Moment]) {
    let _bed = common::shared().await;
    let client = common::kube_client().await;
    common::install_crds(&client).await;
    let mut failures = Vec::new();
    let only = std::env::var("TRIBUTARY_CHAOS_ONLY").unwrap_or_default();
    let moments: Vec<Moment> = match std::env::var("TRIBUTARY_CHAOS_MOMENTS") {
        Ok(names) => moments
            .iter()
            .copied()
            .filter(|m| names.contains(&format!("{m:?}")))
            .collect(),
        Err(_) => moments.to_vec(),
    };
    let chosen = |name: &str| only.is_empty() || only.split(',').any(|o| o == name);
    for scenario in scenarios.iter().filter(|s| chosen(s.name)) {
        failures.extend(sweep(&client, scenario, &moments).await.failures);
    }
    assert!(
        failures.is_empty(),
        "crash points that did not converge:\n{}",
        failures.join("\n")
    );
}

/// Every crash moment and variant: killed after and before the call, a stale restart, a dropped event.
const ALL: [Moment; 4] = [
    Moment::AfterResponse,
    Moment::BeforeForward,
    Moment::StaleRestart,
    Moment::DropEvent,
];

#[tokio::test]
async fn every_crash_point_of_topic_lifecycle_and_subscription_converges() {
    if full() {
        sweep_all(&[&scenarios::TOPIC_LIFECYCLE, &scenarios::SUBSCRIPTION], &ALL).await;
    } else {
        sweep_all(
            &[&scenarios::TOPIC_LIFECYCLE, &scenarios::SUBSCRIPTION],
            &[Moment::AfterResponse],
        )
        .await;
    }
}

#[tokio::test]
#[ignore = "the full sweep: make chaos runs it (TRIBUTARY_CHAOS=full, --include-ignored)"]
async fn every_crash_point_of_redrive_and_adoption_converges() {
    sweep_all(&[&scenarios::REDRIVE, &scenarios::ADOPT], &ALL).await;
}

#[tokio::test]
#[ignore = "the full sweep: make chaos runs it (TRIBUTARY_CHAOS=full, --include-ignored)"]
async fn every_crash_point_of_consumer_scaling_converges() {
    sweep_all(&[&scenarios::CONSUMER_SCALING], &[Moment::AfterResponse]).await;
}

#[tokio::test]
async fn every_crash_point_of_an_azure_queue_converges() {
    if full() {
        sweep_all(&[&azure::QUEUE_LIFECYCLE], &ALL).await;
    } else {
        sweep_all(&[&azure::QUEUE_LIFECYCLE], &[Moment::AfterResponse]).await;
    }
}

#[tokio::test]
#[ignore = "the full sweep: make chaos runs it (TRIBUTARY_CHAOS=full, --include-ignored)"]
async fn every_crash_point_of_an_azure_redrive_converges() {
    sweep_all(&[&azure::REDRIVE], &ALL).await;
}

#[tokio::test]
#[ignore = "the full sweep: make chaos runs it (TRIBUTARY_CHAOS=full, --include-ignored)"]
async fn every_crash_point_of_a_device_stream_and_the_relay_converges() {
    sweep_all(&[&device_stream::DEVICE_STREAM, &relay::RELAY], &ALL).await;
}
