//! What a processor is: given a message, it does its work and says how it went. The runtime turns the
//! answer into queue operations, so processors never see receipts, retries or dead letters.

use std::future::Future;

use super::message::Message;

/// How processing one message went.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Done (or already done before: processors are idempotent). The message is acknowledged.
    Done,
    /// Failed for a reason that may pass (a table throttled, a dependency down): retried after a backoff,
    /// dead-lettered with this reason once the attempts are used up.
    Retry(String),
    /// Can never succeed (malformed, invalid): dead-lettered at once with this reason.
    Reject(String),
    /// Failed as [`Outcome::Retry`], and the processor said when to try again (an HTTP `Retry-After`):
    /// the next attempt comes no sooner than `seconds` later, within the Consumer's longest backoff.
    RetryAfter {
        /// Why it failed.
        reason: String,
        /// How long the processor asked the retry to wait.
        seconds: u32,
    },
}

impl Outcome {
    /// Why it failed, unless it is done.
    pub fn failure(&self) -> Option<&str> {
        match self {
            Self::Done => None,
            Self::Retry(reason) | Self::Reject(reason) | Self::RetryAfter { reason, .. } => Some(reason),
        }
    }

    /// The delay the processor asked the retry to wait, if it did.
    pub fn asked_delay(&self) -> Option<u32> {
        match self {
            Self::RetryAfter { seconds, .. } => Some(*seconds),
            _ => None,
        }
    }
}

/// A message processor. Implementations must be idempotent: a redelivered message has no second effect.
pub trait Processor: Send + Sync + 'static {
    /// The processor's name, for metrics and logs.
    fn name(&self) -> &'static str;

    /// Processes one message.
    fn process(&self, message: &Message) -> impl Future<Output = Outcome> + Send;
}

/// Acknowledges everything without looking: what the runtime costs by itself.
#[derive(Clone, Copy, Debug, Default)]
pub struct Noop;

impl Processor for Noop {
    fn name(&self) -> &'static str {
        "noop"
    }

    async fn process(&self, _message: &Message) -> Outcome {
        Outcome::Done
    }
}
