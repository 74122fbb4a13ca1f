//! Deletes after a lost ownership keep the resource, with a Warning Event (an SQS queue, an SNS topic and an
//! Event Hub retagged to another owner, an SNS subscription whose queue is no longer this Subscription's
//! Queue's); a queue with the three tags of before cluster identities is this object's and gets the
//! cluster tag; workers get their namespace policy's identity; a namespace admin cannot touch policies.

use super::*;

#[tokio::test]
async fn a_resource_no_longer_ours_is_kept_and_legacy_marks_are_ours() {
    let _bed = common::shared().await;
    let client = common::kube_client().await;
    common::install_crds(&client).await;
    let aws = common::aws_config().await;
    let (sqs, sns) = (aws_sdk_sqs::Client::new(&aws), aws_sdk_sns::Client::new(&aws));
    let b = common::namespace(&client, "tenant-lost").await;
    // The namespace the retagged resources name: another tenant's.
    let a = format!("{b}-a");
    let fake = common::arm_fake().await;
    let hubs = Some(common::event_hubs_config(&fake, SUBSCRIPTION, "tenants"));
    let controller = common::start_controller_with(&client, &b, &aws, hubs).await;
    let hub_namespace = common::unique("tenant-hubs");
    let stream = format!(
        "  provider: azure\n  azure:\n    namespace: {hub_namespace}\n    createNamespace: true\n    location: westeurope\n    partitions: 2\n"
    );
    common::create_yaml(&client, &b, &yaml("DeviceStream", "telemetry", &stream)).await;
    common::create_yaml(&client, &b, &yaml("Queue", "own", "  provider: aws\n  aws: {}\n")).await;
    let hub = common::wait_reason(&client, &b, "DeviceStream", "telemetry", "Available", CONVERGE).await;
    let hub_name = hub.data["status"]["hubName"].as_str().unwrap().to_owned();
    let hub_id = format!(
        "/subscriptions/{SUBSCRIPTION}/resourceGroups/tenants/providers/Microsoft.EventHub/namespaces/{hub_namespace}/eventhubs/{hub_name}"
    );

    // A queue tagged before cluster identities (the three old tags) is this object's: it gets the cluster tag.
    let legacy_name = format!("legacy-{b}");
    let legacy_url = sqs
        .create_queue()
        .queue_name(&legacy_name)
        .tags("tributary.dev/kind", "Queue")
        .tags("tributary.dev/namespace", &b)
        .tags("tributary.dev/name", "legacy")
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    let spec = format!("  provider: aws\n  aws: {{name: {legacy_name}}}\n");
    common::create_yaml(&client, &b, &yaml("Queue", "legacy", &spec)).await;
    common::wait_reason(&client, &b, "Queue", "legacy", "Available", CONVERGE).await;
    assert_eq!(
        queue_tags(&sqs, &legacy_url).await["tributary.dev/cluster"],
        common::TEST_CLUSTER
    );

    // Workers get the identity of their namespace's policy on their own ServiceAccount and pods.
    let identity = json!({"allowAdoption": true, "workerIdentity": {
        "awsRoleArn": "arn:aws:iam::123456789012:role/tenant-b", "azureClientId": "client-b"
    }});
    common::tenant_policy(&client, &b, identity).await;
    let worker = "  source: {queueRef: {name: own}}\n  processor: notification\n";
    common::create_yaml(&client, &b, &yaml("Consumer", "worker", worker)).await;
    common::wait_reason(&client, &b, "Consumer", "worker", "Available", CONVERGE).await;
    let accounts: Api<k8s_openapi::api::core::v1::ServiceAccount> = Api::namespaced(client.clone(), &b);
    let annotations = accounts
        .get("worker-worker")
        .await
        .unwrap()
        .metadata
        .annotations
        .unwrap();
    assert_eq!(
        annotations["eks.amazonaws.com/role-arn"],
        "arn:aws:iam::123456789012:role/tenant-b"
    );
    assert_eq!(annotations["azure.workload.identity/client-id"], "client-b");
    let deployments: Api<k8s_openapi::api::apps::v1::Deployment> = Api::namespaced(client.clone(), &b);
    let pod = deployments
        .get("worker-worker")
        .await
        .unwrap()
        .spec
        .unwrap()
        .template;
    assert_eq!(
        pod.metadata.unwrap().labels.unwrap()["azure.workload.identity/use"],
        "true"
    );

    // Lost ownership: B's queue retagged to another owner is kept when its object is deleted.
    common::create_yaml(
        &client,
        &b,
        &yaml("Queue", "doomed", "  provider: aws\n  aws: {}\n"),
    )
    .await;
    let doomed = common::wait_reason(&client, &b, "Queue", "doomed", "Available", CONVERGE).await;
    let doomed_url = doomed.data["status"]["url"].as_str().unwrap().to_owned();
    sqs.tag_queue()
        .queue_url(&doomed_url)
        .tags("tributary.dev/namespace", &a)
        .send()
        .await
        .unwrap();
    let queues = common::tributary_api(&client, &b, "Queue");
    queues.delete("doomed", &DeleteParams::default()).await.unwrap();
    common::eventually("Queue doomed gone", CONVERGE, || {
        let queues = queues.clone();
        async move { queues.get_opt("doomed").await.ok()?.is_none().then_some(()) }
    })
    .await;
    let tags = queue_tags(&sqs, &doomed_url).await;
    assert_eq!(tags["tributary.dev/namespace"], a.as_str(), "the queue is kept");
    common::eventually("the OwnershipLost Event", CONVERGE, || {
        let client = client.clone();
        let (b, url) = (b.clone(), doomed_url.clone());
        async move {
            has_event(&client, &b, "doomed", "OwnershipLost", &url)
                .await
                .then_some(())
        }
    })
    .await;
    println!("KEPT SQS queue {doomed_url} after Queue {b}/doomed was deleted: OwnershipLost Warning Event");

    // The same for a topic, and for an Event Hub whose mark now names another object.
    common::create_yaml(
        &client,
        &b,
        &yaml("Topic", "doomed", "  provider: aws\n  aws: {}\n"),
    )
    .await;
    let doomed = common::wait_reason(&client, &b, "Topic", "doomed", "Available", CONVERGE).await;
    let doomed_arn = doomed.data["status"]["arn"].as_str().unwrap().to_owned();
    let retag = aws_sdk_sns::types::Tag::builder()
        .key("tributary.dev/name")
        .value("someone-else")
        .build()
        .unwrap();
    sns.tag_resource()
        .resource_arn(&doomed_arn)
        .tags(retag)
        .send()
        .await
        .unwrap();
    let other = json!({"tributary.dev/cluster": common::TEST_CLUSTER, "tributary.dev/kind": "DeviceStream",
        "tributary.dev/namespace": b, "tributary.dev/name": "someone-else"});
    fake.tamper(&hub_id, "/properties/userMetadata", json!(other.to_string()));
    let topics = common::tributary_api(&client, &b, "Topic");
    topics.delete("doomed", &DeleteParams::default()).await.unwrap();
    let streams = common::tributary_api(&client, &b, "DeviceStream");
    streams
        .delete("telemetry", &DeleteParams::default())
        .await
        .unwrap();
    for (ns, name, resource) in [
        (&b, "doomed", doomed_arn.as_str()),
        (&b, "telemetry", hub_name.as_str()),
    ] {
        common::eventually(
            &format!("the OwnershipLost Event of {ns}/{name}"),
            CONVERGE,
            || {
                let client = client.clone();
                async move {
                    has_event(&client, ns, name, "OwnershipLost", resource)
                        .await
                        .then_some(())
                }
            },
        )
        .await;
        println!("KEPT {resource} after {ns}/{name} was deleted: OwnershipLost Warning Event");
    }
    assert_eq!(
        topic_tags(&sns, &doomed_arn).await["tributary.dev/name"],
        "someone-else",
        "the topic is kept"
    );
    assert!(fake.resource(&hub_id).is_some(), "the hub is kept");

    // An SNS subscription has no tags: it is kept when the queue it delivers to is no longer this
    // Subscription's Queue's.
    common::create_yaml(
        &client,
        &b,
        &yaml("Topic", "news", "  provider: aws\n  aws: {}\n"),
    )
    .await;
    common::create_yaml(
        &client,
        &b,
        &yaml("Queue", "inbox", "  provider: aws\n  aws: {}\n"),
    )
    .await;
    let subscription = "  topicRef: {name: news}\n  queueRef: {name: inbox}\n";
    common::create_yaml(&client, &b, &yaml("Subscription", "feed", subscription)).await;
    let feed = common::wait_reason(&client, &b, "Subscription", "feed", "Available", CONVERGE).await;
    let feed_arn = feed.data["status"]["arn"].as_str().unwrap().to_owned();
    let inbox = common::wait_reason(&client, &b, "Queue", "inbox", "Available", CONVERGE).await;
    let inbox_url = inbox.data["status"]["url"].as_str().unwrap().to_owned();
    sqs.tag_queue()
        .queue_url(&inbox_url)
        .tags("tributary.dev/name", "someone-else")
        .send()
        .await
        .unwrap();
    let subscriptions = common::tributary_api(&client, &b, "Subscription");
    subscriptions
        .delete("feed", &DeleteParams::default())
        .await
        .unwrap();
    common::eventually("the OwnershipLost Event of the Subscription", CONVERGE, || {
        let client = client.clone();
        let (b, arn) = (b.clone(), feed_arn.clone());
        async move {
            has_event(&client, &b, "feed", "OwnershipLost", &arn)
                .await
                .then_some(())
        }
    })
    .await;
    let kept = sns
        .get_subscription_attributes()
        .subscription_arn(&feed_arn)
        .send()
        .await;
    assert!(kept.is_ok(), "the SNS subscription is kept: {kept:?}");
    println!("KEPT SNS subscription {feed_arn} after {b}/feed was deleted: OwnershipLost Warning Event");

    // A tenant holding the built-in `admin` role in its namespace can neither read nor change any
    // TenantPolicy (cluster-scoped, in no aggregated role).
    let user = format!("admin-of-{b}");
    kubectl(&[
        "create",
        "rolebinding",
        "-n",
        &b,
        "tenant-admin",
        "--clusterrole=admin",
        "--user",
        &user,
    ]);
    for verb in ["get", "list", "create", "patch", "delete"] {
        let out = run(
            "kubectl",
            &[
                "auth",
                "can-i",
                verb,
                "tenantpolicies.tributary.dev",
                "-n",
                &b,
                "--as",
                &user,
            ],
            None,
        );
        assert_eq!(out.stdout.trim(), "no", "{verb} tenantpolicies as {user}");
    }
    let out = run(
        "kubectl",
        &["auth", "can-i", "create", "configmaps", "-n", &b, "--as", &user],
        None,
    );
    assert_eq!(
        out.stdout.trim(),
        "yes",
        "the tenant is an admin of its namespace"
    );
    println!("DENIED {user} (ClusterRole admin in {b}): get/list/create/patch/delete tenantpolicies");

    // Cleanup of what the test made outside the controllers.
    sqs.delete_queue().queue_url(&doomed_url).send().await.unwrap();
    sqs.delete_queue().queue_url(&legacy_url).send().await.unwrap();
    sns.delete_topic().topic_arn(&doomed_arn).send().await.unwrap();
    sns.unsubscribe()
        .subscription_arn(&feed_arn)
        .send()
        .await
        .unwrap();
    controller.stop().await;
}
