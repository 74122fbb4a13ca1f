use super::*;

const TEN_PER_SECOND: Rate = Rate {
    per_second: 10.0,
    burst: 3,
};

#[test]
fn a_burst_goes_out_at_once_then_calls_are_spaced_by_the_rate() {
    let start = Instant::now();
    let mut bucket = Bucket::full(TEN_PER_SECOND, start);
    let waits: Vec<_> = (0..5).map(|_| bucket.reserve(TEN_PER_SECOND, start)).collect();
    assert_eq!(waits[..3], [Duration::ZERO; 3]);
    assert_eq!(waits[3], Duration::from_millis(100));
    assert_eq!(waits[4], Duration::from_millis(200));
}

#[test]
fn tokens_refill_with_time_up_to_the_burst() {
    let start = Instant::now();
    let mut bucket = Bucket::full(TEN_PER_SECOND, start);
    for _ in 0..3 {
        bucket.reserve(TEN_PER_SECOND, start);
    }
    // 150 ms later one and a half tokens are back: one call is free, the next waits 50 ms.
    let later = start + Duration::from_millis(150);
    assert_eq!(bucket.reserve(TEN_PER_SECOND, later), Duration::ZERO);
    let wait = bucket.reserve(TEN_PER_SECOND, later);
    assert!((wait.as_secs_f64() - 0.05).abs() < 1e-9, "{wait:?}");
    // After a long pause the balance is capped at the burst.
    let much_later = later + Duration::from_secs(60);
    for _ in 0..3 {
        assert_eq!(bucket.reserve(TEN_PER_SECOND, much_later), Duration::ZERO);
    }
    assert!(bucket.reserve(TEN_PER_SECOND, much_later) > Duration::ZERO);
}

#[test]
fn defaults_are_the_published_quotas_of_the_region() {
    let frankfurt = RateLimits::published(Some("eu-central-1"));
    assert_eq!(frankfurt.rate("sns", "Subscribe").per_second, 100.0);
    assert_eq!(frankfurt.rate("sns", "ListSubscriptionsByTopic").per_second, 30.0);
    assert_eq!(frankfurt.rate("sns", "TagResource").per_second, 10.0);
    assert_eq!(frankfurt.rate("sns", "CreateTopic").per_second, 150.0);
    assert_eq!(
        frankfurt.rate("sns", "GetSubscriptionAttributes").per_second,
        150.0
    );
    assert_eq!(
        RateLimits::published(Some("us-east-1"))
            .rate("sns", "CreateTopic")
            .per_second,
        3000.0
    );
    assert_eq!(
        RateLimits::published(Some("eu-west-1"))
            .rate("sns", "CreateTopic")
            .per_second,
        900.0
    );
    for unlisted in [None, Some("eu-south-2"), Some("mx-central-1")] {
        assert_eq!(
            RateLimits::published(unlisted)
                .rate("sns", "CreateTopic")
                .per_second,
            30.0
        );
    }
    assert_eq!(frankfurt.rate("sqs", "ListQueueTags").per_second, 30.0);
    assert_eq!(frankfurt.rate("sqs", "CreateQueue").per_second, 100.0);
    assert_eq!(frankfurt.rate("sqs", "ReceiveMessage").per_second, 3000.0);
    assert_eq!(frankfurt.rate("sns", "Subscribe").burst, 10);
    assert_eq!(frankfurt.rate("sns", "TagResource").burst, 1);
}

#[test]
fn the_most_specific_override_wins() {
    let limits = RateLimits::published(Some("eu-central-1"))
        .with("sns:CreateTopic=50")
        .and_then(|l| l.with("sqs:*=500"))
        .and_then(|l| l.with("*=7"))
        .unwrap();
    assert_eq!(limits.rate("sns", "CreateTopic").per_second, 50.0);
    assert_eq!(limits.rate("sqs", "CreateQueue").per_second, 500.0);
    assert_eq!(limits.rate("sns", "Subscribe").per_second, 7.0);
    assert!(RateLimits::unlimited().rate("sns", "TagResource").is_unlimited());
    let lifted = RateLimits::published(None).with("sns:*=unlimited").unwrap();
    assert!(lifted.rate("sns", "Subscribe").is_unlimited());
    assert!(!lifted.rate("sqs", "CreateQueue").is_unlimited());
}

#[test]
fn a_bad_override_is_refused_naming_the_rule() {
    for bad in [
        "sns:CreateTopic",
        "CreateTopic=5",
        "ec2:RunInstances=5",
        "sns:CreateTopic=-1",
        "sns:=5",
        "*=fast",
    ] {
        let error = RateLimits::default().with(bad).unwrap_err();
        assert!(error.contains(bad), "{error}");
    }
}

#[test]
fn unlimited_rates_never_wait() {
    assert!(Rate::UNLIMITED.is_unlimited());
    assert!(Rate::per_second(f64::INFINITY).is_unlimited());
    assert!(!TEN_PER_SECOND.is_unlimited());
}

#[tokio::test]
async fn the_limiter_keeps_one_bucket_per_action() {
    let limits = RateLimits::published(None).with("sns:CreateTopic=1").unwrap();
    let limiter = Limiter::new(&limits);
    let start = std::time::Instant::now();
    limiter.acquire("sns", "CreateTopic").await;
    for _ in 0..10 {
        limiter.acquire("sns", "Subscribe").await;
    }
    assert!(
        start.elapsed() < Duration::from_millis(50),
        "Subscribe has its own bucket"
    );
}

#[test]
fn the_check_spacing_keeps_a_full_resync_within_half_the_slowest_quota() {
    let limits = RateLimits::published(Some("us-east-1"));
    // ListTagsForResource, 10/s: half of it is one topic every 200 ms.
    let topic = limits.check_spacing(
        &[("sns", "GetTopicAttributes"), ("sns", "ListTagsForResource")],
        0.5,
    );
    assert_eq!(topic, Duration::from_millis(200));
    assert_eq!(
        RateLimits::unlimited().check_spacing(&[("sns", "ListTagsForResource")], 0.5),
        Duration::ZERO
    );
}
