//! In which order the messages of a received batch run. From a standard queue every message runs at once.
//! From a FIFO queue the batch is split into lanes, one per message group: the lanes run at once (so
//! groups are processed in parallel, up to the batch's 10 messages per receive loop), and a lane's
//! messages run one after another in the order they were received, which is the group's order.
//!
//! A message runs only once every earlier message of its group in the batch will be acknowledged. When
//! one will not (it is retried, or dead-lettered), the rest of its group in the batch is held: not run,
//! and released by the runtime (visible again at once). Releasing rather than leaving them to expire
//! keeps the order and loses no time: SQS hands out no message of a group while an earlier one of it is
//! in flight, so the held messages come back only after the failed one, right behind it; left hidden,
//! they would block the group, the failed message's retry included, until their own visibility timeout
//! ran out. A dead-lettered message holds its group too, until the next receive: its dead-letter send
//! happens after the batch, and if that send fails the message is retried, and nothing has overtaken it.
//! (AWS's guidance for FIFO batches is the same: stop at the first failure of a group and return the
//! rest unprocessed, as Lambda's partial batch responses do.)
//!
//! The cost, as for any FIFO consumer: a held message is received again, so its receive count grows
//! with its group's failures, and a Queue's own `maxReceiveCount` counts those receives too.

use std::future::Future;

use futures::future::join_all;

use super::processor::Outcome;

/// What became of one message of a batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// Processed, with this outcome.
    Ran(Outcome),
    /// Not processed: an earlier message of its group in the batch will not be acknowledged (yet). It is
    /// released for the next receive.
    Held,
}

/// The lanes of a batch whose messages have `groups` (in receive order): indexes into the batch, each
/// lane's in receive order, the lanes in the order of their first message. From a FIFO queue a lane is a
/// message group (a message without a group is a lane of its own); from a standard queue every message
/// is.
pub fn lanes<'a>(groups: impl IntoIterator<Item = Option<&'a str>>, fifo: bool) -> Vec<Vec<usize>> {
    let mut lanes: Vec<(Option<&str>, Vec<usize>)> = Vec::new();
    for (index, group) in groups.into_iter().enumerate() {
        let group = group.filter(|_| fifo);
        match lanes
            .iter_mut()
            .find(|(lane_group, _)| group.is_some() && *lane_group == group)
        {
            Some((_, lane)) => lane.push(index),
            None => lanes.push((group, vec![index])),
        }
    }
    lanes.into_iter().map(|(_, lane)| lane).collect()
}

/// Runs a batch of `len` messages in `lanes`: the lanes concurrently, each lane's messages in turn with
/// `run(index)`, and a lane stops at the first message whose outcome `proceeds(index, &outcome)` says
/// its group may not go past; the lane's later messages are [`Step::Held`]. Returns each message's step,
/// in batch order.
pub async fn run_lanes<R, F, P>(len: usize, lanes: Vec<Vec<usize>>, run: R, proceeds: P) -> Vec<Step>
where
    R: Fn(usize) -> F,
    F: Future<Output = Outcome>,
    P: Fn(usize, &Outcome) -> bool,
{
    let (run, proceeds) = (&run, &proceeds);
    let done = join_all(lanes.into_iter().map(|lane| async move {
        let mut steps = Vec::with_capacity(lane.len());
        let mut held = false;
        for index in lane {
            if held {
                steps.push((index, Step::Held));
                continue;
            }
            let outcome = run(index).await;
            held = !proceeds(index, &outcome);
            steps.push((index, Step::Ran(outcome)));
        }
        steps
    }))
    .await;
    let mut steps = vec![Step::Held; len];
    for (index, step) in done.into_iter().flatten() {
        if let Some(slot) = steps.get_mut(index) {
            *slot = step;
        }
    }
    steps
}

#[cfg(test)]
#[path = "ordering_tests.rs"]
mod tests;
