//! Process-wide TLS setup.
//!
//! The dependency graph enables two rustls crypto back ends (`ring` through kube, `aws-lc-rs` through the AWS
//! SDK), and rustls then refuses to guess which one a client that relies on the process default should use.
//! Every entry point calls [`install_crypto_provider`] once, before any client is built.

/// Install `ring` as the process-wide rustls crypto provider. Calling it again is harmless.
pub fn install_crypto_provider() {
    // `Err` only means a provider is already installed, which is the state we want.
    let _ = rustls::crypto::ring::default_provider().install_default();
}
