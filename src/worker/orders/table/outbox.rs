//! The outbox entries of the Order table and how the relay reads them. An entry (`ORDER#<id>`/`OUTBOX`)
//! is in the global index `outboxByAge` under one of [`SHARDS`] partitions, `pending#<k>` with `k` derived
//! from the order id (no one hot partition), sorted by `outboxAge`: its creation time in milliseconds,
//! zero-padded, then the order id as the tiebreaker. A read queries every shard for its oldest entries
//! and keeps the oldest `limit` of them all, so a busy table cannot starve an old entry.
//!
//! Entries written before the sharded layout are in the index `outbox` under the one partition
//! `outbox = pending`: read too, until a read finds none, then again every [`LEGACY_RECHECK`] (an older
//! replica may still write there during a rolling upgrade).
//!
//! An entry that cannot be read as an `OrderPlaced` is quarantined: one conditional update moves it to the
//! partition [`QUARANTINE`] of `outboxByAge` (out of the relay's way, still ordered by age) with the
//! reason and time, keeping every attribute it was written with; `docs/operating.md` shows how to list
//! and replay it. Generic over [`TableItems`], so these decisions are unit-tested on the fake.
//!
//! Every replica of the order endpoint runs a relay over the same oldest entries, so a relay publishes an
//! entry only after it has claimed it ([`claim`]): one conditional write names the relay and an expiry
//! [`CLAIM_FOR`] ahead, and succeeds only if the entry has no claim, an expired one, or this relay's. Of
//! two relays, one publishes; a relay that dies holding a claim loses it at the expiry, and another
//! relay publishes the entry then (nothing lost).

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex, PoisonError},
    time::{Duration, Instant},
};

use sha2::{Digest, Sha256};

use super::super::{
    model::OrderEvent,
    store::{OutboxBatch, Pending, Quarantined},
};
use crate::cloud::{
    Result, TableItem, TableItems, TableValue,
    aws::tables::{OUTBOX_AGE_INDEX, OUTBOX_INDEX},
};

/// Partitions of the outbox index. Entries go to `pending#0` … `pending#7` by their order id; a read
/// queries each (8 small queries per pass). Changing it strands the entries of the shards dropped.
pub const SHARDS: u32 = 8;
/// The partition of quarantined entries.
pub const QUARANTINE: &str = "quarantine";
/// The partition attribute of `outboxByAge`.
pub const SHARD_ATTRIBUTE: &str = "outboxShard";
/// The sort attribute of `outboxByAge`.
pub const AGE_ATTRIBUTE: &str = "outboxAge";
/// The partition of the earlier layout: attribute and its one value.
const LEGACY: (&str, &str) = ("outbox", "pending");
/// How long after finding the earlier layout's partition empty it is read again.
pub const LEGACY_RECHECK: Duration = Duration::from_secs(60);
/// The attribute of an entry naming the relay that claimed it (see [`claim`]).
pub const CLAIMED_BY: &str = "relayClaimedBy";
/// The attribute of an entry holding when its claim ends, in Unix milliseconds.
pub const CLAIMED_UNTIL: &str = "relayClaimedUntil";
/// How long a claim keeps the other relays off an entry: far longer than its publish takes (three tries
/// within about two seconds), short enough that a dead relay's entries go out within a minute or so.
pub const CLAIM_FOR: Duration = Duration::from_secs(60);
/// The longest reason kept on a quarantined item.
const REASON_CHARS: usize = 500;

/// The shard of the order `order_id`, of `shards`: stable across versions and processes.
pub fn shard_of(order_id: &str, shards: u32) -> u32 {
    let digest = Sha256::digest(order_id.as_bytes());
    u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]]) % shards.max(1)
}

/// The partition value of shard `shard`.
pub fn shard_key(shard: u32) -> String {
    format!("pending#{shard}")
}

/// The sort value of an entry recorded at `recorded_at_millis`: sorts as the time, then the order id.
pub fn age_key(recorded_at_millis: i64, order_id: &str) -> String {
    format!("{:013}#{order_id}", recorded_at_millis.max(0))
}

/// The index attributes of a new entry of `order_id` recorded at `recorded_at_millis`.
pub fn index_attributes(order_id: &str, recorded_at_millis: i64) -> [(&'static str, String); 2] {
    [
        (SHARD_ATTRIBUTE, shard_key(shard_of(order_id, SHARDS))),
        (AGE_ATTRIBUTE, age_key(recorded_at_millis, order_id)),
    ]
}

/// Whether the earlier layout's partition is read now, given when it was last found empty.
pub fn legacy_due(found_empty: Option<Instant>, now: Instant) -> bool {
    found_empty.is_none_or(|at| now.duration_since(at) >= LEGACY_RECHECK)
}

/// The partitions one read queries: (index, partition attribute, value), every shard, then the earlier
/// layout's when `legacy`.
pub fn partitions(shards: u32, legacy: bool) -> Vec<(&'static str, &'static str, String)> {
    let mut all: Vec<_> = (0..shards)
        .map(|k| (OUTBOX_AGE_INDEX, SHARD_ATTRIBUTE, shard_key(k)))
        .collect();
    if legacy {
        all.push((OUTBOX_INDEX, LEGACY.0, LEGACY.1.to_owned()));
    }
    all
}

fn text<'a>(item: &'a TableItem, name: &str) -> Option<&'a str> {
    item.get(name).and_then(TableValue::as_s)
}

fn recorded_at(item: &TableItem) -> i64 {
    item.get("recordedAt")
        .and_then(TableValue::as_n)
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// The age of an entry: its sort value, or for an entry of the earlier layout (which has none) the same
/// computed from `recordedAt` and its key.
fn age_of(item: &TableItem) -> String {
    text(item, AGE_ATTRIBUTE).map_or_else(
        || {
            let id = text(item, "pk").unwrap_or_default();
            age_key(recorded_at(item), id.strip_prefix("ORDER#").unwrap_or(id))
        },
        str::to_owned,
    )
}

/// The entry as the relay publishes it, or why it cannot be.
pub fn parse(item: &TableItem) -> std::result::Result<Pending, String> {
    let body = text(item, "event").ok_or("the entry has no string attribute `event`")?;
    let event = OrderEvent::parse(body)?;
    Ok(Pending {
        event,
        traceparent: text(item, "traceparent").unwrap_or_default().to_owned(),
        recorded_at_millis: recorded_at(item),
    })
}

/// The reader of one table's outbox: which layout partitions to read, and the time the earlier layout
/// was last found empty. Clones share that time.
#[derive(Clone, Debug)]
pub struct OutboxReader {
    shards: u32,
    legacy_empty: Arc<Mutex<Option<Instant>>>,
}

impl Default for OutboxReader {
    fn default() -> Self {
        Self::new(SHARDS)
    }
}

impl OutboxReader {
    /// A reader of `shards` shards.
    pub fn new(shards: u32) -> Self {
        Self {
            shards,
            legacy_empty: Arc::default(),
        }
    }

    /// The oldest `limit` entries of `table`'s outbox, unreadable ones quarantined. A partition whose
    /// query fails is left for the next read (logged); the read fails only if it found nothing else.
    pub async fn read<T: TableItems>(&self, items: &T, table: &str, limit: i32) -> Result<OutboxBatch> {
        let now = Instant::now();
        let legacy = legacy_due(
            *self.legacy_empty.lock().unwrap_or_else(PoisonError::into_inner),
            now,
        );
        let mut found: BTreeMap<String, TableItem> = BTreeMap::new();
        let mut failures = Vec::new();
        let partitions = partitions(self.shards, legacy);
        // The partitions at once: a pass takes one query's time, not one per shard.
        let reads = futures::future::join_all(
            partitions
                .iter()
                .map(|(index, attribute, value)| items.query_index(table, index, (attribute, value), limit)),
        )
        .await;
        for ((index, _, value), read) in partitions.into_iter().zip(reads) {
            match read {
                Ok(read) => {
                    if index == OUTBOX_INDEX {
                        *self.legacy_empty.lock().unwrap_or_else(PoisonError::into_inner) =
                            read.is_empty().then_some(now);
                    }
                    found.extend(read.into_iter().map(|item| (age_of(&item), item)));
                }
                Err(error) => {
                    tracing::warn!(table, index, partition = %value, %error, "reading an outbox partition failed");
                    failures.push(error);
                }
            }
        }
        if let Some(error) = failures.into_iter().next().filter(|_| found.is_empty()) {
            return Err(error);
        }
        let mut batch = OutboxBatch::default();
        let oldest = found.into_iter().take(usize::try_from(limit).unwrap_or(0));
        for (age, item) in oldest {
            match parse(&item) {
                Ok(pending) => batch.ready.push(pending),
                // A failed quarantine leaves the entry where it is, for the next read: the others go on.
                Err(reason) => match quarantine(items, table, &age, &item, &reason).await {
                    Ok(Some(quarantined)) => batch.quarantined.push(quarantined),
                    Ok(None) => {}
                    Err(error) => {
                        tracing::warn!(table, %error, %reason, "quarantining an outbox entry failed")
                    }
                },
            }
        }
        Ok(batch)
    }
}

/// Claims the outbox entry of `order_id` for the relay `holder` from `now_millis` for [`CLAIM_FOR`];
/// `false` when another relay holds an unexpired claim on it or it is gone (published meanwhile).
pub async fn claim<T: TableItems>(
    items: &T,
    table: &str,
    order_id: &str,
    holder: &str,
    now_millis: i64,
) -> Result<bool> {
    let key = TableItem::from([
        ("pk".to_owned(), TableValue::S(format!("ORDER#{order_id}"))),
        ("sk".to_owned(), TableValue::S("OUTBOX".to_owned())),
    ]);
    let lease = i64::try_from(CLAIM_FOR.as_millis()).unwrap_or(i64::MAX);
    let times = (now_millis, now_millis.saturating_add(lease));
    items
        .claim_item(table, &key, (CLAIMED_BY, CLAIMED_UNTIL), holder, times)
        .await
}

/// Moves the entry `item` (of age `age`) to the quarantine partition, keeping what it holds; `None` if
/// it is gone meanwhile (published by another replica).
async fn quarantine<T: TableItems>(
    items: &T,
    table: &str,
    age: &str,
    item: &TableItem,
    reason: &str,
) -> Result<Option<Quarantined>> {
    let key: TableItem = ["pk", "sk"]
        .into_iter()
        .filter_map(|name| Some((name.to_owned(), item.get(name)?.clone())))
        .collect();
    let order_key = text(item, "pk").unwrap_or_default().to_owned();
    let from = text(item, SHARD_ATTRIBUTE).unwrap_or("outbox=pending");
    let reason: String = reason.chars().take(REASON_CHARS).collect();
    let at = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    let set = TableItem::from([
        (SHARD_ATTRIBUTE.to_owned(), TableValue::S(QUARANTINE.to_owned())),
        (AGE_ATTRIBUTE.to_owned(), TableValue::S(age.to_owned())),
        ("quarantinedFrom".to_owned(), TableValue::S(from.to_owned())),
        ("quarantineReason".to_owned(), TableValue::S(reason.clone())),
        ("quarantinedAt".to_owned(), TableValue::S(at)),
    ]);
    if !items.update_item(table, &key, &set, &[LEGACY.0]).await? {
        return Ok(None);
    }
    tracing::warn!(
        table,
        order_key = %order_key,
        from,
        %reason,
        "outbox entry quarantined: it cannot be published as it is; the relay goes on with the next \
         (see docs/operating.md, replaying a quarantined outbox entry)"
    );
    Ok(Some(Quarantined { order_key, reason }))
}

#[cfg(test)]
#[path = "outbox_tests.rs"]
mod tests;
