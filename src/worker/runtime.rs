//! The queue runtime: `receivers` loops, each keeping up to 10 messages in flight: it long-polls for as
//! many as it has room for, processes each batch concurrently in a task of its own (from a FIFO queue:
//! each message group's in order, see [`super::ordering`]; SQS hands out no message of a group while one
//! is in flight, so batches in flight at once never share a group), and receives again as soon as a
//! settled batch frees room, while other batches are still processed.
//!
//! - Success: acknowledged in one batch delete.
//! - [`Outcome::Retry`]: made visible again after the retry delay (exponential in the receive count,
//!   through the visibility timeout); on the last attempt, dead-lettered with the reason.
//!   [`Outcome::RetryAfter`] likewise, its delay lengthened to what the processor asked for (at most the
//!   longest backoff).
//! - [`Outcome::Reject`]: dead-lettered at once with the reason.
//! - A message is deleted only after its dead-letter copy was accepted, so nothing is lost; without a
//!   dead-letter queue it is hidden for the longest delay instead, and the queue's own redrive policy
//!   (`maxReceiveCount`) moves it eventually.
//! - Work that outlasts half the visibility timeout gets its messages' visibility extended, never more
//!   often than every 5 seconds ([`super::hold`]).
//! - Shutdown: receiving stops; messages in flight get `drain` to finish; those that finished are
//!   settled as usual, and those still unfinished are released (visible at once) for another worker.

use std::{
    future::Future,
    sync::Arc,
    time::{Duration, Instant},
};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tracing::Instrument as _;

// One path per use (not `super::{…}`): the runtime needs its siblings, not the worker's root.
use super::config::Retry;
use super::hold::Hold;
use super::message::TRACEPARENT;
use super::metrics::{DeadLetterReason, WorkerMetrics};
use super::ordering::{self, Step};
use super::processor::{Outcome, Processor};
use super::queue::{Delivery, WorkQueue};
use super::supervisor::{CatchPanic, restart_backoff, supervise};
use super::trace;
use crate::cloud::MessageQueue;

/// How the runtime drains its queue.
#[derive(Clone, Debug)]
pub struct Settings {
    /// The Consumer, for logs and dead-letter reasons.
    pub consumer: String,
    /// Concurrent receive loops.
    pub receivers: usize,
    /// Long-polling wait per receive.
    pub wait_seconds: i32,
    /// The queue's visibility timeout.
    pub visibility_timeout: Duration,
    /// Retry policy.
    pub retry: Retry,
    /// Time in-flight messages get after shutdown.
    pub drain: Duration,
    /// Receives after which a message is rejected unprocessed, for queues with no redrive policy of
    /// their own (Storage Queues); `None` leaves it to the queue (SQS).
    pub max_receive_count: Option<u32>,
}

/// Settlements a receive loop may have in flight before it waits for one (bounds memory and calls).
const MAX_PENDING_SETTLEMENTS: usize = 4;

/// Messages a receive loop may have in flight (received, not yet settled), also the most one receive
/// asks for.
const BUDGET: usize = 10;

/// Runs until `shutdown` resolves, then drains. Returns when every receive loop has settled its last
/// batch.
pub async fn run<Q, P, S>(
    queue: WorkQueue<Q>,
    processor: Arc<P>,
    settings: Settings,
    metrics: WorkerMetrics,
    shutdown: S,
) where
    Q: MessageQueue + Clone + 'static,
    P: Processor,
    S: Future<Output = ()> + Clone + Send + 'static,
{
    let settings = Arc::new(settings);
    // A panicking processor fails its message, not its loop; a loop that dies anyway is restarted.
    let processor = Arc::new(CatchPanic::new(processor));
    let mut loops = JoinSet::new();
    for index in 0..settings.receivers.max(1) {
        let (queue, processor, settings) = (queue.clone(), processor.clone(), settings.clone());
        let (metrics, stop) = (metrics.clone(), shutdown.clone());
        let health = metrics.health().clone();
        let start = move || {
            let (metrics, stop) = (metrics.clone(), stop.clone());
            receive_loop(
                index,
                queue.clone(),
                processor.clone(),
                settings.clone(),
                metrics,
                stop,
            )
        };
        let name = format!("receiver {index}");
        loops.spawn(supervise(
            name,
            health,
            (shutdown.clone(), restart_backoff),
            start,
        ));
    }
    while let Some(result) = loops.join_next().await {
        if let Err(error) = result {
            tracing::error!(%error, "a receive loop's supervisor ended abnormally");
        }
    }
}

async fn receive_loop<
    Q: MessageQueue + Clone + 'static,
    P: Processor,
    S: Future<Output = ()> + Clone + Send + 'static,
>(
    index: usize,
    queue: WorkQueue<Q>,
    processor: Arc<P>,
    settings: Arc<Settings>,
    metrics: WorkerMetrics,
    shutdown: S,
) {
    // This loop's messages in flight (received, not yet settled): it receives again as soon as there
    // is room, while earlier batches are still processed, so a slow processor gets up to
    // `receivers × BUDGET` messages at once even when they arrive one at a time.
    let budget = Arc::new(Semaphore::new(BUDGET));
    let settling = Arc::new(Semaphore::new(MAX_PENDING_SETTLEMENTS));
    let mut batches = JoinSet::new();
    let mut errors = 0u32;
    let hold = Hold::of(settings.visibility_timeout).seconds();
    loop {
        // Finished batches' results, so the set does not grow.
        while batches.try_join_next().is_some() {}
        let Some(mut room) = wait_for_room(&budget, shutdown.clone()).await else {
            break;
        };
        let asked = i32::try_from(room.num_permits()).unwrap_or(10);
        let received = tokio::select! {
            biased;
            () = shutdown.clone() => break,
            received = queue.receive(asked, settings.wait_seconds, hold) => received,
        };
        let batch = match received {
            Ok(batch) => {
                errors = 0;
                metrics.health().receive_succeeded();
                batch
            }
            Err(error) => {
                drop(room);
                errors = errors.saturating_add(1);
                metrics.health().receive_failed(tokio::time::Instant::now());
                let pause = Duration::from_secs(1 << errors.min(5).saturating_sub(1));
                tracing::warn!(receiver = index, %error, ?pause, "receive failed; retrying");
                tokio::select! {
                    () = shutdown.clone() => break,
                    () = tokio::time::sleep(pause) => continue,
                }
            }
        };
        if batch.is_empty() {
            continue;
        }
        // The room not used goes back now; the batch keeps one permit per message until settled.
        let unused = room.num_permits().saturating_sub(batch.len());
        drop(room.split(unused));
        metrics.received(batch.len());
        let (queue, processor) = (queue.clone(), processor.clone());
        let (settings, metrics, settling) = (settings.clone(), metrics.clone(), settling.clone());
        let stop = shutdown.clone();
        batches.spawn(async move {
            let (steps, _) = process(&queue, &*processor, &settings, &metrics, &batch, stop).await;
            // At most MAX_PENDING_SETTLEMENTS settle at once (bounds memory and calls).
            let _settling = settling.acquire_owned().await;
            settle(queue, settings, metrics, batch.into_iter().zip(steps).collect()).await;
            drop(room);
        });
    }
    // Each batch drains on its own: what finished is settled, the rest released when `drain` is over.
    while batches.join_next().await.is_some() {}
}

/// Waits until this loop has room for at least one more message and takes all there is (at most one
/// receive's worth), or `None` on shutdown.
async fn wait_for_room<S: Future<Output = ()>>(
    budget: &Arc<Semaphore>,
    shutdown: S,
) -> Option<OwnedSemaphorePermit> {
    let mut room = tokio::select! {
        biased;
        () = shutdown => return None,
        permit = budget.clone().acquire_owned() => permit.ok()?,
    };
    let more = budget.available_permits().min(BUDGET - 1);
    if let Ok(extra) = budget
        .clone()
        .try_acquire_many_owned(u32::try_from(more).unwrap_or(0))
    {
        room.merge(extra);
    }
    Some(room)
}

/// Processes a batch (concurrently; from a FIFO queue each message group in order, see [`ordering`]),
/// extending visibility while it runs; each message's step, and whether shutdown's drain time ran out
/// first. Then the messages that finished have their outcome, to be settled as usual, and the others are
/// [`Step::Held`], released for another worker (a group's finished messages precede its unfinished one,
/// so the order holds).
async fn process<Q: MessageQueue + Clone + 'static, P: Processor, S: Future<Output = ()> + Send>(
    queue: &WorkQueue<Q>,
    processor: &P,
    settings: &Settings,
    metrics: &WorkerMetrics,
    batch: &[Delivery],
    shutdown: S,
) -> (Vec<Step>, bool) {
    let lanes = ordering::lanes(
        batch.iter().map(|d| d.message.group_id.as_deref()),
        queue.is_fifo(),
    );
    let has_dead_letter = queue.has_dead_letter();
    let finished = std::sync::Mutex::new(vec![None; batch.len()]);
    let work = ordering::run_lanes(
        batch.len(),
        lanes,
        |index| {
            let finished = &finished;
            async move {
                let outcome = process_one(processor, settings, metrics, &batch[index]).await;
                if let Ok(mut finished) = finished.lock() {
                    finished[index] = Some(outcome.clone());
                }
                outcome
            }
        },
        // A group goes on past a message only if it is done with it.
        |index, outcome| {
            let receive_count = batch[index].message.receive_count;
            settlement(outcome, receive_count, &settings.retry, has_dead_letter) == Settlement::Acknowledge
        },
    );
    tokio::pin!(work);
    tokio::pin!(shutdown);
    let hold = Hold::of(settings.visibility_timeout);
    let mut heartbeat = tokio::time::interval_at(tokio::time::Instant::now() + hold.every, hold.every);
    let mut deadline: Option<tokio::time::Instant> = None;
    loop {
        tokio::select! {
            steps = &mut work => return (steps, false),
            _ = heartbeat.tick() => {
                let entries = batch.iter().map(|d| (d.receipt.clone(), hold.seconds())).collect();
                if let Err(error) = queue.postpone(entries).await {
                    tracing::warn!(%error, "extending the visibility of messages in progress failed");
                }
            }
            () = &mut shutdown, if deadline.is_none() => {
                deadline = Some(tokio::time::Instant::now() + settings.drain);
            }
            () = sleep_until(deadline), if deadline.is_some() => {
                let finished = finished.lock().map(|f| f.clone()).unwrap_or_default();
                let steps: Vec<Step> = (0..batch.len())
                    .map(|i| finished.get(i).cloned().flatten().map_or(Step::Held, Step::Ran))
                    .collect();
                let unfinished = steps.iter().filter(|s| **s == Step::Held).count();
                tracing::warn!(unfinished, "drain time over: releasing unfinished messages");
                return (steps, true);
            }
        }
    }
}

/// Processes one message in a span of the trace it carries (what the processor publishes is its child).
async fn process_one<P: Processor>(
    processor: &P,
    settings: &Settings,
    metrics: &WorkerMetrics,
    delivery: &Delivery,
) -> Outcome {
    let span = tracing::info_span!(
        "process",
        otel.kind = "consumer",
        messaging.message.id = %delivery.message.id,
        messaging.receive_count = delivery.message.receive_count,
        otel.status_code = tracing::field::Empty,
        otel.status_message = tracing::field::Empty,
    );
    trace::continue_trace(&span, delivery.message.attribute(TRACEPARENT));
    async move {
        let started = Instant::now();
        let outcome = match over_receive_limit(delivery.message.receive_count, settings.max_receive_count) {
            Some(reason) => Outcome::Reject(reason),
            None => processor.process(&delivery.message).await,
        };
        match outcome.failure() {
            None => metrics.processed(started.elapsed()),
            Some(reason) => {
                metrics.failed(started.elapsed());
                let span = tracing::Span::current();
                span.record("otel.status_code", "ERROR");
                span.record("otel.status_message", reason);
            }
        }
        outcome
    }
    .instrument(span)
    .await
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Why a message received `receive_count` times is not processed again, when that is more than the
/// queue's `max_receive_count` (the earlier receives crashed or outlasted their worker).
pub fn over_receive_limit(receive_count: u32, max_receive_count: Option<u32>) -> Option<String> {
    let max = max_receive_count?;
    (receive_count > max).then(|| {
        format!("received {receive_count} times, more than the Queue's deadLetter.maxReceiveCount of {max}")
    })
}

/// What happens to one message after processing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Settlement {
    /// Delete it.
    Acknowledge,
    /// Make it visible again after this many seconds.
    Postpone(u32),
    /// Send it to the dead letter with this reason, then delete it.
    DeadLetter(DeadLetterReason, String),
}

/// The pure decision: what to do with a message of `receive_count` receives and this outcome.
pub fn settlement(outcome: &Outcome, receive_count: u32, retry: &Retry, has_dead_letter: bool) -> Settlement {
    match outcome {
        Outcome::Done => Settlement::Acknowledge,
        Outcome::Reject(reason) if has_dead_letter => {
            Settlement::DeadLetter(DeadLetterReason::Rejected, reason.clone())
        }
        Outcome::Retry(reason) | Outcome::RetryAfter { reason, .. }
            if retry.exhausted(receive_count) && has_dead_letter =>
        {
            Settlement::DeadLetter(
                DeadLetterReason::Exhausted,
                format!("failed {receive_count} times; last: {reason}"),
            )
        }
        // No dead letter to send it to: hide it as long as possible, never delete it. The queue's own
        // redrive policy, if any, moves it after maxReceiveCount receives.
        Outcome::Reject(_) => Settlement::Postpone(Retry::MAX_DELAY_SECONDS),
        Outcome::Retry(_) | Outcome::RetryAfter { .. } if retry.exhausted(receive_count) => {
            Settlement::Postpone(Retry::MAX_DELAY_SECONDS)
        }
        Outcome::Retry(_) | Outcome::RetryAfter { .. } => {
            Settlement::Postpone(retry.delay_seconds_asked(receive_count, outcome.asked_delay()))
        }
    }
}

/// The reason attached to a dead-lettered message: JSON with the consumer, the queue it came from (where
/// a redrive sends it back), the reason and the attempts.
pub fn reason_json(consumer: &str, queue: &str, reason: &str, attempts: u32) -> String {
    serde_json::json!({"consumer": consumer, "queue": queue, "reason": reason, "attempts": attempts})
        .to_string()
}

async fn settle<Q: MessageQueue + Clone + 'static>(
    queue: WorkQueue<Q>,
    settings: Arc<Settings>,
    metrics: WorkerMetrics,
    batch: Vec<(Delivery, Step)>,
) {
    let mut acknowledge = Vec::new();
    let mut postpone = Vec::new();
    for (delivery, step) in &batch {
        let receipt = delivery.receipt.clone();
        match step {
            // Released for the next receive, which hands it out behind the message that held it.
            Step::Held => postpone.push((receipt, 0)),
            Step::Ran(outcome) => match settle_one(&queue, &settings, &metrics, delivery, outcome).await {
                None => acknowledge.push(receipt),
                Some(seconds) => postpone.push((receipt, seconds)),
            },
        }
    }
    match queue.acknowledge(acknowledge).await {
        Ok(failed) if !failed.is_empty() => {
            tracing::warn!(
                count = failed.len(),
                "some deletes failed; those messages will be redelivered"
            );
        }
        Ok(_) => {}
        Err(error) => tracing::warn!(%error, "deleting processed messages failed; they will be redelivered"),
    }
    if let Err(error) = queue.postpone(postpone).await {
        tracing::warn!(%error, "postponing failed messages failed; they reappear after the visibility timeout");
    }
    for _ in &batch {
        metrics.done();
    }
}

/// Settles one processed message: `None` to delete it (done, or dead-lettered), or the seconds until it
/// is to be visible again.
async fn settle_one<Q: MessageQueue + Clone + 'static>(
    queue: &WorkQueue<Q>,
    settings: &Settings,
    metrics: &WorkerMetrics,
    delivery: &Delivery,
    outcome: &Outcome,
) -> Option<i32> {
    let message = &delivery.message;
    let seconds = |seconds: u32| Some(i32::try_from(seconds).unwrap_or(43_200));
    match settlement(
        outcome,
        message.receive_count,
        &settings.retry,
        queue.has_dead_letter(),
    ) {
        Settlement::Acknowledge => None,
        Settlement::Postpone(delay) => {
            if let Some(reason) = outcome.failure() {
                tracing::warn!(
                    message_id = %message.id,
                    trace_id = message.trace_id().unwrap_or_default(),
                    attempt = message.receive_count,
                    retry_in_seconds = delay,
                    %reason,
                    "processing failed"
                );
            }
            seconds(delay)
        }
        Settlement::DeadLetter(kind, reason) => {
            let attached = reason_json(&settings.consumer, queue.url(), &reason, message.receive_count);
            match queue.dead_letter(delivery, &attached).await {
                Ok(()) => {
                    tracing::warn!(
                        message_id = %message.id,
                        trace_id = message.trace_id().unwrap_or_default(),
                        %reason,
                        "dead-lettered"
                    );
                    metrics.dead_lettered(kind);
                    None
                }
                Err(error) => {
                    // Kept in the queue: it comes back and is dead-lettered then.
                    tracing::warn!(message_id = %message.id, %error, "dead-lettering failed; retrying later");
                    seconds(settings.retry.delay_seconds(message.receive_count))
                }
            }
        }
    }
}

#[cfg(test)]
#[path = "runtime_tests.rs"]
mod tests;
