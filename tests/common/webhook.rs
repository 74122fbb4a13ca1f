//! The validating webhook on the test bed: a serving certificate the API server trusts, the webhook served
//! on 127.0.0.1, and its registration with the API server, scoped to one test namespace.

use std::{net::SocketAddr, path::Path, path::PathBuf, process::Command, time::Duration};

use k8s_openapi::api::admissionregistration::v1::ValidatingWebhookConfiguration;
use kube::{
    Api,
    api::{DeleteParams, PostParams},
};
use serde_json::{Value, json};

/// A serving certificate for 127.0.0.1 signed by the test bed's CA, which the API server trusts.
pub fn certificate(dir: &Path) -> (PathBuf, PathBuf) {
    let (key, csr, crt) = (
        dir.join("webhook.key"),
        dir.join("webhook.csr"),
        dir.join("webhook.crt"),
    );
    let ext = dir.join("ext.cnf");
    std::fs::write(&ext, "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n").unwrap();
    let run = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .output()
            .expect("openssl is installed");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let (key_s, csr_s, crt_s) = (
        key.to_str().unwrap(),
        csr.to_str().unwrap(),
        crt.to_str().unwrap(),
    );
    run(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=tributary-webhook",
        "-keyout",
        key_s,
        "-out",
        csr_s,
    ]);
    let (ca, ca_key, serial) = (
        super::var("TESTBED_CA_FILE"),
        super::var("TESTBED_CA_KEY_FILE"),
        dir.join("ca.srl"),
    );
    run(&[
        "x509",
        "-req",
        "-in",
        csr_s,
        "-CA",
        &ca,
        "-CAkey",
        &ca_key,
        "-CAcreateserial",
        "-CAserial",
        serial.to_str().unwrap(),
        "-days",
        "2",
        "-extfile",
        ext.to_str().unwrap(),
        "-out",
        crt_s,
    ]);
    (crt, key)
}

/// The webhook served on 127.0.0.1 and registered with the API server for one namespace.
pub struct Webhook {
    /// The registration's name.
    pub name: String,
    dir: PathBuf,
    configs: Api<ValidatingWebhookConfiguration>,
    stop: tokio::sync::oneshot::Sender<()>,
    server: tokio::task::JoinHandle<Result<(), tributary::webhook::WebhookError>>,
}

impl Webhook {
    /// Serves the webhook and registers `webhooks` (the `webhooks` list of a ValidatingWebhookConfiguration),
    /// each pointed at `path` of the server and scoped to `namespace`.
    pub async fn start(client: &kube::Client, namespace: &str, path: &str, mut webhooks: Value) -> Self {
        let dir = std::env::temp_dir().join(super::unique("webhook"));
        std::fs::create_dir_all(&dir).unwrap();
        let (crt, key) = certificate(&dir);
        let (bound_tx, bound_rx) = tokio::sync::oneshot::channel();
        let (stop, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let serving = client.clone();
        let server = tokio::spawn(async move {
            let shutdown = async {
                let _ = stop_rx.await;
            };
            tributary::webhook::serve(
                "127.0.0.1:0".parse().unwrap(),
                &crt,
                &key,
                serving,
                Some(bound_tx),
                shutdown,
            )
            .await
        });
        let addr: SocketAddr = bound_rx.await.unwrap();
        let ca_bundle = k8s_openapi::ByteString(std::fs::read(super::var("TESTBED_CA_FILE")).unwrap());
        for webhook in webhooks.as_array_mut().unwrap() {
            webhook["clientConfig"] = json!({"url": format!("https://{addr}{path}"), "caBundle": ca_bundle});
            webhook["namespaceSelector"] = json!({"matchLabels": {"kubernetes.io/metadata.name": namespace}});
            webhook["failurePolicy"] = json!("Fail");
        }
        let name = super::unique("tributary-webhook");
        let config: ValidatingWebhookConfiguration =
            serde_json::from_value(json!({"metadata": {"name": name}, "webhooks": webhooks})).unwrap();
        let configs: Api<ValidatingWebhookConfiguration> = Api::all(client.clone());
        configs.create(&PostParams::default(), &config).await.unwrap();
        Self {
            name,
            dir,
            configs,
            stop,
            server,
        }
    }

    /// Unregisters and stops the webhook.
    pub async fn stop(self) {
        self.configs
            .delete(&self.name, &DeleteParams::default())
            .await
            .unwrap();
        self.stop.send(()).unwrap();
        tokio::time::timeout(Duration::from_secs(10), self.server)
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        std::fs::remove_dir_all(&self.dir).unwrap();
    }
}
