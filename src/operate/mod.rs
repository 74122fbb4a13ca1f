//! Operational basics of the controller process, independent of any one reconciler: Prometheus metrics
//! ([`metrics`], with the per-object gauges of [`object_gauges`]), the `/metrics`, `/healthz` and
//! `/readyz` endpoints ([`http`]), leader election on a Lease so that one replica reconciles at a time
//! ([`leader`]) and the fence its cloud calls and API writes check ([`fence`]), the shutdown signal
//! ([`shutdown`]), and logs with optional OTLP span export ([`telemetry`]).

pub mod fence;
pub mod http;
pub mod leader;
pub mod metrics;
pub mod object_gauges;
pub mod shutdown;
pub mod telemetry;

pub use self::{
    fence::{Fence, FenceLayer, NotLeading},
    http::HttpState,
    leader::{Leadership, LeaseConfig, acquire},
    metrics::{Metrics, ReconcileTimer},
    object_gauges::ObjectGauges,
};
