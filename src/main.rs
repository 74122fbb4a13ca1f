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
            let result = runtime.block_on(controller(*args));
            // After a lost lease, exit now: nothing still running may hold the process up.
            runtime.shutdown_timeout(std::time::Duration::from_secs(1));
            result?;
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
        Command::Tree(args) => tokio::runtime::Runtime::new()?.block_on(tree(args))?,
        Command::Trace(args) => return trace(&args),
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

/// `tributary tree`: the pipeline graph of the objects the kubeconfig's user may list.
async fn tree(args: tributary::cli::inspect::TreeArgs) -> anyhow::Result<()> {
    use tributary::inspect;
    let client = kube::Client::try_default().await?;
    let namespace = args
        .namespace
        .unwrap_or_else(|| client.default_namespace().to_owned());
    let scope = inspect::scope(args.target.as_deref(), &namespace, args.all_namespaces)?;
    let text = inspect::tree(&client, &scope, args.output, args.color.on_stdout()).await?;
    print!("{text}");
    Ok(())
}

/// `tributary trace`: the journeys of one order (exit 1 when its spans are not found).
fn trace(args: &tributary::cli::inspect::TraceArgs) -> anyhow::Result<ExitCode> {
    use anyhow::Context as _;
    use std::io::Read as _;
    use tributary::{cli::inspect::TraceFormat, inspect::trace};
    let mut spans = Vec::new();
    for path in &args.spans {
        let mut text = String::new();
        if path.as_os_str() == "-" {
            std::io::stdin().read_to_string(&mut text)?;
        } else {
            text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        }
        spans.extend(trace::spans::parse(&text).with_context(|| format!("in {}", path.display()))?);
    }
    let journeys = trace::journey::find(&spans, &args.key);
    if journeys.is_empty() {
        eprintln!(
            "no spans of {} among the {} read (an order is found by the `{}` attribute of its POST /orders span)",
            args.key,
            spans.len(),
            trace::journey::ORDER_ID
        );
        return Ok(ExitCode::FAILURE);
    }
    match args.output {
        TraceFormat::Text => print!("{}", trace::journey::render(&args.key, &journeys)),
        TraceFormat::Json => println!("{}", serde_json::to_string_pretty(&journeys)?),
    }
    Ok(ExitCode::SUCCESS)
}

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

/// `tributary controller`: logging → metrics → HTTP endpoints → leadership → ready → controllers until
/// SIGTERM (→ release the lease → exit 0) or the lease is lost (→ exit 1 at once, so that Kubernetes
/// restarts this replica as a candidate; its fence already refuses every cloud call and API write).
async fn controller(args: ControllerArgs) -> anyhow::Result<()> {
    use std::{
        sync::{Arc, atomic::AtomicBool},
        time::Duration,
    };

    use anyhow::Context as _;
    use futures::FutureExt;
    use tributary::{
        controller::{self, Config, Context, Live},
        operate::{self, HttpState, Metrics},
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
    let lease = args
        .leader_election
        .lease((leader_election_namespace.clone(), lease_name), identity.clone())
        .map_err(anyhow::Error::msg)?;

    let metrics = Metrics::new();
    let ready = Arc::new(AtomicBool::new(false));
    let shutdown = operate::shutdown::signal().shared();
    let state = HttpState {
        metrics: metrics.clone(),
        ready: ready.clone(),
    };
    let server = serve_endpoints(metrics_listen, state, shutdown.clone()).await?;

    let kube_config = kube::Config::infer()
        .await
        .context("failed to configure the Kubernetes client")?;
    let client = kube::Client::try_from(kube_config.clone())?;
    controller::ensure_crds(&client, watch_namespace.as_deref())
        .await
        .map_err(anyhow::Error::msg)?;
    let cluster = controller::driver::tenancy::cluster_identity(&client, cluster_id)
        .await
        .map_err(anyhow::Error::msg)?;
    tracing::info!(%cluster, "cluster identity of the ownership tags");
    let Some(leadership) = lead(&client, lease, &metrics, shutdown.clone()).await? else {
        return Ok(());
    };
    let fence = leadership.fence();
    let (client, cloud, limits) = fenced_clients(kube_config, &fence, &metrics, &aws_rate_limit).await?;
    let namespaces = (&*args.monitoring_namespace, &*leader_election_namespace);
    let (base, azure) = tributary::cli::controller::config(&args.workers, &args.azure, namespaces, &fence)
        .map_err(anyhow::Error::msg)?;
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
    let result = run_while_leading(ctx, shutdown, &leadership).await;
    ready.store(false, std::sync::atomic::Ordering::SeqCst);
    result?;
    leadership.release().await;
    server.abort();
    tracing::info!("stopped");
    Ok(())
}

/// The Kubernetes client of the controllers and the AWS clients, behind `fence`: what acts goes through
/// it (the Lease's own renewals use the unfenced client); also the AWS rate limits in force.
async fn fenced_clients(
    kube_config: kube::Config,
    fence: &tributary::operate::Fence,
    metrics: &tributary::operate::Metrics,
    aws_rate_limit: &[String],
) -> anyhow::Result<(
    kube::Client,
    tributary::cloud::aws::AwsCloud,
    tributary::cloud::aws::ratelimit::RateLimits,
)> {
    let client = kube::client::ClientBuilder::try_from(kube_config)?
        .with_layer(&tributary::operate::FenceLayer::new(fence.clone()))
        .build();
    let (cloud, limits) = tributary::cloud::aws::AwsCloud::from_env_with_metrics(
        metrics.clone(),
        aws_rate_limit,
        fence.clone(),
    )
    .await
    .map_err(anyhow::Error::msg)?;
    Ok((client, cloud, limits))
}

/// Binds `listen` and serves `/metrics`, `/healthz` and `/readyz` there until `shutdown`.
async fn serve_endpoints(
    listen: std::net::SocketAddr,
    state: tributary::operate::HttpState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<tokio::task::JoinHandle<anyhow::Result<()>>> {
    use anyhow::Context as _;
    use tributary::operate::http;
    let listener = http::bind(listen)
        .await
        .with_context(|| format!("failed to bind {listen}"))?;
    Ok(tokio::spawn(http::serve_on(listener, state, shutdown)))
}

/// Waits to become the leader of `lease`; `None` when shut down first.
async fn lead(
    client: &kube::Client,
    lease: tributary::operate::LeaseConfig,
    metrics: &tributary::operate::Metrics,
    shutdown: futures::future::Shared<impl std::future::Future<Output = ()>>,
) -> anyhow::Result<Option<tributary::operate::Leadership>> {
    use anyhow::Context as _;
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

/// Runs the controllers until SIGTERM or until the lease is lost, whichever comes first. On SIGTERM they
/// stop gracefully (finishing the reconciles in flight); on loss they are dropped at once (the fence
/// refuses what they would still send) and this answers the error the process exits with.
async fn run_while_leading<C: tributary::controller::Cloud>(
    ctx: std::sync::Arc<tributary::controller::Context<C>>,
    shutdown: futures::future::Shared<impl std::future::Future<Output = ()>>,
    leadership: &tributary::operate::Leadership,
) -> anyhow::Result<()> {
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
            // As client-go's OnStoppedLeading usually does: exit, without releasing (another replica may
            // hold the lease now) and without waiting for the reconciles in flight.
            anyhow::bail!(
                "lost the leader lease: exiting so that Kubernetes restarts this replica as a candidate"
            );
        }
    }
    Ok(())
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
