//! The controller's storage queue management against Azurite: create with ownership metadata, observe,
//! change metadata, depth and oldest-message age, delete (twice: gone is success), and a wrong key refused
//! as a permanent error.
#![allow(clippy::unwrap_used)]

use crate::support as common;

use std::collections::HashMap;

use azure_storage_queue::models::QueueMessage;
use tributary::cloud::ErrorKind;

#[tokio::test]
async fn a_storage_queue_is_created_observed_and_deleted() {
    let _bed = common::shared().await;
    let (queues, account) = common::azure_storage();
    let name = common::unique("orders").to_lowercase();
    assert_eq!(
        queues.observe(&account, &name).await.unwrap(),
        None,
        "not there yet"
    );

    let marks = HashMap::from([
        ("tributary_kind".to_owned(), "Queue".to_owned()),
        ("tributary_namespace".to_owned(), "shop".to_owned()),
    ]);
    queues.create(&account, &name, &marks).await.unwrap();
    queues.create(&account, &name, &marks).await.unwrap();
    let observed = queues.observe(&account, &name).await.unwrap().expect("created");
    assert_eq!(observed.metadata, marks);
    assert_eq!(observed.messages, 0);

    let mut changed = marks.clone();
    changed.insert("tributary_name".to_owned(), "orders".to_owned());
    queues.set_metadata(&account, &name, &changed).await.unwrap();
    assert_eq!(
        queues.observe(&account, &name).await.unwrap().unwrap().metadata,
        changed
    );

    let client = queues.client(&account, &name).unwrap();
    for text in ["first", "second"] {
        let message = QueueMessage {
            message_text: Some(text.to_owned()),
        };
        client
            .send_message(message.try_into().unwrap(), None)
            .await
            .unwrap();
    }
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let observed = queues.observe(&account, &name).await.unwrap().unwrap();
    assert_eq!(observed.messages, 2);
    let stats = queues.stats(&account, &name, observed.messages).await.unwrap();
    assert_eq!(stats.visible, 2);
    let age = stats.oldest_message_age_seconds.expect("a message to age");
    assert!((1..60).contains(&age), "oldest message age {age}");

    assert!(
        queues.queue_url(&account.name, &name).unwrap().query().is_none(),
        "the URL for status carries no signature"
    );
    queues.delete(&account, &name).await.unwrap();
    queues.delete(&account, &name).await.unwrap();
    assert_eq!(queues.observe(&account, &name).await.unwrap(), None, "deleted");
}

#[tokio::test]
async fn a_wrong_account_key_is_a_permanent_error() {
    let _bed = common::shared().await;
    let (queues, mut account) = common::azure_storage();
    account.key = "d3Jvbmcga2V5".to_owned();
    let error = queues
        .observe(&account, &common::unique("any").to_lowercase())
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Permanent, "{error}");
    assert!(
        error.to_string().contains("storage-queue GetQueueMetadata"),
        "{error}"
    );
}
