//! Azure Resource Manager over REST: GET, PUT, POST and DELETE of resource ids with a bearer token from an
//! `azure_core` [`TokenCredential`], and ARM's long-running-operation protocol. A PUT or DELETE answered
//! 201/202 is followed through its `Azure-AsyncOperation` URL (`status` InProgress → Succeeded, Failed or
//! Canceled) or its `Location` URL (202 until done), honouring `Retry-After`; a resource whose
//! `properties.provisioningState` is not terminal is polled by GET. A wait has a bound: past it the call
//! answers [`Provisioned::Pending`] and the reconciler looks again later, so no reconcile blocks for long.

use std::{sync::Arc, time::Duration};

use azure_core::credentials::TokenCredential;
use reqwest::{Method, StatusCode, header::HeaderMap};
use serde_json::Value;
use tokio::time::Instant;

use crate::{
    cloud::{Error, ErrorKind, Operation, Result},
    operate::Fence,
};

const ARM: &str = "arm";

/// The public cloud's Resource Manager.
pub const PUBLIC_CLOUD: &str = "https://management.azure.com";

/// How a PUT ended.
#[derive(Clone, Debug, PartialEq)]
pub enum Provisioned {
    /// Done: the resource as Resource Manager reports it.
    Ready(Value),
    /// Still running when the wait ran out; `state` is the last provisioning state seen.
    Pending {
        /// The last `provisioningState` or operation `status`.
        state: String,
    },
}

/// A Resource Manager client. Cheap to clone.
#[derive(Clone)]
pub struct Arm {
    http: reqwest::Client,
    base: String,
    credential: Arc<dyn TokenCredential>,
    wait: Duration,
    /// Checked before every request (polls of long-running operations too).
    fence: Fence,
}

impl std::fmt::Debug for Arm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Arm")
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

impl Arm {
    /// A client of the Resource Manager at `base` (without a trailing slash), authenticated by
    /// `credential`, waiting at most `wait` for a long-running operation within one call.
    pub fn new(base: &str, credential: Arc<dyn TokenCredential>, wait: Duration) -> Self {
        Self {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(60))
                .build()
                .unwrap_or_default(),
            base: base.trim_end_matches('/').to_owned(),
            credential,
            wait,
            fence: Fence::open(),
        }
    }

    /// This client, sending nothing while `fence` is closed: every request fails unsent, as unreachable.
    #[must_use]
    pub fn with_fence(mut self, fence: Fence) -> Self {
        self.fence = fence;
        self
    }

    /// The resource `id` (`/subscriptions/...`), or `None` when it does not exist.
    pub async fn get(&self, id: &str, api_version: &str) -> Result<Option<Value>> {
        let operation = Operation::new(ARM, "Get", id);
        let (status, _, body) = self
            .send(&operation, Method::GET, &self.url(id, api_version), None)
            .await?;
        match status {
            StatusCode::NOT_FOUND => Ok(None),
            s if s.is_success() => Ok(Some(body)),
            s => Err(service_error(operation, s, &body)),
        }
    }

    /// Creates or updates `id` with `body` and follows the operation to its end (or the wait's).
    pub async fn put(&self, id: &str, api_version: &str, body: &Value) -> Result<Provisioned> {
        let operation = Operation::new(ARM, "Put", id);
        let started = Instant::now();
        let (status, headers, answer) = self
            .send(&operation, Method::PUT, &self.url(id, api_version), Some(body))
            .await?;
        if !status.is_success() {
            return Err(service_error(operation, status, &answer));
        }
        if matches!(status, StatusCode::CREATED | StatusCode::ACCEPTED)
            && let Some(pending) = self.follow(&operation, &headers, started).await?
        {
            return Ok(pending);
        }
        // The operation is over (or was synchronous): the resource itself says whether it is ready.
        loop {
            let Some(resource) = self.get(id, api_version).await? else {
                return Err(Error::Response {
                    operation,
                    detail: "the resource is missing right after it was created".into(),
                });
            };
            let state = provisioning_state(&resource);
            match state.as_deref() {
                None | Some("Succeeded" | "Created" | "Active") => return Ok(Provisioned::Ready(resource)),
                Some(failed @ ("Failed" | "Canceled")) => {
                    // Often a conflict with another operation or an internal error: looked at again
                    // with backoff, the condition showing why.
                    return Err(Error::Service {
                        operation,
                        kind: ErrorKind::Transient,
                        code: format!("Provisioning{failed}"),
                        message: format!("provisioningState is {failed}"),
                        status: None,
                    });
                }
                Some(other) if started.elapsed() >= self.wait => {
                    return Ok(Provisioned::Pending {
                        state: other.to_owned(),
                    });
                }
                Some(_) => tokio::time::sleep(Duration::from_millis(500)).await,
            }
        }
    }

    /// POSTs to an action of `id` (`listKeys`) and returns its answer.
    pub async fn post(&self, id: &str, action: &str, api_version: &str) -> Result<Value> {
        let path = format!("{id}/{action}");
        let operation = Operation::new(ARM, "Post", path.clone());
        let (status, _, body) = self
            .send(
                &operation,
                Method::POST,
                &self.url(&path, api_version),
                Some(&Value::Null),
            )
            .await?;
        if status.is_success() {
            Ok(body)
        } else {
            Err(service_error(operation, status, &body))
        }
    }

    /// Deletes `id`; a resource already gone is success. Returns false if the deletion was still running
    /// when the wait ran out.
    pub async fn delete(&self, id: &str, api_version: &str) -> Result<bool> {
        let operation = Operation::new(ARM, "Delete", id);
        let started = Instant::now();
        let (status, headers, body) = self
            .send(&operation, Method::DELETE, &self.url(id, api_version), None)
            .await?;
        match status {
            StatusCode::NOT_FOUND | StatusCode::NO_CONTENT | StatusCode::OK => Ok(true),
            StatusCode::ACCEPTED => Ok(self.follow(&operation, &headers, started).await?.is_none()),
            s => Err(service_error(operation, s, &body)),
        }
    }

    /// Polls the operation named by `headers` until it ends (`None`) or the wait runs out.
    async fn follow(
        &self,
        operation: &Operation,
        headers: &HeaderMap,
        started: Instant,
    ) -> Result<Option<Provisioned>> {
        let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
        // An Azure-AsyncOperation URL answers the operation's status; a Location URL answers 202 until
        // the operation is over.
        let (url, by_location) = match (header("azure-asyncoperation"), header("location")) {
            (Some(url), _) => (url, false),
            (None, Some(url)) => (url, true),
            (None, None) => return Ok(None),
        };
        let mut delay = retry_after(headers);
        loop {
            if started.elapsed() + delay > self.wait {
                return Ok(Some(Provisioned::Pending {
                    state: "InProgress".into(),
                }));
            }
            tokio::time::sleep(delay).await;
            let (status, headers, body) = self.send(operation, Method::GET, &url, None).await?;
            let failed = || service_error(operation.clone(), status, &body);
            let done = match (by_location, status) {
                (true, StatusCode::ACCEPTED) => false,
                (true, s) if s.is_success() || s == StatusCode::NOT_FOUND => true,
                (_, s) if !s.is_success() => return Err(failed()),
                _ => match body["status"].as_str().unwrap_or("InProgress") {
                    "Succeeded" => true,
                    "Failed" | "Canceled" => return Err(failed()),
                    _ => false,
                },
            };
            if done {
                return Ok(None);
            }
            delay = retry_after(&headers);
        }
    }

    fn url(&self, path: &str, api_version: &str) -> String {
        format!("{}{path}?api-version={api_version}", self.base)
    }

    async fn send(
        &self,
        operation: &Operation,
        method: Method,
        url: &str,
        body: Option<&Value>,
    ) -> Result<(StatusCode, HeaderMap, Value)> {
        self.fence.check().map_err(|refused| Error::Unreachable {
            operation: operation.clone(),
            detail: refused.to_string(),
        })?;
        let scope = format!("{}/.default", self.base);
        let token = self
            .credential
            .get_token(&[scope.as_str()], None)
            .await
            .map_err(|e| Error::Service {
                operation: operation.clone(),
                kind: ErrorKind::Transient,
                code: "Credential".into(),
                message: format!("no Azure token for {scope}: {e}"),
                status: None,
            })?;
        let mut request = self.http.request(method, url).bearer_auth(token.token.secret());
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.map_err(|e| Error::Unreachable {
            operation: operation.clone(),
            detail: e.to_string(),
        })?;
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.text().await.map_err(|e| Error::Unreachable {
            operation: operation.clone(),
            detail: e.to_string(),
        })?;
        let body = if text.trim().is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        Ok((status, headers, body))
    }
}

/// `properties.provisioningState` of a resource, if it has one.
pub fn provisioning_state(resource: &Value) -> Option<String> {
    resource["properties"]["provisioningState"]
        .as_str()
        .map(str::to_owned)
}

/// `Retry-After` in seconds, at least 1 s and at most 60 s (a missing header means 1 s here; ARM's own
/// default is longer, but the emulators answer quickly).
fn retry_after(headers: &HeaderMap) -> Duration {
    let seconds = headers
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(1);
    Duration::from_secs(seconds.clamp(1, 60))
}

/// An ARM error answer (`{"error": {"code", "message"}}`), classified: 404 not found; 408, 409 (another
/// operation is in progress), 429 and 5xx transient; the rest permanent.
fn service_error(operation: Operation, status: StatusCode, body: &Value) -> Error {
    let error = &body["error"];
    let code = error["code"].as_str().unwrap_or_default().to_owned();
    let message = error["message"]
        .as_str()
        .map_or_else(|| body.to_string(), str::to_owned);
    let kind = match status.as_u16() {
        404 => ErrorKind::NotFound,
        408 | 409 | 429 | 500..=599 => ErrorKind::Transient,
        // A long-running operation that ended Failed or Canceled (answered 200): often a conflict
        // or an internal error, so tried again with backoff.
        200 => ErrorKind::Transient,
        _ => ErrorKind::Permanent,
    };
    Error::Service {
        operation,
        kind,
        code,
        message,
        status: Some(status.as_u16()),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_classified_by_status_and_keep_the_arm_code() {
        let body = serde_json::json!({"error": {"code": "InvalidPartitionCount", "message": "1 to 32"}});
        let op = || Operation::new(ARM, "Put", "/x");
        let error = service_error(op(), StatusCode::BAD_REQUEST, &body);
        assert_eq!(error.kind(), ErrorKind::Permanent);
        assert_eq!(error.code(), Some("InvalidPartitionCount"));
        assert!(error.to_string().contains("1 to 32"));
        for transient in [200, 408, 409, 429, 503] {
            let status = StatusCode::from_u16(transient).unwrap();
            assert_eq!(
                service_error(op(), status, &body).kind(),
                ErrorKind::Transient,
                "{transient}"
            );
        }
        assert!(service_error(op(), StatusCode::NOT_FOUND, &Value::Null).is_not_found());
    }

    #[test]
    fn retry_after_is_bounded() {
        let mut headers = HeaderMap::new();
        assert_eq!(retry_after(&headers), Duration::from_secs(1));
        headers.insert("retry-after", "600".parse().unwrap());
        assert_eq!(retry_after(&headers), Duration::from_secs(60));
        headers.insert("retry-after", "0".parse().unwrap());
        assert_eq!(retry_after(&headers), Duration::from_secs(1));
    }
}
