//! How a message with attributes travels through an Azure Storage Queue, whose messages are text only.
//!
//! Tributary writes JSON `{"tributary": 1, "body": "...", "attributes": {"event": {"Type": "String",
//! "Value": "OrderPlaced"}}}`: the attribute form SNS uses in its notifications (Binary values in base64),
//! so the filter engine and the processors read them as they read SNS's. Text that is not such an
//! envelope (written by another producer) is a body without attributes, kept exactly as it came.

use std::collections::BTreeMap;

use base64::{Engine as _, engine::general_purpose::STANDARD};
use serde::{Deserialize, Serialize};

use crate::cloud::traits::MessageAttribute;

/// The envelope's format version; another value is read as a plain body.
const VERSION: u32 = 1;

#[derive(Serialize, Deserialize)]
struct Envelope {
    tributary: u32,
    body: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    attributes: BTreeMap<String, Attribute>,
}

#[derive(Serialize, Deserialize)]
struct Attribute {
    #[serde(rename = "Type")]
    data_type: String,
    #[serde(rename = "Value")]
    value: String,
}

/// The message text for `body` with `attributes`: the body itself when there are none.
pub fn encode(body: &str, attributes: &BTreeMap<String, MessageAttribute>) -> String {
    let attributes: BTreeMap<String, Attribute> = attributes
        .iter()
        .map(|(name, a)| {
            let value = match (&a.string_value, &a.binary_value) {
                (Some(s), _) => s.clone(),
                (None, Some(b)) => STANDARD.encode(b),
                (None, None) => String::new(),
            };
            let data_type = a.data_type.clone();
            (name.clone(), Attribute { data_type, value })
        })
        .collect();
    if attributes.is_empty() && !looks_like_envelope(body) {
        return body.to_owned();
    }
    let envelope = Envelope {
        tributary: VERSION,
        body: body.to_owned(),
        attributes,
    };
    serde_json::to_string(&envelope).unwrap_or_else(|_| body.to_owned())
}

/// A body that would itself be read as an envelope is wrapped, so that it comes back unchanged.
fn looks_like_envelope(body: &str) -> bool {
    body.trim_start().starts_with('{')
        && serde_json::from_str::<Envelope>(body).is_ok_and(|e| e.tributary == VERSION)
}

/// The body and attributes of a message text (see the module doc).
pub fn decode(text: &str) -> (String, BTreeMap<String, MessageAttribute>) {
    let Ok(envelope) = serde_json::from_str::<Envelope>(text) else {
        return (text.to_owned(), BTreeMap::new());
    };
    if envelope.tributary != VERSION {
        return (text.to_owned(), BTreeMap::new());
    }
    let attributes = envelope
        .attributes
        .into_iter()
        .map(|(name, a)| {
            let attribute = if a.data_type.starts_with("Binary") {
                MessageAttribute {
                    binary_value: Some(STANDARD.decode(&a.value).unwrap_or_else(|_| a.value.into_bytes())),
                    string_value: None,
                    data_type: a.data_type,
                }
            } else {
                MessageAttribute {
                    string_value: Some(a.value),
                    binary_value: None,
                    data_type: a.data_type,
                }
            };
            (name, attribute)
        })
        .collect();
    (envelope.body, attributes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attribute(data_type: &str, value: &str) -> MessageAttribute {
        MessageAttribute {
            data_type: data_type.into(),
            string_value: Some(value.into()),
            binary_value: None,
        }
    }

    #[test]
    fn attributes_of_every_type_come_back() {
        let attributes = BTreeMap::from([
            ("event".to_owned(), attribute("String", "OrderPlaced")),
            ("total".to_owned(), attribute("Number", "42.5")),
            (
                "blob".to_owned(),
                MessageAttribute {
                    data_type: "Binary".into(),
                    string_value: None,
                    binary_value: Some(vec![0, 1, 255]),
                },
            ),
        ]);
        let text = encode("{\"orderId\":\"o-1\"}", &attributes);
        assert_eq!(decode(&text), ("{\"orderId\":\"o-1\"}".to_owned(), attributes));
    }

    #[test]
    fn plain_text_is_a_body_without_attributes() {
        for text in ["hello", "{\"a\":1}", "{\"tributary\": 2, \"body\": \"x\"}", ""] {
            assert_eq!(decode(text), (text.to_owned(), BTreeMap::new()), "{text}");
            assert_eq!(
                encode(text, &BTreeMap::new()),
                text,
                "no envelope needed for {text}"
            );
        }
    }

    #[test]
    fn a_body_that_looks_like_an_envelope_survives_the_round_trip() {
        let tricky = "{\"tributary\": 1, \"body\": \"inner\"}";
        let text = encode(tricky, &BTreeMap::new());
        assert_ne!(text, tricky);
        assert_eq!(decode(&text), (tricky.to_owned(), BTreeMap::new()));
    }
}
