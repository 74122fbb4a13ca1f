//! Smoke tests of moto through the AWS SDK crates the operator and workers use: an SNS subscription with a
//! filter policy delivers only the matching message to its SQS queue, and DynamoDB stores and returns an
//! item.
#![allow(clippy::unwrap_used)]

use crate::support as common;

use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
};
use aws_sdk_sqs::types::QueueAttributeName;
use serde_json::json;

#[tokio::test]
async fn filtered_subscription_delivers_only_the_matching_message() {
    let _bed = common::shared().await;
    let conf = common::aws_config().await;
    let sns = aws_sdk_sns::Client::new(&conf);
    let sqs = aws_sdk_sqs::Client::new(&conf);
    let name = common::unique("orders");

    let topic_arn = sns
        .create_topic()
        .name(&name)
        .send()
        .await
        .unwrap()
        .topic_arn
        .unwrap();
    let queue_url = sqs
        .create_queue()
        .queue_name(&name)
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    let queue_arn = common::queue_arn(&sqs, &queue_url).await;
    let policy = json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow",
            "Principal": {"Service": "sns.amazonaws.com"},
            "Action": "sqs:SendMessage",
            "Resource": queue_arn,
            "Condition": {"ArnEquals": {"aws:SourceArn": topic_arn}}
        }]
    });
    sqs.set_queue_attributes()
        .queue_url(&queue_url)
        .attributes(QueueAttributeName::Policy, policy.to_string())
        .send()
        .await
        .unwrap();
    sns.subscribe()
        .topic_arn(&topic_arn)
        .protocol("sqs")
        .endpoint(&queue_arn)
        .attributes(
            "FilterPolicy",
            json!({"event": ["OrderPlaced"], "total": [{"numeric": [">=", 100]}]}).to_string(),
        )
        .attributes("RawMessageDelivery", "true")
        .send()
        .await
        .unwrap();

    for (event, total, body) in [
        ("OrderPlaced", "250", "big order"),
        ("OrderPlaced", "20", "small order"),
        ("OrderCancelled", "250", "cancelled"),
    ] {
        common::publish(
            &sns,
            &topic_arn,
            body,
            &[("event", "String", event), ("total", "Number", total)],
        )
        .await;
    }

    let mut bodies = Vec::new();
    for _ in 0..3 {
        let received = sqs
            .receive_message()
            .queue_url(&queue_url)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .send()
            .await
            .unwrap();
        for message in received.messages.unwrap_or_default() {
            bodies.push(message.body.unwrap());
            sqs.delete_message()
                .queue_url(&queue_url)
                .receipt_handle(message.receipt_handle.unwrap())
                .send()
                .await
                .unwrap();
        }
    }
    assert_eq!(
        bodies,
        vec!["big order".to_owned()],
        "only the message matching the filter policy arrives"
    );
}

#[tokio::test]
async fn dynamodb_put_then_get_returns_the_item() {
    let _bed = common::shared().await;
    let conf = common::aws_config().await;
    let dynamodb = aws_sdk_dynamodb::Client::new(&conf);
    let table = common::unique("orders");
    dynamodb
        .create_table()
        .table_name(&table)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name("orderId")
                .attribute_type(ScalarAttributeType::S)
                .build()
                .unwrap(),
        )
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name("orderId")
                .key_type(KeyType::Hash)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    dynamodb
        .put_item()
        .table_name(&table)
        .item("orderId", AttributeValue::S("o-1".into()))
        .item("total", AttributeValue::N("42.5".into()))
        .condition_expression("attribute_not_exists(orderId)")
        .send()
        .await
        .unwrap();
    // The same conditional write again must be refused: the Order table relies on this for idempotency.
    let again = dynamodb
        .put_item()
        .table_name(&table)
        .item("orderId", AttributeValue::S("o-1".into()))
        .condition_expression("attribute_not_exists(orderId)")
        .send()
        .await;
    assert!(
        again
            .unwrap_err()
            .into_service_error()
            .is_conditional_check_failed_exception()
    );

    let item = dynamodb
        .get_item()
        .table_name(&table)
        .key("orderId", AttributeValue::S("o-1".into()))
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .item
        .unwrap();
    assert_eq!(item["total"], AttributeValue::N("42.5".into()));
}
