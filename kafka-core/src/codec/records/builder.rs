//! Building magic 2 record batches in place.

use bytes::{BufMut, Bytes, BytesMut};

use super::{
    ControlRecord, Header, TimestampType, ATTRIBUTES_OFFSET, CONTROL_BIT, CRC_OFFSET, LOG_OVERHEAD,
    NO_PARTITION_LEADER_EPOCH, NO_PRODUCER_EPOCH, NO_PRODUCER_ID, NO_SEQUENCE, NO_TIMESTAMP,
    RECORD_BATCH_OVERHEAD, TIMESTAMP_TYPE_BIT, TRANSACTIONAL_BIT,
};
use crate::codec::compression::{Compression, Compressor};
use crate::codec::varint::varint_len;
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

/// Bytes of initialised scratch kept after the end of the record being written. Every field
/// before the key and the value is stored as one 8-byte write whose unused tail the next field
/// overwrites, so there must always be 8 writable bytes past a field's start; and a small
/// record (see [`SMALL_FIELD`]) is written into a window of exactly this many bytes, a
/// constant length against which the compiler proves its stores in bounds and drops the
/// checks (about 15 instructions a record).
const SLACK: usize = 320;

/// Keys and values up to this size are copied with inline moves; a record whose key and value
/// are both this small (and has no headers) fits in `SLACK` bytes, fields and slack included.
const SMALL_FIELD: usize = 128;

/// Appends records straight into one batch buffer, then seals the batch in place.
///
/// Each record's wire size is computed before it is written, so appending never allocates
/// per record: one capacity check per record, then the fields are written at known offsets
/// into the buffer (the buffer grows geometrically, or not at all once it has held a batch of
/// that size). [`seal`](Self::seal) compresses the records section with a reused
/// [`Compressor`], patches `batchLength` and the CRC32C, and hands the finished batch out as
/// [`Bytes`]; once that `Bytes` (and every clone) is dropped, the next batch reuses the same
/// allocation without allocating or zeroing it again.
///
/// Offsets are consecutive from `base_offset` (offset delta = append index), as a producer
/// writes them.
#[derive(Debug)]
pub struct RecordBatchBuilder {
    /// `[0, pos)` is the batch so far (its header a placeholder until `seal`); `[pos, len)` is
    /// initialised scratch the next records are written into. Keeping the scratch initialised
    /// is what lets safe code write fields into it at computed offsets.
    buf: BytesMut,
    pos: usize,
    /// The last sealed batch, kept to take its allocation back (initialised contents and all)
    /// once the caller has dropped every other handle to it.
    sealed: Option<Bytes>,
    opts: BatchOptions,
    count: i32,
    base_timestamp: i64,
    max_timestamp: i64,
    /// Largest uncompressed batch built so far: the scratch a new batch starts with.
    high_water: usize,
    /// No record or header placeholder yet: the buffer (and a sealed batch's allocation) is
    /// taken up at the first append, so that a batch just sealed can be dropped before then.
    fresh: bool,
}

impl RecordBatchBuilder {
    /// A builder with a fresh buffer.
    pub fn new(opts: BatchOptions) -> Self {
        Self::with_buffer(opts, BytesMut::new())
    }

    /// A builder writing into `buf` (cleared first): a buffer from a pool, or one returned by
    /// [`into_buffer`](Self::into_buffer).
    pub fn with_buffer(opts: BatchOptions, mut buf: BytesMut) -> Self {
        buf.clear();
        let mut b = Self {
            buf,
            pos: 0,
            sealed: None,
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
        self.pos = 0;
        self.fresh = true;
    }

    /// Takes up the buffer for a new batch (see `fresh`).
    #[cold]
    #[inline(never)]
    fn start_fresh(&mut self) {
        {
            self.fresh = false;
            if let Some(sealed) = self.sealed.take() {
                // Unique once the caller dropped the batch: then its allocation comes back with
                // the batch's bytes still initialised, so only the scratch past them is zeroed
                // below. Still in flight: `buf` is empty and a new allocation is made.
                if let Ok(buf) = sealed.try_into_mut() {
                    self.buf = buf;
                }
            }
            let want = self.high_water + SLACK;
            if self.buf.len() < want {
                self.buf.resize(want, 0);
            }
            // The header is written at seal time; hold its place.
            self.pos = RECORD_BATCH_OVERHEAD;
        }
    }

    #[inline(always)]
    fn start(&mut self) {
        if self.fresh {
            self.start_fresh();
        }
    }

    /// Makes `buf` at least `need` bytes long (zeroed), at least doubling it.
    #[cold]
    #[inline(never)]
    fn grow(&mut self, need: usize) {
        let target = need.max(self.buf.len().saturating_mul(2));
        self.buf.resize(target, 0);
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
            self.pos
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
    #[inline]
    pub fn append(
        &mut self,
        timestamp: i64,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: &[Header<'_>],
    ) -> Result<i32> {
        if headers.is_empty() {
            self.append_short(timestamp, key, value, &[])
        } else {
            self.append_with_headers(timestamp, key, value, headers)
        }
    }

    /// [`append`](Self::append) for a record with headers, kept out of line: the loop that
    /// appends records without headers then holds no header slice in a register.
    #[inline(never)]
    fn append_with_headers(
        &mut self,
        timestamp: i64,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: &[Header<'_>],
    ) -> Result<i32> {
        self.append_short(timestamp, key, value, headers)
    }

    /// The fast path of [`append`](Self::append), falling back to `append_general`.
    #[inline(always)]
    fn append_short(
        &mut self,
        timestamp: i64,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: &[Header<'_>],
    ) -> Result<i32> {
        // The common record (after the first of a batch): every field before the key and the
        // value length fit in two bytes each, and so does the record length. Then the fields
        // before the key are gathered into one word and written with one store, and only a
        // handful of values stay live (the general path below spills).
        let offset_delta = self.count;
        let ts = zigzag64(timestamp.wrapping_sub(self.base_timestamp));
        let od = u64::from(offset_delta as u32) << 1;
        let (kl, key_len) = key.map_or((1, 0), |k| ((k.len() as u64) << 1, k.len()));
        let (vl, value_len) = value.map_or((1, 0), |v| ((v.len() as u64) << 1, v.len()));
        if offset_delta == 0 || (ts | od | kl | vl) >= 1 << 14 {
            return self.append_general(timestamp, key, value, headers);
        }
        let (ts_w, ts_n) = short_varint(ts);
        let (od_w, od_n) = short_varint(od);
        let (kl_w, kl_n) = short_varint(kl);
        let (vl_w, vl_n) = short_varint(vl);
        let fields = ts_w | (od_w << (8 * ts_n)) | (kl_w << (8 * (ts_n + od_n)));
        let fields_n = ts_n + od_n + kl_n;
        // attributes + fields + value length + header count (one byte when there are none).
        let mut body = 2 + fields_n + vl_n + key_len + value_len;
        if !headers.is_empty() {
            body = body.saturating_add(headers_size(headers));
        }
        // The length, the attributes (0) and the fields in one word: at most 2 + 1 + 5 bytes.
        if body >= 1 << 13 || fields_n > 5 {
            return self.append_general(timestamp, key, value, headers);
        }
        let (length_w, length_n) = short_varint((body as u64) << 1);
        let head = length_w | (fields << (8 * (length_n + 1)));
        let total = length_n + body;
        let pos = self.pos;
        // One capacity check for the whole record and the slack of the word stores.
        let need = pos + total + SLACK;
        if need > self.buf.len() {
            self.grow(need);
        }
        let head_n = length_n + 1 + fields_n;
        let at = if headers.is_empty() && key_len <= SMALL_FIELD && value_len <= SMALL_FIELD {
            // Key and value of at most SMALL_FIELD bytes: the record fits a window of
            // constant size, against which the compiler proves every store in bounds.
            let out = self.buf[pos..]
                .first_chunk_mut::<SLACK>()
                .expect("SLACK bytes past every record");
            put_fields_at(out, head, head_n, key, vl_w, vl_n, value, headers)
        } else {
            let out = &mut self.buf[pos..][..total + SLACK];
            put_fields_at(out, head, head_n, key, vl_w, vl_n, value, headers)
        };
        debug_assert_eq!(at, total);
        self.pos = pos + total;
        self.max_timestamp = self.max_timestamp.max(timestamp);
        self.count = offset_delta + 1;
        Ok(offset_delta)
    }

    /// [`append`](Self::append) for any record: the first of a batch, and those with a field
    /// or a length of three bytes or more.
    #[inline(never)]
    fn append_general(
        &mut self,
        timestamp: i64,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: &[Header<'_>],
    ) -> Result<i32> {
        let offset_delta = self.count;
        let timestamp_delta = if offset_delta == 0 {
            0
        } else {
            timestamp.wrapping_sub(self.base_timestamp)
        };
        // Every field's zig-zag value and varint length, computed once. Lengths are
        // non-negative, so their zig-zag form is twice the length, and -1 (null) is 1; a
        // length too large for an `i32` makes the record too large, which is checked below
        // before anything is written.
        let ts = zigzag64(timestamp_delta);
        let od = u64::from(offset_delta as u32) << 1;
        let (kl, key_len) = key.map_or((1, 0), |k| ((k.len() as u64) << 1, k.len() as u64));
        let (vl, value_len) = value.map_or((1, 0), |v| ((v.len() as u64) << 1, v.len() as u64));
        let (ts_n, od_n, kl_n, vl_n) = (
            uvarint_len64(ts),
            uvarint_len64(od),
            uvarint_len64(kl),
            uvarint_len64(vl),
        );
        // attributes + the four varints + header count (one byte when there are none).
        let mut body = (2 + ts_n + od_n + kl_n + vl_n) as u64 + key_len + value_len;
        if !headers.is_empty() {
            body = body.saturating_add(headers_size(headers) as u64);
        }
        if body > i32::MAX as u64 || offset_delta == i32::MAX {
            return Err(too_large(offset_delta, body));
        }
        if self.fresh {
            self.start();
        }
        let body = body as usize;
        let length = (body as u64) << 1;
        let length_n = uvarint_len64(length);
        let total = length_n + body;
        let pos = self.pos;
        // One capacity check for the whole record and the slack of the short stores. No
        // overflow: `pos` is within an allocation and `total` under 2^31 + 5.
        let need = pos + total + SLACK;
        if need > self.buf.len() {
            self.grow(need);
        }
        let out = &mut self.buf[pos..need];
        let mut at = put_uvarint_at(out, 0, length, length_n);
        out[at] = 0; // record attributes: unused
        at += 1;
        at = put_uvarint_at(out, at, ts, ts_n);
        at = put_uvarint_at(out, at, od, od_n);
        at = put_uvarint_at(out, at, kl, kl_n);
        if let Some(key) = key {
            at = put_slice_at(out, at, key);
        }
        at = put_uvarint_at(out, at, vl, vl_n);
        if let Some(value) = value {
            at = put_slice_at(out, at, value);
        }
        if headers.is_empty() {
            out[at] = 0;
            at += 1;
        } else {
            at = put_headers_at(out, at, headers);
        }
        debug_assert_eq!(at, total);
        self.pos = pos + total;
        if offset_delta == 0 {
            self.base_timestamp = timestamp;
            self.max_timestamp = timestamp;
        } else if timestamp > self.max_timestamp {
            self.max_timestamp = timestamp;
        }
        self.count = offset_delta + 1;
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
        self.high_water = self.high_water.max(self.pos);
        if opts.compression != Compression::None {
            let compressed = compressor.compress_with_level(
                opts.compression,
                opts.compression_level,
                &self.buf[RECORD_BATCH_OVERHEAD..self.pos],
            )?;
            let end = RECORD_BATCH_OVERHEAD + compressed.len();
            if end > self.buf.len() {
                self.buf.resize(end, 0);
            }
            self.buf[RECORD_BATCH_OVERHEAD..end].copy_from_slice(compressed);
            self.pos = end;
        }
        let batch_length = self.pos - LOG_OVERHEAD;
        if batch_length > i32::MAX as usize {
            return Err(CodecError::TooLarge {
                what: "record batch",
                len: self.pos,
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
        let crc = crate::codec::crc::crc32c(&self.buf[ATTRIBUTES_OFFSET..self.pos]);
        self.buf[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
        self.buf.truncate(self.pos);
        let batch = self.buf.split().freeze();
        // Drop the empty tail `split` left (it shares the allocation), so that once the caller
        // drops the batch, `sealed` is its only owner and `start` can take it back.
        self.buf = BytesMut::new();
        self.sealed = Some(batch.clone());
        self.reset(opts);
        Ok(batch)
    }

    /// Offers an initialised buffer for the next batch: typically a sent batch's allocation,
    /// got back with [`Bytes::try_into_mut`] once its request was answered, from a pool
    /// shared by many builders. Taken (`None` returned) only between batches (after
    /// [`seal`](Self::seal) or [`reset`](Self::reset), before the next append) and only when
    /// this builder has no allocation of its own to reuse (its last batch still in flight);
    /// otherwise handed back. Its bytes stay initialised, so the next batch neither allocates
    /// nor zeroes what the buffer already covers.
    pub fn offer_buffer(&mut self, buf: BytesMut) -> Option<BytesMut> {
        let has_own = self.buf.capacity() > 0 || self.sealed.as_ref().is_some_and(Bytes::is_unique);
        if !self.fresh || has_own {
            return Some(buf);
        }
        // The last batch is still held elsewhere: let its owner free (or recycle) it.
        self.sealed = None;
        self.buf = buf;
        None
    }

    /// Gives the buffer back (for a pool). Its contents are unspecified.
    pub fn into_buffer(mut self) -> BytesMut {
        if self.buf.capacity() == 0 {
            if let Some(Ok(buf)) = self.sealed.take().map(Bytes::try_into_mut) {
                return buf;
            }
        }
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
        let mut b = Self::with_buffer(
            opts,
            BytesMut::with_capacity(RECORD_BATCH_OVERHEAD + 16 + SLACK),
        );
        b.append_control(timestamp, marker)?;
        // An uncompressed seal never touches the compressor's codecs.
        b.seal(&mut Compressor::new())
    }
}

/// The error for a record that cannot be appended.
#[cold]
#[inline(never)]
fn too_large(offset_delta: i32, body: u64) -> CodecError {
    if offset_delta == i32::MAX {
        CodecError::TooLarge {
            what: "record count",
            len: offset_delta as usize,
        }
    } else {
        CodecError::TooLarge {
            what: "record",
            len: usize::try_from(body).unwrap_or(usize::MAX),
        }
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
/// two predictable compares. (Not `leading_zeros`: without `lzcnt`, which baseline x86-64
/// lacks, that is `bsr`, several micro-ops and a throughput of one per four cycles on AMD
/// cores, and a record needs six of them.)
#[inline(always)]
fn uvarint_len64(v: u64) -> usize {
    if v < 1 << 7 {
        1
    } else if v < 1 << 14 {
        2
    } else {
        uvarint_len_long(v)
    }
}

/// [`uvarint_len64`] beyond two bytes.
#[inline(never)]
fn uvarint_len_long(v: u64) -> usize {
    let bits = 64 - v.leading_zeros() as usize;
    (bits * 9 + 64) / 64
}

/// A slice length as a wire length; anything over `i32::MAX` makes the record too large,
/// which `append` reports from the summed size.
#[inline(always)]
fn len_i32(n: usize) -> i32 {
    n.min(i32::MAX as usize) as i32
}

/// Bytes the headers take after the record's fixed fields, header count included, minus
/// the one byte already counted for an empty header count.
#[inline(always)]
fn headers_size(headers: &[Header<'_>]) -> usize {
    // The common case, in a few instructions a header: under 64 headers (a one-byte count),
    // every key and value under 2^13 bytes (length varints of one or two bytes).
    if headers.len() < 64 {
        let (mut n, mut all) = (0usize, 0usize);
        for h in headers {
            let k = h.key.len();
            let v = h.value.map_or(0, <[u8]>::len);
            all |= k | v;
            // Two length varints (a null value is the one byte of -1), a second byte each
            // from 64 bytes on, and the bytes. Wrapping: a long field is caught below.
            n = n
                .wrapping_add(2 + usize::from(k >= 64) + usize::from(v >= 64))
                .wrapping_add(k)
                .wrapping_add(v);
        }
        if all < 1 << 13 {
            return n;
        }
    }
    headers_size_long(headers)
}

/// [`headers_size`] for any headers.
#[inline(never)]
fn headers_size_long(headers: &[Header<'_>]) -> usize {
    let mut n = uvarint_len64(zigzag32(len_i32(headers.len())).into()) - 1;
    for h in headers {
        n = n
            .saturating_add(bytes_field_size(Some(h.key)))
            .saturating_add(bytes_field_size(h.value));
    }
    n
}

/// The varint bytes of `v` (`n` = its length, at most 8) in the low bytes of a little-endian
/// `u64`, the bytes above them zero: each 7-bit group moved to its byte, then the
/// continuation bit set on all but the last. No loop and no branch on the value.
#[inline(always)]
fn varint_word(v: u64, n: usize) -> u64 {
    let mut x = 0;
    let mut i = 0;
    while i < 8 {
        x |= (v << i) & (0x7f << (8 * i));
        i += 1;
    }
    x | (0x8080_8080_8080_8080 & ((1u64 << (8 * (n - 1))) - 1))
}

/// The fast path's stores: `head` (length, attributes, timestamp and offset deltas and key
/// length, `head_n` bytes), the key, the value length, the value and the headers.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn put_fields_at(
    out: &mut [u8],
    head: u64,
    head_n: usize,
    key: Option<&[u8]>,
    vl_w: u64,
    vl_n: usize,
    value: Option<&[u8]>,
    headers: &[Header<'_>],
) -> usize {
    out[..8].copy_from_slice(&head.to_le_bytes());
    let mut at = head_n;
    if let Some(key) = key {
        at = put_slice_at(out, at, key);
    }
    out[at..at + 2].copy_from_slice(&(vl_w as u16).to_le_bytes());
    at += vl_n;
    if let Some(value) = value {
        at = put_slice_at(out, at, value);
    }
    if headers.is_empty() {
        out[at] = 0;
        at + 1
    } else {
        put_headers_at(out, at, headers)
    }
}

/// A varint under 2^14 as (its bytes in a little-endian word, its length).
#[inline(always)]
fn short_varint(v: u64) -> (u64, usize) {
    debug_assert!(v < 1 << 14);
    if v < 1 << 7 {
        (v, 1)
    } else {
        ((v & 0x7f) | 0x80 | ((v >> 7) << 8), 2)
    }
}

/// Writes the varint `v` of length `n` at `out[at..]` and returns where it ends, with one
/// store: `out` must have 8 bytes from `at` on (the `SLACK` after every record), and the bytes
/// after the varint may be overwritten (with zeros). Record fields are nearly always one or two
/// bytes: those take one predictable branch and a conditional move.
#[inline(always)]
fn put_uvarint_at(out: &mut [u8], at: usize, v: u64, n: usize) -> usize {
    if v < 1 << 14 {
        // One or two bytes, one 2-byte store either way (a one-byte varint's second byte, 0,
        // is overwritten by the next field).
        let w = if v < 1 << 7 {
            v
        } else {
            (v & 0x7f) | 0x80 | ((v >> 7) << 8)
        };
        out[at..at + 2].copy_from_slice(&(w as u16).to_le_bytes());
    } else if n <= 8 {
        out[at..at + 8].copy_from_slice(&varint_word(v, n).to_le_bytes());
    } else {
        put_long_uvarint_at(out, at, v);
    }
    at + n
}

/// Copies `src` to `out[at..]`; returns where it ends. Keys, header fields and small values
/// are copied inline instead of through a call to `memcpy`: up to 16 bytes with two
/// overlapping 8-byte (or 4-byte, or three 1-byte) moves, up to 128 bytes with two, four or
/// eight overlapping 16-byte moves.
#[inline(always)]
fn put_slice_at(out: &mut [u8], at: usize, src: &[u8]) -> usize {
    let n = src.len();
    let dst = &mut out[at..];
    if n > SMALL_FIELD {
        dst[..n].copy_from_slice(src);
    } else if n > 16 {
        // Straight-line 16-byte moves, the upper half mirrored from the end so that it
        // overlaps the lower one. (A loop here is turned back into a `memcpy` call.)
        let dst = &mut dst[..n];
        copy16(dst, src, 0);
        copy16(dst, src, n - 16);
        if n > 32 {
            copy16(dst, src, 16);
            copy16(dst, src, n - 32);
        }
        if n > 64 {
            copy16(dst, src, 32);
            copy16(dst, src, 48);
            copy16(dst, src, n - 64);
            copy16(dst, src, n - 48);
        }
    } else if n >= 8 {
        dst[n - 8..n].copy_from_slice(&src[n - 8..]);
        dst[..8].copy_from_slice(&src[..8]);
    } else if n >= 4 {
        dst[n - 4..n].copy_from_slice(&src[n - 4..]);
        dst[..4].copy_from_slice(&src[..4]);
    } else if n > 0 {
        dst[n - 1] = src[n - 1];
        dst[n / 2] = src[n / 2];
        dst[0] = src[0];
    }
    at + n
}

/// `dst[at..at + 16] = src[at..at + 16]`, one 16-byte move (always inlined: as a closure it
/// was sometimes left a call).
#[inline(always)]
fn copy16(dst: &mut [u8], src: &[u8], at: usize) {
    dst[at..at + 16].copy_from_slice(&src[at..at + 16]);
}

/// The rare 9- and 10-byte varints (timestamp deltas of more than 2^55 ms).
#[cold]
#[inline(never)]
fn put_long_uvarint_at(out: &mut [u8], mut at: usize, mut v: u64) {
    while v >= 0x80 {
        out[at] = (v as u8) | 0x80;
        at += 1;
        v >>= 7;
    }
    out[at] = v as u8;
}

/// Writes the header count and the headers at `out[at..]`; returns where they end. Every
/// length is at most `i32::MAX` here (`append` refuses larger records before writing), so
/// its zig-zag form is twice the length.
#[inline(always)]
fn put_headers_at(out: &mut [u8], mut at: usize, headers: &[Header<'_>]) -> usize {
    at = put_length_at(out, at, headers.len());
    for h in headers {
        at = put_length_at(out, at, h.key.len());
        at = put_slice_at(out, at, h.key);
        match h.value {
            Some(v) => {
                at = put_length_at(out, at, v.len());
                at = put_slice_at(out, at, v);
            }
            None => {
                out[at] = 1; // zig-zag -1
                at += 1;
            }
        }
    }
    at
}

/// Writes the zig-zag varint of a length (at most `i32::MAX`) at `out[at..]`; returns where
/// it ends.
#[inline(always)]
fn put_length_at(out: &mut [u8], at: usize, len: usize) -> usize {
    let v = (len as u64) << 1;
    put_uvarint_at(out, at, v, uvarint_len64(v))
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
        fn word_varints_match_the_reference(v in any::<u64>(), at in 0usize..4) {
            let n = uvarint_len64(v);
            let mut out = [0xaau8; 4 + 10 + 8];
            let end = put_uvarint_at(&mut out, at, v, n);
            let mut want = Vec::new();
            crate::codec::varint::put_uvarlong(&mut want, v);
            prop_assert_eq!(end - at, want.len());
            prop_assert_eq!(&out[at..end], &want[..]);
            prop_assert!(out[..at].iter().all(|&b| b == 0xaa));
        }
    }
}
