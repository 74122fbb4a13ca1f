//! Serving the protected endpoint: plain HTTP, or HTTPS (rustls through axum-server) with the mounted
//! `kubernetes.io/tls` Secret, read again every [`TLS_RELOAD_EVERY`] so a renewed certificate is served
//! without a restart.

use std::{future::Future, net::SocketAddr, time::Duration};

use anyhow::Context as _;
use axum::Router;
use axum_server::tls_rustls::RustlsConfig;

use super::config::TlsFiles;

/// How often the certificate files are read again.
pub const TLS_RELOAD_EVERY: Duration = Duration::from_secs(30);
/// How long in-flight requests get after shutdown begins.
const GRACE: Duration = Duration::from_secs(10);

/// Serves `app` on `listen` until `shutdown` resolves.
pub async fn serve(
    listen: SocketAddr,
    tls: Option<&TlsFiles>,
    app: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let Some(tls) = tls else {
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("failed to bind the order endpoint on {listen}"))?;
        return axum::serve(listener, app)
            .with_graceful_shutdown(shutdown)
            .await
            .context("the order endpoint failed");
    };
    crate::tls::install_crypto_provider();
    let config = RustlsConfig::from_pem_file(&tls.cert_file, &tls.key_file)
        .await
        .with_context(|| {
            format!(
                "source.http.tls: cannot load {} and {}",
                tls.cert_file.display(),
                tls.key_file.display()
            )
        })?;
    let reload = tokio::spawn(reload(config.clone(), tls.clone()));
    let handle = axum_server::Handle::new();
    let stopper = handle.clone();
    tokio::spawn(async move {
        shutdown.await;
        stopper.graceful_shutdown(Some(GRACE));
    });
    let served = axum_server::bind_rustls(listen, config)
        .handle(handle)
        .serve(app.into_make_service())
        .await
        .context("the order endpoint failed");
    reload.abort();
    served
}

async fn reload(config: RustlsConfig, files: TlsFiles) {
    let mut tick = tokio::time::interval(TLS_RELOAD_EVERY);
    tick.tick().await;
    loop {
        tick.tick().await;
        if let Err(error) = config
            .reload_from_pem_file(&files.cert_file, &files.key_file)
            .await
        {
            tracing::warn!(%error, "reloading the TLS certificate failed; serving the previous one");
        }
    }
}
