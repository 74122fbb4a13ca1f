//! Process-wide TLS setup.
//!
//! The dependency graph enables two rustls crypto back ends (`ring` through kube, `aws-lc-rs` through the AWS
//! SDK), and rustls then refuses to guess which one a client that relies on the process default should use.
//! Every entry point calls [`install_crypto_provider`] once, before any client is built.
//!
//! Servers (the webhook, the order endpoint) serve a certificate from a mounted Secret and keep it current
//! with [`keep_current`]: cert-manager (or an admin) rotates the Secret, the kubelet swaps the mounted files
//! (an atomic symlink swap of the volume's `..data` directory), and the changed pair is loaded and swapped
//! in for new connections without a restart. A pair that does not load (a half-written file, a key that
//! does not match) is logged and skipped; the old certificate stays until a pair that loads appears.
//! Contents, not modification times, decide: a symlink swap need not change the mtime seen through the
//! link, and hashing a few kilobytes every few seconds costs nothing.

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use axum_server::tls_rustls::RustlsConfig;
use sha2::{Digest, Sha256};

/// Install `ring` as the process-wide rustls crypto provider. Calling it again is harmless.
pub fn install_crypto_provider() {
    // `Err` only means a provider is already installed, which is the state we want.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// The certificate and key files, and what they held when last loaded.
pub struct CertificateFiles {
    cert: PathBuf,
    key: PathBuf,
    loaded: Option<[u8; 32]>,
}

impl CertificateFiles {
    /// The pair at `cert` and `key`, not yet loaded.
    pub fn new(cert: &Path, key: &Path) -> Self {
        Self {
            cert: cert.to_owned(),
            key: key.to_owned(),
            loaded: None,
        }
    }

    /// A hash of both files' contents; `None` when either cannot be read (missing during a swap).
    fn fingerprint(&self) -> Option<[u8; 32]> {
        let cert = std::fs::read(&self.cert).ok()?;
        let key = std::fs::read(&self.key).ok()?;
        let mut hash = Sha256::new();
        hash.update((cert.len() as u64).to_be_bytes());
        hash.update(&cert);
        hash.update(&key);
        Some(hash.finalize().into())
    }

    /// Marks the files' current contents as loaded (after the server started with them).
    pub fn mark_loaded(&mut self) {
        self.loaded = self.fingerprint();
    }

    /// Whether the files hold something other than what was loaded last.
    pub fn changed(&self) -> bool {
        match self.fingerprint() {
            Some(now) => self.loaded != Some(now),
            None => false,
        }
    }

    /// Loads the files into `config` if they changed. `Ok(true)` when a new certificate is now served.
    pub async fn reload_if_changed(&mut self, config: &RustlsConfig) -> std::io::Result<bool> {
        let Some(now) = self.fingerprint() else {
            return Ok(false);
        };
        if self.loaded == Some(now) {
            return Ok(false);
        }
        config.reload_from_pem_file(&self.cert, &self.key).await?;
        self.loaded = Some(now);
        Ok(true)
    }
}

/// Checks `files` every `every` and swaps a changed certificate into `config`, until the task is dropped.
pub async fn keep_current(mut files: CertificateFiles, config: RustlsConfig, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await; // The first tick is immediate; the files were just loaded.
    loop {
        tick.tick().await;
        match files.reload_if_changed(&config).await {
            Ok(true) => tracing::info!(cert = %files.cert.display(), "serving certificate reloaded"),
            Ok(false) => {}
            Err(error) => tracing::warn!(
                cert = %files.cert.display(),
                %error,
                "the changed serving certificate does not load; still serving the previous one"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_change_of_either_file_is_seen_and_a_missing_file_is_not_a_change() {
        let dir = std::env::temp_dir().join(format!("tributary-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let (cert, key) = (dir.join("tls.crt"), dir.join("tls.key"));
        std::fs::write(&cert, "cert one").expect("write");
        std::fs::write(&key, "key one").expect("write");
        let mut files = CertificateFiles::new(&cert, &key);
        assert!(files.changed(), "nothing loaded yet");
        files.mark_loaded();
        assert!(!files.changed());
        std::fs::write(&key, "key two").expect("write");
        assert!(files.changed());
        files.mark_loaded();
        std::fs::remove_file(&cert).expect("remove");
        assert!(!files.changed(), "a file missing mid-swap is not loaded");
        std::fs::remove_dir_all(&dir).expect("clean up");
    }
}
