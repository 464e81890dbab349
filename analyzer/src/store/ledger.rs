//! The exactly-once bookkeeping of one table: which forwarded batches and which Kafka offsets it
//! already holds — in memory (`live`) and durably in Parquet (`durable`, saved in the table's
//! checkpoint together with the id of the last committed flush).
//!
//! A batch is a repeat if its (collector, sequence, part) was stored before, or if it comes from
//! a Kafka partition at an offset below the next one expected. After a crash the analyzer starts
//! from `durable`: rows that were only in memory are consumed again and stored once.

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, VecDeque};

use crate::error::StoreError;

/// Batch keys remembered per collector beyond its floor; older ones fold into the floor. A
/// collector re-sends at most what it delivered since it last saved its position (about a
/// second) plus its 32 in flight, far fewer than this.
const RECENT_PER_COLLECTOR: usize = 10_000;

/// Where a Kafka message came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KafkaPosition {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// Offset of the message.
    pub offset: i64,
}

/// The identity a collector gave a batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BatchKey {
    /// The collector's persistent id.
    pub collector: String,
    /// Sequence within (collector, signal).
    pub sequence: u64,
    /// Part, when a batch was split into several messages.
    pub part: u32,
}

/// Where a batch came from; empty for data with no identity (it is always stored).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Origin {
    /// The Kafka message, when consumed from Kafka.
    pub kafka: Option<KafkaPosition>,
    /// The collector's identity of the batch, when it has one.
    pub batch: Option<BatchKey>,
}

/// Batch keys seen from one collector: everything below `floor`, plus `recent`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct Seen {
    floor: u64,
    recent: BTreeSet<(u64, u32)>,
}

impl Seen {
    fn contains(&self, sequence: u64, part: u32) -> bool {
        sequence < self.floor || self.recent.contains(&(sequence, part))
    }

    fn insert(&mut self, sequence: u64, part: u32) {
        self.recent.insert((sequence, part));
        while self.recent.len() > RECENT_PER_COLLECTOR {
            if let Some((oldest, _)) = self.recent.pop_first() {
                self.floor = self.floor.max(oldest);
            }
        }
    }
}

/// What a table holds, as saved in its checkpoint.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct LedgerState {
    /// Id of the last committed flush; Parquet files of later flushes are leftovers of a crash.
    pub flush_id: u64,
    /// Next offset to store, by `topic:partition`.
    pub offsets: BTreeMap<String, i64>,
    seen: BTreeMap<String, Seen>,
    /// Parquet files (names) taken out of the table by compaction or retention but maybe not
    /// yet deleted (queries may still read them): deleted at start-up, never read again.
    #[serde(default)]
    pub retired: BTreeSet<String>,
}

fn partition_key(topic: &str, partition: i32) -> String {
    format!("{topic}:{partition}")
}

impl LedgerState {
    /// Whether a batch from `origin` is already held.
    pub fn holds(&self, origin: &Origin) -> bool {
        let by_offset = origin.kafka.as_ref().is_some_and(|k| {
            self.offsets
                .get(&partition_key(&k.topic, k.partition))
                .is_some_and(|next| k.offset < *next)
        });
        let by_key = origin.batch.as_ref().is_some_and(|b| {
            self.seen
                .get(&b.collector)
                .is_some_and(|s| s.contains(b.sequence, b.part))
        });
        by_offset || by_key
    }

    /// Notes that the batch from `origin` is held.
    pub fn record(&mut self, origin: &Origin) {
        if let Some(k) = &origin.kafka {
            let next = self
                .offsets
                .entry(partition_key(&k.topic, k.partition))
                .or_insert(0);
            *next = (*next).max(k.offset + 1);
        }
        if let Some(b) = &origin.batch {
            self.seen
                .entry(b.collector.clone())
                .or_default()
                .insert(b.sequence, b.part);
        }
    }

    /// Next offset to store for a partition, if any was stored.
    pub fn next_offset(&self, topic: &str, partition: i32) -> Option<i64> {
        self.offsets.get(&partition_key(topic, partition)).copied()
    }

    /// Reads a checkpoint's bytes; no checkpoint yet is an empty state.
    pub fn decode(bytes: Option<&[u8]>) -> Result<Self, StoreError> {
        match bytes {
            Some(bytes) => serde_json::from_slice(bytes).map_err(StoreError::Checkpoint),
            None => Ok(Self::default()),
        }
    }

    /// The checkpoint's bytes.
    pub fn encode(&self) -> Result<Vec<u8>, StoreError> {
        serde_json::to_vec(self).map_err(StoreError::Checkpoint)
    }
}

/// The ledger of one table: durable state, plus the origins of hot batches in append order.
#[derive(Debug, Default)]
pub struct Ledger {
    durable: LedgerState,
    live: LedgerState,
    /// (table's append count after the batch, origin), oldest first.
    pending: VecDeque<(u64, Origin)>,
}

impl Ledger {
    /// A ledger starting from a checkpoint.
    pub fn new(durable: LedgerState) -> Self {
        Self {
            live: durable.clone(),
            durable,
            pending: VecDeque::new(),
        }
    }

    /// Whether a batch from `origin` is held, in memory or durably.
    pub fn holds(&self, origin: &Origin) -> bool {
        self.live.holds(origin)
    }

    /// Notes a batch held once the table has appended `appended` batches in all.
    pub fn record(&mut self, origin: Origin, appended: u64) {
        self.live.record(&origin);
        self.pending.push_back((appended, origin));
    }

    /// The state once everything appended up to `appended` is in Parquet, as flush `flush_id`.
    pub fn durable_after(&self, appended: u64, flush_id: u64) -> LedgerState {
        let mut state = self.durable.clone();
        for (_, origin) in self.pending.iter().take_while(|(end, _)| *end <= appended) {
            state.record(origin);
        }
        state.flush_id = flush_id;
        state
    }

    /// Forgets retired files once deleted (the next checkpoint no longer lists them).
    pub fn forget_retired<'a>(&mut self, names: impl IntoIterator<Item = &'a str>) {
        for name in names {
            self.durable.retired.remove(name);
        }
    }

    /// Adopts `state` (from [`durable_after`](Self::durable_after)) once its checkpoint is saved.
    pub fn commit(&mut self, state: LedgerState, appended: u64) {
        self.durable = state;
        while self
            .pending
            .front()
            .is_some_and(|(end, _)| *end <= appended)
        {
            self.pending.pop_front();
        }
    }

    /// The durable state.
    pub fn durable(&self) -> &LedgerState {
        &self.durable
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(sequence: u64) -> Origin {
        Origin {
            kafka: None,
            batch: Some(BatchKey {
                collector: "c".into(),
                sequence,
                part: 0,
            }),
        }
    }

    fn at(offset: i64) -> Origin {
        Origin {
            kafka: Some(KafkaPosition {
                topic: "t".into(),
                partition: 0,
                offset,
            }),
            batch: None,
        }
    }

    /// Scenario: batches recorded, then only the first ones flushed.
    /// Guarantees: repeats are recognised in any order; durable state covers only flushed ones.
    #[test]
    fn tracks_live_and_durable_separately() {
        let mut ledger = Ledger::new(LedgerState::default());
        ledger.record(key(2), 1);
        ledger.record(at(7), 2);
        assert!(ledger.holds(&key(2)));
        assert!(!ledger.holds(&key(1)), "sequences may arrive out of order");
        assert!(ledger.holds(&at(6)) && ledger.holds(&at(7)) && !ledger.holds(&at(8)));
        let state = ledger.durable_after(1, 1);
        ledger.commit(state, 1);
        assert!(ledger.durable().holds(&key(2)));
        assert!(!ledger.durable().holds(&at(7)));
        assert_eq!(ledger.durable().flush_id, 1);
        let restarted = Ledger::new(ledger.durable().clone());
        assert!(
            !restarted.holds(&at(7)),
            "unflushed data is consumed again after a crash"
        );
    }

    /// Scenario: far more batches from one collector than the memory keeps.
    /// Guarantees: old ones still count as held (through the floor); memory stays bounded.
    #[test]
    fn memory_per_collector_is_bounded() {
        let mut state = LedgerState::default();
        for s in 1..=(RECENT_PER_COLLECTOR as u64 + 10) {
            state.record(&key(s));
        }
        assert!(state.holds(&key(1)));
        assert_eq!(state.seen["c"].recent.len(), RECENT_PER_COLLECTOR);
    }

    /// Scenario: a checkpoint saved and loaded.
    /// Guarantees: the same batches count as held.
    #[test]
    fn checkpoints_round_trip() {
        let mut state = LedgerState::default();
        state.record(&key(5));
        state.record(&at(3));
        let bytes = state.encode().unwrap();
        let loaded = LedgerState::decode(Some(&bytes)).unwrap();
        assert_eq!(LedgerState::decode(None).unwrap().flush_id, 0);
        assert!(loaded.holds(&key(5)) && loaded.holds(&at(3)) && !loaded.holds(&at(4)));
    }
}
