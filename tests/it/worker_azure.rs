//! `tributary worker` draining an Azure Storage Queue in Azurite: the configuration's `storageQueue`
//! source, the account key from `AZURE_STORAGE_KEY` (the worker signs its own requests), every message
//! processed and deleted; without the key the worker stops at once and names the variable.
#![allow(clippy::unwrap_used)]

use crate::support as common;

use std::{
    process::{Command, Stdio},
    time::Duration,
};

use azure_storage_queue::models::QueueMessage;

fn config(queue_url: &str, metrics_port: u16) -> String {
    format!(
        "consumer: {{namespace: test, name: azure-noop}}\nprocessor: noop\nsource:\n  storageQueue:\n    queueUrl: {queue_url}\n    account: {account}\n    visibilityTimeoutSeconds: 10\n    waitTimeSeconds: 1\nmetricsListen: 127.0.0.1:{metrics_port}\ndrainSeconds: 2\n",
        account = common::var("AZURE_STORAGE_ACCOUNT"),
    )
}

#[tokio::test]
async fn the_worker_drains_a_storage_queue_with_the_key_from_its_environment() {
    let _bed = common::shared().await;
    let service = common::azure_queue_service();
    let name = common::unique("noop").to_lowercase();
    let queue = service.queue_client(&name).unwrap();
    queue.create(None).await.unwrap();
    for i in 0..30 {
        let message = QueueMessage {
            message_text: Some(format!("message {i}")),
        };
        queue
            .send_message(message.try_into().unwrap(), None)
            .await
            .unwrap();
    }
    let dir = std::env::temp_dir().join(common::unique("worker-azure"));
    std::fs::create_dir_all(&dir).unwrap();
    let port = common::free_port();
    let url = format!(
        "{}/{name}",
        common::var("AZURE_STORAGE_QUEUE_ENDPOINT").trim_end_matches('/')
    );
    let file = dir.join("worker.yaml");
    std::fs::write(&file, config(&url, port)).unwrap();

    // Without the key: a clear error, at once.
    let refused = Command::new(common::tributary_bin())
        .args(["worker", "--config"])
        .arg(&file)
        .env_remove("AZURE_STORAGE_KEY")
        .output()
        .unwrap();
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("AZURE_STORAGE_KEY"), "{stderr}");

    let mut worker = Command::new(common::tributary_bin())
        .args(["worker", "--config"])
        .arg(&file)
        .env("AZURE_STORAGE_KEY", common::var("AZURE_STORAGE_KEY"))
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    common::eventually("30 processed", Duration::from_secs(30), || async {
        (common::metric(port, "tributary_worker_messages_processed_total").await? == 30).then_some(())
    })
    .await;
    let _ = Command::new("kill")
        .args(["-TERM", &worker.id().to_string()])
        .status();
    assert!(worker.wait().unwrap().success(), "a clean shutdown");
    assert!(
        common::azure_drain(&queue).await.is_empty(),
        "every message deleted"
    );
    queue.delete(None).await.unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
}
