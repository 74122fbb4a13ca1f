//! The device processor: device telemetry read from an Event Hub through its Kafka endpoint, validated
//! and enriched ([`telemetry`]), upserted into Cosmos DB and committed after the write ([`stream`]), with
//! what cannot be processed sent to a dead-letter Storage Queue. Its configuration is in [`config`].

pub mod config;
pub mod stream;
pub mod telemetry;
