//! The validating webhook in a test: a serving certificate for 127.0.0.1 signed by the test bed's CA (which
//! the API server trusts), the webhook served in the test process, and its registration with the API
//! server (the chart's own ValidatingWebhookConfiguration, or given webhooks) scoped to one namespace.
#![allow(clippy::unwrap_used)]

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use k8s_openapi::api::admissionregistration::v1::ValidatingWebhookConfiguration;
use kube::{
    Api,
    api::{DeleteParams, PostParams},
};
use serde_json::{Value, json};

use super::{tools::helm, unique, var};

fn openssl(args: &[&str]) -> String {
    let out = Command::new("openssl")
        .args(args)
        .output()
        .expect("openssl is installed");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A new key and a certificate for 127.0.0.1 signed by the test bed's CA, written as `<name>.crt` and
/// `<name>.key` in `dir`.
pub fn certificate(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    let at = |ext: &str| dir.join(format!("{name}.{ext}"));
    let (key, csr, crt, ext) = (at("key"), at("csr"), at("crt"), at("cnf"));
    std::fs::write(&ext, "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n").unwrap();
    let path = |p: &PathBuf| p.to_str().unwrap().to_owned();
    openssl(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=tributary-webhook",
        "-keyout",
        &path(&key),
        "-out",
        &path(&csr),
    ]);
    openssl(&[
        "x509",
        "-req",
        "-in",
        &path(&csr),
        "-CA",
        &var("TESTBED_CA_FILE"),
        "-CAkey",
        &var("TESTBED_CA_KEY_FILE"),
        "-CAcreateserial",
        "-CAserial",
        &path(&dir.join("ca.srl")),
        "-days",
        "2",
        "-extfile",
        &path(&ext),
        "-out",
        &path(&crt),
    ]);
    (crt, key)
}

/// The SHA-256 fingerprint of the certificate in PEM file `crt`.
pub fn fingerprint_of_file(crt: &Path) -> String {
    openssl(&[
        "x509",
        "-in",
        crt.to_str().unwrap(),
        "-noout",
        "-fingerprint",
        "-sha256",
    ])
}

/// The SHA-256 fingerprint of the certificate a TLS server at `addr` presents to a new connection.
pub fn served_fingerprint(addr: SocketAddr) -> Option<String> {
    let hello = Command::new("openssl")
        .args([
            "s_client",
            "-connect",
            &addr.to_string(),
            "-servername",
            "127.0.0.1",
        ])
        .stdin(std::process::Stdio::null())
        .output()
        .ok()?;
    let mut x509 = Command::new("openssl")
        .args(["x509", "-noout", "-fingerprint", "-sha256"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .ok()?;
    std::io::Write::write_all(&mut x509.stdin.take()?, &hello.stdout).ok()?;
    let out = x509.wait_with_output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// A webhook served in this test process on 127.0.0.1.
pub struct RunningWebhook {
    /// Where it listens.
    pub addr: SocketAddr,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Result<(), tributary::webhook::WebhookError>>,
}

impl RunningWebhook {
    /// Serves the webhook with the certificate `crt` and key `key`; `client` reads referenced objects.
    pub async fn start(client: &kube::Client, crt: &Path, key: &Path) -> Self {
        let (bound_tx, bound_rx) = tokio::sync::oneshot::channel();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (crt, key, client) = (crt.to_owned(), key.to_owned(), client.clone());
        let task = tokio::spawn(async move {
            tributary::webhook::serve(
                "127.0.0.1:0".parse().unwrap(),
                &crt,
                &key,
                client,
                Some(bound_tx),
                async {
                    let _ = stopped.await;
                },
            )
            .await
        });
        let addr = bound_rx.await.unwrap();
        Self { addr, stop, task }
    }

    /// Stops it and waits until it no longer listens.
    pub async fn stop(self) {
        let _ = self.stop.send(());
        tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .unwrap()
            .unwrap()
            .unwrap();
    }
}

/// The `webhooks` of the chart's ValidatingWebhookConfiguration (rules, match conditions, failure policy
/// as the chart renders them).
pub fn chart_webhooks() -> Value {
    let rendered = helm(&[
        "template",
        "tributary",
        concat!(env!("CARGO_MANIFEST_DIR"), "/charts/tributary"),
        "--show-only",
        "templates/webhook.yaml",
    ]);
    serde_yaml_ng::Deserializer::from_str(&rendered)
        .map(|doc| <Value as serde::Deserialize>::deserialize(doc).unwrap())
        .find(|doc| doc["kind"] == "ValidatingWebhookConfiguration")
        .expect("the chart renders a ValidatingWebhookConfiguration")["webhooks"]
        .clone()
}

/// Registers `webhooks` with the API server under a unique name, each calling the webhook at `addr` (on
/// `path`, or the path its Service reference names) with the test bed's CA, failing closed, and scoped to
/// `namespace` so other tests never depend on it. Returns the registration's name.
pub async fn register(
    client: &kube::Client,
    namespace: &str,
    addr: SocketAddr,
    path: Option<&str>,
    mut webhooks: Value,
) -> String {
    let ca_bundle = k8s_openapi::ByteString(std::fs::read(var("TESTBED_CA_FILE")).unwrap());
    for webhook in webhooks.as_array_mut().unwrap() {
        let path = path
            .map(str::to_owned)
            .or_else(|| {
                webhook["clientConfig"]["service"]["path"]
                    .as_str()
                    .map(str::to_owned)
            })
            .expect("a path for the webhook");
        webhook["clientConfig"] = json!({"url": format!("https://{addr}{path}"), "caBundle": ca_bundle});
        webhook["namespaceSelector"] = json!({"matchLabels": {"kubernetes.io/metadata.name": namespace}});
        webhook["failurePolicy"] = json!("Fail");
    }
    let name = unique("tributary-webhook");
    let config: ValidatingWebhookConfiguration =
        serde_json::from_value(json!({"metadata": {"name": name}, "webhooks": webhooks})).unwrap();
    Api::<ValidatingWebhookConfiguration>::all(client.clone())
        .create(&PostParams::default(), &config)
        .await
        .unwrap();
    name
}

/// Removes the registration `name`.
pub async fn unregister(client: &kube::Client, name: &str) {
    Api::<ValidatingWebhookConfiguration>::all(client.clone())
        .delete(name, &DeleteParams::default())
        .await
        .unwrap();
}

/// The webhook served on 127.0.0.1 and registered with the API server for one namespace.
pub struct Webhook {
    /// The registration's name.
    pub name: String,
    dir: PathBuf,
    client: kube::Client,
    running: RunningWebhook,
}

impl Webhook {
    /// Serves the webhook and registers `webhooks` (the `webhooks` list of a ValidatingWebhookConfiguration),
    /// each pointed at `path` of the server and scoped to `namespace`.
    pub async fn start(client: &kube::Client, namespace: &str, path: &str, webhooks: Value) -> Self {
        let dir = std::env::temp_dir().join(unique("webhook"));
        std::fs::create_dir_all(&dir).unwrap();
        let (crt, key) = certificate(&dir, "webhook");
        let running = RunningWebhook::start(client, &crt, &key).await;
        let name = register(client, namespace, running.addr, Some(path), webhooks).await;
        Self {
            name,
            dir,
            client: client.clone(),
            running,
        }
    }

    /// Unregisters and stops the webhook.
    pub async fn stop(self) {
        unregister(&self.client, &self.name).await;
        self.running.stop().await;
        std::fs::remove_dir_all(&self.dir).unwrap();
    }
}
