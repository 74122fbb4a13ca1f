//! The message a processor sees: the event body and its attributes, however it travelled. SNS delivers to
//! SQS either raw (body as published, attributes as SQS message attributes) or wrapped in its JSON
//! envelope (`{"Type": "Notification", "Message": ..., "MessageAttributes": ...}`); both arrive here as
//! the same [`Message`]. The W3C trace context travels in the `traceparent` attribute.

use std::collections::BTreeMap;

use serde::Deserialize;

/// The attribute carrying the W3C trace context (`00-<trace id>-<span id>-<flags>`).
pub const TRACEPARENT: &str = "traceparent";

/// One message to process.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Message {
    /// The queue's message id (stable across redeliveries).
    pub id: String,
    /// The event itself (unwrapped from an SNS envelope).
    pub body: String,
    /// String and Number attributes by name (Binary ones are left out: no processor reads them).
    pub attributes: BTreeMap<String, String>,
    /// The data type of each attribute that is not a plain `String` (`Number`, `String.Array`), as
    /// published: what a filter policy's numeric conditions need.
    pub types: BTreeMap<String, String>,
    /// How many times the queue has handed this message out, this time included (1 the first time).
    pub receive_count: u32,
    /// The message group, on a FIFO queue: the runtime hands a group's messages over one after another,
    /// in the queue's order.
    pub group_id: Option<String>,
    /// When the source says the message was sent (RFC 3339), if it says: `ce-time` of its CloudEvent.
    pub sent_at: Option<String>,
}

impl Message {
    /// A message as the queue delivered it: `body` is unwrapped when it is an SNS envelope, whose
    /// attributes then join `attributes` (the envelope's win: they are what was published).
    pub fn delivered(
        id: String,
        body: String,
        mut attributes: BTreeMap<String, String>,
        receive_count: u32,
    ) -> Self {
        let mut types = BTreeMap::new();
        let body = match serde_json::from_str::<Envelope>(&body) {
            Ok(envelope) if envelope.kind == "Notification" => {
                for (name, value) in envelope.message_attributes {
                    if value.kind != "Binary" {
                        if value.kind != "String" {
                            types.insert(name.clone(), value.kind);
                        }
                        attributes.insert(name, value.value);
                    }
                }
                envelope.message
            }
            _ => body,
        };
        Self {
            id,
            body,
            attributes,
            types,
            receive_count,
            group_id: None,
            sent_at: None,
        }
    }

    /// Records the data types of `raw`, the attributes the queue delivered with the message (an SNS
    /// envelope's own types, read by [`Message::delivered`], win).
    #[must_use]
    pub fn with_types(mut self, raw: &BTreeMap<String, crate::cloud::traits::MessageAttribute>) -> Self {
        for (name, attribute) in raw {
            if attribute.data_type != "String" && self.attributes.contains_key(name) {
                self.types
                    .entry(name.clone())
                    .or_insert_with(|| attribute.data_type.clone());
            }
        }
        self
    }

    /// An attribute's value.
    pub fn attribute(&self, name: &str) -> Option<&str> {
        self.attributes.get(name).map(String::as_str)
    }

    /// The trace id of the W3C trace context, when the message carries a valid one.
    pub fn trace_id(&self) -> Option<&str> {
        self.attribute(TRACEPARENT).and_then(trace_id)
    }
}

/// The SNS JSON envelope, as far as a processor needs it.
#[derive(Deserialize)]
struct Envelope {
    #[serde(rename = "Type")]
    kind: String,
    #[serde(rename = "Message")]
    message: String,
    #[serde(rename = "MessageAttributes", default)]
    message_attributes: BTreeMap<String, EnvelopeAttribute>,
}

#[derive(Deserialize)]
struct EnvelopeAttribute {
    #[serde(rename = "Type")]
    kind: String,
    #[serde(rename = "Value")]
    value: String,
}

/// The trace id of a `traceparent` value (version 00: `00-` 32 hex `-` 16 hex `-` 2 hex), or `None` for
/// anything else, including the all-zero ids the specification declares invalid.
pub fn trace_id(traceparent: &str) -> Option<&str> {
    let mut parts = traceparent.split('-');
    let (version, trace, span, flags) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    let hex =
        |s: &str, len: usize| s.len() == len && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    let valid = parts.next().is_none()
        && version == "00"
        && hex(trace, 32)
        && hex(span, 16)
        && hex(flags, 2)
        && trace.bytes().any(|b| b != b'0')
        && span.bytes().any(|b| b != b'0');
    valid.then_some(trace)
}

/// A new `traceparent` in the trace `trace_id` (or a new trace), for the next hop: a fresh span id, sampled.
pub fn child_traceparent(trace_id: Option<&str>) -> String {
    let trace = trace_id.map_or_else(|| random_hex(16), str::to_owned);
    format!("00-{trace}-{}-01", random_hex(8))
}

/// A random id of `bytes` bytes, as lower-case hex.
pub fn random_id(bytes: usize) -> String {
    random_hex(bytes)
}

/// `bytes` random bytes as lower-case hex (never all zero).
fn random_hex(bytes: usize) -> String {
    use std::{
        collections::hash_map::RandomState,
        hash::{BuildHasher, Hasher},
    };
    let mut out = String::with_capacity(bytes * 2);
    while out.len() < bytes * 2 {
        // RandomState is seeded from the OS once per process and varies per instance: enough for ids
        // that must be unique, not secret.
        let mut hasher = RandomState::new().build_hasher();
        hasher.write_usize(out.len());
        hasher.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos()),
        );
        out.push_str(&format!("{:016x}", hasher.finish() | 1));
    }
    out.truncate(bytes * 2);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_sns_envelope_is_unwrapped_with_its_attributes() {
        let envelope = serde_json::json!({
            "Type": "Notification",
            "MessageId": "m",
            "TopicArn": "arn:aws:sns:us-east-1:1:orders",
            "Message": "{\"orderId\":\"o-1\"}",
            "MessageAttributes": {
                "event": {"Type": "String", "Value": "OrderPlaced"},
                "total": {"Type": "Number", "Value": "42"},
                "blob": {"Type": "Binary", "Value": "AAE="}
            }
        });
        let message = Message::delivered("id".into(), envelope.to_string(), BTreeMap::new(), 1);
        assert_eq!(message.body, "{\"orderId\":\"o-1\"}");
        assert_eq!(message.attribute("event"), Some("OrderPlaced"));
        assert_eq!(message.attribute("total"), Some("42"));
        assert_eq!(message.attribute("blob"), None);
    }

    #[test]
    fn a_raw_body_stays_as_it_is() {
        let attributes = BTreeMap::from([("event".to_owned(), "OrderPlaced".to_owned())]);
        for body in [
            "{\"orderId\":\"o-1\"}",
            "not json",
            "{\"Type\":\"Other\",\"Message\":\"x\"}",
        ] {
            let message = Message::delivered("id".into(), body.into(), attributes.clone(), 2);
            assert_eq!(message.body, body);
            assert_eq!(message.attribute("event"), Some("OrderPlaced"));
            assert_eq!(message.receive_count, 2);
        }
    }

    #[test]
    fn traceparent_is_parsed_strictly() {
        let valid = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        assert_eq!(trace_id(valid), Some("4bf92f3577b34da6a3ce929d0e0e4736"));
        for invalid in [
            "",
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
        ] {
            assert_eq!(trace_id(invalid), None, "{invalid}");
        }
    }

    #[test]
    fn a_child_traceparent_keeps_the_trace_and_is_valid() {
        let parent = "4bf92f3577b34da6a3ce929d0e0e4736";
        let child = child_traceparent(Some(parent));
        assert_eq!(trace_id(&child), Some(parent), "{child}");
        let fresh = child_traceparent(None);
        assert!(trace_id(&fresh).is_some(), "{fresh}");
        assert_ne!(trace_id(&fresh), trace_id(&child_traceparent(None)));
    }
}
