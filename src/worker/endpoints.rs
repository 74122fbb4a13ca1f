//! The worker's operational HTTP endpoints: `GET /metrics` (Prometheus text), `GET /healthz` (liveness:
//! 503 while receive loops keep dying) and `GET /readyz` (readiness: 503 with the reason while something
//! is stalled, see [`super::stalls`], the source cannot be reached, or the user's container is not ready), judged by [`super::health::Health`].

use std::future::Future;

use axum::{
    Router, extract,
    http::{StatusCode, header},
    response::IntoResponse,
    routing::get,
};
use tokio::net::TcpListener;

use super::metrics::WorkerMetrics;
use crate::operate::metrics::CONTENT_TYPE;

/// What the endpoints serve.
#[derive(Clone, Debug)]
pub struct State {
    /// The counters.
    pub metrics: WorkerMetrics,
    /// `namespace/name` of the Consumer, a label of every series.
    pub consumer: String,
    /// The processor's name, a label of every series.
    pub processor: &'static str,
}

/// The routes, to serve alone or beside others (the order ingress).
pub fn router(state: State) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(state)
}

/// Serves the endpoints until `shutdown` resolves.
pub async fn serve(listener: TcpListener, state: State, shutdown: impl Future<Output = ()> + Send + 'static) {
    if let Err(error) = axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
    {
        tracing::error!(%error, "the metrics endpoint failed");
    }
}

async fn metrics(extract::State(state): extract::State<State>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, CONTENT_TYPE)],
        state.metrics.render(&state.consumer, state.processor),
    )
}

async fn healthz(extract::State(state): extract::State<State>) -> impl IntoResponse {
    if state.metrics.health().is_live_at(tokio::time::Instant::now()) {
        (StatusCode::OK, "ok")
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "receive loops keep dying (see tributary_worker_loop_restarts_total)",
        )
    }
}

/// 200 `ok`, or 503 naming what is stalled or that the source cannot be reached: the kubelet then takes
/// the pod out of the ready ones.
async fn readyz(extract::State(state): extract::State<State>) -> impl IntoResponse {
    if let Some(reason) = state.metrics.stalls().not_ready() {
        return (StatusCode::SERVICE_UNAVAILABLE, reason);
    }
    if let Some(reason) = state.metrics.health().unready_dependency() {
        return (StatusCode::SERVICE_UNAVAILABLE, reason);
    }
    if state.metrics.health().is_ready_at(tokio::time::Instant::now()) {
        (StatusCode::OK, "ok".to_owned())
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "the source cannot be reached".to_owned(),
        )
    }
}
