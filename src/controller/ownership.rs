//! Build step, pure: the ownership tags Tributary puts on every cloud resource it creates, and the
//! decision what to do with a resource that already exists under the desired name (ours, adopt it, or
//! refuse with `AlreadyExists`).

use crate::cloud::Tags;

/// Tag naming the namespace of the owning object.
pub const TAG_NAMESPACE: &str = "tributary.dev/namespace";
/// Tag naming the owning object.
pub const TAG_NAME: &str = "tributary.dev/name";
/// Tag naming the kind of the owning object.
pub const TAG_KIND: &str = "tributary.dev/kind";

/// The ownership tags of the object `kind` `namespace/name`.
pub fn ownership_tags(kind: &str, namespace: &str, name: &str) -> Tags {
    Tags::from([
        (TAG_NAMESPACE.to_owned(), namespace.to_owned()),
        (TAG_NAME.to_owned(), name.to_owned()),
        (TAG_KIND.to_owned(), kind.to_owned()),
    ])
}

/// The tags a resource should carry: the spec's tags plus the ownership tags (which the spec cannot
/// override, or ownership could be faked or lost).
pub fn desired_tags(kind: &str, namespace: &str, name: &str, spec_tags: &Tags) -> Tags {
    let mut tags = spec_tags.clone();
    tags.extend(ownership_tags(kind, namespace, name));
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
    /// Tagged as this object's: carry on.
    Ours,
    /// Not ours, and `spec.adopt` is true: tag it and take it over.
    Adopt,
    /// Not ours and not to be adopted; the text says who owns it, when known.
    Foreign(String),
}

/// Decides [`Ownership`] from the resource's tags.
pub fn ownership(observed: &Tags, kind: &str, namespace: &str, name: &str, adopt: bool) -> Ownership {
    let ours = ownership_tags(kind, namespace, name);
    if ours.iter().all(|(key, value)| observed.get(key) == Some(value)) {
        return Ownership::Ours;
    }
    if adopt {
        return Ownership::Adopt;
    }
    let owner = match (
        observed.get(TAG_KIND),
        observed.get(TAG_NAMESPACE),
        observed.get(TAG_NAME),
    ) {
        (Some(kind), Some(namespace), Some(name)) => format!("it belongs to {kind} {namespace}/{name}"),
        _ => "it was not created by Tributary".to_owned(),
    };
    Ownership::Foreign(owner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_spec_cannot_override_ownership_tags() {
        let spec = Tags::from([
            (TAG_NAME.to_owned(), "other".to_owned()),
            ("team".to_owned(), "shop".to_owned()),
        ]);
        let tags = desired_tags("Queue", "ns", "q", &spec);
        assert_eq!(tags[TAG_NAME], "q");
        assert_eq!(tags["team"], "shop");
        assert_eq!(tags.len(), 4);
    }

    #[test]
    fn ours_adopt_or_foreign() {
        let ours = ownership_tags("Queue", "ns", "q");
        assert_eq!(ownership(&ours, "Queue", "ns", "q", false), Ownership::Ours);
        assert_eq!(
            ownership(&Tags::new(), "Queue", "ns", "q", true),
            Ownership::Adopt
        );
        assert_eq!(
            ownership(&Tags::new(), "Queue", "ns", "q", false),
            Ownership::Foreign("it was not created by Tributary".into())
        );
        assert_eq!(
            ownership(&ours, "Queue", "other", "q", false),
            Ownership::Foreign("it belongs to Queue ns/q".into())
        );
    }

    #[test]
    fn only_missing_or_changed_tags_are_set() {
        let desired = ownership_tags("Topic", "ns", "t");
        let mut observed = desired.clone();
        observed.insert("extra".into(), "kept".into());
        assert!(missing_tags(&desired, &observed).is_empty());
        observed.insert(TAG_NAME.into(), "x".into());
        assert_eq!(missing_tags(&desired, &observed).len(), 1);
    }

    #[test]
    fn tags_not_in_the_spec_are_stale_except_aws_reserved_ones() {
        let desired = desired_tags("Queue", "ns", "q", &Tags::from([("team".into(), "shop".into())]));
        let mut observed = desired.clone();
        assert!(stale_tags(&desired, &observed).is_empty());
        observed.insert("removed-from-spec".into(), "x".into());
        observed.insert("aws:cloudformation:stack-name".into(), "s".into());
        assert_eq!(stale_tags(&desired, &observed), ["removed-from-spec"]);
    }
}
