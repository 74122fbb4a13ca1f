//! An OpenTelemetry Collector of the test bed (`$TESTBED_DIR/bin/otelcol`: the collector's OTLP receiver
//! and debug exporter), started by a test on a free 127.0.0.1 port, and the spans it received, read
//! back from what its debug exporter printed.
#![allow(clippy::unwrap_used)]

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::Duration,
};

use super::var;

/// One span as the collector received it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Span {
    /// `service.name` of the process that sent it.
    pub service: String,
    /// The span's name.
    pub name: String,
    /// Trace id, 32 hex digits.
    pub trace_id: String,
    /// Span id, 16 hex digits.
    pub span_id: String,
    /// The parent's span id; empty for a root.
    pub parent_id: String,
    /// Its attributes, as the debug exporter prints them (`key: Str(value)`).
    pub attributes: Vec<String>,
}

/// A running collector; stopped (by its pid) when dropped.
pub struct Collector {
    child: Child,
    output: PathBuf,
    /// The OTLP/HTTP endpoint (`http://127.0.0.1:PORT`), for `OTEL_EXPORTER_OTLP_ENDPOINT`.
    pub endpoint: String,
}

impl Collector {
    /// Starts a collector whose files live in `dir`, and waits until it accepts OTLP.
    pub async fn start(dir: &Path) -> Self {
        Self::start_exporting(dir, false).await
    }

    /// [`Collector::start`], also writing the spans as OTLP JSON lines to `dir/spans.jsonl` (its file
    /// exporter: what `tributary trace` reads) when `to_file`.
    pub async fn start_exporting(dir: &Path, to_file: bool) -> Self {
        let port = super::free_port();
        std::fs::create_dir_all(dir).unwrap();
        let config = dir.join("otelcol.yaml");
        let (file, exporters) = if to_file {
            let path = dir.join("spans.jsonl");
            let file = format!(
                "  file:\n    path: {}\n    flush_interval: 100ms\n",
                path.display()
            );
            (file, "[debug, file]")
        } else {
            (String::new(), "[debug]")
        };
        std::fs::write(
            &config,
            format!(
                "receivers:\n  otlp:\n    protocols:\n      http:\n        endpoint: 127.0.0.1:{port}\n\
                 exporters:\n  debug:\n    verbosity: detailed\n{file}\
                 service:\n  telemetry:\n    metrics:\n      level: none\n\
                 \x20 pipelines:\n    traces:\n      receivers: [otlp]\n      exporters: {exporters}\n"
            ),
        )
        .unwrap();
        let output = dir.join("otelcol.log");
        let child = Command::new(format!("{}/bin/otelcol", var("TESTBED_DIR")))
            .arg(format!("--config=file:{}", config.display()))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&output).unwrap())
            .spawn()
            .unwrap();
        let collector = Self {
            child,
            output,
            endpoint: format!("http://127.0.0.1:{port}"),
        };
        // Ready when an empty export is accepted.
        let http = reqwest::Client::new();
        for _ in 0..100 {
            let sent = http
                .post(format!("{}/v1/traces", collector.endpoint))
                .header("content-type", "application/json")
                .body("{}")
                .send()
                .await;
            if sent.is_ok_and(|r| r.status().is_success()) {
                return collector;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!(
            "the collector did not start: {}",
            std::fs::read_to_string(&collector.output).unwrap_or_default()
        );
    }

    /// Every span received so far.
    pub fn spans(&self) -> Vec<Span> {
        parse(&std::fs::read_to_string(&self.output).unwrap())
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The spans in the debug exporter's detailed output: a `ResourceSpans` block names the service, then
/// each `Span #n` block lists its ids, name and attributes.
fn parse(output: &str) -> Vec<Span> {
    let mut spans = Vec::new();
    let mut service = String::new();
    let mut current: Option<Span> = None;
    let mut in_attributes = false;
    for line in output.lines() {
        let trimmed = line.trim();
        if let Some(name) = trimmed.strip_prefix("-> service.name: Str(") {
            service = name.trim_end_matches(')').to_owned();
            continue;
        }
        // The first line of a block carries the log prefix (time, level) of the collector.
        if trimmed.contains("ResourceSpans #") {
            spans.extend(current.take());
            service.clear();
            in_attributes = false;
            continue;
        }
        if trimmed.starts_with("Span #") {
            spans.extend(current.take());
            current = Some(Span {
                service: service.clone(),
                ..Span::default()
            });
            in_attributes = false;
            continue;
        }
        let Some(span) = current.as_mut() else {
            continue;
        };
        let field = |prefix: &str| {
            trimmed
                .strip_prefix(prefix)
                .and_then(|rest| rest.trim_start().strip_prefix(':'))
                .map(|value| value.trim().to_owned())
        };
        if let Some(value) = field("Trace ID") {
            span.trace_id = value;
        } else if let Some(value) = field("Parent ID") {
            span.parent_id = value;
        } else if let Some(value) = field("ID") {
            span.span_id = value;
        } else if let Some(value) = field("Name") {
            span.name = value;
        } else if trimmed == "Attributes:" {
            in_attributes = true;
        } else if in_attributes && let Some(attribute) = trimmed.strip_prefix("-> ") {
            span.attributes.push(attribute.to_owned());
        } else if !trimmed.starts_with("-> ") {
            in_attributes = false;
        }
    }
    spans.extend(current);
    spans
}
