//! The redrive part of the DeadLetter apply step: when `spec.redrive.id` is new, move the dead messages
//! back. SQS's own message-move task is tried first; when the server does not have it (moto answers
//! `Unsupported`), the receive/send/delete fallback of [`crate::cloud::redrive`] runs in bounded rounds,
//! a few seconds of work per reconcile, throttled at `maxMessagesPerSecond`, with progress in
//! `status.lastRedrive` and a short requeue until done. Keeping the state in status (not in a task of
//! this process) lets a restarted controller carry on where the previous one stopped.

use std::{collections::BTreeMap, time::Duration};

use kube::{ResourceExt, runtime::events::EventType};

use crate::cloud::{QueueMessages as _, Queues as _};
use crate::{
    api::{
        DeadLetter,
        dead_letter::{Redrive, RedriveResult},
    },
    cloud::{
        ErrorKind,
        aws::is_message_move_unsupported,
        redrive::{Destination, Mover, move_messages},
        traits::{MoveRequest, MoveTaskStatus},
    },
    controller::{
        Cloud, Context,
        driver::{
            error::Error,
            events::{self, reasons},
            status::describe,
            watch,
        },
    },
};

/// `lastRedrive.state` values.
pub mod states {
    /// Moving.
    pub const RUNNING: &str = "Running";
    /// Every message was moved.
    pub const COMPLETED: &str = "Completed";
    /// Stopped by an error; see the message.
    pub const FAILED: &str = "Failed";
    /// Cancelled outside Tributary.
    pub const CANCELLED: &str = "Cancelled";
}

/// Start of `lastRedrive.message` while SQS's move task runs; the task handle follows.
const TASK: &str = "SQS message-move task ";
/// `lastRedrive.message` of the fallback.
const FALLBACK: &str = "moved by receive/send/delete: the server has no message-move task";
/// Seconds of fallback work per reconcile, at the requested rate.
const ROUND_SECONDS: u64 = 5;
/// How soon a running redrive is looked at again.
const POLL: Duration = Duration::from_secs(1);
/// How soon after messages failed to move for a transient reason: once they are visible again (a round
/// hides what it receives for 60 s).
const RETRY_FAILED: Duration = Duration::from_secs(61);

/// How soon a redrive waiting for hidden messages looks again (they stay hidden up to a round's 60 s).
const HIDDEN_POLL: Duration = Duration::from_secs(10);

/// The redrive outcome to put in status, and how soon to look again.
pub(crate) struct Step {
    /// `status.lastRedrive`.
    pub result: Option<RedriveResult>,
    /// Requeue sooner than the resync while running.
    pub requeue: Option<Duration>,
}

/// A source queue of the dead letter: (ARN, URL).
pub(crate) type Source = (String, String);

fn is_finished(state: &str) -> bool {
    matches!(state, states::COMPLETED | states::FAILED | states::CANCELLED)
}

/// Where messages go: `destinationRef`'s queue, or back to their source queue (by the message's
/// `DeadLetterQueueSourceArn`, or the only source queue when there is one: moto records no source).
async fn destination<C: Cloud>(
    dead_letter: &DeadLetter,
    request: &Redrive,
    sources: &[Source],
    ctx: &Context<C>,
) -> Result<(Destination, Option<String>), Error> {
    let object = describe(dead_letter);
    let Some(target) = &request.destination_ref else {
        let by_arn: BTreeMap<String, String> = sources.iter().cloned().collect();
        let default = match sources {
            [(_, url)] => Some(url.clone()),
            _ => None,
        };
        return Ok((Destination::Sources { by_arn, default }, None));
    };
    let namespace = dead_letter.namespace().unwrap_or_default();
    let queue = watch::get(&ctx.stores.queues, &namespace, &target.name);
    let observed = queue.and_then(|q| q.status.clone()).map(|s| s.observed);
    match observed.and_then(|o| Some((o.url?, o.arn?))) {
        Some((url, arn)) => Ok((Destination::Queue(url), Some(arn))),
        None => Err(Error::DependencyNotReady {
            object,
            message: format!(
                "spec.redrive.destinationRef: Queue {} does not exist or has no SQS queue yet",
                target.name
            ),
        }),
    }
}

/// Advances the redrive of `dead_letter`, whose SQS queue is `url`/`arn`.
pub(crate) async fn step<C: Cloud>(
    dead_letter: &DeadLetter,
    ctx: &Context<C>,
    url: &str,
    arn: &str,
    sources: &[Source],
) -> Result<Step, Error> {
    let (request, current) = match pending(dead_letter) {
        Ok(pending) => pending,
        Err(settled) => return Ok(settled),
    };
    let (destination, destination_arn) = destination(dead_letter, request, sources, ctx).await?;
    let task_handle = current
        .as_ref()
        .and_then(|l| l.message.as_deref())
        .and_then(|m| m.strip_prefix(TASK));
    if current.is_none() {
        let move_request = MoveRequest {
            source_arn: arn.to_owned(),
            destination_arn,
            max_messages_per_second: Some(request.max_messages_per_second.max(1)),
        };
        if let Some(step) = start_task(ctx, dead_letter, request, &move_request).await? {
            return Ok(step);
        }
    } else if task_handle.is_some() {
        return poll_task(ctx, dead_letter, request, current, arn).await;
    }

    // The fallback, a bounded amount per reconcile. Messages an earlier receive hid are counted first:
    // a round cannot see them, and the redrive is not complete while they are in the dead letter.
    let hidden = ctx
        .aws
        .queue_stats(url)
        .await
        .map_err(|source| Error::cloud(&describe(dead_letter), source))?
        .in_flight;
    let from = DeadQueue {
        url,
        hidden: Hidden::Counted(hidden),
    };
    fallback(ctx, dead_letter, request, &ctx.aws, from, &destination, FALLBACK).await
}

/// The dead-letter queue a fallback moves from: its URL, and how many of its messages were hidden by an
/// earlier receive when the round began (a controller killed between a round's receive and its delete,
/// or another reader of the dead letter).
pub(crate) struct DeadQueue<'a> {
    pub url: &'a str,
    pub hidden: Hidden,
}

/// What a dead-letter queue said, before the rounds, about its hidden messages.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Hidden {
    /// Counted on their own (SQS's `ApproximateNumberOfMessagesNotVisible`).
    Counted(i64),
    /// Only a total of visible and hidden messages (a Storage Queue's approximate count). The rounds
    /// receive every visible message, so those of the total they did not receive are hidden.
    InTotal(i64),
}

impl Hidden {
    /// The messages hidden when the rounds began, given that they received `received`.
    pub(crate) fn after_rounds(self, received: u64) -> i64 {
        match self {
            Self::Counted(hidden) => hidden,
            Self::InTotal(total) => (total - i64::try_from(received).unwrap_or(i64::MAX)).max(0),
        }
    }
}

/// `lastRedrive` of a redrive still moving.
fn running(request: &Redrive, moved: i64, message: String) -> RedriveResult {
    RedriveResult {
        id: request.id.clone(),
        state: states::RUNNING.to_owned(),
        moved,
        message: Some(message),
    }
}

/// Starts SQS's message-move task; `None` when the server has none (the fallback then runs).
async fn start_task<C: Cloud>(
    ctx: &Context<C>,
    dead_letter: &DeadLetter,
    request: &Redrive,
    move_request: &MoveRequest,
) -> Result<Option<Step>, Error> {
    let object = describe(dead_letter);
    match ctx.aws.start_message_move(move_request).await {
        Ok(handle) => {
            let note = format!("redrive {} started: {TASK}{handle}", request.id);
            let normal = EventType::Normal;
            events::with_action(
                &ctx.recorder,
                dead_letter,
                normal,
                reasons::REDRIVE,
                "StartRedrive",
                note,
            )
            .await;
            Ok(Some(Step {
                result: Some(running(request, 0, format!("{TASK}{handle}"))),
                requeue: Some(POLL),
            }))
        }
        Err(error) if is_message_move_unsupported(&error) => {
            tracing::info!(object, "no message-move task on this server; using the fallback");
            Ok(None)
        }
        Err(error) if error.kind() == ErrorKind::Permanent => {
            finish(ctx, dead_letter, request, states::FAILED, 0, error.to_string())
                .await
                .map(Some)
        }
        Err(error) => Err(Error::cloud(&object, error)),
    }
}

/// Follows the running message-move task of the dead-letter queue `arn`.
async fn poll_task<C: Cloud>(
    ctx: &Context<C>,
    dead_letter: &DeadLetter,
    request: &Redrive,
    current: Option<RedriveResult>,
    arn: &str,
) -> Result<Step, Error> {
    let tasks = ctx
        .aws
        .message_moves(arn)
        .await
        .map_err(|source| Error::cloud(&describe(dead_letter), source))?;
    let Some(task) = tasks.into_iter().next() else {
        return Ok(Step {
            result: current,
            requeue: Some(POLL),
        });
    };
    let state = match &task.status {
        MoveTaskStatus::Completed => states::COMPLETED,
        MoveTaskStatus::Failed => states::FAILED,
        MoveTaskStatus::Cancelled => states::CANCELLED,
        _ => {
            let message = current.and_then(|l| l.message).unwrap_or_default();
            return Ok(Step {
                result: Some(running(request, task.moved, message)),
                requeue: Some(POLL),
            });
        }
    };
    let message = task
        .failure_reason
        .unwrap_or_else(|| "SQS message-move task finished".to_owned());
    finish(ctx, dead_letter, request, state, task.moved, message).await
}

/// The redrive to carry out and its result so far (none before it starts); `Err` with what status keeps
/// when there is no request or it is finished.
pub(crate) fn pending(dead_letter: &DeadLetter) -> Result<(&Redrive, Option<RedriveResult>), Step> {
    let last = dead_letter.status.as_ref().and_then(|s| s.last_redrive.clone());
    let Some(request) = &dead_letter.spec.redrive else {
        return Err(Step {
            result: last,
            requeue: None,
        });
    };
    let current = last.filter(|l| l.id == request.id);
    if let Some(done) = current.as_ref().filter(|l| is_finished(&l.state)) {
        return Err(Step {
            result: Some(done.clone()),
            requeue: None,
        });
    }
    Ok((request, current))
}

/// One bounded stretch of receive/send/delete rounds (a few seconds at the requested rate) from the
/// dead-letter queue `url` through `messages`, then the redrive's state: still running, or finished
/// with what could not be moved and why.
pub(crate) async fn fallback<C: Cloud, M: Mover>(
    ctx: &Context<C>,
    dead_letter: &DeadLetter,
    request: &Redrive,
    messages: &M,
    from: DeadQueue<'_>,
    destination: &Destination,
    how: &str,
) -> Result<Step, Error> {
    let object = describe(dead_letter);
    let rate = request.max_messages_per_second.max(1);
    let current = dead_letter
        .status
        .as_ref()
        .and_then(|s| s.last_redrive.as_ref())
        .filter(|l| l.id == request.id);
    let before = current.map_or(0, |l| l.moved);
    let limit = u64::try_from(rate).unwrap_or(1) * ROUND_SECONDS;
    let rate = u32::try_from(rate).ok();
    // The copies carry the redrive's id: one that fails again and comes back meanwhile stays.
    let totals = move_messages(messages, from.url, destination, limit, rate, Some(&request.id))
        .await
        .map_err(|source| Error::cloud(&object, source))?;
    let clean = totals.unroutable == 0 && totals.failed.is_empty();
    let hidden = from.hidden.after_rounds(totals.received);
    if hidden > 0 && clean && totals.moved < limit {
        let moved = before + i64::try_from(totals.moved).unwrap_or(i64::MAX);
        let message = format!(
            "{how}; {hidden} messages in the dead letter are hidden by an earlier receive: moving them \
             once they are visible again"
        );
        return Ok(Step {
            result: Some(running(request, moved, message)),
            requeue: Some(HIDDEN_POLL),
        });
    }
    settle(ctx, dead_letter, request, before, totals, limit, how).await
}

/// The redrive's state after a stretch of rounds that moved `totals` on top of `before`.
async fn settle<C: Cloud>(
    ctx: &Context<C>,
    dead_letter: &DeadLetter,
    request: &Redrive,
    before: i64,
    totals: crate::cloud::redrive::MoveTotals,
    limit: u64,
    how: &str,
) -> Result<Step, Error> {
    let moved = before + i64::try_from(totals.moved).unwrap_or(i64::MAX);
    if totals.moved >= limit {
        return Ok(Step {
            result: Some(running(request, moved, how.to_owned())),
            requeue: Some(POLL),
        });
    }
    if totals.unroutable > 0 {
        let message = format!(
            "{} messages have no known source queue and stay in the dead letter; set \
             spec.redrive.destinationRef",
            totals.unroutable
        );
        return finish(ctx, dead_letter, request, states::FAILED, moved, message).await;
    }
    if let Some(failure) = totals.failed.first() {
        let message = format!(
            "{} messages could not be moved; first: {}: {}",
            totals.failed.len(),
            failure.code,
            failure.message
        );
        if totals.failed.iter().all(|f| !f.sender_fault) {
            // The cloud's fault (throttled, unreachable): those messages are hidden for a minute, then
            // the redrive carries on with them.
            return Ok(Step {
                result: Some(running(request, moved, format!("{message}; trying again"))),
                requeue: Some(RETRY_FAILED),
            });
        }
        return finish(ctx, dead_letter, request, states::FAILED, moved, message).await;
    }
    let message = match totals.again.len() {
        0 => how.to_owned(),
        again => format!("{how}; {again} came back failing again and stay in the dead letter"),
    };
    finish(ctx, dead_letter, request, states::COMPLETED, moved, message).await
}

async fn finish<C: Cloud>(
    ctx: &Context<C>,
    dead_letter: &DeadLetter,
    request: &Redrive,
    state: &str,
    moved: i64,
    message: String,
) -> Result<Step, Error> {
    let note = format!(
        "redrive {} {}: {moved} messages moved; {message}",
        request.id,
        state.to_lowercase()
    );
    let type_ = if state == states::COMPLETED {
        EventType::Normal
    } else {
        EventType::Warning
    };
    events::with_action(
        &ctx.recorder,
        dead_letter,
        type_,
        reasons::REDRIVE,
        "FinishRedrive",
        note,
    )
    .await;
    Ok(Step {
        result: Some(RedriveResult {
            id: request.id.clone(),
            state: state.to_owned(),
            moved,
            message: Some(message),
        }),
        requeue: None,
    })
}

#[cfg(test)]
mod hidden_tests {
    use super::Hidden;

    #[test]
    fn hidden_messages_are_counted_or_told_from_the_total_by_what_the_rounds_received() {
        assert_eq!(Hidden::Counted(3).after_rounds(10), 3);
        assert_eq!(Hidden::InTotal(5).after_rounds(0), 5, "a receive hid all five");
        assert_eq!(Hidden::InTotal(5).after_rounds(3), 2);
        assert_eq!(Hidden::InTotal(5).after_rounds(5), 0);
        assert_eq!(
            Hidden::InTotal(2).after_rounds(4),
            0,
            "more arrived during the rounds"
        );
    }
}
