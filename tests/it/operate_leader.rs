//! Leader election against the test bed's API server (`make testbed-up`): of several candidates for one
//! Lease exactly one leads; `release` hands over to a standby at once; a leader that stops renewing is
//! replaced once the standby has seen its lease unchanged for the lease duration; a leader whose lease
//! is taken learns it through `lost()` and its fence closes. Two controller processes, one frozen, are in
//! `operate_leader_fencing`.
#![allow(clippy::unwrap_used)]

use crate::support as common;

use std::time::Duration;

use k8s_openapi::{api::coordination::v1::Lease, jiff::SignedDuration};
use kube::{Api, api::PostParams};
use tokio::time::{Instant, timeout};
use tributary::operate::{Leadership, LeaseConfig, Metrics, acquire};

const LEASE: &str = "tributary-controller";

/// A Lease held for `lease_seconds`, renewed (and looked at) every `retry`, with a renew deadline of two
/// thirds of the lease duration.
fn config(namespace: &str, identity: &str, lease_seconds: u64, retry: Duration) -> LeaseConfig {
    let config = LeaseConfig {
        namespace: namespace.to_owned(),
        name: LEASE.to_owned(),
        identity: identity.to_owned(),
        lease_duration: Duration::from_secs(lease_seconds),
        renew_deadline: Duration::from_secs(lease_seconds) * 2 / 3,
        retry_period: retry,
    };
    config.check_timing().unwrap();
    config
}

async fn lease(client: &kube::Client, namespace: &str) -> Lease {
    Api::<Lease>::namespaced(client.clone(), namespace)
        .get(LEASE)
        .await
        .unwrap()
}

async fn holder(client: &kube::Client, namespace: &str) -> Option<String> {
    lease(client, namespace).await.spec.unwrap().holder_identity
}

fn is_leader(metrics: &Metrics) -> bool {
    metrics.render().lines().any(|line| line == "tributary_leader 1")
}

type Candidate = tokio::task::JoinHandle<Result<Leadership, kube::Error>>;

fn candidate(client: &kube::Client, config: LeaseConfig, metrics: &Metrics) -> Candidate {
    tokio::spawn(acquire(client.clone(), config, metrics.clone()))
}

#[tokio::test]
async fn one_of_many_candidates_leads_and_release_hands_over() {
    // Alone: renewals every 300 ms and hand-overs within seconds are judged on wall-clock time; a loaded
    // API server would make a live leader look expired.
    let _bed = common::exclusive().await;
    let client = common::kube_client().await;
    let ns = common::namespace(&client, "leader").await;
    let renew = Duration::from_millis(300);

    // Five candidates race for a Lease that does not exist yet: creates and replaces conflict, one wins.
    let metrics: Vec<Metrics> = (0..5).map(|_| Metrics::new()).collect();
    let mut candidates: Vec<Candidate> = (0..5)
        .map(|i| candidate(&client, config(&ns, &format!("c{i}"), 15, renew), &metrics[i]))
        .collect();
    let leader = common::eventually("a leader", Duration::from_secs(10), || {
        let finished = candidates.iter().position(|c| c.is_finished());
        async move { finished }
    })
    .await;
    // Several renew periods later, still only one has acquired, and the Lease names it.
    tokio::time::sleep(renew * 5).await;
    let finished: Vec<usize> = (0..5).filter(|i| candidates[*i].is_finished()).collect();
    assert_eq!(finished, vec![leader]);
    let leadership = candidates.remove(leader).await.unwrap().unwrap();
    let leader_metrics = metrics[leader].clone();
    assert_eq!(
        holder(&client, &ns).await.as_deref(),
        Some(format!("c{leader}").as_str())
    );
    assert!(is_leader(&leader_metrics));
    assert!(leadership.fence().is_open(), "the leader's fence is open");
    assert_eq!(metrics.iter().filter(|m| is_leader(m)).count(), 1);
    let before = lease(&client, &ns).await.spec.unwrap();
    assert_eq!(before.lease_transitions, Some(0));
    assert_eq!(before.lease_duration_seconds, Some(15));
    assert!(before.acquire_time.is_some());

    // The leader keeps renewing: renewTime moves forward while it holds the lease.
    tokio::time::sleep(renew * 3).await;
    let renewed = lease(&client, &ns).await.spec.unwrap();
    assert!(
        renewed.renew_time > before.renew_time,
        "renewTime did not advance"
    );
    assert_eq!(renewed.acquire_time, before.acquire_time);

    // Release: a standby takes over within a couple of seconds, not after the 15 s lease.
    let released = Instant::now();
    let fence = leadership.fence();
    leadership.release().await;
    assert!(!is_leader(&leader_metrics));
    assert!(!fence.is_open(), "a released leadership's fence is closed");
    let next = common::eventually("a standby to take over", Duration::from_secs(3), || {
        let finished = candidates.iter().position(|c| c.is_finished());
        async move { finished }
    })
    .await;
    assert!(released.elapsed() < Duration::from_secs(3));
    let next_leadership = candidates.remove(next).await.unwrap().unwrap();
    let after = lease(&client, &ns).await.spec.unwrap();
    assert_ne!(after.holder_identity, before.holder_identity);
    assert_eq!(after.lease_transitions, Some(1));
    assert!(after.acquire_time > before.acquire_time);

    for candidate in candidates {
        candidate.abort();
    }
    next_leadership.release().await;
    assert_eq!(holder(&client, &ns).await, None);
}

#[tokio::test]
async fn a_leader_that_stops_renewing_is_replaced_after_expiry() {
    // Alone: renewals every 300 ms and hand-overs within seconds are judged on wall-clock time; a loaded
    // API server would make a live leader look expired.
    let _bed = common::exclusive().await;
    let client = common::kube_client().await;
    let ns = common::namespace(&client, "leader").await;
    let renew = Duration::from_millis(300);

    let first = acquire(client.clone(), config(&ns, "first", 2, renew), Metrics::new())
        .await
        .unwrap();
    let second_metrics = Metrics::new();
    let second = candidate(&client, config(&ns, "second", 2, renew), &second_metrics);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(!second.is_finished(), "took over a live lease");

    // Dropping the leadership stops its renewals (as a crashed replica would) without releasing.
    drop(first);
    let last_renewal = lease(&client, &ns).await.spec.unwrap().renew_time.unwrap().0;
    let second = timeout(Duration::from_secs(6), second)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    // Not before the lease expired: the standby saw the last renewal no earlier than it was stamped, and
    // waited a lease duration from then (the lease's own timestamps, one clock: this machine's).
    let taken_over = lease(&client, &ns).await.spec.unwrap().acquire_time.unwrap().0;
    let expiry = last_renewal + SignedDuration::from_secs(2);
    assert!(
        taken_over > expiry,
        "taken over at {taken_over}, before expiry at {expiry}"
    );
    assert_eq!(holder(&client, &ns).await.as_deref(), Some("second"));
    assert!(is_leader(&second_metrics));
    second.release().await;
}

#[tokio::test]
async fn a_leader_learns_when_its_lease_is_taken() {
    // Alone: renewals every 300 ms and hand-overs within seconds are judged on wall-clock time; a loaded
    // API server would make a live leader look expired.
    let _bed = common::exclusive().await;
    let client = common::kube_client().await;
    let ns = common::namespace(&client, "leader").await;
    let metrics = Metrics::new();
    let leadership = acquire(
        client.clone(),
        config(&ns, "me", 15, Duration::from_millis(300)),
        metrics.clone(),
    )
    .await
    .unwrap();

    // Someone else writes itself in as holder: read and replace, again if a renewal got in between.
    let api = Api::<Lease>::namespaced(client.clone(), &ns);
    common::eventually("the intruder's write", Duration::from_secs(5), || {
        let api = api.clone();
        async move {
            let mut taken = api.get(LEASE).await.unwrap();
            taken.spec.as_mut().unwrap().holder_identity = Some("intruder".into());
            api.replace(LEASE, &PostParams::default(), &taken)
                .await
                .ok()
                .map(drop)
        }
    })
    .await;

    timeout(Duration::from_secs(3), leadership.lost())
        .await
        .expect("lost() did not resolve");
    assert!(!is_leader(&metrics));
    assert!(!leadership.fence().is_open(), "the fence closed with the loss");
    // Releasing after the loss leaves the new holder alone.
    leadership.release().await;
    assert_eq!(holder(&client, &ns).await.as_deref(), Some("intruder"));
}
