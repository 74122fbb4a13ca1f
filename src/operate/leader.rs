//! Leader election on a `coordination.k8s.io/v1` Lease, the way client-go does it, so that with several
//! controller replicas exactly one acts and the others stand by.
//!
//! Three durations govern it (client-go's defaults 15 s, 10 s, 2 s):
//! - `lease_duration`: how long a standby waits, after it last saw the Lease change, before it takes the
//!   Lease over. Expiry is judged by time observed locally (this process's monotonic clock since the
//!   record last changed), never by comparing the holder's `renewTime` with this replica's wall clock, so
//!   clock skew between nodes does not matter.
//! - `renew_deadline`: the leader acts only until the start of its last successful renewal plus this.
//!   That instant is the [`Fence`] every cloud call and API-server write checks; a leader that cannot
//!   renew before it passes has lost the lease and stops at once. Being shorter than `lease_duration`, it
//!   passes before any standby, which saw the renewal no earlier than it was sent, may take over.
//! - `retry_period`: how often the leader renews and a standby looks.
//!
//! Every write is a create or a replace carrying the `resourceVersion` that was read, so when two
//! candidates race the API server accepts one write and answers the other 409 Conflict.

use std::time::Duration;

use k8s_openapi::{
    api::coordination::v1::{Lease, LeaseSpec},
    apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta},
    jiff::Timestamp,
};
use kube::{Api, Client, api::PostParams};
use tokio::{sync::watch, task::JoinHandle, time::Instant};

use super::fence::Fence;
use super::metrics::Metrics;

/// Which Lease to hold, as whom, and its timing.
#[derive(Clone, Debug)]
pub struct LeaseConfig {
    /// Namespace of the Lease (usually the controller's own).
    pub namespace: String,
    /// Name of the Lease, shared by all replicas.
    pub name: String,
    /// This replica's identity (usually the pod name); must be unique among the candidates.
    pub identity: String,
    /// How long a standby waits after it last saw the Lease change before taking it over (15 s).
    pub lease_duration: Duration,
    /// How long after the start of its last successful renewal the leader may act (10 s).
    pub renew_deadline: Duration,
    /// How often the leader renews and a standby retries (2 s).
    pub retry_period: Duration,
}

/// A timing of [`LeaseConfig`] that cannot keep two leaders apart (client-go's rules).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TimingError {
    /// The leader could still act when a standby takes over.
    #[error(
        "the renew deadline ({renew_deadline:?}) must be shorter than the lease duration \
         ({lease_duration:?}): a leader must stop acting before a standby may take over"
    )]
    RenewDeadlineNotShorter {
        /// The renew deadline given.
        renew_deadline: Duration,
        /// The lease duration given.
        lease_duration: Duration,
    },
    /// A failed renewal could not be retried before the deadline.
    #[error(
        "the renew deadline ({renew_deadline:?}) must be longer than 1.2 times the retry period \
         ({retry_period:?}), so that a failed renewal is retried before it"
    )]
    RetryPeriodTooLong {
        /// The renew deadline given.
        renew_deadline: Duration,
        /// The retry period given.
        retry_period: Duration,
    },
    /// Renewing without pause would flood the API server.
    #[error("the retry period must be longer than zero")]
    ZeroRetryPeriod,
}

impl LeaseConfig {
    /// Checks the timing: `lease_duration > renew_deadline > 1.2 × retry_period > 0`.
    pub fn check_timing(&self) -> Result<(), TimingError> {
        if self.retry_period.is_zero() {
            return Err(TimingError::ZeroRetryPeriod);
        }
        if self.renew_deadline >= self.lease_duration {
            return Err(TimingError::RenewDeadlineNotShorter {
                renew_deadline: self.renew_deadline,
                lease_duration: self.lease_duration,
            });
        }
        if self.renew_deadline.as_secs_f64() <= self.retry_period.as_secs_f64() * 1.2 {
            return Err(TimingError::RetryPeriodTooLong {
                renew_deadline: self.renew_deadline,
                retry_period: self.retry_period,
            });
        }
        Ok(())
    }
}

/// The lease, held: renewed by a background task until [`Leadership::release`], drop, or loss. Dropping
/// it without `release` stops renewing and closes the fence; the lease then expires.
#[derive(Debug)]
pub struct Leadership {
    api: Api<Lease>,
    config: LeaseConfig,
    metrics: Metrics,
    /// Open until the renew deadline after the last successful renewal.
    fence: Fence,
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

/// The Lease record as a candidate last read it, and since when (on its monotonic clock) it has read it
/// unchanged: client-go's "observed time".
#[derive(Clone, Debug, PartialEq)]
struct Observed {
    spec: Option<LeaseSpec>,
    since: Instant,
}

impl Observed {
    /// What is known after reading `spec` at `now`: an unchanged record keeps the time it was first
    /// seen; any change (a renewal, a new holder) starts the count again.
    fn after_reading(previous: Option<Self>, spec: Option<&LeaseSpec>, now: Instant) -> Self {
        match previous {
            Some(previous) if previous.spec.as_ref() == spec => previous,
            _ => Self {
                spec: spec.cloned(),
                since: now,
            },
        }
    }
}

/// Whether `identity` may take the lease at `now`. Another holder's lease counts as expired once the
/// record has stayed unchanged for its `leaseDurationSeconds` (`fallback` when it has none) of this
/// process's time.
fn decide(observed: &Observed, identity: &str, fallback: Duration, now: Instant) -> Decision {
    let Some(spec) = &observed.spec else {
        return Decision::TakeOver;
    };
    match spec.holder_identity.as_deref() {
        None | Some("") => return Decision::TakeOver,
        Some(holder) if holder == identity => return Decision::Renew,
        Some(_) => {}
    }
    let duration = spec
        .lease_duration_seconds
        .and_then(|seconds| u64::try_from(seconds).ok())
        .filter(|seconds| *seconds > 0)
        .map_or(fallback, Duration::from_secs);
    if now.saturating_duration_since(observed.since) >= duration {
        Decision::TakeOver
    } else {
        Decision::Wait
    }
}

/// How one renewal attempt went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Attempt {
    /// The Lease now carries a new `renewTime` of this identity.
    Renewed,
    /// Another identity holds the Lease.
    Taken,
    /// No answer, or an error: try again.
    Failed,
}

/// What the leader does after an attempt that started at `started` and ended at `ended`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Renewal {
    /// Lead until this instant.
    Extended(Instant),
    /// Try again after the retry period.
    Retry,
    /// Stop acting, for this reason.
    Lost(&'static str),
}

/// The leader's rule: a renewal counts only if it ended before the current deadline (`leading_until`);
/// it extends the deadline to its own start plus `renew_deadline`, since the server stamped it no earlier
/// than that and standbys count from when they saw it.
fn after_attempt(
    attempt: Attempt,
    started: Instant,
    ended: Instant,
    leading_until: Instant,
    renew_deadline: Duration,
) -> Renewal {
    if ended >= leading_until {
        return Renewal::Lost("the renew deadline passed without a successful renewal");
    }
    match attempt {
        Attempt::Renewed => Renewal::Extended(started + renew_deadline),
        Attempt::Taken => Renewal::Lost("another replica holds the lease"),
        Attempt::Failed => Renewal::Retry,
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

/// One attempt to take the lease: `Ok(true)` when this identity holds it afterwards. `observed` is what
/// this candidate knew of the record before, and is updated from what it reads.
async fn try_claim(
    api: &Api<Lease>,
    config: &LeaseConfig,
    observed: &mut Option<Observed>,
) -> Result<bool, kube::Error> {
    let Some(mut lease) = api.get_opt(&config.name).await? else {
        let lease = Lease {
            metadata: ObjectMeta {
                name: Some(config.name.clone()),
                ..ObjectMeta::default()
            },
            spec: Some(claimed(None, config, Timestamp::now())),
        };
        api.create(&PostParams::default(), &lease).await?;
        return Ok(true);
    };
    // Observed when the answer arrived: the later instant, so a standby never waits too little.
    let read_at = Instant::now();
    let seen = Observed::after_reading(observed.take(), lease.spec.as_ref(), read_at);
    let decision = decide(&seen, &config.identity, config.lease_duration, read_at);
    *observed = Some(seen);
    if decision == Decision::Wait {
        return Ok(false);
    }
    // The read resourceVersion stays in the metadata: the replace fails with 409 if anyone wrote since.
    lease.spec = Some(claimed(lease.spec.take(), config, Timestamp::now()));
    api.replace(&config.name, &PostParams::default(), &lease).await?;
    Ok(true)
}

/// Waits until this identity holds the lease (creating it if missing, taking it over when unheld or
/// unchanged for its duration), then keeps renewing it in a spawned task; [`Leadership::fence`] is open
/// while the lease is held. Retries races and transient API errors every `retry_period`; fails on errors
/// that retrying cannot fix (such as a missing RBAC permission).
pub async fn acquire(
    client: Client,
    config: LeaseConfig,
    metrics: Metrics,
) -> Result<Leadership, kube::Error> {
    let api: Api<Lease> = Api::namespaced(client, &config.namespace);
    let mut observed = None;
    let claimed_at = loop {
        let attempted = Instant::now();
        match try_claim(&api, &config, &mut observed).await {
            Ok(true) => break attempted,
            Ok(false) => {}
            Err(error) if is_race(&error) => {}
            Err(error) if is_retryable(&error) => {
                tracing::warn!(%error, lease = %config.name, "cannot read or claim the leader lease; retrying");
            }
            Err(error) => return Err(error),
        }
        tokio::time::sleep_until(attempted + config.retry_period).await;
    };
    // The claim was stamped after it was sent: leading until its start plus the renew deadline is safe.
    let fence = Fence::closed();
    let leading_until = claimed_at + config.renew_deadline;
    fence.open_until(leading_until);
    tracing::info!(lease = %config.name, identity = %config.identity, "acquired the leader lease");
    metrics.set_leader(true);
    let (lost_tx, lost) = watch::channel(false);
    let renewer = tokio::spawn(renew(
        api.clone(),
        config.clone(),
        metrics.clone(),
        (fence.clone(), lost_tx),
        leading_until,
    ));
    Ok(Leadership {
        api,
        config,
        metrics,
        fence,
        lost,
        renewer: Some(renewer),
    })
}

/// Renews every `retry_period` until a renewal shows another holder or none succeeds before the renew
/// deadline; then closes the fence, marks the lease lost and returns.
async fn renew(
    api: Api<Lease>,
    config: LeaseConfig,
    metrics: Metrics,
    (fence, lost): (Fence, watch::Sender<bool>),
    mut leading_until: Instant,
) {
    let reason = loop {
        tokio::time::sleep(config.retry_period).await;
        let started = Instant::now();
        // Give up when the deadline passes, even while a request hangs: by then a standby may lead.
        let attempt = match tokio::time::timeout_at(leading_until, renew_once(&api, &config)).await {
            Ok(Ok(true)) => Attempt::Renewed,
            Ok(Ok(false)) => Attempt::Taken,
            Ok(Err(error)) => {
                tracing::warn!(%error, lease = %config.name, "cannot renew the leader lease; retrying");
                Attempt::Failed
            }
            Err(_) => Attempt::Failed,
        };
        match after_attempt(
            attempt,
            started,
            Instant::now(),
            leading_until,
            config.renew_deadline,
        ) {
            Renewal::Extended(until) => {
                leading_until = until;
                fence.open_until(until);
            }
            Renewal::Retry => {}
            Renewal::Lost(reason) => break reason,
        }
    };
    fence.close();
    metrics.set_leader(false);
    tracing::error!(lease = %config.name, identity = %config.identity, reason, "lost the leader lease");
    lost.send_replace(true);
}

/// `Ok(false)` when the lease now belongs to someone else.
async fn renew_once(api: &Api<Lease>, config: &LeaseConfig) -> Result<bool, kube::Error> {
    let mut lease = api.get(&config.name).await?;
    let holder = lease.spec.as_ref().and_then(|s| s.holder_identity.as_deref());
    if holder != Some(config.identity.as_str()) {
        return Ok(false);
    }
    lease.spec = Some(claimed(lease.spec.take(), config, Timestamp::now()));
    api.replace(&config.name, &PostParams::default(), &lease).await?;
    Ok(true)
}

impl Leadership {
    /// The fence of this leadership: open until the renew deadline after the last successful renewal,
    /// closed once the lease is lost, released or dropped. Give it to every client that acts.
    pub fn fence(&self) -> Fence {
        self.fence.clone()
    }

    /// Resolves when the lease was lost: no renewal succeeded before the renew deadline, or another
    /// holder took it. The fence is already closed then; the process should stop.
    pub async fn lost(&self) {
        let mut lost = self.lost.clone();
        // An error means the renewing task is gone, which also means nobody is renewing.
        let _ = lost.wait_for(|lost| *lost).await;
    }

    /// Stops renewing and clears `holderIdentity`, so a standby takes over at its next retry instead of
    /// waiting for the lease to expire. Best effort: on failure the lease simply expires.
    pub async fn release(mut self) {
        self.fence.close();
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
        self.fence.close();
        if let Some(renewer) = self.renewer.take() {
            renewer.abort();
            self.metrics.set_leader(false);
        }
    }
}

#[cfg(test)]
#[path = "leader_tests.rs"]
mod tests;
