//! The order example end to end: provisioning with every attribute checked, routing by the filters, a
//! filter change, a quiet resync, and deletion with `deletionPolicy: Delete`.

use kube::api::{DeleteParams, Patch, PatchParams};
use serde_json::{Value, json};

use super::*;

#[tokio::test]
async fn the_order_example_is_provisioned_routed_updated_and_deleted() {
    let _bed = common::shared().await;
    let started = std::time::Instant::now();
    let client = common::kube_client().await;
    common::install_crds(&client).await;
    let ns = common::namespace(&client, "ctrl-orders").await;
    let aws = common::aws_config().await;
    let (sqs, sns) = (aws_sdk_sqs::Client::new(&aws), aws_sdk_sns::Client::new(&aws));
    let controller = common::start_controller(&client, &ns, &aws).await;

    common::create_yaml(&client, &ns, &order_example()).await;
    let objects = wait_orders_ready(&client, &ns).await;
    eprintln!("order example Ready in {:?}", started.elapsed());

    // Topic: named <namespace>_orders, tagged with the spec's tags and the owner.
    let topic_arn = status_str(&objects["orders"], "arn");
    assert!(topic_arn.ends_with(&format!(":{ns}_orders")), "{topic_arn}");
    let topic_tags = topic_tags(&sns, &topic_arn).await;
    assert_eq!(topic_tags["app"], "orders");
    assert_eq!(topic_tags["tributary.dev/kind"], "Topic");
    assert_eq!(topic_tags["tributary.dev/namespace"], ns);
    assert_eq!(topic_tags["tributary.dev/name"], "orders");
    assert_eq!(topic_tags["tributary.dev/cluster"], common::TEST_CLUSTER);

    // DeadLetter: retention from the spec.
    let dlq_url = status_str(&objects["orders-dlq"], "url");
    let dlq_arn = status_str(&objects["orders-dlq"], "arn");
    let dlq = queue_attributes(&sqs, &dlq_url).await;
    assert_eq!(dlq["MessageRetentionPeriod"], "1209600");
    assert_eq!(dlq["QueueArn"], dlq_arn);
    assert_eq!(objects["orders-dlq"].data["status"]["depth"], 0);

    // Queues: spec attributes, redrive to the DLQ, a policy letting the topic send (written once the
    // Subscriptions have ARNs, so possibly just after they turn Ready).
    for queue in ["inventory", "notifications", "shipments"] {
        let url = status_str(&objects[queue], "url");
        assert!(url.ends_with(&format!("/{ns}_{queue}")), "{url}");
        let attributes = common::eventually(
            &format!("queue {queue} policy allows the topic"),
            CONVERGE,
            || {
                let (sqs, url, topic_arn) = (sqs.clone(), url.clone(), topic_arn.clone());
                async move {
                    let attributes = queue_attributes(&sqs, &url).await;
                    let policy: Value = serde_json::from_str(attributes.get("Policy")?).ok()?;
                    let statement = &policy["Statement"][0];
                    let sources = &statement["Condition"]["ArnEquals"]["aws:SourceArn"];
                    let allows = sources == &json!([topic_arn]) || sources == &json!(topic_arn);
                    (allows && statement["Action"] == "sqs:SendMessage").then_some(attributes)
                }
            },
        )
        .await;
        assert_eq!(attributes["VisibilityTimeout"], "60", "{queue}");
        assert_eq!(attributes["MessageRetentionPeriod"], "345600", "{queue}");
        assert_eq!(attributes["ReceiveMessageWaitTimeSeconds"], "20", "{queue}");
        let redrive: Value = serde_json::from_str(&attributes["RedrivePolicy"]).unwrap();
        assert_eq!(redrive["deadLetterTargetArn"], dlq_arn.as_str(), "{queue}");
        assert_eq!(
            redrive["maxReceiveCount"].to_string().trim_matches('"'),
            "5",
            "{queue}"
        );
        let tags = queue_tags(&sqs, &url).await;
        assert_eq!(tags["tributary.dev/kind"], "Queue");
        assert_eq!(tags["tributary.dev/name"], queue);
    }

    // Subscriptions: one per queue, canonical filter policy, raw delivery.
    let listed = topic_subscriptions(&sns, &topic_arn).await;
    assert_eq!(listed.len(), 3, "{listed:?}");
    for name in [
        "orders-to-notifications",
        "orders-to-inventory",
        "orders-to-shipments",
    ] {
        let arn = status_str(&objects[name], "arn");
        let attributes = sns
            .get_subscription_attributes()
            .subscription_arn(&arn)
            .send()
            .await
            .unwrap()
            .attributes
            .unwrap_or_default();
        assert_eq!(
            attributes["FilterPolicy"],
            status_str(&objects[name], "appliedFilterPolicy"),
            "{name}"
        );
        assert_eq!(attributes["RawMessageDelivery"].to_lowercase(), "true", "{name}");
    }
    assert_eq!(
        status_str(&objects["orders-to-shipments"], "appliedFilterPolicy"),
        r#"{"delivery":[{"anything-but":["pickup"]}],"event":["OrderReserved"],"total":[{"numeric":[">",0]}]}"#
    );

    // Routing: who receives what.
    let urls: BTreeMap<&str, String> = ["inventory", "notifications", "shipments"]
        .into_iter()
        .map(|q| (q, status_str(&objects[q], "url")))
        .collect();
    let home = [
        ("event", "String", "OrderPlaced"),
        ("delivery", "String", "home"),
        ("total", "Number", "50"),
    ];
    let reserved_home = [
        ("event", "String", "OrderReserved"),
        ("delivery", "String", "home"),
        ("total", "Number", "50"),
    ];
    let reserved_pickup = [
        ("event", "String", "OrderReserved"),
        ("delivery", "String", "pickup"),
        ("total", "Number", "50"),
    ];
    let pickup = [
        ("event", "String", "OrderPlaced"),
        ("delivery", "String", "pickup"),
        ("total", "Number", "50"),
    ];
    common::publish(&sns, &topic_arn, "placed-home", &home).await;
    common::publish(&sns, &topic_arn, "placed-pickup", &pickup).await;
    common::publish(&sns, &topic_arn, "reserved-home", &reserved_home).await;
    common::publish(&sns, &topic_arn, "reserved-pickup", &reserved_pickup).await;
    common::publish(
        &sns,
        &topic_arn,
        "shipped",
        &[("event", "String", "OrderShipped")],
    )
    .await;
    common::publish(
        &sns,
        &topic_arn,
        "refunded",
        &[("event", "String", "OrderRefunded")],
    )
    .await;
    assert_eq!(
        drain(&sqs, &urls["notifications"]).await,
        ["placed-home", "placed-pickup", "shipped"]
    );
    assert_eq!(
        drain(&sqs, &urls["inventory"]).await,
        ["placed-home", "placed-pickup"]
    );
    assert_eq!(drain(&sqs, &urls["shipments"]).await, ["reserved-home"]);

    // A filter change reaches SNS and changes delivery.
    let subscriptions = common::tributary_api(&client, &ns, "Subscription");
    let change = json!({"spec": {"filter": {"policy": {"event": ["OrderCancelled"]}}}});
    subscriptions
        .patch(
            "orders-to-inventory",
            &PatchParams::default(),
            &Patch::Merge(&change),
        )
        .await
        .unwrap();
    common::eventually("the new filter applied", CONVERGE, || {
        let subscriptions = subscriptions.clone();
        async move {
            let s = subscriptions.get("orders-to-inventory").await.ok()?;
            let (status, _, _, generation) = common::condition(&s, "Ready")?;
            let applied =
                s.data["status"]["appliedFilterPolicy"].as_str()? == r#"{"event":["OrderCancelled"]}"#;
            (status == "True" && generation == 2 && applied).then_some(())
        }
    })
    .await;
    common::publish(&sns, &topic_arn, "placed-again", &home).await;
    common::publish(
        &sns,
        &topic_arn,
        "cancelled",
        &[("event", "String", "OrderCancelled")],
    )
    .await;
    assert_eq!(drain(&sqs, &urls["inventory"]).await, ["cancelled"]);
    drain(&sqs, &urls["notifications"]).await;
    drain(&sqs, &urls["shipments"]).await;

    // Quiet: resyncs (every 3 s) of unchanged objects write nothing.
    let topics = common::tributary_api(&client, &ns, "Topic");
    let before_topic = topics.get("orders").await.unwrap().metadata.resource_version;
    let before_sub = subscriptions
        .get("orders-to-notifications")
        .await
        .unwrap()
        .metadata
        .resource_version;
    tokio::time::sleep(Duration::from_secs(7)).await;
    assert_eq!(
        topics.get("orders").await.unwrap().metadata.resource_version,
        before_topic
    );
    assert_eq!(
        subscriptions
            .get("orders-to-notifications")
            .await
            .unwrap()
            .metadata
            .resource_version,
        before_sub
    );

    // Delete (the default policy): the subscription and the queue go from AWS, and the objects go.
    subscriptions
        .delete("orders-to-shipments", &DeleteParams::default())
        .await
        .unwrap();
    let queues = common::tributary_api(&client, &ns, "Queue");
    queues
        .delete("shipments", &DeleteParams::default())
        .await
        .unwrap();
    common::eventually("the objects gone", CONVERGE, || {
        let (subscriptions, queues) = (subscriptions.clone(), queues.clone());
        async move {
            let gone = subscriptions.get_opt("orders-to-shipments").await.ok()?.is_none()
                && queues.get_opt("shipments").await.ok()?.is_none();
            gone.then_some(())
        }
    })
    .await;
    let remaining = topic_subscriptions(&sns, &topic_arn).await;
    assert_eq!(remaining.len(), 2, "{remaining:?}");
    let gone = sqs
        .get_queue_url()
        .queue_name(format!("{ns}_shipments"))
        .send()
        .await;
    assert!(gone.is_err(), "the shipments queue still exists");
    assert!(has_event(&client, &ns, "shipments", "Deleted", "deleted SQS queue").await);
    assert!(has_event(&client, &ns, "orders", "Created", "created SNS topic").await);

    controller.stop().await;
    eprintln!("order example test took {:?}", started.elapsed());
}
