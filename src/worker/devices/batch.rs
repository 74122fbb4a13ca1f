//! The pure bookkeeping of the stream loop: how full a batch is, by count and by bytes
//! ([`Batch`]); which of its events must be written one after the other ([`lanes`]); what to commit and
//! where to rewind once its events are settled ([`plan`]); and how long a rewound partition waits before
//! it is read again ([`pause_for`]). No Kafka client here, so every rule is unit-tested.

use std::{
    borrow::Cow,
    collections::{BTreeMap, HashMap},
    time::Duration,
};

use rdkafka::{
    Message as _,
    message::{Headers as _, OwnedMessage},
};

/// What a record costs beyond its bytes (the struct, topic name, header table): small events are then not
/// counted as free.
const RECORD_OVERHEAD: usize = 128;
/// The longest a rewound partition waits before it is read again.
pub const MAX_PARTITION_PAUSE: Duration = Duration::from_secs(60);

/// The bounds of one batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Most events.
    pub events: usize,
    /// Most bytes, as [`size`] counts them.
    pub bytes: usize,
}

/// The bytes `record` holds in memory: body, key, headers and a fixed overhead.
pub fn size(record: &OwnedMessage) -> usize {
    let headers = record.headers().map_or(0, |headers| {
        headers
            .iter()
            .map(|h| h.key.len() + h.value.map_or(0, <[u8]>::len))
            .sum()
    });
    record.payload().map_or(0, <[u8]>::len) + record.key().map_or(0, <[u8]>::len) + headers + RECORD_OVERHEAD
}

/// Events read together, settled together and committed together.
#[derive(Debug, Default)]
pub struct Batch {
    records: Vec<OwnedMessage>,
    bytes: usize,
}

impl Batch {
    /// Adds `record` if it fits within `limits`, else hands it back (to start the next batch). An empty
    /// batch takes any record, so an event larger than the byte budget is read, alone, rather than
    /// stalling its partition.
    pub fn offer(&mut self, record: OwnedMessage, limits: Limits) -> Result<(), OwnedMessage> {
        let bytes = size(&record);
        let fits = self.records.len() < limits.events && self.bytes + bytes <= limits.bytes;
        if !self.records.is_empty() && !fits {
            return Err(record);
        }
        self.bytes += bytes;
        self.records.push(record);
        Ok(())
    }

    /// Whether no further record could fit: the count is reached, or too few bytes are left for even
    /// the smallest record.
    pub fn is_full(&self, limits: Limits) -> bool {
        self.records.len() >= limits.events || self.bytes + RECORD_OVERHEAD > limits.bytes
    }

    /// The records, in the order read.
    pub fn records(&self) -> &[OwnedMessage] {
        &self.records
    }

    /// Bytes held, as [`size`] counts them.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Whether it holds no record.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }
}

/// A partition of a topic.
pub type Partition = (String, i32);

/// Only the `eventId` of an event: what decides which document it writes.
#[derive(serde::Deserialize)]
struct EventId<'a> {
    #[serde(rename = "eventId", borrow)]
    event_id: Option<Cow<'a, str>>,
}

/// The records of a batch as lanes of indices: records with the same `eventId` share a lane, in the
/// order read; every other record (no id, not JSON) has a lane of its own. The lanes are settled
/// concurrently and each lane's records one after the other, so the copies of one event are written in
/// the order read and the last one read wins. Within a partition that order is the offset order, so
/// "newer" means a higher offset; copies in different partitions have no order Kafka defines, and are
/// written in the order this batch read them.
pub fn lanes(records: &[OwnedMessage]) -> Vec<Vec<usize>> {
    let mut lanes: Vec<Vec<usize>> = Vec::with_capacity(records.len());
    let mut by_id: HashMap<Cow<'_, str>, usize> = HashMap::new();
    for (index, record) in records.iter().enumerate() {
        let id = record
            .payload()
            .and_then(|payload| serde_json::from_slice::<EventId<'_>>(payload).ok())
            .and_then(|event| event.event_id);
        let Some(id) = id else {
            lanes.push(vec![index]);
            continue;
        };
        match by_id.get(&id) {
            Some(&lane) => lanes[lane].push(index),
            None => {
                by_id.insert(id, lanes.len());
                lanes.push(vec![index]);
            }
        }
    }
    lanes
}

/// What to do with the offsets of a settled batch.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// Per partition, the offset to commit: the next one to read.
    pub commit: BTreeMap<Partition, i64>,
    /// Per partition holding an unsettled event, the offset of the first one: the partition is rewound
    /// to it (and paused), and nothing at or past it is committed.
    pub rewind: BTreeMap<Partition, i64>,
}

/// The plan for a batch whose records ended `settled` (true) or not, in the same order. A partition
/// with no unsettled event commits the offset after its last event; one with an unsettled event commits
/// exactly up to it (the events before it are done) and is rewound to it.
pub fn plan<'a>(outcomes: impl IntoIterator<Item = (&'a OwnedMessage, bool)>) -> Plan {
    let mut next: BTreeMap<Partition, i64> = BTreeMap::new();
    let mut first_unsettled: BTreeMap<Partition, i64> = BTreeMap::new();
    for (record, settled) in outcomes {
        let partition = (record.topic().to_owned(), record.partition());
        let entry = next.entry(partition.clone()).or_default();
        *entry = (*entry).max(record.offset() + 1);
        if !settled {
            let first = first_unsettled.entry(partition).or_insert(record.offset());
            *first = (*first).min(record.offset());
        }
    }
    for (partition, offset) in &first_unsettled {
        next.insert(partition.clone(), *offset);
    }
    Plan {
        commit: next,
        rewind: first_unsettled,
    }
}

/// How long a partition rewound for the `stalls`-th time in a row waits: 1 s, doubling, at most
/// [`MAX_PARTITION_PAUSE`], so an event that cannot be settled is tried again without a hot loop.
pub fn pause_for(stalls: u32) -> Duration {
    let seconds = 1u64.checked_shl(stalls.saturating_sub(1)).unwrap_or(u64::MAX);
    Duration::from_secs(seconds).min(MAX_PARTITION_PAUSE)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use rdkafka::Timestamp;

    use super::*;

    fn record(partition: i32, offset: i64, bytes: usize) -> OwnedMessage {
        OwnedMessage::new(
            Some(vec![b'x'; bytes]),
            None,
            "telemetry".into(),
            Timestamp::NotAvailable,
            partition,
            offset,
            None,
        )
    }

    #[test]
    fn a_batch_stops_before_its_byte_budget_whatever_the_count() {
        let limits = Limits {
            events: 500,
            bytes: 3 * 1024 * 1024,
        };
        let mut batch = Batch::default();
        let mut refused = None;
        for offset in 0..10 {
            if let Err(back) = batch.offer(record(0, offset, 1024 * 1024), limits) {
                refused = Some(back);
                break;
            }
        }
        assert_eq!(
            batch.records().len(),
            2,
            "a third 1 MiB event would cross 3 MiB with overheads"
        );
        assert!(batch.bytes() <= limits.bytes);
        assert_eq!(
            refused.unwrap().offset(),
            2,
            "the refused event starts the next batch"
        );
    }

    #[test]
    fn an_event_larger_than_the_budget_is_a_batch_of_its_own() {
        let limits = Limits {
            events: 500,
            bytes: 1024,
        };
        let mut batch = Batch::default();
        batch.offer(record(0, 0, 4096), limits).unwrap();
        assert!(batch.is_full(limits));
        assert!(batch.offer(record(0, 1, 1), limits).is_err());
    }

    #[test]
    fn the_count_still_bounds_small_events() {
        let limits = Limits {
            events: 3,
            bytes: 1 << 30,
        };
        let mut batch = Batch::default();
        for offset in 0..3 {
            batch.offer(record(0, offset, 10), limits).unwrap();
        }
        assert!(batch.is_full(limits));
        assert!(batch.offer(record(0, 3, 10), limits).is_err());
    }

    #[test]
    fn nothing_is_committed_at_or_past_an_unsettled_event() {
        let records = [
            record(0, 10, 1),
            record(0, 11, 1),
            record(0, 12, 1),
            record(1, 5, 1),
            record(1, 6, 1),
            record(2, 7, 1),
        ];
        let settled = [true, false, true, true, true, false];
        let plan = plan(records.iter().zip(settled));
        let at = |p: i32| ("telemetry".to_owned(), p);
        assert_eq!(plan.commit[&at(0)], 11, "up to the unsettled 11, not past it");
        assert_eq!(
            plan.commit[&at(1)],
            7,
            "a settled partition commits after its last"
        );
        assert_eq!(plan.commit[&at(2)], 7, "its only event is unsettled: it stays");
        assert_eq!(plan.rewind, BTreeMap::from([(at(0), 11), (at(2), 7)]));
    }

    fn event(partition: i32, offset: i64, body: &str) -> OwnedMessage {
        OwnedMessage::new(
            Some(body.as_bytes().to_vec()),
            None,
            "telemetry".into(),
            Timestamp::NotAvailable,
            partition,
            offset,
            None,
        )
    }

    #[test]
    fn copies_of_one_event_share_a_lane_in_the_order_read() {
        let records = [
            event(0, 10, r#"{"eventId":"a","v":1}"#),
            event(0, 11, r#"{"eventId":"b"}"#),
            event(1, 4, r#"{"eventId":"a","v":2}"#),
            event(0, 12, "not json"),
            event(0, 13, r#"{"eventId":"a","v":3}"#),
            event(0, 14, r#"{"eventId":7}"#),
            event(0, 15, r#"{"deviceId":"d"}"#),
            event(0, 16, "not json"),
            event(0, 17, r#"{"eventId":"b"}"#),
        ];
        assert_eq!(
            lanes(&records),
            [vec![0, 2, 4], vec![1, 8], vec![3], vec![5], vec![6], vec![7]],
            "one lane per id, in the order read (offsets ascending within a partition); records without a \
             string id each alone"
        );
        assert!(lanes(&[]).is_empty());
    }

    #[test]
    fn a_stalled_partition_backs_off_up_to_a_minute() {
        let pauses: Vec<u64> = (1..=8).map(|n| pause_for(n).as_secs()).collect();
        assert_eq!(pauses, [1, 2, 4, 8, 16, 32, 60, 60]);
        assert_eq!(pause_for(u32::MAX), MAX_PARTITION_PAUSE);
    }
}
