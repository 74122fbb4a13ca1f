//! Shared helpers for tests that run against the test bed (`make testbed-up`).
//!
//! The test bed writes its addresses and credentials to `$TESTBED_DIR/env` (default `target/testbed/env`).
//! Tests read that file rather than relying on a sourced shell, so `cargo test` works from any shell once
//! the test bed is up. A missing test bed fails the test with a message saying how to start it: a test
//! that cannot reach its server has not passed.
#![allow(dead_code, clippy::unwrap_used)]

use std::{collections::HashMap, path::PathBuf, sync::OnceLock, time::Duration};

/// The test bed's environment: the `export K='V'` lines of its env file.
pub fn env() -> &'static HashMap<String, String> {
    static ENV: OnceLock<HashMap<String, String>> = OnceLock::new();
    ENV.get_or_init(|| {
        let dir = std::env::var_os("TESTBED_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/testbed"));
        let file = dir.join("env");
        let text = std::fs::read_to_string(&file).unwrap_or_else(|e| {
            panic!(
                "cannot read {}: {e}; start the test bed first with `make testbed-up`",
                file.display()
            )
        });
        parse_env(&text)
    })
}

/// One value of the test bed's environment.
pub fn var(key: &str) -> String {
    env()
        .get(key)
        .cloned()
        .unwrap_or_else(|| panic!("test bed env file has no {key}"))
}

fn parse_env(text: &str) -> HashMap<String, String> {
    text.lines()
        .filter_map(|line| line.strip_prefix("export "))
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.trim_matches('\'').to_owned()))
        .collect()
}

/// A name unique to this test run, for cloud resources and namespaces that must not collide with
/// leftovers of earlier runs against the same test bed.
pub fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("{prefix}-{}-{nanos:x}", std::process::id())
}

/// Poll `check` every 200 ms until it returns `Some`, or panic with `what` after `timeout`.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A kube client for the test bed's admin user, from its kubeconfig.
pub async fn kube_client() -> kube::Client {
    tributary::tls::install_crypto_provider();
    let kubeconfig = kube::config::Kubeconfig::read_from(var("KUBECONFIG")).unwrap();
    let config =
        kube::Config::from_custom_kubeconfig(kubeconfig, &kube::config::KubeConfigOptions::default())
            .await
            .unwrap();
    kube::Client::try_from(config).unwrap()
}

/// AWS SDK configuration pointing at the test bed's moto server.
pub async fn aws_config() -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(var("AWS_ENDPOINT_URL"))
        .region(aws_config::Region::new(var("AWS_REGION")))
        .credentials_provider(aws_credential_types::Credentials::new(
            var("AWS_ACCESS_KEY_ID"),
            var("AWS_SECRET_ACCESS_KEY"),
            None,
            None,
            "testbed",
        ))
        .load()
        .await
}
