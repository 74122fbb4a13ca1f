//! Worker runtime throughput on a real SQS-compatible server, three cases on one queue in one run:
//! (a) a bare aws-sdk receive/delete-batch loop in this process, (b) the `tributary worker` binary with
//! the built-in no-op processor, (c) the worker with processor `container` delivering each message over
//! the CloudEvents contract to a no-op container (this binary again, a separate process serving 200 on
//! hyper), `BENCH_CONCURRENCY` deliveries in flight, and (d) the same with the Consumer's default
//! concurrency (8). Same receivers, same messages, the queue filled anew before every case.
//!
//! The harness, so that it measures the cases and not itself:
//! - every case runs once first as a warm-up (not counted: the server's JIT, connection pools);
//! - the cases take turns within each round, the order rotated from round to round (no case always
//!   follows another), and the figures are medians with the spread (min–max) over the rounds;
//! - a round starts only on an empty queue (nothing visible or in flight), and after a worker stops the
//!   bench waits out its long poll: a receive the worker abandoned at shutdown is still open at the server
//!   and takes messages of the next fill, hiding them for the visibility timeout (30 s) — what made the
//!   earlier rounds after a worker case crawl at count/30 s;
//! - the 1-minute load average is printed with each round; the no-op container's and the worker's CPU time
//!   per message are printed, so a saturated container would show.
//!
//! Added latency per message: `Container::deliver` (the worker's code) timed against the no-op container,
//! 1 and 8 in flight, p50/p90/p99; and the worker's own processing-duration histogram in the rounds (mean,
//! and the bucket bound holding p50/p99), container case next to no-op.
//!
//! Needs the test bed (`make testbed-up`); `bench/worker/run.sh` runs it against ElasticMQ and moto.
//! Settings: `BENCH_SQS_ENDPOINT` (default the test bed's ElasticMQ), `BENCH_MESSAGES` (default 20000),
//! `BENCH_RECEIVERS` (4), `BENCH_ROUNDS` (3), `BENCH_CONCURRENCY` (deliveries in flight, 40: the
//! receivers' 10 messages each, so the limit does not throttle the runtime), `BENCH_CONTAINER_THREADS`
//! (the no-op container's threads, 1).

#![allow(clippy::unwrap_used)]

#[path = "../bench/worker/latency.rs"]
mod latency;
#[path = "../bench/worker/procs.rs"]
mod procs;
#[path = "../bench/worker/queue.rs"]
mod queue;

use std::{
    collections::HashMap,
    path::PathBuf,
    time::{Duration, Instant},
};

use latency::Histogram;
use procs::{NoopContainer, Worker};

/// Long-poll wait of the bare loop and the workers, seconds.
const WAIT_SECONDS: u32 = 1;

fn testbed_env() -> HashMap<String, String> {
    let dir = std::env::var_os("TESTBED_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/testbed"));
    let text = std::fs::read_to_string(dir.join("env")).expect("no test bed env file: run `make testbed-up`");
    text.lines()
        .filter_map(|line| line.strip_prefix("export "))
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.trim_matches('\'').to_owned()))
        .collect()
}

fn setting(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Case {
    Bare,
    Noop,
    Container,
    /// The container case with the Consumer's default concurrency (8) instead of `BENCH_CONCURRENCY`.
    ContainerDefault,
}

const CASES: [Case; 4] = [Case::Bare, Case::Noop, Case::Container, Case::ContainerDefault];

impl Case {
    fn label(self) -> &'static str {
        match self {
            Case::Bare => "bare SDK loop",
            Case::Noop => "worker, built-in noop",
            Case::Container => "worker, container (no-op)",
            Case::ContainerDefault => "  same, concurrency 8",
        }
    }
}

/// One case's figures in one round.
#[derive(Clone, Debug, Default)]
struct Figures {
    rate: f64,
    /// CPU time per message of the worker and of the no-op container, microseconds.
    worker_cpu_us: f64,
    container_cpu_us: f64,
    /// The no-op container's CPU use during the drain, percent of one core.
    container_busy: f64,
    histogram: Histogram,
    peak_rss: f64,
}

struct Bench {
    sqs: aws_sdk_sqs::Client,
    url: String,
    endpoint: String,
    env: HashMap<String, String>,
    receivers: usize,
    container: NoopContainer,
    /// `processor:` of the container cases: `BENCH_CONCURRENCY` in flight, and the default.
    processor_container: [String; 2],
}

impl Bench {
    async fn run(&self, case: Case, count: usize) -> Figures {
        queue::wait_empty(&self.sqs, &self.url, Duration::from_secs(60)).await;
        queue::fill(&self.sqs, &self.url, count).await;
        match case {
            Case::Bare => {
                let took = queue::bare_loop(&self.sqs, &self.url, count, self.receivers).await;
                Figures {
                    rate: count as f64 / took.as_secs_f64(),
                    ..Figures::default()
                }
            }
            Case::Noop => self.worker(count, "noop").await,
            Case::Container => self.worker(count, &self.processor_container[0]).await,
            Case::ContainerDefault => self.worker(count, &self.processor_container[1]).await,
        }
    }

    /// Drains `count` messages with a worker running `processor`: from the worker answering its metrics
    /// to every message processed and the queue empty.
    async fn worker(&self, count: usize, processor: &str) -> Figures {
        let worker = Worker::start(
            &self.url,
            (self.receivers, WAIT_SECONDS),
            processor,
            &self.env,
            &self.endpoint,
        );
        let processed = "tributary_worker_messages_processed_total";
        while worker.metric(processed).is_none() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let started = Instant::now();
        let cpu = (
            procs::cpu_time(worker.pid()),
            procs::cpu_time(self.container.pid()),
        );
        let bound = Duration::from_secs(300);
        loop {
            let done = worker.metric(processed).unwrap_or(0) as usize >= count;
            if done && queue::depth(&self.sqs, &self.url).await == (0, 0) {
                break;
            }
            assert!(
                started.elapsed() < bound,
                "the worker did not drain {count} messages in {bound:?}"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let took = started.elapsed();
        let worker_cpu = procs::cpu_time(worker.pid()) - cpu.0;
        let container_cpu = procs::cpu_time(self.container.pid()) - cpu.1;
        let text = worker.metrics().unwrap_or_default();
        let received = procs::sample(&text, "tributary_worker_messages_received_total").unwrap_or(0);
        if received as usize != count {
            println!("  note: the worker received {received} messages for {count} (redeliveries)");
        }
        let peak_rss = procs::peak_rss_mib(worker.pid());
        worker.stop();
        // Its receives abandoned at shutdown stay open at the server until their wait ends: let them.
        tokio::time::sleep(Duration::from_secs(u64::from(WAIT_SECONDS)) + Duration::from_millis(500)).await;
        let per_message = |cpu: Duration| cpu.as_secs_f64() * 1e6 / count as f64;
        Figures {
            rate: count as f64 / took.as_secs_f64(),
            worker_cpu_us: per_message(worker_cpu),
            container_cpu_us: per_message(container_cpu),
            container_busy: 100.0 * container_cpu.as_secs_f64() / took.as_secs_f64(),
            histogram: Histogram::parse(&text),
            peak_rss,
        }
    }
}

fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let mid = sorted.len() / 2;
    if sorted.len().is_multiple_of(2) {
        (sorted[mid - 1] + sorted[mid]) / 2.0
    } else {
        sorted[mid]
    }
}

fn spread(values: &[f64]) -> (f64, f64) {
    let min = values.iter().copied().fold(f64::INFINITY, f64::min);
    let max = values.iter().copied().fold(0.0, f64::max);
    (min, max)
}

fn report(results: &[(Case, Vec<Figures>)], loads: &[f64]) {
    println!();
    println!(
        "{:<28} {:>10} {:>17} {:>7} {:>14} {:>16}",
        "case", "median/s", "min–max/s", "spread", "worker CPU/msg", "container CPU/msg"
    );
    for (case, figures) in results {
        let rates: Vec<f64> = figures.iter().map(|f| f.rate).collect();
        let (min, max) = spread(&rates);
        let med = median(&rates);
        let cpu = |pick: fn(&Figures) -> f64| median(&figures.iter().map(pick).collect::<Vec<_>>());
        let (worker_cpu, container_cpu) = match case {
            Case::Bare => ("-".to_owned(), "-".to_owned()),
            Case::Noop => (format!("{:.0} µs", cpu(|f| f.worker_cpu_us)), "-".to_owned()),
            Case::Container | Case::ContainerDefault => (
                format!("{:.0} µs", cpu(|f| f.worker_cpu_us)),
                format!(
                    "{:.0} µs ({:.0}% of a core)",
                    cpu(|f| f.container_cpu_us),
                    cpu(|f| f.container_busy)
                ),
            ),
        };
        println!(
            "{:<28} {med:>10.0} {:>17} {:>6.0}% {worker_cpu:>14} {container_cpu:>16}",
            case.label(),
            format!("{min:.0}–{max:.0}"),
            100.0 * (max - min) / med,
        );
    }
    let rates = |case: Case| -> Vec<f64> {
        let figures = &results.iter().find(|(c, _)| *c == case).unwrap().1;
        figures.iter().map(|f| f.rate).collect()
    };
    let (bare, noop) = (rates(Case::Bare), rates(Case::Noop));
    for case in [Case::Container, Case::ContainerDefault] {
        let container = rates(case);
        let paired: Vec<f64> = container.iter().zip(&noop).map(|(c, n)| c / n).collect();
        let (low, high) = spread(&paired);
        println!(
            "{} / built-in noop: {:.2} (medians); per round {low:.2}–{high:.2} (goal >= 0.80)",
            case.label().trim(),
            median(&container) / median(&noop)
        );
    }
    println!(
        "built-in noop / bare SDK loop: {:.2} (medians)",
        median(&noop) / median(&bare)
    );
    let (low, high) = spread(loads);
    println!(
        "load average (1 min) during the rounds: {low:.2}–{high:.2} on {} cores",
        cores()
    );
    let rss = results
        .iter()
        .flat_map(|(_, f)| f.iter().map(|f| f.peak_rss))
        .fold(0.0, f64::max);
    println!("worker peak RSS {rss:.1} MiB");
    for (case, figures) in results.iter().filter(|(c, _)| *c != Case::Bare) {
        let mut merged = figures[0].histogram.clone();
        for f in &figures[1..] {
            merged.sum_seconds += f.histogram.sum_seconds;
            merged.count += f.histogram.count;
            for (bucket, other) in merged.buckets.iter_mut().zip(&f.histogram.buckets) {
                bucket.1 += other.1;
            }
        }
        println!(
            "in the worker, {}: processing mean {:.3} ms, p50 <= {} ms, p99 <= {} ms, {:.1}% within 1 ms",
            case.label(),
            merged.mean_ms(),
            merged.quantile_bound_ms(0.50),
            merged.quantile_bound_ms(0.99),
            merged.share_within(0.001)
        );
    }
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

fn main() {
    // Started again as the no-op container: serve on a runtime of its own.
    if let Ok(address) = std::env::var(procs::CONTAINER_LISTEN) {
        NoopContainer::serve(&address);
        return;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(bench());
}

async fn bench() {
    let env = testbed_env();
    let endpoint =
        std::env::var("BENCH_SQS_ENDPOINT").unwrap_or_else(|_| env["ELASTICMQ_ENDPOINT_URL"].clone());
    let count = setting("BENCH_MESSAGES", 20_000);
    let receivers = setting("BENCH_RECEIVERS", 4);
    let rounds = setting("BENCH_ROUNDS", 3).max(1);
    let concurrency = setting("BENCH_CONCURRENCY", 40);
    let sqs = queue::client(&endpoint, &env).await;
    let name = format!("bench-worker-{}", std::process::id());
    let url = sqs
        .create_queue()
        .queue_name(&name)
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    let container = NoopContainer::start().await;
    let delivery = |concurrency: &str| {
        format!(
            "container\ndelivery: {{url: '{0}', readyUrl: '{0}healthz', {concurrency}source: /apis/tributary.dev/v1alpha1/namespaces/bench/queues/q}}",
            container.url
        )
    };
    let processor_container = [delivery(&format!("concurrency: {concurrency}, ")), delivery("")];
    let bench = Bench {
        sqs,
        url,
        endpoint,
        env,
        receivers,
        container,
        processor_container,
    };
    println!(
        "server {}: {count} messages per round, {receivers} receivers, {concurrency} deliveries in flight, {rounds} rounds (+1 warm-up), load {:.2}",
        bench.endpoint,
        procs::load()
    );
    for case in CASES {
        bench.run(case, count.min(2_000)).await;
    }
    let mut results: Vec<(Case, Vec<Figures>)> = CASES.iter().map(|&c| (c, Vec::new())).collect();
    let mut loads = Vec::new();
    for round in 0..rounds {
        let mut line = format!("round {}:", round + 1);
        for turn in 0..CASES.len() {
            let index = (turn + round) % CASES.len();
            let figures = bench.run(CASES[index], count).await;
            line.push_str(&format!(" {} {:.0}/s |", CASES[index].label(), figures.rate));
            results[index].1.push(figures);
        }
        loads.push(procs::load());
        println!("{line} load {:.2}", loads[round]);
    }
    report(&results, &loads);
    for in_flight in [1, 8] {
        let deliveries = latency::deliver(&bench.container.url, in_flight, 5_000).await;
        let [p50, p90, p99] = deliveries.quantiles.map(|d| d.as_secs_f64() * 1000.0);
        println!(
            "added latency per message (Container::deliver, request to response, {in_flight} in flight): p50 {p50:.3} ms, p90 {p90:.3} ms, p99 {p99:.3} ms; client CPU {:.0} µs per delivery",
            deliveries.cpu.as_secs_f64() * 1e6
        );
    }
    let _ = bench.sqs.delete_queue().queue_url(&bench.url).send().await;
}
