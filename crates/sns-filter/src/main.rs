//! `sns-filter`: SNS filter policies on the command line, the same commands as `tributary filter`.
#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::Parser;
use sns_filter::command::FilterCommand;

/// Work with SNS filter policies offline: validate a policy, or test a message against it.
#[derive(Debug, Parser)]
#[command(name = "sns-filter", version)]
struct Cli {
    #[command(subcommand)]
    command: FilterCommand,
}

fn main() -> ExitCode {
    Cli::parse().command.run()
}
