//! The controllers: one reconciler per kind, sharing a [`Context`]. Finalizers, cloud calls, metrics and
//! leader election join with the provider issues; the Subscription reconciler validates and reports.

pub mod conditions;
pub mod subscription;

use std::{sync::Arc, time::Duration};

use futures::StreamExt;
use kube::{
    Api, Client,
    runtime::{Controller, controller::Action, watcher},
};

use crate::api::Subscription;

/// Field manager of every write the controller makes (server-side apply).
pub const FIELD_MANAGER: &str = "tributary-controller";

/// Shared state of the reconcilers.
pub struct Context {
    /// Kubernetes client.
    pub client: Client,
}

/// Errors of a reconcile, with what was being done.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A Kubernetes API call failed (transient: retried with backoff).
    #[error("{what}: {source}")]
    Kube {
        /// What was being done.
        what: String,
        /// The cause.
        source: kube::Error,
    },
}

fn error_policy<K>(_object: Arc<K>, error: &Error, _ctx: Arc<Context>) -> Action {
    tracing::warn!(%error, "reconcile failed; retrying");
    Action::requeue(Duration::from_secs(5))
}

/// Run the Subscription controller on all namespaces until `shutdown` resolves.
pub async fn run(client: Client, shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static) {
    let subscriptions: Api<Subscription> = Api::all(client.clone());
    let ctx = Arc::new(Context { client });
    Controller::new(subscriptions, watcher::Config::default())
        .graceful_shutdown_on(shutdown)
        .run(subscription::reconcile, error_policy, ctx)
        .for_each(|result| async move {
            if let Err(error) = result {
                tracing::debug!(%error, "reconcile error");
            }
        })
        .await;
}
