//! Ready means delivering, and conditions the cloud can lift are looked at again:
//! - a Subscription turns Ready only once its Queue's policy, as SQS answers it, lets its Topic send
//!   (moto does not enforce queue policies, so the policy is read back from moto the moment the
//!   Subscription is seen Ready; with the policy writes slowed to 2 per second, the subscriptions
//!   themselves are made long before their policies);
//! - a Topic refused because a topic of its name was made by hand becomes Ready once that topic is
//!   deleted, with no change to the Topic.

use std::collections::BTreeSet;

use tributary::cloud::aws::{attributes::allowed_topics, ratelimit::RateLimits};

use super::*;

const PAIRS: usize = 8;

#[tokio::test]
async fn a_subscription_is_ready_only_once_its_queue_policy_lets_its_topic_send() {
    let _bed = common::shared().await;
    let client = common::kube_client().await;
    common::install_crds(&client).await;
    let ns = common::namespace(&client, "ready-policy").await;
    let aws = common::aws_config().await;
    let sqs = aws_sdk_sqs::Client::new(&aws);
    let limits = RateLimits::published(Some(&common::var("AWS_REGION")))
        .with("sqs:SetQueueAttributes=2")
        .unwrap();
    let controller = common::start_controller_limited(&client, &ns, &aws, None, &limits).await;

    let mut yaml = String::new();
    for i in 0..PAIRS {
        yaml.push_str(&format!(
            "apiVersion: tributary.dev/v1alpha1\nkind: Topic\nmetadata: {{name: t{i}}}\nspec: {{provider: aws, aws: {{}}}}\n---\n\
             apiVersion: tributary.dev/v1alpha1\nkind: Queue\nmetadata: {{name: q{i}}}\nspec: {{provider: aws, aws: {{}}}}\n---\n"
        ));
    }
    common::create_yaml(&client, &ns, &yaml).await;
    for i in 0..PAIRS {
        common::wait_reason(&client, &ns, "Topic", &format!("t{i}"), "Available", CONVERGE).await;
        common::wait_reason(&client, &ns, "Queue", &format!("q{i}"), "Available", CONVERGE).await;
    }
    let subscriptions: Vec<String> = (0..PAIRS)
        .map(|i| {
            format!(
                "apiVersion: tributary.dev/v1alpha1\nkind: Subscription\nmetadata: {{name: s{i}}}\n\
                 spec: {{topicRef: {{name: t{i}}}, queueRef: {{name: q{i}}}}}\n"
            )
        })
        .collect();
    common::create_yaml(&client, &ns, &subscriptions.join("---\n")).await;

    // Each Subscription, the moment it is seen Ready, must find its Topic in the policy SQS holds.
    let api = common::tributary_api(&client, &ns, "Subscription");
    let (topics, queues) = (
        common::tributary_api(&client, &ns, "Topic"),
        common::tributary_api(&client, &ns, "Queue"),
    );
    let mut checked = BTreeSet::new();
    let deadline = std::time::Instant::now() + CONVERGE;
    while checked.len() < PAIRS {
        assert!(
            std::time::Instant::now() < deadline,
            "only {checked:?} became Ready"
        );
        let waiting: Vec<usize> = (0..PAIRS).filter(|i| !checked.contains(i)).collect();
        for i in waiting {
            let subscription = api.get(&format!("s{i}")).await.unwrap();
            if common::condition(&subscription, "Ready").map(|c| c.0).as_deref() != Some("True") {
                continue;
            }
            let queue_url = status_str(&queues.get(&format!("q{i}")).await.unwrap(), "url");
            let policy = queue_attributes(&sqs, &queue_url)
                .await
                .remove("Policy")
                .unwrap_or_default();
            let topic_arn = status_str(&topics.get(&format!("t{i}")).await.unwrap(), "arn");
            assert!(
                allowed_topics(&policy).contains(&topic_arn),
                "Subscription s{i} is Ready but the policy of its queue does not let {topic_arn} send: {policy:?}"
            );
            checked.insert(i);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The Queue's status lists what its policy, read back, lets send.
    let queue = queues.get("q0").await.unwrap();
    let listed = queue.data["status"]["allowedTopics"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(listed.len(), 1, "{:?}", queue.data["status"]);
    controller.stop().await;
}

#[tokio::test]
async fn a_topic_refused_for_a_foreign_topic_of_its_name_becomes_ready_once_that_topic_is_gone() {
    let _bed = common::shared().await;
    let client = common::kube_client().await;
    common::install_crds(&client).await;
    let ns = common::namespace(&client, "ready-lifted").await;
    let aws = common::aws_config().await;
    let sns = aws_sdk_sns::Client::new(&aws);
    // Made by hand, without Tributary's tags, under the name the Topic will ask for.
    let foreign = sns
        .create_topic()
        .name(format!("{ns}_orders"))
        .send()
        .await
        .unwrap()
        .topic_arn
        .unwrap();
    let controller = common::start_controller(&client, &ns, &aws).await;
    common::create_yaml(
        &client,
        &ns,
        "apiVersion: tributary.dev/v1alpha1\nkind: Topic\nmetadata: {name: orders}\nspec: {provider: aws, aws: {}}\n",
    )
    .await;
    common::wait_reason(&client, &ns, "Topic", "orders", "AlreadyExists", CONVERGE).await;
    let generation = common::tributary_api(&client, &ns, "Topic")
        .get("orders")
        .await
        .unwrap()
        .metadata
        .generation;

    sns.delete_topic().topic_arn(&foreign).send().await.unwrap();
    let topic = common::wait_reason(&client, &ns, "Topic", "orders", "Available", CONVERGE).await;
    assert_eq!(
        topic.metadata.generation, generation,
        "no change to the Topic was needed"
    );
    let tags = topic_tags(&sns, &status_str(&topic, "arn")).await;
    assert_eq!(
        tags.get("tributary.dev/name").map(String::as_str),
        Some("orders"),
        "{tags:?}"
    );
    controller.stop().await;
}
