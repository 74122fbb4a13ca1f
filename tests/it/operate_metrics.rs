//! Cloud call metrics against the test bed's moto server (`make testbed-up`): an [`AwsCloud`] built with a
//! [`Metrics`] counts and times each SDK call by service, operation and outcome (`/metrics` serving the
//! rendered text is tested in `operate::http`).
#![allow(clippy::unwrap_used)]

use crate::support as common;

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
