//! Who may use the test bed at the same time. Every test runs in this one process, several at once, and
//! most share the test bed without harm: each works in namespaces, cloud resources and ports of its own.
//! A few need it to themselves, because what they check or measure is wall-clock time on a quiet machine
//! (leases renewed every 300 ms, answers "at once" under a flood) or because their load would stall the
//! others (thousands of orders through moto, which serves one request at a time). So a test that reaches
//! the test bed holds it for its whole run: a share with [`shared`], or all of it with [`exclusive`],
//! which waits until the running tests are done and holds back the ones that start meanwhile.
//! Tests that only run local tools (helm template, argocd-lua, the image script) hold nothing.

use tokio::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

/// The test bed: shared for reading, held alone for writing. Tokio's lock is fair (first come, first
/// served), so a test waiting for [`exclusive`] is not starved by a stream of shared ones, and it does
/// not poison: a test that panics releases the test bed as it unwinds.
static TEST_BED: RwLock<()> = RwLock::const_new(());

/// A share of the test bed alongside the other tests, held until the guard is dropped (bind it to a
/// variable such as `_bed` so it lives to the end of the test, not `_`, which drops it at once).
pub async fn shared() -> RwLockReadGuard<'static, ()> {
    TEST_BED.read().await
}

/// The whole test bed, no other test running, held until the guard is dropped.
pub async fn exclusive() -> RwLockWriteGuard<'static, ()> {
    TEST_BED.write().await
}
