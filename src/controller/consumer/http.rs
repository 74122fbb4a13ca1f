//! The HTTP source of a Consumer (the order endpoint), pure: the worker's security settings
//! (`source.http.auth`, `.limits`, `.tls` of `worker.yaml`) with the Secrets as mounted files, the
//! Secret volumes, the NetworkPolicy that admits only the allowed peers to the order port and only the
//! monitoring namespace to the metrics port, and the `Authenticated` condition.

use std::{collections::BTreeMap, path::PathBuf};

use k8s_openapi::{
    api::{
        core::v1::{SecretVolumeSource, Volume, VolumeMount},
        networking::v1::{
            NetworkPolicy, NetworkPolicyIngressRule, NetworkPolicyPeer, NetworkPolicyPort, NetworkPolicySpec,
        },
    },
    apimachinery::pkg::{apis::meta::v1::LabelSelector, util::intstr::IntOrString},
};
use kube::ResourceExt;

use super::render::{Children, METRICS_PORT, WorkerOwner};
use crate::{
    api::{
        Consumer,
        http_source::{AuthMode, HttpSource},
    },
    controller::conditions::Desired,
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
/// The label Kubernetes puts on every Namespace with its name.
const NAMESPACE_NAME_LABEL: &str = "kubernetes.io/metadata.name";

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

/// Same namespace only: the default of `allowFrom`.
fn same_namespace() -> Vec<NetworkPolicyPeer> {
    vec![NetworkPolicyPeer {
        pod_selector: Some(LabelSelector::default()),
        ..NetworkPolicyPeer::default()
    }]
}

fn tcp(port: i32) -> Option<Vec<NetworkPolicyPort>> {
    Some(vec![NetworkPolicyPort {
        port: Some(IntOrString::Int(port)),
        protocol: Some("TCP".to_owned()),
        ..NetworkPolicyPort::default()
    }])
}

/// The NetworkPolicy of a Consumer's workers: ingress to the metrics port from the monitoring namespace
/// only, to an HTTP Consumer's order port from `allowFrom` (default the Consumer's namespace), nothing
/// else. Egress is not restricted here (the workers reach the clouds and the issuer's JWKS).
pub fn network_policy(
    owner: &WorkerOwner,
    http: Option<&HttpSource>,
    monitoring_namespace: Option<&str>,
) -> NetworkPolicy {
    let mut rules: Vec<_> = http
        .map(|http| NetworkPolicyIngressRule {
            from: Some(http.allow_from.clone().unwrap_or_else(same_namespace)),
            ports: tcp(http.port),
        })
        .into_iter()
        .collect();
    if let Some(monitoring) = monitoring_namespace.filter(|n| !n.is_empty()) {
        rules.push(NetworkPolicyIngressRule {
            from: Some(vec![NetworkPolicyPeer {
                namespace_selector: Some(LabelSelector {
                    match_labels: Some(BTreeMap::from([(
                        NAMESPACE_NAME_LABEL.to_owned(),
                        monitoring.to_owned(),
                    )])),
                    match_expressions: None,
                }),
                ..NetworkPolicyPeer::default()
            }]),
            ports: tcp(i32::from(METRICS_PORT)),
        });
    }
    NetworkPolicy {
        metadata: owner.meta(),
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(LabelSelector {
                match_labels: Some(owner.selector.clone()),
                match_expressions: None,
            }),
            policy_types: Some(vec!["Ingress".to_owned()]),
            ingress: Some(rules),
            egress: None,
        }),
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
