//! `tributary tree` and `tributary trace`: their settings. Both read only (the objects with the user's
//! kubeconfig, as kubectl would; spans from files), so both work as the kubectl plugin
//! `kubectl tributary` too (see [`super::plugin_name`]).

use std::path::PathBuf;

use crate::inspect::render::Format;

/// Settings of `tributary tree`.
#[derive(Debug, clap::Args)]
pub struct TreeArgs {
    /// The object whose pipeline to show, as KIND/NAME (topic/orders, devicestream/telemetry,
    /// consumer/shipment; queue, subscription and deadletter too); without it, every pipeline of the
    /// namespace.
    pub target: Option<String>,
    /// The namespace (default: the kubeconfig context's, as kubectl).
    #[arg(short, long)]
    pub namespace: Option<String>,
    /// Every namespace.
    #[arg(short = 'A', long, conflicts_with = "target")]
    pub all_namespaces: bool,
    /// Output format: a tree, JSON, Graphviz or Mermaid.
    #[arg(short, long, value_enum, default_value = "tree")]
    pub output: Format,
    /// Colour the tree: `auto` on a terminal unless NO_COLOR is set (CLICOLOR_FORCE forces it).
    #[arg(long, value_enum, default_value = "auto")]
    pub color: ColorWhen,
}

/// When to colour the tree.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ColorWhen {
    /// On a terminal, unless NO_COLOR (or CLICOLOR=0, TERM=dumb) says otherwise.
    Auto,
    /// Always.
    Always,
    /// Never.
    Never,
}

impl ColorWhen {
    /// Whether to colour what goes to standard output.
    pub fn on_stdout(self) -> bool {
        match self {
            Self::Always => true,
            Self::Never => false,
            Self::Auto => anstream::AutoStream::choice(&std::io::stdout()) != anstream::ColorChoice::Never,
        }
    }
}

/// Settings of `tributary trace`.
#[derive(Debug, clap::Args)]
pub struct TraceArgs {
    /// The order id (`o-…`, as `POST /orders` answered it) or a trace id (32 hex digits).
    pub key: String,
    /// Where the spans are: files of OTLP JSON lines, as the OpenTelemetry Collector's file exporter
    /// writes them (`-` for standard input). Several files (rotated ones) may be given, comma-separated.
    #[arg(long, env = "TRIBUTARY_SPANS", value_delimiter = ',', required = true)]
    pub spans: Vec<PathBuf>,
    /// Output format: text, or JSON (the hops of each trace).
    #[arg(short, long, value_enum, default_value = "text")]
    pub output: TraceFormat,
}

/// The output formats of `tributary trace`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum TraceFormat {
    /// One line per hop, indented by depth, with start offset and duration.
    Text,
    /// The journeys as JSON.
    Json,
}
