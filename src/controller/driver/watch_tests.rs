use super::*;
use crate::api::topic::TopicStatus;

fn subscriber(
    identity: Identity<Topic>,
    deletions: bool,
) -> (Subscriber<Topic>, mpsc::UnboundedReceiver<Arc<Topic>>) {
    let (sender, receiver) = mpsc::unbounded();
    let subscriber = Subscriber {
        identity,
        deletions,
        seen: HashMap::new(),
        sender,
    };
    (subscriber, receiver)
}

#[test]
fn subscribers_see_changes_of_their_identity_and_deletions_if_asked() {
    let (primary, mut primary_rx) = subscriber(spec_or_lifecycle, false);
    let (related, mut related_rx) = subscriber(topic_arn, true);
    let mut subscribers = vec![primary, related];
    let mut topic = Topic::new("t", Default::default());
    topic.metadata.namespace = Some("ns".into());
    topic.metadata.uid = Some("uid-1".into());
    let key = ObjectRef::from_obj(&topic);
    let mut passed = |subscribers: &mut Vec<Subscriber<Topic>>, topic: &Topic, deleted: bool| {
        publish(subscribers, key.clone(), Arc::new(topic.clone()), deleted);
        (primary_rx.try_recv().is_ok(), related_rx.try_recv().is_ok())
    };
    assert_eq!(
        passed(&mut subscribers, &topic, false),
        (true, true),
        "first sight"
    );
    assert_eq!(
        passed(&mut subscribers, &topic, false),
        (false, false),
        "no change"
    );
    topic.status = Some(TopicStatus {
        arn: Some("arn".into()),
        ..TopicStatus::default()
    });
    assert_eq!(
        passed(&mut subscribers, &topic, false),
        (false, true),
        "status only"
    );
    topic.metadata.uid = Some("uid-2".into());
    assert_eq!(passed(&mut subscribers, &topic, false), (true, true), "recreated");
    assert_eq!(passed(&mut subscribers, &topic, true), (false, true), "deleted");
    assert_eq!(
        passed(&mut subscribers, &topic, false),
        (true, true),
        "seen again"
    );
}

#[test]
fn status_only_changes_do_not_pass_the_primary_predicate() {
    let mut topic = Topic::new("t", Default::default());
    topic.metadata.generation = Some(1);
    let before = spec_or_lifecycle(&topic);
    topic.status = Some(TopicStatus {
        arn: Some("arn".into()),
        ..TopicStatus::default()
    });
    assert_eq!(spec_or_lifecycle(&topic), before);
    assert_ne!(topic_identity(&topic), {
        let mut bare = topic.clone();
        bare.status = None;
        topic_identity(&bare)
    });
    topic.metadata.finalizers = Some(vec!["tributary.dev/cleanup".into()]);
    assert_ne!(
        spec_or_lifecycle(&topic),
        before,
        "adding the finalizer must pass"
    );
}
