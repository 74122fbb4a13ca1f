//! A container's reply: a 2xx response with a body, published to the Consumer's sink topic before the
//! message is acknowledged. A binary-mode CloudEvent reply keeps its type, extensions, media type and
//! trace context as message attributes; any other body is published as it is.

use std::future::Future;

use super::event::{CONTENT_TYPE, TRACESTATE, decode};
use crate::{cloud::aws::SnsPublisher, worker::message::TRACEPARENT};

/// The most message attributes SNS carries with one message.
pub const MAX_ATTRIBUTES: usize = 10;

/// Reply headers that describe the reply's own envelope and do not become attributes: the next hop gets
/// its own id, source, time and spec version from its queue.
const ENVELOPE: [&str; 4] = ["ce-specversion", "ce-id", "ce-source", "ce-time"];

/// A reply to publish.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Reply {
    /// The body, as the container sent it.
    pub body: String,
    /// `String` message attributes, by name.
    pub attributes: Vec<(String, String)>,
    /// On a FIFO topic: the message group (the message's own, else its id) and the deduplication id (the
    /// reply's `ce-id`, else derived from the message id, so a repeated delivery is not published twice
    /// within the topic's deduplication window).
    pub fifo: (String, String),
}

/// The reply in a response with `headers` (lowercase names) and `body`, to a message with `message_id`
/// (and FIFO `group`) whose trace context continues in `traceparent`: `None` for an empty body (SNS
/// carries no empty message), an error when SNS could not carry it.
pub fn reply<'a>(
    headers: impl Iterator<Item = (&'a str, &'a str)>,
    body: &[u8],
    type_attribute: &str,
    message: (&str, Option<&str>),
    traceparent: &str,
) -> Result<Option<Reply>, String> {
    if body.is_empty() {
        return Ok(None);
    }
    let body = std::str::from_utf8(body)
        .map_err(|_| "the reply's body is not UTF-8 text, which SNS cannot carry".to_owned())?
        .to_owned();
    let (message_id, group) = message;
    let mut attributes: Vec<(String, String)> = Vec::new();
    let mut reply_id = None;
    for (name, value) in headers {
        let name = name.to_ascii_lowercase();
        let attribute = match name.as_str() {
            "ce-id" => {
                reply_id = Some(decode(value));
                continue;
            }
            "ce-type" => type_attribute.to_owned(),
            _ if ENVELOPE.contains(&name.as_str()) => continue,
            CONTENT_TYPE | TRACEPARENT | TRACESTATE => name.clone(),
            _ => match name.strip_prefix("ce-") {
                Some(extension) if !extension.is_empty() => extension.to_owned(),
                _ => continue,
            },
        };
        if !attributes.iter().any(|(existing, _)| *existing == attribute) {
            attributes.push((attribute, decode(value)));
        }
    }
    if !attributes.iter().any(|(name, _)| name == TRACEPARENT) {
        attributes.push((TRACEPARENT.to_owned(), traceparent.to_owned()));
    }
    if attributes.len() > MAX_ATTRIBUTES {
        return Err(format!(
            "the reply has {} message attributes; SNS carries at most {MAX_ATTRIBUTES}",
            attributes.len()
        ));
    }
    let deduplication = reply_id.unwrap_or_else(|| format!("reply-{message_id}"));
    let group = group.unwrap_or(message_id).to_owned();
    Ok(Some(Reply {
        body,
        attributes,
        fifo: (group, deduplication),
    }))
}

/// Where replies go: the sink topic (SNS), or a fake in tests.
pub trait Replies: Send + Sync + 'static {
    /// Publishes `reply`.
    fn publish(&self, reply: Reply) -> impl Future<Output = crate::cloud::Result<()>> + Send;
}

impl Replies for SnsPublisher {
    async fn publish(&self, reply: Reply) -> crate::cloud::Result<()> {
        self.publish_strings(reply.body, reply.attributes, Some(reply.fifo))
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn a_cloudevent_reply_keeps_its_type_extensions_and_trace() {
        let headers = [
            ("ce-specversion", "1.0"),
            ("ce-id", "r-1"),
            ("ce-source", "/me"),
            ("ce-type", "com.example.shipped"),
            ("ce-region", "eu%20west"),
            ("Content-Type", "application/json"),
            ("tracestate", "k=v"),
            ("content-length", "2"),
        ];
        let reply = reply(headers.into_iter(), b"{}", "event", ("m-1", None), PARENT)
            .unwrap()
            .unwrap();
        assert_eq!(reply.body, "{}");
        assert_eq!(
            reply.attributes,
            [
                ("event".to_owned(), "com.example.shipped".to_owned()),
                ("region".to_owned(), "eu west".to_owned()),
                ("content-type".to_owned(), "application/json".to_owned()),
                ("tracestate".to_owned(), "k=v".to_owned()),
                ("traceparent".to_owned(), PARENT.to_owned()),
            ]
        );
        assert_eq!(reply.fifo, ("m-1".to_owned(), "r-1".to_owned()));
    }

    #[test]
    fn a_plain_body_is_published_and_an_empty_one_is_not() {
        let reply = reply(std::iter::empty(), b"done", "type", ("m-2", Some("g")), PARENT)
            .unwrap()
            .unwrap();
        assert_eq!(reply.attributes, [("traceparent".to_owned(), PARENT.to_owned())]);
        assert_eq!(reply.fifo, ("g".to_owned(), "reply-m-2".to_owned()));
        assert_eq!(
            super::reply(std::iter::empty(), b"", "type", ("m", None), PARENT),
            Ok(None)
        );
    }

    #[test]
    fn a_reply_sns_cannot_carry_is_an_error_saying_why() {
        let error = reply(std::iter::empty(), &[0xff, 0xfe], "type", ("m", None), PARENT).unwrap_err();
        assert!(error.contains("not UTF-8"), "{error}");
        let names: Vec<String> = (0..10).map(|i| format!("ce-x{i}")).collect();
        let headers = names.iter().map(|n| (n.as_str(), "v"));
        let error = reply(headers, b"{}", "type", ("m", None), PARENT).unwrap_err();
        assert!(error.contains("11 message attributes"), "{error}");
    }
}
