//! Scaling from the backlog: the SQS queue's visible and in-flight messages from the fake, replicas by
//! the per-replica target within the bounds, the `Scaled` Event, the spike filter (asks that persist),
//! the scale-down stabilization window over the remembered asks, and how soon the Consumer is looked at
//! again.

use std::{collections::BTreeMap, time::Duration};

use super::*;
use crate::{
    api::consumer::ScaleDecision,
    cloud::queue::{MessageQueue as _, Receive},
};

/// `count` messages in the queue at `url`, `in_flight` of them received and not yet deleted.
async fn backlog(h: &Harness, url: &str, count: usize, in_flight: usize) {
    let queue = h.cloud.messages(url);
    for n in 0..count {
        queue.push(&format!("order {n}"), BTreeMap::new(), BTreeMap::new());
    }
    let mut taken = 0;
    while taken < in_flight {
        let max = i32::try_from((in_flight - taken).min(10)).unwrap();
        taken += queue.receive(&Receive::work(max, 0, None)).await.unwrap().len();
    }
}

fn with_scaling(scaling: Value) -> Consumer {
    consumer(json!({
        "source": {"queueRef": {"name": "jobs"}},
        "processor": "notification",
        "scaling": scaling,
    }))
}

/// The replicas of the Deployment as last applied.
fn deployment_replicas(h: &Harness) -> Option<i32> {
    child::<Deployment>(h)?.spec?.replicas
}

/// RFC 3339 of `ago` before now.
fn time_ago(ago: Duration) -> String {
    let at = time::OffsetDateTime::now_utc() - ago;
    at.format(&time::format_description::well_known::Rfc3339).unwrap()
}

/// `consumer` as after a reconcile that scaled it from `from` to `to`, `ago` before now.
fn scaled(consumer: &Consumer, from: i32, to: i32, ago: Duration) -> Consumer {
    let mut consumer = consumer.clone();
    consumer.status = Some(ConsumerStatus {
        last_scale: Some(ScaleDecision {
            from,
            to,
            reason: "earlier".into(),
            time: time_ago(ago),
        }),
        ..ConsumerStatus::default()
    });
    consumer
}

#[tokio::test]
async fn an_empty_queue_runs_the_minimum_of_replicas() {
    let mut h = Harness::new();
    jobs_queue(&mut h).await;
    let applied = apply(&h, &with_scaling(json!({"minReplicas": 2}))).await.unwrap();
    assert_eq!(deployment_replicas(&h), Some(2));
    assert_eq!(applied.status.backlog, Some(0));
    let decision = applied.status.last_scale.unwrap();
    assert_eq!((decision.from, decision.to), (0, 2));
    assert_eq!(h.api.event_reasons(), [SCALED]);
}

#[tokio::test]
async fn an_idle_consumer_with_no_minimum_scales_to_zero_and_is_ready() {
    let mut h = Harness::new();
    jobs_queue(&mut h).await;
    let applied = apply(&h, &with_scaling(json!({"minReplicas": 0}))).await.unwrap();
    assert_eq!(deployment_replicas(&h), Some(0));
    assert!(
        applied.not_ready.is_none(),
        "no worker is needed: {:?}",
        applied.not_ready
    );
    assert_eq!(applied.status.last_scale, None, "0 to 0 is no decision");
    assert!(h.api.event_reasons().is_empty());
}

#[tokio::test]
async fn visible_and_in_flight_messages_set_replicas_by_the_per_replica_target() {
    let mut h = Harness::new();
    let url = jobs_queue(&mut h).await;
    backlog(&h, &url, 250, 30).await;
    let applied = apply(&h, &with_scaling(json!({"targetBacklogPerReplica": 100})))
        .await
        .unwrap();
    assert_eq!(applied.status.backlog, Some(250), "in-flight messages count");
    assert_eq!(deployment_replicas(&h), Some(3), "⌈250 / 100⌉");
    let decision = applied.status.last_scale.unwrap();
    assert_eq!((decision.from, decision.to), (0, 3));
    assert_eq!(decision.reason, "backlog 250 / 100 per replica");
    let scaled = h
        .api
        .sent()
        .into_iter()
        .find(|s| s.body["reason"] == SCALED)
        .expect("a Scaled Event");
    assert_eq!(scaled.body["action"], "ScaleTo3");
    assert_eq!(
        scaled.body["note"],
        "scaled from 0 to 3 replicas: backlog 250 / 100 per replica"
    );
}

#[tokio::test]
async fn replicas_are_bounded_by_max_replicas() {
    let mut h = Harness::new();
    let url = jobs_queue(&mut h).await;
    backlog(&h, &url, 1_000, 0).await;
    let bounded = with_scaling(json!({"maxReplicas": 4, "targetBacklogPerReplica": 10}));
    let applied = apply(&h, &bounded).await.unwrap();
    assert_eq!(applied.status.backlog, Some(1_000));
    assert_eq!(deployment_replicas(&h), Some(4), "not 100");
}

/// `consumer`'s key in the controller's memory.
fn key(consumer: &Consumer) -> String {
    describe(consumer)
}

/// The controller remembers `asks` of `consumer`, each `(seconds ago, replicas)`.
fn remembered(h: &Harness, consumer: &Consumer, asks: &[(i64, i32)]) {
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let asks = asks
        .iter()
        .map(|(ago, replicas)| crate::controller::consumer::scaling::Ask {
            at: now - ago,
            replicas: *replicas,
        })
        .collect();
    let mut entry = crate::controller::consumer::memory::Remembered::default();
    entry.asks = asks;
    h.ctx.consumers.put(&key(consumer), entry, now);
}

#[tokio::test]
async fn a_scale_down_waits_for_the_window_and_takes_its_highest_ask() {
    let mut h = Harness::new();
    jobs_queue(&mut h).await;
    let spec = with_scaling(json!({"scaleDownStabilizationSeconds": 300}));
    let running = scaled(&spec, 1, 5, Duration::from_secs(600));

    // The queue is empty, but the controller has seen only two minutes of asks: still 5.
    remembered(&h, &running, &[(120, 5), (60, 1)]);
    let applied = apply(&h, &running).await.unwrap();
    assert_eq!(deployment_replicas(&h), Some(5));
    assert_eq!(
        applied.status.last_scale,
        running.status.clone().unwrap().last_scale,
        "kept"
    );
    assert!(h.api.event_reasons().is_empty());

    // The window is covered and its highest ask is 3: down to 3, not to the minimum.
    remembered(&h, &running, &[(400, 5), (200, 3), (60, 1)]);
    let applied = apply(&h, &running).await.unwrap();
    assert_eq!(deployment_replicas(&h), Some(3));
    let decision = applied.status.last_scale.unwrap();
    assert_eq!((decision.from, decision.to), (5, 3));
    assert_eq!(h.api.event_reasons(), [SCALED]);

    // Only ones in the window: down to the minimum.
    remembered(&h, &running, &[(400, 5), (200, 1), (60, 1)]);
    apply(&h, &running).await.unwrap();
    assert_eq!(deployment_replicas(&h), Some(1));
}

#[tokio::test]
async fn one_spike_adds_no_replica_and_a_backlog_that_persists_does() {
    let mut h = Harness::new();
    let url = jobs_queue(&mut h).await;
    let running = scaled(&with_scaling(json!({})), 0, 1, Duration::from_secs(600));
    backlog(&h, &url, 300, 0).await;
    let spike = apply(&h, &running).await.unwrap();
    assert_eq!(
        deployment_replicas(&h),
        Some(1),
        "one observation of 300 is a spike"
    );
    assert_eq!(
        spike.status.last_scale,
        running.status.clone().unwrap().last_scale
    );
    assert_eq!(spike.status.backlog, Some(300), "the backlog is still reported");
    let persisted = apply(&h, &running).await.unwrap();
    assert_eq!(
        deployment_replicas(&h),
        Some(3),
        "the second (scaleUpObservations 2)"
    );
    assert_eq!(persisted.status.last_scale.map(|d| (d.from, d.to)), Some((1, 3)));
}

#[tokio::test]
async fn up_is_immediate_with_one_observation_and_for_a_new_consumer() {
    let mut h = Harness::new();
    let url = jobs_queue(&mut h).await;
    backlog(&h, &url, 300, 0).await;
    let unfiltered = with_scaling(json!({"scaleUpObservations": 1}));
    apply(&h, &scaled(&unfiltered, 0, 1, Duration::from_secs(1)))
        .await
        .unwrap();
    assert_eq!(deployment_replicas(&h), Some(3));
    let mut fresh = Harness::new();
    let url = jobs_queue(&mut fresh).await;
    backlog(&fresh, &url, 300, 0).await;
    apply(&fresh, &with_scaling(json!({}))).await.unwrap();
    assert_eq!(
        deployment_replicas(&fresh),
        Some(3),
        "never scaled: nothing to filter"
    );
}

#[tokio::test]
async fn a_draining_consumer_is_looked_at_again_at_the_scale_interval_and_sooner_while_not_ready() {
    let mut h = Harness::new();
    let url = jobs_queue(&mut h).await;
    backlog(&h, &url, 500, 0).await;
    let deployment = path::<Deployment>(WORKER);
    h.api.put_status(&deployment, json!({"readyReplicas": 1}));
    let ready = apply(&h, &of_jobs()).await.unwrap();
    assert!(ready.not_ready.is_none(), "1 of 5 is enough with minReplicas 1");
    assert_eq!(ready.requeue, Some(h.ctx.config.scale_interval));

    h.api.put_status(&deployment, json!({"readyReplicas": 0}));
    let starting = apply(&h, &of_jobs()).await.unwrap();
    assert!(starting.not_ready.is_some());
    let sooner = h.ctx.config.scale_interval.min(h.ctx.config.dependency_retry);
    assert!(
        sooner < h.ctx.config.scale_interval,
        "the defaults make this a test"
    );
    assert_eq!(starting.requeue, Some(sooner));
}
