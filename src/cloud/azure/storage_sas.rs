//! Account shared access signatures (SAS) for Azure Storage.
//!
//! The official `azure_storage_queue` client authenticates with an Entra ID token (HTTPS only) or with a SAS
//! already in the URL; it has no shared-key signing. Tributary reads storage account keys from referenced
//! Secrets (and Azurite only has its well-known key), so it signs a short-lived account SAS itself and hands
//! the client a SAS-scoped URL. The format is the documented account SAS for service version 2020-12-06 and
//! later: the string to sign lists account, permissions, services, resource types, start, expiry, IP range,
//! protocol, version and encryption scope, each followed by a newline.

use base64::{Engine as _, engine::general_purpose::STANDARD};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use time::{OffsetDateTime, format_description::FormatItem, macros::format_description};
use url::Url;

/// The storage service version the signature is computed for (`sv`).
pub const SAS_VERSION: &str = "2025-11-05";

const SAS_TIME: &[FormatItem<'static>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");

/// Errors building a shared access signature.
#[derive(Debug, thiserror::Error)]
pub enum SasError {
    /// The account key is not valid base64, so no signature can be made with it.
    #[error("storage account key for account {account:?} is not valid base64: {source}")]
    InvalidKey {
        /// The storage account name.
        account: String,
        /// The decoding error.
        source: base64::DecodeError,
    },
    /// A time could not be formatted in the ISO 8601 form a SAS needs.
    #[error("cannot format SAS time: {0}")]
    Time(#[from] time::error::Format),
}

/// What an account SAS grants. Fields hold the single-letter codes of the Storage REST API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountSas {
    /// Storage account name, e.g. `devstoreaccount1`.
    pub account: String,
    /// Permissions (`sp`), e.g. `raup` for read, add, update, process.
    pub permissions: String,
    /// Services (`ss`): `q` for queues, `b` blobs, `t` tables, `f` files.
    pub services: String,
    /// Resource types (`srt`): `s` service, `c` container (queue), `o` object (message).
    pub resource_types: String,
    /// When the signature stops being valid.
    pub expiry: OffsetDateTime,
    /// Allowed protocols (`spr`): `https` or `https,http`.
    pub protocol: String,
}

impl AccountSas {
    /// A SAS for every queue operation (service, queues and messages) on `account`, valid until `expiry`.
    /// Plain HTTP is allowed only because emulators listen on it; production endpoints are HTTPS anyway.
    pub fn queues_full_access(account: &str, expiry: OffsetDateTime) -> Self {
        Self {
            account: account.to_owned(),
            permissions: "rwdlacup".to_owned(),
            services: "q".to_owned(),
            resource_types: "sco".to_owned(),
            expiry,
            protocol: "https,http".to_owned(),
        }
    }

    /// The exact text that is signed, as the service recomputes it.
    pub fn string_to_sign(&self) -> Result<String, SasError> {
        let expiry = self.expiry.format(SAS_TIME)?;
        Ok([
            self.account.as_str(),
            &self.permissions,
            &self.services,
            &self.resource_types,
            "", // start: valid immediately
            &expiry,
            "", // no IP range restriction
            &self.protocol,
            SAS_VERSION,
            "", // no encryption scope
            "",
        ]
        .join("\n"))
    }

    /// The SAS query string (without a leading `?`), signed with the base64 account `key`.
    pub fn query(&self, key: &str) -> Result<String, SasError> {
        let key_bytes = STANDARD.decode(key).map_err(|source| SasError::InvalidKey {
            account: self.account.clone(),
            source,
        })?;
        // HMAC-SHA256 accepts keys of any length, so `new_from_slice` cannot fail here.
        let mut mac = Hmac::<Sha256>::new_from_slice(&key_bytes).map_err(|_| SasError::InvalidKey {
            account: self.account.clone(),
            source: base64::DecodeError::InvalidLength(key_bytes.len()),
        })?;
        mac.update(self.string_to_sign()?.as_bytes());
        let signature = STANDARD.encode(mac.finalize().into_bytes());
        let mut query = url::form_urlencoded::Serializer::new(String::new());
        query
            .append_pair("sv", SAS_VERSION)
            .append_pair("ss", &self.services)
            .append_pair("srt", &self.resource_types)
            .append_pair("sp", &self.permissions)
            .append_pair("se", &self.expiry.format(SAS_TIME)?)
            .append_pair("spr", &self.protocol)
            .append_pair("sig", &signature);
        Ok(query.finish())
    }

    /// `base` (a service or queue URL) with this SAS appended as its query.
    pub fn sign_url(&self, base: &Url, key: &str) -> Result<Url, SasError> {
        let mut url = base.clone();
        url.set_query(Some(&self.query(key)?));
        Ok(url)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    /// Azurite's well-known development key.
    const DEV_KEY: &str =
        "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

    fn sas() -> AccountSas {
        AccountSas::queues_full_access("devstoreaccount1", datetime!(2030-01-02 03:04:05 UTC))
    }

    #[test]
    fn string_to_sign_follows_the_2020_12_06_layout() {
        assert_eq!(
            sas().string_to_sign().expect("formats"),
            "devstoreaccount1\nrwdlacup\nq\nsco\n\n2030-01-02T03:04:05Z\n\nhttps,http\n2025-11-05\n\n"
        );
    }

    #[test]
    fn signature_matches_an_independent_hmac() {
        // Expected value computed with Python's hmac/hashlib over the string above and the decoded key.
        let query = sas().query(DEV_KEY).expect("signs");
        assert!(query.starts_with("sv=2025-11-05&ss=q&srt=sco&sp=rwdlacup&se=2030-01-02T03%3A04%3A05Z"));
        assert!(
            query.ends_with("&sig=rJYhud4rEDC3C%2BxIcsqtA963FsoiqLX0dDk%2FugCbv08%3D"),
            "{query}"
        );
    }

    #[test]
    fn a_key_that_is_not_base64_is_refused_with_the_account_named() {
        let err = sas().query("not base64!").expect_err("must fail");
        assert!(err.to_string().contains("devstoreaccount1"), "{err}");
    }
}
