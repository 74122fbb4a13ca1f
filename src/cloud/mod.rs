//! Cloud provider plumbing. Capability traits land here with the provider issues; for now this holds the
//! pieces every Azure data-plane client needs.

pub mod azure;
