//! The order REST endpoint (processor `order-ack`): `POST /orders` validates the order, records it with
//! its `OrderPlaced` in the outbox, publishes the event, and only then answers `202` with the order id;
//! `GET /orders/{id}` shows the order's state and history.
//!
//! An order is never acknowledged without its event reaching the topic. The publish is tried a few times
//! within the request; if it still fails the answer is `503` (the client retries with the same
//! `idempotencyKey` and gets the same order), and the outbox relay publishes the recorded event on its
//! own within seconds, even after a crash, because the outbox is in the table, not in memory.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use axum::{
    Json, Router,
    extract::{Path, State, rejection::JsonRejection},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use serde_json::json;

use super::{
    model::{OrderEvent, OrderRequest},
    publish::Publisher,
    store::OrderStore,
};
use crate::worker::{
    message::{TRACEPARENT, random_id, trace_id},
    metrics::WorkerMetrics,
    trace::{continue_trace, next_traceparent},
};
use tracing::Instrument as _;

/// Publish attempts within one request, and the pause before each retry.
const PUBLISH_ATTEMPTS: u32 = 3;
const PUBLISH_PAUSE: Duration = Duration::from_millis(200);

/// What the endpoint works with.
pub struct Ingress<S, P> {
    store: S,
    publisher: P,
    metrics: WorkerMetrics,
}

impl<S: OrderStore, P: Publisher> Ingress<S, P> {
    /// The endpoint over `store` and `publisher`.
    pub fn new(store: S, publisher: P, metrics: WorkerMetrics) -> Arc<Self> {
        Arc::new(Self {
            store,
            publisher,
            metrics,
        })
    }

    /// `POST /orders` and `GET /orders/{id}`.
    pub fn router(self: Arc<Self>) -> Router {
        Router::new()
            .route("/orders", post(place::<S, P>))
            .route("/orders/{id}", get(show::<S, P>))
            .with_state(self)
    }

    async fn publish(&self, event: &OrderEvent, traceparent: &str) -> Result<(), String> {
        let mut last = String::new();
        for attempt in 1..=PUBLISH_ATTEMPTS {
            match self.publisher.publish(event, traceparent).await {
                Ok(()) => {
                    if let Err(error) = self.store.clear_outbox(&event.order_id).await {
                        // Published: the relay will publish once more, which the consumers absorb.
                        tracing::warn!(order_id = %event.order_id, %error, "clearing the outbox failed");
                    }
                    return Ok(());
                }
                Err(error) => {
                    tracing::warn!(order_id = %event.order_id, attempt, %error, "publishing OrderPlaced failed");
                    last = error.to_string();
                }
            }
            tokio::time::sleep(PUBLISH_PAUSE * attempt).await;
        }
        Err(last)
    }

    /// Publishes what waits in the outbox, every `every`, until `shutdown` resolves. An entry is left
    /// `grace` to the request that wrote it (longer than a request takes, so that a busy table does not
    /// make an event go out twice; consumers absorb it if it does).
    pub async fn relay(
        self: Arc<Self>,
        every: Duration,
        grace: Duration,
        shutdown: impl std::future::Future<Output = ()>,
    ) {
        let grace_millis = i64::try_from(grace.as_millis()).unwrap_or(i64::MAX);
        tokio::pin!(shutdown);
        let mut tick = tokio::time::interval(every);
        loop {
            tokio::select! {
                () = &mut shutdown => return,
                _ = tick.tick() => {}
            }
            let pending = match self.store.pending_outbox(25).await {
                Ok(pending) => pending,
                Err(error) => {
                    tracing::warn!(%error, "reading the outbox failed");
                    continue;
                }
            };
            let now = time::OffsetDateTime::now_utc().unix_timestamp() * 1000;
            for entry in pending
                .into_iter()
                .filter(|p| now - p.recorded_at_millis >= grace_millis)
            {
                match self.publish(&entry.event, &entry.traceparent).await {
                    Ok(()) => {
                        tracing::info!(order_id = %entry.event.order_id, "relayed OrderPlaced from the outbox")
                    }
                    Err(error) => {
                        tracing::warn!(order_id = %entry.event.order_id, %error, "relay publish failed")
                    }
                }
            }
        }
    }
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    let message = message.into();
    if status.is_server_error() {
        tracing::warn!(%status, %message, "order request failed");
    }
    (status, Json(json!({"error": message}))).into_response()
}

async fn place<S: OrderStore, P: Publisher>(
    State(ingress): State<Arc<Ingress<S, P>>>,
    headers: HeaderMap,
    body: Result<Json<OrderRequest>, JsonRejection>,
) -> Response {
    let started = Instant::now();
    ingress.metrics.received(1);
    // The order's trace starts here, or continues the caller's.
    let span = tracing::info_span!(
        "POST /orders",
        otel.kind = "server",
        http.request.method = "POST",
        http.route = "/orders",
        http.response.status_code = tracing::field::Empty,
        otel.status_code = tracing::field::Empty,
    );
    continue_trace(&span, headers.get(TRACEPARENT).and_then(|v| v.to_str().ok()));
    let response = place_order(&ingress, &headers, body)
        .instrument(span.clone())
        .await;
    span.record("http.response.status_code", response.status().as_u16());
    if response.status().is_server_error() {
        span.record("otel.status_code", "ERROR");
    }
    if response.status() == StatusCode::ACCEPTED {
        ingress.metrics.processed(started.elapsed());
    } else {
        ingress.metrics.failed(started.elapsed());
    }
    ingress.metrics.done();
    response
}

async fn place_order<S: OrderStore, P: Publisher>(
    ingress: &Ingress<S, P>,
    headers: &HeaderMap,
    body: Result<Json<OrderRequest>, JsonRejection>,
) -> Response {
    let request = match body {
        Ok(Json(request)) => request,
        Err(rejection) => return error(StatusCode::BAD_REQUEST, rejection.body_text()),
    };
    if let Err(message) = request.validate() {
        return error(StatusCode::BAD_REQUEST, message);
    }
    let order_id = request.order_id(|| random_id(10));
    let incoming = headers
        .get(TRACEPARENT)
        .and_then(|v| v.to_str().ok())
        .and_then(trace_id)
        .map(str::to_owned);
    let traceparent = next_traceparent(incoming.as_deref());
    let event = OrderEvent::placed(&order_id, &request);
    let created = match ingress.store.create_order(&event, &traceparent).await {
        Ok(created) => created,
        Err(e) => {
            return error(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("recording the order failed: {e}"),
            );
        }
    };
    let trace = trace_id(&traceparent).unwrap_or_default().to_owned();
    if !created {
        // A retried POST: the same order. Publish it if the first attempt could not.
        match ingress.store.order(&order_id).await {
            Ok(Some(existing)) if existing.placed != event => {
                return error(
                    StatusCode::CONFLICT,
                    format!("idempotencyKey was used for another order ({order_id})"),
                );
            }
            Ok(Some(existing)) if !existing.outbox_pending => {
                return accepted(&order_id, &existing.state, &trace);
            }
            Ok(_) => {}
            Err(e) => {
                return error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!("reading the order failed: {e}"),
                );
            }
        }
    }
    match ingress.publish(&event, &traceparent).await {
        Ok(()) => {
            tracing::info!(order_id = %order_id, trace_id = %trace, total_cents = event.total_cents, "order placed");
            accepted(&order_id, super::model::states::PLACED, &trace)
        }
        Err(e) => error(
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "order {order_id} is recorded but OrderPlaced could not be published yet ({e}); it will be \
                 published shortly: retry with the same idempotencyKey"
            ),
        ),
    }
}

fn accepted(order_id: &str, state: &str, trace_id: &str) -> Response {
    (
        StatusCode::ACCEPTED,
        Json(json!({"orderId": order_id, "state": state, "traceId": trace_id})),
    )
        .into_response()
}

async fn show<S: OrderStore, P: Publisher>(
    State(ingress): State<Arc<Ingress<S, P>>>,
    Path(id): Path<String>,
) -> Response {
    match ingress.store.order(&id).await {
        Ok(Some(order)) => (StatusCode::OK, Json(order)).into_response(),
        Ok(None) => error(StatusCode::NOT_FOUND, format!("no order {id}")),
        Err(e) => error(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("reading the order failed: {e}"),
        ),
    }
}
