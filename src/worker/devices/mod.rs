//! The device processor: device telemetry read from an Event Hub through its Kafka endpoint, validated
//! and enriched ([`telemetry`]), upserted into Cosmos DB ([`processor`]) and committed after the write
//! ([`stream`]), in batches bounded by count and bytes ([`batch`]), with what cannot be processed sent
//! to a dead-letter Storage Queue. Its configuration is in [`config`]. The stream loop runs any processor
//! that settles events ([`settle`]): the device processor, or a queue processor such as `container`.

pub mod batch;
pub mod config;
pub mod processor;
pub mod settle;
pub mod stream;
pub mod telemetry;
