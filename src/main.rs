//! The `tributary` binary: one executable for the controller, the workers and the tools.
#![forbid(unsafe_code)]

use std::process::ExitCode;

use tributary::{
    cli::{ApikeyCommand, Command, WebhookArgs, controller::ControllerArgs},
    operate::telemetry::{LogFormat, Telemetry},
};

fn main() -> anyhow::Result<ExitCode> {
    tributary::tls::install_crypto_provider();
    match tributary::cli::parse().command {
        Command::Version => println!("tributary {}", tributary::VERSION),
        Command::Crds => print!("{}", tributary::api::crds_yaml()?),
        Command::Controller(args) => {
            let _telemetry = Telemetry::init(args.log_format, "tributary-controller")?;
            let runtime = tokio::runtime::Runtime::new()?;
            runtime.block_on(controller(*args))?;
        }
        Command::Worker(args) => {
            let mut config = tributary::worker::config::WorkerConfig::load(&args.config)?;
            // The Consumer's name is the service name of its spans.
            let _telemetry = Telemetry::init(args.log_format, &config.consumer.name)?;
            if let Some(listen) = args.metrics_listen {
                config.metrics_listen = listen;
            }
            if let (Some(listen), Some(http)) = (args.http_listen, config.source.http.as_mut()) {
                http.listen = listen;
            }
            let secrets = args.secrets();
            let runtime = tokio::runtime::Runtime::new()?;
            runtime.block_on(async {
                let aws = tributary::cloud::aws::AwsCloud::config_from_env().await;
                let shutdown = tributary::operate::shutdown::signal();
                tributary::worker::run(config, &secrets, &aws, shutdown).await
            })?;
        }
        Command::Webhook(WebhookArgs {
            listen,
            tls_cert,
            tls_key,
        }) => {
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
        controller::{self, Config, Context, Live},
        operate::{self, HttpState, Metrics, http},
    };

    let ControllerArgs {
        metrics_listen,
        leader_election_namespace,
        lease_name,
        identity,
        hostname,
        resync_seconds,
        watch_namespace,
        cluster_id,
        aws_rate_limit,
        quiet_start_seconds,
        ..
    } = args;
    let identity = identity.unwrap_or_else(|| default_identity(hostname));
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
    let (base, azure) = settings(&args.workers, &args.azure, &args.monitoring_namespace)?;
    let config = Config {
        resync: Duration::from_secs(resync_seconds.max(1)),
        quiet_start: Duration::from_secs(quiet_start_seconds),
        namespace: watch_namespace,
        instance: Some(identity),
        cluster,
        check_spacing: check_spacing(&limits),
        ..base
    };
    let ctx = Arc::new(Context::<Live>::new(client, cloud, azure, metrics, config));
    ready.store(true, std::sync::atomic::Ordering::SeqCst);
    run_while_leading(ctx, shutdown, &leadership).await;
    ready.store(false, std::sync::atomic::Ordering::SeqCst);
    leadership.release().await;
    server.abort();
    tracing::info!("stopped");
    Ok(())
}

/// The controllers' configuration the settings of workers and Azure make, and the Azure clients.
fn settings(
    workers: &tributary::cli::controller::WorkersArgs,
    azure: &tributary::cli::controller::AzureArgs,
    monitoring_namespace: &str,
) -> anyhow::Result<(tributary::controller::Config, tributary::cloud::azure::AzureCloud)> {
    tributary::cli::controller::config(workers, azure, monitoring_namespace).map_err(anyhow::Error::msg)
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

/// `hostname-pid`, unique enough among replicas when `POD_NAME` is not set (`hostname`: `HOSTNAME`, when
/// the kernel's name cannot be read).
fn default_identity(hostname: Option<String>) -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or(hostname)
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "tributary".to_owned());
    format!("{host}-{}", std::process::id())
}
