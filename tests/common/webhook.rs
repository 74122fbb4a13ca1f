//! The validating webhook in a test: a serving certificate for 127.0.0.1 signed by the test bed's CA (which
//! the API server trusts), the webhook served in the test process, and the chart's own
//! ValidatingWebhookConfiguration pointed at it.
#![allow(dead_code, clippy::unwrap_used)]

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    process::Command,
};

use k8s_openapi::api::admissionregistration::v1::ValidatingWebhookConfiguration;
use serde_json::Value;

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
    task: tokio::task::JoinHandle<()>,
}

impl RunningWebhook {
    /// Serves the webhook with the certificate `crt` and key `key`.
    pub async fn start(crt: &Path, key: &Path) -> Self {
        let (bound_tx, bound_rx) = tokio::sync::oneshot::channel();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (crt, key) = (crt.to_owned(), key.to_owned());
        let task = tokio::spawn(async move {
            tributary::webhook::serve(
                "127.0.0.1:0".parse().unwrap(),
                &crt,
                &key,
                Some(bound_tx),
                async {
                    let _ = stopped.await;
                },
            )
            .await
            .unwrap();
        });
        let addr = bound_rx.await.unwrap();
        Self { addr, stop, task }
    }

    /// Stops it and waits until it no longer listens.
    pub async fn stop(self) {
        let _ = self.stop.send(());
        self.task.await.unwrap();
    }
}

/// The chart's ValidatingWebhookConfiguration (rules, match conditions, failure policy as the chart
/// renders them), limited to namespace `ns`, named uniquely, and calling the webhook at `addr` with the
/// test bed's CA instead of through the chart's Service.
pub fn chart_configuration(ns: &str, addr: SocketAddr) -> ValidatingWebhookConfiguration {
    let rendered = helm(&[
        "template",
        "tributary",
        concat!(env!("CARGO_MANIFEST_DIR"), "/charts/tributary"),
        "--show-only",
        "templates/webhook.yaml",
        "--set",
        &format!("webhook.namespaceSelector.matchLabels.kubernetes\\.io/metadata\\.name={ns}"),
    ]);
    let mut config: Value = serde_yaml_ng::Deserializer::from_str(&rendered)
        .map(|doc| <Value as serde::Deserialize>::deserialize(doc).unwrap())
        .find(|doc| doc["kind"] == "ValidatingWebhookConfiguration")
        .expect("the chart renders a ValidatingWebhookConfiguration");
    config["metadata"] = serde_json::json!({"name": unique("tributary-webhook")});
    let ca = std::fs::read(var("TESTBED_CA_FILE")).unwrap();
    let ca = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, ca);
    for webhook in config["webhooks"].as_array_mut().unwrap() {
        let path = webhook["clientConfig"]["service"]["path"]
            .as_str()
            .unwrap()
            .to_owned();
        webhook["clientConfig"] = serde_json::json!({"url": format!("https://{addr}{path}"), "caBundle": ca});
    }
    serde_json::from_value(config).unwrap()
}
