//! The stream loop (the device processor's, and any processor's through [`super::settle`]): read a
//! batch from the consumer group, bounded by count and by bytes ([`super::batch`]), settle every event
//! in it ([`super::processor`]: its document upserted, or the event dead-lettered with the reason), and
//! only then commit offsets. A replica that dies mid-batch
//! leaves its offsets uncommitted, so another replica reads those events again; the upsert keyed by
//! event id makes the second write land on the same document, which is how at-least-once delivery gives
//! exactly-once effects.
//!
//! A batch has a deadline, half of `max.poll.interval.ms`, so the loop is back reading well before the
//! group would drop it. An event not settled by then (the store still failing, or its dead letter not
//! accepted) is not committed: its partition commits only up to it, is rewound to it (`seek`) and
//! paused, and is resumed after a backoff of 1 s doubling to a minute; the other partitions go on. The
//! attempts it used are remembered, so a write that keeps failing is dead-lettered after its attempts
//! whatever the passes. Pause first, seek second: librdkafka keeps a seek's position through a pause and
//! drops what it had prefetched from the partition.

use std::{
    collections::{BTreeMap, HashMap},
    future::Future,
    sync::Arc,
    time::Duration,
};

use anyhow::Context as _;
use futures::{
    FutureExt as _, StreamExt as _,
    future::{FusedFuture as _, Shared},
};
use rdkafka::{
    Message as _, Offset, TopicPartitionList,
    consumer::{CommitMode, Consumer as _, StreamConsumer},
    message::OwnedMessage,
};
use tokio::{sync::Semaphore, time::Instant};

use super::{
    batch::{self, Batch, Limits, Partition, Plan},
    processor::{Earlier, Settled},
    settle::Settle,
};
use crate::{
    cloud::azure::kafka::KafkaEndpoint,
    worker::{config::KafkaSource, metrics::WorkerMetrics},
};

/// How long a batch keeps filling once its first event is there.
const FILL: Duration = Duration::from_millis(20);
/// How long a seek may take to be accepted by the client.
const SEEK_TIMEOUT: Duration = Duration::from_secs(5);

/// Reads `source` until `shutdown`, then finishes the batch in hand (for at most `drain`) and commits it.
pub async fn run<P, S>(
    source: &KafkaSource,
    endpoint: &KafkaEndpoint,
    processor: P,
    shutdown: Shared<S>,
    drain: Duration,
) -> anyhow::Result<()>
where
    P: Settle,
    S: Future<Output = ()> + Send + 'static,
{
    let consumer = consumer(source, endpoint)?;
    let origin = format!("kafka://{}/{}", endpoint.bootstrap_servers, source.topic);
    if !processor.has_dead_letter() {
        tracing::warn!(consumer = %processor.consumer(), "no dead letter: events that cannot be processed are logged with their position and skipped");
    }
    let mut reader = Reader::new(source);
    // Fused: once it has fired, polling it again is not allowed (a `Shared` panics), and the loop
    // below asks `is_terminated` instead.
    let mut shutdown = std::pin::pin!(shutdown.fuse());
    loop {
        reader.resume_due(&consumer, processor.metrics());
        let first = match reader.carry.take() {
            Some(record) => record,
            None => {
                let resume = reader.next_resume();
                let next = tokio::select! {
                    () = &mut shutdown => break,
                    next = consumer.recv() => next.map(|m| m.detach()),
                    () = tokio::time::sleep_until(resume) => continue,
                };
                match next {
                    Ok(record) => record,
                    Err(e) => match after_error(&consumer, &e, &source.topic).await {
                        Some(record) => record,
                        None => continue,
                    },
                }
            }
        };
        let batch = reader.fill(&consumer, first).await;
        if batch.is_empty() {
            continue;
        }
        let deadline = Instant::now() + reader.budget;
        let settled = reader.settle(&processor, &batch, &origin, deadline);
        // Once asked to stop, the batch gets `drain` to finish; cut short, it is not committed and the
        // group hands it to another replica.
        let outcomes = tokio::select! {
            outcomes = settled => outcomes,
            () = async { (&mut shutdown).await; tokio::time::sleep(drain).await } => {
                tracing::warn!(events = batch.records().len(), "stopped before the batch was settled: its offsets stay uncommitted");
                return Ok(());
            }
        };
        let plan = reader.conclude(&consumer, &batch, &outcomes);
        // Asked to stop while this batch settled: commit it for sure, then stop.
        if shutdown.is_terminated() {
            commit(&consumer, &plan, CommitMode::Sync);
            break;
        }
        commit(&consumer, &plan, CommitMode::Async);
    }
    tracing::info!(topic = %source.topic, "stream reader stopped");
    Ok(())
}

/// After a read error: the errors queued behind it skipped, and the first event behind them if there is
/// one; else a pause before the next read.
async fn after_error(
    consumer: &StreamConsumer,
    error: &rdkafka::error::KafkaError,
    topic: &str,
) -> Option<OwnedMessage> {
    let (stale, message) = drain_errors(consumer);
    tracing::warn!(%error, stale, topic, "reading the stream failed; trying again");
    if message.is_none() {
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    message
}

/// The most queued errors read at once after an error (a bound on the loop, far above what an outage
/// queues between two reads).
const MAX_STALE_ERRORS: usize = 10_000;

/// Reads the errors already queued behind the one just read, without waiting: while the broker is away,
/// librdkafka queues an error for every failed connection attempt, several a second, and reading them one
/// per pause kept a worker reading errors minutes after the broker was back (found by the Kafka outage
/// test, tests/it/faults_outage.rs). Returns how many were skipped, and the first event found behind
/// them, if any.
fn drain_errors(consumer: &StreamConsumer) -> (usize, Option<OwnedMessage>) {
    use futures::FutureExt as _;
    for skipped in 0..MAX_STALE_ERRORS {
        match consumer.recv().now_or_never() {
            Some(Err(_)) => {}
            Some(Ok(message)) => return (skipped, Some(message.detach())),
            None => return (skipped, None),
        }
    }
    (MAX_STALE_ERRORS, None)
}

/// The consumer in the group: offsets committed by hand, `max.poll.interval.ms` as configured, and the
/// client's prefetch bounded by half the batch budget (librdkafka then bounds a fetch to it as well).
fn consumer(source: &KafkaSource, endpoint: &KafkaEndpoint) -> anyhow::Result<StreamConsumer> {
    let consumer: StreamConsumer = endpoint
        .client_config()
        .set("group.id", &source.consumer_group)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set(
            "session.timeout.ms",
            (source.session_timeout_seconds * 1000).to_string(),
        )
        .set(
            "heartbeat.interval.ms",
            (source.session_timeout_seconds * 1000 / 10).to_string(),
        )
        .set(
            "max.poll.interval.ms",
            (u64::from(source.max_poll_interval_seconds) * 1000).to_string(),
        )
        .set(
            "queued.max.messages.kbytes",
            (source.max_batch_bytes / 2 / 1024).max(1).to_string(),
        )
        .create()
        .context("cannot create the Kafka consumer")?;
    consumer
        .subscribe(&[&source.topic])
        .with_context(|| format!("cannot subscribe to {}", source.topic))?;
    Ok(consumer)
}

/// A partition rewound to an unsettled event, waiting to be read again.
#[derive(Debug)]
struct Paused {
    /// Where it was rewound to: records from before the rewind at or past it are stale.
    offset: i64,
    until: Instant,
}

/// The loop's state between batches.
struct Reader {
    limits: Limits,
    /// How long a batch may take: half the poll interval.
    budget: Duration,
    writers: usize,
    /// Bytes of events being parsed and written at once, in KiB permits (a quarter of a batch).
    in_flight: Arc<Semaphore>,
    in_flight_kib: u32,
    /// The record that did not fit the last batch: the first of the next.
    carry: Option<OwnedMessage>,
    /// Attempts already spent on unsettled events, by partition and offset.
    earlier: HashMap<(Partition, i64), Earlier>,
    paused: BTreeMap<Partition, Paused>,
    /// Rewinds in a row per partition, for the backoff; reset when a batch settles it whole.
    stalls: BTreeMap<Partition, u32>,
}

impl Reader {
    fn new(source: &KafkaSource) -> Self {
        let bytes = usize::try_from(source.max_batch_bytes).unwrap_or(usize::MAX);
        let in_flight_kib = u32::try_from(source.max_batch_bytes / 4 / 1024)
            .unwrap_or(u32::MAX)
            .max(1);
        Self {
            limits: Limits {
                events: source.max_batch,
                bytes,
            },
            budget: Duration::from_secs(u64::from(source.max_poll_interval_seconds)) / 2,
            writers: source.writers,
            in_flight: Arc::new(Semaphore::new(in_flight_kib as usize)),
            in_flight_kib,
            carry: None,
            earlier: HashMap::new(),
            paused: BTreeMap::new(),
            stalls: BTreeMap::new(),
        }
    }

    /// Whether `record` was read before its partition was rewound past it (it will be read again).
    fn is_stale(&self, record: &OwnedMessage) -> bool {
        let partition = (record.topic().to_owned(), record.partition());
        self.paused
            .get(&partition)
            .is_some_and(|paused| record.offset() >= paused.offset)
    }

    /// A batch starting with `first`, filled for [`FILL`] or until a record does not fit (kept for the
    /// next batch).
    async fn fill(&mut self, consumer: &StreamConsumer, first: OwnedMessage) -> Batch {
        let mut batch = Batch::default();
        if !self.is_stale(&first) {
            let _ = batch.offer(first, self.limits);
        }
        let until = Instant::now() + FILL;
        while !batch.is_full(self.limits) {
            let record = match tokio::time::timeout_at(until, consumer.recv()).await {
                Ok(Ok(message)) => message.detach(),
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "reading the stream failed mid-batch");
                    break;
                }
                Err(_) => break,
            };
            if self.is_stale(&record) {
                continue;
            }
            if let Err(back) = batch.offer(record, self.limits) {
                self.carry = Some(back);
                break;
            }
        }
        batch
    }

    /// Settles every record of `batch` by `deadline`, `writers` at once and within the in-flight byte
    /// budget; the outcomes in the batch's order.
    async fn settle<P: Settle>(
        &self,
        processor: &P,
        batch: &Batch,
        origin: &str,
        deadline: Instant,
    ) -> Vec<Settled> {
        let no_earlier = Earlier::default();
        futures::stream::iter(batch.records())
            .map(|record| {
                let key = ((record.topic().to_owned(), record.partition()), record.offset());
                let earlier = self.earlier.get(&key).unwrap_or(&no_earlier);
                let kib = u32::try_from(batch::size(record).div_ceil(1024)).unwrap_or(u32::MAX);
                let permits = kib.clamp(1, self.in_flight_kib);
                async move {
                    // The semaphore is never closed, so the permit always comes.
                    let _permit = self.in_flight.acquire_many(permits).await.ok();
                    processor.settle(record, origin, earlier, deadline).await
                }
            })
            .buffered(self.writers)
            .collect()
            .await
    }

    /// The offsets to commit for `batch` settled as `outcomes`; partitions with an unsettled event are
    /// paused, rewound to it, and scheduled to resume after their backoff.
    fn conclude(&mut self, consumer: &StreamConsumer, batch: &Batch, outcomes: &[Settled]) -> Plan {
        let plan = batch::plan(batch.records().iter().zip(outcomes.iter().map(Settled::is_done)));
        for (partition, next) in &plan.commit {
            self.earlier
                .retain(|(p, offset), _| p != partition || offset >= next);
            if !plan.rewind.contains_key(partition) {
                self.stalls.remove(partition);
            }
        }
        for (record, outcome) in batch.records().iter().zip(outcomes) {
            if let Settled::Unsettled(earlier) = outcome {
                let key = ((record.topic().to_owned(), record.partition()), record.offset());
                self.earlier.insert(key, earlier.clone());
            }
        }
        for (partition, offset) in &plan.rewind {
            let stalls = self.stalls.entry(partition.clone()).or_default();
            *stalls += 1;
            let pause = batch::pause_for(*stalls);
            tracing::warn!(topic = %partition.0, partition = partition.1, offset, pause_seconds = pause.as_secs(), "an event is not settled: its partition is rewound to it and paused");
            if let Err(e) = rewind(consumer, partition, *offset) {
                tracing::warn!(error = %e, topic = %partition.0, partition = partition.1, "cannot rewind the partition (a rebalance?): the group reads it from the committed offset");
            }
            let until = Instant::now() + pause;
            self.paused.insert(
                partition.clone(),
                Paused {
                    offset: *offset,
                    until,
                },
            );
        }
        if self.carry.as_ref().is_some_and(|record| self.is_stale(record)) {
            self.carry = None;
        }
        plan
    }

    /// When the next paused partition is due (far away when none is paused).
    fn next_resume(&self) -> Instant {
        self.paused
            .values()
            .map(|paused| paused.until)
            .min()
            .unwrap_or_else(|| Instant::now() + Duration::from_secs(3600))
    }

    /// Resumes the partitions whose backoff is over; their stall is cleared (a dead letter that still
    /// cannot be sent marks it again at once).
    fn resume_due(&mut self, consumer: &StreamConsumer, metrics: &WorkerMetrics) {
        let now = Instant::now();
        let due: Vec<Partition> = self
            .paused
            .iter()
            .filter(|(_, paused)| paused.until <= now)
            .map(|(partition, _)| partition.clone())
            .collect();
        for partition in due {
            self.paused.remove(&partition);
            let mut list = TopicPartitionList::new();
            list.add_partition(&partition.0, partition.1);
            if let Err(e) = consumer.resume(&list) {
                tracing::info!(error = %e, topic = %partition.0, partition = partition.1, "cannot resume the partition (no longer assigned?)");
            }
            metrics
                .stalls()
                .clear(&format!("{}/{}", partition.0, partition.1));
        }
    }
}

/// Pauses `partition` and moves its next read back to `offset`.
fn rewind(consumer: &StreamConsumer, partition: &Partition, offset: i64) -> rdkafka::error::KafkaResult<()> {
    let mut list = TopicPartitionList::new();
    list.add_partition(&partition.0, partition.1);
    consumer.pause(&list)?;
    consumer.seek(&partition.0, partition.1, Offset::Offset(offset), SEEK_TIMEOUT)
}

/// Commits the offsets of `plan`.
fn commit(consumer: &StreamConsumer, plan: &Plan, mode: CommitMode) {
    let mut offsets = TopicPartitionList::new();
    for ((topic, partition), offset) in &plan.commit {
        if let Err(e) = offsets.add_partition_offset(topic, *partition, Offset::Offset(*offset)) {
            tracing::warn!(error = %e, topic, partition, "cannot list the offset to commit");
        }
    }
    // A partition moved to another replica refuses the commit; that replica reads from the last
    // committed offset, and the upserts make the repeat harmless.
    if let Err(e) = consumer.commit(&offsets, mode) {
        tracing::info!(error = %e, "the commit was refused (a rebalance?): the events will be read again");
    }
}
