//! Child apply, shared by every kind that runs Kubernetes objects for its object (a Consumer's workers,
//! a Subscription relay's, a DeviceStream's connection Secret): server-side apply of a child that the
//! object controls, and never over an object of that name that something else controls.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::{
    Api, Resource, ResourceExt,
    api::{Patch, PatchParams},
};
use serde::Serialize;

use super::error::Error;
use crate::controller::{Cloud, Context, FIELD_MANAGER};

/// Why an existing object must not be taken over by applying `desired` over it: it exists and its
/// controller (ownerReference with `controller: true`) is not the owner `desired` names (another object,
/// or none, i.e. made by hand or another tool). `None`: absent, or already ours. Pure.
pub fn child_conflict(existing: Option<&ObjectMeta>, desired: &ObjectMeta) -> Option<String> {
    let controller_of = |meta: &ObjectMeta| {
        meta.owner_references
            .iter()
            .flatten()
            .find(|o| o.controller == Some(true))
            .map(|o| (o.uid.clone(), format!("{} {}", o.kind, o.name)))
    };
    let existing = existing?;
    let (uid, _) = controller_of(desired)?;
    match controller_of(existing) {
        Some((existing_uid, _)) if existing_uid == uid => None,
        Some((_, owner)) => Some(format!("it is controlled by {owner}")),
        None => Some("it is not controlled by any object (made outside Tributary)".to_owned()),
    }
}

/// Server-side apply of one child. An object of that name that this object does not control already is
/// never taken over: `ChildConflict` names it. The apply itself is forced: the controller owns every
/// field it sets on its own children.
pub async fn apply_child<C: Cloud, K>(
    ctx: &Context<C>,
    object: &str,
    namespace: &str,
    child: &K,
) -> Result<K, Error>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + std::fmt::Debug
        + Serialize
        + serde::de::DeserializeOwned,
{
    let api: Api<K> = Api::namespaced(ctx.client.clone(), namespace);
    let name = child.name_any();
    let kind = K::kind(&());
    let existing = api
        .get_metadata_opt(&name)
        .await
        .map_err(|source| Error::kube(object, format!("reading {kind} {name}"), source))?;
    if let Some(why) = child_conflict(existing.as_ref().map(|e| &e.metadata), child.meta()) {
        return Err(Error::ChildConflict {
            object: object.to_owned(),
            message: format!(
                "{kind} {namespace}/{name} exists and {why}: it is not taken over; delete or rename it, or \
                 rename this object"
            ),
        });
    }
    let mut patch = serde_json::to_value(child).unwrap_or_default();
    patch["apiVersion"] = K::api_version(&()).into();
    patch["kind"] = kind.clone().into();
    api.patch(
        &name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&patch),
    )
    .await
    .map_err(|source| Error::kube(object, format!("applying {kind} {name}"), source))
}

#[cfg(test)]
#[path = "children_tests.rs"]
mod tests;
