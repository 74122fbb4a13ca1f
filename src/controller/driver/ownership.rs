//! Build step, pure: the ownership tags Tributary puts on every cloud resource it creates, and the
//! decision what to do with a resource that already exists under the desired name (ours, adopt it, or
//! refuse), or that is about to be deleted (only ever our own).
//!
//! The tags name the owning object (kind, namespace, name) and the cluster its controller runs in
//! ([`TAG_CLUSTER`], the controller's cluster identity), so two clusters sharing an account never take
//! each other's resources. Resources created before the cluster tag existed carry only the three object
//! tags: they are treated as ours ([`Ownership::Legacy`]) and get the cluster tag. Adoption only ever
//! takes a resource without any Tributary tag.

use crate::cloud::Tags;

use super::error::Error;

/// Tag naming the namespace of the owning object.
pub const TAG_NAMESPACE: &str = "tributary.dev/namespace";
/// Tag naming the owning object.
pub const TAG_NAME: &str = "tributary.dev/name";
/// Tag naming the kind of the owning object.
pub const TAG_KIND: &str = "tributary.dev/kind";
/// Tag naming the cluster of the owning object's controller (its cluster identity).
pub const TAG_CLUSTER: &str = "tributary.dev/cluster";

/// Every ownership tag; a resource with any of them is Tributary's and is never adopted.
const OWNERSHIP_TAGS: [&str; 4] = [TAG_CLUSTER, TAG_KIND, TAG_NAMESPACE, TAG_NAME];

/// The object that owns (or would own) a cloud resource, in this controller's cluster.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Owner<'a> {
    /// The controller's cluster identity.
    pub cluster: &'a str,
    /// The owning object's kind.
    pub kind: &'a str,
    /// Its namespace.
    pub namespace: &'a str,
    /// Its name.
    pub name: &'a str,
}

/// The ownership tags of `owner`.
pub fn ownership_tags(owner: &Owner<'_>) -> Tags {
    Tags::from([
        (TAG_CLUSTER.to_owned(), owner.cluster.to_owned()),
        (TAG_NAMESPACE.to_owned(), owner.namespace.to_owned()),
        (TAG_NAME.to_owned(), owner.name.to_owned()),
        (TAG_KIND.to_owned(), owner.kind.to_owned()),
    ])
}

/// The tags a resource should carry: the spec's tags plus the ownership tags (which the spec cannot
/// override, or ownership could be faked or lost).
pub fn desired_tags(owner: &Owner<'_>, spec_tags: &Tags) -> Tags {
    let mut tags = spec_tags.clone();
    tags.extend(ownership_tags(owner));
    tags
}

/// Tags in `desired` that `observed` lacks or has with another value.
pub fn missing_tags(desired: &Tags, observed: &Tags) -> Tags {
    desired
        .iter()
        .filter(|(key, value)| observed.get(*key) != Some(*value))
        .map(|(key, value)| (key.clone(), value.clone()))
        .collect()
}

/// Prefix of the tags AWS itself sets (CloudFormation, Service Catalog), which no user may remove.
const AWS_RESERVED_PREFIX: &str = "aws:";

/// Keys of tags on a resource of ours that `desired` does not have: removed, so that a tag deleted from
/// `spec.tags` goes from the cloud too. The spec is the whole truth about a managed resource's tags, as
/// with ACK and Crossplane; only AWS's reserved `aws:` tags are left alone.
pub fn stale_tags(desired: &Tags, observed: &Tags) -> Vec<String> {
    observed
        .keys()
        .filter(|key| !desired.contains_key(*key) && !key.starts_with(AWS_RESERVED_PREFIX))
        .cloned()
        .collect()
}

/// What to do with a cloud resource that exists under the desired name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ownership {
    /// Tagged as this object's, in this cluster: carry on.
    Ours,
    /// Tagged as this object's with the three tags of before cluster identities: ours; add the cluster
    /// tag.
    Legacy,
    /// No Tributary tag, and `spec.adopt` is true (and allowed): tag it and take it over.
    Adopt,
    /// Tagged as another Tributary object's or another cluster's: never taken, never deleted. The text
    /// says who owns it.
    OwnedByAnother(String),
    /// No Tributary tag and not to be adopted.
    Unowned,
}

impl Ownership {
    /// Whether the resource is this object's to change and delete.
    pub fn is_ours(&self) -> bool {
        matches!(self, Self::Ours | Self::Legacy)
    }
}

/// Decides [`Ownership`] from the resource's tags.
pub fn ownership(observed: &Tags, owner: &Owner<'_>, adopt: bool) -> Ownership {
    let ours = ownership_tags(owner);
    let same = |key: &str| observed.get(key) == ours.get(key);
    let object_tags_match = [TAG_KIND, TAG_NAMESPACE, TAG_NAME].into_iter().all(same);
    match observed.get(TAG_CLUSTER) {
        Some(_) if object_tags_match && same(TAG_CLUSTER) => Ownership::Ours,
        None if object_tags_match => Ownership::Legacy,
        _ if OWNERSHIP_TAGS.iter().any(|key| observed.contains_key(*key)) => {
            Ownership::OwnedByAnother(owner_of(observed))
        }
        _ if adopt => Ownership::Adopt,
        _ => Ownership::Unowned,
    }
}

/// Who the ownership tags name, for a message: `it belongs to Queue ns/q of cluster c`.
pub fn owner_of(observed: &Tags) -> String {
    let tag = |key: &str| observed.get(key).map_or("?", String::as_str);
    let cluster = observed.get(TAG_CLUSTER).map_or_else(
        || " (tagged before cluster identities)".to_owned(),
        |c| format!(" of cluster {c}"),
    );
    format!(
        "it belongs to {} {}/{}{cluster}",
        tag(TAG_KIND),
        tag(TAG_NAMESPACE),
        tag(TAG_NAME)
    )
}

/// The error for a resource that exists under the desired name and is not this object's: `resource`
/// names it (e.g. `SQS queue q`). `None` when `ownership` lets the reconcile go on.
pub fn refusal(object: &str, resource: &str, ownership: &Ownership) -> Option<Error> {
    match ownership {
        Ownership::Ours | Ownership::Legacy | Ownership::Adopt => None,
        Ownership::OwnedByAnother(who) => Some(Error::OwnedByAnother {
            object: object.to_owned(),
            message: format!(
                "{resource} exists and {who}: adoption never takes a resource owned by another Tributary \
                 object or cluster; use another name"
            ),
        }),
        Ownership::Unowned => Some(Error::AlreadyExists {
            object: object.to_owned(),
            message: format!(
                "{resource} exists and it was not created by Tributary; set spec.adopt: true to take it over \
                 (where the namespace's TenantPolicy allows adoption)"
            ),
        }),
    }
}

/// Before a delete: `None` while the resource is still `owner`'s, else the Warning Event's note saying
/// that it is kept.
pub fn lost(resource: &str, observed: &Tags, owner: &Owner<'_>) -> Option<String> {
    (!ownership(observed, owner, false).is_ours()).then(|| kept_note(resource, observed))
}

/// The Warning Event's note when a resource to delete is no longer this object's: it is kept.
pub fn kept_note(resource: &str, observed: &Tags) -> String {
    format!(
        "{resource} is kept: its ownership tags no longer name this object ({}); only the finalizer is removed",
        owner_of(observed)
    )
}

#[cfg(test)]
#[path = "ownership_tests.rs"]
mod tests;
