//! Client-side rate limiting: one token bucket per (service, API family), so a burst of reconciles (a
//! controller restart re-reading every object) spreads its calls out instead of tripping the account's
//! API quotas, which SNS and SQS share with every other client in the account and region. Throttling
//! errors that still happen are retried by the SDK and then classified `Transient`.
//!
//! Default rates follow AWS's published per-account quotas where the API reference states one: SNS
//! `Subscribe` and `Unsubscribe` are "throttled at 100 transactions per second", `ListSubscriptionsByTopic`
//! and `ListTopics` at 30. No per-action figure is published for the attribute and tag calls, nor for SQS
//! control-plane calls, so those get conservative values of our own choosing; message calls (redrive) are
//! effectively unlimited on standard queues and get a generous rate.

use std::{
    sync::{Mutex, PoisonError},
    time::Duration,
};

use tokio::time::Instant;

/// A sustained rate and a burst for one API family.
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

    fn is_unlimited(&self) -> bool {
        !(self.per_second.is_finite() && self.per_second > 0.0)
    }
}

/// Client-side limits per API family, applied to SNS and SQS separately (each service has its own
/// buckets with these rates, as each has its own quotas).
#[derive(Clone, Debug, PartialEq)]
pub struct RateLimits {
    /// `Subscribe`, `Unsubscribe`. Default 100/s, burst 20 (SNS's published quota).
    pub subscriptions: Rate,
    /// `List*` calls (`ListSubscriptionsByTopic`, tags, move tasks, dead-letter sources). Default 30/s,
    /// burst 10 (SNS's published `List*` quota).
    pub list: Rate,
    /// `Get*Attributes` and `Set*Attributes`. Default 30/s, burst 10 (conservative; no published figure).
    pub attributes: Rate,
    /// Message data-plane calls (receive, send, delete). Default 300/s, burst 30.
    pub messages: Rate,
    /// Everything else (create, delete, tag, `GetQueueUrl`, `StartMessageMoveTask`, STS). Default 10/s,
    /// burst 10 (conservative).
    pub other: Rate,
}

impl Default for RateLimits {
    fn default() -> Self {
        Self {
            subscriptions: Rate {
                per_second: 100.0,
                burst: 20,
            },
            list: Rate {
                per_second: 30.0,
                burst: 10,
            },
            attributes: Rate {
                per_second: 30.0,
                burst: 10,
            },
            messages: Rate {
                per_second: 300.0,
                burst: 30,
            },
            other: Rate {
                per_second: 10.0,
                burst: 10,
            },
        }
    }
}

impl RateLimits {
    /// No client-side limits at all (the SDK's retries still handle throttling).
    pub fn unlimited() -> Self {
        Self {
            subscriptions: Rate::UNLIMITED,
            list: Rate::UNLIMITED,
            attributes: Rate::UNLIMITED,
            messages: Rate::UNLIMITED,
            other: Rate::UNLIMITED,
        }
    }
}

/// The API family of a call, which picks its bucket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    /// `Subscribe`, `Unsubscribe`.
    Subscriptions,
    /// `List*`.
    List,
    /// `Get*Attributes`, `Set*Attributes`.
    Attributes,
    /// Receive, send, delete messages.
    Messages,
    /// Everything else.
    Other,
}

/// Buckets for one service.
#[derive(Debug)]
pub(crate) struct Limiter {
    subscriptions: TokenBucket,
    list: TokenBucket,
    attributes: TokenBucket,
    messages: TokenBucket,
    other: TokenBucket,
}

impl Limiter {
    pub(crate) fn new(limits: &RateLimits) -> Self {
        let RateLimits {
            subscriptions,
            list,
            attributes,
            messages,
            other,
        } = limits;
        Self {
            subscriptions: TokenBucket::new(*subscriptions),
            list: TokenBucket::new(*list),
            attributes: TokenBucket::new(*attributes),
            messages: TokenBucket::new(*messages),
            other: TokenBucket::new(*other),
        }
    }

    /// Waits until a call of `family` may go out.
    pub(crate) async fn acquire(&self, family: Family) {
        let bucket = match family {
            Family::Subscriptions => &self.subscriptions,
            Family::List => &self.list,
            Family::Attributes => &self.attributes,
            Family::Messages => &self.messages,
            Family::Other => &self.other,
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
mod tests {
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
    fn unlimited_rates_never_wait() {
        assert!(Rate::UNLIMITED.is_unlimited());
        assert!(
            Rate {
                per_second: f64::INFINITY,
                burst: 1
            }
            .is_unlimited()
        );
        assert!(!TEN_PER_SECOND.is_unlimited());
        assert_eq!(RateLimits::unlimited().list, Rate::UNLIMITED);
    }

    #[tokio::test]
    async fn the_limiter_lets_a_burst_through_without_waiting() {
        let limiter = Limiter::new(&RateLimits::default());
        let start = std::time::Instant::now();
        for _ in 0..10 {
            limiter.acquire(Family::Other).await;
        }
        assert!(start.elapsed() < Duration::from_millis(50));
    }
}
