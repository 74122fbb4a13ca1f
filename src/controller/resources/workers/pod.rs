//! The pod of a set of workers: the worker container with its configuration mounted, probes on the
//! metrics port and the `restricted` Pod Security Standard, under the workers' own ServiceAccount; and
//! for a Consumer with `spec.container` the user's container as a native sidecar ([`super::sidecar`]).

use std::collections::BTreeMap;

use k8s_openapi::{
    api::core::v1::{
        Capabilities, ConfigMapVolumeSource, Container, ContainerPort, EnvFromSource, EnvVar, HTTPGetAction,
        PodSecurityContext, PodSpec, Probe, ResourceRequirements, SeccompProfile, SecretEnvSource,
        SecurityContext, Volume, VolumeMount,
    },
    apimachinery::pkg::{api::resource::Quantity, util::intstr::IntOrString},
};

use super::sidecar::sidecar_container;
use super::{CONFIG_DIR, DRAIN_SECONDS, METRICS_PORT, WorkerOwner, WorkerSettings};
use crate::worker::config::FILE_NAME;

/// The restricted Pod Security Standard for the worker container.
fn restricted() -> SecurityContext {
    SecurityContext {
        allow_privilege_escalation: Some(false),
        capabilities: Some(Capabilities {
            drop: Some(vec!["ALL".to_owned()]),
            add: None,
        }),
        read_only_root_filesystem: Some(true),
        run_as_non_root: Some(true),
        seccomp_profile: Some(SeccompProfile {
            type_: "RuntimeDefault".to_owned(),
            localhost_profile: None,
        }),
        ..SecurityContext::default()
    }
}

/// The worker container's ports: metrics, and the HTTP source's.
fn ports(http_port: Option<i32>) -> Vec<ContainerPort> {
    let mut ports = vec![ContainerPort {
        name: Some("metrics".to_owned()),
        container_port: i32::from(METRICS_PORT),
        ..ContainerPort::default()
    }];
    if let Some(port) = http_port {
        ports.push(ContainerPort {
            name: Some("http".to_owned()),
            container_port: port,
            ..ContainerPort::default()
        });
    }
    ports
}

/// A probe of `path` on the metrics port.
fn probe(path: &str) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.to_owned()),
            port: IntOrString::String("metrics".to_owned()),
            ..HTTPGetAction::default()
        }),
        period_seconds: Some(10),
        ..Probe::default()
    }
}

/// The startup probe: `/healthz` every second, for up to a minute. Without it the kubelet's first
/// readiness probe comes as the container starts, before the worker listens, and the next one only a
/// period (10 s) later: a new pod (a scale-up, a replacement) would wait that long to get traffic or
/// count as ready. With it, readiness is probed as soon as the worker answers.
fn startup_probe() -> Probe {
    Probe {
        period_seconds: Some(1),
        failure_threshold: Some(60),
        ..probe("/healthz")
    }
}

/// The worker container's requests and limits when its owner sets none: enough for the built-in
/// processors at their default batch sizes (the device processor's 32 MiB batches are an eighth of the
/// memory limit).
pub fn default_resources() -> ResourceRequirements {
    let quantity = |q: &str| Quantity(q.to_owned());
    ResourceRequirements {
        requests: Some(BTreeMap::from([
            ("cpu".to_owned(), quantity("50m")),
            ("memory".to_owned(), quantity("64Mi")),
        ])),
        limits: Some(BTreeMap::from([("memory".to_owned(), quantity("256Mi"))])),
        ..ResourceRequirements::default()
    }
}

/// The memory limit of `resources` in bytes, if it sets one that parses (`256Mi`, `1G`, `536870912`,
/// `1e9`); a quantity below one byte counts as none.
pub fn memory_limit_bytes(resources: &ResourceRequirements) -> Option<u64> {
    let quantity = resources.limits.as_ref()?.get("memory")?;
    let text = quantity.0.trim();
    let split = text
        .find(|c: char| c.is_ascii_alphabetic() && c != 'e' && c != 'E')
        .unwrap_or(text.len());
    let (number, suffix) = text.split_at(split);
    let factor: f64 = match suffix {
        "" => 1.0,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        "Ki" => 1024.0,
        "Mi" => 1024.0 * 1024.0,
        "Gi" => 1024.0 * 1024.0 * 1024.0,
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        "Ei" => 1024f64.powi(6),
        _ => return None,
    };
    let bytes = number.parse::<f64>().ok()? * factor;
    // Saturating float-to-int conversion; only positive, finite sizes count.
    (bytes.is_finite() && bytes >= 1.0).then_some(bytes as u64)
}

/// The worker container: the operator's image, its config mounted, the controller's environment, probes
/// on the metrics port, `restricted` security.
fn worker_container(owner: &WorkerOwner, settings: &WorkerSettings) -> Container {
    Container {
        name: "worker".to_owned(),
        image: Some(settings.image.clone()),
        args: Some(
            [
                "worker",
                "--config",
                &format!("{CONFIG_DIR}/{FILE_NAME}"),
                "--log-format",
                "json",
            ]
            .map(str::to_owned)
            .to_vec(),
        ),
        env: Some(
            settings
                .env
                .iter()
                .map(|(name, value)| EnvVar {
                    name: name.clone(),
                    value: Some(value.clone()),
                    value_from: None,
                })
                .collect(),
        ),
        env_from: settings.env_secret.as_ref().map(|name| {
            vec![EnvFromSource {
                secret_ref: Some(SecretEnvSource {
                    name: name.clone(),
                    optional: Some(true),
                }),
                ..EnvFromSource::default()
            }]
        }),
        ports: Some(ports(owner.http_port)),
        // `/readyz` fails while the worker is stalled (a dead letter it cannot send) and while the
        // user's container does not answer its readiness path.
        readiness_probe: Some(probe("/readyz")),
        liveness_probe: Some(probe("/healthz")),
        startup_probe: Some(startup_probe()),
        resources: Some(owner.resources.clone().unwrap_or_else(default_resources)),
        security_context: Some(restricted()),
        volume_mounts: Some(vec![VolumeMount {
            name: "config".to_owned(),
            mount_path: CONFIG_DIR.to_owned(),
            read_only: Some(true),
            ..VolumeMount::default()
        }]),
        ..Container::default()
    }
}

/// The pod of `owner`'s workers: the worker container (and the user's container as a native sidecar)
/// under the owner's own ServiceAccount.
pub(super) fn worker_pod(owner: &WorkerOwner, settings: &WorkerSettings) -> PodSpec {
    let name = owner.name.clone();
    PodSpec {
        service_account_name: Some(name.clone()),
        // Workers never call the Kubernetes API.
        automount_service_account_token: Some(false),
        termination_grace_period_seconds: Some(i64::try_from(DRAIN_SECONDS).unwrap_or(20) + 10),
        security_context: Some(PodSecurityContext {
            run_as_non_root: Some(true),
            run_as_user: Some(65_532),
            run_as_group: Some(65_532),
            // Secret volumes (API keys, TLS) are mounted 0440: group-owned by the worker's group, so
            // only the worker reads them.
            fs_group: Some(65_532),
            seccomp_profile: Some(SeccompProfile {
                type_: "RuntimeDefault".to_owned(),
                localhost_profile: None,
            }),
            ..PodSecurityContext::default()
        }),
        init_containers: owner.sidecar.as_ref().map(|spec| vec![sidecar_container(spec)]),
        containers: vec![worker_container(owner, settings)],
        volumes: Some(vec![Volume {
            name: "config".to_owned(),
            config_map: Some(ConfigMapVolumeSource {
                name: name.clone(),
                ..ConfigMapVolumeSource::default()
            }),
            ..Volume::default()
        }]),
        ..PodSpec::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limit(memory: &str) -> Option<u64> {
        memory_limit_bytes(&ResourceRequirements {
            limits: Some(BTreeMap::from([(
                "memory".to_owned(),
                Quantity(memory.to_owned()),
            )])),
            ..ResourceRequirements::default()
        })
    }

    #[test]
    fn memory_limits_parse_in_every_kubernetes_notation() {
        assert_eq!(limit("256Mi"), Some(256 * 1024 * 1024));
        assert_eq!(limit("1Gi"), Some(1024 * 1024 * 1024));
        assert_eq!(limit("512M"), Some(512_000_000));
        assert_eq!(limit("1.5Gi"), Some(1_610_612_736));
        assert_eq!(limit("536870912"), Some(536_870_912));
        assert_eq!(limit("1e9"), Some(1_000_000_000));
        assert_eq!(limit("12Xi"), None);
        assert_eq!(limit("500m"), None, "half a byte is no limit");
        assert_eq!(memory_limit_bytes(&default_resources()), Some(256 * 1024 * 1024));
        assert_eq!(memory_limit_bytes(&ResourceRequirements::default()), None);
    }
}
