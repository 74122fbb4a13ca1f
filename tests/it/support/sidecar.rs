//! The user's container of a Consumer with `spec.container`, run by the test bed as a local process.
//! The kwok nodes run no containers, and the test bed has no registry to pull the user's image from, so
//! as the workers run as `tributary worker` processes from the ConfigMap the controller rendered, the
//! sidecar runs as the process its image would start, from the Deployment the controller rendered: its
//! environment (Secrets resolved, as the kubelet does), with `PORT` moved to a free local port (pods have a
//! loopback each, the test bed one for all) and `HOST` 127.0.0.1. The worker's `worker.yaml` is pointed at
//! that port ([`rebind`]). Only the example images are known ([`EXAMPLE_IMAGES`]).

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::Duration,
};

use k8s_openapi::api::{
    apps::v1::Deployment,
    core::v1::{Container, Secret},
};
use kube::Api;

/// The example images and the program each runs (what its Dockerfile's CMD starts).
pub const EXAMPLE_IMAGES: &[(&str, &str)] = &[(
    "registry.example.com/tributary-examples/audit:",
    "examples/custom/audit.py",
)];

/// The local program of `image`, if it is an example's.
pub fn program(image: &str) -> Option<PathBuf> {
    EXAMPLE_IMAGES
        .iter()
        .find(|(prefix, _)| image.starts_with(prefix))
        .map(|(_, file)| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(file))
}

/// A running sidecar process.
pub struct Sidecar {
    /// The process.
    pub child: Child,
    /// The local port it listens on.
    pub port: u16,
    /// The port the pod would give it (`spec.container.port`).
    pub pod_port: i32,
}

impl Sidecar {
    /// Stops it (SIGTERM, as the kubelet does) and waits for it.
    pub fn stop(mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }

    /// The entries of an audit log the example wrote (`AUDIT_LOG`), one JSON object a line.
    pub fn audit_entries(log: &Path) -> Vec<serde_json::Value> {
        std::fs::read_to_string(log)
            .unwrap_or_default()
            .lines()
            .filter_map(|line| serde_json::from_str(line).ok())
            .collect()
    }
}

impl Drop for Sidecar {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The native sidecar of a worker Deployment: its init container with `restartPolicy: Always`.
pub fn sidecar_of(deployment: &Deployment) -> Container {
    let pod = deployment.spec.as_ref().unwrap().template.spec.as_ref().unwrap();
    pod.init_containers
        .iter()
        .flatten()
        .find(|c| c.restart_policy.as_deref() == Some("Always"))
        .cloned()
        .expect("a native sidecar in the worker pod")
}

/// `container`'s environment with every `secretKeyRef` read from its Secret in `ns`.
pub async fn container_env(
    client: &kube::Client,
    ns: &str,
    container: &Container,
) -> BTreeMap<String, String> {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);
    let mut env = BTreeMap::new();
    for var in container.env.clone().unwrap_or_default() {
        let value = match (var.value, var.value_from.and_then(|f| f.secret_key_ref)) {
            (Some(value), _) => value,
            (None, Some(from)) => {
                let secret = secrets.get(&from.name).await.unwrap();
                String::from_utf8(secret.data.unwrap()[&from.key].0.clone()).unwrap()
            }
            (None, None) => continue,
        };
        env.insert(var.name, value);
    }
    env
}

/// Starts the sidecar of Deployment `deployment` in `ns` as a local process, with `overrides` on top of
/// its environment, logging to `log`; returns once it answers its readiness probe (what the pod's
/// startup probe waits for before the worker starts).
pub async fn spawn_sidecar(
    client: &kube::Client,
    ns: &str,
    deployment: &str,
    overrides: &[(&str, &str)],
    log: &Path,
) -> Sidecar {
    let deployment = Api::<Deployment>::namespaced(client.clone(), ns)
        .get(deployment)
        .await
        .unwrap();
    let container = sidecar_of(&deployment);
    let image = container.image.clone().unwrap_or_default();
    let program = program(&image).unwrap_or_else(|| panic!("no local program for image {image}"));
    let pod_port = container.ports.as_ref().unwrap()[0].container_port;
    let get = container
        .readiness_probe
        .as_ref()
        .and_then(|p| p.http_get.clone())
        .expect("an HTTP readiness probe");
    let mut env = container_env(client, ns, &container).await;
    let port = super::free_port();
    env.insert("PORT".into(), port.to_string());
    env.insert("HOST".into(), "127.0.0.1".into());
    for (name, value) in overrides {
        env.insert((*name).to_owned(), (*value).to_owned());
    }
    let child = Command::new("python3")
        .arg(&program)
        .args(container.args.clone().unwrap_or_default())
        .envs(&env)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .unwrap();
    // Owned before the wait, so a sidecar that never gets ready is stopped with the failing test.
    let sidecar = Sidecar {
        child,
        port,
        pod_port,
    };
    let url = format!("http://127.0.0.1:{port}{}", get.path.unwrap_or_default());
    super::eventually("the sidecar ready", Duration::from_secs(20), || async {
        let answer = reqwest::get(&url).await.ok()?;
        answer.status().is_success().then_some(())
    })
    .await;
    sidecar
}

/// `worker.yaml` of a pod with its delivery URLs (`http://127.0.0.1:<pod port>…`) moved to the
/// sidecar's local port.
pub fn rebind(worker_yaml: &str, sidecar: &Sidecar) -> String {
    let text = worker_yaml.replace(
        &format!("http://127.0.0.1:{}/", sidecar.pod_port),
        &format!("http://127.0.0.1:{}/", sidecar.port),
    );
    assert_ne!(text, worker_yaml, "worker.yaml delivers to the sidecar's port");
    text
}
