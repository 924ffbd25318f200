//! The state of one assigned partition: positions, buffered fetch data, transaction
//! filtering (read_committed), sans-IO.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashSet, VecDeque};
use std::time::Instant;

use bytes::Bytes;
use kafka_core::codec::records::{BatchDecoder, ControlRecordKind, RecordBatch};
use kafka_core::CodecError;

use crate::config::IsolationLevel;
use crate::TopicPartition;

/// How a partition without a position gets one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NeedPosition {
    /// It has one.
    No,
    /// Committed offset first (groups), then `auto.offset.reset`.
    Committed,
    /// `auto.offset.reset` straight away (out of range, no committed offset).
    Reset,
}

/// Record bytes of one partition from one fetch response.
#[derive(Debug)]
struct Chunk {
    data: Bytes,
}

#[derive(Debug)]
pub(crate) struct PartState {
    pub tp: TopicPartition,
    /// Next offset to hand out (meaningful when `need == No`).
    pub position: i64,
    /// Leader epoch of the last record handed out (-1 unknown): committed with the offset.
    pub position_epoch: i32,
    /// Next offset to fetch (>= position: the gap is buffered or in flight).
    pub fetch_offset: i64,
    /// Epoch of the last fetched batch (KIP-320), -1 none.
    pub last_fetched_epoch: i32,
    pub need: NeedPosition,
    /// Paused by the application.
    pub paused: bool,
    /// Neither fetched nor handed out until the application seeks: an error it must act on
    /// was reported (no offset and `auto.offset.reset=none`, a log truncation).
    pub awaiting_seek: bool,
    /// Bumped by every seek/reset: responses planned before are stale.
    pub generation: u64,
    pub in_flight: bool,
    chunks: VecDeque<Chunk>,
    pub buffered: usize,
    pub high_watermark: i64,
    pub last_stable_offset: i64,
    pub log_start_offset: i64,
    /// KIP-392: read from this replica until `until`.
    pub preferred_replica: Option<(i32, Instant)>,
    /// The broker whose fetch response last carried records for it.
    pub fetched_from: Option<i32>,
    /// Not fetched again before this (after a partition error).
    pub backoff_until: Option<Instant>,
    /// Aborted transactions (first offset, producer id) not yet reached.
    aborted: BinaryHeap<Reverse<(i64, i64)>>,
    /// Producers whose current transaction was aborted.
    aborted_pids: HashSet<i64>,
    /// When data was last handed out (liveness).
    pub last_progress: Option<Instant>,
    pub last_fetch: Option<Instant>,
    /// Last committed offset we know of.
    pub committed: Option<i64>,
    /// When it was assigned (liveness).
    pub assigned_at: Option<Instant>,
    /// A stall was reported already.
    pub reported_stall: bool,
}

/// The next offset after the complete batches in `data`, and the leader epoch of the last
/// of them (magic 2), read from the batch headers without decoding.
pub(crate) fn scan_batches(data: &[u8]) -> Option<(i64, i32)> {
    let mut pos = 0usize;
    let mut last = None;
    while data.len() - pos >= 17 {
        let b = &data[pos..];
        let base = i64::from_be_bytes(b[0..8].try_into().ok()?);
        let len = i32::from_be_bytes(b[8..12].try_into().ok()?);
        if len < 14 {
            break;
        }
        let total = 12 + len as usize;
        if total > b.len() {
            break;
        }
        let magic = b[16];
        last = Some(if magic == 2 && total >= 61 {
            let epoch = i32::from_be_bytes(b[12..16].try_into().ok()?);
            let delta = i32::from_be_bytes(b[23..27].try_into().ok()?);
            (base + i64::from(delta) + 1, epoch)
        } else {
            // Legacy: the offset is that of the (last inner) message.
            (base + 1, -1)
        });
        pos += total;
    }
    last
}

/// What draining found.
pub(crate) enum Drained {
    /// A batch to hand out (records at or after `from`).
    Batch { batch: RecordBatch, from: i64 },
    /// The buffer is empty.
    Empty,
}

impl PartState {
    pub fn new(tp: TopicPartition) -> Self {
        Self {
            tp,
            position: -1,
            position_epoch: -1,
            fetch_offset: -1,
            last_fetched_epoch: -1,
            need: NeedPosition::Committed,
            paused: false,
            awaiting_seek: false,
            generation: 0,
            in_flight: false,
            chunks: VecDeque::new(),
            buffered: 0,
            high_watermark: -1,
            last_stable_offset: -1,
            log_start_offset: -1,
            preferred_replica: None,
            fetched_from: None,
            backoff_until: None,
            aborted: BinaryHeap::new(),
            aborted_pids: HashSet::new(),
            last_progress: None,
            last_fetch: None,
            committed: None,
            assigned_at: Some(Instant::now()),
            reported_stall: false,
        }
    }

    /// Moves to `offset`, dropping buffered data; returns the bytes released.
    pub fn seek(&mut self, offset: i64, epoch: i32) -> usize {
        let released = self.clear();
        self.awaiting_seek = false;
        self.position = offset;
        self.position_epoch = epoch;
        self.fetch_offset = offset;
        self.last_fetched_epoch = epoch;
        self.need = NeedPosition::No;
        released
    }

    /// Forgets the position (a reset or committed lookup follows); returns bytes released.
    pub fn invalidate(&mut self, need: NeedPosition) -> usize {
        let released = self.clear();
        self.need = need;
        released
    }

    fn clear(&mut self) -> usize {
        self.generation += 1;
        self.chunks.clear();
        self.aborted.clear();
        self.aborted_pids.clear();
        std::mem::take(&mut self.buffered)
    }

    /// Paused by the application, or held until it seeks.
    pub fn stopped(&self) -> bool {
        self.paused || self.awaiting_seek
    }

    pub fn has_data(&self) -> bool {
        !self.chunks.is_empty()
    }

    /// Appends fetched record bytes whose complete batches end before `next` (epoch
    /// `epoch`); `aborted` are the response's aborted transactions (producer id, first
    /// offset).
    pub fn push(&mut self, data: Bytes, next: i64, epoch: i32, aborted: &[(i64, i64)]) {
        for &(pid, first) in aborted {
            self.aborted.push(Reverse((first, pid)));
        }
        self.buffered += data.len();
        self.chunks.push_back(Chunk { data });
        self.fetch_offset = next;
        if epoch >= 0 {
            self.last_fetched_epoch = epoch;
        }
    }

    /// The next batch to hand out, skipping what must not be seen (control batches,
    /// aborted transactions under read_committed, batches before the position). `released`
    /// is increased by the buffered bytes consumed.
    pub fn next_batch(
        &mut self,
        decoder: &mut BatchDecoder,
        isolation: IsolationLevel,
        released: &mut usize,
    ) -> Result<Drained, CodecError> {
        loop {
            let Some(chunk) = self.chunks.front_mut() else {
                return Ok(Drained::Empty);
            };
            let len = chunk.data.len();
            let (batch, consumed) = {
                let mut it = decoder.batches(chunk.data.clone());
                let batch = it.next();
                (batch, len - it.truncated_tail())
            };
            let consumed = match &batch {
                // The iteration ended: the rest is a partial batch (or nothing).
                None => len,
                Some(Err(_)) => len,
                Some(Ok(_)) => consumed,
            };
            if consumed >= len {
                self.chunks.pop_front();
            } else {
                chunk.data = chunk.data.slice(consumed..);
            }
            self.buffered -= consumed;
            *released += consumed;
            let batch = match batch {
                None => continue,
                Some(Err(e)) => {
                    // Nothing after a corrupt batch can be trusted: drop the buffer and
                    // fetch again from the position (the caller reports the error).
                    *released += self.clear();
                    self.fetch_offset = self.position;
                    return Err(e);
                }
                Some(Ok(b)) => b,
            };
            let next = batch.last_offset() + 1;
            if next <= self.position {
                continue;
            }
            if batch.is_control() {
                if let Ok(Some(marker)) = batch.control_record() {
                    if marker.kind == ControlRecordKind::Abort {
                        self.aborted_pids.remove(&batch.header().producer_id);
                    }
                }
                self.position = next;
                continue;
            }
            if isolation == IsolationLevel::ReadCommitted && batch.is_transactional() {
                let last = batch.last_offset();
                while let Some(Reverse((first, pid))) = self.aborted.peek().copied() {
                    if first > last {
                        break;
                    }
                    self.aborted.pop();
                    self.aborted_pids.insert(pid);
                }
                if self.aborted_pids.contains(&batch.header().producer_id) {
                    self.position = next;
                    continue;
                }
            }
            if batch.record_count() == 0 {
                self.position = next;
                continue;
            }
            let from = self.position;
            return Ok(Drained::Batch { batch, from });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_core::codec::compression::Compressor;
    use kafka_core::codec::records::{BatchOptions, ControlRecord, RecordBatchBuilder};

    fn batch(base: i64, n: usize, pid: i64, txn: bool) -> Bytes {
        let mut b = RecordBatchBuilder::new(BatchOptions {
            base_offset: base,
            producer_id: pid,
            producer_epoch: if pid >= 0 { 0 } else { -1 },
            base_sequence: if pid >= 0 { 0 } else { -1 },
            transactional: txn,
            partition_leader_epoch: 3,
            ..BatchOptions::default()
        });
        for i in 0..n {
            b.append(0, None, Some(format!("v{i}").as_bytes()), &[])
                .unwrap();
        }
        b.seal(&mut Compressor::new()).unwrap()
    }

    fn marker(base: i64, pid: i64, kind: ControlRecordKind) -> Bytes {
        RecordBatchBuilder::control_batch(
            BatchOptions {
                base_offset: base,
                producer_id: pid,
                producer_epoch: 0,
                transactional: true,
                control: true,
                ..BatchOptions::default()
            },
            ControlRecord {
                kind,
                coordinator_epoch: 0,
            },
            0,
        )
        .unwrap()
    }

    fn concat(parts: &[Bytes]) -> Bytes {
        let mut v = Vec::new();
        for p in parts {
            v.extend_from_slice(p);
        }
        Bytes::from(v)
    }

    fn drain(p: &mut PartState, iso: IsolationLevel) -> Vec<i64> {
        let mut d = BatchDecoder::default();
        let mut out = Vec::new();
        let mut released = 0;
        while let Drained::Batch { batch, from } = p.next_batch(&mut d, iso, &mut released).unwrap()
        {
            for r in batch.records() {
                let r = r.unwrap();
                if r.offset() >= from {
                    out.push(r.offset());
                }
            }
            p.position = batch.last_offset() + 1;
        }
        assert_eq!(p.buffered, 0);
        out
    }

    #[test]
    fn scan_finds_the_end_of_complete_batches() {
        let data = concat(&[batch(0, 3, -1, false), batch(3, 2, -1, false)]);
        assert_eq!(scan_batches(&data), Some((5, 3)));
        assert_eq!(scan_batches(&data[..data.len() - 1]), Some((3, 3)));
        assert_eq!(scan_batches(&data[..10]), None);
    }

    #[test]
    fn read_committed_filters_aborted_and_hides_markers() {
        // pid 7 aborts offsets 0..2 (marker at 2); pid 8 commits 3..4 (marker at 5);
        // a plain batch at 6..7.
        let data = concat(&[
            batch(0, 2, 7, true),
            marker(2, 7, ControlRecordKind::Abort),
            batch(3, 2, 8, true),
            marker(5, 8, ControlRecordKind::Commit),
            batch(6, 2, -1, false),
        ]);
        let mut p = PartState::new(TopicPartition::new("t", 0));
        p.seek(0, -1);
        p.push(data.clone(), 8, 3, &[(7, 0)]);
        assert_eq!(
            drain(&mut p, IsolationLevel::ReadCommitted),
            vec![3, 4, 6, 7]
        );
        assert_eq!(p.position, 8);

        let mut p = PartState::new(TopicPartition::new("t", 0));
        p.seek(0, -1);
        p.push(data, 8, 3, &[(7, 0)]);
        assert_eq!(
            drain(&mut p, IsolationLevel::ReadUncommitted),
            vec![0, 1, 3, 4, 6, 7]
        );
    }

    #[test]
    fn records_before_the_position_are_skipped() {
        let mut p = PartState::new(TopicPartition::new("t", 0));
        p.seek(4, -1);
        p.push(
            concat(&[batch(0, 3, -1, false), batch(3, 3, -1, false)]),
            6,
            3,
            &[],
        );
        assert_eq!(drain(&mut p, IsolationLevel::ReadUncommitted), vec![4, 5]);
    }

    #[test]
    fn a_partition_held_for_the_application_is_released_by_a_seek_not_by_resume() {
        let mut p = PartState::new(TopicPartition::new("t", 0));
        p.seek(20, 3);
        p.awaiting_seek = true;
        assert!(p.stopped());
        p.paused = false;
        assert!(p.stopped(), "resume does not release it");
        p.seek(20, -1);
        assert!(!p.stopped());
        p.paused = true;
        assert!(p.stopped(), "a seek does not resume a paused partition");
    }

    #[test]
    fn a_corrupt_batch_is_an_error_and_drops_the_buffer() {
        let mut data = batch(0, 3, -1, false).to_vec();
        let n = data.len();
        data[n - 1] ^= 0xff;
        let mut p = PartState::new(TopicPartition::new("t", 0));
        p.seek(0, -1);
        p.push(Bytes::from(data), 3, 3, &[]);
        let mut released = 0;
        let r = p.next_batch(
            &mut BatchDecoder::default(),
            IsolationLevel::ReadUncommitted,
            &mut released,
        );
        assert!(matches!(r, Err(CodecError::CrcMismatch { .. })));
        assert_eq!((p.buffered, p.fetch_offset, released), (0, 0, n));
    }
}
