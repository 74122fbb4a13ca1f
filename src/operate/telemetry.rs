//! Logs and traces of every `tributary` process: structured logs on stderr (`RUST_LOG` filters them,
//! default `info`) and, when the standard OpenTelemetry variables ask for it, spans exported over OTLP.
//!
//! Export is on when `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` or `OTEL_EXPORTER_OTLP_ENDPOINT` is set, or with
//! `OTEL_TRACES_EXPORTER=otlp` (to the default `http://localhost:4318`); `OTEL_TRACES_EXPORTER=none`
//! turns it off. The exporter reads the other `OTEL_EXPORTER_OTLP_*` variables itself (headers, timeout)
//! and `OTEL_SERVICE_NAME` overrides the service name. Only OTLP over HTTP with protobuf bodies is built
//! in (port 4318), so a request for gRPC is refused with an error instead of being silently ignored.
//!
//! What is exported: the spans of Tributary itself (a worker's `process` span per message, the order
//! endpoint's `POST /orders`) and the controller's reconcile spans, with the log events inside them.

use opentelemetry::{KeyValue, trace::TracerProvider as _};
use opentelemetry_sdk::{Resource, trace::SdkTracerProvider};
use tracing::Level;
use tracing_subscriber::{
    EnvFilter, Layer, filter::Targets, layer::SubscriberExt as _, util::SubscriberInitExt as _,
};

/// How log lines are written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

/// Why logging and tracing could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// A protocol other than OTLP/HTTP with protobuf was asked for.
    #[error(
        "{variable}={value}: only OTLP over HTTP with protobuf bodies (`http/protobuf`, port 4318) is built in"
    )]
    UnsupportedProtocol {
        /// The variable that asked for it.
        variable: &'static str,
        /// Its value.
        value: String,
    },
    /// `OTEL_TRACES_EXPORTER` names an exporter that is not built in.
    #[error("OTEL_TRACES_EXPORTER={0}: only `otlp` and `none` are supported")]
    UnsupportedExporter(String),
    /// The OTLP exporter could not be built from its configuration.
    #[error("building the OTLP span exporter failed: {0}")]
    Exporter(#[from] opentelemetry_otlp::ExporterBuildError),
}

/// Whether spans are exported, from the OpenTelemetry variables `var` looks up (empty counts as unset).
pub fn otlp_export(var: impl Fn(&str) -> Option<String>) -> Result<bool, TelemetryError> {
    let set = |name: &str| var(name).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
    match set("OTEL_TRACES_EXPORTER").as_deref() {
        Some("none") => return Ok(false),
        Some("otlp") => {}
        Some(other) => return Err(TelemetryError::UnsupportedExporter(other.to_owned())),
        None => {
            if set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT").is_none()
                && set("OTEL_EXPORTER_OTLP_ENDPOINT").is_none()
            {
                return Ok(false);
            }
        }
    }
    // The signal's own variable wins over the general one, as the OpenTelemetry specification says.
    let protocol = [
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
        "OTEL_EXPORTER_OTLP_PROTOCOL",
    ]
    .into_iter()
    .find_map(|variable| Some((variable, set(variable)?)));
    match protocol {
        Some((variable, value)) if value != "http/protobuf" => {
            Err(TelemetryError::UnsupportedProtocol { variable, value })
        }
        _ => Ok(true),
    }
}

/// The logging and tracing of this process. Dropping it flushes the spans not yet exported.
#[derive(Debug)]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Installs the global subscriber: logs in `format`, and OTLP export as `service` when the
    /// environment asks for it (see the module documentation).
    pub fn init(format: LogFormat, service: &str) -> Result<Self, TelemetryError> {
        let provider = if otlp_export(|name| std::env::var(name).ok())? {
            Some(provider(service)?)
        } else {
            None
        };
        let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
        // Colours only for a terminal: a log file or collector gets plain text.
        let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
        let logs = match format {
            LogFormat::Text => tracing_subscriber::fmt::layer()
                .with_ansi(ansi)
                .with_writer(std::io::stderr)
                .boxed(),
            LogFormat::Json => tracing_subscriber::fmt::layer()
                .json()
                .with_writer(std::io::stderr)
                .boxed(),
        };
        // Spans get their own filter: RUST_LOG=warn quietens the logs without cutting the traces, and the
        // spans of the libraries underneath (HTTP clients, the AWS SDK) stay out of them.
        let spans = provider.as_ref().map(|provider| {
            tracing_opentelemetry::layer()
                .with_tracer(provider.tracer("tributary"))
                .with_filter(
                    Targets::new()
                        .with_target("tributary", Level::INFO)
                        .with_target("kube_runtime", Level::INFO),
                )
        });
        tracing_subscriber::registry()
            .with(logs.with_filter(filter))
            .with(spans)
            .init();
        if provider.is_some() {
            tracing::info!(service, "exporting spans over OTLP/HTTP");
        }
        Ok(Self { provider })
    }
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take()
            && let Err(error) = provider.shutdown()
        {
            eprintln!("flushing the last spans failed: {error}");
        }
    }
}

/// The tracer provider: batches of spans to the OTLP/HTTP endpoint the environment names.
fn provider(service: &str) -> Result<SdkTracerProvider, TelemetryError> {
    let exporter = opentelemetry_otlp::SpanExporter::builder().with_http().build()?;
    let mut resource = Resource::builder().with_attribute(KeyValue::new("service.version", crate::VERSION));
    if std::env::var_os("OTEL_SERVICE_NAME").is_none() {
        resource = resource.with_service_name(service.to_owned());
    }
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource.build())
        .build())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decide(vars: &[(&str, &str)]) -> Result<bool, TelemetryError> {
        otlp_export(|name| {
            vars.iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| (*v).to_owned())
        })
    }

    #[test]
    fn export_is_off_unless_an_endpoint_or_the_exporter_asks_for_it() {
        assert!(!decide(&[]).unwrap());
        assert!(!decide(&[("OTEL_EXPORTER_OTLP_ENDPOINT", " ")]).unwrap());
        assert!(decide(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318")]).unwrap());
        assert!(decide(&[("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://c:4318/v1/traces")]).unwrap());
        assert!(decide(&[("OTEL_TRACES_EXPORTER", "otlp")]).unwrap());
        let off = [
            ("OTEL_TRACES_EXPORTER", "none"),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"),
        ];
        assert!(!decide(&off).unwrap());
    }

    #[test]
    fn only_http_protobuf_is_accepted_and_the_error_names_the_variable() {
        let endpoint = ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318");
        assert!(decide(&[endpoint, ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")]).unwrap());
        let error = decide(&[endpoint, ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")]).unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with("OTEL_EXPORTER_OTLP_PROTOCOL=grpc: only OTLP over HTTP"),
            "{error}"
        );
        // The traces variable wins over the general one, both ways.
        let traces_ok = [
            endpoint,
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
            ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "http/protobuf"),
        ];
        assert!(decide(&traces_ok).unwrap());
        let traces_json = [endpoint, ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "http/json")];
        assert!(
            decide(&traces_json)
                .unwrap_err()
                .to_string()
                .contains("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
        );
        let zipkin = decide(&[("OTEL_TRACES_EXPORTER", "zipkin")]).unwrap_err();
        assert_eq!(
            zipkin.to_string(),
            "OTEL_TRACES_EXPORTER=zipkin: only `otlp` and `none` are supported"
        );
    }
}
