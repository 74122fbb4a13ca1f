//! Validating admission webhook for all six kinds: refuses an object whose spec breaks a rule the CRD
//! schema cannot express, at `kubectl apply`, with the field and the rule, not minutes later at the cloud:
//! a Subscription's filter policy (the filter engine, with SNS's limits), and the cross-object rules of
//! [`crate::admission`] checked against the referenced objects, read from the API server (same namespace,
//! `get` only).
//!
//! It reviews creates and updates that change the spec, never deletions, objects being deleted or
//! metadata-only updates (see [`review::needs_review`]). The HTTP side is a small axum router on HTTPS (the
//! API server only calls webhooks over TLS); the decisions are the pure functions of [`review`].

mod fetch;
pub mod review;
#[cfg(test)]
mod tests;

use std::{net::SocketAddr, path::Path};

use axum::{
    Json, Router,
    extract::State,
    routing::{get, post},
};
use axum_server::tls_rustls::RustlsConfig;
use kube::core::{
    DynamicObject,
    admission::{AdmissionRequest, AdmissionResponse, AdmissionReview},
};

pub use review::check_filter;

/// How often the serving certificate's files are compared with what is served
/// ([`crate::tls::keep_current`]).
pub const CERTIFICATE_RELOAD_PERIOD: std::time::Duration = std::time::Duration::from_secs(10);

/// The path every kind is validated on.
pub const VALIDATE_PATH: &str = "/validate";
/// The path of earlier charts, which sent only Subscriptions; served by the same review.
pub const SUBSCRIPTION_PATH: &str = "/validate-subscription";

/// Errors starting the webhook server.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    /// The TLS certificate or key could not be loaded.
    #[error("loading webhook TLS certificate {cert} / key {key}: {source}")]
    Tls {
        /// Certificate path.
        cert: String,
        /// Key path.
        key: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The server failed.
    #[error("webhook server on {addr}: {source}")]
    Serve {
        /// Listen address.
        addr: SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
}

/// The webhook's routes: the review of every kind (on [`VALIDATE_PATH`], and on [`SUBSCRIPTION_PATH`] for
/// configurations of earlier charts), and `/healthz` for the pod's probes. `client` reads the objects a
/// reviewed object references.
pub fn router(client: kube::Client) -> Router {
    Router::new()
        .route(VALIDATE_PATH, post(validate))
        .route(SUBSCRIPTION_PATH, post(validate))
        .route("/healthz", get(|| async { "ok" }))
        .with_state(client)
}

async fn validate(
    State(client): State<kube::Client>,
    Json(body): Json<AdmissionReview<DynamicObject>>,
) -> Json<AdmissionReview<DynamicObject>> {
    let request: Result<AdmissionRequest<DynamicObject>, _> = body.try_into();
    let response = match request {
        Ok(request) if !review::needs_review(&request) => AdmissionResponse::from(&request),
        Ok(request) => {
            let (referenced, warnings) = fetch::referenced(&client, &request).await;
            review::decide(&request, &referenced, warnings)
        }
        Err(e) => AdmissionResponse::invalid(format!("not an AdmissionReview request: {e}")),
    };
    Json(response.into_review())
}

/// Serves the webhook on `addr` with the PEM certificate and key until `shutdown` resolves; `client` reads
/// referenced objects. `bound` receives the actual address (useful with port 0). A certificate
/// rotated on disk is served from the next connection on, within [`CERTIFICATE_RELOAD_PERIOD`], without a
/// restart.
pub async fn serve(
    addr: SocketAddr,
    cert: &Path,
    key: &Path,
    client: kube::Client,
    bound: Option<tokio::sync::oneshot::Sender<SocketAddr>>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), WebhookError> {
    crate::tls::install_crypto_provider();
    let tls = RustlsConfig::from_pem_file(cert, key)
        .await
        .map_err(|source| WebhookError::Tls {
            cert: cert.display().to_string(),
            key: key.display().to_string(),
            source,
        })?;
    let mut files = crate::tls::CertificateFiles::new(cert, key);
    files.mark_loaded();
    let reloader = tokio::spawn(crate::tls::keep_current(
        files,
        tls.clone(),
        CERTIFICATE_RELOAD_PERIOD,
    ));
    let handle = axum_server::Handle::new();
    let stopper = handle.clone();
    tokio::spawn(async move {
        shutdown.await;
        stopper.graceful_shutdown(Some(std::time::Duration::from_secs(5)));
    });
    if let Some(bound) = bound {
        let waiter = handle.clone();
        tokio::spawn(async move {
            if let Some(addr) = waiter.listening().await {
                let _ = bound.send(addr);
            }
        });
    }
    let served = axum_server::bind_rustls(addr, tls)
        .handle(handle)
        .serve(router(client).into_make_service())
        .await
        .map_err(|source| WebhookError::Serve { addr, source });
    reloader.abort();
    served
}
