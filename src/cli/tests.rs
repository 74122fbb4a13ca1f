use clap::{CommandFactory as _, Parser as _};

use super::*;

/// The flags that are the command line's only: they override a file's value for one run.
const FLAG_ONLY: [&str; 2] = ["metrics_listen", "http_listen"];

fn subcommand(name: &str) -> clap::Command {
    Cli::command().find_subcommand(name).unwrap().clone()
}

fn parse_error(args: &[&str]) -> String {
    let error = Cli::try_parse_from(args).err().unwrap();
    name_the_variable(error, Some(args[1])).to_string()
}

#[test]
fn the_command_line_is_well_formed() {
    Cli::command().debug_assert();
}

#[test]
fn every_setting_of_a_service_has_a_variable_and_a_description() {
    for name in ["controller", "worker", "webhook"] {
        let command = subcommand(name);
        for arg in command.get_arguments().filter(|a| !a.is_positional()) {
            let id = arg.get_id().as_str();
            if matches!(id, "help" | "version") || (name == "worker" && FLAG_ONLY.contains(&id)) {
                continue;
            }
            assert!(arg.get_env().is_some(), "{name} --{id} has no variable");
            assert!(arg.get_help().is_some(), "{name} --{id} has no description");
        }
    }
}

#[test]
fn secrets_never_show_their_values_in_help() {
    let secrets = [
        ("controller", "azure_client_secret"),
        ("worker", "azure_storage_key"),
        ("worker", "azure_cosmos_key"),
        ("worker", "kafka_sasl_password"),
    ];
    for (command, id) in secrets {
        let command = subcommand(command);
        let arg = command
            .get_arguments()
            .find(|a| a.get_id().as_str() == id)
            .unwrap();
        assert!(arg.is_hide_env_values_set(), "{id}");
    }
}

#[test]
fn a_bad_value_names_the_flag_the_variable_and_the_rule() {
    let error = parse_error(&["tributary", "controller", "--resync-seconds", "soon"]);
    assert!(
        error.contains("--resync-seconds") && error.contains("TRIBUTARY_RESYNC_SECONDS"),
        "{error}"
    );
    let error = parse_error(&[
        "tributary",
        "controller",
        "--azure-storage-queue-endpoint",
        "azurite",
    ]);
    assert!(
        error.contains("AZURE_STORAGE_QUEUE_ENDPOINT") && error.contains("absolute URL"),
        "{error}"
    );
    let error = parse_error(&["tributary", "controller", "--azure-credential", "msi"]);
    assert!(
        error.contains("TRIBUTARY_AZURE_CREDENTIAL must be auto"),
        "{error}"
    );
}

#[test]
fn the_removed_annotations_variable_is_refused_with_the_reason() {
    let args = [
        "tributary",
        "controller",
        "--worker-service-account-annotations",
        "a=b",
    ];
    let error = parse_error(&args);
    assert!(error.contains("TenantPolicy"), "{error}");
    let empty = ["tributary", "controller", "--worker-service-account-annotations="];
    assert!(Cli::try_parse_from(empty).is_ok());
}

#[test]
fn the_controller_settings_make_its_worker_settings() {
    let args = [
        "tributary",
        "controller",
        "--worker-image=",
        "--worker-env-secret=keys",
        "--monitoring-namespace=prometheus",
    ];
    let Command::Controller(args) = Cli::try_parse_from(args).unwrap().command else {
        panic!("not the controller");
    };
    let env = std::collections::BTreeMap::from([("AWS_REGION".to_owned(), "eu-west-1".to_owned())]);
    let settings = args.workers.settings(&args.monitoring_namespace, env.clone());
    assert_eq!(settings.image, format!("tributary:{}", crate::VERSION));
    assert_eq!(settings.env_secret.as_deref(), Some("keys"));
    assert_eq!(settings.monitoring_namespace.as_deref(), Some("prometheus"));
    assert_eq!(settings.env, env);
}

#[test]
fn the_worker_secrets_come_from_their_flags_and_empty_is_missing() {
    let args = [
        "tributary",
        "worker",
        "--azure-cosmos-key=k",
        "--kafka-sasl-password=",
    ];
    let Command::Worker(args) = Cli::try_parse_from(args).unwrap().command else {
        panic!("not the worker");
    };
    let secrets = args.secrets();
    assert_eq!(secrets.cosmos_key.as_deref(), Some("k"));
    assert_eq!(secrets.kafka_sasl_password, None);
}

#[test]
fn help_names_the_variables_of_the_libraries_and_those_passed_to_workers() {
    let help = subcommand("controller").render_long_help().to_string();
    for name in [
        "AWS_REGION",
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "RUST_LOG",
        "KUBECONFIG",
    ] {
        assert!(help.contains(name), "{name} missing from:\n{help}");
    }
    assert!(help.contains("Passed on to every worker: AWS_REGION, AWS_ENDPOINT_URL"));
    let help = subcommand("worker").render_long_help().to_string();
    assert!(help.contains("OTEL_TRACES_SAMPLER") && help.contains("[env: AZURE_STORAGE_KEY]"));
}

#[test]
fn run_as_the_kubectl_plugin_the_same_subcommands_answer_under_its_name() {
    assert_eq!(
        plugin_name("/usr/local/bin/kubectl-tributary"),
        Some("kubectl tributary")
    );
    assert_eq!(plugin_name("kubectl-tributary.exe"), Some("kubectl tributary"));
    assert_eq!(plugin_name("/usr/bin/tributary"), None);
    let command = command_for(Some("/usr/local/bin/kubectl-tributary"));
    let matches = command
        .clone()
        .try_get_matches_from(["kubectl-tributary", "tree", "-n", "shop", "-o", "mermaid"])
        .unwrap();
    let cli = <Cli as clap::FromArgMatches>::from_arg_matches(&matches).unwrap();
    let Command::Tree(tree) = cli.command else {
        panic!("not tree")
    };
    assert_eq!(tree.namespace.as_deref(), Some("shop"));
    assert_eq!(tree.output, crate::inspect::render::Format::Mermaid);
    let usage = command
        .try_get_matches_from(["kubectl-tributary", "nope"])
        .unwrap_err()
        .to_string();
    assert!(usage.contains("kubectl tributary"), "{usage}");
}
