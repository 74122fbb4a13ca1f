//! Validating admission webhook: refuses a Subscription whose filter policy the filter engine rejects, so
//! a bad policy fails at `kubectl apply` with the key and the rule, not minutes later at AWS.
//!
//! The HTTP side is a small axum router on HTTPS (the API server only calls webhooks over TLS); the
//! decision itself is the pure function [`review_subscription`].

use std::{net::SocketAddr, path::Path};

use axum::{
    Json, Router,
    routing::{get, post},
};
use axum_server::tls_rustls::RustlsConfig;
use kube::core::{
    DynamicObject,
    admission::{AdmissionRequest, AdmissionResponse, AdmissionReview},
};

use crate::filter::{Policy, Scope};

pub mod tls;

/// The path the Subscription webhook is served on.
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

/// The webhook's routes: the Subscription check, and `/healthz` for the pod's probes.
pub fn router() -> Router {
    Router::new()
        .route(SUBSCRIPTION_PATH, post(subscription))
        .route("/healthz", get(|| async { "ok" }))
}

async fn subscription(
    Json(review): Json<AdmissionReview<DynamicObject>>,
) -> Json<AdmissionReview<DynamicObject>> {
    let request: Result<AdmissionRequest<DynamicObject>, _> = review.try_into();
    let response = match request {
        Ok(request) => review_subscription(&request),
        Err(e) => AdmissionResponse::invalid(format!("not an AdmissionReview request: {e}")),
    };
    Json(response.into_review())
}

/// The decision for one Subscription: allowed, or denied with `spec.filter.policy.<key>: <rule>`.
pub fn review_subscription(request: &AdmissionRequest<DynamicObject>) -> AdmissionResponse {
    let response = AdmissionResponse::from(request);
    let Some(object) = &request.object else {
        return response; // DELETE carries no object; nothing to check.
    };
    match check_filter(&object.data) {
        Ok(()) => response,
        Err(message) => response.deny(message),
    }
}

/// Checks `spec.filter` of a Subscription's JSON with the filter engine.
pub fn check_filter(data: &serde_json::Value) -> Result<(), String> {
    let Some(filter) = data.get("spec").and_then(|s| s.get("filter")) else {
        return Ok(());
    };
    let scope = match filter.get("scope").and_then(|s| s.as_str()) {
        None => Scope::MessageAttributes,
        Some(s) => s.parse().map_err(|e| format!("spec.filter.scope: {e}"))?,
    };
    let policy = filter
        .get("policy")
        .ok_or("spec.filter.policy: required when spec.filter is set")?;
    Policy::parse(policy, scope).map(|_| ()).map_err(|e| {
        let at = if e.path.is_empty() {
            "spec.filter.policy".to_owned()
        } else {
            format!("spec.filter.policy.{}", e.path)
        };
        format!("{at}: {} (scope {scope})", e.rule)
    })
}

/// Serves the webhook on `addr` with the PEM certificate and key until `shutdown` resolves. `bound`
/// receives the actual address (useful with port 0). A certificate rotated on disk is served from the next
/// connection on, within [`tls::DEFAULT_RELOAD_PERIOD`], without a restart.
pub async fn serve(
    addr: SocketAddr,
    cert: &Path,
    key: &Path,
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
    let mut files = tls::CertificateFiles::new(cert, key);
    files.mark_loaded();
    let reloader = tokio::spawn(tls::keep_current(files, tls.clone(), tls::DEFAULT_RELOAD_PERIOD));
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
        .serve(router().into_make_service())
        .await
        .map_err(|source| WebhookError::Serve { addr, source });
    reloader.abort();
    served
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::check_filter;

    #[test]
    fn a_valid_filter_or_none_is_allowed() {
        assert!(check_filter(&json!({"spec": {"topicRef": {"name": "t"}}})).is_ok());
        assert!(check_filter(&json!({"spec": {"filter": {"policy": {"event": ["OrderPlaced"]}}}})).is_ok());
    }

    #[test]
    fn an_invalid_filter_is_denied_naming_the_key() {
        let err = check_filter(&json!({"spec": {"filter": {"scope": "MessageAttributes", "policy": {"customer": {"tier": ["gold"]}}}}}))
            .expect_err("nested keys need body scope");
        assert!(
            err.starts_with("spec.filter.policy.customer: nested keys"),
            "{err}"
        );
        let err = check_filter(
            &json!({"spec": {"filter": {"policy": {"total": [{"numeric": ["<", 5, ">", 1]}]}}}}),
        )
        .unwrap_err();
        assert!(
            err.contains("spec.filter.policy.total") && err.contains("lower bound"),
            "{err}"
        );
    }
}
