//! Subscription reconciler. Pipeline: validate (no network) → build desired state → apply → status.
//! This stage implements validation and status: an invalid filter policy is reported as `Ready=False`
//! with the filter engine's message, which is what users see when no admission webhook is installed.
//! Provisioning the SNS subscription arrives with the AWS provider.

use std::sync::Arc;

use k8s_openapi::jiff::Timestamp;
use kube::{
    Api, ResourceExt,
    api::{Patch, PatchParams},
    runtime::controller::Action,
};
use serde_json::json;

use super::{
    Context, Error,
    conditions::{self, Desired, types},
};
use crate::{
    api::subscription::{FilterScope, Subscription},
    filter::{Policy, Scope},
};

/// Why a Subscription cannot be reconciled as written. Permanent: only a spec change fixes it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Invalid {
    /// The filter policy breaks a rule of the SNS filter-policy language.
    #[error("spec.filter.policy: {0}")]
    Filter(String),
}

/// The validate step: pure, no network.
pub fn validate(subscription: &Subscription) -> Result<Option<Policy>, Invalid> {
    let Some(filter) = &subscription.spec.filter else {
        return Ok(None);
    };
    let scope = match filter.scope {
        FilterScope::MessageAttributes => Scope::MessageAttributes,
        FilterScope::MessageBody => Scope::MessageBody,
    };
    Policy::parse(&serde_json::Value::Object(filter.policy.clone()), scope)
        .map(Some)
        .map_err(|e| Invalid::Filter(e.to_string()))
}

/// The conditions for the outcome of validation.
pub fn desired_conditions(validated: &Result<Option<Policy>, Invalid>) -> Vec<Desired> {
    match validated {
        Err(invalid) => vec![
            Desired {
                type_: types::READY,
                status: "False",
                reason: "InvalidFilter",
                message: invalid.to_string(),
            },
            Desired {
                type_: types::SYNCED,
                status: "False",
                reason: "InvalidFilter",
                message: invalid.to_string(),
            },
        ],
        Ok(_) => vec![
            Desired {
                type_: types::READY,
                status: "Unknown",
                reason: "Provisioning",
                message: "the spec is valid; waiting for the SNS subscription to be provisioned".to_owned(),
            },
            Desired {
                type_: types::SYNCED,
                status: "Unknown",
                reason: "Provisioning",
                message: String::new(),
            },
        ],
    }
}

/// Reconcile one Subscription.
pub async fn reconcile(subscription: Arc<Subscription>, ctx: Arc<Context>) -> Result<Action, Error> {
    let name = subscription.name_any();
    let namespace = subscription.namespace().unwrap_or_default();
    let validated = validate(&subscription);
    let current = subscription
        .status
        .as_ref()
        .map(|s| s.common.conditions.clone())
        .unwrap_or_default();
    let generation = subscription.metadata.generation;
    let conditions = conditions::merge(
        &current,
        &desired_conditions(&validated),
        generation,
        Timestamp::now(),
    );
    let applied = validated
        .as_ref()
        .ok()
        .and_then(|p| p.as_ref())
        .map(Policy::canonical_json);
    let status = json!({
        "apiVersion": "tributary.dev/v1alpha1",
        "kind": "Subscription",
        "status": {"observedGeneration": generation, "conditions": conditions, "appliedFilterPolicy": applied},
    });
    let api: Api<Subscription> = Api::namespaced(ctx.client.clone(), &namespace);
    api.patch_status(
        &name,
        &PatchParams::apply(super::FIELD_MANAGER).force(),
        &Patch::Apply(&status),
    )
    .await
    .map_err(|source| Error::Kube {
        what: format!("writing status of Subscription {namespace}/{name}"),
        source,
    })?;
    // An invalid spec waits for a change; nothing to retry.
    Ok(Action::await_change())
}
