//! Spans read from OTLP JSON: each line one `ExportTraceServiceRequest` (`{"resourceSpans": [...]}`), as
//! the OpenTelemetry Collector's file exporter writes them; a document whose spans are under `batches`
//! (the shape Tempo's trace API answers) is read the same way. Ids are hex, as the OTLP JSON encoding
//! has them; times are nanoseconds since the epoch (a string or a number).

use std::collections::BTreeMap;

use serde::Deserialize;

/// One span.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Span {
    /// Its trace, 32 hex digits.
    pub trace_id: String,
    /// Its id, 16 hex digits.
    pub span_id: String,
    /// Its parent's id; empty for a root.
    pub parent_id: String,
    /// `service.name` of the process that sent it.
    pub service: String,
    /// Its name (`process`, `POST /orders`).
    pub name: String,
    /// Start, nanoseconds since the epoch.
    pub start: u64,
    /// End, nanoseconds since the epoch.
    pub end: u64,
    /// Its attributes, each value as text.
    pub attributes: BTreeMap<String, String>,
    /// The status message when the span ended in error (`Some("")` for an error without one).
    pub error: Option<String>,
}

/// A line (or document) that is not OTLP JSON.
#[derive(Debug, thiserror::Error)]
#[error("line {line}: not OTLP JSON trace data: {source}")]
pub struct ParseError {
    /// Its line number, from 1.
    pub line: usize,
    /// Why.
    pub source: serde_json::Error,
}

/// Every span of `text`: JSON lines, or one JSON document.
pub fn parse(text: &str) -> Result<Vec<Span>, ParseError> {
    // One document (a pretty-printed answer, or a single line) reads as a whole; lines otherwise.
    if let Ok(spans) = from_json(text) {
        return Ok(spans);
    }
    let mut spans = Vec::new();
    for (number, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        spans.extend(from_json(line).map_err(|source| ParseError {
            line: number + 1,
            source,
        })?);
    }
    Ok(spans)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Request {
    #[serde(default, alias = "batches")]
    resource_spans: Vec<ResourceSpans>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ResourceSpans {
    #[serde(default)]
    resource: Resource,
    #[serde(default, alias = "instrumentationLibrarySpans")]
    scope_spans: Vec<ScopeSpans>,
}

#[derive(Default, Deserialize)]
struct Resource {
    #[serde(default)]
    attributes: Vec<KeyValue>,
}

#[derive(Deserialize)]
struct ScopeSpans {
    #[serde(default)]
    spans: Vec<RawSpan>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawSpan {
    trace_id: String,
    span_id: String,
    #[serde(default)]
    parent_span_id: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    start_time_unix_nano: Option<Nanos>,
    #[serde(default)]
    end_time_unix_nano: Option<Nanos>,
    #[serde(default)]
    attributes: Vec<KeyValue>,
    #[serde(default)]
    status: Status,
}

/// Nanoseconds: a string (the OTLP JSON encoding of a 64-bit integer) or a number.
#[derive(Deserialize)]
#[serde(untagged)]
enum Nanos {
    Text(String),
    Number(u64),
}

impl Nanos {
    fn get(this: Option<&Self>) -> u64 {
        match this {
            Some(Self::Text(text)) => text.parse().unwrap_or(0),
            Some(Self::Number(number)) => *number,
            None => 0,
        }
    }
}

#[derive(Default, Deserialize)]
struct Status {
    #[serde(default)]
    code: serde_json::Value,
    #[serde(default)]
    message: String,
}

#[derive(Deserialize)]
struct KeyValue {
    key: String,
    #[serde(default)]
    value: serde_json::Value,
}

/// An `AnyValue` as text: `{"stringValue": "x"}` → `x`, `{"intValue": "3"}` → `3`.
fn any_value(value: &serde_json::Value) -> String {
    match value.as_object().and_then(|o| o.values().next()) {
        Some(serde_json::Value::String(text)) => text.clone(),
        Some(other) => other.to_string(),
        None => String::new(),
    }
}

fn from_json(text: &str) -> Result<Vec<Span>, serde_json::Error> {
    let request: Request = serde_json::from_str(text)?;
    let mut spans = Vec::new();
    for resource in request.resource_spans {
        let service = resource
            .resource
            .attributes
            .iter()
            .find(|kv| kv.key == "service.name")
            .map(|kv| any_value(&kv.value))
            .unwrap_or_default();
        for raw in resource.scope_spans.into_iter().flat_map(|s| s.spans) {
            // STATUS_CODE_ERROR is 2; the name is accepted too.
            let error = matches!(&raw.status.code, serde_json::Value::Number(n) if n.as_u64() == Some(2))
                || raw.status.code.as_str() == Some("STATUS_CODE_ERROR");
            spans.push(Span {
                trace_id: raw.trace_id.to_ascii_lowercase(),
                span_id: raw.span_id.to_ascii_lowercase(),
                parent_id: raw.parent_span_id.to_ascii_lowercase(),
                service: service.clone(),
                name: raw.name,
                start: Nanos::get(raw.start_time_unix_nano.as_ref()),
                end: Nanos::get(raw.end_time_unix_nano.as_ref()),
                attributes: raw
                    .attributes
                    .iter()
                    .map(|kv| (kv.key.clone(), any_value(&kv.value)))
                    .collect(),
                error: error.then_some(raw.status.message),
            });
        }
    }
    Ok(spans)
}
