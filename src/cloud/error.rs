//! Errors of the cloud layer. Every error names the call that failed (service, operation, resource) and
//! carries an [`ErrorKind`], because what a reconciler does next depends only on the kind: back off and
//! retry, report a condition and wait for a spec change, treat the resource as absent, or switch to a
//! fallback that does not need the missing API.

use std::fmt;

/// The result type of the cloud layer.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What the caller should do about an error.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// Retry with backoff: throttling, server errors, timeouts, a server that does not answer.
    Transient,
    /// Retrying the same request will fail again: the request is invalid or not allowed. Only a change of
    /// spec (or of permissions) fixes it, so the cloud's message is kept for the condition.
    Permanent,
    /// The resource does not exist (or no longer does).
    NotFound,
    /// The server does not implement this API (an emulator, an older region); use a fallback.
    Unsupported,
}

impl ErrorKind {
    /// A short stable label, for metrics and condition reasons.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Transient => "Transient",
            Self::Permanent => "Permanent",
            Self::NotFound => "NotFound",
            Self::Unsupported => "Unsupported",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which call failed, and on what: the context every error carries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Operation {
    /// The cloud service, e.g. `sns` or `sqs`.
    pub service: &'static str,
    /// The API operation, e.g. `CreateQueue`.
    pub name: &'static str,
    /// The resource the call was about: a name, URL or ARN.
    pub resource: String,
}

impl Operation {
    /// The context of one call.
    pub fn new(service: &'static str, name: &'static str, resource: impl Into<String>) -> Self {
        Self {
            service,
            name,
            resource: resource.into(),
        }
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} on {:?}", self.service, self.name, self.resource)
    }
}

/// An error of the cloud layer.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The service answered with an error. `code` and `message` are the service's own.
    #[error("{operation}: {code}: {message}")]
    Service {
        /// The failed call.
        operation: Operation,
        /// How the error was classified from its code and HTTP status.
        kind: ErrorKind,
        /// The service's error code (`InvalidAttributeName`, `ThrottlingException`, …); empty if none.
        code: String,
        /// The service's error message.
        message: String,
        /// The HTTP status of the answer, when there was one.
        status: Option<u16>,
    },
    /// No answer: connection refused, DNS failure, timeout. Always transient.
    #[error("{operation}: no answer from the service: {detail}")]
    Unreachable {
        /// The failed call.
        operation: Operation,
        /// What the transport reported.
        detail: String,
    },
    /// The server does not implement the operation.
    #[error("{operation}: the server does not support this API: {detail}")]
    Unsupported {
        /// The failed call.
        operation: Operation,
        /// What the server answered.
        detail: String,
    },
    /// The answer could not be read, or lacked a field the call needs (an ARN, a URL). Treated as
    /// transient: a proxy or an overloaded server is the likely cause, and a retry is cheap.
    #[error("{operation}: unexpected response: {detail}")]
    Response {
        /// The failed call.
        operation: Operation,
        /// What was wrong with the answer.
        detail: String,
    },
    /// The request could not be built from the given input (e.g. an ARN that does not parse). Permanent.
    #[error("{operation}: invalid request: {detail}")]
    Invalid {
        /// The call that could not be made.
        operation: Operation,
        /// What was wrong with the input.
        detail: String,
    },
}

impl Error {
    /// What the caller should do about this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::Service { kind, .. } => *kind,
            Self::Unreachable { .. } | Self::Response { .. } => ErrorKind::Transient,
            Self::Unsupported { .. } => ErrorKind::Unsupported,
            Self::Invalid { .. } => ErrorKind::Permanent,
        }
    }

    /// The call that failed.
    pub fn operation(&self) -> &Operation {
        match self {
            Self::Service { operation, .. }
            | Self::Unreachable { operation, .. }
            | Self::Unsupported { operation, .. }
            | Self::Response { operation, .. }
            | Self::Invalid { operation, .. } => operation,
        }
    }

    /// The service's error code, when the service answered with one.
    pub fn code(&self) -> Option<&str> {
        match self {
            Self::Service { code, .. } if !code.is_empty() => Some(code),
            _ => None,
        }
    }

    /// Whether the resource does not exist.
    pub fn is_not_found(&self) -> bool {
        self.kind() == ErrorKind::NotFound
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_message_names_the_call_and_keeps_the_service_message() {
        let error = Error::Service {
            operation: Operation::new("sqs", "SetQueueAttributes", "orders"),
            kind: ErrorKind::Permanent,
            code: "InvalidAttributeName".into(),
            message: "Unknown Attribute Bogus.".into(),
            status: Some(400),
        };
        assert_eq!(
            error.to_string(),
            "sqs SetQueueAttributes on \"orders\": InvalidAttributeName: Unknown Attribute Bogus."
        );
        assert_eq!(error.kind(), ErrorKind::Permanent);
        assert_eq!(error.code(), Some("InvalidAttributeName"));
    }

    #[test]
    fn transport_and_response_failures_are_transient() {
        let operation = Operation::new("sns", "CreateTopic", "orders");
        let unreachable = Error::Unreachable {
            operation: operation.clone(),
            detail: "connection refused".into(),
        };
        let response = Error::Response {
            operation,
            detail: "no TopicArn".into(),
        };
        assert_eq!(unreachable.kind(), ErrorKind::Transient);
        assert_eq!(response.kind(), ErrorKind::Transient);
        assert_eq!(unreachable.code(), None);
    }
}
