//! The controller's operational HTTP endpoints: `GET /metrics` (Prometheus text), `GET /healthz`
//! (liveness: the process answers) and `GET /readyz` (readiness: the flag the controller sets once it
//! has started its watches).

use std::{
    future::Future,
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
};

use anyhow::Context as _;
use axum::{
    Router,
    extract::State,
    http::{StatusCode, header},
    response::IntoResponse,
    routing::get,
};
use tokio::net::TcpListener;

use super::metrics::{CONTENT_TYPE, Metrics};

/// What the endpoints serve.
#[derive(Clone, Debug)]
pub struct HttpState {
    /// Rendered on `GET /metrics`.
    pub metrics: Metrics,
    /// `GET /readyz` answers 200 while this is true, 503 otherwise.
    pub ready: Arc<AtomicBool>,
}

/// Binds `listen`. Separate from [`serve_on`] so a caller binding port 0 can learn the port
/// (`local_addr`) before serving.
pub async fn bind(listen: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(listen).await
}

/// Binds `listen` and serves the endpoints until `shutdown` resolves.
pub async fn serve(
    listen: SocketAddr,
    state: HttpState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let listener = bind(listen)
        .await
        .with_context(|| format!("failed to bind the metrics and health endpoint on {listen}"))?;
    serve_on(listener, state, shutdown).await
}

/// Serves the endpoints on an already bound listener until `shutdown` resolves.
pub async fn serve_on(
    listener: TcpListener,
    state: HttpState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let address = listener.local_addr().ok();
    tracing::info!(?address, "serving /metrics, /healthz and /readyz");
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
        .with_context(|| format!("metrics and health endpoint on {address:?} failed"))
}

/// The routes, for callers that want to nest them into a larger router.
pub fn router(state: HttpState) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(state)
}

async fn metrics(State(state): State<HttpState>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, CONTENT_TYPE)], state.metrics.render())
}

async fn healthz() -> &'static str {
    "ok"
}

async fn readyz(State(state): State<HttpState>) -> (StatusCode, &'static str) {
    if state.ready.load(Ordering::Relaxed) {
        (StatusCode::OK, "ready")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready")
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    /// A bare HTTP/1.1 GET: the crate has no HTTP client dependency, and one request needs none.
    async fn get(address: SocketAddr, path: &str) -> (u16, String, String) {
        let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
        let request = format!("GET {path} HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).await.unwrap();
        let (head, body) = response.split_once("\r\n\r\n").unwrap();
        let status = head.split(' ').nth(1).unwrap().parse().unwrap();
        (status, head.to_lowercase(), body.to_owned())
    }

    #[tokio::test]
    async fn serves_metrics_health_and_readiness() {
        let state = HttpState {
            metrics: Metrics::new(),
            ready: Arc::new(AtomicBool::new(false)),
        };
        state.metrics.cloud_call("SNS", "CreateTopic", "ok", 0.1);
        let listener = bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let address = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(serve_on(listener, state.clone(), async {
            let _ = stopped.await;
        }));

        let (status, head, body) = get(address, "/metrics").await;
        assert_eq!(status, 200);
        assert!(head.contains("content-type: text/plain; version=0.0.4"), "{head}");
        assert!(body.contains("operation=\"CreateTopic\""), "{body}");

        assert_eq!(get(address, "/healthz").await.0, 200);
        assert_eq!(get(address, "/readyz").await.0, 503);
        state.ready.store(true, Ordering::Relaxed);
        assert_eq!(get(address, "/readyz").await.0, 200);
        assert_eq!(get(address, "/nope").await.0, 404);

        stop.send(()).unwrap();
        tokio::time::timeout(Duration::from_secs(5), server)
            .await
            .unwrap()
            .unwrap()
            .unwrap();
    }
}
