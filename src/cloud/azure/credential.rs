//! The controller's Azure identity, from `azure_identity`: which credential is used is chosen by
//! `TRIBUTARY_AZURE_CREDENTIAL` (`auto` when unset):
//! - `workload-identity`: AKS workload identity (`AZURE_CLIENT_ID`, `AZURE_TENANT_ID` and
//!   `AZURE_FEDERATED_TOKEN_FILE`, which the workload identity webhook sets in the pod);
//! - `client-secret`: a service principal (`AZURE_TENANT_ID`, `AZURE_CLIENT_ID`, `AZURE_CLIENT_SECRET`);
//! - `managed-identity`: the node's or pod's managed identity (a user-assigned one by `AZURE_CLIENT_ID`);
//! - `developer`: the Azure CLI or Azure Developer CLI login, for running the controller on a laptop;
//! - `auto`: the first of these whose variables are set, managed identity inside a cluster, else the
//!   developer login.

use std::sync::Arc;

use azure_core::{credentials::Secret, credentials::TokenCredential};
use azure_identity::{
    ClientSecretCredential, DeveloperToolsCredential, ManagedIdentityCredential,
    ManagedIdentityCredentialOptions, UserAssignedId, WorkloadIdentityCredential,
    WorkloadIdentityCredentialOptions,
};

/// The credential kinds `TRIBUTARY_AZURE_CREDENTIAL` names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CredentialKind {
    /// AKS workload identity.
    WorkloadIdentity,
    /// A service principal's client secret.
    ClientSecret,
    /// A managed identity.
    ManagedIdentity,
    /// The Azure CLI or Azure Developer CLI login.
    Developer,
}

/// What the controller's Azure identity is made from: the choice and the values it may need, as the
/// command line declares them (`tributary controller --help`).
#[derive(Clone, Default)]
pub struct CredentialSettings {
    /// `TRIBUTARY_AZURE_CREDENTIAL`; `None` is `auto`, and an identity that cannot be set up is then not
    /// an error (DeviceStreams wait), while a named one is.
    pub choice: Option<CredentialChoice>,
    /// `AZURE_TENANT_ID`.
    pub tenant_id: Option<String>,
    /// `AZURE_CLIENT_ID`.
    pub client_id: Option<String>,
    /// `AZURE_CLIENT_SECRET`.
    pub client_secret: Option<String>,
    /// `AZURE_FEDERATED_TOKEN_FILE`.
    pub federated_token_file: Option<std::path::PathBuf>,
    /// Whether this process runs in a Kubernetes pod (`KUBERNETES_SERVICE_HOST` is set).
    pub in_cluster: bool,
}

/// The values `TRIBUTARY_AZURE_CREDENTIAL` takes: a credential kind, or `auto`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CredentialChoice {
    /// The first kind whose variables are set (see the module documentation).
    Auto,
    /// That kind.
    Kind(CredentialKind),
}

impl std::str::FromStr for CredentialChoice {
    type Err = String;

    fn from_str(value: &str) -> Result<Self, String> {
        Ok(match value {
            "auto" => Self::Auto,
            "workload-identity" => Self::Kind(CredentialKind::WorkloadIdentity),
            "client-secret" => Self::Kind(CredentialKind::ClientSecret),
            "managed-identity" => Self::Kind(CredentialKind::ManagedIdentity),
            "developer" => Self::Kind(CredentialKind::Developer),
            other => {
                return Err(format!(
                    "TRIBUTARY_AZURE_CREDENTIAL must be auto, workload-identity, client-secret, managed-identity \
                     or developer, got {other:?}"
                ));
            }
        })
    }
}

/// The credential kind `settings` choose (`auto` when none is named).
pub fn choose(settings: &CredentialSettings) -> CredentialKind {
    let set = |value: &Option<String>| value.as_deref().is_some_and(|v| !v.is_empty());
    match settings.choice.unwrap_or(CredentialChoice::Auto) {
        CredentialChoice::Kind(kind) => kind,
        CredentialChoice::Auto if settings.federated_token_file.is_some() => CredentialKind::WorkloadIdentity,
        CredentialChoice::Auto if set(&settings.client_secret) => CredentialKind::ClientSecret,
        CredentialChoice::Auto if settings.in_cluster => CredentialKind::ManagedIdentity,
        CredentialChoice::Auto => CredentialKind::Developer,
    }
}

/// The credential `settings` choose, set up.
pub fn credential(
    settings: &CredentialSettings,
) -> Result<(CredentialKind, Arc<dyn TokenCredential>), String> {
    let kind = choose(settings);
    let required = |value: &Option<String>, name: &str| {
        value
            .clone()
            .filter(|v| !v.is_empty())
            .ok_or_else(|| format!("{kind:?} needs {name}"))
    };
    let failed = |e: azure_core::Error| format!("cannot set up the {kind:?} Azure credential: {e}");
    let credential: Arc<dyn TokenCredential> = match kind {
        CredentialKind::WorkloadIdentity => {
            let options = WorkloadIdentityCredentialOptions {
                client_id: settings.client_id.clone(),
                tenant_id: settings.tenant_id.clone(),
                token_file_path: settings.federated_token_file.clone(),
                ..Default::default()
            };
            WorkloadIdentityCredential::new(Some(options)).map_err(failed)?
        }
        CredentialKind::ClientSecret => ClientSecretCredential::new(
            &required(&settings.tenant_id, "AZURE_TENANT_ID")?,
            required(&settings.client_id, "AZURE_CLIENT_ID")?,
            Secret::new(required(&settings.client_secret, "AZURE_CLIENT_SECRET")?),
            None,
        )
        .map_err(failed)?,
        CredentialKind::ManagedIdentity => {
            let options = ManagedIdentityCredentialOptions {
                user_assigned_id: settings.client_id.clone().map(UserAssignedId::ClientId),
                ..Default::default()
            };
            ManagedIdentityCredential::new(Some(options)).map_err(failed)?
        }
        CredentialKind::Developer => DeveloperToolsCredential::new(None).map_err(failed)?,
    };
    Ok((kind, credential))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(federated: bool, secret: bool, in_cluster: bool) -> CredentialSettings {
        CredentialSettings {
            federated_token_file: federated.then(|| "/var/run/token".into()),
            client_secret: secret.then(|| "x".to_owned()),
            in_cluster,
            ..CredentialSettings::default()
        }
    }

    #[test]
    fn auto_takes_the_first_credential_whose_variables_are_set() {
        assert_eq!(
            choose(&settings(true, true, true)),
            CredentialKind::WorkloadIdentity
        );
        assert_eq!(choose(&settings(false, true, true)), CredentialKind::ClientSecret);
        let auto = CredentialSettings {
            choice: Some(CredentialChoice::Auto),
            ..settings(false, false, true)
        };
        assert_eq!(choose(&auto), CredentialKind::ManagedIdentity);
        assert_eq!(choose(&settings(false, false, false)), CredentialKind::Developer);
    }

    #[test]
    fn an_explicit_choice_wins_and_a_typo_is_named() {
        let developer = CredentialSettings {
            choice: Some("developer".parse().unwrap()),
            ..settings(false, true, false)
        };
        assert_eq!(choose(&developer), CredentialKind::Developer);
        let error = "msi".parse::<CredentialChoice>().unwrap_err();
        assert!(
            error.contains("TRIBUTARY_AZURE_CREDENTIAL") && error.contains("\"msi\""),
            "{error}"
        );
    }
}
