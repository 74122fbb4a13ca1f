//! Leader election on a `coordination.k8s.io/v1` Lease, the way client-go does it, so that with several
//! controller replicas exactly one reconciles and the others stand by.
//!
//! A candidate reads the Lease and takes it when it is missing (create), unheld (empty `holderIdentity`)
//! or expired (`renewTime + leaseDurationSeconds` in the past). Every write is a create or a replace
//! carrying the `resourceVersion` that was read, so when two candidates race the API server accepts one
//! write and answers the other 409 Conflict: two candidates can never both win. The leader then renews
//! `renewTime` every `renew_every`; if it cannot renew before its own lease would expire, or another
//! holder shows up, it reports the lease lost.
//!
//! Expiry is judged from the `renewTime` written by the holder against this replica's clock, so replicas
//! need roughly synchronised clocks (NTP); the lease duration should dwarf any skew.

use std::time::Duration;

use k8s_openapi::{
    api::coordination::v1::{Lease, LeaseSpec},
    apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta},
    jiff::{SignedDuration, Timestamp},
};
use kube::{Api, Client, api::PostParams};
use tokio::{sync::watch, task::JoinHandle, time::Instant};

use super::metrics::Metrics;

/// Which Lease to hold, as whom, and for how long.
#[derive(Clone, Debug)]
pub struct LeaseConfig {
    /// Namespace of the Lease (usually the controller's own).
    pub namespace: String,
    /// Name of the Lease, shared by all replicas.
    pub name: String,
    /// This replica's identity (usually the pod name); must be unique among the candidates.
    pub identity: String,
    /// How long a lease stays valid after its last renewal (client-go's default is 15 s).
    pub lease_duration: Duration,
    /// How often the leader renews, and how often a standby retries; well under `lease_duration`.
    pub renew_every: Duration,
}

/// The lease, held: renewed by a background task until [`Leadership::release`], drop, or loss. Dropping
/// it without `release` stops renewing, and the lease then expires.
#[derive(Debug)]
pub struct Leadership {
    api: Api<Lease>,
    config: LeaseConfig,
    metrics: Metrics,
    /// Becomes true when the renewing task gives the lease up for lost.
    lost: watch::Receiver<bool>,
    /// The renewing task; taken by `release`, aborted on drop.
    renewer: Option<JoinHandle<()>>,
}

/// What a candidate should do about the Lease it read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Decision {
    /// This identity already holds it: renew.
    Renew,
    /// Unheld or expired: take it over.
    TakeOver,
    /// Someone else holds a live lease.
    Wait,
}

fn decide(spec: Option<&LeaseSpec>, identity: &str, now: Timestamp) -> Decision {
    let Some(spec) = spec else {
        return Decision::TakeOver;
    };
    match spec.holder_identity.as_deref() {
        None | Some("") => return Decision::TakeOver,
        Some(holder) if holder == identity => return Decision::Renew,
        Some(_) => {}
    }
    let (Some(renewed), Some(seconds)) = (&spec.renew_time, spec.lease_duration_seconds) else {
        // A holder that never stamped a renewal cannot prove it is alive.
        return Decision::TakeOver;
    };
    match renewed
        .0
        .checked_add(SignedDuration::from_secs(i64::from(seconds)))
    {
        Ok(expiry) if expiry < now => Decision::TakeOver,
        _ => Decision::Wait,
    }
}

/// `spec` rewritten for `identity` holding the lease from `now`: a takeover also stamps `acquireTime` and
/// counts a transition when the holder changes.
fn claimed(spec: Option<LeaseSpec>, config: &LeaseConfig, now: Timestamp) -> LeaseSpec {
    let mut spec = spec.unwrap_or_default();
    let previous = spec.holder_identity.take().filter(|holder| !holder.is_empty());
    if previous.as_deref() != Some(config.identity.as_str()) {
        spec.acquire_time = Some(MicroTime(now));
        if previous.is_some() || spec.lease_transitions.is_some() {
            spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0).saturating_add(1));
        } else {
            spec.lease_transitions = Some(0);
        }
    }
    spec.holder_identity = Some(config.identity.clone());
    spec.lease_duration_seconds = Some(duration_seconds(config.lease_duration));
    spec.renew_time = Some(MicroTime(now));
    spec
}

fn duration_seconds(duration: Duration) -> i32 {
    // The API field is whole seconds; round up so a sub-second lease still lasts at least one second.
    let seconds = duration.as_secs() + u64::from(duration.subsec_nanos() > 0);
    i32::try_from(seconds.max(1)).unwrap_or(i32::MAX)
}

/// A write lost a race (409) or the object vanished or appeared meanwhile: read again and retry.
fn is_race(error: &kube::Error) -> bool {
    matches!(error, kube::Error::Api(status)
        if status.is_conflict() || status.is_already_exists() || status.is_not_found())
}

/// Worth retrying rather than failing `acquire`: races, throttling, server errors, no connection.
fn is_retryable(error: &kube::Error) -> bool {
    match error {
        kube::Error::Api(status) => is_race(error) || status.code == 429 || status.code >= 500,
        _ => true,
    }
}

/// One attempt to take or renew the lease: `Ok(true)` when this identity holds it afterwards.
async fn try_claim(api: &Api<Lease>, config: &LeaseConfig) -> Result<bool, kube::Error> {
    let now = Timestamp::now();
    let Some(mut lease) = api.get_opt(&config.name).await? else {
        let lease = Lease {
            metadata: ObjectMeta {
                name: Some(config.name.clone()),
                ..ObjectMeta::default()
            },
            spec: Some(claimed(None, config, now)),
        };
        api.create(&PostParams::default(), &lease).await?;
        return Ok(true);
    };
    if decide(lease.spec.as_ref(), &config.identity, now) == Decision::Wait {
        return Ok(false);
    }
    // The read resourceVersion stays in the metadata: the replace fails with 409 if anyone wrote since.
    lease.spec = Some(claimed(lease.spec.take(), config, now));
    api.replace(&config.name, &PostParams::default(), &lease).await?;
    Ok(true)
}

/// Waits until this identity holds the lease (creating it if missing, taking it over when expired or
/// unheld), then keeps renewing it in a spawned task. Retries races and transient API errors every
/// `renew_every`; fails on errors that retrying cannot fix (such as a missing RBAC permission).
pub async fn acquire(
    client: Client,
    config: LeaseConfig,
    metrics: Metrics,
) -> Result<Leadership, kube::Error> {
    let api: Api<Lease> = Api::namespaced(client, &config.namespace);
    let claimed_at = loop {
        let attempted = Instant::now();
        match try_claim(&api, &config).await {
            Ok(true) => break attempted,
            Ok(false) => {}
            Err(error) if is_race(&error) => {}
            Err(error) if is_retryable(&error) => {
                tracing::warn!(%error, lease = %config.name, "cannot read or claim the leader lease; retrying");
            }
            Err(error) => return Err(error),
        }
        tokio::time::sleep_until(attempted + config.renew_every).await;
    };
    tracing::info!(lease = %config.name, identity = %config.identity, "acquired the leader lease");
    metrics.set_leader(true);
    let (lost_tx, lost) = watch::channel(false);
    let renewer = tokio::spawn(renew(
        api.clone(),
        config.clone(),
        metrics.clone(),
        lost_tx,
        claimed_at,
    ));
    Ok(Leadership {
        api,
        config,
        metrics,
        lost,
        renewer: Some(renewer),
    })
}

/// Renews until a renewal shows another holder, or none succeeds before the lease would expire; then
/// marks the lease lost and returns.
async fn renew(
    api: Api<Lease>,
    config: LeaseConfig,
    metrics: Metrics,
    lost: watch::Sender<bool>,
    claimed_at: Instant,
) {
    // The lease is ours until this instant unless renewed; measured from before the claiming request was
    // sent, since that is when its renewTime was stamped.
    let mut deadline = claimed_at + config.lease_duration;
    loop {
        tokio::time::sleep(config.renew_every).await;
        let attempted = Instant::now();
        // Give up when the deadline passes, even while a request hangs: by then a standby may lead.
        match tokio::time::timeout_at(deadline, renew_once(&api, &config)).await {
            Ok(Ok(true)) => deadline = attempted + config.lease_duration,
            Ok(Ok(false)) => {
                tracing::warn!(lease = %config.name, "another replica took the leader lease");
                break;
            }
            Ok(Err(error)) if Instant::now() < deadline => {
                tracing::warn!(%error, lease = %config.name, "cannot renew the leader lease; retrying");
            }
            Ok(Err(_)) | Err(_) => {
                tracing::warn!(lease = %config.name, "could not renew the leader lease before it expired");
                break;
            }
        }
    }
    metrics.set_leader(false);
    lost.send_replace(true);
}

/// `Ok(false)` when the lease now belongs to someone else.
async fn renew_once(api: &Api<Lease>, config: &LeaseConfig) -> Result<bool, kube::Error> {
    let mut lease = api.get(&config.name).await?;
    if decide(lease.spec.as_ref(), &config.identity, Timestamp::now()) != Decision::Renew {
        return Ok(false);
    }
    lease.spec = Some(claimed(lease.spec.take(), config, Timestamp::now()));
    api.replace(&config.name, &PostParams::default(), &lease).await?;
    Ok(true)
}

impl Leadership {
    /// Resolves when the lease was lost: renewal failed for longer than the lease duration, or another
    /// holder took it. The controller should stop reconciling at once.
    pub async fn lost(&self) {
        let mut lost = self.lost.clone();
        // An error means the renewing task is gone, which also means nobody is renewing.
        let _ = lost.wait_for(|lost| *lost).await;
    }

    /// Stops renewing and clears `holderIdentity`, so a standby takes over at its next retry instead of
    /// waiting for the lease to expire. Best effort: on failure the lease simply expires.
    pub async fn release(mut self) {
        if let Some(renewer) = self.renewer.take() {
            renewer.abort();
            // Wait for the abort so that no renewal can land after the release below.
            let _ = renewer.await;
        }
        self.metrics.set_leader(false);
        let name = self.config.name.clone();
        let result = async {
            let mut lease = self.api.get(&name).await?;
            let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
            if spec.holder_identity.as_deref() != Some(self.config.identity.as_str()) {
                return Ok(());
            }
            // What client-go writes on release: no holder, a one-second lease, stamped now.
            spec.holder_identity = None;
            spec.lease_duration_seconds = Some(1);
            spec.renew_time = Some(MicroTime(Timestamp::now()));
            self.api
                .replace(&name, &PostParams::default(), &lease)
                .await
                .map(drop)
        }
        .await;
        match result {
            Ok(()) => tracing::info!(lease = %name, "released the leader lease"),
            Err(error) => {
                tracing::warn!(%error, lease = %name, "cannot release the leader lease; it will expire")
            }
        }
    }
}

impl Drop for Leadership {
    fn drop(&mut self) {
        if let Some(renewer) = self.renewer.take() {
            renewer.abort();
            self.metrics.set_leader(false);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> LeaseConfig {
        LeaseConfig {
            namespace: "ns".into(),
            name: "lease".into(),
            identity: "me".into(),
            lease_duration: Duration::from_millis(2500),
            renew_every: Duration::from_secs(1),
        }
    }

    fn spec(holder: Option<&str>, renewed: Timestamp, seconds: i32) -> LeaseSpec {
        LeaseSpec {
            holder_identity: holder.map(str::to_owned),
            renew_time: Some(MicroTime(renewed)),
            lease_duration_seconds: Some(seconds),
            lease_transitions: Some(3),
            ..LeaseSpec::default()
        }
    }

    #[test]
    fn decides_from_holder_and_expiry() {
        let now = Timestamp::now();
        let ago = |s: i64| now - SignedDuration::from_secs(s);
        assert_eq!(decide(None, "me", now), Decision::TakeOver);
        assert_eq!(decide(Some(&spec(None, now, 15)), "me", now), Decision::TakeOver);
        assert_eq!(
            decide(Some(&spec(Some(""), now, 15)), "me", now),
            Decision::TakeOver
        );
        assert_eq!(
            decide(Some(&spec(Some("me"), ago(60), 15)), "me", now),
            Decision::Renew
        );
        assert_eq!(
            decide(Some(&spec(Some("other"), ago(10), 15)), "me", now),
            Decision::Wait
        );
        assert_eq!(
            decide(Some(&spec(Some("other"), ago(16), 15)), "me", now),
            Decision::TakeOver
        );
        let unstamped = LeaseSpec {
            holder_identity: Some("other".into()),
            ..LeaseSpec::default()
        };
        assert_eq!(decide(Some(&unstamped), "me", now), Decision::TakeOver);
    }

    #[test]
    fn claiming_counts_transitions_like_client_go() {
        let now = Timestamp::now();
        let earlier = now - SignedDuration::from_secs(30);
        let fresh = claimed(None, &config(), now);
        assert_eq!(fresh.holder_identity.as_deref(), Some("me"));
        assert_eq!(fresh.lease_transitions, Some(0));
        assert_eq!(fresh.lease_duration_seconds, Some(3));
        assert_eq!(fresh.acquire_time, Some(MicroTime(now)));

        let taken = claimed(Some(spec(Some("other"), earlier, 15)), &config(), now);
        assert_eq!(taken.lease_transitions, Some(4));
        assert_eq!(taken.acquire_time, Some(MicroTime(now)));

        let mut mine = spec(Some("me"), earlier, 3);
        mine.acquire_time = Some(MicroTime(earlier));
        let renewed = claimed(Some(mine), &config(), now);
        assert_eq!(renewed.lease_transitions, Some(3));
        assert_eq!(renewed.acquire_time, Some(MicroTime(earlier)));
        assert_eq!(renewed.renew_time, Some(MicroTime(now)));
    }
}
