//! A message as a CloudEvent in HTTP binary mode (CloudEvents 1.0, HTTP protocol binding), and the
//! container's answer as an outcome: pure functions, so every rule of the contract is a unit test.
//!
//! - `ce-id` the message id, `ce-source` the configured source, `ce-type` the value of the type
//!   attribute (else [`DEFAULT_TYPE`]), `ce-time` when the source says when the message was sent.
//! - `content-type` from the message's `content-type` attribute, else `application/json` when the body
//!   parses as JSON, else `application/octet-stream`.
//! - Every other attribute is an extension `ce-<name>`, its name lowercased and reduced to `[a-z0-9]`
//!   (the specification's rule for extension names). Two attributes that reduce to one name: the first in
//!   byte order of the original names is sent, the others are not (and a name that reduces to nothing or
//!   to a context attribute's name is not sent either).
//! - `traceparent` and `tracestate` travel as the W3C headers of their names.
//! - Header values are percent-encoded where the binding says so (space, `"`, `%`, and anything outside
//!   printable ASCII).

use std::collections::BTreeMap;

use crate::worker::message::{Message, TRACEPARENT};

/// `ce-type` of a message without the type attribute.
pub const DEFAULT_TYPE: &str = "dev.tributary.message";
/// The message attribute naming the body's media type (as in the CloudEvents Kafka binding).
pub const CONTENT_TYPE: &str = "content-type";
/// The W3C trace state, carried beside `traceparent`.
pub const TRACESTATE: &str = "tracestate";
/// How much of a response body a dead-letter or retry reason quotes.
pub const REASON_BODY_BYTES: usize = 256;

/// The CloudEvents context attribute names: an extension may not take one of them.
const CONTEXT_ATTRIBUTES: [&str; 9] = [
    "specversion",
    "id",
    "source",
    "type",
    "datacontenttype",
    "dataschema",
    "subject",
    "time",
    "data",
];

/// What the CloudEvent says besides the message itself.
#[derive(Clone, Copy, Debug)]
pub struct Mapping<'a> {
    /// `ce-source`.
    pub source: &'a str,
    /// The attribute whose value is `ce-type`.
    pub type_attribute: &'a str,
}

/// The request headers of `message` as a binary-mode CloudEvent, in a stable order (the body is the
/// message's body as it is).
pub fn headers(message: &Message, mapping: Mapping<'_>) -> Vec<(String, String)> {
    let event_type = message.attribute(mapping.type_attribute).unwrap_or(DEFAULT_TYPE);
    let mut headers = vec![
        ("ce-specversion".to_owned(), "1.0".to_owned()),
        ("ce-id".to_owned(), encode(&message.id)),
        ("ce-source".to_owned(), encode(mapping.source)),
        ("ce-type".to_owned(), encode(event_type)),
    ];
    if let Some(time) = &message.sent_at {
        headers.push(("ce-time".to_owned(), encode(time)));
    }
    headers.push(("content-type".to_owned(), content_type(message)));
    for name in [TRACEPARENT, TRACESTATE] {
        if let Some(value) = message.attribute(name) {
            headers.push((name.to_owned(), encode(value)));
        }
    }
    for (extension, value) in extensions(&message.attributes, mapping.type_attribute) {
        headers.push((format!("ce-{extension}"), encode(value)));
    }
    headers
}

/// The body's media type: the `content-type` attribute, else JSON when it parses as JSON, else bytes.
pub fn content_type(message: &Message) -> String {
    match message.attribute(CONTENT_TYPE) {
        Some(value) if !value.is_empty() => encode(value),
        _ if serde_json::from_str::<serde::de::IgnoredAny>(&message.body).is_ok() => {
            "application/json".to_owned()
        }
        _ => "application/octet-stream".to_owned(),
    }
}

/// The extensions of `attributes` by reduced name: every attribute but the type attribute, the content
/// type and the trace context; on a collision the first original name in byte order wins.
pub fn extensions<'a>(
    attributes: &'a BTreeMap<String, String>,
    type_attribute: &str,
) -> BTreeMap<String, &'a str> {
    let mut out = BTreeMap::new();
    for (name, value) in attributes {
        if [type_attribute, CONTENT_TYPE, TRACEPARENT, TRACESTATE].contains(&name.as_str()) {
            continue;
        }
        let reduced = extension_name(name);
        if reduced.is_empty() || CONTEXT_ATTRIBUTES.contains(&reduced.as_str()) {
            continue;
        }
        out.entry(reduced).or_insert(value.as_str());
    }
    out
}

/// An attribute name as a CloudEvents extension name: lowercased, everything but `[a-z0-9]` left out.
pub fn extension_name(name: &str) -> String {
    name.chars()
        .flat_map(char::to_lowercase)
        .filter(char::is_ascii_alphanumeric)
        .collect()
}

/// A header value as the binding wants it: space, `"`, `%` and anything outside printable ASCII
/// percent-encoded (as UTF-8 bytes).
pub fn encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        if (0x21..=0x7e).contains(&byte) && byte != b'"' && byte != b'%' {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// A percent-encoded header value decoded (a malformed escape stays as it is; invalid UTF-8 is replaced).
pub fn decode(value: &str) -> String {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// What a response status means for the message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// 2xx: done.
    Done,
    /// 4xx other than 408 and 429: it can never succeed; dead-lettered with this reason.
    Reject(String),
    /// 408, 429, 5xx (and anything else): it may pass; retried, with this reason.
    Retry(String),
}

/// The verdict on a response of `status` whose body starts with `body`.
pub fn verdict(status: u16, body: &[u8]) -> Verdict {
    match status {
        200..=299 => Verdict::Done,
        408 | 429 => Verdict::Retry(reason(status, body)),
        400..=499 => Verdict::Reject(reason(status, body)),
        _ => Verdict::Retry(reason(status, body)),
    }
}

/// `HTTP <status>: <the first 256 bytes of the body>` (`HTTP <status>` for an empty body; cut at a character boundary, invalid UTF-8
/// replaced).
pub fn reason(status: u16, body: &[u8]) -> String {
    let start = &body[..body.len().min(REASON_BODY_BYTES)];
    let text = match std::str::from_utf8(start) {
        Ok(text) => text.to_owned(),
        // Cut inside a character: keep the whole ones before it.
        Err(e) if e.error_len().is_none() => String::from_utf8_lossy(&start[..e.valid_up_to()]).into_owned(),
        Err(_) => String::from_utf8_lossy(start).into_owned(),
    };
    match text.trim_end() {
        "" => format!("HTTP {status}"),
        text => format!("HTTP {status}: {text}"),
    }
}

#[cfg(test)]
#[path = "event_tests.rs"]
mod tests;
