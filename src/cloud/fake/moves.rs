//! SQS's server-side message-move task in memory. Off by default, as on the emulators (a start is then
//! `Unsupported` and the redrive falls back to receive/send/delete); a test turns it on with
//! [`super::FakeAws::with_message_moves`] and says how far a task got with
//! [`super::FakeAws::advance_message_move`]. The task moves no messages itself: what a redrive decides
//! from the task's state is under test, not SQS's moving.

use std::sync::{Arc, Mutex, PoisonError};

use crate::cloud::traits::{MoveRequest, MoveTask, MoveTaskStatus};

/// The move tasks of a fake account. Clones share them.
#[derive(Clone, Debug, Default)]
pub(super) struct MoveTasks {
    state: Arc<Mutex<Tasks>>,
}

#[derive(Debug, Default)]
struct Tasks {
    enabled: bool,
    /// Newest first, as SQS lists them.
    tasks: Vec<MoveTask>,
    sequence: u64,
}

impl MoveTasks {
    fn lock(&self) -> std::sync::MutexGuard<'_, Tasks> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Lets tasks be started from now on.
    pub(super) fn enable(&self) {
        self.lock().enabled = true;
    }

    /// A new running task for `request` and its handle; `None` while tasks are off.
    pub(super) fn start(&self, request: &MoveRequest) -> Option<String> {
        let mut state = self.lock();
        if !state.enabled {
            return None;
        }
        state.sequence += 1;
        let handle = format!("task-{}", state.sequence);
        let task = MoveTask {
            task_handle: Some(handle.clone()),
            status: MoveTaskStatus::Running,
            source_arn: Some(request.source_arn.clone()),
            destination_arn: request.destination_arn.clone(),
            moved: 0,
            to_move: None,
            failure_reason: None,
            started_at_millis: 0,
        };
        state.tasks.insert(0, task);
        Some(handle)
    }

    /// The tasks of the dead-letter queue `source_arn`, newest first; `None` while tasks are off.
    pub(super) fn of(&self, source_arn: &str) -> Option<Vec<MoveTask>> {
        let state = self.lock();
        state.enabled.then(|| {
            state
                .tasks
                .iter()
                .filter(|t| t.source_arn.as_deref() == Some(source_arn))
                .cloned()
                .collect()
        })
    }

    /// Sets the state and the count moved of the newest task of `source_arn`; whether there is one.
    pub(super) fn advance(&self, source_arn: &str, status: MoveTaskStatus, moved: i64) -> bool {
        let mut state = self.lock();
        let newest = state
            .tasks
            .iter_mut()
            .find(|t| t.source_arn.as_deref() == Some(source_arn));
        let Some(task) = newest else {
            return false;
        };
        if status.is_finished() {
            // SQS gives no handle for a finished task.
            task.task_handle = None;
        }
        task.status = status;
        task.moved = moved;
        true
    }
}
