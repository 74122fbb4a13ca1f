//! Client-side rate limiting: one token bucket per API action, so a burst of reconciles (a controller
//! restart re-reading every object, a bulk apply) spreads its calls out instead of tripping the account's
//! API quotas, which SNS and SQS share with every other client in the account and Region. Throttling
//! errors that still happen are retried by the SDK and then classified `Transient`.
//!
//! Defaults are AWS's published per-account quotas ("Amazon SNS API throttling" in the SNS endpoints and
//! quotas page of the AWS General Reference; "Quotas related to queues" in the SQS Developer Guide):
//! - SNS, the same in every Region (hard): `Subscribe` and `Unsubscribe` 100/s,
//!   `ListSubscriptionsByTopic` and `ListTopics` 30/s, `ListTagsForResource`, `TagResource` and
//!   `UntagResource` 10/s.
//! - SNS, by Region (adjustable): `CreateTopic`, `DeleteTopic`, `Get/SetTopicAttributes`,
//!   `Get/SetSubscriptionAttributes` 3,000/s in us-east-1, 900/s in us-west-2 and eu-west-1, 150/s in
//!   us-east-2, us-west-1, ap-south-1, ap-northeast-1, ap-northeast-2, ap-southeast-1, ap-southeast-2 and
//!   eu-central-1, and 30/s elsewhere (the lowest published figure, also for Regions the table omits).
//! - SQS: tagging (`TagQueue`, `UntagQueue`, `ListQueueTags`) 30/s. AWS publishes no rate for the other
//!   queue-management actions; they get 100/s, and message calls 3,000/s (ours).
//!
//! Each bucket's burst is a tenth of its rate (at least one call), so calls go out evenly. Overrides
//! (`--aws-rate-limit`) set the rate of one action (`sns:CreateTopic=50`), of a service (`sqs:*=500`)
//! or of everything (`*=unlimited`, for emulators), the most specific one winning.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use tokio::time::Instant;

/// A sustained rate and a burst.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Rate {
    /// Calls per second, sustained. Zero, negative or non-finite means unlimited.
    pub per_second: f64,
    /// Calls that may go out at once after a quiet period (at least 1).
    pub burst: u32,
}

impl Rate {
    /// No limit.
    pub const UNLIMITED: Self = Self {
        per_second: 0.0,
        burst: 1,
    };

    /// `per_second` with a burst of a tenth of it (at least one call).
    pub fn per_second(per_second: f64) -> Self {
        let burst = (per_second / 10.0).ceil().clamp(1.0, f64::from(u32::MAX));
        Self {
            per_second,
            // Clamped to u32's range above.
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            burst: burst as u32,
        }
    }

    /// Whether this rate lets every call through at once.
    pub fn is_unlimited(&self) -> bool {
        !(self.per_second.is_finite() && self.per_second > 0.0)
    }
}

/// SNS actions whose quota is the same in every Region, and their rate.
const SNS_FIXED: [(&str, f64); 7] = [
    ("Subscribe", 100.0),
    ("Unsubscribe", 100.0),
    ("ListSubscriptionsByTopic", 30.0),
    ("ListTopics", 30.0),
    ("ListTagsForResource", 10.0),
    ("TagResource", 10.0),
    ("UntagResource", 10.0),
];

/// SQS tagging actions: "Tagging actions are limited to 30 TPS per AWS account."
const SQS_TAGGING: [&str; 3] = ["TagQueue", "UntagQueue", "ListQueueTags"];

/// SQS message (data-plane) actions.
const SQS_MESSAGES: [&str; 6] = [
    "ReceiveMessage",
    "SendMessage",
    "SendMessageBatch",
    "DeleteMessage",
    "DeleteMessageBatch",
    "ChangeMessageVisibility",
];

/// The published rate of SNS's Region-dependent actions (topic and attribute calls) in `region`.
pub fn sns_regional_rate(region: Option<&str>) -> f64 {
    match region.unwrap_or_default() {
        "us-east-1" => 3000.0,
        "us-west-2" | "eu-west-1" => 900.0,
        "us-east-2" | "us-west-1" | "ap-south-1" | "ap-northeast-1" | "ap-northeast-2" | "ap-southeast-1"
        | "ap-southeast-2" | "eu-central-1" => 150.0,
        _ => 30.0,
    }
}

/// Client-side limits per API action: the published defaults of a Region, with overrides.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct RateLimits {
    region: Option<String>,
    /// `(service or "*", action or "*", rate)`, most recent last.
    overrides: Vec<(String, String, Rate)>,
}

impl RateLimits {
    /// AWS's published quotas for `region` (see the module documentation).
    pub fn published(region: Option<&str>) -> Self {
        Self {
            region: region.map(str::to_owned),
            overrides: Vec::new(),
        }
    }

    /// No client-side limits at all (the SDK's retries still handle throttling).
    pub fn unlimited() -> Self {
        Self::default().with("*=unlimited").unwrap_or_default()
    }

    /// These limits with one more override, `SERVICE:ACTION=RATE`, `SERVICE:*=RATE` or `*=RATE`, where
    /// RATE is calls per second or `unlimited`. An error names what is wrong.
    pub fn with(mut self, spec: &str) -> Result<Self, String> {
        let rule = "expected SERVICE:ACTION=RATE, SERVICE:*=RATE or *=RATE, with RATE calls per second or \
                    `unlimited` (e.g. sns:CreateTopic=50, sqs:*=500, *=unlimited)";
        let (target, rate) = spec
            .split_once('=')
            .ok_or_else(|| format!("aws rate limit {spec:?}: {rule}"))?;
        let (service, action) = match target.trim() {
            "*" => ("*", "*"),
            other => other
                .split_once(':')
                .ok_or_else(|| format!("aws rate limit {spec:?}: {rule}"))?,
        };
        if !matches!(service, "sns" | "sqs" | "sts" | "*") || action.is_empty() {
            return Err(format!(
                "aws rate limit {spec:?}: the service must be sns, sqs or sts; {rule}"
            ));
        }
        let rate = match rate.trim() {
            "unlimited" => Rate::UNLIMITED,
            number => match number.parse::<f64>() {
                Ok(value) if value.is_finite() && value > 0.0 => Rate::per_second(value),
                _ => {
                    return Err(format!(
                        "aws rate limit {spec:?}: RATE must be a positive number or `unlimited`"
                    ));
                }
            },
        };
        self.overrides.push((service.to_owned(), action.to_owned(), rate));
        Ok(self)
    }

    /// The rate of `service`'s `action`: the most specific override, else the published default.
    pub fn rate(&self, service: &str, action: &str) -> Rate {
        let specificity = |s: &str, a: &str| match (s == service, a == action) {
            (true, true) => Some(3),
            (true, false) if a == "*" => Some(2),
            (false, _) if s == "*" => Some(1),
            _ => None,
        };
        self.overrides
            .iter()
            .filter_map(|(s, a, rate)| specificity(s, a).map(|rank| (rank, *rate)))
            .max_by_key(|(rank, _)| *rank)
            .map_or_else(|| self.published_rate(service, action), |(_, rate)| rate)
    }

    /// How long a periodic check making one of each of `calls` must be spaced per object so that checking
    /// every object takes at most `share` of each call's rate (the rest is left for new objects and the
    /// account's other clients): the largest `1 / (rate × share)`. Zero when every rate is unlimited.
    pub fn check_spacing(&self, calls: &[(&str, &str)], share: f64) -> Duration {
        calls
            .iter()
            .map(|(service, action)| self.rate(service, action))
            .filter(|rate| !rate.is_unlimited())
            .map(|rate| Duration::from_secs_f64(1.0 / (rate.per_second * share.clamp(0.01, 1.0))))
            .max()
            .unwrap_or_default()
    }

    fn published_rate(&self, service: &str, action: &str) -> Rate {
        let per_second = match service {
            "sns" => SNS_FIXED
                .iter()
                .find(|(name, _)| *name == action)
                .map_or_else(|| sns_regional_rate(self.region.as_deref()), |(_, rate)| *rate),
            "sqs" if SQS_TAGGING.contains(&action) => 30.0,
            "sqs" if SQS_MESSAGES.contains(&action) => 3000.0,
            _ => 100.0,
        };
        Rate::per_second(per_second)
    }
}

/// One bucket per action, made on first use.
#[derive(Debug)]
pub(crate) struct Limiter {
    limits: RateLimits,
    buckets: Mutex<HashMap<(&'static str, &'static str), Arc<TokenBucket>>>,
}

impl Limiter {
    pub(crate) fn new(limits: &RateLimits) -> Self {
        Self {
            limits: limits.clone(),
            buckets: Mutex::default(),
        }
    }

    /// Waits until a call of `service`'s `action` may go out.
    pub(crate) async fn acquire(&self, service: &'static str, action: &'static str) {
        let bucket = {
            let mut buckets = self.buckets.lock().unwrap_or_else(PoisonError::into_inner);
            buckets
                .entry((service, action))
                .or_insert_with(|| Arc::new(TokenBucket::new(self.limits.rate(service, action))))
                .clone()
        };
        bucket.acquire().await;
    }
}

/// A token bucket that hands out reservations: a caller takes a token now, possibly driving the balance
/// negative, and sleeps until the balance would have covered it. Callers are thereby served in order and
/// the lock is never held across an await.
#[derive(Debug)]
struct TokenBucket {
    rate: Rate,
    state: Mutex<Bucket>,
}

impl TokenBucket {
    fn new(rate: Rate) -> Self {
        Self {
            rate,
            state: Mutex::new(Bucket::full(rate, Instant::now())),
        }
    }

    async fn acquire(&self) {
        if self.rate.is_unlimited() {
            return;
        }
        let wait = self
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .reserve(self.rate, Instant::now());
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }
}

/// The pure state of a bucket.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Bucket {
    tokens: f64,
    last: Instant,
}

impl Bucket {
    fn full(rate: Rate, now: Instant) -> Self {
        Self {
            tokens: f64::from(rate.burst.max(1)),
            last: now,
        }
    }

    /// Takes one token at `now` and returns how long the caller must wait before using it.
    fn reserve(&mut self, rate: Rate, now: Instant) -> Duration {
        let burst = f64::from(rate.burst.max(1));
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * rate.per_second).min(burst);
        self.last = now.max(self.last);
        self.tokens -= 1.0;
        if self.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-self.tokens / rate.per_second)
        }
    }
}

#[cfg(test)]
#[path = "ratelimit_tests.rs"]
mod tests;
