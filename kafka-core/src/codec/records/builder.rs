//! Building magic 2 record batches in place.

use bytes::{BufMut, Bytes, BytesMut};

use super::{
    ControlRecord, Header, TimestampType, ATTRIBUTES_OFFSET, CONTROL_BIT, CRC_OFFSET, LOG_OVERHEAD,
    NO_PARTITION_LEADER_EPOCH, NO_PRODUCER_EPOCH, NO_PRODUCER_ID, NO_SEQUENCE, NO_TIMESTAMP,
    RECORD_BATCH_OVERHEAD, TIMESTAMP_TYPE_BIT, TRANSACTIONAL_BIT,
};
use crate::codec::compression::{Compression, Compressor};
use crate::codec::varint::{put_varint, put_varlong, varint_len, varlong_len};
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
            // Once the previous batches are dropped this takes back the whole allocation;
            // while they are in flight it allocates what this batch will most likely need.
            self.buf.reserve(self.high_water);
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
        let body = record_body_size(timestamp_delta, offset_delta, key, value, headers);
        if body > i32::MAX as usize {
            return Err(CodecError::TooLarge {
                what: "record",
                len: body,
            });
        }
        self.start();
        let buf = &mut self.buf;
        buf.reserve(5 + body);
        put_varint(buf, body as i32);
        buf.put_u8(0); // record attributes: unused
        put_varlong(buf, timestamp_delta);
        put_varint(buf, offset_delta);
        put_bytes_field(buf, key);
        put_bytes_field(buf, value);
        put_varint(buf, headers.len() as i32);
        for h in headers {
            put_bytes_field(buf, Some(h.key));
            put_bytes_field(buf, h.value);
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
    let mut n = 1 + varlong_len(timestamp_delta) + varint_len(offset_delta);
    n += bytes_field_size(key) + bytes_field_size(value);
    n += varint_len(headers.len().min(i32::MAX as usize) as i32);
    for h in headers {
        n += bytes_field_size(Some(h.key)) + bytes_field_size(h.value);
    }
    n
}

#[inline]
fn bytes_field_size(b: Option<&[u8]>) -> usize {
    match b {
        // Lengths over i32::MAX make the whole record too large, which append reports.
        Some(b) => varint_len(b.len().min(i32::MAX as usize) as i32).saturating_add(b.len()),
        None => 1,
    }
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
