//! The `tributary` binary: one executable for the controller, the workers and the tools.
#![forbid(unsafe_code)]

use std::{path::PathBuf, process::ExitCode};

use clap::{Parser, Subcommand};
use tributary::{
    filter::command::FilterCommand,
    operate::telemetry::{LogFormat, Telemetry},
};

/// Tributary: declarative multi-cloud event pipelines on Kubernetes.
#[derive(Debug, Parser)]
#[command(name = "tributary", version = tributary::VERSION, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print the version of this build.
    Version,
    /// Print the CustomResourceDefinitions of the Tributary API as YAML (what `crds/` holds).
    Crds,
    /// Run the controllers against the cluster of the current kubeconfig or in-cluster configuration, and
    /// against AWS through the standard credential chain (`AWS_ENDPOINT_URL` points it at an emulator).
    Controller(ControllerArgs),
    /// Run a Consumer's worker: drain its source with its processor, as the configuration file the
    /// Consumer's ConfigMap holds says. AWS credentials and endpoint come from the environment.
    Worker {
        /// The worker configuration (`worker.yaml` of the Consumer's ConfigMap).
        #[arg(
            long,
            env = "TRIBUTARY_WORKER_CONFIG",
            default_value = "/etc/tributary/worker.yaml"
        )]
        config: PathBuf,
        /// Serve `/metrics` and `/healthz` here instead of the configuration's `metricsListen` (to run a
        /// Consumer's configuration on a laptop).
        #[arg(long)]
        metrics_listen: Option<std::net::SocketAddr>,
        /// Serve the order endpoint here instead of the configuration's `source.http.listen`.
        #[arg(long)]
        http_listen: Option<std::net::SocketAddr>,
        /// Log format.
        #[arg(long, env = "TRIBUTARY_LOG_FORMAT", default_value = "text")]
        log_format: LogFormat,
    },
    /// Serve the validating admission webhook (HTTPS) for all six kinds: Subscription filters with the
    /// filter engine, and the rules between an object and the objects it references.
    Webhook {
        /// Address to listen on.
        #[arg(long, default_value = "0.0.0.0:9443", env = "TRIBUTARY_WEBHOOK_LISTEN")]
        listen: std::net::SocketAddr,
        /// PEM certificate the API server trusts (through the webhook configuration's caBundle).
        #[arg(long, env = "TRIBUTARY_WEBHOOK_TLS_CERT")]
        tls_cert: PathBuf,
        /// PEM private key of the certificate.
        #[arg(long, env = "TRIBUTARY_WEBHOOK_TLS_KEY")]
        tls_key: PathBuf,
    },
    /// Work with SNS filter policies offline.
    #[command(subcommand)]
    Filter(FilterCommand),
    /// API keys of the order endpoint.
    #[command(subcommand)]
    Apikey(ApikeyCommand),
}

#[derive(Debug, Subcommand)]
enum ApikeyCommand {
    /// Make a new API key: prints the key once (give it to the client; it is not kept anywhere) and the
    /// line to add to the Consumer's API key Secret, which holds only its hash.
    New {
        /// The key's name: the Secret data key, what you revoke (e.g. `ci-2026-12`).
        #[arg(long)]
        name: String,
        /// The principal the key authenticates as (default: the name). Give a rotated key the old key's
        /// principal so the client keeps reading its orders.
        #[arg(long)]
        principal: Option<String>,
        /// The Secret to print a `kubectl` command for (default `<consumer>-api-keys`).
        #[arg(long, default_value = "CONSUMER-api-keys")]
        secret: String,
    },
}

/// Flags of `tributary controller`; each can also come from the environment.
#[derive(Debug, clap::Args)]
struct ControllerArgs {
    /// Address of `/metrics`, `/healthz` and `/readyz`.
    #[arg(long, env = "TRIBUTARY_METRICS_LISTEN", default_value = "0.0.0.0:8080")]
    metrics_listen: std::net::SocketAddr,
    /// Namespace of the leader-election Lease.
    #[arg(long, env = "POD_NAMESPACE", default_value = "default")]
    leader_election_namespace: String,
    /// Name of the leader-election Lease, shared by all replicas.
    #[arg(long, env = "TRIBUTARY_LEASE_NAME", default_value = "tributary-controller")]
    lease_name: String,
    /// This replica's identity in the Lease and in Events (default: hostname and process id).
    #[arg(long, env = "POD_NAME")]
    identity: Option<String>,
    /// Every object is reconciled again this often, which finds and corrects drift made outside Kubernetes.
    #[arg(long, env = "TRIBUTARY_RESYNC_SECONDS", default_value_t = 300)]
    resync_seconds: u64,
    /// Watch only this namespace (default: all namespaces).
    #[arg(long, env = "TRIBUTARY_WATCH_NAMESPACE")]
    watch_namespace: Option<String>,
    /// Log format.
    #[arg(long, env = "TRIBUTARY_LOG_FORMAT", default_value = "text")]
    log_format: LogFormat,
    /// The namespace of the monitoring stack (Prometheus): the only one whose pods the rendered
    /// NetworkPolicies let reach the workers' metrics port.
    #[arg(long, env = "TRIBUTARY_MONITORING_NAMESPACE", default_value = "monitoring")]
    monitoring_namespace: String,
    /// This cluster's identity in the ownership tags of every cloud resource (default: the UID of the
    /// kube-system Namespace). Set it when several clusters should count as one, e.g. a rebuilt cluster
    /// taking over its predecessor's resources.
    #[arg(long, env = "TRIBUTARY_CLUSTER_ID")]
    cluster_id: Option<String>,
    /// Client-side AWS rate limit overrides, repeatable or comma-separated: `SERVICE:ACTION=RATE`,
    /// `SERVICE:*=RATE` or `*=RATE`, RATE in calls per second or `unlimited`. Defaults are AWS's published
    /// per-account quotas for the configured Region (docs/rate-limits.md); `*=unlimited` suits emulators.
    #[arg(long, env = "TRIBUTARY_AWS_RATE_LIMITS", value_delimiter = ',')]
    aws_rate_limit: Vec<String>,
    /// Seconds a new object waiting for a dependency goes without a status (objects applied together
    /// wait for each other briefly; each written wait is an API request). 0 writes every wait.
    #[arg(long, env = "TRIBUTARY_QUIET_START_SECONDS", default_value_t = 30)]
    quiet_start_seconds: u64,
}

fn main() -> anyhow::Result<ExitCode> {
    tributary::tls::install_crypto_provider();
    let cli = Cli::parse();
    match cli.command {
        Command::Version => println!("tributary {}", tributary::VERSION),
        Command::Crds => print!("{}", tributary::api::crds_yaml()?),
        Command::Controller(args) => {
            let _telemetry = Telemetry::init(args.log_format, "tributary-controller")?;
            let runtime = tokio::runtime::Runtime::new()?;
            runtime.block_on(controller(args))?;
        }
        Command::Worker {
            config,
            metrics_listen,
            http_listen,
            log_format,
        } => {
            let mut config = tributary::worker::config::WorkerConfig::load(&config)?;
            // The Consumer's name is the service name of its spans.
            let _telemetry = Telemetry::init(log_format, &config.consumer.name)?;
            if let Some(listen) = metrics_listen {
                config.metrics_listen = listen;
            }
            if let (Some(listen), Some(http)) = (http_listen, config.source.http.as_mut()) {
                http.listen = listen;
            }
            let runtime = tokio::runtime::Runtime::new()?;
            runtime.block_on(async {
                let aws = tributary::cloud::aws::AwsCloud::config_from_env().await;
                tributary::worker::run(config, &aws, tributary::operate::shutdown::signal()).await
            })?;
        }
        Command::Webhook {
            listen,
            tls_cert,
            tls_key,
        } => {
            let _telemetry = Telemetry::init(LogFormat::Text, "tributary-webhook")?;
            let runtime = tokio::runtime::Runtime::new()?;
            runtime.block_on(async {
                // Reads the objects a reviewed object references (get only, same namespace).
                let client = kube::Client::try_default().await?;
                tributary::webhook::serve(
                    listen,
                    &tls_cert,
                    &tls_key,
                    client,
                    None,
                    tributary::operate::shutdown::signal(),
                )
                .await?;
                Ok::<_, anyhow::Error>(())
            })?;
        }
        Command::Apikey(ApikeyCommand::New {
            name,
            principal,
            secret,
        }) => return apikey_new(&name, principal.as_deref(), &secret),
        Command::Filter(filter) => return Ok(filter.run()),
    }
    Ok(ExitCode::SUCCESS)
}

/// `tributary apikey new`: the key on stdout's first line, then how to store its hash.
fn apikey_new(name: &str, principal: Option<&str>, secret: &str) -> anyhow::Result<ExitCode> {
    use tributary::worker::orders::security::api_keys::{is_valid_name, new_key};
    if !is_valid_name(name) || name.starts_with('.') {
        anyhow::bail!("--name must be 1 to 128 letters, digits, '-', '_', '.', '@' or ':' (a Secret key)");
    }
    if principal.is_some_and(|p| !is_valid_name(p)) {
        anyhow::bail!("--principal must be 1 to 128 letters, digits, '-', '_', '.', '@' or ':'");
    }
    let new = new_key(principal).map_err(anyhow::Error::msg)?;
    println!("{}", new.key);
    eprintln!(
        "\nThe key above is shown once. Add its hash to the Secret (data key = key name):\n  {name}: {entry}\n\n\
         e.g. kubectl patch secret {secret} --type merge -p '{{\"stringData\":{{\"{name}\":\"{entry}\"}}}}'\n\
         (or kubectl create secret generic {secret} --from-literal={name}='{entry}')\n\
         Clients send: Authorization: Bearer <key>   or   X-API-Key: <key>",
        entry = new.entry
    );
    Ok(ExitCode::SUCCESS)
}

/// `tributary controller`: logging → metrics → HTTP endpoints → leadership → ready → controllers until
/// SIGTERM or the lease is lost → release the lease → exit.
/// How far apart each kind's drift checks must be per object: they may take half of each quota they use.
fn check_spacing(
    limits: &tributary::cloud::aws::ratelimit::RateLimits,
) -> tributary::controller::CheckSpacing {
    tributary::controller::CheckSpacing {
        topic: limits.check_spacing(
            &[("sns", "GetTopicAttributes"), ("sns", "ListTagsForResource")],
            0.5,
        ),
        queue: limits.check_spacing(&[("sqs", "GetQueueAttributes"), ("sqs", "ListQueueTags")], 0.5),
        subscription: limits.check_spacing(&[("sns", "GetSubscriptionAttributes")], 0.5),
    }
}

async fn controller(args: ControllerArgs) -> anyhow::Result<()> {
    use std::{
        sync::{Arc, atomic::AtomicBool},
        time::Duration,
    };

    use anyhow::Context as _;
    use futures::FutureExt;
    use tributary::{
        cloud::aws::AwsCloud,
        controller::{self, Config, Context},
        operate::{self, HttpState, Metrics, http},
    };

    let ControllerArgs {
        metrics_listen,
        leader_election_namespace,
        lease_name,
        identity,
        resync_seconds,
        watch_namespace,
        log_format: _,
        monitoring_namespace,
        cluster_id,
        aws_rate_limit,
        quiet_start_seconds,
    } = args;
    let identity = identity.unwrap_or_else(default_identity);
    tracing::info!(version = tributary::VERSION, %identity, "starting the controller");

    let metrics = Metrics::new();
    let ready = Arc::new(AtomicBool::new(false));
    let shutdown = operate::shutdown::signal().shared();
    let listener = http::bind(metrics_listen)
        .await
        .with_context(|| format!("failed to bind {metrics_listen}"))?;
    let state = HttpState {
        metrics: metrics.clone(),
        ready: ready.clone(),
    };
    let server = tokio::spawn(http::serve_on(listener, state, shutdown.clone()));

    let client = kube::Client::try_default()
        .await
        .context("failed to configure the Kubernetes client")?;
    controller::ensure_crds(&client, watch_namespace.as_deref())
        .await
        .map_err(anyhow::Error::msg)?;
    let cluster = controller::driver::tenancy::cluster_identity(&client, cluster_id)
        .await
        .map_err(anyhow::Error::msg)?;
    tracing::info!(%cluster, "cluster identity of the ownership tags");
    let lease = (leader_election_namespace, lease_name, identity.clone());
    let Some(leadership) = lead(&client, lease, &metrics, shutdown.clone()).await? else {
        return Ok(());
    };

    let (cloud, limits) = AwsCloud::from_env_with_metrics(metrics.clone(), &aws_rate_limit)
        .await
        .map_err(anyhow::Error::msg)?;
    let config = Config {
        resync: Duration::from_secs(resync_seconds.max(1)),
        quiet_start: Duration::from_secs(quiet_start_seconds),
        namespace: watch_namespace,
        instance: Some(identity),
        cluster,
        check_spacing: check_spacing(&limits),
        ..config_from_env(monitoring_namespace)?
    };
    let ctx = Arc::new(Context::new(client, cloud, metrics, config));
    ready.store(true, std::sync::atomic::Ordering::SeqCst);
    run_while_leading(ctx, shutdown, &leadership).await;
    ready.store(false, std::sync::atomic::Ordering::SeqCst);
    leadership.release().await;
    server.abort();
    tracing::info!("stopped");
    Ok(())
}

/// The controllers' settings read from the environment: how workers run (the metrics port open to
/// `monitoring_namespace`), and how Storage Queues and Event Hubs are reached.
fn config_from_env(monitoring_namespace: String) -> anyhow::Result<tributary::controller::Config> {
    use tributary::controller::{self, resources::workers};
    Ok(controller::Config {
        worker: workers::WorkerSettings {
            monitoring_namespace: Some(monitoring_namespace),
            ..workers::worker_settings_from_env().map_err(anyhow::Error::msg)?
        },
        storage: tributary::cloud::azure::storage_queues::StorageQueues::from_env()
            .map_err(anyhow::Error::msg)?,
        event_hubs: controller::device_stream::EventHubsConfig::from_env().map_err(anyhow::Error::msg)?,
        ..controller::Config::default()
    })
}

/// Waits to become the leader of the Lease `(namespace, name)` as `identity`; `None` when shut down first.
async fn lead(
    client: &kube::Client,
    (namespace, name, identity): (String, String, String),
    metrics: &tributary::operate::Metrics,
    shutdown: futures::future::Shared<impl std::future::Future<Output = ()>>,
) -> anyhow::Result<Option<tributary::operate::Leadership>> {
    use std::time::Duration;

    use anyhow::Context as _;
    let lease = tributary::operate::LeaseConfig {
        namespace,
        name,
        identity,
        lease_duration: Duration::from_secs(15),
        renew_every: Duration::from_secs(5),
    };
    let leadership = tokio::select! {
        leadership = tributary::operate::acquire(client.clone(), lease, metrics.clone()) => {
            leadership.context("failed to acquire the leader lease")?
        }
        () = shutdown => {
            tracing::info!("shut down before becoming the leader");
            return Ok(None);
        }
    };
    tracing::info!("leader: starting the controllers");
    Ok(Some(leadership))
}

/// Runs the controllers until SIGTERM or until the lease is lost, whichever comes first; they stop
/// gracefully (finishing the reconciles in flight).
async fn run_while_leading<C: tributary::controller::Cloud>(
    ctx: std::sync::Arc<tributary::controller::Context<C>>,
    shutdown: futures::future::Shared<impl std::future::Future<Output = ()>>,
    leadership: &tributary::operate::Leadership,
) {
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let controllers = tributary::controller::run(ctx, async {
        let _ = stopped.await;
    });
    tokio::pin!(controllers);
    tokio::select! {
        () = &mut controllers => {}
        () = shutdown => {
            let _ = stop.send(());
            controllers.await;
        }
        () = leadership.lost() => {
            tracing::warn!("the leader lease was lost: stopping the controllers");
            let _ = stop.send(());
            controllers.await;
        }
    }
}

/// `hostname-pid`, unique enough among replicas when `POD_NAME` is not set.
fn default_identity() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "tributary".to_owned());
    format!("{host}-{}", std::process::id())
}
