//! The `tributary` binary: one executable for the controller, the workers and the tools.
#![forbid(unsafe_code)]

use std::{path::PathBuf, process::ExitCode};

use clap::{Parser, Subcommand};
use tributary::filter::{Scope, command};

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
    /// Run the controllers against the cluster of the current kubeconfig or in-cluster configuration.
    Controller,
    /// Serve the validating admission webhook (HTTPS) that checks Subscription filters with the filter
    /// engine. The controller will serve it too; this runs it alone.
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
}

#[derive(Debug, Subcommand)]
enum FilterCommand {
    /// Does a message match a policy? Prints the explanation. Exit 0 match, 1 no match, 2 error.
    Test {
        /// The filter policy, as JSON.
        #[arg(long)]
        policy: PathBuf,
        /// The message: attributes as SNS delivers them ({"name": {"Type": "String", "Value": "..."}}) in
        /// MessageAttributes scope, the JSON body in MessageBody scope.
        #[arg(long)]
        message: PathBuf,
        /// MessageAttributes (default) or MessageBody.
        #[arg(long, default_value = "MessageAttributes")]
        scope: Scope,
    },
    /// Is a policy valid? Prints its canonical form or the error. Exit 0 valid, 1 invalid, 2 error.
    Validate {
        /// The filter policy, as JSON.
        policy: PathBuf,
        /// MessageAttributes (default) or MessageBody.
        #[arg(long, default_value = "MessageAttributes")]
        scope: Scope,
    },
}

fn main() -> anyhow::Result<ExitCode> {
    tributary::tls::install_crypto_provider();
    let cli = Cli::parse();
    match cli.command {
        Command::Version => println!("tributary {}", tributary::VERSION),
        Command::Crds => print!("{}", tributary::api::crds_yaml()?),
        Command::Controller => {
            tracing_subscriber::fmt()
                .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
                .init();
            let runtime = tokio::runtime::Runtime::new()?;
            runtime.block_on(async {
                let client = kube::Client::try_default().await?;
                tributary::controller::run(client, async {
                    let _ = tokio::signal::ctrl_c().await;
                })
                .await;
                anyhow::Ok(())
            })?;
        }
        Command::Webhook {
            listen,
            tls_cert,
            tls_key,
        } => {
            tracing_subscriber::fmt()
                .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
                .init();
            let runtime = tokio::runtime::Runtime::new()?;
            runtime.block_on(tributary::webhook::serve(
                listen,
                &tls_cert,
                &tls_key,
                None,
                async {
                    let _ = tokio::signal::ctrl_c().await;
                },
            ))?;
        }
        Command::Filter(filter) => {
            let outcome = match filter {
                FilterCommand::Test {
                    policy,
                    message,
                    scope,
                } => command::test(&policy, &message, scope),
                FilterCommand::Validate { policy, scope } => command::validate(&policy, scope),
            };
            if outcome.code == 2 {
                eprintln!("{}", outcome.text.trim_end());
            } else {
                print!("{}", outcome.text);
            }
            return Ok(ExitCode::from(outcome.code));
        }
    }
    Ok(ExitCode::SUCCESS)
}
