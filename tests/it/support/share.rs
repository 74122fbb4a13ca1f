//! Who may use the test bed at the same time. Every test runs in this one process, several at once, and
//! most share the test bed without harm: each works in namespaces, cloud resources and ports of its own.
//! A few need it to themselves, because what they check or measure is wall-clock time on a quiet machine
//! (leases renewed every 300 ms, answers "at once" under a flood) or because their load would stall the
//! others (thousands of orders through moto, which serves one request at a time). So a test that reaches
//! the test bed holds it for its whole run: a share with [`shared`], or all of it with [`exclusive`],
//! which waits until the running tests are done and holds back the ones that start meanwhile.
//! Tests that only run local tools (helm template, argocd-lua, the image script) hold nothing.
//!
//! `make test` runs the tests that hold it alone by themselves, one after another, after the others
//! (scripts/test.sh lists them), so no test waits for running tests to finish before it can start. In
//! its first run (`TESTBED_PHASE=shared`) a test asking for the test bed alone fails, saying it must be
//! added to that list.
//!
//! With `TESTBED_TIMES` naming a file, each test appends one line to it when it lets the test bed go:
//! its name, how it held the test bed, the seconds it waited for it and the seconds it held it. That is
//! where `make test`'s time goes (it prints the longest at its end).

use std::io::Write as _;
use std::time::Instant;
use tokio::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

/// The test bed: shared for reading, held alone for writing. Tokio's lock is fair (first come, first
/// served), so a test waiting for [`exclusive`] is not starved by a stream of shared ones, and it does
/// not poison: a test that panics releases the test bed as it unwinds.
static TEST_BED: RwLock<()> = RwLock::const_new(());

/// A hold on the test bed, released when dropped; it records its times there (see the module's text).
pub struct Held<G> {
    _guard: G,
    mode: &'static str,
    asked: Instant,
    got: Instant,
}

impl<G> Held<G> {
    fn new(guard: G, mode: &'static str, asked: Instant) -> Self {
        Self {
            _guard: guard,
            mode,
            asked,
            got: Instant::now(),
        }
    }
}

impl<G> Drop for Held<G> {
    fn drop(&mut self) {
        let Some(path) = std::env::var_os("TESTBED_TIMES") else {
            return;
        };
        let test = std::thread::current().name().unwrap_or("?").to_owned();
        let line = format!(
            "{test}\t{}\t{:.1}\t{:.1}\n",
            self.mode,
            (self.got - self.asked).as_secs_f64(),
            self.got.elapsed().as_secs_f64()
        );
        // Best effort: a record that cannot be written must not fail the test that made it.
        if let Ok(mut file) = std::fs::OpenOptions::new().create(true).append(true).open(path) {
            let _ = file.write_all(line.as_bytes());
        }
    }
}

/// A share of the test bed alongside the other tests, held until the guard is dropped (bind it to a
/// variable such as `_bed` so it lives to the end of the test, not `_`, which drops it at once).
pub async fn shared() -> Held<RwLockReadGuard<'static, ()>> {
    let asked = Instant::now();
    Held::new(TEST_BED.read().await, "shared", asked)
}

/// The whole test bed, no other test running, held until the guard is dropped.
pub async fn exclusive() -> Held<RwLockWriteGuard<'static, ()>> {
    assert!(
        std::env::var("TESTBED_PHASE").as_deref() != Ok("shared"),
        "this test holds the test bed alone (support::exclusive), but make test ran it with the tests that \
         share it: add it to `alone` in scripts/test.sh"
    );
    let asked = Instant::now();
    Held::new(TEST_BED.write().await, "exclusive", asked)
}
