use serde_json::json;

use super::*;
use crate::cloud::attributes_of;
use crate::cloud::aws::attributes::{RedriveTarget, queue_policy, redrive_allow_policy, redrive_policy};

#[test]
fn redrive_policy_numbers_as_strings_key_order_and_whitespace_are_equal() {
    let ours = redrive_policy(&RedriveTarget {
        dead_letter_arn: "arn:aws:sqs:us-east-1:123456789012:dlq".into(),
        max_receive_count: 5,
    });
    let theirs = r#"{ "maxReceiveCount" : "5",
        "deadLetterTargetArn": "arn:aws:sqs:us-east-1:123456789012:dlq" }"#;
    assert!(values_equal("RedrivePolicy", &ours, theirs));
    let other_count =
        r#"{"deadLetterTargetArn":"arn:aws:sqs:us-east-1:123456789012:dlq","maxReceiveCount":6}"#;
    assert!(!values_equal("RedrivePolicy", &ours, other_count));
}

#[test]
fn redrive_allow_policy_source_order_is_not_significant() {
    let ours = redrive_allow_policy(&["arn:b".into(), "arn:a".into()]);
    let theirs = r#"{"sourceQueueArns":["arn:b","arn:a"],"redrivePermission":"byQueue"}"#;
    assert!(values_equal("RedriveAllowPolicy", &ours, theirs));
    assert!(!values_equal(
        "RedriveAllowPolicy",
        &ours,
        r#"{"redrivePermission":"allowAll"}"#
    ));
}

#[test]
fn iam_policies_equal_up_to_one_element_arrays_order_and_principal_star() {
    let ours = queue_policy("arn:aws:sqs:us-east-1:1:q", &["arn:aws:sns:us-east-1:1:t"]).unwrap();
    let theirs = json!({
        "Statement": {
            "Condition": {"ArnEquals": {"aws:SourceArn": "arn:aws:sns:us-east-1:1:t"}},
            "Resource": ["arn:aws:sqs:us-east-1:1:q"],
            "Action": ["SQS:SendMessage"],
            "Principal": {"Service": ["sns.amazonaws.com"]},
            "Effect": "Allow",
            "Sid": "AllowTopicsToSend"
        },
        "Id": "tributary-sns-delivery",
        "Version": "2012-10-17"
    })
    .to_string();
    assert!(values_equal("Policy", &ours, &theirs));
    let star = |principal: serde_json::Value| json!({"Statement": [{"Principal": principal}]}).to_string();
    assert!(values_equal(
        "Policy",
        &star(json!("*")),
        &star(json!({"AWS": ["*"]}))
    ));
    let another_topic = queue_policy("arn:aws:sqs:us-east-1:1:q", &["arn:aws:sns:us-east-1:1:u"]).unwrap();
    assert!(!values_equal("Policy", &ours, &another_topic));
}

#[test]
fn filter_policies_compare_strictly_except_for_layout() {
    let ours = r#"{"total":[{"numeric":[">=",100]}],"event":["OrderPlaced"]}"#;
    let reordered = r#"{ "event": ["OrderPlaced"], "total": [ {"numeric": [">=", 100]} ] }"#;
    assert!(values_equal("FilterPolicy", ours, reordered));
    // In a filter policy "100" and 100 match different messages, and order is kept as written.
    assert!(!values_equal(
        "FilterPolicy",
        r#"{"n":[100]}"#,
        r#"{"n":["100"]}"#
    ));
}

#[test]
fn empty_and_absent_policies_are_equal_and_garbage_is_different() {
    assert!(values_equal("RedrivePolicy", "", "{}"));
    assert!(!values_equal("Policy", "{not json", "{}"));
}

#[test]
fn booleans_compare_case_insensitively() {
    assert!(values_equal("RawMessageDelivery", "true", "True"));
    assert!(!values_equal("RawMessageDelivery", "true", "false"));
    assert!(!values_equal("VisibilityTimeout", "30", "31"));
}

#[test]
fn diff_sets_mutable_changes_and_reports_immutable_ones() {
    let desired = attributes_of(&[
        ("FifoQueue", "true"),
        ("VisibilityTimeout", "60"),
        ("DelaySeconds", "0"),
        ("RedrivePolicy", ""),
        ("KmsMasterKeyId", ""),
    ]);
    let observed = attributes_of(&[
        ("VisibilityTimeout", "30"),
        ("DelaySeconds", "0"),
        ("Policy", "{\"Statement\":[]}"),
        ("QueueArn", "arn:aws:sqs:us-east-1:1:q"),
    ]);
    let diff = diff(&desired, &observed);
    assert_eq!(
        diff.to_set,
        vec![("VisibilityTimeout".to_owned(), "60".to_owned())]
    );
    assert_eq!(
        diff.immutable,
        vec![ImmutableChange {
            name: "FifoQueue".into(),
            desired: "true".into(),
            observed: "false".into(),
        }]
    );
}

#[test]
fn an_empty_desired_value_clears_a_present_attribute() {
    let desired = attributes_of(&[("RedrivePolicy", "")]);
    let observed = attributes_of(&[(
        "RedrivePolicy",
        r#"{"deadLetterTargetArn":"a","maxReceiveCount":5}"#,
    )]);
    assert_eq!(
        diff(&desired, &observed).to_set,
        vec![("RedrivePolicy".to_owned(), String::new())]
    );
}

#[test]
fn matching_attributes_give_an_empty_diff() {
    let desired = attributes_of(&[
        ("FifoTopic", "false"),
        ("DisplayName", ""),
        ("RawMessageDelivery", "false"),
    ]);
    assert!(diff(&desired, &Attributes::new()).is_empty());
}

#[test]
fn the_filter_scope_is_set_before_the_filter_policy() {
    let desired = attributes_of(&[
        ("FilterPolicy", r#"{"a":{"b":["c"]}}"#),
        ("FilterPolicyScope", "MessageBody"),
        ("RawMessageDelivery", "true"),
    ]);
    let names: Vec<_> = diff(&desired, &Attributes::new())
        .to_set
        .into_iter()
        .map(|(name, _)| name)
        .collect();
    assert_eq!(names, ["FilterPolicyScope", "FilterPolicy", "RawMessageDelivery"]);
}

#[test]
fn filter_policies_compare_by_meaning() {
    let desired = attributes_of(&[("FilterPolicy", r#"{"event":["A","B"]}"#)]);
    let observed = attributes_of(&[("FilterPolicy", r#"{"event": ["B", "A", "A"]}"#)]);
    assert!(diff(&desired, &observed).is_empty());
    let other = attributes_of(&[("FilterPolicy", r#"{"event":["A"]}"#)]);
    assert_eq!(
        diff(&desired, &other)
            .to_set
            .iter()
            .map(|(n, _)| n.as_str())
            .collect::<Vec<_>>(),
        ["FilterPolicy"]
    );
    let cleared = attributes_of(&[("FilterPolicy", "")]);
    assert!(diff(&cleared, &attributes_of(&[])).is_empty());
}

#[test]
fn attributes_sqs_always_reports_are_skipped_when_a_server_leaves_them_out() {
    let desired = attributes_of(&[
        (names::VISIBILITY_TIMEOUT, "45"),
        (names::MESSAGE_RETENTION_PERIOD, "345600"),
        (names::SQS_MANAGED_SSE_ENABLED, "true"),
    ]);
    let elasticmq = attributes_of(&[(names::VISIBILITY_TIMEOUT, "30")]);
    assert_eq!(
        diff(&desired, &elasticmq).to_set,
        vec![(names::VISIBILITY_TIMEOUT.to_owned(), "45".to_owned())]
    );
    let aws = attributes_of(&[
        (names::VISIBILITY_TIMEOUT, "45"),
        (names::MESSAGE_RETENTION_PERIOD, "60"),
        (names::SQS_MANAGED_SSE_ENABLED, "false"),
    ]);
    assert_eq!(diff(&desired, &aws).to_set.len(), 2, "reported, so compared");
}
