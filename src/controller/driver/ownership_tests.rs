use super::*;

const HERE: Owner<'static> = Owner {
    cluster: "c1",
    kind: "Queue",
    namespace: "ns",
    name: "q",
};

fn legacy_tags(kind: &str, namespace: &str, name: &str) -> Tags {
    Tags::from([
        (TAG_KIND.to_owned(), kind.to_owned()),
        (TAG_NAMESPACE.to_owned(), namespace.to_owned()),
        (TAG_NAME.to_owned(), name.to_owned()),
    ])
}

#[test]
fn the_spec_cannot_override_ownership_tags() {
    let spec = Tags::from([
        (TAG_NAME.to_owned(), "other".to_owned()),
        (TAG_CLUSTER.to_owned(), "elsewhere".to_owned()),
        ("team".to_owned(), "shop".to_owned()),
    ]);
    let tags = desired_tags(&HERE, &spec);
    assert_eq!(tags[TAG_NAME], "q");
    assert_eq!(tags[TAG_CLUSTER], "c1");
    assert_eq!(tags["team"], "shop");
    assert_eq!(tags.len(), 5);
}

#[test]
fn ours_only_with_the_same_object_and_cluster() {
    let ours = ownership_tags(&HERE);
    assert_eq!(ownership(&ours, &HERE, false), Ownership::Ours);
    assert_eq!(ownership(&ours, &HERE, true), Ownership::Ours);
    let other_cluster = Owner {
        cluster: "c2",
        ..HERE
    };
    assert_eq!(
        ownership(&ours, &other_cluster, true),
        Ownership::OwnedByAnother("it belongs to Queue ns/q of cluster c1".into())
    );
}

#[test]
fn legacy_tags_of_this_object_are_ours_and_of_another_are_never_adopted() {
    let legacy = legacy_tags("Queue", "ns", "q");
    assert_eq!(ownership(&legacy, &HERE, false), Ownership::Legacy);
    assert!(ownership(&legacy, &HERE, false).is_ours());
    let another = legacy_tags("Queue", "a", "q");
    assert_eq!(
        ownership(&another, &HERE, true),
        Ownership::OwnedByAnother("it belongs to Queue a/q (tagged before cluster identities)".into())
    );
}

#[test]
fn adoption_takes_only_untagged_resources() {
    let untagged = Tags::from([("team".to_owned(), "x".to_owned())]);
    assert_eq!(ownership(&untagged, &HERE, true), Ownership::Adopt);
    assert_eq!(ownership(&untagged, &HERE, false), Ownership::Unowned);
    assert!(!Ownership::Adopt.is_ours());
    // One stray Tributary tag is enough to refuse: the resource is someone's.
    let partial = Tags::from([(TAG_CLUSTER.to_owned(), "c1".to_owned())]);
    assert!(matches!(
        ownership(&partial, &HERE, true),
        Ownership::OwnedByAnother(_)
    ));
    // Another kind in the same namespace and name is another owner.
    let dead_letter = Owner {
        kind: "DeadLetter",
        ..HERE
    };
    assert!(matches!(
        ownership(&ownership_tags(&HERE), &dead_letter, true),
        Ownership::OwnedByAnother(_)
    ));
}

#[test]
fn refusals_name_the_owner_and_their_reason() {
    let other = ownership(
        &ownership_tags(&Owner {
            namespace: "a",
            ..HERE
        }),
        &HERE,
        true,
    );
    let error = refusal("Queue b/q", "SQS queue x", &other).unwrap();
    assert_eq!(error.reason(), "OwnedByAnother");
    assert!(
        error.condition_message().contains("Queue a/q of cluster c1"),
        "{error}"
    );
    let error = refusal("Queue b/q", "SQS queue x", &Ownership::Unowned).unwrap();
    assert_eq!(error.reason(), "AlreadyExists");
    assert!(
        error.condition_message().contains("set spec.adopt: true"),
        "{error}"
    );
    assert!(refusal("Queue b/q", "SQS queue x", &Ownership::Legacy).is_none());
    let note = kept_note("SQS queue x", &ownership_tags(&Owner { name: "z", ..HERE }));
    assert!(note.contains("Queue ns/z of cluster c1"), "{note}");
}

#[test]
fn only_missing_or_changed_tags_are_set() {
    let desired = ownership_tags(&HERE);
    let mut observed = desired.clone();
    observed.insert("extra".into(), "kept".into());
    assert!(missing_tags(&desired, &observed).is_empty());
    observed.insert(TAG_NAME.into(), "x".into());
    assert_eq!(missing_tags(&desired, &observed).len(), 1);
    // A legacy resource gets exactly the cluster tag.
    let legacy = legacy_tags("Queue", "ns", "q");
    assert_eq!(
        missing_tags(&desired, &legacy),
        Tags::from([(TAG_CLUSTER.to_owned(), "c1".to_owned())])
    );
}

#[test]
fn tags_not_in_the_spec_are_stale_except_aws_reserved_ones() {
    let desired = desired_tags(&HERE, &Tags::from([("team".into(), "shop".into())]));
    let mut observed = desired.clone();
    assert!(stale_tags(&desired, &observed).is_empty());
    observed.insert("removed-from-spec".into(), "x".into());
    observed.insert("aws:cloudformation:stack-name".into(), "s".into());
    assert_eq!(stale_tags(&desired, &observed), ["removed-from-spec"]);
}
