use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;

use super::*;

fn meta(owner: Option<(&str, bool)>) -> ObjectMeta {
    ObjectMeta {
        name: Some("c-worker".into()),
        owner_references: owner.map(|(uid, controller)| {
            vec![OwnerReference {
                api_version: "tributary.dev/v1alpha1".into(),
                kind: "Consumer".into(),
                name: format!("owner-{uid}"),
                uid: uid.into(),
                controller: Some(controller),
                ..OwnerReference::default()
            }]
        }),
        ..ObjectMeta::default()
    }
}

#[test]
fn a_child_is_applied_only_when_absent_or_already_ours() {
    let desired = meta(Some(("u-1", true)));
    assert_eq!(child_conflict(None, &desired), None);
    assert_eq!(child_conflict(Some(&meta(Some(("u-1", true)))), &desired), None);
    let other = child_conflict(Some(&meta(Some(("u-2", true)))), &desired).unwrap();
    assert!(other.contains("Consumer owner-u-2"), "{other}");
    let unowned = child_conflict(Some(&meta(None)), &desired).unwrap();
    assert!(unowned.contains("not controlled"), "{unowned}");
    // A non-controller reference to this object does not make it ours.
    assert!(child_conflict(Some(&meta(Some(("u-1", false)))), &desired).is_some());
}
