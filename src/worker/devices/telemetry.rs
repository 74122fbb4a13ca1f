//! Device telemetry: what a valid event is, and the document the device processor writes for it. Pure
//! functions, no network: the stream loop hands each record here and gets a document or the reason it
//! is dead-lettered, naming the field and the rule.
//!
//! An event is a JSON object:
//! `{"eventId": "e-1", "deviceId": "thermo-7", "timestamp": "2026-12-03T06:00:00Z", "readings": {"celsius": 21.5}}`
//! with an optional `type` string. Anything else in it is kept as it came under `attributes`, so nothing
//! a device sends is lost.

use serde_json::{Map, Value};
use time::{OffsetDateTime, format_description::well_known::Rfc3339};

/// The largest event accepted: Event Hubs' own limit on one event (Standard tier).
pub const MAX_EVENT_BYTES: usize = 1024 * 1024;
/// Most readings in one event.
pub const MAX_READINGS: usize = 100;

/// Where a record was read: the position that makes a document traceable to its event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Position {
    /// Kafka topic (the Event Hub).
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// Offset in the partition.
    pub offset: i64,
    /// When the broker received it (milliseconds since the epoch), if the record says.
    pub enqueued_ms: Option<i64>,
}

/// A valid event, enriched, ready to upsert.
#[derive(Clone, Debug, PartialEq)]
pub struct Document {
    /// The document id: the event id, so a redelivered event overwrites its own document.
    pub id: String,
    /// The partition key value, read from the document at the container's partition key path.
    pub partition_key: String,
    /// The whole document.
    pub body: Value,
}

/// Validates `payload` and builds its document. `partition_key_path` is the container's (`/deviceId`);
/// `processed_by` names the Consumer. The document depends only on the event and its position, so
/// writing it twice has exactly the effect of writing it once.
pub fn document(
    payload: Option<&[u8]>,
    position: &Position,
    partition_key_path: &str,
    processed_by: &str,
) -> Result<Document, String> {
    let payload = payload.ok_or("the event has no body")?;
    if payload.len() > MAX_EVENT_BYTES {
        return Err(format!(
            "the event is {} bytes, more than the {MAX_EVENT_BYTES} allowed",
            payload.len()
        ));
    }
    let event: Value =
        serde_json::from_slice(payload).map_err(|e| format!("the event is not valid JSON: {e}"))?;
    let Value::Object(mut event) = event else {
        return Err("the event must be a JSON object".to_owned());
    };
    let id = identifier(&mut event, "eventId", 255)?;
    let device_id = identifier(&mut event, "deviceId", 128)?;
    let timestamp = match event.remove("timestamp") {
        Some(Value::String(text)) => OffsetDateTime::parse(&text, &Rfc3339)
            .map_err(|e| format!("timestamp: must be an RFC 3339 date-time ({e}), got {text:?}"))?,
        Some(other) => return Err(format!("timestamp: must be an RFC 3339 string, got {other}")),
        None => return Err("timestamp: required".to_owned()),
    };
    let readings = readings(event.remove("readings"))?;
    let kind = match event.remove("type") {
        None | Some(Value::Null) => None,
        Some(Value::String(kind)) if (1..=64).contains(&kind.len()) => Some(kind),
        Some(other) => {
            return Err(format!(
                "type: must be a string of 1 to 64 characters, got {other}"
            ));
        }
    };
    let utc = timestamp
        .checked_to_offset(time::UtcOffset::UTC)
        .ok_or_else(|| format!("timestamp: out of range in UTC, got {timestamp}"))?;
    let mut body = Map::new();
    body.insert("id".into(), Value::String(id.clone()));
    body.insert("deviceId".into(), Value::String(device_id));
    body.insert("timestamp".into(), Value::String(rfc3339(utc)?));
    body.insert("day".into(), Value::String(rfc3339(utc)?[..10].to_owned()));
    if let Some(kind) = kind {
        body.insert("type".into(), Value::String(kind));
    }
    body.insert("readings".into(), Value::Object(readings));
    if !event.is_empty() {
        body.insert("attributes".into(), Value::Object(event));
    }
    let mut stream = Map::new();
    stream.insert("topic".into(), Value::String(position.topic.clone()));
    stream.insert("partition".into(), position.partition.into());
    stream.insert("offset".into(), position.offset.into());
    if let Some(ms) = position.enqueued_ms {
        let at = OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
            .map_err(|e| format!("the record's timestamp {ms} is out of range: {e}"))?;
        stream.insert("enqueuedAt".into(), Value::String(rfc3339(at)?));
    }
    body.insert("stream".into(), Value::Object(stream));
    body.insert("processedBy".into(), Value::String(processed_by.to_owned()));
    let body = Value::Object(body);
    let partition_key = partition_key(&body, partition_key_path)?;
    Ok(Document {
        id,
        partition_key,
        body,
    })
}

/// A required string field usable as a Cosmos DB id or key: 1 to `max` characters, none of `/ \ ? #`
/// (Cosmos DB refuses them in ids) and no control characters.
fn identifier(event: &mut Map<String, Value>, field: &str, max: usize) -> Result<String, String> {
    let value = match event.remove(field) {
        Some(Value::String(value)) => value,
        Some(other) => return Err(format!("{field}: must be a string, got {other}")),
        None => return Err(format!("{field}: required")),
    };
    if value.is_empty() || value.chars().count() > max {
        return Err(format!("{field}: must be 1 to {max} characters"));
    }
    if let Some(c) = value
        .chars()
        .find(|c| matches!(c, '/' | '\\' | '?' | '#') || c.is_control())
    {
        return Err(format!("{field}: must not contain {c:?}"));
    }
    Ok(value)
}

/// `readings`: an object of 1 to [`MAX_READINGS`] numbers, named by 1 to 64 characters.
fn readings(value: Option<Value>) -> Result<Map<String, Value>, String> {
    let readings = match value {
        Some(Value::Object(readings)) => readings,
        Some(other) => return Err(format!("readings: must be an object of numbers, got {other}")),
        None => return Err("readings: required".to_owned()),
    };
    if readings.is_empty() || readings.len() > MAX_READINGS {
        return Err(format!("readings: must hold 1 to {MAX_READINGS} readings"));
    }
    for (name, value) in &readings {
        if name.is_empty() || name.chars().count() > 64 {
            return Err(format!("readings: the name {name:?} must be 1 to 64 characters"));
        }
        if !value.is_number() {
            return Err(format!("readings.{name}: must be a number, got {value}"));
        }
    }
    Ok(readings)
}

/// The value at a partition key path (`/deviceId`, `/attributes/site`): a string (Cosmos DB compares
/// the key by type, so a number in the document would not match a key sent as text).
fn partition_key(body: &Value, path: &str) -> Result<String, String> {
    match body.pointer(path) {
        Some(Value::String(key)) => Ok(key.clone()),
        Some(other) => Err(format!("the partition key {path} must be a string, got {other}")),
        None => Err(format!("the partition key {path} is missing from the event")),
    }
}

fn rfc3339(at: OffsetDateTime) -> Result<String, String> {
    at.format(&Rfc3339)
        .map_err(|e| format!("cannot format {at} as RFC 3339: {e}"))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn position() -> Position {
        Position {
            topic: "telemetry".into(),
            partition: 3,
            offset: 42,
            enqueued_ms: Some(1_796_277_600_000),
        }
    }

    fn check(event: &str) -> Result<Document, String> {
        document(Some(event.as_bytes()), &position(), "/deviceId", "plant/devices")
    }

    #[test]
    fn a_valid_event_becomes_an_enriched_document_keyed_by_its_id() {
        let doc = check(r#"{"eventId":"e-1","deviceId":"thermo-7","timestamp":"2026-12-03T07:00:00+01:00","readings":{"celsius":21.5},"firmware":"1.2"}"#).unwrap();
        assert_eq!(doc.id, "e-1");
        assert_eq!(doc.partition_key, "thermo-7");
        assert_eq!(doc.body["timestamp"], "2026-12-03T06:00:00Z", "normalised to UTC");
        assert_eq!(doc.body["day"], "2026-12-03");
        assert_eq!(doc.body["readings"]["celsius"], 21.5);
        assert_eq!(
            doc.body["attributes"]["firmware"], "1.2",
            "unknown fields are kept"
        );
        assert_eq!(doc.body["stream"]["partition"], 3);
        assert_eq!(doc.body["stream"]["offset"], 42);
        assert_eq!(doc.body["stream"]["enqueuedAt"], "2026-12-03T06:00:00Z");
        assert_eq!(doc.body["processedBy"], "plant/devices");
    }

    #[test]
    fn the_same_event_at_the_same_position_is_the_same_document() {
        let event =
            r#"{"eventId":"e-1","deviceId":"d","timestamp":"2026-12-03T06:00:00Z","readings":{"v":1}}"#;
        assert_eq!(check(event).unwrap(), check(event).unwrap());
    }

    #[test]
    fn each_rule_names_its_field() {
        let cases = [
            ("not json", "not valid JSON"),
            ("[1]", "must be a JSON object"),
            (
                r#"{"deviceId":"d","timestamp":"2026-12-03T06:00:00Z","readings":{"v":1}}"#,
                "eventId: required",
            ),
            (
                r#"{"eventId":7,"deviceId":"d","timestamp":"2026-12-03T06:00:00Z","readings":{"v":1}}"#,
                "eventId: must be a string",
            ),
            (
                r#"{"eventId":"a/b","deviceId":"d","timestamp":"2026-12-03T06:00:00Z","readings":{"v":1}}"#,
                "eventId: must not contain '/'",
            ),
            (
                r#"{"eventId":"e","deviceId":"","timestamp":"2026-12-03T06:00:00Z","readings":{"v":1}}"#,
                "deviceId: must be 1 to 128",
            ),
            (
                r#"{"eventId":"e","deviceId":"d","timestamp":"yesterday","readings":{"v":1}}"#,
                "timestamp: must be an RFC 3339",
            ),
            (
                r#"{"eventId":"e","deviceId":"d","readings":{"v":1}}"#,
                "timestamp: required",
            ),
            (
                r#"{"eventId":"e","deviceId":"d","timestamp":"2026-12-03T06:00:00Z"}"#,
                "readings: required",
            ),
            (
                r#"{"eventId":"e","deviceId":"d","timestamp":"2026-12-03T06:00:00Z","readings":{}}"#,
                "readings: must hold 1 to 100",
            ),
            (
                r#"{"eventId":"e","deviceId":"d","timestamp":"2026-12-03T06:00:00Z","readings":{"v":"hot"}}"#,
                "readings.v: must be a number",
            ),
            (
                r#"{"eventId":"e","deviceId":"d","timestamp":"2026-12-03T06:00:00Z","readings":{"v":1},"type":5}"#,
                "type: must be a string",
            ),
            (
                r#"{"eventId":"e","deviceId":"d","timestamp":"9999-12-31T23:59:59-01:00","readings":{"v":1}}"#,
                "timestamp: out of range",
            ),
        ];
        for (event, expected) in cases {
            let reason = check(event).unwrap_err();
            assert!(reason.contains(expected), "{event}: {reason}");
        }
        assert_eq!(
            document(None, &position(), "/deviceId", "x").unwrap_err(),
            "the event has no body"
        );
    }

    #[test]
    fn an_oversized_event_is_refused_before_it_is_parsed() {
        let big = vec![b' '; MAX_EVENT_BYTES + 1];
        assert!(
            document(Some(&big), &position(), "/deviceId", "x")
                .unwrap_err()
                .contains("bytes")
        );
    }

    #[test]
    fn the_partition_key_path_is_read_from_the_document() {
        let event = r#"{"eventId":"e","deviceId":"d","timestamp":"2026-12-03T06:00:00Z","readings":{"v":1},"site":"north"}"#;
        let doc = document(Some(event.as_bytes()), &position(), "/attributes/site", "x").unwrap();
        assert_eq!(doc.partition_key, "north");
        let number = document(Some(event.as_bytes()), &position(), "/stream/partition", "x").unwrap_err();
        assert_eq!(
            number,
            "the partition key /stream/partition must be a string, got 3"
        );
        let missing = document(Some(event.as_bytes()), &position(), "/plant", "x").unwrap_err();
        assert_eq!(missing, "the partition key /plant is missing from the event");
    }
}
