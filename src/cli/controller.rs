//! `tributary controller`: its settings, and the parts of the controllers' [`Config`] they make (how workers
//! run, how Storage Queues and Event Hubs are reached).

use std::{collections::BTreeMap, time::Duration};

use super::{LIBRARY_VARIABLES, non_empty, url_or_empty};
use crate::{
    cloud::azure::{
        AzureCloud,
        arm::{self, Arm},
        credential::{self, CredentialChoice, CredentialSettings},
        event_hubs::EventHubs,
        storage_queues::StorageQueues,
    },
    controller::{
        Config,
        device_stream::EventHubsConfig,
        resources::workers::{WORKER_ENV, WorkerSettings},
    },
    operate::{Fence, LeaseConfig, telemetry::LogFormat},
};

/// Settings of `tributary controller`.
#[derive(clap::Args)]
pub struct ControllerArgs {
    /// Address of `/metrics`, `/healthz` and `/readyz`.
    #[arg(long, env = "TRIBUTARY_METRICS_LISTEN", default_value = "0.0.0.0:8080")]
    pub metrics_listen: std::net::SocketAddr,
    /// Namespace of the leader-election Lease.
    #[arg(long, env = "POD_NAMESPACE", default_value = "default")]
    pub leader_election_namespace: String,
    /// Name of the leader-election Lease, shared by all replicas.
    #[arg(long, env = "TRIBUTARY_LEASE_NAME", default_value = "tributary-controller")]
    pub lease_name: String,
    /// This replica's identity in the Lease and in Events (default: hostname and process id).
    #[arg(long, env = "POD_NAME")]
    pub identity: Option<String>,
    /// The host name when /proc/sys/kernel/hostname cannot be read (for the default --identity).
    #[arg(long, env = "HOSTNAME", hide = true)]
    pub hostname: Option<String>,
    /// Every object is reconciled again this often, which finds and corrects drift made outside Kubernetes.
    #[arg(long, env = "TRIBUTARY_RESYNC_SECONDS", default_value_t = 300)]
    pub resync_seconds: u64,
    /// Watch only this namespace (default: all namespaces).
    #[arg(long, env = "TRIBUTARY_WATCH_NAMESPACE")]
    pub watch_namespace: Option<String>,
    /// Log format.
    #[arg(long, env = "TRIBUTARY_LOG_FORMAT", default_value = "text")]
    pub log_format: LogFormat,
    /// The namespace of the monitoring stack (Prometheus): the only one whose pods the rendered
    /// NetworkPolicies let reach the workers' metrics port.
    #[arg(long, env = "TRIBUTARY_MONITORING_NAMESPACE", default_value = "monitoring")]
    pub monitoring_namespace: String,
    /// This cluster's identity in the ownership tags of every cloud resource (default: the UID of the
    /// kube-system Namespace). Set it when several clusters should count as one, e.g. a rebuilt cluster
    /// taking over its predecessor's resources.
    #[arg(long, env = "TRIBUTARY_CLUSTER_ID")]
    pub cluster_id: Option<String>,
    /// Client-side AWS rate limit overrides, repeatable or comma-separated: `SERVICE:ACTION=RATE`,
    /// `SERVICE:*=RATE` or `*=RATE`, RATE in calls per second or `unlimited`. Defaults are AWS's published
    /// per-account quotas for the configured Region (docs/rate-limits.md); `*=unlimited` suits emulators.
    #[arg(long, env = "TRIBUTARY_AWS_RATE_LIMITS", value_delimiter = ',')]
    pub aws_rate_limit: Vec<String>,
    /// Seconds a new object waiting for a dependency goes without a status (objects applied together
    /// wait for each other briefly; each written wait is an API request). 0 writes every wait.
    #[arg(long, env = "TRIBUTARY_QUIET_START_SECONDS", default_value_t = 30)]
    pub quiet_start_seconds: u64,
    /// How the leader election is timed.
    #[command(flatten)]
    pub leader_election: LeaderElectionArgs,
    /// How workers run.
    #[command(flatten)]
    pub workers: WorkersArgs,
    /// How Azure is reached.
    #[command(flatten)]
    pub azure: AzureArgs,
}

/// The timing of the leader election (client-go's durations and defaults): the leader acts only until
/// the renew deadline after its last successful renewal, then exits; a standby takes over once it has
/// seen the Lease unchanged for the lease duration.
#[derive(clap::Args)]
#[command(next_help_heading = "Leader election")]
pub struct LeaderElectionArgs {
    /// Seconds a standby waits, after it last saw the Lease change, before it takes the Lease over.
    #[arg(long, env = "TRIBUTARY_LEASE_DURATION_SECONDS", default_value_t = 15)]
    pub lease_duration_seconds: u64,
    /// Seconds after the start of its last successful renewal until which the leader acts; it stops
    /// (every cloud call and API write refused) and exits when it has not renewed by then. Must be less
    /// than the lease duration.
    #[arg(long, env = "TRIBUTARY_LEASE_RENEW_DEADLINE_SECONDS", default_value_t = 10)]
    pub lease_renew_deadline_seconds: u64,
    /// Seconds between the leader's renewals and between a standby's looks at the Lease. The renew
    /// deadline must be more than 1.2 times this.
    #[arg(long, env = "TRIBUTARY_LEASE_RETRY_PERIOD_SECONDS", default_value_t = 2)]
    pub lease_retry_period_seconds: u64,
}

impl LeaderElectionArgs {
    /// The Lease `(namespace, name)` held as `identity` with this timing, or why the timing cannot
    /// keep two leaders apart (naming the variables).
    pub fn lease(
        &self,
        (namespace, name): (String, String),
        identity: String,
    ) -> Result<LeaseConfig, String> {
        let lease = LeaseConfig {
            namespace,
            name,
            identity,
            lease_duration: Duration::from_secs(self.lease_duration_seconds),
            renew_deadline: Duration::from_secs(self.lease_renew_deadline_seconds),
            retry_period: Duration::from_secs(self.lease_retry_period_seconds),
        };
        lease.check_timing().map_err(|error| {
            format!(
                "TRIBUTARY_LEASE_DURATION_SECONDS ({}), TRIBUTARY_LEASE_RENEW_DEADLINE_SECONDS ({}) and \
                 TRIBUTARY_LEASE_RETRY_PERIOD_SECONDS ({}): {error}",
                self.lease_duration_seconds,
                self.lease_renew_deadline_seconds,
                self.lease_retry_period_seconds
            )
        })?;
        Ok(lease)
    }
}

/// How the controller runs workers (Consumers' and Subscription relays').
#[derive(clap::Args)]
#[command(next_help_heading = "Workers")]
pub struct WorkersArgs {
    /// The workers' image, which holds every built-in processor (an empty value: the default).
    #[arg(long, env = "TRIBUTARY_WORKER_IMAGE", default_value_t = default_worker_image())]
    pub worker_image: String,
    /// A Secret, in each worker's namespace, whose keys become the workers' environment (static cloud
    /// keys); pods start without it where it is missing.
    #[arg(long, env = "TRIBUTARY_WORKER_ENV_SECRET")]
    pub worker_env_secret: Option<String>,
    /// Removed: refused with the reason when set (each namespace's TenantPolicy gives its workers'
    /// identity).
    #[arg(
        long,
        env = "TRIBUTARY_WORKER_SERVICE_ACCOUNT_ANNOTATIONS",
        hide = true,
        value_parser = removed_annotations
    )]
    pub worker_service_account_annotations: Option<String>,
    /// Seconds between two reads of a Consumer's workers' `/metrics` for its `status.throughput` (at
    /// least 1): the rates' window, and at most one status write per Consumer per interval.
    #[arg(long, env = "TRIBUTARY_THROUGHPUT_INTERVAL_SECONDS", default_value_t = 60,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub throughput_interval_seconds: u64,
    /// Seconds one read of a worker's `/metrics` may take before it is left out.
    #[arg(long, env = "TRIBUTARY_WORKER_METRICS_TIMEOUT_SECONDS", default_value_t = 2,
          value_parser = clap::value_parser!(u64).range(1..=30))]
    pub worker_metrics_timeout_seconds: u64,
    /// Test beds only: read worker pods whose IP is loopback, at the port of their
    /// `tributary.dev/metrics-port` annotation (simulated pods whose workers are local processes). Never
    /// in a cluster: a pod could then point the controller at its own host's services.
    #[arg(long, env = "TRIBUTARY_SCRAPE_LOOPBACK_PODS", hide = true)]
    pub scrape_loopback_pods: bool,
}

/// How the controller reaches Azure: Storage Queues (Queues and DeadLetters on azure) and Resource
/// Manager (DeviceStreams).
#[derive(clap::Args)]
#[command(next_help_heading = "Azure")]
pub struct AzureArgs {
    /// The queue service of every storage account instead of `https://<account>.queue.core.windows.net`
    /// (an emulator, Azurite).
    #[arg(long, env = "AZURE_STORAGE_QUEUE_ENDPOINT", value_parser = url_or_empty)]
    pub azure_storage_queue_endpoint: Option<String>,
    /// The Azure identity of Resource Manager calls: auto, workload-identity, client-secret,
    /// managed-identity or developer (default auto: workload identity when AZURE_FEDERATED_TOKEN_FILE is
    /// set, else a client secret when AZURE_CLIENT_SECRET is, else the managed identity inside a cluster,
    /// else the Azure CLI login). Unset, an identity that cannot be set up leaves DeviceStreams waiting;
    /// named, it stops the controller.
    #[arg(long, env = "TRIBUTARY_AZURE_CREDENTIAL", value_parser = choice_or_empty)]
    pub azure_credential: Option<String>,
    /// Tenant of the workload identity or the service principal.
    #[arg(long, env = "AZURE_TENANT_ID")]
    pub azure_tenant_id: Option<String>,
    /// Client id of the workload identity, the service principal or a user-assigned managed identity.
    #[arg(long, env = "AZURE_CLIENT_ID")]
    pub azure_client_id: Option<String>,
    /// The service principal's client secret (prefer the variable: a flag is visible to `ps`).
    #[arg(long, env = "AZURE_CLIENT_SECRET", hide_env_values = true)]
    pub azure_client_secret: Option<String>,
    /// The workload identity's token file (the workload identity webhook sets it in the pod).
    #[arg(long, env = "AZURE_FEDERATED_TOKEN_FILE")]
    pub azure_federated_token_file: Option<String>,
    /// Set by Kubernetes in every pod: `auto` then takes the managed identity.
    #[arg(long, env = "KUBERNETES_SERVICE_HOST", hide = true)]
    pub kubernetes_service_host: Option<String>,
    /// Subscription of DeviceStreams without `spec.azure.subscriptionId`.
    #[arg(long, env = "AZURE_SUBSCRIPTION_ID")]
    pub azure_subscription_id: Option<String>,
    /// Resource group of DeviceStreams without `spec.azure.resourceGroup`.
    #[arg(long, env = "TRIBUTARY_AZURE_RESOURCE_GROUP")]
    pub azure_resource_group: Option<String>,
    /// Azure Resource Manager (another cloud, or an emulator).
    #[arg(
        long,
        env = "AZURE_RESOURCE_MANAGER_ENDPOINT",
        default_value = arm::PUBLIC_CLOUD,
        value_parser = url_or_empty
    )]
    pub azure_resource_manager_endpoint: String,
    /// The Kafka endpoint written to DeviceStreams' status and Secret instead of
    /// `<namespace>.servicebus.windows.net:9093` (an emulator).
    #[arg(long, env = "TRIBUTARY_EVENTHUBS_KAFKA_ENDPOINT")]
    pub eventhubs_kafka_endpoint: Option<String>,
    /// CA bundle of that Kafka endpoint when the system does not trust it (an emulator's): the controller
    /// reads consumer lag with it, and reads it once at start for device workers, which get a copy in
    /// their ConfigMap (a change needs a controller restart).
    #[arg(long, env = "TRIBUTARY_KAFKA_CA_FILE")]
    pub kafka_ca_file: Option<String>,
}

/// The controllers' configuration the settings of workers and Azure make (with the metrics port of the
/// workers open to the `(monitoring, controller)` namespaces), and the Azure clients, whose calls are
/// refused while `fence` is closed; the caller sets the rest.
pub fn config(
    workers: &WorkersArgs,
    azure: &AzureArgs,
    (monitoring_namespace, controller_namespace): (&str, &str),
    fence: &Fence,
) -> Result<(Config, AzureCloud), String> {
    let (hubs, event_hubs) = azure.event_hubs(fence)?.unzip();
    let config = Config {
        worker: WorkerSettings {
            controller_namespace: Some(controller_namespace.to_owned()),
            kafka_ca: azure.kafka_ca()?,
            ..workers.settings(monitoring_namespace, forwarded_env())
        },
        event_hubs,
        throughput_interval: Duration::from_secs(workers.throughput_interval_seconds),
        worker_metrics_timeout: Duration::from_secs(workers.worker_metrics_timeout_seconds),
        scrape_loopback_pods: workers.scrape_loopback_pods,
        ..Config::default()
    };
    let storage = StorageQueues::new(azure.storage_queue_endpoint()).with_fence(fence.clone());
    let azure = AzureCloud::new(storage, hubs).with_kafka_fence(fence.clone());
    Ok((config, azure))
}

impl WorkersArgs {
    /// How worker pods run: these settings, the metrics port open to `monitoring_namespace`, and `env`.
    pub fn settings(&self, monitoring_namespace: &str, env: BTreeMap<String, String>) -> WorkerSettings {
        let image = Some(&self.worker_image).filter(|i| !i.is_empty());
        WorkerSettings {
            image: image.cloned().unwrap_or_else(default_worker_image),
            env,
            env_secret: non_empty(self.worker_env_secret.as_ref()),
            monitoring_namespace: Some(monitoring_namespace.to_owned()),
            ..WorkerSettings::default()
        }
    }
}

impl AzureArgs {
    /// The queue service of every storage account, when one is set (the parser checked it is a URL).
    pub fn storage_queue_endpoint(&self) -> Option<url::Url> {
        non_empty(self.azure_storage_queue_endpoint.as_ref()).and_then(|url| url::Url::parse(&url).ok())
    }

    /// The Kafka endpoint's CA bundle, read from `--kafka-ca-file` once at start for the workers'
    /// ConfigMaps (the file is the controller's, not in their pods); `None` without one.
    pub fn kafka_ca(&self) -> Result<Option<String>, String> {
        let Some(file) = non_empty(self.kafka_ca_file.as_ref()) else {
            return Ok(None);
        };
        std::fs::read_to_string(&file)
            .map(Some)
            .map_err(|e| format!("TRIBUTARY_KAFKA_CA_FILE (--kafka-ca-file) {file}: cannot be read: {e}"))
    }

    /// The Azure identity's settings.
    pub fn credential(&self) -> CredentialSettings {
        CredentialSettings {
            // The parser checked it.
            choice: non_empty(self.azure_credential.as_ref()).and_then(|choice| choice.parse().ok()),
            tenant_id: non_empty(self.azure_tenant_id.as_ref()),
            client_id: non_empty(self.azure_client_id.as_ref()),
            client_secret: non_empty(self.azure_client_secret.as_ref()),
            federated_token_file: non_empty(self.azure_federated_token_file.as_ref()).map(Into::into),
            in_cluster: non_empty(self.kubernetes_service_host.as_ref()).is_some(),
        }
    }

    /// Event Hubs through Resource Manager, refused while `fence` is closed, and the DeviceStreams'
    /// defaults. `None`, with a warning, when no identity can be set up and none was named: DeviceStreams
    /// then say so in their Ready condition.
    pub fn event_hubs(&self, fence: &Fence) -> Result<Option<(EventHubs, EventHubsConfig)>, String> {
        let settings = self.credential();
        let credential = match credential::credential(&settings) {
            Ok((kind, credential)) => {
                tracing::info!(credential = ?kind, "Azure identity for Resource Manager");
                credential
            }
            Err(error) if settings.choice.is_none() => {
                tracing::warn!(%error, "no Azure identity: DeviceStreams will not be reconciled");
                return Ok(None);
            }
            Err(error) => return Err(error),
        };
        let base = Some(self.azure_resource_manager_endpoint.as_str())
            .filter(|url| !url.is_empty())
            .unwrap_or(arm::PUBLIC_CLOUD);
        let hubs =
            EventHubs::new(Arm::new(base, credential, Duration::from_secs(20)).with_fence(fence.clone()));
        let defaults = EventHubsConfig {
            subscription: non_empty(self.azure_subscription_id.as_ref()),
            resource_group: non_empty(self.azure_resource_group.as_ref()),
            kafka_endpoint: non_empty(self.eventhubs_kafka_endpoint.as_ref()),
            kafka_ca_file: non_empty(self.kafka_ca_file.as_ref()),
        };
        Ok(Some((hubs, defaults)))
    }
}

/// The rule of `TRIBUTARY_AZURE_CREDENTIAL`: a [`CredentialChoice`], or empty for unset.
fn choice_or_empty(value: &str) -> Result<String, String> {
    if !value.is_empty() {
        value.parse::<CredentialChoice>()?;
    }
    Ok(value.to_owned())
}

/// `tributary:<version>`.
fn default_worker_image() -> String {
    format!("tributary:{}", crate::VERSION)
}

/// The rule of `TRIBUTARY_WORKER_SERVICE_ACCOUNT_ANNOTATIONS`: no longer read, so refused unless empty.
fn removed_annotations(value: &str) -> Result<String, String> {
    if value.is_empty() {
        return Ok(String::new());
    }
    Err(
        "TRIBUTARY_WORKER_SERVICE_ACCOUNT_ANNOTATIONS is no longer read: one cloud identity for every \
         namespace's workers would let any tenant act as the others. Give each namespace its workers' \
         identity in its TenantPolicy (spec.workerIdentity)"
            .to_owned(),
    )
}

/// The SDK variables of [`WORKER_ENV`] this process has (non-empty), which every worker gets too. They
/// stay the SDKs' own (the controller's AWS SDK and OpenTelemetry read them), so they are read here
/// rather than declared as flags.
fn forwarded_env() -> BTreeMap<String, String> {
    WORKER_ENV
        .into_iter()
        .filter_map(|name| {
            let value = std::env::var(name).ok().filter(|v| !v.is_empty())?;
            Some((name.to_owned(), value))
        })
        .collect()
}

/// The help text after the controller's flags: the variables its libraries read.
pub fn after_help() -> String {
    format!(
        "Read by the libraries underneath, not declared above:\n  \
         AWS_REGION, AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN,\n  \
         AWS_PROFILE and the rest of the standard credential chain\n          \
         The AWS SDK: the Region, the endpoint (an emulator), the identity\n\
         {LIBRARY_VARIABLES}\n  \
         KUBECONFIG\n          \
         The Kubernetes client's configuration outside a cluster (in a pod: its service account)\n  \
         AZURE_AUTHORITY_HOST, IDENTITY_ENDPOINT, IDENTITY_HEADER, MSI_ENDPOINT, MSI_SECRET\n          \
         The Azure identity library: its authority, and where a managed identity's token comes from\n\n\
         Also read, as the system sets them:\n  \
         HOSTNAME\n          \
         The host name of the default --identity when /proc/sys/kernel/hostname cannot be read\n  \
         KUBERNETES_SERVICE_HOST\n          \
         Set in every pod: --azure-credential auto then takes the managed identity\n\
         Refused: TRIBUTARY_WORKER_SERVICE_ACCOUNT_ANNOTATIONS (each namespace's TenantPolicy gives its \
         workers' identity).\n\n\
         Passed on to every worker: {}.",
        WORKER_ENV.join(", ")
    )
}
