//! A storage account and the queue clients signed with its key: what the controller's queue management
//! (`storage_queues`) and the message handles (`queue`) both need.

use std::time::Duration;

use azure_core::http::{ClientOptions, ExponentialRetryOptions, RetryOptions, Url};
use azure_storage_queue::{QueueClient, QueueClientOptions};

use super::error::from_azure;
use super::storage_sas::AccountSas;
use crate::cloud::{Error, Operation, Result};

/// The service name in errors.
pub const STORAGE_QUEUE: &str = "storage-queue";

/// A storage account and its key.
#[derive(Clone)]
pub struct Account {
    /// The account name.
    pub name: String,
    /// The account key (base64), from the Secret the object references.
    pub key: String,
}

impl std::fmt::Debug for Account {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Account")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// A client of the queue at `url` (unsigned), signed with the account key for `lifetime`.
pub fn signed_client(url: &Url, account: &Account, lifetime: Duration) -> Result<QueueClient> {
    let operation = || Operation::new(STORAGE_QUEUE, "Sign", url.to_string());
    let sas = AccountSas::queues_full_access(&account.name, time::OffsetDateTime::now_utc() + lifetime);
    let signed = sas.sign_url(url, &account.key).map_err(|e| Error::Invalid {
        operation: operation(),
        detail: e.to_string(),
    })?;
    QueueClient::new(signed, None, Some(client_options())).map_err(|e| from_azure(operation(), e))
}

/// How long one call may spend retrying inside the SDK before its error is returned.
pub const CALL_RETRY_BUDGET: Duration = Duration::from_secs(8);

/// The clients' options: at most 3 retries within [`CALL_RETRY_BUDGET`]. The SDK's default (8 retries
/// within 60 s) held each call to an unreachable queue service for about a minute, so during an Azurite
/// outage a DeadLetter stayed Ready=True for a minute before it could say CloudUnavailable (found by
/// the Azurite outage test, tests/it/faults_outage.rs); the callers' own backoff (the controller's per
/// object, the workers' per receive loop) decides what happens after.
fn client_options() -> QueueClientOptions {
    let budget = i64::try_from(CALL_RETRY_BUDGET.as_secs()).unwrap_or(8);
    let retry = ExponentialRetryOptions {
        initial_delay: azure_core::time::Duration::milliseconds(200),
        max_retries: 3,
        max_total_elapsed: azure_core::time::Duration::seconds(budget),
        max_delay: azure_core::time::Duration::seconds(2),
    };
    QueueClientOptions {
        client_options: ClientOptions {
            retry: RetryOptions::exponential(retry),
            ..ClientOptions::default()
        },
        ..QueueClientOptions::default()
    }
}

/// A URL without its query (which holds the SAS signature).
pub fn unsigned(url: &Url) -> String {
    let mut url = url.clone();
    url.set_query(None);
    url.to_string()
}
