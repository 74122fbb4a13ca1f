#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use rdkafka::Timestamp;
use serde_json::Value;
use tokio::sync::Notify;

use super::*;
use crate::{
    cloud::{
        Documents,
        fake::{FakeDocuments, FakeQueue},
    },
    worker::config::Retry,
    worker::devices::processor::DeviceProcessor,
};

/// Cosmos DB as the race needs it: the write of the older copy (`celsius` 1) is slow, so written
/// concurrently it lands after the newer one's (it waits for that write, a bounded while); written in
/// order it lands first.
struct SlowOlder {
    inner: FakeDocuments,
    newer_written: Notify,
}

impl Documents for Arc<SlowOlder> {
    async fn upsert(&self, partition_key: &str, id: &str, body: &Value) -> crate::cloud::Result<()> {
        let older = body["readings"]["celsius"] == 1.0;
        if older {
            // Long enough for a concurrent newer write to finish first; it ends this wait at once.
            let _ = tokio::time::timeout(Duration::from_millis(300), self.newer_written.notified()).await;
        }
        self.inner.upsert(partition_key, id, body).await?;
        if !older {
            self.newer_written.notify_one();
        }
        Ok(())
    }

    async fn read(&self, partition_key: &str, id: &str) -> crate::cloud::Result<Option<Value>> {
        self.inner.read(partition_key, id).await
    }
}

fn event(offset: i64, id: &str, celsius: f64) -> OwnedMessage {
    let body = format!(
        r#"{{"eventId":"{id}","deviceId":"thermo-1","timestamp":"2026-12-03T06:00:00Z","readings":{{"celsius":{celsius}}}}}"#
    );
    OwnedMessage::new(
        Some(body.into_bytes()),
        Some(b"thermo-1".to_vec()),
        "telemetry".into(),
        Timestamp::CreateTime(1),
        0,
        offset,
        None,
    )
}

#[tokio::test]
async fn the_newest_copy_of_an_event_in_a_batch_wins_whatever_the_write_latency() {
    let source: KafkaSource =
        serde_json::from_value(serde_json::json!({"bootstrapServers": "127.0.0.1:9", "topic": "telemetry"}))
            .unwrap();
    assert!(source.writers > 1, "the writes of a batch are concurrent");
    let reader = Reader::new(&source);
    let documents = Arc::new(SlowOlder {
        inner: FakeDocuments::new(),
        newer_written: Notify::new(),
    });
    let processor = DeviceProcessor::<_, FakeQueue> {
        consumer: "plant/devices".into(),
        documents: documents.clone(),
        partition_key_path: "/deviceId".into(),
        dead_letter: None,
        retry: Retry::default(),
        metrics: WorkerMetrics::new(),
    };
    let limits = Limits {
        events: 10,
        bytes: 1 << 20,
    };
    let mut batch = Batch::default();
    // The older copy at offset 5, another event between, the newer copy at offset 7.
    for record in [event(5, "e-1", 1.0), event(6, "e-2", 3.0), event(7, "e-1", 2.0)] {
        batch.offer(record, limits).unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    let outcomes = reader
        .settle(&processor, &batch, "kafka://test/telemetry", deadline)
        .await;
    assert_eq!(
        outcomes,
        [Settled::Written, Settled::Written, Settled::Written],
        "in the batch's order"
    );
    let written = documents.inner.get("thermo-1", "e-1").unwrap();
    assert_eq!(
        written["readings"]["celsius"], 2.0,
        "the copy at the higher offset is the one kept: {written}"
    );
    assert_eq!(
        documents.inner.get("thermo-1", "e-2").unwrap()["readings"]["celsius"],
        3.0
    );
}
