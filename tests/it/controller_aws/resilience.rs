//! The controller killed mid-way converges after a restart with no duplicate cloud resources, and a moto
//! outage is reported as `CloudUnavailable` and recovered from when moto is back.

use std::process::Stdio;

use super::*;

#[tokio::test]
async fn a_controller_killed_mid_way_converges_after_restart_without_duplicates() {
    let _bed = common::shared().await;
    let client = common::kube_client().await;
    common::install_crds(&client).await;
    let ns = common::namespace(&client, "ctrl-restart").await;
    let aws = common::aws_config().await;
    let (sqs, sns) = (aws_sdk_sqs::Client::new(&aws), aws_sdk_sns::Client::new(&aws));

    let first = common::start_controller(&client, &ns, &aws).await;
    common::create_yaml(&client, &ns, &order_example()).await;
    // Kill it as soon as the first cloud resource shows up in status, mid-way through the example.
    let topics = common::tributary_api(&client, &ns, "Topic");
    common::eventually("the first reconcile done", CONVERGE, || {
        let topics = topics.clone();
        async move {
            topics
                .get("orders")
                .await
                .ok()?
                .data
                .get("status")?
                .get("arn")
                .map(|_| ())
        }
    })
    .await;
    first.abort().await;

    let second = common::start_controller(&client, &ns, &aws).await;
    let objects = wait_orders_ready(&client, &ns).await;
    let topic_arn = status_str(&objects["orders"], "arn");
    let subscriptions = topic_subscriptions(&sns, &topic_arn).await;
    assert_eq!(subscriptions.len(), 3, "{subscriptions:?}");
    let queues = sqs
        .list_queues()
        .queue_name_prefix(format!("{ns}_"))
        .send()
        .await
        .unwrap()
        .queue_urls
        .unwrap_or_default();
    assert_eq!(queues.len(), 4, "{queues:?}");
    second.stop().await;
}

/// A moto server of this test's own on a free port, stopped by its pid.
struct Moto {
    child: std::process::Child,
    port: u16,
}

impl Moto {
    async fn start(port: u16) -> Self {
        let program = std::path::Path::new(&common::var("TESTBED_DIR")).join("bin/moto_server");
        let child = std::process::Command::new(program)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        common::eventually("moto to answer", Duration::from_secs(30), || async move {
            std::net::TcpStream::connect(("127.0.0.1", port)).ok().map(|_| ())
        })
        .await;
        Self { child, port }
    }

    fn stop(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn a_moto_outage_is_cloud_unavailable_and_recovers() {
    let _bed = common::shared().await;
    let client = common::kube_client().await;
    common::install_crds(&client).await;
    let ns = common::namespace(&client, "ctrl-outage").await;
    let moto = Moto::start(common::free_port()).await;
    let port = moto.port;
    let aws = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(format!("http://127.0.0.1:{port}"))
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_credential_types::Credentials::new(
            "testing", "testing", None, None, "test",
        ))
        .load()
        .await;
    let controller = common::start_controller(&client, &ns, &aws).await;
    common::create_yaml(
        &client,
        &ns,
        "apiVersion: tributary.dev/v1alpha1\nkind: Topic\nmetadata: {name: t}\nspec:\n  provider: aws\n  aws: {}\n",
    )
    .await;
    common::wait_reason(&client, &ns, "Topic", "t", "Available", CONVERGE).await;

    moto.stop();
    let down = common::wait_reason(&client, &ns, "Topic", "t", "CloudUnavailable", CONVERGE).await;
    let (status, _, message, _) = common::condition(&down, "Ready").unwrap();
    assert_eq!(status, "False");
    assert!(
        message.contains("sns") && message.contains("no answer"),
        "{message}"
    );

    let moto = Moto::start(port).await;
    common::wait_reason(&client, &ns, "Topic", "t", "Available", CONVERGE).await;
    assert!(has_event(&client, &ns, "t", "ReconcileFailed", "CloudUnavailable").await);

    controller.stop().await;
    moto.stop();
}
