//! Differential test of the filter engine against moto's SNS → SQS delivery: the same policies and
//! messages go through moto, and what each queue receives must be exactly what the engine predicts.
//!
//! moto's known deviations from SNS are left out of the table and listed here:
//! - it has no `cidr` operator ("Unrecognized match type"), so IP-address policies are covered by the
//!   engine's unit tests only;
//! - `equals-ignore-case` lowercases the message's value but not the policy's, so a policy value with
//!   capitals never matches in moto (SNS ignores case on both sides); the table's value is lowercase.
#![allow(clippy::unwrap_used)]

use crate::support as common;

use std::collections::BTreeSet;

use serde_json::{Value, json};
use tributary::filter::{Message, Policy, Scope};

/// (scope, policy).
fn policies() -> Vec<(Scope, Value)> {
    let a = Scope::MessageAttributes;
    let b = Scope::MessageBody;
    vec![
        (a, json!({"event": ["OrderPlaced", "OrderShipped"]})),
        (a, json!({"event": [{"anything-but": ["OrderCancelled"]}]})),
        (
            a,
            json!({"event": [{"prefix": "Order"}], "region": [{"suffix": "-1"}]}),
        ),
        (a, json!({"region": [{"equals-ignore-case": "eu-west-1"}]})),
        (a, json!({"total": [{"numeric": [">", 0, "<=", 100]}]})),
        (a, json!({"total": [{"numeric": ["=", 250]}]})),
        (a, json!({"priority": [{"exists": true}]})),
        (
            a,
            json!({"priority": [{"exists": false}], "event": ["OrderPlaced"]}),
        ),
        (a, json!({"tags": ["fragile"]})),
        (a, json!({"event": [{"anything-but": {"prefix": "Order"}}]})),
        (
            a,
            json!({"$or": [{"event": ["OrderCancelled"]}, {"total": [{"numeric": [">=", 200]}]}]}),
        ),
        (
            b,
            json!({"order": {"delivery": [{"anything-but": ["pickup"]}], "total": [{"numeric": [">", 50]}]}}),
        ),
        (
            b,
            json!({"event": ["OrderPlaced"], "items": {"sku": [{"prefix": "BK-"}]}}),
        ),
    ]
}

/// A message attribute: (name, data type, value).
type Attr = (&'static str, &'static str, &'static str);

/// (attributes, body).
fn messages() -> Vec<(Vec<Attr>, Value)> {
    vec![
        (
            vec![
                ("event", "String", "OrderPlaced"),
                ("region", "String", "eu-west-1"),
                ("total", "Number", "40"),
            ],
            json!({"event": "OrderPlaced", "order": {"delivery": "courier", "total": 40}, "items": [{"sku": "BK-1"}]}),
        ),
        (
            vec![
                ("event", "String", "OrderCancelled"),
                ("region", "String", "us-east-2"),
                ("total", "Number", "250"),
                ("priority", "String", "high"),
            ],
            json!({"event": "OrderCancelled", "order": {"delivery": "pickup", "total": 250}}),
        ),
        (
            vec![
                ("event", "String", "OrderShipped"),
                ("total", "Number", "100"),
                ("tags", "String.Array", "[\"fragile\", \"gift\"]"),
            ],
            json!({"event": "OrderShipped", "order": {"delivery": "courier", "total": 100}, "items": [{"sku": "TOY-7"}]}),
        ),
        (
            vec![
                ("event", "String", "StockLow"),
                ("region", "String", "EU-West-1"),
                ("total", "Number", "0.5"),
            ],
            json!({"event": "OrderPlaced", "order": {"total": 75}, "items": [{"sku": "TOY-1"}, {"sku": "BK-9"}]}),
        ),
        (
            vec![
                ("region", "String", "ap-south-1"),
                ("tags", "String.Array", "[\"gift\"]"),
            ],
            json!({"event": "StockLow"}),
        ),
    ]
}

fn to_message(attrs: &[(&str, &str, &str)]) -> Message {
    Message::Attributes(
        attrs
            .iter()
            .map(|(k, t, v)| ((*k).to_owned(), ((*t).to_owned(), (*v).to_owned())))
            .collect(),
    )
}

#[tokio::test]
async fn engine_agrees_with_moto_delivery() {
    let _bed = common::shared().await;
    let conf = common::aws_config().await;
    let sns = aws_sdk_sns::Client::new(&conf);
    let sqs = aws_sdk_sqs::Client::new(&conf);
    let run = common::unique("diff");
    let topic = sns
        .create_topic()
        .name(&run)
        .send()
        .await
        .unwrap()
        .topic_arn
        .unwrap();

    let mut queues = Vec::new();
    for (i, (scope, policy)) in policies().into_iter().enumerate() {
        let url = sqs
            .create_queue()
            .queue_name(format!("{run}-{i}"))
            .send()
            .await
            .unwrap()
            .queue_url
            .unwrap();
        let arn = common::queue_arn(&sqs, &url).await;
        let parsed = Policy::parse(&policy, scope).unwrap_or_else(|e| panic!("policy {i} {policy}: {e}"));
        sns.subscribe()
            .topic_arn(&topic)
            .protocol("sqs")
            .endpoint(arn)
            .attributes("FilterPolicy", parsed.canonical_json())
            .attributes("FilterPolicyScope", scope.to_string())
            .attributes("RawMessageDelivery", "true")
            .send()
            .await
            .unwrap();
        queues.push((url, parsed));
    }

    let messages = messages();
    for (id, (attrs, body)) in messages.iter().enumerate() {
        let mut envelope = body.clone();
        envelope["id"] = json!(id);
        common::publish(&sns, &topic, &envelope.to_string(), attrs).await;
    }

    let mut disagreements = Vec::new();
    let mut discriminating = 0;
    for (i, (url, policy)) in queues.iter().enumerate() {
        let received: BTreeSet<usize> = common::receive_all(&sqs, url)
            .await
            .iter()
            .map(|body| {
                let body: Value = serde_json::from_str(body).unwrap();
                body["id"].as_u64().unwrap() as usize
            })
            .collect();
        let expected: BTreeSet<usize> = messages
            .iter()
            .enumerate()
            .filter(|(_, (attrs, body))| match policy.scope() {
                Scope::MessageAttributes => policy.matches(&to_message(attrs)),
                Scope::MessageBody => policy.matches(&Message::Body(body.clone())),
            })
            .map(|(id, _)| id)
            .collect();
        if !expected.is_empty() && expected.len() < messages.len() {
            discriminating += 1;
        }
        if received != expected {
            disagreements.push(format!(
                "policy {i} {}: moto delivered {received:?}, engine predicts {expected:?}",
                policy.canonical_json()
            ));
        }
    }
    assert!(
        discriminating >= 10,
        "only {discriminating} policies both accept and refuse some message: the table tests too little"
    );
    assert!(disagreements.is_empty(), "{}", disagreements.join("\n"));
}
