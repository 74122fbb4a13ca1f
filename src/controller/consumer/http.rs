//! The HTTP source of a Consumer (the order endpoint), pure: the worker's security settings
//! (`source.http.auth`, `.limits`, `.tls` of `worker.yaml`) with the Secrets as mounted files, the
//! Secret volumes, and the `Authenticated` condition. The NetworkPolicy that admits only the allowed
//! peers to the order port is the workers' ([`crate::controller::resources::workers::network_policy`]).

use std::path::PathBuf;

use k8s_openapi::api::core::v1::{SecretVolumeSource, Volume, VolumeMount};
use kube::ResourceExt;

use crate::{
    api::{
        Consumer,
        http_source::{AuthMode, HttpSource},
    },
    controller::{driver::conditions::Desired, resources::workers::Children},
    worker::config::{self, ApiKeyFiles, AuthConfig, JwtConfig, LimitsConfig, TlsFiles},
};

/// Where the API key Secret is mounted in the worker.
pub const API_KEYS_DIR: &str = "/var/run/tributary/api-keys";
/// Where the TLS Secret is mounted.
pub const TLS_DIR: &str = "/var/run/tributary/tls";
/// The condition type saying how the endpoint authenticates.
pub const AUTHENTICATED: &str = "Authenticated";
/// Reason of `Authenticated=False` under `auth.mode: none`.
pub const ANONYMOUS_ACCESS: &str = "AnonymousAccess";
/// Reason of `Authenticated=False` while the API key Secret does not exist.
pub const API_KEY_SECRET_MISSING: &str = "ApiKeySecretMissing";

/// The API key Secret of `consumer`, when it uses API keys: `auth.apiKeys.secretName`, else
/// `<consumer>-api-keys` (also when `auth` names neither API keys nor JWT).
pub fn api_key_secret(consumer: &Consumer) -> Option<String> {
    let http = consumer.spec.source.http.as_ref()?;
    let auth = &http.auth;
    if auth.mode == AuthMode::None || (auth.api_keys.is_none() && auth.jwt.is_some()) {
        return None;
    }
    Some(
        auth.api_keys
            .as_ref()
            .and_then(|k| k.secret_name.clone())
            .unwrap_or_else(|| format!("{}-api-keys", consumer.name_any())),
    )
}

/// The worker's `source.http` for `http`.
pub fn worker_http(consumer: &Consumer, http: &HttpSource) -> config::HttpSource {
    let auth = &http.auth;
    let jwt = auth.jwt.as_ref().map(|jwt| JwtConfig {
        issuer: jwt.issuer.clone(),
        audiences: jwt.audiences.clone(),
        jwks_uri: jwt.jwks_uri.clone(),
        required_claims: jwt.required_claims.clone(),
        principal_claim: jwt.principal_claim.clone(),
        algorithms: jwt.algorithms.iter().map(|a| format!("{a:?}")).collect(),
    });
    config::HttpSource {
        listen: std::net::SocketAddr::from(([0, 0, 0, 0], u16::try_from(http.port).unwrap_or(8080))),
        auth: AuthConfig {
            anonymous: auth.mode == AuthMode::None,
            api_keys: api_key_secret(consumer).map(|_| ApiKeyFiles {
                dir: PathBuf::from(API_KEYS_DIR),
                reload_seconds: 2,
            }),
            jwt,
        },
        limits: LimitsConfig::from(&http.limits),
        tls: http.tls.as_ref().map(|_| TlsFiles {
            cert_file: PathBuf::from(format!("{TLS_DIR}/tls.crt")),
            key_file: PathBuf::from(format!("{TLS_DIR}/tls.key")),
        }),
    }
}

fn secret_volume(name: &str, secret: &str, optional: bool) -> Volume {
    Volume {
        name: name.to_owned(),
        secret: Some(SecretVolumeSource {
            secret_name: Some(secret.to_owned()),
            optional: Some(optional),
            default_mode: Some(0o440),
            ..SecretVolumeSource::default()
        }),
        ..Volume::default()
    }
}

impl Children {
    /// Mounts the API key Secret (optional: the pods start without it and refuse every request until it
    /// exists; the kubelet updates the files when it changes) and the TLS Secret into the workers.
    pub fn with_http_secrets(mut self, consumer: &Consumer) -> Self {
        let Some(http) = consumer.spec.source.http.as_ref() else {
            return self;
        };
        let mut mounts = Vec::new();
        if let Some(secret) = api_key_secret(consumer) {
            mounts.push((secret_volume("api-keys", &secret, true), API_KEYS_DIR));
        }
        if let Some(tls) = &http.tls {
            mounts.push((secret_volume("tls", &tls.secret_ref.name, false), TLS_DIR));
        }
        let Some(pod) = self
            .deployment
            .spec
            .as_mut()
            .and_then(|s| s.template.spec.as_mut())
        else {
            return self;
        };
        for (volume, path) in mounts {
            for container in &mut pod.containers {
                container
                    .volume_mounts
                    .get_or_insert_with(Vec::new)
                    .push(VolumeMount {
                        name: volume.name.clone(),
                        mount_path: path.to_owned(),
                        read_only: Some(true),
                        ..VolumeMount::default()
                    });
            }
            pod.volumes.get_or_insert_with(Vec::new).push(volume);
        }
        self
    }
}

/// The `Authenticated` condition of an HTTP Consumer: `None` for other sources. `key_secret_exists` is
/// whether the API key Secret exists (`None` when it uses none).
pub fn authenticated(consumer: &Consumer, key_secret_exists: Option<bool>) -> Option<Desired> {
    let http = consumer.spec.source.http.as_ref()?;
    let (status, reason, message) = if http.auth.mode == AuthMode::None {
        (
            "False",
            ANONYMOUS_ACCESS,
            "spec.source.http.auth.mode is none: anyone who reaches the endpoint may place orders".to_owned(),
        )
    } else if key_secret_exists == Some(false) {
        let secret = api_key_secret(consumer).unwrap_or_default();
        (
            "False",
            API_KEY_SECRET_MISSING,
            format!(
                "API key Secret {secret} does not exist: every request is refused (401) until it does; \
                 make a key with `tributary apikey new --name <name>`"
            ),
        )
    } else {
        let mut methods = Vec::new();
        if let Some(secret) = api_key_secret(consumer) {
            methods.push(format!("API keys from Secret {secret}"));
        }
        if let Some(jwt) = &http.auth.jwt {
            methods.push(format!("JWTs from {}", jwt.issuer));
        }
        (
            "True",
            "Required",
            format!("requests must authenticate: {}", methods.join(", ")),
        )
    };
    Some(Desired {
        type_: AUTHENTICATED,
        status,
        reason,
        message,
    })
}

#[cfg(test)]
#[path = "http_tests.rs"]
mod tests;
