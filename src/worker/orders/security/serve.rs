//! Serving the protected endpoint: plain HTTP, or HTTPS (rustls) with the mounted `kubernetes.io/tls`
//! Secret, read again every [`TLS_RELOAD_EVERY`] so a renewed certificate is served without a restart.
//!
//! Both go through axum-server, whose HTTP/1 builder has a timer, so a connection that has not sent its
//! request head within [`HEADER_READ_TIMEOUT`] is closed: the request timeout, the concurrency limit and
//! authentication only begin once the head is in, and without this a client trickling header bytes
//! would hold a connection (and a file descriptor) for ever.

use std::{future::Future, net::SocketAddr, time::Duration};

use anyhow::Context as _;
use axum::Router;
use axum_server::tls_rustls::RustlsConfig;

use super::config::TlsFiles;

/// How often the certificate files are compared with what is served.
pub const TLS_RELOAD_EVERY: Duration = Duration::from_secs(30);
/// How long in-flight requests get after shutdown begins.
const GRACE: Duration = Duration::from_secs(10);
/// How long a connection may take to send a request's head (hyper's default, which needs a timer).
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves `app` on `listen` until `shutdown` resolves.
pub async fn serve(
    listen: SocketAddr,
    tls: Option<&TlsFiles>,
    app: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let handle = axum_server::Handle::new();
    let stopper = handle.clone();
    tokio::spawn(async move {
        shutdown.await;
        stopper.graceful_shutdown(Some(GRACE));
    });
    let Some(tls) = tls else {
        let mut server = axum_server::bind(listen).handle(handle);
        server
            .http_builder()
            .http1()
            .header_read_timeout(Some(HEADER_READ_TIMEOUT));
        return server
            .serve(app.into_make_service())
            .await
            .with_context(|| format!("the order endpoint on {listen} failed"));
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
    let mut files = crate::tls::CertificateFiles::new(&tls.cert_file, &tls.key_file);
    files.mark_loaded();
    let reload = tokio::spawn(crate::tls::keep_current(files, config.clone(), TLS_RELOAD_EVERY));
    let mut server = axum_server::bind_rustls(listen, config).handle(handle);
    server
        .http_builder()
        .http1()
        .header_read_timeout(Some(HEADER_READ_TIMEOUT));
    let served = server
        .serve(app.into_make_service())
        .await
        .context("the order endpoint failed");
    reload.abort();
    served
}
