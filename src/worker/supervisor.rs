//! Failing loudly instead of silently: a processor that panics fails its message (retried, then
//! dead-lettered, as any failure: never lost) rather than its receive loop ([`CatchPanic`]); a receive
//! loop that dies anyway is restarted with backoff and counted, and one that keeps dying fails liveness
//! ([`supervise`], with [`Health`]), so the kubelet restarts the pod.

use std::{any::Any, future::Future, panic::AssertUnwindSafe, sync::Arc, time::Duration};

use futures::FutureExt as _;
use tokio::time::Instant;

use super::health::Health;
use super::message::Message;
use super::processor::{Outcome, Processor};

/// A processor whose panics become [`Outcome::Retry`] with the panic's message.
#[derive(Debug)]
pub struct CatchPanic<P> {
    processor: Arc<P>,
}

impl<P> CatchPanic<P> {
    /// Wraps `processor`.
    pub fn new(processor: Arc<P>) -> Self {
        Self { processor }
    }
}

impl<P: Processor> Processor for CatchPanic<P> {
    fn name(&self) -> &'static str {
        self.processor.name()
    }

    async fn process(&self, message: &Message) -> Outcome {
        // Unwind safety: a panicking processor leaves no state here that later messages read; its own
        // state is its own to keep consistent, as after any failure.
        match AssertUnwindSafe(self.processor.process(message))
            .catch_unwind()
            .await
        {
            Ok(outcome) => outcome,
            Err(panic) => {
                let reason = format!("the processor panicked: {}", panic_message(&*panic));
                tracing::error!(message_id = %message.id, %reason, "processing failed");
                Outcome::Retry(reason)
            }
        }
    }
}

/// The message a panic was raised with, when it is text.
pub fn panic_message(panic: &(dyn Any + Send)) -> &str {
    panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(no message)")
}

/// The pause before restarting a loop that died, after `recent` restarts within the health window:
/// 1 s, doubling, at most 30 s.
pub fn restart_backoff(recent: usize) -> Duration {
    let exponent = u32::try_from(recent.saturating_sub(1)).unwrap_or(u32::MAX).min(5);
    Duration::from_secs(1u64 << exponent).min(Duration::from_secs(30))
}

/// Runs the loop `start` makes, as its own task, until it ends normally or `shutdown` resolves; when it
/// dies (panics), counts the restart in `health`, waits `backoff` of the restarts within the health
/// window ([`restart_backoff`]) and starts a new one.
pub async fn supervise<F, L, S>(
    name: String,
    health: Health,
    (shutdown, backoff): (S, fn(usize) -> Duration),
    mut start: F,
) where
    F: FnMut() -> L,
    L: Future<Output = ()> + Send + 'static,
    S: Future<Output = ()> + Clone + Send,
{
    loop {
        let error = match tokio::spawn(start()).await {
            Ok(()) => return,
            Err(error) if error.is_cancelled() => return,
            Err(error) => error,
        };
        let panic = error.into_panic();
        let recent = health.loop_restarted(Instant::now());
        let pause = backoff(recent);
        tracing::error!(
            task = %name,
            panic = panic_message(&*panic),
            restarts_in_window = recent,
            ?pause,
            "a receive loop died; restarting it"
        );
        tokio::select! {
            () = shutdown.clone() => return,
            () = tokio::time::sleep(pause) => {}
        }
    }
}

#[cfg(test)]
#[path = "supervisor_tests.rs"]
mod tests;
