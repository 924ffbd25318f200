//! Choosing a partition for a record that does not name one.
//!
//! The default is the Java client's: a keyed record goes to `murmur2(key) % partitions`
//! (positive part), so it lands exactly where a Java producer would put it (librdkafka's
//! default, CRC32, does not). A keyless record goes to a "sticky" partition that changes after
//! `batch.size` bytes (KIP-480, KIP-794's uniform sticky partitioner); with adaptive
//! partitioning the next one is drawn with weights favouring partitions with shorter queues,
//! so a slow broker gets less.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

/// What a partitioner sees of a record and its topic.
#[derive(Debug, Clone, Copy)]
pub struct PartitionContext<'a> {
    /// The topic.
    pub topic: &'a str,
    /// The record's key.
    pub key: Option<&'a [u8]>,
    /// The record's value.
    pub value: Option<&'a [u8]>,
    /// How many partitions the topic has.
    pub partition_count: i32,
}

/// A partitioner's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Choice {
    /// This partition (must be below the partition count).
    Partition(i32),
    /// The built-in uniform sticky partitioner decides (Java's behaviour for keyless
    /// records).
    Sticky,
}

/// Chooses partitions. Implement it for custom placement; it runs inside `send`, so it must
/// be quick and must not block.
pub trait Partitioner: Send + Sync {
    /// The partition for this record. Called while the producer's queues are locked (as
    /// librdkafka calls its partitioners): keep it quick, and never call back into the
    /// producer from it.
    fn partition(&self, ctx: &PartitionContext<'_>) -> Choice;

    /// Whether [`Choice::Sticky`] draws the next partition weighted by queue lengths
    /// (`partitioner.adaptive.partitioning.enable`). Default false.
    fn adaptive(&self) -> bool {
        false
    }
}

/// The Java client's default partitioner.
#[derive(Debug, Clone)]
pub struct DefaultPartitioner {
    /// `partitioner.ignore.keys`: treat keyed records as keyless. Default false.
    pub ignore_keys: bool,
    /// `partitioner.adaptive.partitioning.enable`. Default true.
    pub adaptive: bool,
    /// `partitioner.availability.timeout.ms`: accepted for compatibility; partitions without
    /// a leader are always skipped by the sticky choice. Default 0.
    pub availability_timeout: Duration,
}

impl Default for DefaultPartitioner {
    fn default() -> Self {
        DefaultPartitioner {
            ignore_keys: false,
            adaptive: true,
            availability_timeout: Duration::ZERO,
        }
    }
}

impl Partitioner for DefaultPartitioner {
    fn partition(&self, ctx: &PartitionContext<'_>) -> Choice {
        match ctx.key {
            Some(key) if !self.ignore_keys => {
                Choice::Partition(partition_for_key(key, ctx.partition_count))
            }
            _ => Choice::Sticky,
        }
    }

    fn adaptive(&self) -> bool {
        self.adaptive
    }
}

/// Spreads records over all partitions in turn, keys ignored (Java's
/// `RoundRobinPartitioner`, without its skipping quirk).
#[derive(Debug, Default)]
pub struct RoundRobinPartitioner {
    next: Mutex<HashMap<String, u32>>,
}

impl Partitioner for RoundRobinPartitioner {
    fn partition(&self, ctx: &PartitionContext<'_>) -> Choice {
        let mut next = self.next.lock().unwrap_or_else(|e| e.into_inner());
        let n = match next.get_mut(ctx.topic) {
            Some(n) => n,
            None => next.entry(ctx.topic.to_owned()).or_insert(0),
        };
        let p = *n % ctx.partition_count.max(1) as u32;
        *n = n.wrapping_add(1);
        Choice::Partition(p as i32)
    }
}

/// The partition Java's default partitioner gives a keyed record:
/// `toPositive(murmur2(key)) % partitions`.
pub fn partition_for_key(key: &[u8], partition_count: i32) -> i32 {
    ((murmur2(key) & 0x7fff_ffff) as i32) % partition_count.max(1)
}

/// Kafka's murmur2 (`org.apache.kafka.common.utils.Utils.murmur2`): MurmurHash2, 32 bit,
/// seed `0x9747b28c`, little-endian blocks.
pub fn murmur2(data: &[u8]) -> u32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    let mut h = SEED ^ data.len() as u32;
    let mut chunks = data.chunks_exact(4);
    for c in &mut chunks {
        let mut k = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let tail = chunks.remainder();
    if !tail.is_empty() {
        if tail.len() >= 3 {
            h ^= u32::from(tail[2]) << 16;
        }
        if tail.len() >= 2 {
            h ^= u32::from(tail[1]) << 8;
        }
        h ^= u32::from(tail[0]);
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h
}

/// Per-topic state of the uniform sticky partitioner (KIP-794).
#[derive(Debug, Default)]
pub(crate) struct StickyState {
    current: Option<i32>,
    produced: usize,
}

impl StickyState {
    /// The sticky partition for a record of `size` bytes; `batch_size` bytes later a new one
    /// is drawn among `available()` (partitions with a leader; all when none has; only
    /// computed when drawing), weighted by
    /// `queued(p)` (fewer queued bytes, more likely) when `adaptive`.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn choose(
        &mut self,
        size: usize,
        batch_size: usize,
        partition_count: i32,
        available: impl FnOnce() -> Vec<i32>,
        adaptive: bool,
        queued: impl Fn(i32) -> usize,
        rng: &mut u64,
    ) -> i32 {
        let valid = |p: i32| p < partition_count;
        let current = match self.current {
            Some(p) if valid(p) && self.produced < batch_size => p,
            _ => {
                let p = draw(partition_count, &available(), adaptive, &queued, rng);
                self.current = Some(p);
                self.produced = 0;
                p
            }
        };
        self.produced += size;
        current
    }
}

fn next_random(rng: &mut u64) -> u64 {
    // xorshift64*: plenty for spreading load.
    let mut x = *rng;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *rng = x;
    x.wrapping_mul(0x2545_f491_4f6c_dd1d)
}

fn draw(
    partition_count: i32,
    available: &[i32],
    adaptive: bool,
    queued: &impl Fn(i32) -> usize,
    rng: &mut u64,
) -> i32 {
    let r = next_random(rng);
    let candidates: &[i32] = available;
    if candidates.is_empty() {
        return (r % partition_count.max(1) as u64) as i32;
    }
    if !adaptive {
        return candidates[(r % candidates.len() as u64) as usize];
    }
    // Weight = (longest queue - this queue) + 1: an idle partition is the most likely, the
    // most loaded still possible.
    let longest = candidates.iter().map(|&p| queued(p)).max().unwrap_or(0);
    let total: u64 = candidates
        .iter()
        .map(|&p| (longest - queued(p)) as u64 + 1)
        .sum();
    let mut pick = r % total;
    for &p in candidates {
        let w = (longest - queued(p)) as u64 + 1;
        if pick < w {
            return p;
        }
        pick -= w;
    }
    candidates[candidates.len() - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn murmur2_matches_kafka() {
        // The known answers of Kafka's own UtilsTest.testMurmur2.
        let cases: &[(&[u8], i32)] = &[
            (b"21", -973932308),
            (b"foobar", -790332482),
            (b"a-little-bit-long-string", -985981536),
            (b"a-little-bit-longer-string", -1486304829),
            (
                b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8",
                -58897971,
            ),
            (b"abc", 479470107),
        ];
        for (data, want) in cases {
            assert_eq!(
                murmur2(data) as i32,
                *want,
                "{:?}",
                std::str::from_utf8(data)
            );
        }
    }

    #[test]
    fn keyed_records_use_murmur2_and_keyless_go_sticky() {
        let p = DefaultPartitioner::default();
        let ctx = |key| PartitionContext {
            topic: "t",
            key,
            value: None,
            partition_count: 6,
        };
        let k: &[u8] = b"foobar";
        let want = ((-790332482i32 as u32 & 0x7fff_ffff) % 6) as i32;
        assert_eq!(p.partition(&ctx(Some(k))), Choice::Partition(want));
        assert_eq!(p.partition(&ctx(None)), Choice::Sticky);
        let ignoring = DefaultPartitioner {
            ignore_keys: true,
            ..Default::default()
        };
        assert_eq!(ignoring.partition(&ctx(Some(k))), Choice::Sticky);
    }

    #[test]
    fn round_robin_cycles_per_topic() {
        let rr = RoundRobinPartitioner::default();
        let got: Vec<_> = (0..7)
            .map(|_| {
                rr.partition(&PartitionContext {
                    topic: "t",
                    key: Some(b"same"),
                    value: None,
                    partition_count: 3,
                })
            })
            .collect();
        let want: Vec<_> = [0, 1, 2, 0, 1, 2, 0].map(Choice::Partition).to_vec();
        assert_eq!(got, want);
    }

    #[test]
    fn sticky_switches_after_batch_size_and_favours_short_queues() {
        let mut s = StickyState::default();
        let mut rng = 0x1234_5678_9abc_def1;
        let available = [0, 1, 2, 3];
        let first = s.choose(100, 1000, 4, || available.to_vec(), false, |_| 0, &mut rng);
        for _ in 0..9 {
            assert_eq!(
                s.choose(100, 1000, 4, || available.to_vec(), false, |_| 0, &mut rng),
                first
            );
        }
        // 1000 bytes produced: the next record draws again (may draw the same partition).
        let mut seen = std::collections::HashSet::new();
        for _ in 0..400 {
            seen.insert(s.choose(1000, 1000, 4, || available.to_vec(), false, |_| 0, &mut rng));
        }
        assert_eq!(seen.len(), 4, "uniform draws reach every partition");
        // Adaptive: partition 3 has a long queue and is chosen far less often.
        let mut counts = [0usize; 4];
        for _ in 0..4000 {
            let p = s.choose(
                1000,
                1000,
                4,
                || available.to_vec(),
                true,
                |p| if p == 3 { 90 } else { 0 },
                &mut rng,
            );
            counts[p as usize] += 1;
        }
        assert!(counts[3] * 20 < counts[0], "{counts:?}");
        // Partitions without a leader are skipped.
        for _ in 0..100 {
            let p = s.choose(1000, 1000, 4, || vec![2], true, |_| 0, &mut rng);
            assert_eq!(p, 2);
        }
    }
}
