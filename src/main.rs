//! The `tributary` binary: one executable for the controller, the workers and the tools.
#![forbid(unsafe_code)]

use clap::{Parser, Subcommand};

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
}

fn main() -> anyhow::Result<()> {
    tributary::tls::install_crypto_provider();
    let cli = Cli::parse();
    match cli.command {
        Command::Version => println!("tributary {}", tributary::VERSION),
        Command::Crds => print!("{}", tributary::api::crds_yaml()?),
    }
    Ok(())
}
