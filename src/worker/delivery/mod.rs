//! Processor `container`: the user's own processor, a container beside the worker in the pod, reached
//! over HTTP. The worker keeps every delivery concern (receiving, visibility, retries, dead letters,
//! offsets, shutdown) and hands each message over as a CloudEvent in HTTP binary mode ([`event`]); the
//! status of the answer says how it went, and a 2xx answer with a body is a reply published to the sink
//! topic ([`reply`]). The processor ([`container`]) delivers only while the container answers its
//! readiness URL ([`ready`]); its settings are the `delivery` block of `worker.yaml` ([`config`]).

pub mod config;
pub mod container;
pub mod event;
pub mod ready;
pub mod reply;
pub mod retry_after;

use std::future::Future;

use self::{
    config::DeliveryConfig,
    container::{Container, ContainerError},
    ready::Readiness,
    reply::Replies,
};
use crate::worker::health::Health;

/// Processor `container` as `config` says, publishing replies to `replies`, with the watch on the
/// container's readiness URL (if any) running until `shutdown` and reporting to `health`.
pub fn start<R: Replies>(
    config: &DeliveryConfig,
    replies: Option<R>,
    health: Health,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<Container<R>, ContainerError> {
    config.validate().map_err(ContainerError::Invalid)?;
    let readiness = match &config.ready_url {
        None => Readiness::always(),
        Some(url) => {
            let url = reqwest::Url::parse(url).map_err(|e| ContainerError::Invalid(e.to_string()))?;
            ready::watch(url, health, shutdown)
                .map_err(ContainerError::Client)?
                .0
        }
    };
    Container::new(config, replies, readiness)
}
