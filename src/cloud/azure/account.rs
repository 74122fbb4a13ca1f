//! A storage account and the queue clients signed with its key: what the controller's queue management
//! (`storage_queues`) and the message handles (`queue`) both need.

use std::time::Duration;

use azure_core::http::Url;
use azure_storage_queue::QueueClient;

use super::{error::from_azure, storage_sas::AccountSas};
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
    QueueClient::new(signed, None, None).map_err(|e| from_azure(operation(), e))
}

/// A URL without its query (which holds the SAS signature).
pub fn unsigned(url: &Url) -> String {
    let mut url = url.clone();
    url.set_query(None);
    url.to_string()
}
