//! Process shutdown: the signal that ends the controller. Kubernetes sends SIGTERM and waits
//! `terminationGracePeriodSeconds` before SIGKILL, so the controller stops reconciling, releases its lease
//! and exits within that grace period.

/// Resolves on the first SIGTERM or Ctrl-C (SIGINT).
///
/// If a handler cannot be installed (no signal support in this environment) that source is ignored and
/// the other still works; with neither, this never resolves, so the process runs until killed rather
/// than stopping at once.
pub async fn signal() {
    let ctrl_c = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::warn!(%error, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut sigterm) => {
                sigterm.recv().await;
            }
            Err(error) => {
                tracing::warn!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        () = ctrl_c => tracing::info!("received Ctrl-C; shutting down"),
        () = terminate => tracing::info!("received SIGTERM; shutting down"),
    }
}
