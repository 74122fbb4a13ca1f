//! The `delivery` block of `worker.yaml`: where processor `container` delivers each message (the user's
//! container beside the worker in the pod), how long one delivery may take, how many may be in flight,
//! and what the CloudEvent says about the message's origin.

use serde::{Deserialize, Serialize};

/// The longest per-request timeout, in seconds (the Consumer API's bound).
pub const MAX_TIMEOUT_SECONDS: u32 = 900;
/// The most deliveries in flight per pod (the Consumer API's bound).
pub const MAX_CONCURRENCY: u32 = 1000;

/// Delivering messages to the user's container over HTTP, as CloudEvents in binary mode.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryConfig {
    /// Where each message is POSTed: `http://127.0.0.1:<port><path>`.
    pub url: String,
    /// What must answer 2xx for the worker to be ready (the container's readiness path); none: always.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_url: Option<String>,
    /// How long one delivery may take, from sending the request to the end of the response.
    #[serde(default = "default_timeout")]
    pub timeout_seconds: u32,
    /// Deliveries in flight at once in this worker.
    #[serde(default = "default_concurrency")]
    pub concurrency: u32,
    /// The message attribute whose value becomes `ce-type`.
    #[serde(default = "default_type_attribute")]
    pub type_attribute: String,
    /// `ce-source`: the API path of the Queue, DeviceStream or Consumer the messages come from.
    pub source: String,
}

fn default_timeout() -> u32 {
    30
}
fn default_concurrency() -> u32 {
    8
}
fn default_type_attribute() -> String {
    "type".to_owned()
}

impl DeliveryConfig {
    /// The rules serde cannot express; the error names the field and the rule.
    pub fn validate(&self) -> Result<(), String> {
        http_url("delivery.url", &self.url)?;
        if let Some(ready) = &self.ready_url {
            http_url("delivery.readyUrl", ready)?;
        }
        if !(1..=MAX_TIMEOUT_SECONDS).contains(&self.timeout_seconds) {
            return Err(format!(
                "delivery.timeoutSeconds must be between 1 and {MAX_TIMEOUT_SECONDS}"
            ));
        }
        if !(1..=MAX_CONCURRENCY).contains(&self.concurrency) {
            return Err(format!(
                "delivery.concurrency must be between 1 and {MAX_CONCURRENCY}"
            ));
        }
        if self.type_attribute.is_empty() {
            return Err("delivery.typeAttribute must not be empty".to_owned());
        }
        if self.source.is_empty() {
            return Err("delivery.source must not be empty (it is ce-source)".to_owned());
        }
        Ok(())
    }
}

/// `value` as an `http://` URL, or an error naming `field`.
fn http_url(field: &str, value: &str) -> Result<url::Url, String> {
    let url = url::Url::parse(value).map_err(|e| format!("{field} must be a URL: {e}"))?;
    if url.scheme() != "http" || url.host_str().is_none() {
        return Err(format!(
            "{field} must be an http:// URL with a host (the container is reached in the pod)"
        ));
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> DeliveryConfig {
        serde_yaml_ng::from_str(
            "url: http://127.0.0.1:8080/\nsource: /apis/tributary.dev/v1alpha1/namespaces/n/queues/q\n",
        )
        .unwrap()
    }

    #[test]
    fn defaults_follow_the_contract() {
        let config = config();
        assert_eq!(
            (
                config.timeout_seconds,
                config.concurrency,
                config.type_attribute.as_str()
            ),
            (30, 8, "type")
        );
        assert_eq!(config.ready_url, None);
        config.validate().unwrap();
    }

    type Change = fn(&mut DeliveryConfig);

    #[test]
    fn bad_values_are_refused_by_field() {
        let cases: [(Change, &str); 6] = [
            (|c| c.url = "not a url".into(), "delivery.url"),
            (|c| c.url = "https://127.0.0.1/".into(), "delivery.url"),
            (|c| c.ready_url = Some("ftp://x/".into()), "delivery.readyUrl"),
            (|c| c.timeout_seconds = 901, "delivery.timeoutSeconds"),
            (|c| c.concurrency = 0, "delivery.concurrency"),
            (|c| c.type_attribute.clear(), "delivery.typeAttribute"),
        ];
        for (change, field) in cases {
            let mut config = config();
            change(&mut config);
            let error = config.validate().unwrap_err();
            assert!(error.starts_with(field), "{error}");
        }
    }
}
