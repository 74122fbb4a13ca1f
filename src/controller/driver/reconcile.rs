//! The reconcile loop every kind shares: times the reconcile, skips providers without a controller, runs the
//! kind's apply or cleanup inside `kube::runtime::finalizer` (finalizer `tributary.dev/cleanup`, because
//! the objects stand for external resources), writes the status of the outcome, and classifies failures:
//! permanent → condition and wait for a change; liftable by the cloud or the cluster → condition and look
//! again at resync; dependency not ready → condition and look again soon; transient → condition and
//! per-object exponential backoff.

use std::{future::Future, sync::Arc, time::Duration};

use kube::{
    Api, ResourceExt,
    runtime::{
        controller::Action,
        finalizer::{self, finalizer},
    },
};

use super::gauges::{self, Gauges};
use super::{
    error::{Class, Error},
    events,
    status::{self, Kind, describe},
};
use crate::{
    api::common::Provider,
    controller::{Cloud, Context, FINALIZER},
};

/// How soon an object whose copy was out of date is looked at again.
const STALE_RETRY: Duration = Duration::from_secs(1);

/// The objects this controller added its finalizer to whose copy with the finalizer the watch has not
/// brought back yet (by UID).
#[derive(Debug, Default)]
pub struct AddedFinalizers {
    uids: std::sync::Mutex<std::collections::HashSet<String>>,
}

impl AddedFinalizers {
    fn lock(&self) -> std::sync::MutexGuard<'_, std::collections::HashSet<String>> {
        self.uids
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn added(&self, uid: &str) -> bool {
        self.lock().contains(uid)
    }

    fn record(&self, uid: &str) {
        self.lock().insert(uid.to_owned());
    }

    fn forget(&self, uid: &str) {
        self.lock().remove(uid);
    }
}

/// What a successful apply observed.
#[derive(Clone, Debug)]
pub struct Applied<S> {
    /// The status to write, without conditions (the driver adds Ready and Synced).
    pub status: S,
    /// The Ready condition's message.
    pub message: String,
    /// Look again this soon instead of at the next resync (e.g. a redrive in progress).
    pub requeue: Option<Duration>,
    /// Set when the cloud matches the spec but the object cannot be used yet (Ready=False, Synced=True).
    pub not_ready: Option<status::NotReady>,
}

/// A kind's apply and cleanup steps.
pub trait Reconciler<C: Cloud>: Gauges {
    /// Validate, build and apply; returns the observed status.
    fn apply(
        object: Arc<Self>,
        ctx: Arc<Context<C>>,
    ) -> impl Future<Output = Result<Applied<Self::Status>, Error>> + Send;

    /// Honour `deletionPolicy`: delete the cloud resource (already gone is success) or keep it.
    fn cleanup(object: Arc<Self>, ctx: Arc<Context<C>>) -> impl Future<Output = Result<(), Error>> + Send;

    /// Whether this kind is reconciled on `provider` (the others are reported `ProviderNotImplemented`).
    fn supports(provider: Provider) -> bool {
        provider == Provider::Aws
    }
}

/// Reconciles one object of kind `K`.
pub async fn reconcile<K: Reconciler<C>, C: Cloud>(
    object: Arc<K>,
    ctx: Arc<Context<C>>,
) -> Result<Action, Error> {
    let _timer = ctx.metrics.reconcile_started(K::KIND);
    let provider = object.provider();
    if !K::supports(provider) {
        // Not ours to act on yet: no finalizer, no cloud calls; say so in status.
        let desired = status::provider_not_implemented(provider);
        let status =
            status::with_conditions(&*object, object.status().cloned().unwrap_or_default(), &desired);
        status::write(&ctx.client, &ctx.written, &*object, &status).await?;
        return Ok(Action::await_change());
    }
    let namespace = object.namespace().unwrap_or_default();
    let api: Api<K> = Api::namespaced(ctx.client.clone(), &namespace);
    let uid = object.uid().unwrap_or_default();
    let has_finalizer = object.finalizers().iter().any(|f| f == FINALIZER);
    if !has_finalizer && object.meta().deletion_timestamp.is_none() && ctx.finalizers.added(&uid) {
        // This copy predates the finalizer this controller added (a related object woke it before the
        // watch brought the newer one back): adding it again would be refused, and cost a request.
        return Ok(Action::requeue(STALE_RETRY));
    }
    let result = finalizer(&api, FINALIZER, object.clone(), |event| {
        let ctx = ctx.clone();
        async move {
            match event {
                finalizer::Event::Apply(object) => applied::<K, C>(object, ctx).await,
                finalizer::Event::Cleanup(object) => {
                    ctx.verified.forget(&describe(&*object));
                    ctx.written.forget(&object.uid().unwrap_or_default());
                    K::cleanup(object, ctx).await?;
                    Ok(Action::await_change())
                }
            }
        }
    })
    .await;
    if let Err(error) = &result
        && is_stale(error)
    {
        // The object changed since the watch last passed it (typically: this reconcile was queued
        // while the previous one added the finalizer). Its newer version has other finalizers, so
        // the watch passes it and it is reconciled then; no failure to report.
        // Look again shortly rather than only on the next change: the change that made it stale may
        // already have been seen.
        tracing::debug!(object = %describe(&*object), %error, "stale object; waiting for the newer one");
        return Ok(Action::requeue(STALE_RETRY));
    }
    if result.is_ok() && !has_finalizer {
        ctx.finalizers.record(&uid);
    } else if has_finalizer {
        ctx.finalizers.forget(&uid);
    }
    match result.map_err(|error| flatten(&*object, error)) {
        Ok(action) => {
            let key = describe(&*object);
            ctx.backoff.succeeded(&key);
            ctx.waits.succeeded(&key);
            Ok(action)
        }
        Err(error) => failed(&*object, &ctx, error).await,
    }
}

/// Applies `object` and writes the status of what was applied; how long until it is looked at again.
async fn applied<K: Reconciler<C>, C: Cloud>(object: Arc<K>, ctx: Arc<Context<C>>) -> Result<Action, Error> {
    let applied = K::apply(object.clone(), ctx.clone()).await?;
    // After a full check, the next is due at the slot the verified cache gave it.
    let mut requeue = applied.requeue.unwrap_or_else(|| {
        ctx.verified
            .next_check(&describe(&*object))
            .unwrap_or_else(|| ctx.resync(K::KIND))
    });
    if applied.not_ready.is_some() {
        // The dependency's watch wakes it; this only bounds a missed wake-up.
        requeue = requeue.min(ctx.config.dependency_retry);
        if status::unannounced(&*object, ctx.config.quiet_start) {
            return Ok(Action::requeue(requeue));
        }
    }
    let desired = status::applied(applied.message, applied.not_ready.as_ref());
    let status = status::with_conditions(&*object, applied.status, &desired);
    status::write(&ctx.client, &ctx.written, &*object, &status).await?;
    gauges::observe(&ctx.metrics, &*object, &status);
    Ok(Action::requeue(requeue))
}

/// Whether a finalizer patch was refused because the object it was computed from is out of date: the
/// JSON patch tests the finalizers it saw (422), or the object is already gone (404).
fn is_stale(error: &finalizer::Error<Error>) -> bool {
    match error {
        finalizer::Error::AddFinalizer(kube::Error::Api(status)) => status.code == 422,
        finalizer::Error::RemoveFinalizer(kube::Error::Api(status)) => matches!(status.code, 404 | 422),
        _ => false,
    }
}

/// The cause inside a finalizer error, so the policy below sees what really failed.
fn flatten<K: Kind>(object: &K, error: finalizer::Error<Error>) -> Error {
    let described = describe(object);
    match error {
        finalizer::Error::ApplyFailed(error) | finalizer::Error::CleanupFailed(error) => error,
        finalizer::Error::AddFinalizer(source) => Error::kube(&described, "adding the finalizer", source),
        finalizer::Error::RemoveFinalizer(source) => {
            Error::kube(&described, "removing the finalizer", source)
        }
        other => Error::InvalidSpec {
            object: described,
            message: other.to_string(),
        },
    }
}

/// Records a failure: metric, status condition, Event (not for a dependency that is merely not ready
/// yet, which would be an error storm), and what to do next.
pub(crate) async fn failed<K: Gauges, C: Cloud>(
    object: &K,
    ctx: &Context<C>,
    error: Error,
) -> Result<Action, Error> {
    let class = error.class();
    ctx.metrics
        .reconcile_failed(K::KIND, class.as_str(), error.reason());
    if class == Class::Dependency && status::unannounced(object, ctx.config.quiet_start) {
        return Ok(Action::requeue(
            ctx.waits.waited(&describe(object), ctx.config.dependency_retry),
        ));
    }
    let desired = status::failed(&error);
    let status = status::with_conditions(object, object.status().cloned().unwrap_or_default(), &desired);
    match status::write(&ctx.client, &ctx.written, object, &status).await {
        Ok(()) => gauges::observe(&ctx.metrics, object, &status),
        Err(write_error) => {
            tracing::warn!(object = %describe(object), error = %write_error, "unable to write the failure status");
        }
    }
    match class {
        Class::Dependency => {
            tracing::info!(object = %describe(object), %error, "waiting for a dependency");
            Ok(Action::requeue(
                ctx.waits.waited(&describe(object), ctx.config.dependency_retry),
            ))
        }
        Class::Permanent | Class::Recheck | Class::Transient => {
            ctx.waits.succeeded(&describe(object));
            tracing::warn!(object = %describe(object), %error, class = class.as_str(), "reconcile failed");
            let note = format!("{}: {}", error.reason(), error.condition_message());
            events::warning(&ctx.recorder, object, events::reasons::RECONCILE_FAILED, note).await;
            Err(error)
        }
    }
}

/// What to do after a failed reconcile: wait for a change of the object when only that can fix it, else
/// back off exponentially per object.
pub fn error_policy<K: Kind, C: Cloud>(object: Arc<K>, error: &Error, ctx: Arc<Context<C>>) -> Action {
    match error.class() {
        Class::Permanent => Action::await_change(),
        Class::Recheck => Action::requeue(ctx.backoff.rechecked(&describe(&*object), ctx.config.resync)),
        Class::Dependency => Action::requeue(ctx.config.dependency_retry),
        Class::Transient => Action::requeue(ctx.backoff.failed(&describe(&*object))),
    }
}
