//! Cloud call metrics against the test bed's moto server (`make testbed-up`): an [`AwsCloud`] built with a
//! [`Metrics`] counts and times each SDK call by service, operation and outcome (`/metrics` serving the
//! rendered text is tested in `operate::http`). The per-object gauges of a running controller follow
//! what its reconciles observe and leave with the object.
#![allow(clippy::unwrap_used)]

use crate::support as common;

use std::time::Duration;

use tributary::{
    cloud::{
        ErrorKind, Queues,
        aws::{AwsCloud, ratelimit::RateLimits},
    },
    operate::Metrics,
};

fn series<'a>(text: &'a str, name: &str, operation: &str) -> Vec<&'a str> {
    let operation = format!("operation=\"{operation}\"");
    text.lines()
        .filter(|l| l.starts_with(name) && l.contains(&operation))
        .collect()
}

#[tokio::test]
async fn aws_calls_are_counted_and_timed_by_operation_and_outcome() {
    let _bed = common::shared().await;
    let metrics = Metrics::new();
    let cloud = AwsCloud::with_limits_and_metrics(
        &common::aws_config().await,
        &RateLimits::published(None),
        metrics.clone(),
    );

    cloud.account_id().await.unwrap();
    let missing = format!(
        "{}/000000000000/{}",
        common::var("AWS_ENDPOINT_URL"),
        common::unique("missing")
    );
    let error = cloud.queue_attributes(&missing).await.unwrap_err();

    let text = metrics.render();
    assert_eq!(
        series(&text, "tributary_cloud_calls_total", "GetCallerIdentity"),
        ["tributary_cloud_calls_total{service=\"sts\",operation=\"GetCallerIdentity\",outcome=\"ok\"} 1"],
        "{text}"
    );
    let count = series(
        &text,
        "tributary_cloud_call_duration_seconds_count",
        "GetCallerIdentity",
    );
    assert_eq!(
        count,
        ["tributary_cloud_call_duration_seconds_count{service=\"sts\",operation=\"GetCallerIdentity\"} 1"]
    );
    // The failed call is classified from the answer's error code, as the cloud layer classifies it.
    assert_eq!(error.kind(), ErrorKind::NotFound, "{error}");
    assert_eq!(
        series(&text, "tributary_cloud_calls_total", "GetQueueAttributes"),
        [
            "tributary_cloud_calls_total{service=\"sqs\",operation=\"GetQueueAttributes\",outcome=\"not_found\"} 1"
        ],
        "{error}\n{text}"
    );
}

/// Waits until the controller's metrics satisfy `check`; fails with the last text it saw.
async fn rendered_until(controller: &common::RunningController, what: &str, check: impl Fn(&str) -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(45);
    loop {
        let text = controller.metrics.render();
        if check(&text) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}; the metrics:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn per_object_gauges_follow_reconciles_and_leave_with_the_object() {
    let _bed = common::shared().await;
    let client = common::kube_client().await;
    common::install_crds(&client).await;
    let ns = common::namespace(&client, "metrics-objects").await;
    let aws = common::aws_config().await;
    let controller = common::start_controller(&client, &ns, &aws).await;
    common::create_yaml(
        &client,
        &ns,
        "apiVersion: tributary.dev/v1alpha1\nkind: DeadLetter\nmetadata: {name: dlq}\nspec: {provider: aws, aws: {}}\n",
    )
    .await;
    let ready = common::wait_reason(
        &client,
        &ns,
        "DeadLetter",
        "dlq",
        "Available",
        Duration::from_secs(45),
    )
    .await;
    let labels = format!("{{kind=\"DeadLetter\",namespace=\"{ns}\",name=\"dlq\"}}");
    rendered_until(&controller, "the DeadLetter Ready and empty", |text| {
        text.contains(&format!("tributary_object_ready{labels} 1"))
            && text.contains(&format!("tributary_queue_depth{labels} 0"))
    })
    .await;

    // Messages arriving are seen at the next reconcile (3 s resync): no call of the gauges' own.
    let url = ready.data["status"]["url"].as_str().unwrap().to_owned();
    let sqs = aws_sdk_sqs::Client::new(&aws);
    for body in ["a", "b", "c"] {
        sqs.send_message()
            .queue_url(&url)
            .message_body(body)
            .send()
            .await
            .unwrap();
    }
    rendered_until(&controller, "the DeadLetter's depth 3", |text| {
        text.contains(&format!("tributary_queue_depth{labels} 3"))
    })
    .await;

    // Deleted: its series go, the families stay declared.
    let dead_letters = common::tributary_api(&client, &ns, "DeadLetter");
    dead_letters.delete("dlq", &Default::default()).await.unwrap();
    rendered_until(&controller, "the DeadLetter's series gone", |text| {
        !text.contains(&ns)
    })
    .await;
    assert!(
        controller
            .metrics
            .render()
            .contains("# TYPE tributary_object_ready gauge")
    );
    controller.stop().await;
}
