//! An SDK interceptor that records every SNS, SQS and STS call in [`Metrics::cloud_call`]: service and
//! operation from the call's `Metadata`, the outcome classified as [`super::error::classify`] does, and
//! the duration of the whole execution including the SDK's retries (what a reconcile waits for).

use std::time::Instant;

use aws_smithy_runtime_api::{
    box_error::BoxError,
    client::{
        interceptors::{
            Intercept,
            context::{BeforeSerializationInterceptorContextRef, FinalizerInterceptorContextRef},
        },
        orchestrator::{HttpResponse, Metadata},
        runtime_components::RuntimeComponents,
    },
};
use aws_smithy_types::config_bag::{ConfigBag, Storable, StoreReplace};

use super::error::classify;
use super::fencing::Refused;
use crate::{cloud::ErrorKind, operate::Metrics};

/// Records each call's outcome and duration; attach one to every client config.
#[derive(Debug)]
pub(super) struct CallMetrics {
    metrics: Metrics,
}

impl CallMetrics {
    pub(super) fn new(metrics: Metrics) -> Self {
        Self { metrics }
    }
}

/// When the execution started, kept in the call's config bag between the two hooks.
#[derive(Clone, Debug)]
struct Started(Instant);

impl Storable for Started {
    type Storer = StoreReplace<Self>;
}

impl Intercept for CallMetrics {
    fn name(&self) -> &'static str {
        "TributaryCallMetrics"
    }

    fn read_before_execution(
        &self,
        _context: &BeforeSerializationInterceptorContextRef<'_>,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        cfg.interceptor_state().store_put(Started(Instant::now()));
        Ok(())
    }

    fn read_after_execution(
        &self,
        context: &FinalizerInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let seconds = cfg
            .load::<Started>()
            .map_or(0.0, |started| started.0.elapsed().as_secs_f64());
        let (service, operation) = cfg
            .load::<Metadata>()
            .map_or(("unknown".to_owned(), "unknown"), |m| {
                (m.service().to_ascii_lowercase(), m.name())
            });
        let outcome = match context.output_or_error() {
            // Never sent: the leader fence refused it.
            Some(Err(_)) if cfg.load::<Refused>().is_some() => "fenced",
            Some(Ok(_)) => "ok",
            Some(Err(error)) if error.is_timeout_error() || error.is_connector_error() => "unreachable",
            Some(Err(_)) | None => {
                let response = context.response();
                let status = response.map(|r| r.status().as_u16());
                let code = response.and_then(error_code);
                outcome_label(classify(operation, code.as_deref(), status))
            }
        };
        self.metrics.cloud_call(&service, operation, outcome, seconds);
        Ok(())
    }
}

fn outcome_label(kind: ErrorKind) -> &'static str {
    match kind {
        ErrorKind::Transient => "transient",
        ErrorKind::Permanent => "permanent",
        ErrorKind::NotFound => "not_found",
        ErrorKind::Unsupported => "unsupported",
    }
}

/// The AWS error code of an error answer. The interceptor sees the erased error type, not the
/// operation's error with its `code()`, so the code is read from the answer itself: the headers of the
/// JSON protocol (SQS, with its query-compatible code first), else the `__type` of a JSON body or the
/// `<Code>` of an XML body (SNS and STS).
fn error_code(response: &HttpResponse) -> Option<String> {
    let headers = response.headers();
    if let Some(value) = headers.get("x-amzn-query-error") {
        return value.split(';').next().map(str::to_owned);
    }
    if let Some(value) = headers.get("x-amzn-errortype") {
        return value.split(':').next().map(str::to_owned);
    }
    code_in_body(std::str::from_utf8(response.body().bytes()?).ok()?)
}

fn code_in_body(body: &str) -> Option<String> {
    if let Some(value) = serde_json::from_str::<serde_json::Value>(body).ok()
        && let Some(kind) = value.get("__type").and_then(serde_json::Value::as_str)
    {
        // `com.amazonaws.sqs#QueueDoesNotExist`, or a bare code.
        return kind.rsplit('#').next().map(str::to_owned);
    }
    let start = body.find("<Code>")? + "<Code>".len();
    let end = start + body[start..].find("</Code>")?;
    Some(body[start..end].trim().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_come_from_json_or_xml_bodies() {
        assert_eq!(
            code_in_body(r#"{"__type":"com.amazonaws.sqs#QueueDoesNotExist","message":"x"}"#).as_deref(),
            Some("QueueDoesNotExist")
        );
        let xml = "<ErrorResponse><Error><Type>Sender</Type><Code>NotFound</Code></Error></ErrorResponse>";
        assert_eq!(code_in_body(xml).as_deref(), Some("NotFound"));
        assert_eq!(code_in_body("<html>500 Internal Server Error</html>"), None);
    }

    #[test]
    fn outcomes_are_snake_case_error_classes() {
        assert_eq!(
            outcome_label(classify("GetQueueUrl", Some("QueueDoesNotExist"), Some(400))),
            "not_found"
        );
        assert_eq!(
            outcome_label(classify("Publish", Some("Throttling"), Some(400))),
            "transient"
        );
        assert_eq!(
            outcome_label(classify("CreateTopic", Some("InvalidParameter"), Some(400))),
            "permanent"
        );
    }
}
