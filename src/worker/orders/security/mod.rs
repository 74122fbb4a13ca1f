//! What stands between the network and the order endpoint, as API Gateway did for the seed: request ids
//! and uniform error bodies ([`errors`]), a per-pod concurrency limit with load shedding (tower), a
//! request timeout (tower-http), authentication by API key ([`api_keys`]) or JWT ([`jwt`]) before the
//! body is read, a per-principal rate limit with burst (governor), and a body cap (tower-http) checked on
//! `Content-Length` and enforced on the streamed body. Settings: [`config`].
//!
//! Outermost first: request id → concurrency limit / load shed → timeout → authenticate + rate → body cap →
//! handler. A request without valid credentials costs a header lookup and a hash (or a signature check):
//! its body is never read.

pub mod api_keys;
pub mod config;
pub mod errors;
pub mod jwt;
pub mod serve;

use std::{num::NonZeroU32, sync::Arc, time::Duration};

use axum::{
    Router,
    error_handling::HandleErrorLayer,
    extract::{DefaultBodyLimit, Request, State},
    http::{HeaderMap, HeaderValue, header},
    middleware::{self, Next},
    response::Response,
};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter, clock::Clock as _};
use tower::ServiceBuilder;
use tower_http::{limit::RequestBodyLimitLayer, timeout::TimeoutLayer};

pub use self::serve::serve;
use self::{
    api_keys::{KEY_PREFIX, KeyRing},
    config::{AuthConfig, LimitsConfig},
    errors::{ApiError, REQUEST_ID_HEADER, Rendered, RequestId},
    jwt::JwtVerifier,
};
use crate::worker::message::random_id;

/// Who made a request (in its extensions once authenticated), qualified so that principals of different
/// Consumers or issuers never meet in a shared Order table: `key:<namespace>/<consumer>/<principal>` for an
/// API key (keys belong to one Consumer's Secret), `jwt:<issuer>#<claim>` for a token (one identity per
/// issuer, whichever endpoint it calls), `anonymous:<namespace>/<consumer>` under `auth.mode: none`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal(pub String);

/// The prefix of the principal of every request when authentication is off.
pub const ANONYMOUS: &str = "anonymous";

/// A credential as presented.
#[derive(Debug, PartialEq, Eq)]
pub enum Credential<'a> {
    /// An API key (`X-API-Key`, or a bearer token with the key prefix).
    ApiKey(&'a str),
    /// Any other bearer token: a JWT.
    Bearer(&'a str),
}

/// The credential of a request, if it carries one.
pub fn credential(headers: &HeaderMap) -> Option<Credential<'_>> {
    if let Some(key) = headers.get("x-api-key").and_then(|v| v.to_str().ok()) {
        return Some(Credential::ApiKey(key.trim()));
    }
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let token = token.trim();
    Some(if token.starts_with(KEY_PREFIX) {
        Credential::ApiKey(token)
    } else {
        Credential::Bearer(token)
    })
}

/// Checks credentials.
#[derive(Clone)]
pub struct Authenticator {
    /// `<namespace>/<consumer>`: what key and anonymous principals are qualified with.
    realm: String,
    anonymous: bool,
    keys: Option<KeyRing>,
    jwt: Option<JwtVerifier>,
}

impl Authenticator {
    /// The authenticator of `config` for the Consumer `realm` (`<namespace>/<name>`); keys are read now,
    /// the JWKS on first use.
    pub fn new(config: &AuthConfig, realm: &str) -> Result<Self, String> {
        Ok(Self {
            realm: realm.to_owned(),
            anonymous: config.anonymous,
            keys: config.api_keys.as_ref().map(|k| KeyRing::load(k.dir.clone())),
            jwt: config.jwt.clone().map(JwtVerifier::new).transpose()?,
        })
    }

    /// The principal of a request, or why it has none (for the log; the client gets 401).
    pub async fn authenticate(&self, headers: &HeaderMap) -> Result<String, String> {
        if self.anonymous {
            return Ok(format!("{ANONYMOUS}:{}", self.realm));
        }
        match credential(headers) {
            None => Err("no credentials".into()),
            Some(Credential::ApiKey(key)) => self
                .keys
                .as_ref()
                .and_then(|ring| ring.principal(key))
                .map(|principal| format!("key:{}/{principal}", self.realm))
                .ok_or_else(|| "unknown or revoked API key".into()),
            Some(Credential::Bearer(token)) => match &self.jwt {
                Some(jwt) => jwt.verify(token).await.map_err(|e| e.to_string()),
                None => Err("a bearer token, but JWT authentication is not configured".into()),
            },
        }
    }

    /// The background work: re-reading the key directory, refreshing the JWKS.
    pub fn spawn_refresh(&self, config: &AuthConfig) -> Vec<tokio::task::JoinHandle<()>> {
        let mut tasks = Vec::new();
        if let (Some(ring), Some(files)) = (&self.keys, &config.api_keys) {
            let every = Duration::from_secs(files.reload_seconds.max(1));
            tasks.push(tokio::spawn(ring.clone().watch(every)));
        }
        if let Some(jwt) = &self.jwt {
            tasks.push(tokio::spawn(jwt.clone().refresh()));
        }
        tasks
    }
}

/// Authentication, limits and the rate limiter shared by the requests of one endpoint.
pub struct Security {
    auth: Authenticator,
    limits: LimitsConfig,
    rates: DefaultKeyedRateLimiter<String>,
}

impl Security {
    /// From the endpoint's settings (checked), for the Consumer `realm` (`<namespace>/<name>`).
    pub fn new(auth: &AuthConfig, limits: LimitsConfig, realm: &str) -> Result<Arc<Self>, String> {
        limits.validate()?;
        let per_second = NonZeroU32::new(limits.requests_per_second).ok_or("requestsPerSecond is 0")?;
        let burst = NonZeroU32::new(limits.burst).ok_or("burst is 0")?;
        Ok(Arc::new(Self {
            auth: Authenticator::new(auth, realm)?,
            rates: RateLimiter::keyed(Quota::per_second(per_second).allow_burst(burst)),
            limits,
        }))
    }

    /// Starts re-reading keys and JWKS, and forgetting idle principals' rate state.
    pub fn spawn_background(self: &Arc<Self>, auth: &AuthConfig) -> Vec<tokio::task::JoinHandle<()>> {
        let mut tasks = self.auth.spawn_refresh(auth);
        let this = self.clone();
        tasks.push(tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(60));
            loop {
                tick.tick().await;
                this.rates.retain_recent();
            }
        }));
        tasks
    }

    /// `routes` behind every layer.
    pub fn protect(self: &Arc<Self>, routes: Router) -> Router {
        let limits = &self.limits;
        let shed = ServiceBuilder::new()
            .layer(HandleErrorLayer::new(|_: tower::BoxError| async {
                axum::http::StatusCode::SERVICE_UNAVAILABLE
            }))
            .load_shed()
            .layer(tower::limit::GlobalConcurrencyLimitLayer::new(
                limits.max_concurrent_requests,
            ));
        routes
            .layer(DefaultBodyLimit::disable())
            .layer(RequestBodyLimitLayer::new(limits.max_body_bytes))
            .layer(middleware::from_fn_with_state(self.clone(), authenticate))
            .layer(TimeoutLayer::with_status_code(
                axum::http::StatusCode::REQUEST_TIMEOUT,
                limits.timeout(),
            ))
            .layer(shed)
            .layer(middleware::from_fn(request_id))
    }
}

/// Authenticates, then charges the principal's rate; the body is not touched.
async fn authenticate(State(security): State<Arc<Security>>, mut request: Request, next: Next) -> Response {
    let id = request_id_of(&request);
    let principal = match security.auth.authenticate(request.headers()).await {
        Ok(principal) => principal,
        Err(reason) => {
            tracing::info!(request_id = %id, %reason, "request refused: not authenticated");
            return ApiError::Unauthorized.response(&id);
        }
    };
    if let Err(not_until) = security.rates.check_key(&principal) {
        let wait = not_until.wait_time_from(governor::clock::DefaultClock::default().now());
        let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        tracing::debug!(request_id = %id, %principal, "request refused: rate exceeded");
        return ApiError::TooManyRequests(seconds.max(1)).response(&id);
    }
    request.extensions_mut().insert(Principal(principal));
    next.run(request).await
}

fn request_id_of(request: &Request) -> String {
    request
        .extensions()
        .get::<RequestId>()
        .map(|r| r.0.clone())
        .unwrap_or_default()
}

/// Gives the request an id (ours: a client's would let it forge log lines), answers it in a header, and
/// gives an error any layer answered with the uniform body.
async fn request_id(mut request: Request, next: Next) -> Response {
    let id = format!("r-{}", random_id(8));
    request.extensions_mut().insert(RequestId(id.clone()));
    let method = request.method().clone();
    let mut response = next.run(request).await;
    let status = response.status();
    if !status.is_success() && response.extensions().get::<Rendered>().is_none() {
        tracing::info!(request_id = %id, %method, %status, "request refused by a limit");
        response = ApiError::from_status(status).response(&id);
    }
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(REQUEST_ID_HEADER, value);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    #[test]
    fn credentials_come_from_the_api_key_header_or_a_bearer_token() {
        assert_eq!(credential(&headers(&[])), None);
        assert_eq!(
            credential(&headers(&[("x-api-key", "trb_abc")])),
            Some(Credential::ApiKey("trb_abc"))
        );
        assert_eq!(
            credential(&headers(&[("authorization", "Bearer trb_abc")])),
            Some(Credential::ApiKey("trb_abc"))
        );
        assert_eq!(
            credential(&headers(&[("authorization", "bearer a.b.c")])),
            Some(Credential::Bearer("a.b.c"))
        );
        assert_eq!(credential(&headers(&[("authorization", "Basic dXNlcg==")])), None);
        assert_eq!(credential(&headers(&[("authorization", "Bearer")])), None);
    }

    #[tokio::test]
    async fn requests_over_the_concurrency_limit_are_shed() {
        use tower::ServiceExt as _;
        let auth = AuthConfig {
            anonymous: true,
            ..AuthConfig::default()
        };
        let limits = LimitsConfig {
            max_concurrent_requests: 1,
            ..LimitsConfig::default()
        };
        let security = Security::new(&auth, limits, "shop/order-ack").unwrap();
        let gate = Arc::new(tokio::sync::Notify::new());
        let held = gate.clone();
        let routes = Router::new()
            .route(
                "/slow",
                axum::routing::get(move || {
                    let held = held.clone();
                    async move {
                        held.notified().await;
                        "done"
                    }
                }),
            )
            .route("/fast", axum::routing::get(|| async { "fast" }));
        let app = security.protect(routes);
        let slow = Request::builder()
            .uri("/slow")
            .body(axum::body::Body::empty())
            .unwrap();
        let request = || {
            Request::builder()
                .uri("/fast")
                .body(axum::body::Body::empty())
                .unwrap()
        };
        let first = tokio::spawn(app.clone().oneshot(slow));
        tokio::task::yield_now().await;
        let mut shed = None;
        for _ in 0..100 {
            let response = app.clone().oneshot(request()).await.unwrap();
            if response.status() == axum::http::StatusCode::SERVICE_UNAVAILABLE {
                shed = Some(response);
                break;
            }
            tokio::task::yield_now().await;
        }
        let shed = shed.expect("the second request is shed");
        assert_eq!(shed.headers()[header::RETRY_AFTER], "1");
        gate.notify_one();
        assert_eq!(first.await.unwrap().unwrap().status(), 200);
    }

    #[tokio::test]
    async fn no_credentials_configured_refuses_everyone_and_none_mode_admits_anonymous() {
        let nobody = Authenticator::new(&AuthConfig::default(), "shop/order-ack").unwrap();
        let with_key = headers(&[("x-api-key", "trb_x")]);
        assert!(nobody.authenticate(&with_key).await.is_err());
        assert!(
            nobody
                .authenticate(&headers(&[("authorization", "Bearer a.b.c")]))
                .await
                .is_err()
        );
        let open = Authenticator::new(
            &AuthConfig {
                anonymous: true,
                ..AuthConfig::default()
            },
            "shop/order-ack",
        )
        .unwrap();
        assert_eq!(
            open.authenticate(&HeaderMap::new()).await.unwrap(),
            "anonymous:shop/order-ack"
        );
    }
}
