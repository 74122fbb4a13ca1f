//! Turning AWS SDK errors into classified [`Error`]s. The classification is a pure function of the
//! operation, the error code (`ProvideErrorMetadata::code`) and the HTTP status, so it is unit-tested here
//! and the integration tests only check that real answers reach it.

use aws_sdk_sqs::{
    config::http::HttpResponse,
    error::{ProvideErrorMetadata, SdkError},
};

use crate::cloud::{Error, ErrorKind, Operation};

/// Codes meaning the resource does not exist, across SNS, SQS (both protocols) and STS.
const NOT_FOUND: &[&str] = &[
    "NotFound",
    "NotFoundException",
    "ResourceNotFound",
    "ResourceNotFoundException",
    "QueueDoesNotExist",
    "AWS.SimpleQueueService.NonExistentQueue",
    "NonExistentQueue",
];

/// Codes worth retrying: throttling, server-side failures, and SQS's 60-second wait before a deleted
/// queue's name can be reused.
const TRANSIENT: &[&str] = &[
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestThrottled",
    "RequestThrottledException",
    "TooManyRequestsException",
    "RequestLimitExceeded",
    "SlowDown",
    "PriorRequestNotComplete",
    "InternalError",
    "InternalFailure",
    "InternalServerError",
    "ServiceUnavailable",
    "ServiceUnavailableException",
    "RequestTimeout",
    "RequestTimeoutException",
    "KMSThrottling",
    "KMSThrottlingException",
    "QueueDeletedRecently",
    "AWS.SimpleQueueService.QueueDeletedRecently",
];

/// Codes meaning the server does not know the operation at all.
const UNSUPPORTED: &[&str] = &[
    "UnknownOperationException",
    "UnknownOperation",
    "InvalidAction",
    "NotImplemented",
    "NotImplementedException",
];

/// Operations that some servers lack, where a bare server error (HTTP 5xx without an AWS error code in
/// the body) means "not implemented": moto 5.2.5 answers them with Werkzeug's HTML
/// `500 Internal Server Error` page because its SQS backend has no such method. Real SQS answers every
/// 5xx with an AWS error document, so there the code is present and the error stays transient.
const OPTIONAL_OPERATIONS: &[&str] = &[
    "StartMessageMoveTask",
    "ListMessageMoveTasks",
    "CancelMessageMoveTask",
];

/// Classifies an error answer from its operation, error code and HTTP status.
pub fn classify(operation: &str, code: Option<&str>, status: Option<u16>) -> ErrorKind {
    let code = code.filter(|code| !code.is_empty());
    if let Some(code) = code {
        if NOT_FOUND.contains(&code) {
            return ErrorKind::NotFound;
        }
        if TRANSIENT.contains(&code) {
            return ErrorKind::Transient;
        }
        if UNSUPPORTED.contains(&code) {
            return ErrorKind::Unsupported;
        }
    }
    match status {
        Some(501) => ErrorKind::Unsupported,
        Some(500..=599) if code.is_none() && is_optional_operation(operation) => ErrorKind::Unsupported,
        Some(429) | Some(500..=599) => ErrorKind::Transient,
        Some(404) if code.is_none() => ErrorKind::NotFound,
        Some(400..=499) => ErrorKind::Permanent,
        // A coded answer with no error status (or none known) is still the service refusing the request.
        _ if code.is_some() => ErrorKind::Permanent,
        // No code and no telling status: an answer that could not be read; worth another try.
        _ => ErrorKind::Transient,
    }
}

/// Whether `operation` is one that some servers do not implement (see [`OPTIONAL_OPERATIONS`]).
pub fn is_optional_operation(operation: &str) -> bool {
    OPTIONAL_OPERATIONS.contains(&operation)
}

/// Whether `error` says the server does not support message move tasks (so the receive/send/delete
/// fallback must be used).
pub fn is_message_move_unsupported(error: &Error) -> bool {
    error.kind() == ErrorKind::Unsupported && is_optional_operation(error.operation().name)
}

/// Converts an SDK error of `operation` into a classified [`Error`].
pub(crate) fn from_sdk<E>(operation: Operation, error: SdkError<E, HttpResponse>) -> Error
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let detail = || error_chain(&error);
    match &error {
        SdkError::ConstructionFailure(_) => Error::Invalid {
            operation,
            detail: detail(),
        },
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) => Error::Unreachable {
            operation,
            detail: detail(),
        },
        SdkError::ResponseError(context) => {
            let status = context.raw().status().as_u16();
            service_error(operation, None, None, Some(status), detail())
        }
        SdkError::ServiceError(context) => {
            let status = context.raw().status().as_u16();
            let service = context.err();
            service_error(
                operation,
                service.code(),
                service.message(),
                Some(status),
                detail(),
            )
        }
        _ => Error::Response {
            operation,
            detail: detail(),
        },
    }
}

fn service_error(
    operation: Operation,
    code: Option<&str>,
    message: Option<&str>,
    status: Option<u16>,
    detail: String,
) -> Error {
    match classify(operation.name, code, status) {
        ErrorKind::Unsupported => Error::Unsupported {
            operation,
            detail: match (code, status) {
                (Some(code), _) => format!("{code}: {}", message.unwrap_or_default()),
                (None, Some(status)) => format!("HTTP {status} without an AWS error code"),
                (None, None) => detail,
            },
        },
        kind => Error::Service {
            operation,
            kind,
            code: code.unwrap_or_default().to_owned(),
            message: message.map_or(detail, str::to_owned),
            status,
        },
    }
}

/// The error and its sources, joined with `: ` ("dispatch failure: io error: … Connection refused"): the
/// SDK's top-level message alone ("dispatch failure") does not say what went wrong.
fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.ends_with(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// Success for a delete whose target is already gone: deletes must be idempotent (finalizers retry them,
/// and the resource may have been removed by hand). Other errors stay errors.
pub(crate) fn gone_is_ok(result: Result<(), Error>) -> Result<(), Error> {
    match result {
        Err(error) if error.is_not_found() => Ok(()),
        other => other,
    }
}

/// An error for an answer that lacks a field the caller needs.
pub(crate) fn missing(operation: Operation, field: &str) -> Error {
    Error::Response {
        operation,
        detail: format!("the answer has no {field}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ErrorKind::*;

    #[test]
    fn codes_decide_before_statuses() {
        assert_eq!(
            classify("GetQueueUrl", Some("QueueDoesNotExist"), Some(400)),
            NotFound
        );
        assert_eq!(
            classify(
                "GetQueueUrl",
                Some("AWS.SimpleQueueService.NonExistentQueue"),
                Some(400)
            ),
            NotFound
        );
        assert_eq!(
            classify("GetTopicAttributes", Some("NotFound"), Some(404)),
            NotFound
        );
        assert_eq!(classify("Subscribe", Some("Throttling"), Some(400)), Transient);
        assert_eq!(
            classify("CreateQueue", Some("QueueDeletedRecently"), Some(400)),
            Transient
        );
        assert_eq!(
            classify("Anything", Some("UnknownOperationException"), Some(400)),
            Unsupported
        );
    }

    #[test]
    fn refusals_are_permanent_and_keep_nothing_to_retry() {
        for code in [
            "InvalidParameter",
            "InvalidParameterValue",
            "InvalidAttributeName",
            "InvalidAttributeValue",
            "AccessDenied",
            "AuthorizationError",
        ] {
            assert_eq!(
                classify("SetQueueAttributes", Some(code), Some(400)),
                Permanent,
                "{code}"
            );
        }
        assert_eq!(
            classify("Subscribe", Some("AuthorizationError"), Some(403)),
            Permanent
        );
        assert_eq!(classify("CreateTopic", Some("InvalidParameter"), None), Permanent);
        assert_eq!(classify("CreateTopic", None, Some(200)), Transient);
    }

    #[test]
    fn statuses_decide_when_the_code_is_unknown() {
        assert_eq!(classify("CreateQueue", Some("Weird"), Some(503)), Transient);
        assert_eq!(classify("CreateQueue", None, Some(429)), Transient);
        assert_eq!(classify("CreateQueue", None, Some(500)), Transient);
        assert_eq!(classify("CreateQueue", None, Some(501)), Unsupported);
        assert_eq!(classify("CreateQueue", None, Some(404)), NotFound);
        assert_eq!(classify("CreateQueue", None, None), Transient);
    }

    #[test]
    fn a_bare_server_error_on_a_move_task_means_not_implemented() {
        assert_eq!(classify("StartMessageMoveTask", None, Some(500)), Unsupported);
        assert_eq!(classify("ListMessageMoveTasks", Some(""), Some(500)), Unsupported);
        // Real SQS sends an error document with its 5xx: then it is a transient failure.
        assert_eq!(
            classify("StartMessageMoveTask", Some("InternalError"), Some(500)),
            Transient
        );
        let error = service_error(
            Operation::new("sqs", "StartMessageMoveTask", "arn"),
            None,
            None,
            Some(500),
            String::new(),
        );
        assert!(is_message_move_unsupported(&error), "{error}");
    }

    #[test]
    fn deleting_what_is_gone_is_success_but_other_errors_stay() {
        let not_found = Error::Service {
            operation: Operation::new("sns", "DeleteTopic", "arn"),
            kind: NotFound,
            code: "NotFound".into(),
            message: String::new(),
            status: Some(404),
        };
        assert!(gone_is_ok(Err(not_found)).is_ok());
        let unreachable = Error::Unreachable {
            operation: Operation::new("sns", "DeleteTopic", "arn"),
            detail: String::new(),
        };
        assert!(gone_is_ok(Err(unreachable)).is_err());
    }
}
