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

/// The credential kind for `choice` (the value of `TRIBUTARY_AZURE_CREDENTIAL`, `auto` if unset), given
/// the environment `var`.
pub fn choose(choice: Option<&str>, var: impl Fn(&str) -> Option<String>) -> Result<CredentialKind, String> {
    let set = |name: &str| var(name).is_some_and(|v| !v.is_empty());
    Ok(match choice.unwrap_or("auto") {
        "workload-identity" => CredentialKind::WorkloadIdentity,
        "client-secret" => CredentialKind::ClientSecret,
        "managed-identity" => CredentialKind::ManagedIdentity,
        "developer" => CredentialKind::Developer,
        "auto" if set("AZURE_FEDERATED_TOKEN_FILE") => CredentialKind::WorkloadIdentity,
        "auto" if set("AZURE_CLIENT_SECRET") => CredentialKind::ClientSecret,
        "auto" if set("KUBERNETES_SERVICE_HOST") => CredentialKind::ManagedIdentity,
        "auto" => CredentialKind::Developer,
        other => {
            return Err(format!(
                "TRIBUTARY_AZURE_CREDENTIAL must be auto, workload-identity, client-secret, managed-identity or \
                 developer, got {other:?}"
            ));
        }
    })
}

/// The credential chosen from the process environment.
pub fn from_env() -> Result<(CredentialKind, Arc<dyn TokenCredential>), String> {
    let var = |name: &str| std::env::var(name).ok();
    let kind = choose(var("TRIBUTARY_AZURE_CREDENTIAL").as_deref(), var)?;
    let required = |name: &str| var(name).ok_or_else(|| format!("{kind:?} needs {name}"));
    let failed = |e: azure_core::Error| format!("cannot set up the {kind:?} Azure credential: {e}");
    let credential: Arc<dyn TokenCredential> = match kind {
        CredentialKind::WorkloadIdentity => WorkloadIdentityCredential::new(None).map_err(failed)?,
        CredentialKind::ClientSecret => ClientSecretCredential::new(
            &required("AZURE_TENANT_ID")?,
            required("AZURE_CLIENT_ID")?,
            Secret::new(required("AZURE_CLIENT_SECRET")?),
            None,
        )
        .map_err(failed)?,
        CredentialKind::ManagedIdentity => {
            let options = ManagedIdentityCredentialOptions {
                user_assigned_id: var("AZURE_CLIENT_ID").map(UserAssignedId::ClientId),
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

    fn env(set: &[&str]) -> impl Fn(&str) -> Option<String> {
        let set: Vec<String> = set.iter().map(|s| (*s).to_owned()).collect();
        move |name| set.iter().any(|s| s == name).then(|| "x".to_owned())
    }

    #[test]
    fn auto_takes_the_first_credential_whose_variables_are_set() {
        let all = [
            "AZURE_FEDERATED_TOKEN_FILE",
            "AZURE_CLIENT_SECRET",
            "KUBERNETES_SERVICE_HOST",
        ];
        assert_eq!(choose(None, env(&all)), Ok(CredentialKind::WorkloadIdentity));
        assert_eq!(choose(None, env(&all[1..])), Ok(CredentialKind::ClientSecret));
        assert_eq!(
            choose(Some("auto"), env(&all[2..])),
            Ok(CredentialKind::ManagedIdentity)
        );
        assert_eq!(choose(None, env(&[])), Ok(CredentialKind::Developer));
    }

    #[test]
    fn an_explicit_choice_wins_and_a_typo_is_named() {
        assert_eq!(
            choose(Some("developer"), env(&["AZURE_CLIENT_SECRET"])),
            Ok(CredentialKind::Developer)
        );
        let error = choose(Some("msi"), env(&[])).unwrap_err();
        assert!(
            error.contains("TRIBUTARY_AZURE_CREDENTIAL") && error.contains("\"msi\""),
            "{error}"
        );
    }
}
