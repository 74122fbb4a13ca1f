//! The order endpoint's security settings in `worker.yaml` (`source.http.auth`, `.limits`, `.tls`), as the
//! Consumer reconciler renders them from `spec.source.http`: file paths where the Secrets are mounted,
//! never a key or a hash.

use std::{collections::BTreeMap, net::SocketAddr, path::PathBuf, time::Duration};

use serde::{Deserialize, Serialize};

use crate::api::http_source::HttpLimits;

/// Serving HTTP: the order endpoint (`source.http` of `worker.yaml`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpSource {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Who may call. Omitted: nobody (every request 401), never anonymous by accident.
    #[serde(default)]
    pub auth: AuthConfig,
    /// Body, time, concurrency and rate limits (safe defaults).
    #[serde(default)]
    pub limits: LimitsConfig,
    /// Serve HTTPS with these files.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsFiles>,
}

impl HttpSource {
    /// The rules serde cannot express; the error names the field.
    pub fn validate(&self) -> Result<(), String> {
        self.limits.validate()?;
        match &self.auth.jwt {
            Some(jwt) => jwt.validate().map_err(|e| format!("source.http.{e}")),
            None => Ok(()),
        }
    }
}

/// How requests authenticate. The default accepts nobody: a worker configured without credentials
/// refuses every request rather than serving anonymously.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuthConfig {
    /// Serve without authentication, every request as principal `anonymous:<namespace>/<consumer>`
    /// (`auth.mode: none`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub anonymous: bool,
    /// API keys: a directory holding one file per key (a mounted Secret).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_keys: Option<ApiKeyFiles>,
    /// JWT bearer tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwt: Option<JwtConfig>,
}

/// Where the hashed API keys are.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApiKeyFiles {
    /// The directory: file name = key name, content = `sha256:<hex>[ principal=<name>]`. Files whose
    /// name starts with `.` (the kubelet's `..data` links) are skipped. A missing directory means no key.
    pub dir: PathBuf,
    /// How often the directory is read again, in seconds (a revoked key is refused within this).
    #[serde(default = "default_reload_seconds")]
    pub reload_seconds: u64,
}

fn default_reload_seconds() -> u64 {
    2
}

/// JWT validation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JwtConfig {
    /// Expected `iss`.
    pub issuer: String,
    /// Accepted `aud` values.
    pub audiences: Vec<String>,
    /// JWKS URL; default from the issuer's discovery document.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks_uri: Option<String>,
    /// Claims that must carry these values.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub required_claims: BTreeMap<String, String>,
    /// The claim naming the principal.
    #[serde(default = "default_principal_claim")]
    pub principal_claim: String,
    /// Accepted `alg` values (asymmetric only).
    #[serde(default = "default_algorithms")]
    pub algorithms: Vec<String>,
}

fn default_principal_claim() -> String {
    "sub".to_owned()
}

fn default_algorithms() -> Vec<String> {
    vec!["RS256".to_owned()]
}

/// The asymmetric algorithms a JWT may use; `none` and HMAC (`HS*`) are never among them, so a token
/// signed with the issuer's public key as an HMAC secret cannot pass.
pub const ASYMMETRIC_ALGORITHMS: [&str; 9] = [
    "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA",
];

/// Whether `url` may be fetched for keys: https, or plain http on the loopback address only.
pub fn is_allowed_key_url(url: &str) -> bool {
    let Ok(parsed) = url::Url::parse(url) else {
        return false;
    };
    match parsed.scheme() {
        "https" => parsed.host().is_some(),
        "http" => match parsed.host() {
            Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
            Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
            Some(url::Host::Domain(name)) => name == "localhost",
            None => false,
        },
        _ => false,
    }
}

impl JwtConfig {
    /// Settings for `issuer` and `audience` with the defaults (RS256, principal `sub`): for tests.
    pub fn for_issuer(issuer: &str, audience: &str) -> Self {
        Self {
            issuer: issuer.to_owned(),
            audiences: vec![audience.to_owned()],
            jwks_uri: None,
            required_claims: BTreeMap::new(),
            principal_claim: default_principal_claim(),
            algorithms: default_algorithms(),
        }
    }

    /// The rules serde cannot express; the error names the field.
    pub fn validate(&self) -> Result<(), String> {
        if !is_allowed_key_url(&self.issuer) {
            return Err(
                "auth.jwt.issuer must be an https:// URL (http:// only on the loopback address)".into(),
            );
        }
        if let Some(uri) = &self.jwks_uri
            && !is_allowed_key_url(uri)
        {
            return Err(
                "auth.jwt.jwksUri must be an https:// URL (http:// only on the loopback address)".into(),
            );
        }
        if self.audiences.is_empty() {
            return Err("auth.jwt.audiences must name at least one audience".into());
        }
        if self.algorithms.is_empty() {
            return Err("auth.jwt.algorithms must name at least one algorithm".into());
        }
        if let Some(bad) = self
            .algorithms
            .iter()
            .find(|a| !ASYMMETRIC_ALGORITHMS.contains(&a.as_str()))
        {
            return Err(format!(
                "auth.jwt.algorithms: {bad} is not accepted (one of {})",
                ASYMMETRIC_ALGORITHMS.join(", ")
            ));
        }
        Ok(())
    }
}

/// Limits of the endpoint. A field left out takes the Consumer's default (`spec.source.http.limits`,
/// declared once, in the API).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct LimitsConfig {
    /// Largest body in bytes.
    pub max_body_bytes: usize,
    /// Longest a request may take, in milliseconds.
    pub request_timeout_millis: u64,
    /// Requests worked on at once by this process.
    pub max_concurrent_requests: usize,
    /// Steady requests per second per principal.
    pub requests_per_second: u32,
    /// Token bucket size per principal.
    pub burst: u32,
}

impl From<&HttpLimits> for LimitsConfig {
    /// The worker's limits for a Consumer's (which its schema keeps positive).
    fn from(limits: &HttpLimits) -> Self {
        let positive = |v: i32| u32::try_from(v.max(1)).unwrap_or(1);
        Self {
            max_body_bytes: positive(limits.max_body_bytes) as usize,
            request_timeout_millis: u64::from(positive(limits.request_timeout_seconds)) * 1000,
            max_concurrent_requests: positive(limits.max_concurrent_requests) as usize,
            requests_per_second: positive(limits.requests_per_second),
            burst: positive(limits.burst),
        }
    }
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self::from(&HttpLimits::default())
    }
}

impl LimitsConfig {
    /// The request timeout.
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_millis)
    }

    /// Every limit must be positive; the error names the field.
    pub fn validate(&self) -> Result<(), String> {
        let checks = [
            ("maxBodyBytes", self.max_body_bytes == 0),
            ("requestTimeoutMillis", self.request_timeout_millis == 0),
            ("maxConcurrentRequests", self.max_concurrent_requests == 0),
            ("requestsPerSecond", self.requests_per_second == 0),
            ("burst", self.burst == 0),
        ];
        match checks.iter().find(|(_, zero)| *zero) {
            Some((field, _)) => Err(format!("source.http.limits.{field} must be at least 1")),
            None => Ok(()),
        }
    }
}

/// The certificate and key files of HTTPS (a mounted `kubernetes.io/tls` Secret).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TlsFiles {
    /// PEM certificate chain.
    pub cert_file: PathBuf,
    /// PEM private key.
    pub key_file: PathBuf,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_urls_must_be_https_except_on_loopback() {
        for ok in [
            "https://issuer.example/jwks",
            "http://127.0.0.1:8080/jwks",
            "http://[::1]/k",
            "http://localhost:1/x",
        ] {
            assert!(is_allowed_key_url(ok), "{ok}");
        }
        for bad in [
            "http://issuer.example/jwks",
            "http://10.0.0.1/jwks",
            "ftp://x/y",
            "not a url",
            "file:///etc/passwd",
        ] {
            assert!(!is_allowed_key_url(bad), "{bad}");
        }
    }

    #[test]
    fn jwt_settings_refuse_hmac_none_and_plain_http() {
        let good = JwtConfig::for_issuer("https://issuer.example", "orders");
        good.validate().unwrap();
        for (alg, field) in [("HS256", "algorithms"), ("none", "algorithms")] {
            let bad = JwtConfig {
                algorithms: vec![alg.into()],
                ..good.clone()
            };
            assert!(bad.validate().unwrap_err().contains(field));
        }
        let plain = JwtConfig {
            issuer: "http://issuer.example".into(),
            ..good.clone()
        };
        assert!(plain.validate().unwrap_err().starts_with("auth.jwt.issuer"));
        let no_audience = JwtConfig {
            audiences: vec![],
            ..good
        };
        assert!(no_audience.validate().unwrap_err().contains("audiences"));
    }

    #[test]
    fn limits_default_safely_and_refuse_zero() {
        let limits: LimitsConfig = serde_yaml_ng::from_str("{}").unwrap();
        assert_eq!(limits.max_body_bytes, 64 * 1024);
        assert_eq!(limits.timeout(), Duration::from_secs(29));
        limits.validate().unwrap();
        let zero: LimitsConfig = serde_yaml_ng::from_str("{burst: 0}").unwrap();
        assert_eq!(
            zero.validate().unwrap_err(),
            "source.http.limits.burst must be at least 1"
        );
    }
}
