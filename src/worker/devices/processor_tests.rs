#![allow(clippy::unwrap_used)]

use rdkafka::{Timestamp, message::OwnedHeaders};

use super::*;

fn record(payload: Vec<u8>) -> OwnedMessage {
    let headers = OwnedHeaders::new().insert(rdkafka::message::Header {
        key: "source",
        value: Some("gateway-1"),
    });
    OwnedMessage::new(
        Some(payload),
        Some(b"thermo-1".to_vec()),
        "telemetry".into(),
        Timestamp::CreateTime(1),
        2,
        7,
        Some(headers),
    )
}

#[test]
fn a_dead_letter_keeps_the_body_key_headers_and_position() {
    let d = delivery(&record(b"{not json".to_vec()), "telemetry/2/7".into());
    assert_eq!(d.raw_body, "{not json");
    let attribute = |k: &str| d.raw_attributes[k].string_value.clone().unwrap();
    assert_eq!(attribute("kafka-key"), "thermo-1");
    assert_eq!(attribute("source"), "gateway-1");
    assert_eq!(attribute("kafka-position"), "telemetry/2/7");
    let binary = delivery(&record(vec![0xff, 0xfe]), "telemetry/2/7".into());
    assert_eq!(binary.raw_body, "//4=");
    assert_eq!(
        binary.raw_attributes["tributary-body-encoding"]
            .string_value
            .as_deref(),
        Some("base64")
    );
}

#[test]
fn a_dead_letter_of_a_large_event_fits_a_storage_queue_message() {
    let d = delivery(&record(vec![b'x'; 1024 * 1024]), "telemetry/2/7".into());
    assert_eq!(d.raw_body.len(), MAX_DEAD_LETTER_BODY);
    assert_eq!(
        d.raw_attributes["tributary-body-truncated-from"]
            .string_value
            .as_deref(),
        Some("1048576")
    );
    let text = crate::cloud::azure::envelope::encode(&d.raw_body, &d.raw_attributes);
    assert!(text.len() < 64 * 1024, "{} bytes", text.len());
}

mod settling {
    use std::time::Duration;

    use tokio::time::Instant;

    use super::record;
    use crate::{
        cloud::{
            fake::{FakeDocuments, FakeQueue},
            queue::DEAD_LETTER_REASON,
        },
        worker::{
            config::Retry,
            devices::processor::{DeviceProcessor, Earlier, Settled},
            metrics::{DeadLetterReason, WorkerMetrics},
        },
    };

    const EVENT: &str = r#"{"eventId":"e-1","deviceId":"thermo-1","timestamp":"2026-12-03T06:00:00Z","readings":{"celsius":21.5}}"#;

    /// A processor over fakes; `backoff` 0 retries at once.
    fn processor(
        attempts: u32,
        backoff: u32,
        dead_letter: Option<FakeQueue>,
    ) -> DeviceProcessor<FakeDocuments, FakeQueue> {
        DeviceProcessor {
            consumer: "plant/devices".into(),
            documents: FakeDocuments::new(),
            partition_key_path: "/deviceId".into(),
            dead_letter,
            retry: Retry {
                max_attempts: attempts,
                initial_backoff_seconds: backoff,
                max_backoff_seconds: backoff,
            },
            metrics: WorkerMetrics::new(),
        }
    }

    fn queue() -> FakeQueue {
        FakeQueue::new("http://127.0.0.1/devstoreaccount1/devices-dlq").with_attribute_limit(None)
    }

    fn far() -> Instant {
        Instant::now() + Duration::from_secs(60)
    }

    async fn settle(
        p: &DeviceProcessor<FakeDocuments, FakeQueue>,
        body: &str,
        earlier: &Earlier,
        deadline: Instant,
    ) -> Settled {
        p.settle(
            &record(body.as_bytes().to_vec()),
            "kafka://broker/telemetry",
            earlier,
            deadline,
        )
        .await
    }

    #[tokio::test]
    async fn a_valid_event_is_written_once_and_a_redelivery_lands_on_the_same_document() {
        let p = processor(3, 0, Some(queue()));
        assert_eq!(
            settle(&p, EVENT, &Earlier::default(), far()).await,
            Settled::Written
        );
        assert_eq!(
            settle(&p, EVENT, &Earlier::default(), far()).await,
            Settled::Written
        );
        assert_eq!(p.documents.len(), 1, "keyed by event id");
        let document = p.documents.get("thermo-1", "e-1").unwrap();
        assert_eq!(document["readings"]["celsius"], 21.5);
        assert_eq!(document["stream"]["offset"], 7);
        assert_eq!(p.metrics.processed_total(), 2);
    }

    #[tokio::test]
    async fn an_invalid_event_is_dead_lettered_with_its_reason_and_never_written() {
        let dlq = queue();
        let p = processor(3, 0, Some(dlq.clone()));
        let settled = settle(&p, "{not json", &Earlier::default(), far()).await;
        assert_eq!(settled, Settled::DeadLettered(DeadLetterReason::Rejected));
        assert_eq!(p.documents.writes(), 0);
        let held = dlq.held();
        assert_eq!(held.len(), 1);
        assert_eq!(held[0].body, "{not json");
        let reason = held[0].attributes[DEAD_LETTER_REASON]
            .string_value
            .clone()
            .unwrap();
        assert!(reason.contains("not valid JSON"), "{reason}");
    }

    #[tokio::test]
    async fn a_document_the_store_refuses_is_dead_lettered_at_once() {
        let dlq = queue();
        let p = processor(5, 0, Some(dlq.clone()));
        p.documents.refuse("e-1");
        let settled = settle(&p, EVENT, &Earlier::default(), far()).await;
        assert_eq!(settled, Settled::DeadLettered(DeadLetterReason::Rejected));
        assert_eq!(p.documents.writes(), 1, "a refusal is not retried");
        assert_eq!(dlq.held().len(), 1);
    }

    #[tokio::test]
    async fn failing_writes_are_retried_then_dead_lettered_when_out_of_attempts() {
        let p = processor(3, 0, Some(queue()));
        p.documents.fail_next(2);
        assert_eq!(
            settle(&p, EVENT, &Earlier::default(), far()).await,
            Settled::Written
        );
        assert_eq!(p.documents.writes(), 3);

        let dlq = queue();
        let p = processor(3, 0, Some(dlq.clone()));
        p.documents.set_unavailable(true);
        let settled = settle(&p, EVENT, &Earlier::default(), far()).await;
        assert_eq!(settled, Settled::DeadLettered(DeadLetterReason::Exhausted));
        assert_eq!(p.documents.writes(), 3);
        let reason = dlq.held()[0].attributes[DEAD_LETTER_REASON]
            .string_value
            .clone()
            .unwrap();
        assert!(reason.contains("failed 3 times"), "{reason}");
    }

    #[tokio::test]
    async fn retries_stop_at_the_deadline_and_the_next_pass_counts_the_attempts_spent() {
        let dlq = queue();
        // A 1 s retry delay cannot fit a 200 ms deadline: the event is left unsettled at once.
        let p = processor(2, 1, Some(dlq.clone()));
        p.documents.set_unavailable(true);
        let started = Instant::now();
        let deadline = started + Duration::from_millis(200);
        let Settled::Unsettled(earlier) = settle(&p, EVENT, &Earlier::default(), deadline).await else {
            panic!("expected unsettled");
        };
        assert!(
            started.elapsed() < Duration::from_millis(200),
            "{:?}",
            started.elapsed()
        );
        assert_eq!(earlier.attempts, 1);
        assert!(
            earlier.last_error.contains("unavailable"),
            "{}",
            earlier.last_error
        );
        assert!(
            dlq.held().is_empty(),
            "an outage does not dead-letter before the attempts are spent"
        );

        // The second pass spends the last attempt and dead-letters the event.
        let settled = settle(&p, EVENT, &earlier, Instant::now() + Duration::from_millis(200)).await;
        assert_eq!(settled, Settled::DeadLettered(DeadLetterReason::Exhausted));
        assert_eq!(p.documents.writes(), 2);
        // A pass that finds the attempts spent (its dead letter failed last time) writes no more.
        let spent = Earlier {
            attempts: 2,
            last_error: "the service is unavailable".into(),
        };
        let settled = settle(&p, EVENT, &spent, far()).await;
        assert_eq!(settled, Settled::DeadLettered(DeadLetterReason::Exhausted));
        assert_eq!(p.documents.writes(), 2, "no write after the attempts are spent");
        assert_eq!(dlq.held().len(), 2);
    }

    #[tokio::test]
    async fn a_sink_that_does_not_answer_uses_none_of_the_attempts_across_passes() {
        let dlq = queue();
        let p = processor(2, 0, Some(dlq.clone()));
        p.documents.set_unreachable(true);
        let mut earlier = Earlier::default();
        for _ in 0..3 {
            let deadline = Instant::now() + Duration::from_millis(50);
            let Settled::Unsettled(next) = settle(&p, EVENT, &earlier, deadline).await else {
                panic!("an outage leaves the event unsettled");
            };
            earlier = next;
            assert_eq!(earlier.attempts, 0, "unanswered tries are not attempts");
        }
        assert!(
            p.documents.writes() > 2,
            "it kept trying: {}",
            p.documents.writes()
        );
        assert!(dlq.held().is_empty(), "an outage dead-letters nothing");
        p.documents.set_unreachable(false);
        assert_eq!(settle(&p, EVENT, &earlier, far()).await, Settled::Written);
    }

    #[tokio::test]
    async fn an_unsendable_dead_letter_stalls_the_partition_visibly_until_one_is_sent() {
        // A queue that takes no message at all: every dead letter is refused.
        let broken = queue().with_max_bytes(1);
        let p = processor(3, 1, Some(broken));
        let deadline = Instant::now() + Duration::from_millis(200);
        let settled = settle(&p, "{not json", &Earlier::default(), deadline).await;
        assert!(!settled.is_done(), "{settled:?}");
        let stalls = p.metrics.stalls();
        assert_eq!(stalls.dead_letter_failures_total(), 1);
        let reason = stalls.not_ready().unwrap();
        assert!(
            reason.starts_with("telemetry/2 is stalled: the dead letter of offset 7"),
            "{reason}"
        );
        let text = p.metrics.render("plant/devices", "device");
        assert!(
            text.contains(
                "tributary_worker_stalled_partitions{consumer=\"plant/devices\",processor=\"device\"} 1"
            ),
            "{text}"
        );

        let healed = DeviceProcessor {
            dead_letter: Some(queue()),
            ..p
        };
        let settled = settle(&healed, "{not json", &Earlier::default(), far()).await;
        assert_eq!(settled, Settled::DeadLettered(DeadLetterReason::Rejected));
        assert_eq!(healed.metrics.stalls().not_ready(), None);
    }

    #[tokio::test]
    async fn without_a_dead_letter_an_invalid_event_is_skipped() {
        let p = processor(3, 0, None);
        assert_eq!(
            settle(&p, "[]", &Earlier::default(), far()).await,
            Settled::Skipped
        );
        assert!(p.documents.is_empty());
    }
}
