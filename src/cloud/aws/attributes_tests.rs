use serde_json::{Value, json};

use super::*;

fn parse(text: &str) -> Value {
    serde_json::from_str(text).unwrap()
}

fn queue_aws() -> QueueAws {
    QueueAws {
        name: None,
        fifo: false,
        content_based_deduplication: false,
        visibility_timeout_seconds: 30,
        message_retention_seconds: 345_600,
        delay_seconds: 0,
        receive_wait_time_seconds: 20,
        maximum_message_size_bytes: 262_144,
        kms_master_key_id: None,
    }
}

#[test]
fn a_standard_queue_gets_every_setting_and_sse_sqs() {
    let attributes = queue_attributes(&queue_aws(), None);
    let expected: Attributes = [
        ("FifoQueue", "false"),
        ("VisibilityTimeout", "30"),
        ("MessageRetentionPeriod", "345600"),
        ("DelaySeconds", "0"),
        ("ReceiveMessageWaitTimeSeconds", "20"),
        ("MaximumMessageSize", "262144"),
        ("RedrivePolicy", ""),
        ("KmsMasterKeyId", ""),
        ("SqsManagedSseEnabled", "true"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    assert_eq!(attributes, expected);
    // A create call sends no empty value and no FifoQueue=false.
    let create = creation_attributes(&attributes);
    assert!(!create.contains_key("FifoQueue"));
    assert!(!create.contains_key("RedrivePolicy"));
    assert!(!create.contains_key("KmsMasterKeyId"));
    assert_eq!(
        create.get("SqsManagedSseEnabled").map(String::as_str),
        Some("true")
    );
}

#[test]
fn a_fifo_queue_with_a_dead_letter_and_kms() {
    let aws = QueueAws {
        fifo: true,
        content_based_deduplication: true,
        kms_master_key_id: Some("alias/orders".into()),
        ..queue_aws()
    };
    let target = RedriveTarget {
        dead_letter_arn: "arn:aws:sqs:us-east-1:123456789012:dlq.fifo".into(),
        max_receive_count: 3,
    };
    let attributes = queue_attributes(&aws, Some(&target));
    assert_eq!(attributes["FifoQueue"], "true");
    assert_eq!(attributes["ContentBasedDeduplication"], "true");
    assert_eq!(attributes["KmsMasterKeyId"], "alias/orders");
    assert!(!attributes.contains_key("SqsManagedSseEnabled"));
    assert_eq!(
        parse(&attributes["RedrivePolicy"]),
        json!({"deadLetterTargetArn": "arn:aws:sqs:us-east-1:123456789012:dlq.fifo", "maxReceiveCount": 3})
    );
    assert_eq!(creation_attributes(&attributes)["FifoQueue"], "true");
}

#[test]
fn a_dead_letter_allows_its_sources_by_queue_up_to_ten() {
    let aws = DeadLetterAws {
        name: None,
        fifo: false,
        message_retention_seconds: 1_209_600,
    };
    let none = dead_letter_attributes(&aws, &[]);
    assert_eq!(
        parse(&none["RedriveAllowPolicy"]),
        json!({"redrivePermission": "allowAll"})
    );
    assert_eq!(none["MessageRetentionPeriod"], "1209600");
    let two = dead_letter_attributes(&aws, &["arn:b".into(), "arn:a".into(), "arn:b".into()]);
    assert_eq!(
        parse(&two["RedriveAllowPolicy"]),
        json!({"redrivePermission": "byQueue", "sourceQueueArns": ["arn:a", "arn:b"]})
    );
    let eleven: Vec<String> = (0..11).map(|i| format!("arn:{i}")).collect();
    assert_eq!(
        parse(&dead_letter_attributes(&aws, &eleven)["RedriveAllowPolicy"]),
        json!({"redrivePermission": "allowAll"})
    );
}

#[test]
fn topics_get_their_flags_key_and_display_name() {
    let standard = topic_attributes(&TopicAws::default());
    assert_eq!(standard["FifoTopic"], "false");
    assert!(!standard.contains_key("ContentBasedDeduplication"));
    assert!(creation_attributes(&standard).is_empty());
    let fifo = topic_attributes(&TopicAws {
        name: None,
        fifo: true,
        content_based_deduplication: true,
        kms_master_key_id: Some("alias/aws/sns".into()),
        display_name: Some("Orders".into()),
    });
    assert_eq!(fifo["FifoTopic"], "true");
    assert_eq!(fifo["ContentBasedDeduplication"], "true");
    assert_eq!(fifo["KmsMasterKeyId"], "alias/aws/sns");
    assert_eq!(fifo["DisplayName"], "Orders");
}

#[test]
fn subscriptions_carry_raw_delivery_and_a_canonical_filter() {
    let policy = json!({"total": [{"numeric": [">=", 100]}], "event": ["OrderPlaced"]});
    let filter = crate::filter::Policy::parse(&policy, crate::filter::Scope::MessageBody).unwrap();
    let attributes = subscription_attributes(true, Some(&filter));
    assert_eq!(attributes["RawMessageDelivery"], "true");
    assert_eq!(attributes["FilterPolicyScope"], "MessageBody");
    assert_eq!(
        attributes["FilterPolicy"],
        r#"{"event":["OrderPlaced"],"total":[{"numeric":[">=",100]}]}"#
    );
    let unfiltered = subscription_attributes(false, None);
    assert_eq!(unfiltered["FilterPolicy"], "");
    assert!(!unfiltered.contains_key("FilterPolicyScope"));
}

#[test]
fn the_queue_policy_is_the_same_for_the_same_topics_in_any_order() {
    let queue = "arn:aws:sqs:us-east-1:123456789012:orders";
    let a = queue_policy(
        queue,
        &[
            "arn:aws:sns:us-east-1:123456789012:b",
            "arn:aws:sns:us-east-1:123456789012:a",
        ],
    );
    let b = queue_policy(
        queue,
        &[
            "arn:aws:sns:us-east-1:123456789012:a",
            "arn:aws:sns:us-east-1:123456789012:b",
            "arn:aws:sns:us-east-1:123456789012:a",
        ],
    );
    assert_eq!(a, b);
    let policy = parse(&a.unwrap());
    let statement = &policy["Statement"][0];
    assert_eq!(statement["Principal"], json!({"Service": "sns.amazonaws.com"}));
    assert_eq!(statement["Action"], "sqs:SendMessage");
    assert_eq!(statement["Resource"], queue);
    assert_eq!(
        statement["Condition"]["ArnEquals"]["aws:SourceArn"],
        json!([
            "arn:aws:sns:us-east-1:123456789012:a",
            "arn:aws:sns:us-east-1:123456789012:b"
        ])
    );
    assert_eq!(queue_policy::<&str>(queue, &[]), None);
}

#[test]
fn default_names_join_namespace_and_name_with_an_underscore() {
    assert_eq!(default_queue_name("shop", "orders", false), "shop_orders");
    assert_eq!(default_queue_name("shop", "orders", true), "shop_orders.fifo");
    assert_eq!(default_topic_name("shop", "orders", false), "shop_orders");
    // The pair that collided under `<namespace>-<name>`.
    assert_ne!(
        default_queue_name("a-b", "c", false),
        default_queue_name("a", "b-c", false)
    );
}

#[test]
fn default_names_fit_the_limits() {
    let namespace = "n".repeat(63);
    let long = "x".repeat(253);
    for fifo in [false, true] {
        let queue = default_queue_name(&namespace, &long, fifo);
        assert_eq!(queue.len(), SQS_NAME_LIMIT);
        assert_eq!(queue.ends_with(".fifo"), fifo);
        let topic = default_topic_name(&namespace, &long, fifo);
        assert!(topic.len() <= SNS_NAME_LIMIT);
        assert_eq!(topic.ends_with(".fifo"), fifo);
    }
}

#[test]
fn the_relay_scheme_is_unchanged() {
    assert_eq!(
        dashed_name("tributary-relay", "ns_s", false, SQS_NAME_LIMIT),
        "tributary-relay-ns_s"
    );
}

#[test]
fn arns_are_built_per_partition_and_parsed_back() {
    assert_eq!(topic_arn("us-east-1", "123", "t"), "arn:aws:sns:us-east-1:123:t");
    assert_eq!(
        topic_arn("cn-north-1", "123", "t"),
        "arn:aws-cn:sns:cn-north-1:123:t"
    );
    assert_eq!(partition("us-gov-west-1"), "aws-us-gov");
    assert_eq!(partition("us-isob-east-1"), "aws-iso-b");
    assert_eq!(
        name_from_arn("arn:aws:sqs:us-east-1:123:orders.fifo"),
        Some("orders.fifo")
    );
    assert_eq!(name_from_arn("arn:aws:sns:us-east-1:123:t"), Some("t"));
    assert_eq!(name_from_arn("https://example/123/q"), None);
    assert_eq!(name_from_arn("arn:aws:sqs:us-east-1:123:"), None);
}

#[test]
fn the_allowed_topics_are_read_from_the_policy_sqs_answers() {
    let queue = "arn:aws:sqs:us-east-1:123456789012:orders";
    let topics = [
        "arn:aws:sns:us-east-1:123456789012:b",
        "arn:aws:sns:us-east-1:123456789012:a",
    ];
    let written = queue_policy(queue, &topics).unwrap();
    assert_eq!(
        allowed_topics(&written),
        [
            "arn:aws:sns:us-east-1:123456789012:a",
            "arn:aws:sns:us-east-1:123456789012:b"
        ]
    );
    // SQS may answer with single values instead of arrays.
    let single = json!({"Statement": {"Effect": "Allow", "Principal": {"Service": "sns.amazonaws.com"},
        "Action": "sqs:SendMessage", "Resource": queue,
        "Condition": {"ArnEquals": {"aws:SourceArn": topics[0]}}}});
    assert_eq!(allowed_topics(&single.to_string()), [topics[0]]);
    // A Deny, another principal or another action lets no topic send; no policy at all neither.
    for (field, value) in [
        ("Effect", json!("Deny")),
        ("Principal", json!({"Service": "events.amazonaws.com"})),
        ("Action", json!("sqs:ReceiveMessage")),
    ] {
        let mut policy = parse(&written);
        policy["Statement"][0][field] = value;
        assert!(allowed_topics(&policy.to_string()).is_empty(), "{field}");
    }
    assert!(allowed_topics("").is_empty());
    assert!(allowed_topics("not json").is_empty());
}

#[test]
fn a_queue_arn_is_built_beside_a_topic_of_the_same_caller() {
    assert_eq!(
        queue_arn_beside("arn:aws-cn:sns:cn-north-1:123456789012:orders", "q").as_deref(),
        Some("arn:aws-cn:sqs:cn-north-1:123456789012:q")
    );
    assert_eq!(queue_arn_beside("arn:aws:sqs:us-east-1:1:q", "x"), None);
    assert_eq!(queue_arn_beside("not-an-arn", "x"), None);
}
