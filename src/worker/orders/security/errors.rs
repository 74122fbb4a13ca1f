//! What the order endpoint answers when it does not answer 2xx: a small JSON body with a stable code and
//! the request id (`{"error":"unauthorized","requestId":"..."}`), plus a message only when it is the
//! client's own mistake (a 400 naming the field). Cloud error text, ARNs, table names, queue URLs and
//! account ids never reach a client: they are logged with the request id instead.

use axum::{
    Json,
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde_json::json;

use crate::cloud::{self, ErrorKind};

/// The header carrying the request id, on every response.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// The id of one request, in its extensions: for error bodies and log lines.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestId(pub String);

/// An answer other than success.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ApiError {
    /// 400: the request is malformed; the message names the field and the rule.
    BadRequest(String),
    /// 401: no valid credentials.
    Unauthorized,
    /// 404: no such order (or not the caller's; the same answer).
    NotFound,
    /// 409: the idempotency key was used for another order.
    Conflict,
    /// 413: the body exceeds the cap.
    PayloadTooLarge,
    /// 408: the request took longer than the timeout (a slow body included).
    Timeout,
    /// 429: the principal exceeded its rate; retry after this many seconds.
    TooManyRequests(u64),
    /// 503: too many requests at once in this pod (load shed).
    Overloaded,
    /// 503: a transient failure; the message is ours (never the cloud's).
    Unavailable(&'static str),
    /// 500: a permanent failure.
    Internal,
}

impl ApiError {
    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::Conflict => StatusCode::CONFLICT,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Timeout => StatusCode::REQUEST_TIMEOUT,
            Self::TooManyRequests(_) => StatusCode::TOO_MANY_REQUESTS,
            Self::Overloaded | Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The stable code in the body.
    pub fn code(&self) -> &'static str {
        match self {
            Self::BadRequest(_) => "bad_request",
            Self::Unauthorized => "unauthorized",
            Self::NotFound => "not_found",
            Self::Conflict => "conflict",
            Self::PayloadTooLarge => "payload_too_large",
            Self::Timeout => "request_timeout",
            Self::TooManyRequests(_) => "too_many_requests",
            Self::Overloaded => "overloaded",
            Self::Unavailable(_) => "unavailable",
            Self::Internal => "internal_error",
        }
    }

    /// A failure of the Order table or the topic: transient ones are 503 (retry), the rest 500. The
    /// details (which carry ARNs and table names) are logged by the caller, not answered.
    pub fn from_cloud(error: &cloud::Error, retry_message: &'static str) -> Self {
        match error.kind() {
            ErrorKind::Transient => Self::Unavailable(retry_message),
            _ => Self::Internal,
        }
    }

    /// The error for the status a layer answered with (timeout, body cap, load shedding), so that every
    /// non-success answer has the same shape.
    pub fn from_status(status: StatusCode) -> Self {
        match status {
            StatusCode::BAD_REQUEST => Self::BadRequest("the request is malformed".into()),
            StatusCode::UNAUTHORIZED => Self::Unauthorized,
            StatusCode::NOT_FOUND | StatusCode::METHOD_NOT_ALLOWED => Self::NotFound,
            StatusCode::PAYLOAD_TOO_LARGE | StatusCode::LENGTH_REQUIRED => Self::PayloadTooLarge,
            StatusCode::REQUEST_TIMEOUT | StatusCode::GATEWAY_TIMEOUT => Self::Timeout,
            StatusCode::TOO_MANY_REQUESTS => Self::TooManyRequests(1),
            StatusCode::SERVICE_UNAVAILABLE => Self::Overloaded,
            s if s.is_client_error() => Self::BadRequest("the request is malformed".into()),
            _ => Self::Internal,
        }
    }

    /// The response for request `request_id`.
    pub fn response(&self, request_id: &str) -> Response {
        let mut body = json!({"error": self.code(), "requestId": request_id});
        match self {
            Self::BadRequest(message) => body["message"] = message.as_str().into(),
            Self::Unavailable(message) => body["message"] = (*message).into(),
            _ => {}
        }
        let mut response = (self.status(), Json(body)).into_response();
        let headers = response.headers_mut();
        match self {
            Self::Unauthorized => {
                headers.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"orders\""),
                );
            }
            Self::TooManyRequests(seconds) => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds.max(&1).to_owned()));
            }
            Self::Overloaded | Self::Unavailable(_) => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            _ => {}
        }
        response.extensions_mut().insert(Rendered);
        response
    }
}

/// Marks a response whose body this module wrote (so the outer layer does not replace it).
#[derive(Clone, Copy, Debug)]
pub struct Rendered;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cloud::Operation;

    async fn body(response: Response) -> serde_json::Value {
        let bytes = axum::body::to_bytes(response.into_body(), 4096).await.unwrap();
        serde_json::from_slice(&bytes).unwrap()
    }

    #[tokio::test]
    async fn cloud_failures_answer_without_the_cloud_text() {
        let arn = "arn:aws:sns:us-east-1:123456789012:orders";
        let transient = cloud::Error::Unreachable {
            operation: Operation::new("sns", "Publish", arn),
            detail: "connection refused".into(),
        };
        let permanent = cloud::Error::Invalid {
            operation: Operation::new("dynamodb", "GetItem", "team-orders"),
            detail: "bad item".into(),
        };
        let unavailable = ApiError::from_cloud(&transient, "retry later");
        assert_eq!(unavailable.status(), StatusCode::SERVICE_UNAVAILABLE);
        let response = unavailable.response("r-1");
        assert_eq!(response.headers()[header::RETRY_AFTER], "1");
        let text = body(response).await.to_string();
        assert!(!text.contains("arn:") && !text.contains("123456789012"), "{text}");
        assert_eq!(
            body(ApiError::from_cloud(&permanent, "x").response("r-2")).await,
            json!({"error": "internal_error", "requestId": "r-2"})
        );
    }

    #[tokio::test]
    async fn every_error_has_its_status_code_and_headers() {
        let unauthorized = ApiError::Unauthorized.response("r");
        assert_eq!(unauthorized.status(), 401);
        assert!(unauthorized.headers().contains_key(header::WWW_AUTHENTICATE));
        let limited = ApiError::TooManyRequests(3).response("r");
        assert_eq!(limited.status(), 429);
        assert_eq!(limited.headers()[header::RETRY_AFTER], "3");
        let bad = body(ApiError::BadRequest("items[0].sku: 1 to 64".into()).response("r")).await;
        assert_eq!(bad["message"], "items[0].sku: 1 to 64");
        for (status, code) in [
            (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
            (StatusCode::REQUEST_TIMEOUT, "request_timeout"),
            (StatusCode::SERVICE_UNAVAILABLE, "overloaded"),
            (StatusCode::METHOD_NOT_ALLOWED, "not_found"),
            (StatusCode::BAD_GATEWAY, "internal_error"),
        ] {
            assert_eq!(ApiError::from_status(status).code(), code, "{status}");
        }
    }
}
