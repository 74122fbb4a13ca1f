//! The latency the contract adds per message, two ways: the container processor's own `deliver` timed
//! against the no-op container in this process (fine-grained: p50, p90, p99), and the worker's
//! processing-duration histogram in the throughput rounds (under the round's real load, at the
//! histogram's bucket resolution).

use std::time::{Duration, Instant};

use futures::StreamExt as _;
use tributary::worker::{
    config::DeliveryConfig,
    delivery::{container::Container, ready::Readiness, reply::Reply},
    message::Message,
    processor::Outcome,
};

struct NoReplies;

impl tributary::worker::delivery::reply::Replies for NoReplies {
    async fn publish(&self, _reply: Reply) -> tributary::cloud::Result<()> {
        Ok(())
    }
}

/// What `Container::deliver` costs against the container at `url`, `concurrency` deliveries in flight,
/// over `count` messages like the queue's (after 200 not counted).
pub struct Deliveries {
    /// p50, p90, p99 from the request to the response.
    pub quantiles: [Duration; 3],
    /// This process's CPU time per delivery (the worker's side of the contract; the container's is its
    /// own process).
    pub cpu: Duration,
}

pub async fn deliver(url: &str, concurrency: usize, count: usize) -> Deliveries {
    let config: DeliveryConfig = serde_yaml_ng::from_str(&format!(
        "url: '{url}'\nconcurrency: {concurrency}\nsource: /apis/tributary.dev/v1alpha1/namespaces/bench/queues/q\n"
    ))
    .unwrap();
    let container = Container::<NoReplies>::new(&config, None, Readiness::always()).unwrap();
    let message = |i: usize| Message {
        id: format!("m-{i}"),
        body: super::queue::body(i),
        attributes: [("event".to_owned(), "OrderPlaced".to_owned())].into(),
        receive_count: 1,
        ..Message::default()
    };
    let warm_up = 200;
    let cpu = super::procs::cpu_time(std::process::id());
    let mut took: Vec<Duration> = futures::stream::iter(0..count + warm_up)
        .map(|i| {
            let (container, message) = (&container, message(i));
            async move {
                let started = Instant::now();
                let outcome = container.deliver(&message).await;
                assert_eq!(outcome, Outcome::Done);
                (i, started.elapsed())
            }
        })
        .buffer_unordered(concurrency)
        .filter_map(|(i, took)| async move { (i >= warm_up).then_some(took) })
        .collect()
        .await;
    let cpu = (super::procs::cpu_time(std::process::id()) - cpu) / u32::try_from(count + warm_up).unwrap();
    took.sort();
    let at = |q: f64| took[((took.len() as f64 * q) as usize).min(took.len() - 1)];
    Deliveries {
        quantiles: [at(0.50), at(0.90), at(0.99)],
        cpu,
    }
}

/// The worker's processing-duration histogram: (upper bound in seconds, cumulative count), and the sum.
#[derive(Clone, Debug, Default)]
pub struct Histogram {
    pub buckets: Vec<(f64, u64)>,
    pub sum_seconds: f64,
    pub count: u64,
}

const NAME: &str = "tributary_worker_processing_duration_seconds";

impl Histogram {
    /// Read from a worker's `/metrics` text.
    pub fn parse(text: &str) -> Self {
        let mut histogram = Self::default();
        for line in text.lines().filter(|line| line.starts_with(NAME)) {
            let Some((series, value)) = line.rsplit_once(' ') else {
                continue;
            };
            let value: f64 = value.parse().unwrap_or(0.0);
            if let Some(bound) = series
                .split("le=\"")
                .nth(1)
                .and_then(|rest| rest.split('"').next())
            {
                histogram
                    .buckets
                    .push((bound.parse().unwrap_or(f64::INFINITY), value as u64));
            } else if series.starts_with(&format!("{NAME}_sum")) {
                histogram.sum_seconds = value;
            } else if series.starts_with(&format!("{NAME}_count")) {
                histogram.count = value as u64;
            }
        }
        histogram
    }

    /// The mean in milliseconds.
    pub fn mean_ms(&self) -> f64 {
        self.sum_seconds * 1000.0 / self.count.max(1) as f64
    }

    /// The upper bound (ms) of the bucket holding quantile `q`.
    pub fn quantile_bound_ms(&self, q: f64) -> f64 {
        let rank = (self.count as f64 * q).ceil() as u64;
        self.buckets
            .iter()
            .find(|(_, cumulative)| *cumulative >= rank)
            .map_or(f64::INFINITY, |(bound, _)| bound * 1000.0)
    }

    /// The share of messages within `bound_seconds` (a bucket bound), in percent.
    pub fn share_within(&self, bound_seconds: f64) -> f64 {
        let within = self
            .buckets
            .iter()
            .find(|(bound, _)| (bound - bound_seconds).abs() < 1e-9)
            .map_or(0, |(_, cumulative)| *cumulative);
        100.0 * within as f64 / self.count.max(1) as f64
    }
}
