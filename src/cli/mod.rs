//! The command line of the `tributary` binary: each subcommand's settings in one struct, every setting
//! declared once with its flag and its environment variable, what it is and its rule in its doc comment
//! (which `--help` prints). The values are handed down as plain structs ([`controller::ControllerArgs`]
//! builds the controller's [`crate::controller::Config`] parts, [`worker::WorkerArgs`] the worker's
//! `worker::Secrets`); nothing below this module reads a Tributary variable.
//!
//! The variables of the libraries underneath (the AWS SDK's, OpenTelemetry's, `RUST_LOG`, the Kubernetes
//! client's) stay with them; each subcommand's `--help` names them after its flags.

pub mod controller;
pub mod inspect;
pub mod worker;

use std::path::PathBuf;

use clap::{
    CommandFactory as _, Parser, Subcommand,
    error::{ContextKind, ContextValue},
};

use crate::filter::command::FilterCommand;

/// Tributary: declarative multi-cloud event pipelines on Kubernetes.
#[derive(Parser)]
#[command(name = "tributary", version = crate::VERSION, about)]
pub struct Cli {
    /// What to run.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Subcommand)]
pub enum Command {
    /// Print the version of this build.
    Version,
    /// Print the CustomResourceDefinitions of the Tributary API as YAML (what `crds/` holds).
    Crds,
    /// Run the controllers against the cluster of the current kubeconfig or in-cluster configuration, and
    /// against AWS through the standard credential chain (`AWS_ENDPOINT_URL` points it at an emulator).
    #[command(after_help = controller::after_help())]
    Controller(Box<controller::ControllerArgs>),
    /// Run a Consumer's worker: drain its source with its processor, as the configuration file the
    /// Consumer's ConfigMap holds says. AWS credentials and endpoint come from the environment.
    #[command(after_help = worker::after_help())]
    Worker(worker::WorkerArgs),
    /// Serve the validating admission webhook (HTTPS) for all six kinds: Subscription filters with the
    /// filter engine, and the rules between an object and the objects it references.
    #[command(after_help = webhook_after_help())]
    Webhook(WebhookArgs),
    /// Work with SNS filter policies offline.
    #[command(subcommand)]
    Filter(FilterCommand),
    /// API keys of the order endpoint.
    #[command(subcommand)]
    Apikey(ApikeyCommand),
    /// Print the pipeline graph of a namespace or of one object: every hop with Ready (and why not),
    /// depths, ages, backlogs and rates from status. Reads the objects with your kubeconfig.
    #[command(after_help = "Also the kubectl plugin `kubectl tributary tree` (kubectl-tributary on PATH).")]
    Tree(inspect::TreeArgs),
    /// Print one order's journey across the processors (each hop, its start and duration) from the
    /// spans the workers exported.
    Trace(inspect::TraceArgs),
}

/// Settings of `tributary webhook`.
#[derive(Debug, clap::Args)]
pub struct WebhookArgs {
    /// Address to listen on.
    #[arg(long, default_value = "0.0.0.0:9443", env = "TRIBUTARY_WEBHOOK_LISTEN")]
    pub listen: std::net::SocketAddr,
    /// PEM certificate the API server trusts (through the webhook configuration's caBundle); a rotated
    /// file is reloaded without a restart.
    #[arg(long, env = "TRIBUTARY_WEBHOOK_TLS_CERT")]
    pub tls_cert: PathBuf,
    /// PEM private key of the certificate.
    #[arg(long, env = "TRIBUTARY_WEBHOOK_TLS_KEY")]
    pub tls_key: PathBuf,
}

/// `tributary apikey ...`.
#[derive(Debug, Subcommand)]
pub enum ApikeyCommand {
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

/// The variables every subcommand that logs reads through its libraries.
const LIBRARY_VARIABLES: &str = "  RUST_LOG
          Which log lines are written (tracing's filter syntax, default `info`)
  OTEL_EXPORTER_OTLP_ENDPOINT, OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, OTEL_TRACES_EXPORTER,
  OTEL_EXPORTER_OTLP_PROTOCOL, OTEL_SERVICE_NAME, OTEL_TRACES_SAMPLER, OTEL_TRACES_SAMPLER_ARG
  and the other OTEL_* variables
          OpenTelemetry: spans exported over OTLP/HTTP with protobuf bodies, off unless an endpoint is
          set or OTEL_TRACES_EXPORTER=otlp";

/// The help text after the webhook's flags.
fn webhook_after_help() -> String {
    format!(
        "Read by the libraries underneath, not declared above:\n{LIBRARY_VARIABLES}\n  \
         KUBECONFIG\n          The Kubernetes client's configuration outside a cluster (in a pod: its \
         service account)"
    )
}

/// The command line of this process; a bad value's error names the flag's variable too, since a value
/// from the environment is easily mistaken for one on the command line.
pub fn parse() -> Cli {
    let argv0 = std::env::args_os().next();
    let command = command_for(argv0.as_deref().and_then(std::ffi::OsStr::to_str));
    let parsed = command
        .try_get_matches()
        .and_then(|matches| <Cli as clap::FromArgMatches>::from_arg_matches(&matches));
    parsed.unwrap_or_else(|error| {
        let subcommand = std::env::args_os().nth(1);
        let subcommand = subcommand.as_deref().and_then(std::ffi::OsStr::to_str);
        name_the_variable(error, subcommand).exit()
    })
}

/// The command line, named as it was invoked: `kubectl tributary` when run as the kubectl plugin (the
/// binary or a link to it named `kubectl-tributary`), so usage and errors show what the user typed.
pub fn command_for(argv0: Option<&str>) -> clap::Command {
    let command = Cli::command();
    match argv0.and_then(plugin_name) {
        Some(name) => command.name(name).bin_name(name),
        None => command,
    }
}

/// `kubectl tributary` when `argv0`'s file name is `kubectl-tributary` (with any extension).
pub fn plugin_name(argv0: &str) -> Option<&'static str> {
    let file = std::path::Path::new(argv0).file_stem()?.to_str()?;
    (file == "kubectl-tributary").then_some("kubectl tributary")
}

/// `error` with the environment variable of the flag it is about, looked up in `subcommand`.
fn name_the_variable(mut error: clap::Error, subcommand: Option<&str>) -> clap::Error {
    let Some(ContextValue::String(flag)) = error.get(ContextKind::InvalidArg).cloned() else {
        return error;
    };
    let mut command = Cli::command();
    // Built, as the parser's were: an argument's name with its value is only known then.
    command.build();
    let command = subcommand
        .and_then(|name| command.find_subcommand(name))
        .unwrap_or(&command);
    let variable = command
        .get_arguments()
        .find(|arg| arg.to_string() == flag)
        .and_then(clap::Arg::get_env)
        .map(|env| env.to_string_lossy().into_owned());
    if let Some(variable) = variable {
        error.insert(
            ContextKind::InvalidArg,
            ContextValue::String(format!("{flag} (variable {variable})")),
        );
    }
    error
}

/// The rule of a service endpoint: an absolute URL, or empty for the default.
fn url_or_empty(value: &str) -> Result<String, String> {
    if !value.is_empty() {
        url::Url::parse(value).map_err(|e| {
            format!("must be an absolute URL such as http://127.0.0.1:10001/ (or empty): {e}")
        })?;
    }
    Ok(value.to_owned())
}

/// `value` unless it is empty: an empty variable counts as unset, as a Helm template may leave it.
fn non_empty(value: Option<&String>) -> Option<String> {
    value.filter(|v| !v.is_empty()).cloned()
}

#[cfg(test)]
mod tests;
