//! Tributary: a Kubernetes operator that runs multi-cloud event pipelines declaratively.
//!
//! The library holds everything testable; `src/main.rs` only runs the command line `cli` declares. Modules
//! grow with the issues: `api` (CRD types), `cli` (every setting, with its flag and variable),
//! `controller`, `cloud` (narrow traits per capability, AWS and Azure implementations side by side),
//! `filter`, `operate` (metrics, health, leader election, shutdown) and `worker`.
#![forbid(unsafe_code)]

pub mod admission;
pub mod api;
pub mod cli;
pub mod cloud;
pub mod controller;
/// The SNS filter-policy engine: its own crate (`crates/sns-filter`), under its old path.
pub use sns_filter as filter;
pub mod inspect;
pub mod operate;
pub mod tls;
pub mod webhook;
pub mod worker;

/// The version of this build, as Cargo stamped it.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
