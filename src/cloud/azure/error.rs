//! Azure SDK errors as cloud-layer errors: classified by HTTP status as the AWS ones are by code.

use azure_core::error::ErrorKind as AzureKind;

use crate::cloud::{Error, ErrorKind, Operation};

/// `error` from the call `operation`, classified: 404 is not found, 408, 429 and 5xx are transient, other
/// statuses are permanent (the request is wrong or not allowed), and a failed connection is unreachable.
pub fn from_azure(operation: Operation, error: azure_core::Error) -> Error {
    match error.kind() {
        AzureKind::HttpResponse {
            status, error_code, ..
        } => {
            let status = u16::from(*status);
            let kind = match status {
                404 => ErrorKind::NotFound,
                408 | 429 | 500..=599 => ErrorKind::Transient,
                _ => ErrorKind::Permanent,
            };
            Error::Service {
                operation,
                kind,
                code: error_code.clone().unwrap_or_default(),
                message: error.to_string(),
                status: Some(status),
            }
        }
        AzureKind::Connection | AzureKind::Io => Error::Unreachable {
            operation,
            detail: error.to_string(),
        },
        AzureKind::Credential => Error::Service {
            operation,
            kind: ErrorKind::Permanent,
            code: "Credential".to_owned(),
            message: error.to_string(),
            status: None,
        },
        _ => Error::Response {
            operation,
            detail: error.to_string(),
        },
    }
}
