//! The user's processor container of a Consumer (`spec.container`), run beside the worker as a
//! Kubernetes native sidecar: an init container with `restartPolicy: Always`, so it starts before the
//! worker (which starts once the sidecar's startup probe passes) and stops after it, and the worker
//! delivers each message to it on the pod's loopback.

use k8s_openapi::{
    api::core::v1::{
        Capabilities, Container, ContainerPort, EnvVar, EnvVarSource, HTTPGetAction, Probe, SeccompProfile,
        SecretKeySelector, SecurityContext,
    },
    apimachinery::pkg::util::intstr::IntOrString,
};

use crate::api::consumer::{ContainerEnv, ProcessorContainer};

/// The sidecar's name in the pod.
pub const SIDECAR_NAME: &str = "processor";
/// The variable carrying `spec.container.port` (the convention of Knative and Cloud Run), unless the
/// user sets it.
pub const PORT_ENV: &str = "PORT";
/// Seconds the sidecar gets to answer its readiness path the first time before it is restarted.
const STARTUP_SECONDS: i32 = 120;
/// Seconds between startup probes.
const STARTUP_PERIOD: i32 = 2;

/// The restricted Pod Security Standard for the user's container. The root filesystem stays writable
/// (an application's own temporary files); the pod's user (65532) applies.
fn restricted() -> SecurityContext {
    SecurityContext {
        allow_privilege_escalation: Some(false),
        capabilities: Some(Capabilities {
            drop: Some(vec!["ALL".to_owned()]),
            add: None,
        }),
        run_as_non_root: Some(true),
        seccomp_profile: Some(SeccompProfile {
            type_: "RuntimeDefault".to_owned(),
            localhost_profile: None,
        }),
        ..SecurityContext::default()
    }
}

/// One variable: a literal, or a Secret's key (the pod waits for the Secret: not optional).
fn env_var(env: &ContainerEnv) -> EnvVar {
    EnvVar {
        name: env.name.clone(),
        value: env.value.clone(),
        value_from: env.secret_key_ref.as_ref().map(|secret| EnvVarSource {
            secret_key_ref: Some(SecretKeySelector {
                name: secret.name.clone(),
                key: secret.key.clone(),
                optional: Some(false),
            }),
            ..EnvVarSource::default()
        }),
    }
}

/// The user's variables, and `PORT` unless they set it.
fn environment(spec: &ProcessorContainer) -> Vec<EnvVar> {
    let mut env: Vec<EnvVar> = spec.env.iter().map(env_var).collect();
    if !spec.env.iter().any(|e| e.name == PORT_ENV) {
        env.push(EnvVar {
            name: PORT_ENV.to_owned(),
            value: Some(spec.port.to_string()),
            value_from: None,
        });
    }
    env
}

/// An HTTP GET of the readiness path on the container's port.
fn probe(spec: &ProcessorContainer, period: i32, failures: i32) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some(spec.readiness_path.clone()),
            port: IntOrString::Int(spec.port),
            ..HTTPGetAction::default()
        }),
        period_seconds: Some(period),
        failure_threshold: Some(failures),
        ..Probe::default()
    }
}

/// The native sidecar running `spec`: its image, args, env (Secrets by reference), resources and port;
/// a startup probe (the worker starts after it passes) and a readiness probe on `readinessPath`.
pub fn sidecar_container(spec: &ProcessorContainer) -> Container {
    Container {
        name: SIDECAR_NAME.to_owned(),
        image: Some(spec.image.clone()),
        args: (!spec.args.is_empty()).then(|| spec.args.clone()),
        env: Some(environment(spec)),
        ports: Some(vec![ContainerPort {
            name: Some(SIDECAR_NAME.to_owned()),
            container_port: spec.port,
            ..ContainerPort::default()
        }]),
        restart_policy: Some("Always".to_owned()),
        startup_probe: Some(probe(spec, STARTUP_PERIOD, STARTUP_SECONDS / STARTUP_PERIOD)),
        readiness_probe: Some(probe(spec, 5, 3)),
        resources: spec.resources.clone(),
        security_context: Some(restricted()),
        ..Container::default()
    }
}
