//! The user's processor running for real: the Go example (`examples/custom/go`, its image built by
//! `image.sh` and imported into the test bed's real node) as the native sidecar of a Consumer's worker pod
//! on an SQS Queue, the pod on the real node (a namespace placed there, `support/node.rs`), the worker of
//! the node's tributary image. The controller runs as a host process with the emulators' endpoints at the
//! node address, which it hands to the workers in their pods.
//!
//! What is checked, from the pod's status, both containers' logs (with the kubelet's nanosecond
//! timestamps) and the queues:
//! - the processor starts first, the worker only once the processor answers its readiness path (held back
//!   by `READY_AFTER`), and messages flow end to end: each recorded once, a poisoned one dead-lettered
//!   with `HTTP 400` and the processor's answer;
//! - the processor's container killed (SIGKILL through containerd) with requests in flight: the pod is not
//!   ready until the restarted container answers, and every message in flight is delivered again to the
//!   new container and recorded once, nothing dead-lettered;
//! - the pod deleted with deliveries in flight: the worker stops receiving, finishes them, exits, and only
//!   then is the processor stopped; every message is recorded once, those sent after the deletion by the
//!   replacement pod.
#![allow(clippy::unwrap_used)]

mod bed;
mod log;

use std::time::Instant;

use k8s_openapi::{api::core::v1::Pod, jiff::Timestamp};
use kube::api::DeleteParams;

use self::bed::{
    CONVERGE, IMAGE, NodePipeline, container_status, events, ready_since, started_at, watch_exits,
};
use self::log::{Line, first, ids, seconds, sorted, whole_seconds};
use crate::support::{self as common, node};

#[tokio::test]
async fn the_processor_starts_first_the_pod_is_ready_once_it_answers_and_messages_flow() {
    let _bed = common::shared().await;
    let bed = NodePipeline::start("pods-custom-flow", &[("READY_AFTER", "4s")]).await;
    let pod = bed.ready_pod(&[]).await;
    let apply_to_ready = bed.applied.elapsed();
    let name = pod.metadata.name.clone().unwrap();
    let became_ready = assert_started_in_order(&bed, &pod).await;

    // End to end: every good event recorded once, the poisoned one dead-lettered with the answer.
    let sent = bed.send(&events("flow", 10)).await;
    bed.send(&["[\"not an object\"]".to_owned()]).await;
    let lines = bed.wait_lines(&name, "recorded", &sent).await;
    assert_eq!(
        sorted(ids(&lines, "recorded")),
        sorted(sent),
        "each event recorded once"
    );
    assert!(ids(&lines, "duplicate").is_empty());
    let reasons = bed.dead_letter_reasons(1).await;
    assert_eq!(reasons.len(), 1, "{reasons:?}");
    assert!(
        reasons[0].starts_with("HTTP 400: body is not a JSON object"),
        "{reasons:?}"
    );
    bed.wait_drained().await;
    eprintln!(
        "pods_custom: pod created {}, processor started {}, answered ready (READY_AFTER 4 s) {became_ready}, worker started {}, pod Ready {}; Consumer applied to pod Ready {:.1} s",
        pod.metadata.creation_timestamp.as_ref().unwrap().0,
        started_at(&pod, "processor"),
        started_at(&pod, "worker"),
        ready_since(&pod),
        apply_to_ready.as_secs_f64()
    );
    bed.stop().await;
}

/// The pod runs on the real node with the processor as a native sidecar, and the worker was held back
/// until the processor answered its readiness path: the processor's first 200 (its `ready` line,
/// READY_AFTER after it listened) comes before the worker's first log line, and the worker container
/// started, and the pod became Ready, no earlier than that (the API's times are whole seconds). Returns
/// when the processor answered ready.
async fn assert_started_in_order(bed: &NodePipeline, pod: &Pod) -> Timestamp {
    let spec = pod.spec.as_ref().unwrap();
    assert_eq!(spec.node_name.as_deref(), Some(node::NAME), "on the real node");
    let sidecar = &spec.init_containers.as_ref().unwrap()[0];
    let sidecar = (
        sidecar.name.as_str(),
        sidecar.restart_policy.as_deref(),
        sidecar.image.as_deref(),
    );
    assert_eq!(
        sidecar,
        ("processor", Some("Always"), Some(IMAGE)),
        "a native sidecar"
    );
    let name = pod.metadata.name.as_deref().unwrap();
    let processor = bed.log(name, "processor", false).await;
    let worker = bed.log(name, "worker", false).await;
    let (listening, became_ready) = (first(&processor, "listening"), first(&processor, "ready"));
    assert!(
        seconds(listening.at, became_ready.at) >= 3.9,
        "{listening:?} {became_ready:?}"
    );
    assert!(
        became_ready.at < worker[0].at,
        "{became_ready:?} before {:?}",
        worker[0]
    );
    assert!(started_at(pod, "processor") <= whole_seconds(listening.at));
    let ready = whole_seconds(became_ready.at);
    assert!(
        started_at(pod, "worker") >= ready,
        "the worker started before the processor was ready"
    );
    assert!(
        ready_since(pod) >= ready,
        "the pod was Ready before the processor"
    );
    became_ready.at
}

#[tokio::test]
async fn a_processor_killed_mid_request_gets_the_messages_again_after_its_restart_and_records_each_once() {
    let _bed = common::shared().await;
    let bed = NodePipeline::start("pods-custom-kill", &[("DELAY", "4s")]).await;
    let pod = bed.ready_pod(&[]).await;
    let name = pod.metadata.name.clone().unwrap();
    let sent = bed.send(&events("kill", 3)).await;
    bed.wait_lines(&name, "holding", &sent).await;

    let killed = Instant::now();
    node::kill_container(&bed.ns, &name, "processor").await;
    // Not ready while the processor does not answer; ready again once the restarted one does.
    common::eventually("the pod not Ready after the kill", CONVERGE, || async {
        (!node::is_ready(&bed.pods.get(&name).await.ok()?)).then_some(())
    })
    .await;
    let restarted = bed.ready_pod(&[]).await;
    assert_eq!(
        restarted.metadata.name.as_deref(),
        Some(name.as_str()),
        "the same pod"
    );
    assert!(container_status(&restarted, "processor").restart_count >= 1);
    let back = killed.elapsed();

    // The killed container held all three and recorded none; the restarted one recorded each once.
    let lines = bed.wait_lines(&name, "recorded", &sent).await;
    let before = bed.log(&name, "processor", true).await;
    assert_eq!(
        sorted(ids(&before, "holding")),
        sorted(sent.clone()),
        "all three in flight"
    );
    assert!(
        ids(&before, "recorded").is_empty(),
        "killed before recording: {before:?}"
    );
    assert_eq!(
        sorted(ids(&lines, "recorded")),
        sorted(sent),
        "each recorded once"
    );
    let pod = bed.pods.get(&name).await.unwrap();
    assert_eq!(
        container_status(&pod, "worker").restart_count,
        0,
        "the worker ran on"
    );
    bed.wait_drained().await;
    let dead = common::receive_messages(&bed.sqs, &bed.dead_letter_url).await;
    assert!(dead.is_empty(), "nothing dead-lettered: {dead:?}");
    eprintln!(
        "pods_custom: processor killed with 3 requests in flight; pod Ready again after {:.1} s, all 3 recorded once {:.1} s after the kill",
        back.as_secs_f64(),
        killed.elapsed().as_secs_f64()
    );
    bed.stop().await;
}

#[tokio::test]
async fn a_deleted_pod_stops_receiving_finishes_its_deliveries_then_stops_the_processor() {
    let _bed = common::shared().await;
    let bed = NodePipeline::start("pods-custom-drain", &[("DELAY", "5s")]).await;
    let pod = bed.ready_pod(&[]).await;
    let name = pod.metadata.name.clone().unwrap();
    let before = bed.send(&events("drain", 6)).await;
    bed.wait_lines(&name, "holding", &before).await;
    let deleted = Instant::now();
    let drained = delete(&bed, &name).await;
    let order = assert_drained_in_order(&drained, &before);

    // The events sent after the deletion go to the replacement pod; every event is recorded once.
    let replacement = bed.ready_pod(std::slice::from_ref(&name)).await;
    let replacement_ready = deleted.elapsed();
    let replacement_name = replacement.metadata.name.clone().unwrap();
    let lines = bed
        .wait_lines(&replacement_name, "recorded", &drained.later)
        .await;
    let mut all = ids(&drained.processor, "recorded");
    all.extend(ids(&lines, "recorded"));
    let every: Vec<String> = before.iter().chain(&drained.later).cloned().collect();
    assert_eq!(
        sorted(all),
        sorted(every),
        "each event recorded once over both pods"
    );
    bed.wait_drained().await;
    let created = replacement.metadata.creation_timestamp.clone().unwrap().0;
    eprintln!(
        "pods_custom: pod deleted with {order}; pod gone {:.1} s after the delete; the replacement pod created {created}, Ready {} ({:.0} s), {:.1} s after the delete",
        drained.gone.as_secs_f64(),
        ready_since(&replacement),
        seconds(created, ready_since(&replacement)),
        replacement_ready.as_secs_f64()
    );
    bed.stop().await;
}

/// What a pod deleted by [`delete`] showed until it was gone.
struct Drained {
    /// Its worker's and processor's log lines, followed to their end.
    worker: Vec<Line>,
    processor: Vec<Line>,
    /// Each container's exit code and time (whole seconds).
    exits: std::collections::BTreeMap<String, (i32, Timestamp)>,
    /// The events sent once the worker had its SIGTERM.
    later: Vec<String>,
    /// From the delete to the pod gone.
    gone: std::time::Duration,
}

/// Deletes pod `name` (SIGTERM to the worker, then to the processor), sends four more events once the
/// worker has its SIGTERM (for the replacement pod, never this one), and follows both containers' logs
/// and the pod's status until it is gone.
async fn delete(bed: &NodePipeline, name: &str) -> Drained {
    let (worker_lines, worker_log) = bed.follow(name, "worker").await;
    let (processor_lines, processor_log) = bed.follow(name, "processor").await;
    let exits = watch_exits(bed.pods.clone(), name.to_owned()).await;
    let deleted = Instant::now();
    bed.pods.delete(name, &DeleteParams::default()).await.unwrap();
    common::eventually("the worker's SIGTERM", CONVERGE, || async {
        let lines = worker_lines.lock().unwrap();
        let term = lines.iter().any(|l| l.message() == SIGTERM);
        term.then_some(())
    })
    .await;
    let later = bed.send(&events("after", 4)).await;
    tokio::time::timeout(CONVERGE, worker_log).await.unwrap().unwrap();
    tokio::time::timeout(CONVERGE, processor_log)
        .await
        .unwrap()
        .unwrap();
    let exits = tokio::time::timeout(CONVERGE, exits).await.unwrap().unwrap();
    let worker = worker_lines.lock().unwrap().clone();
    for line in &worker {
        eprintln!("worker {} {}", line.at, line.entry["fields"]);
    }
    let processor = processor_lines.lock().unwrap().clone();
    Drained {
        worker,
        processor,
        exits,
        later,
        gone: deleted.elapsed(),
    }
}

/// What the worker logs on SIGTERM.
const SIGTERM: &str = "received SIGTERM; shutting down";

/// The order, in the kubelet's timestamps: SIGTERM reaches the worker; no delivery starts after it; the
/// deliveries in flight finish (the processor answers them) before the worker stops; only then does the
/// processor get its SIGTERM, with nothing in flight. Every event of `before` (sent before the deletion)
/// is recorded once by this pod. Returns a summary with the times.
fn assert_drained_in_order(drained: &Drained, before: &[String]) -> String {
    let (worker, processor) = (&drained.worker, &drained.processor);
    let sigterm = first(worker, SIGTERM).at;
    let stopped = first(worker, "worker stopped");
    let recorded = ids(processor, "recorded");
    assert_eq!(
        sorted(recorded),
        sorted(before.to_vec()),
        "each once: {processor:#?}"
    );
    assert_eq!(stopped.entry["fields"]["processed"], before.len(), "{stopped:?}");
    let finishing: Vec<&Line> = processor
        .iter()
        .filter(|l| l.message() == "recorded" && l.at > sigterm)
        .collect();
    assert!(
        !finishing.is_empty(),
        "nothing in flight at SIGTERM: {processor:#?}"
    );
    let late: Vec<&&Line> = finishing.iter().filter(|l| l.at > stopped.at).collect();
    assert!(
        late.is_empty(),
        "finished after the worker stopped: {late:?} {stopped:?}"
    );
    let arrivals: Vec<&Line> = processor
        .iter()
        .filter(|l| l.message() == "holding" && l.at > sigterm)
        .collect();
    assert!(arrivals.is_empty(), "deliveries after SIGTERM: {arrivals:?}");
    let stopping = first(processor, "stopping");
    assert!(
        stopping.at > stopped.at,
        "the processor stopped first: {stopping:?} {stopped:?}"
    );
    assert_eq!(stopping.entry["in_flight"], 0);
    first(processor, "stopped");
    let (worker_exit, processor_exit) = (drained.exits["worker"], drained.exits["processor"]);
    assert_eq!((worker_exit.0, processor_exit.0), (0, 0), "{:?}", drained.exits);
    assert!(worker_exit.1 <= processor_exit.1, "{:?}", drained.exits);
    format!(
        "{} of {} deliveries in flight; worker drained {:.2} s after SIGTERM, processor stopped {:.2} s after the worker",
        finishing.len(),
        before.len(),
        seconds(sigterm, stopped.at),
        seconds(stopped.at, stopping.at)
    )
}
