//! The driver every kind shares, and what it needs: the reconcile loop ([`reconcile`]: finalizer, status
//! of the outcome, failure classes and backoff), status and conditions, Events, errors, ownership of
//! cloud resources, attribute drift, the cache of what was verified, the watch stores and who wakes whom,
//! references between objects, Secrets, tenancy, and the apply of Kubernetes children. Nothing here
//! knows a kind's cloud resource; the kinds build on it.

pub mod children;
pub mod conditions;
pub mod drift;
pub mod error;
pub mod events;
pub mod gauges;
pub mod ownership;
pub mod reconcile;
pub mod references;
pub mod secrets;
pub mod status;
pub mod tenancy;
#[cfg(test)]
pub mod testing;
pub mod verified;
pub mod watch;
