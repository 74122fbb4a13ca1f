//! `tributary worker`: its settings, and the [`Secrets`] they hand to the worker.

use std::{net::SocketAddr, path::PathBuf};

use super::{LIBRARY_VARIABLES, non_empty};
use crate::{operate::telemetry::LogFormat, worker::Secrets};

/// Settings of `tributary worker`. The secrets come from the Consumer's Secrets, which its Deployment
/// maps to these variables; each is required only by the source or sink that uses it.
#[derive(clap::Args)]
pub struct WorkerArgs {
    /// The worker configuration (`worker.yaml` of the Consumer's ConfigMap).
    #[arg(
        long,
        env = "TRIBUTARY_WORKER_CONFIG",
        default_value = "/etc/tributary/worker.yaml"
    )]
    pub config: PathBuf,
    /// Serve `/metrics` and `/healthz` here instead of the configuration's `metricsListen` (to run a
    /// Consumer's configuration on a laptop).
    #[arg(long)]
    pub metrics_listen: Option<SocketAddr>,
    /// Serve the order endpoint here instead of the configuration's `source.http.listen`.
    #[arg(long)]
    pub http_listen: Option<SocketAddr>,
    /// Log format.
    #[arg(long, env = "TRIBUTARY_LOG_FORMAT", default_value = "text")]
    pub log_format: LogFormat,
    /// The storage account key of a Storage Queue source, an Azure dead letter or a relay's queue.
    #[arg(long, env = "AZURE_STORAGE_KEY", hide_env_values = true)]
    pub azure_storage_key: Option<String>,
    /// The Cosmos DB account key of the device processor's sink.
    #[arg(long, env = "AZURE_COSMOS_KEY", hide_env_values = true)]
    pub azure_cosmos_key: Option<String>,
    /// The Event Hubs connection string of a `SASL_SSL` Kafka source.
    #[arg(long, env = "KAFKA_SASL_PASSWORD", hide_env_values = true)]
    pub kafka_sasl_password: Option<String>,
}

impl WorkerArgs {
    /// The secrets given (empty ones count as missing).
    pub fn secrets(&self) -> Secrets {
        Secrets {
            storage_key: non_empty(self.azure_storage_key.as_ref()),
            cosmos_key: non_empty(self.azure_cosmos_key.as_ref()),
            kafka_sasl_password: non_empty(self.kafka_sasl_password.as_ref()),
        }
    }
}

/// The help text after the worker's flags: the variables its libraries read.
pub fn after_help() -> String {
    format!(
        "Secrets: prefer the variables (the Consumer's Deployment sets them from Secrets); a flag is \
         visible to `ps`.\n\n\
         Read by the libraries underneath, not declared above:\n  \
         AWS_REGION, AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN\n  \
         and the rest of the standard credential chain\n          \
         The AWS SDK: the Region, the endpoint (an emulator), the identity\n\
         {LIBRARY_VARIABLES}"
    )
}
