//! Building magic 2 record batches in place.

use bytes::{BufMut, Bytes, BytesMut};

use super::{
    ControlRecord, Header, TimestampType, ATTRIBUTES_OFFSET, CONTROL_BIT, CRC_OFFSET, LOG_OVERHEAD,
    NO_PARTITION_LEADER_EPOCH, NO_PRODUCER_EPOCH, NO_PRODUCER_ID, NO_SEQUENCE, NO_TIMESTAMP,
    RECORD_BATCH_OVERHEAD, TIMESTAMP_TYPE_BIT, TRANSACTIONAL_BIT,
};
use crate::codec::compression::{Compression, Compressor};
use crate::codec::varint::{put_uvarint, put_uvarlong, put_varint, varint_len};
use crate::error::{CodecError, Result};

/// Everything about a batch that is not its records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchOptions {
    /// `baseOffset`. Producers send 0; the broker assigns real offsets.
    pub base_offset: i64,
    /// The codec the records section is compressed with at [`seal`](RecordBatchBuilder::seal).
    pub compression: Compression,
    /// Overrides the [`Compressor`]'s level for this batch's codec (gzip and zstd only).
    pub compression_level: Option<i32>,
    /// `CreateTime` (what producers send) or `LogAppendTime`.
    pub timestamp_type: TimestampType,
    /// Idempotent/transactional producer id, or [`NO_PRODUCER_ID`].
    pub producer_id: i64,
    /// Producer epoch, or [`NO_PRODUCER_EPOCH`].
    pub producer_epoch: i16,
    /// Sequence number of the first record, or [`NO_SEQUENCE`]. Sequences are per partition:
    /// a retried batch keeps its base sequence.
    pub base_sequence: i32,
    /// Part of a transaction.
    pub transactional: bool,
    /// A control batch (transaction markers; see [`RecordBatchBuilder::control_batch`]).
    pub control: bool,
    /// `partitionLeaderEpoch`; producers send [`NO_PARTITION_LEADER_EPOCH`].
    pub partition_leader_epoch: i32,
}

impl Default for BatchOptions {
    fn default() -> Self {
        Self {
            base_offset: 0,
            compression: Compression::None,
            compression_level: None,
            timestamp_type: TimestampType::CreateTime,
            producer_id: NO_PRODUCER_ID,
            producer_epoch: NO_PRODUCER_EPOCH,
            base_sequence: NO_SEQUENCE,
            transactional: false,
            control: false,
            partition_leader_epoch: NO_PARTITION_LEADER_EPOCH,
        }
    }
}

impl BatchOptions {
    fn attributes(&self) -> i16 {
        let mut a = i16::from(self.compression.id());
        if self.timestamp_type == TimestampType::LogAppendTime {
            a |= TIMESTAMP_TYPE_BIT;
        }
        if self.transactional {
            a |= TRANSACTIONAL_BIT;
        }
        if self.control {
            a |= CONTROL_BIT;
        }
        a
    }
}

/// Appends records straight into one batch buffer, then seals the batch in place.
///
/// Each record's wire size is computed before it is written, so appending never allocates
/// per record (the buffer grows geometrically, or not at all when it comes from a pool with
/// enough capacity). [`seal`](Self::seal) compresses the records section with a reused
/// [`Compressor`], patches `batchLength` and the CRC32C, and splits the finished batch off as
/// [`Bytes`]; once that `Bytes` (and every clone) is dropped, the next batch reuses the same
/// allocation (`BytesMut`'s reclaim-on-reserve).
///
/// Offsets are consecutive from `base_offset` (offset delta = append index), as a producer
/// writes them.
#[derive(Debug)]
pub struct RecordBatchBuilder {
    buf: BytesMut,
    opts: BatchOptions,
    count: i32,
    base_timestamp: i64,
    max_timestamp: i64,
    /// Largest uncompressed batch built so far: reserved up front by `reset`, which also makes
    /// `BytesMut` reclaim the whole allocation (rather than grow past the previous batch).
    high_water: usize,
    /// `buf` is empty: the header placeholder (and the reservation) wait for the first
    /// append, so that a batch just sealed can be dropped before its space is reclaimed.
    fresh: bool,
    /// A batch has been split off `buf` (see `start`).
    split_once: bool,
}

impl RecordBatchBuilder {
    /// A builder with a fresh buffer.
    pub fn new(opts: BatchOptions) -> Self {
        Self::with_buffer(opts, BytesMut::new())
    }

    /// A builder writing into `buf` (cleared first): a buffer from a pool, or one returned by
    /// [`into_buffer`](Self::into_buffer).
    pub fn with_buffer(opts: BatchOptions, buf: BytesMut) -> Self {
        let mut b = Self {
            buf,
            opts,
            count: 0,
            base_timestamp: NO_TIMESTAMP,
            max_timestamp: NO_TIMESTAMP,
            high_water: RECORD_BATCH_OVERHEAD,
            fresh: true,
            split_once: false,
        };
        b.reset(opts);
        b
    }

    /// Starts a new, empty batch with `opts`, keeping the buffer.
    pub fn reset(&mut self, opts: BatchOptions) {
        self.opts = opts;
        self.count = 0;
        self.base_timestamp = NO_TIMESTAMP;
        self.max_timestamp = NO_TIMESTAMP;
        self.buf.clear();
        self.fresh = true;
    }

    fn start(&mut self) {
        if self.fresh {
            self.fresh = false;
            // After a seal `buf` is the tail of the allocation the sealed batch came from.
            // Asking for more than that tail holds makes `BytesMut` take the whole allocation
            // back, from its start, once the sealed batches are dropped (rather than carry on
            // after them and cycle through twice the memory, which costs cache misses); while
            // they are in flight it allocates what this batch will most likely need.
            let want = if self.split_once {
                self.high_water.max(self.buf.capacity() + 1)
            } else {
                self.high_water
            };
            self.buf.reserve(want);
            // The header is written at seal time; hold its place.
            self.buf.put_bytes(0, RECORD_BATCH_OVERHEAD);
        }
    }

    /// The options of the batch being built.
    pub fn options(&self) -> &BatchOptions {
        &self.opts
    }

    /// Number of records appended so far.
    pub fn record_count(&self) -> usize {
        self.count as usize
    }

    /// True before the first append.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Size of the batch so far, header included, *before* compression: an upper bound on the
    /// sealed size (up to codec framing overhead), which is what `batch.size` is compared to.
    pub fn estimated_size(&self) -> usize {
        if self.fresh {
            RECORD_BATCH_OVERHEAD
        } else {
            self.buf.len()
        }
    }

    /// What [`estimated_size`](Self::estimated_size) would be after appending this record,
    /// to decide whether it still fits in `batch.size`.
    pub fn estimated_size_with(
        &self,
        timestamp: i64,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: &[Header<'_>],
    ) -> usize {
        let base = if self.count == 0 {
            timestamp
        } else {
            self.base_timestamp
        };
        let body = record_body_size(
            timestamp.wrapping_sub(base),
            self.count,
            key,
            value,
            headers,
        );
        self.estimated_size() + varint_len(body.min(i32::MAX as usize) as i32) + body
    }

    /// Appends one record with the next offset; returns its offset delta.
    ///
    /// Fails (and appends nothing) when the record cannot be encoded: a key, value or the whole
    /// record over `i32::MAX` bytes, or more than `i32::MAX` records.
    pub fn append(
        &mut self,
        timestamp: i64,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: &[Header<'_>],
    ) -> Result<i32> {
        let offset_delta = self.count;
        if offset_delta == i32::MAX {
            return Err(CodecError::TooLarge {
                what: "record count",
                len: offset_delta as usize,
            });
        }
        let base = if offset_delta == 0 {
            timestamp
        } else {
            self.base_timestamp
        };
        let timestamp_delta = timestamp.wrapping_sub(base);
        // Every field's zig-zag value and varint length, computed once.
        let ts = zigzag64(timestamp_delta);
        let od = u64::from(zigzag32(offset_delta));
        let kl = u64::from(zigzag32(key.map_or(-1, |k| len_i32(k.len()))));
        let vl = u64::from(zigzag32(value.map_or(-1, |v| len_i32(v.len()))));
        let (ts_n, od_n, kl_n, vl_n) = (
            uvarint_len64(ts),
            uvarint_len64(od),
            uvarint_len64(kl),
            uvarint_len64(vl),
        );
        let key_len = key.map_or(0, <[u8]>::len);
        let value_len = value.map_or(0, <[u8]>::len);
        let mut body = (1 + ts_n + od_n + kl_n + vl_n + 1)
            .saturating_add(key_len)
            .saturating_add(value_len);
        if !headers.is_empty() {
            body = body.saturating_add(headers_size(headers));
        }
        if body > i32::MAX as usize {
            return Err(CodecError::TooLarge {
                what: "record",
                len: body,
            });
        }
        self.start();
        let buf = &mut self.buf;
        // Room for the record plus the slack of the fixed-size writes below.
        buf.reserve(5 + body + 32);
        let length = u64::from(zigzag32(body as i32));
        let head_len = uvarint_len64(length) + 1 + ts_n + od_n + kl_n;
        if head_len <= 8 {
            // The fields before the key, gathered in a register and stored as one 8-byte
            // write (its unused tail cut off again): no per-field call or per-byte store.
            let mut acc = 0u64;
            let mut at = 0u32;
            push_uvarint64(&mut acc, &mut at, length);
            at += 1; // record attributes: unused, 0
            push_uvarint64(&mut acc, &mut at, ts);
            push_uvarint64(&mut acc, &mut at, od);
            push_uvarint64(&mut acc, &mut at, kl);
            let start = buf.len();
            buf.put_u64_le(acc);
            buf.truncate(start + head_len);
        } else if head_len <= 16 {
            let mut acc = 0u128;
            let mut at = 0u32;
            push_uvarint(&mut acc, &mut at, length);
            at += 1;
            push_uvarint(&mut acc, &mut at, ts);
            push_uvarint(&mut acc, &mut at, od);
            push_uvarint(&mut acc, &mut at, kl);
            let start = buf.len();
            buf.put_u128_le(acc);
            buf.truncate(start + head_len);
        } else {
            put_uvarint(buf, length as u32);
            buf.put_u8(0);
            put_uvarlong(buf, ts);
            put_uvarint(buf, od as u32);
            put_uvarint(buf, kl as u32);
        }
        if let Some(key) = key {
            buf.put_slice(key);
        }
        // The value length: at most 5 bytes, one 8-byte write.
        let mut acc = 0u64;
        let mut at = 0u32;
        push_uvarint64(&mut acc, &mut at, vl);
        let start = buf.len();
        buf.put_u64_le(acc);
        buf.truncate(start + vl_n);
        if let Some(value) = value {
            buf.put_slice(value);
        }
        if headers.is_empty() {
            buf.put_u8(0);
        } else {
            put_varint(buf, headers.len() as i32);
            for h in headers {
                put_bytes_field(buf, Some(h.key));
                put_bytes_field(buf, h.value);
            }
        }
        if offset_delta == 0 {
            self.base_timestamp = timestamp;
            self.max_timestamp = timestamp;
        } else if timestamp > self.max_timestamp {
            self.max_timestamp = timestamp;
        }
        self.count += 1;
        Ok(offset_delta)
    }

    /// Appends a control record (a transaction marker). Meant for batches whose options set
    /// `control` (and `transactional`); see [`control_batch`](Self::control_batch).
    pub fn append_control(&mut self, timestamp: i64, marker: ControlRecord) -> Result<i32> {
        self.append(timestamp, Some(&marker.key()), Some(&marker.value()), &[])
    }

    /// Finishes the batch: compresses the records section when the codec is not `none`,
    /// writes the header, `batchLength` and CRC32C, and returns the whole batch. The builder is
    /// then empty again, with the same options (call [`reset`](Self::reset) to change them)
    /// and the same allocation for the next batch once the returned bytes are dropped.
    ///
    /// An empty batch is valid on the wire (timestamps -1, `lastOffsetDelta` 0); producers do
    /// not send them.
    pub fn seal(&mut self, compressor: &mut Compressor) -> Result<Bytes> {
        let opts = self.opts;
        self.start();
        self.high_water = self.high_water.max(self.buf.len());
        if opts.compression != Compression::None {
            let compressed = compressor.compress_with_level(
                opts.compression,
                opts.compression_level,
                &self.buf[RECORD_BATCH_OVERHEAD..],
            )?;
            self.buf.truncate(RECORD_BATCH_OVERHEAD);
            self.buf.extend_from_slice(compressed);
        }
        let batch_length = self.buf.len() - LOG_OVERHEAD;
        if batch_length > i32::MAX as usize {
            return Err(CodecError::TooLarge {
                what: "record batch",
                len: self.buf.len(),
            });
        }
        let mut header = [0u8; RECORD_BATCH_OVERHEAD];
        {
            let mut h = &mut header[..];
            h.put_i64(opts.base_offset);
            h.put_i32(batch_length as i32);
            h.put_i32(opts.partition_leader_epoch);
            h.put_i8(2);
            h.put_u32(0); // CRC, patched below
            h.put_i16(opts.attributes());
            h.put_i32((self.count - 1).max(0));
            h.put_i64(self.base_timestamp);
            h.put_i64(self.max_timestamp);
            h.put_i64(opts.producer_id);
            h.put_i16(opts.producer_epoch);
            h.put_i32(opts.base_sequence);
            h.put_i32(self.count);
        }
        self.buf[..RECORD_BATCH_OVERHEAD].copy_from_slice(&header);
        let crc = crc32c::crc32c(&self.buf[ATTRIBUTES_OFFSET..]);
        self.buf[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
        let batch = self.buf.split().freeze();
        self.split_once = true;
        self.reset(opts);
        Ok(batch)
    }

    /// Gives the buffer back (for a pool). Its contents are unspecified.
    pub fn into_buffer(self) -> BytesMut {
        self.buf
    }

    /// Builds a one-record control batch: a transaction marker as the coordinator writes it
    /// (`control` and `transactional` set, never compressed). `opts` supplies the producer
    /// id/epoch, base offset and leader epoch.
    pub fn control_batch(
        opts: BatchOptions,
        marker: ControlRecord,
        timestamp: i64,
    ) -> Result<Bytes> {
        let opts = BatchOptions {
            compression: Compression::None,
            compression_level: None,
            control: true,
            transactional: true,
            ..opts
        };
        let mut b = Self::with_buffer(opts, BytesMut::with_capacity(RECORD_BATCH_OVERHEAD + 16));
        b.append_control(timestamp, marker)?;
        // An uncompressed seal never touches the compressor's codecs.
        b.seal(&mut Compressor::new())
    }
}

/// Bytes of a record after its length varint.
#[inline]
fn record_body_size(
    timestamp_delta: i64,
    offset_delta: i32,
    key: Option<&[u8]>,
    value: Option<&[u8]>,
    headers: &[Header<'_>],
) -> usize {
    let mut n =
        1 + uvarint_len64(zigzag64(timestamp_delta)) + uvarint_len64(zigzag32(offset_delta).into());
    n += bytes_field_size(key) + bytes_field_size(value);
    n += uvarint_len64(zigzag32(headers.len().min(i32::MAX as usize) as i32).into());
    for h in headers {
        n += bytes_field_size(Some(h.key)) + bytes_field_size(h.value);
    }
    n
}

#[inline]
fn bytes_field_size(b: Option<&[u8]>) -> usize {
    match b {
        // Lengths over i32::MAX make the whole record too large, which append reports.
        Some(b) => uvarint_len64(zigzag32(b.len().min(i32::MAX as usize) as i32).into())
            .saturating_add(b.len()),
        None => 1,
    }
}

#[inline(always)]
fn zigzag32(v: i32) -> u32 {
    ((v << 1) ^ (v >> 31)) as u32
}

#[inline(always)]
fn zigzag64(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

/// Length of an unsigned varint. Record fields are nearly always one or two bytes: those are
/// two predictable branches; the rest is 1 + (significant bits - 1) / 7 as a multiply-shift.
#[inline(always)]
fn uvarint_len64(v: u64) -> usize {
    if v < 1 << 7 {
        1
    } else if v < 1 << 14 {
        2
    } else {
        let bits = 64 - v.leading_zeros() as usize;
        (bits * 9 + 64) / 64
    }
}

/// A slice length as a wire length; anything over `i32::MAX` makes the record too large,
/// which `append` reports from the summed size.
#[inline(always)]
fn len_i32(n: usize) -> i32 {
    n.min(i32::MAX as usize) as i32
}

/// Bytes the headers take after the record's fixed fields, header count included, minus
/// the one byte already counted for an empty header count.
fn headers_size(headers: &[Header<'_>]) -> usize {
    let mut n = uvarint_len64(zigzag32(len_i32(headers.len())).into()) - 1;
    for h in headers {
        n = n
            .saturating_add(bytes_field_size(Some(h.key)))
            .saturating_add(bytes_field_size(h.value));
    }
    n
}

/// Appends `v` as a varint to the little-endian byte accumulator `acc` at byte `at`. The
/// caller has checked that everything fits in 8 bytes.
#[inline(always)]
fn push_uvarint64(acc: &mut u64, at: &mut u32, mut v: u64) {
    while v >= 0x80 {
        *acc |= ((v & 0x7f) | 0x80) << (8 * *at);
        *at += 1;
        v >>= 7;
    }
    *acc |= v << (8 * *at);
    *at += 1;
}

/// Appends `v` as a varint to the little-endian byte accumulator `acc` at byte `at`. The caller
/// has checked that everything fits in 16 bytes.
#[inline(always)]
fn push_uvarint(acc: &mut u128, at: &mut u32, mut v: u64) {
    while v >= 0x80 {
        *acc |= u128::from((v as u8) | 0x80) << (8 * *at);
        *at += 1;
        v >>= 7;
    }
    *acc |= u128::from(v as u8) << (8 * *at);
    *at += 1;
}

#[inline]
fn put_bytes_field(buf: &mut BytesMut, b: Option<&[u8]>) {
    match b {
        Some(b) => {
            put_varint(buf, b.len() as i32);
            buf.put_slice(b);
        }
        None => buf.put_u8(1), // zig-zag -1
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::varint::uvarlong_len;
    use proptest::prelude::*;

    #[test]
    fn varint_len_formula_at_every_boundary() {
        for bits in 0..64 {
            for v in [1u64 << bits, (1u64 << bits) - 1, (1u64 << bits) + 1] {
                assert_eq!(uvarint_len64(v), uvarlong_len(v), "{v}");
            }
        }
        assert_eq!(uvarint_len64(u64::MAX), 10);
        assert_eq!(uvarint_len64(0), 1);
    }

    proptest! {
        #[test]
        fn register_varints_match_the_reference(vs in proptest::collection::vec(0u64..1 << 35, 1..4)) {
            let total: usize = vs.iter().map(|&v| uvarint_len64(v)).sum();
            prop_assume!(total <= 16);
            let (mut acc, mut at) = (0u128, 0u32);
            let mut want = Vec::new();
            for &v in &vs {
                push_uvarint(&mut acc, &mut at, v);
                crate::codec::varint::put_uvarlong(&mut want, v);
            }
            prop_assert_eq!(at as usize, total);
            prop_assert_eq!(&acc.to_le_bytes()[..total], &want[..]);
        }
    }
}
