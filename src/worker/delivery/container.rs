//! Processor `container`: each message POSTed to the user's container as a binary-mode CloudEvent
//! ([`super::event`]), the answer turned into an [`Outcome`], a reply published before the message is
//! acknowledged ([`super::reply`]); a retry waits what a 429 or 503 answer's `Retry-After` asks
//! ([`super::retry_after`]). At most `concurrency` deliveries are in flight; each may take
//! `timeoutSeconds` from the request to the end of its response; none starts while the container is not
//! ready (it waits for it, for at most the timeout).

use std::{sync::Arc, time::Duration};

use tokio::sync::Semaphore;

use super::config::DeliveryConfig;
use super::event::{self, Mapping, Verdict};
use super::ready::Readiness;
use super::reply::{self, Replies};
use super::retry_after;
use crate::worker::{
    message::{Message, child_traceparent},
    processor::{Outcome, Processor},
};

/// The container processor, delivering to one URL.
pub struct Container<R> {
    client: reqwest::Client,
    url: reqwest::Url,
    timeout: Duration,
    in_flight: Arc<Semaphore>,
    source: String,
    type_attribute: String,
    replies: Option<R>,
    ready: Readiness,
}

/// A delivery configuration the processor cannot be built from.
#[derive(Debug, thiserror::Error)]
pub enum ContainerError {
    /// The configuration breaks a rule.
    #[error("{0}")]
    Invalid(String),
    /// The HTTP client could not be built.
    #[error("building the HTTP client of processor container failed: {0}")]
    Client(#[source] reqwest::Error),
}

impl<R: Replies> Container<R> {
    /// A processor delivering as `config` says, publishing replies to `replies` (the sink topic, if the
    /// Consumer has one), delivering only while `ready`.
    pub fn new(
        config: &DeliveryConfig,
        replies: Option<R>,
        ready: Readiness,
    ) -> Result<Self, ContainerError> {
        config.validate().map_err(ContainerError::Invalid)?;
        let url = reqwest::Url::parse(&config.url).map_err(|e| ContainerError::Invalid(e.to_string()))?;
        let concurrency = usize::try_from(config.concurrency).unwrap_or(1);
        // The container is in the pod: no proxy, keep-alive connections for every delivery in flight.
        let client = reqwest::Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .pool_max_idle_per_host(concurrency)
            .tcp_nodelay(true)
            .build()
            .map_err(ContainerError::Client)?;
        Ok(Self {
            client,
            url,
            timeout: Duration::from_secs(u64::from(config.timeout_seconds)),
            in_flight: Arc::new(Semaphore::new(concurrency)),
            source: config.source.clone(),
            type_attribute: config.type_attribute.clone(),
            replies,
            ready,
        })
    }

    /// Delivers `message` and says how it went.
    pub async fn deliver(&self, message: &Message) -> Outcome {
        if let Err(reason) = self.ready.wait(self.timeout).await {
            return Outcome::Retry(reason);
        }
        // The semaphore is never closed, so the permit always comes.
        let _permit = self.in_flight.acquire().await.ok();
        let mapping = Mapping {
            source: &self.source,
            type_attribute: &self.type_attribute,
        };
        let mut request = self
            .client
            .post(self.url.clone())
            .timeout(self.timeout)
            .body(message.body.clone());
        for (name, value) in event::headers(message, mapping) {
            request = request.header(name, value);
        }
        let response = match request.send().await {
            Ok(response) => response,
            Err(error) => return Outcome::Retry(self.failure(&error)),
        };
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = match response.bytes().await {
            Ok(body) => body,
            Err(error) => return Outcome::Retry(self.failure(&error)),
        };
        match event::verdict(status, &body) {
            Verdict::Done => self.reply(message, &headers, &body).await,
            Verdict::Reject(reason) => Outcome::Reject(reason),
            Verdict::Retry(reason) => retry(reason, status, &headers),
        }
    }

    /// Publishes the reply in a 2xx response, if there is one and a sink topic to publish it to.
    async fn reply(&self, message: &Message, headers: &reqwest::header::HeaderMap, body: &[u8]) -> Outcome {
        let Some(replies) = &self.replies else {
            return Outcome::Done;
        };
        let headers = headers
            .iter()
            .filter_map(|(name, value)| Some((name.as_str(), value.to_str().ok()?)));
        let traceparent = child_traceparent(message.trace_id());
        let identity = (message.id.as_str(), message.group_id.as_deref());
        match reply::reply(headers, body, &self.type_attribute, identity, &traceparent) {
            Ok(None) => Outcome::Done,
            Ok(Some(reply)) => match replies.publish(reply).await {
                Ok(()) => Outcome::Done,
                Err(error) => {
                    Outcome::Retry(format!("publishing the reply to the sink topic failed: {error}"))
                }
            },
            Err(reason) => Outcome::Reject(reason),
        }
    }

    /// Why a request got no (whole) answer, for the retry reason.
    fn failure(&self, error: &reqwest::Error) -> String {
        let cause = std::iter::successors(std::error::Error::source(error), |e| e.source())
            .last()
            .map(ToString::to_string)
            .unwrap_or_default();
        if error.is_timeout() {
            format!(
                "the container did not answer within {} s (delivery.timeoutSeconds)",
                self.timeout.as_secs()
            )
        } else if error.is_connect() {
            format!("cannot connect to the container at {}: {cause}", self.url)
        } else {
            format!("the container closed the connection without a whole answer: {cause}")
        }
    }
}

/// A retry, after what the answer's `Retry-After` asks for if it says (see [`retry_after`]).
fn retry(reason: String, status: u16, headers: &reqwest::header::HeaderMap) -> Outcome {
    let value = headers
        .get(retry_after::RETRY_AFTER)
        .and_then(|v| v.to_str().ok());
    match retry_after::asked(status, value, std::time::SystemTime::now()) {
        Some(seconds) => Outcome::RetryAfter { reason, seconds },
        None => Outcome::Retry(reason),
    }
}

impl<R: Replies> Processor for Container<R> {
    fn name(&self) -> &'static str {
        "container"
    }

    async fn process(&self, message: &Message) -> Outcome {
        self.deliver(message).await
    }
}
