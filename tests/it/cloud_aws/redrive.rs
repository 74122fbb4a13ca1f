//! Dead-letter queues: wiring (`RedrivePolicy` moves a message after `maxReceiveCount` receives), the
//! server-side message move task (or its `Unsupported` classification), and the receive/send/delete
//! fallback.

use super::*;

/// A dead-letter queue and a source queue wired to it with `maxReceiveCount` 2.
async fn wired_queues(cloud: &AwsCloud, fifo: bool) -> ((String, String), (String, String)) {
    let suffix = if fifo { ".fifo" } else { "" };
    let spec = DeadLetterAws {
        name: None,
        fifo,
        message_retention_seconds: 1_209_600,
    };
    let dlq_name = format!("{}{suffix}", common::unique("dlq"));
    let dlq_url = cloud
        .create_queue(
            &dlq_name,
            &attributes::dead_letter_attributes(&spec, &[]),
            &Tags::new(),
        )
        .await
        .unwrap();
    let dlq_arn = queue_arn(cloud, &dlq_url).await;
    let target = RedriveTarget {
        dead_letter_arn: dlq_arn.clone(),
        max_receive_count: 2,
    };
    let desired = attributes::queue_attributes(&queue_aws(fifo), Some(&target));
    let source_name = format!("{}{suffix}", common::unique("source"));
    let source_url = cloud
        .create_queue(&source_name, &desired, &Tags::new())
        .await
        .unwrap();
    let changes = diff(&desired, &cloud.queue_attributes(&source_url).await.unwrap());
    assert!(changes.is_empty(), "{changes:?}");
    let source_arn = queue_arn(cloud, &source_url).await;
    ((dlq_url, dlq_arn), (source_url, source_arn))
}

#[tokio::test]
async fn a_message_received_max_receive_count_times_lands_in_the_dead_letter_queue() {
    let _bed = common::shared().await;
    let cloud = cloud().await;
    let ((dlq_url, _), (source_url, source_arn)) = wired_queues(&cloud, false).await;
    let allow = attributes::dead_letter_attributes(
        &DeadLetterAws {
            name: None,
            fifo: false,
            message_retention_seconds: 1_209_600,
        },
        &[source_arn],
    );
    cloud.set_queue_attributes(&dlq_url, &allow).await.unwrap();
    assert_eq!(
        cloud.dead_letter_sources(&dlq_url).await.unwrap(),
        std::slice::from_ref(&source_url)
    );

    cloud
        .message_queue(&source_url)
        .send(&[outgoing("a", "poison", None)])
        .await
        .unwrap();
    for attempt in 1..=2 {
        let received = cloud
            .message_queue(&source_url)
            .receive(&Receive::to_move(1, 0))
            .await
            .unwrap();
        assert_eq!(received.len(), 1, "receive {attempt}");
        assert_eq!(received[0].receive_count(), Some(attempt));
    }
    assert!(
        cloud
            .message_queue(&source_url)
            .receive(&Receive::to_move(1, 0))
            .await
            .unwrap()
            .is_empty(),
        "moved on the 3rd"
    );
    let dead = drain(&cloud, &dlq_url).await;
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].body, "poison");
    assert_eq!(dead[0].attributes, outgoing("a", "poison", None).attributes);
}

#[tokio::test]
async fn a_message_move_task_redrives_or_is_reported_unsupported() {
    let _bed = common::shared().await;
    let cloud = cloud().await;
    let ((dlq_url, dlq_arn), (source_url, _)) = wired_queues(&cloud, false).await;
    cloud
        .message_queue(&dlq_url)
        .send(&[outgoing("a", "dead", None)])
        .await
        .unwrap();
    let request = MoveRequest {
        source_arn: dlq_arn.clone(),
        destination_arn: None,
        max_messages_per_second: Some(10),
    };
    match cloud.start_message_move(&request).await {
        Ok(_) => {
            common::eventually("the move task to finish", Duration::from_secs(30), || async {
                let tasks = cloud.message_moves(&dlq_arn).await.unwrap();
                tasks.first().filter(|task| task.status.is_finished()).cloned()
            })
            .await;
            assert_eq!(drain(&cloud, &source_url).await.len(), 1);
        }
        Err(error) => {
            assert_eq!(error.kind(), ErrorKind::Unsupported, "{error}");
            assert!(is_message_move_unsupported(&error), "{error}");
            let listed = cloud.message_moves(&dlq_arn).await.unwrap_err();
            assert!(is_message_move_unsupported(&listed), "{listed}");
        }
    }
}

#[tokio::test]
async fn the_fallback_moves_every_message_with_its_attributes() {
    let _bed = common::shared().await;
    let cloud = cloud().await;
    for fifo in [false, true] {
        let ((dlq_url, _), (source_url, _)) = wired_queues(&cloud, fifo).await;
        let (other_url, _) = create_queue(&cloud, "other", fifo).await;
        let group = fifo.then_some("customer-7");
        let sent: Vec<_> = (0..15)
            .map(|i| outgoing(&format!("m{i}"), &format!("body {i}"), group))
            .collect();
        for chunk in sent.chunks(10) {
            assert!(
                cloud
                    .message_queue(&dlq_url)
                    .send(chunk)
                    .await
                    .unwrap()
                    .failed
                    .is_empty()
            );
        }

        // Back to the source (the only one, as moto records no DeadLetterQueueSourceArn), 5 at most.
        let back = Destination::Sources {
            by_arn: BTreeMap::new(),
            default: Some(source_url.clone()),
        };
        let first = move_messages(&cloud, &dlq_url, &back, 5, None, None)
            .await
            .unwrap();
        assert!(first.moved >= 5 && first.failed.is_empty(), "{first:?}");
        // The rest to another queue, throttled.
        let rest = move_messages(
            &cloud,
            &dlq_url,
            &Destination::Queue(other_url.clone()),
            u64::MAX,
            Some(100),
            None,
        )
        .await
        .unwrap();
        assert_eq!(first.moved + rest.moved, 15, "{rest:?}");
        assert_eq!(cloud.queue_stats(&dlq_url).await.unwrap().visible, 0);

        let mut moved = drain(&cloud, &source_url).await;
        moved.extend(drain(&cloud, &other_url).await);
        let mut bodies: Vec<_> = moved.iter().map(|m| m.body.clone()).collect();
        bodies.sort();
        let mut expected: Vec<_> = sent.iter().map(|m| m.body.clone()).collect();
        expected.sort();
        assert_eq!(bodies, expected, "fifo={fifo}");
        let mut originals = std::collections::BTreeSet::new();
        for message in &moved {
            // Each copy keeps the message's attributes and carries the dead letter's message id.
            let mut attributes = message.attributes.clone();
            let original = attributes
                .remove(tributary::cloud::redrive::ORIGINAL_ID_ATTRIBUTE)
                .and_then(|a| a.string_value)
                .expect("every copy names its original");
            originals.insert(original);
            assert_eq!(attributes, sent[0].attributes, "fifo={fifo}");
            assert_eq!(message.group_id(), group, "fifo={fifo}");
            assert_eq!(message.deduplication_id().is_some(), fifo);
        }
        assert_eq!(originals.len(), moved.len(), "one original id per message");
    }
}

/// SQS's message-move task against ElasticMQ, which has it (moto has not): messages dead-lettered by
/// `maxReceiveCount` go back to the queue they came from, and messages to an explicit destination go
/// there; the task is listed as finished with the count moved.
#[tokio::test]
async fn the_message_move_task_moves_dead_messages_on_a_server_that_has_it() {
    let _bed = common::shared().await;
    let cloud = AwsCloud::new(&common::elasticmq_config().await);
    let ((dlq_url, dlq_arn), (source_url, _)) = wired_queues(&cloud, false).await;
    for i in 0..5 {
        let message = outgoing(&format!("m{i}"), &format!("poison {i}"), None);
        cloud.message_queue(&source_url).send(&[message]).await.unwrap();
    }
    // Two receives each (maxReceiveCount 2); the third receive attempt moves them to the dead letter.
    for _ in 0..3 {
        common::eventually("the receives", Duration::from_secs(10), || async {
            let batch = cloud
                .message_queue(&source_url)
                .receive(&Receive::to_move(10, 0))
                .await
                .unwrap();
            Some(batch.len())
        })
        .await;
    }
    let dead = common::eventually("5 dead letters", Duration::from_secs(20), || async {
        let stats = cloud.queue_stats(&dlq_url).await.unwrap();
        let _ = cloud
            .message_queue(&source_url)
            .receive(&Receive::to_move(10, 0))
            .await
            .unwrap();
        (stats.visible == 5).then_some(stats)
    })
    .await;
    assert_eq!(dead.visible, 5);

    let finished = |cloud: AwsCloud, arn: String| async move {
        let tasks = cloud.message_moves(&arn).await.unwrap();
        tasks.first().filter(|task| task.status.is_finished()).cloned()
    };
    let request = MoveRequest {
        source_arn: dlq_arn.clone(),
        destination_arn: None,
        max_messages_per_second: Some(50),
    };
    let handle = cloud.start_message_move(&request).await.unwrap();
    assert!(!handle.is_empty());
    let task = common::eventually("the move back to finish", Duration::from_secs(30), || {
        finished(cloud.clone(), dlq_arn.clone())
    })
    .await;
    assert_eq!(task.status, MoveTaskStatus::Completed, "{task:?}");
    assert_eq!(task.moved, 5, "{task:?}");
    assert_eq!(task.source_arn.as_deref(), Some(dlq_arn.as_str()));
    let mut back: Vec<_> = drain(&cloud, &source_url)
        .await
        .into_iter()
        .map(|m| m.body)
        .collect();
    back.sort();
    assert_eq!(back, (0..5).map(|i| format!("poison {i}")).collect::<Vec<_>>());

    // To an explicit destination.
    let (other_url, other_arn) = create_queue(&cloud, "other", false).await;
    cloud
        .message_queue(&dlq_url)
        .send(&[outgoing("x", "dead x", None), outgoing("y", "dead y", None)])
        .await
        .unwrap();
    let request = MoveRequest {
        destination_arn: Some(other_arn.clone()),
        ..request
    };
    cloud.start_message_move(&request).await.unwrap();
    let task = common::eventually("the move elsewhere to finish", Duration::from_secs(30), || {
        finished(cloud.clone(), dlq_arn.clone())
    })
    .await;
    assert_eq!(
        task.destination_arn.as_deref(),
        Some(other_arn.as_str()),
        "{task:?}"
    );
    let mut moved: Vec<_> = drain(&cloud, &other_url)
        .await
        .into_iter()
        .map(|m| m.body)
        .collect();
    moved.sort();
    assert_eq!(moved, ["dead x", "dead y"]);
    assert_eq!(cloud.queue_stats(&dlq_url).await.unwrap().visible, 0);
}
