//! Operational basics of the controller process, independent of any one reconciler: Prometheus metrics
//! ([`metrics`]), the `/metrics`, `/healthz` and `/readyz` endpoints ([`http`]), leader election on a
//! Lease so that one replica reconciles at a time ([`leader`]), the shutdown signal ([`shutdown`]), and
//! logs with optional OTLP span export ([`telemetry`]).

pub mod http;
pub mod leader;
pub mod metrics;
pub mod shutdown;
pub mod telemetry;

pub use self::{
    http::HttpState,
    leader::{Leadership, LeaseConfig, acquire},
    metrics::{Metrics, ReconcileTimer},
};
