//! The trace a message belongs to, carried across hops. A worker opens a span for each message it
//! processes (and the order endpoint one per request) and makes it a child of the `traceparent` the
//! message carries; what it publishes carries that span as the parent. So with OTLP export on
//! ([`crate::operate::telemetry`]) one order is one trace: `POST /orders`, then each processor's
//! `process`, linked parent to child. With export off the spans are not recorded, and the next hop still
//! gets the incoming trace id with a fresh span id, so logs can be joined by trace id either way.

use std::collections::HashMap;

use opentelemetry::{propagation::TextMapPropagator as _, trace::TraceContextExt as _};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

use super::message::{TRACEPARENT, child_traceparent, trace_id};

/// Makes `span` continue the trace of `traceparent`, when that is a valid W3C trace context. Does nothing
/// when spans are not exported (there is no span to link then) or `span` has already started.
pub fn continue_trace(span: &Span, traceparent: Option<&str>) {
    let Some(traceparent) = traceparent.filter(|value| trace_id(value).is_some()) else {
        return;
    };
    let carrier = HashMap::from([(TRACEPARENT.to_owned(), traceparent.to_owned())]);
    let parent = TraceContextPropagator::new().extract(&carrier);
    // An error only means that spans are not recorded: the fallback of `next_traceparent` applies then.
    let _ = span.set_parent(parent);
}

/// The `traceparent` for what is published from within the current span: that span when it is recorded,
/// so the next hop becomes its child; otherwise a new span id in the trace `incoming` (or a new trace).
pub fn next_traceparent(incoming: Option<&str>) -> String {
    let context = Span::current().context();
    if context.span().span_context().is_valid() {
        let mut carrier = HashMap::new();
        TraceContextPropagator::new().inject_context(&context, &mut carrier);
        if let Some(traceparent) = carrier.remove(TRACEPARENT) {
            return traceparent;
        }
    }
    child_traceparent(incoming)
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use opentelemetry::trace::TracerProvider as _;
    use opentelemetry_sdk::{
        error::OTelSdkResult,
        trace::{SdkTracerProvider, SpanData, SpanExporter},
    };
    use tracing_subscriber::layer::SubscriberExt as _;

    use super::*;

    /// Keeps the finished spans.
    #[derive(Clone, Debug, Default)]
    struct Kept(Arc<Mutex<Vec<SpanData>>>);

    impl SpanExporter for Kept {
        async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
            self.0.lock().unwrap().extend(batch);
            Ok(())
        }
    }

    const INCOMING: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    fn parts(traceparent: &str) -> Vec<String> {
        traceparent.split('-').map(str::to_owned).collect()
    }

    #[test]
    fn without_recorded_spans_the_trace_id_travels_with_a_new_span_id() {
        let span = tracing::info_span!("process");
        continue_trace(&span, Some(INCOMING));
        let next = parts(&span.in_scope(|| next_traceparent(trace_id(INCOMING))));
        assert_eq!(next[1], "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_ne!(next[2], "00f067aa0ba902b7");
    }

    #[test]
    fn a_recorded_span_is_the_child_of_the_incoming_context_and_the_parent_of_the_next_hop() {
        let exporter = Kept::default();
        let provider = SdkTracerProvider::builder()
            .with_simple_exporter(exporter.clone())
            .build();
        let subscriber = tracing_subscriber::registry()
            .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")));
        let next = tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!("process");
            continue_trace(&span, Some(INCOMING));
            let next = span.in_scope(|| next_traceparent(trace_id(INCOMING)));
            drop(span);
            next
        });
        let spans = exporter.0.lock().unwrap().clone();
        assert_eq!(spans.len(), 1);
        let span = &spans[0];
        assert_eq!(
            span.span_context.trace_id().to_string(),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        assert_eq!(span.parent_span_id.to_string(), "00f067aa0ba902b7");
        let next = parts(&next);
        assert_eq!(next[1], "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(
            next[2],
            span.span_context.span_id().to_string(),
            "the next hop's parent is this span"
        );
        assert_eq!(next[3], "01");
    }

    #[test]
    fn an_invalid_traceparent_starts_a_new_trace() {
        let span = tracing::info_span!("process");
        continue_trace(
            &span,
            Some("00-00000000000000000000000000000000-00f067aa0ba902b7-01"),
        );
        let next = span.in_scope(|| next_traceparent(None));
        assert!(trace_id(&next).is_some(), "{next}");
        assert_ne!(parts(&next)[1], "00000000000000000000000000000000");
    }
}
