//! The order REST endpoint (processor `order-ack`): `POST /orders` validates the order, records it with
//! its `OrderPlaced` in the outbox, publishes the event, and only then answers `202` with the order id;
//! `GET /orders/{id}` shows the order's state and history to the principal that placed it. Both sit behind
//! [`super::security`]: authentication, limits and generic error bodies.
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
    Extension, Json, Router,
    extract::{Path, State, rejection::JsonRejection},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use serde_json::json;

use super::{
    model::{OrderEvent, OrderRequest},
    publish::Publisher,
    security::{
        Principal, Security,
        errors::{ApiError, RequestId},
    },
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
/// Outbox entries read per relay pass (the oldest of every shard).
const RELAY_BATCH: i32 = 25;

/// What the endpoint works with.
pub struct Ingress<S, P> {
    store: S,
    publisher: P,
    metrics: WorkerMetrics,
    /// This replica's relay, as its outbox claims name it: the pod's name and a random part.
    relay_id: String,
}

impl<S: OrderStore, P: Publisher> Ingress<S, P> {
    /// The endpoint over `store` and `publisher`.
    pub fn new(store: S, publisher: P, metrics: WorkerMetrics) -> Arc<Self> {
        let host = std::env::var("HOSTNAME").unwrap_or_default();
        Arc::new(Self {
            store,
            publisher,
            metrics,
            relay_id: format!("{host}/{}", random_id(8)),
        })
    }

    /// `POST /orders` and `GET /orders/{id}` behind `security` (authentication and limits).
    pub fn router(self: Arc<Self>, security: &Arc<Security>) -> Router {
        let routes = Router::new()
            .route("/orders", post(place::<S, P>))
            .route("/orders/{id}", get(show::<S, P>))
            .with_state(self);
        security.protect(routes)
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

    /// Publishes what waits in the outbox, oldest first, every `every`, until `shutdown` resolves; after
    /// a full pass that made progress the next one starts at once, so a backlog (an SNS outage) drains
    /// at the table's pace, not at one batch per `every`. An entry is left `grace` to the request that
    /// wrote it (longer than a request takes, so that a busy table does not make an event go out twice;
    /// consumers absorb it if it does).
    pub async fn relay(
        self: Arc<Self>,
        every: Duration,
        grace: Duration,
        shutdown: impl std::future::Future<Output = ()>,
    ) {
        let grace_millis = i64::try_from(grace.as_millis()).unwrap_or(i64::MAX);
        tokio::pin!(shutdown);
        let mut tick = tokio::time::interval(every);
        let mut more = false;
        loop {
            tokio::select! {
                biased;
                () = &mut shutdown => return,
                _ = tick.tick(), if !more => {}
                () = std::future::ready(()), if more => {}
            }
            more = self.relay_once(grace_millis).await;
        }
    }

    /// One pass of the relay: the oldest entries past their grace are published; the ones that cannot
    /// be read were quarantined by the store, and are counted. Whether the pass read a full batch and
    /// settled some of it (more may wait).
    async fn relay_once(&self, grace_millis: i64) -> bool {
        // The relay's read is also the endpoint's periodic check of its table, for `/readyz`.
        let batch = match self.store.pending_outbox(RELAY_BATCH).await {
            Ok(batch) => {
                self.metrics.health().receive_succeeded();
                batch
            }
            Err(error) => {
                self.metrics.health().receive_failed(tokio::time::Instant::now());
                tracing::warn!(%error, "reading the outbox failed");
                return false;
            }
        };
        let full = batch.ready.len() + batch.quarantined.len() >= usize::try_from(RELAY_BATCH).unwrap_or(0);
        let mut settled = batch.quarantined.len();
        self.metrics.outbox_quarantined(batch.quarantined.len());
        let now = time::OffsetDateTime::now_utc().unix_timestamp() * 1000;
        for entry in batch
            .ready
            .into_iter()
            .filter(|p| now - p.recorded_at_millis >= grace_millis)
        {
            if !self.claim(&entry.event.order_id).await {
                continue;
            }
            match self.publish(&entry.event, &entry.traceparent).await {
                Ok(()) => {
                    settled += 1;
                    self.metrics.outbox_relayed();
                    tracing::info!(order_id = %entry.event.order_id, "relayed OrderPlaced from the outbox")
                }
                Err(error) => {
                    tracing::warn!(order_id = %entry.event.order_id, %error, "relay publish failed")
                }
            }
        }
        full && settled > 0
    }

    /// Whether this relay claimed the entry of `order_id` (another replica's relay may hold it, or have
    /// published it already); a failed claim is tried again on a later pass.
    async fn claim(&self, order_id: &str) -> bool {
        match self.store.claim_outbox(order_id, &self.relay_id).await {
            Ok(claimed) => {
                if !claimed {
                    tracing::debug!(order_id, "outbox entry claimed by another relay or published");
                }
                claimed
            }
            Err(error) => {
                tracing::warn!(order_id, %error, "claiming an outbox entry failed");
                false
            }
        }
    }
}

async fn place<S: OrderStore, P: Publisher>(
    State(ingress): State<Arc<Ingress<S, P>>>,
    Extension(principal): Extension<Principal>,
    Extension(request_id): Extension<RequestId>,
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
        request_id = %request_id.0,
        order.id = tracing::field::Empty,
    );
    continue_trace(&span, headers.get(TRACEPARENT).and_then(|v| v.to_str().ok()));
    let response = match place_order(&ingress, &principal.0, &headers, body)
        .instrument(span.clone())
        .await
    {
        Ok(response) => response,
        Err(error) => error.response(&request_id.0),
    };
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

/// What a client retries after a 503 on `POST /orders`.
const RETRY_POST: &str = "the order could not be completed yet: retry with the same idempotencyKey";

/// Logs a cloud failure with everything about it (the request id is on the span) and answers generically.
fn cloud_failure(what: &str, error: &crate::cloud::Error, retry: &'static str) -> ApiError {
    tracing::warn!(%error, kind = %error.kind(), "{what} failed");
    ApiError::from_cloud(error, retry)
}

fn rejected(rejection: &JsonRejection) -> ApiError {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::PayloadTooLarge
    } else {
        ApiError::BadRequest(rejection.body_text())
    }
}

async fn place_order<S: OrderStore, P: Publisher>(
    ingress: &Ingress<S, P>,
    principal: &str,
    headers: &HeaderMap,
    body: Result<Json<OrderRequest>, JsonRejection>,
) -> Result<Response, ApiError> {
    let request = body.map_err(|rejection| rejected(&rejection))?.0;
    request.validate().map_err(ApiError::BadRequest)?;
    let order_id = request.order_id(principal, || random_id(10));
    // What `tributary trace <order-id>` finds the order's trace by.
    tracing::Span::current().record("order.id", order_id.as_str());
    let incoming = headers
        .get(TRACEPARENT)
        .and_then(|v| v.to_str().ok())
        .and_then(trace_id)
        .map(str::to_owned);
    let traceparent = next_traceparent(incoming.as_deref());
    let event = OrderEvent::placed(&order_id, &request);
    let attempted = tokio::time::Instant::now();
    let created = ingress
        .store
        .create_order(&event, &traceparent, Some(principal))
        .await;
    // Whether the table takes orders is what `/readyz` reports: while every write and outbox read has
    // failed for the bound, a Service stops sending this replica orders it cannot record.
    let health = ingress.metrics.health();
    match &created {
        Ok(_) => health.receive_succeeded(),
        Err(_) => health.receive_failed(attempted),
    }
    let created = created.map_err(|e| cloud_failure("recording the order", &e, RETRY_POST))?;
    let trace = trace_id(&traceparent).unwrap_or_default().to_owned();
    if !created {
        // A retried POST: the same order. Publish it if the first attempt could not.
        let existing = ingress
            .store
            .order(&order_id)
            .await
            .map_err(|e| cloud_failure("reading the order", &e, RETRY_POST))?;
        match existing {
            Some(existing)
                if existing.placed != event || existing.principal.as_deref() != Some(principal) =>
            {
                tracing::info!(order_id = %order_id, "idempotencyKey reused for another order");
                return Err(ApiError::Conflict);
            }
            Some(existing) if !existing.outbox_pending => {
                return Ok(accepted(&order_id, &existing.state, &trace));
            }
            _ => {}
        }
    }
    match ingress.publish(&event, &traceparent).await {
        Ok(()) => {
            tracing::info!(order_id = %order_id, trace_id = %trace, total_cents = event.total_cents, "order placed");
            Ok(accepted(&order_id, super::model::states::PLACED, &trace))
        }
        Err(error) => {
            tracing::warn!(order_id = %order_id, %error, "order recorded; OrderPlaced left to the outbox relay");
            Err(ApiError::Unavailable(RETRY_POST))
        }
    }
}

fn accepted(order_id: &str, state: &str, trace_id: &str) -> Response {
    (
        StatusCode::ACCEPTED,
        Json(json!({"orderId": order_id, "state": state, "traceId": trace_id})),
    )
        .into_response()
}

/// `GET /orders/{id}`: the order, only to the principal that placed it. Another principal's order, and an
/// order recorded before principals were (no owner), answer exactly as a missing one.
async fn show<S: OrderStore, P: Publisher>(
    State(ingress): State<Arc<Ingress<S, P>>>,
    Extension(principal): Extension<Principal>,
    Extension(request_id): Extension<RequestId>,
    Path(id): Path<String>,
) -> Response {
    let span = tracing::info_span!("GET /orders/{id}", request_id = %request_id.0);
    let result = async {
        match ingress.store.order(&id).await {
            Ok(Some(order)) if order.principal.as_deref() == Some(principal.0.as_str()) => {
                Ok((StatusCode::OK, Json(order)).into_response())
            }
            Ok(_) => Err(ApiError::NotFound),
            Err(e) => Err(cloud_failure("reading the order", &e, "retry shortly")),
        }
    }
    .instrument(span)
    .await;
    result.unwrap_or_else(|error| error.response(&request_id.0))
}
