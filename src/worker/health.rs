//! The worker's health as the kubelet asks for it: `/healthz` (liveness) fails while receive loops keep
//! dying, so the kubelet restarts a pod whose runtime is broken instead of leaving it up and idle;
//! `/readyz` (readiness) fails while the source cannot be reached (every receive failing for longer than
//! a bound), and both recover by themselves. Restarts of receive loops are counted for `/metrics`.

use std::{
    collections::VecDeque,
    fmt::Write as _,
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicU64, Ordering::Relaxed},
    },
    time::Duration,
};

use tokio::time::Instant;

/// Receive-loop restarts within [`Bounds::restart_window`] beyond which the worker is not live.
const MAX_RESTARTS: usize = 5;

/// When liveness and readiness fail.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bounds {
    /// More than [`Bounds::max_restarts`] loop restarts within this window: not live.
    pub restart_window: Duration,
    /// How many restarts the window tolerates.
    pub max_restarts: usize,
    /// Every receive failing for this long: not ready.
    pub unreachable_after: Duration,
}

impl Default for Bounds {
    /// Five restarts in five minutes; a source unreachable for 30 s (two or three receives with their
    /// backoff, so one blip does not take the pod out of its Service).
    fn default() -> Self {
        Self {
            restart_window: Duration::from_secs(300),
            max_restarts: MAX_RESTARTS,
            unreachable_after: Duration::from_secs(30),
        }
    }
}

/// The shared health state. Cheap to clone: clones share it.
#[derive(Clone, Debug, Default)]
pub struct Health {
    inner: Arc<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    bounds: Bounds,
    restarts_total: AtomicU64,
    /// When the loops restarted within the window, oldest first.
    recent_restarts: Mutex<VecDeque<Instant>>,
    /// Since when every receive has failed; `None` after a success.
    failing_since: Mutex<Option<Instant>>,
    /// Why a process the worker delivers to (the user's container) is not ready; `None` while it is.
    unready_dependency: Mutex<Option<String>>,
}

impl Health {
    /// Health judged by `bounds`.
    pub fn with_bounds(bounds: Bounds) -> Self {
        Self {
            inner: Arc::new(Inner {
                bounds,
                ..Inner::default()
            }),
        }
    }

    /// A receive loop died and is restarted at `now`; answers the restarts within the window, for the
    /// backoff before the restart.
    pub fn loop_restarted(&self, now: Instant) -> usize {
        self.inner.restarts_total.fetch_add(1, Relaxed);
        let mut recent = lock(&self.inner.recent_restarts);
        recent.push_back(now);
        forget_before(&mut recent, now, self.inner.bounds.restart_window);
        recent.len()
    }

    /// Receive-loop restarts since the worker started.
    pub fn restarts_total(&self) -> u64 {
        self.inner.restarts_total.load(Relaxed)
    }

    /// A receive answered (with messages or none): the source is reachable.
    pub fn receive_succeeded(&self) {
        *lock(&self.inner.failing_since) = None;
    }

    /// A receive failed at `now`.
    pub fn receive_failed(&self, now: Instant) {
        lock(&self.inner.failing_since).get_or_insert(now);
    }

    /// Liveness at `now`: the loops have not restarted more than the bound within the window.
    pub fn is_live_at(&self, now: Instant) -> bool {
        let mut recent = lock(&self.inner.recent_restarts);
        forget_before(&mut recent, now, self.inner.bounds.restart_window);
        recent.len() <= self.inner.bounds.max_restarts
    }

    /// Readiness at `now`: the source answered within the bound (or has not failed yet).
    pub fn is_ready_at(&self, now: Instant) -> bool {
        lock(&self.inner.failing_since)
            .is_none_or(|since| now.saturating_duration_since(since) < self.inner.bounds.unreachable_after)
    }

    /// A process the worker delivers to is not ready, for `reason` (`None`: it is ready again).
    pub fn dependency(&self, reason: Option<String>) {
        *lock(&self.inner.unready_dependency) = reason;
    }

    /// Why a process the worker delivers to is not ready, if it is not.
    pub fn unready_dependency(&self) -> Option<String> {
        lock(&self.inner.unready_dependency).clone()
    }

    /// `tributary_worker_loop_restarts_total`, in the Prometheus text format with `labels`.
    pub fn render(&self, labels: &str) -> String {
        let name = "tributary_worker_loop_restarts_total";
        let mut out = String::new();
        let _ = writeln!(
            out,
            "# HELP {name} Receive loops that died (a panic outside a processor) and were restarted.\n\
             # TYPE {name} counter\n{name}{{{labels}}} {}",
            self.restarts_total()
        );
        out
    }
}

fn forget_before(recent: &mut VecDeque<Instant>, now: Instant, window: Duration) {
    while recent
        .front()
        .is_some_and(|at| now.saturating_duration_since(*at) >= window)
    {
        recent.pop_front();
    }
}

/// The state behind a lock; a panic elsewhere while holding it leaves nothing half-written here.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: Duration = Duration::from_secs(1);

    #[test]
    fn liveness_fails_when_loops_keep_dying_and_recovers_as_restarts_age() {
        let health = Health::default();
        let start = Instant::now();
        assert!(health.is_live_at(start));
        for i in 0..5 {
            assert_eq!(health.loop_restarted(start + i * SECOND), i as usize + 1);
        }
        assert!(
            health.is_live_at(start + 5 * SECOND),
            "five restarts are tolerated"
        );
        health.loop_restarted(start + 6 * SECOND);
        assert!(
            !health.is_live_at(start + 6 * SECOND),
            "the sixth within five minutes is not"
        );
        assert_eq!(health.restarts_total(), 6);
        // Five minutes after the first, it has aged out of the window.
        assert!(health.is_live_at(start + 300 * SECOND));
        assert_eq!(health.restarts_total(), 6, "the counter never goes down");
        assert!(
            health
                .render("consumer=\"c\"")
                .contains("tributary_worker_loop_restarts_total{consumer=\"c\"} 6")
        );
    }

    #[test]
    fn readiness_fails_while_receives_fail_past_the_bound_and_recovers_on_success() {
        let health = Health::default();
        let start = Instant::now();
        assert!(health.is_ready_at(start), "ready before any receive");
        health.receive_failed(start);
        health.receive_failed(start + 20 * SECOND);
        assert!(
            health.is_ready_at(start + 29 * SECOND),
            "counted from the first failure"
        );
        assert!(!health.is_ready_at(start + 30 * SECOND));
        health.receive_succeeded();
        assert!(health.is_ready_at(start + 31 * SECOND));
        health.receive_failed(start + 40 * SECOND);
        assert!(
            health.is_ready_at(start + 60 * SECOND),
            "a new failure starts a new count"
        );
    }

    #[test]
    fn an_unready_dependency_is_reported_until_it_is_ready() {
        let health = Health::default();
        assert_eq!(health.unready_dependency(), None);
        health.dependency(Some("the container answers 503".into()));
        assert_eq!(
            health.unready_dependency().as_deref(),
            Some("the container answers 503")
        );
        health.dependency(None);
        assert_eq!(health.unready_dependency(), None);
    }
}
