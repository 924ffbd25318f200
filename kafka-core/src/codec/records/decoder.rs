//! Reading concatenated batches (a Fetch response's `records`) as zero-copy record views.

use bytes::Bytes;

use super::legacy::{self, LegacyInfo};
use super::{
    BatchHeader, ControlRecord, Header, TimestampType, ATTRIBUTES_OFFSET, CRC_OFFSET, LOG_OVERHEAD,
    MAGIC_OFFSET, MIN_RECORD_SIZE, RECORD_BATCH_OVERHEAD,
};
use crate::codec::compression::{Compression, Decompressor, DEFAULT_MAX_DECOMPRESSED_SIZE};
use crate::codec::varint::{read_uvarint, read_uvarlong};
use crate::error::{CodecError, Result};

/// The smallest legacy message after `LOG_OVERHEAD` (magic 0: crc, magic, attributes, key
/// length, value length); anything shorter cannot be a batch of any magic.
const MIN_ENTRY_SIZE: usize = 14;

/// Reads record batches, keeping a [`Decompressor`] and a pooled decompression buffer between
/// batches (and between fetch responses).
#[derive(Debug)]
pub struct BatchDecoder {
    pub(super) decompressor: Decompressor,
    verify_crc: bool,
    /// The decompression buffer, when not lent to a [`RecordBatch`].
    pub(super) pool: Vec<u8>,
}

impl Default for BatchDecoder {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_DECOMPRESSED_SIZE)
    }
}

impl BatchDecoder {
    /// A decoder refusing batches that decompress to more than `max_decompressed_size` bytes.
    pub fn new(max_decompressed_size: usize) -> Self {
        Self::with_decompressor(Decompressor::new(max_decompressed_size))
    }

    /// A decoder using `decompressor`.
    pub fn with_decompressor(decompressor: Decompressor) -> Self {
        Self {
            decompressor,
            verify_crc: true,
            pool: Vec::new(),
        }
    }

    /// Whether to verify each batch's CRC (`check.crcs`, default true).
    pub fn verify_crc(mut self, verify: bool) -> Self {
        self.verify_crc = verify;
        self
    }

    pub(super) fn verify_crc_enabled(&self) -> bool {
        self.verify_crc
    }

    /// Iterates over the batches in `records` (the concatenated batches of one partition).
    pub fn batches(&mut self, records: Bytes) -> RecordBatches<'_> {
        RecordBatches {
            decoder: self,
            data: records,
            pos: 0,
            failed: false,
        }
    }

    /// Takes back the decompression buffer of a finished batch, if no one else holds slices of
    /// it, so the next compressed batch decompresses without allocating.
    pub fn recycle(&mut self, batch: RecordBatch) {
        if !batch.pooled {
            return;
        }
        if let Ok(buf) = batch.records.try_into_mut() {
            let buf = Vec::from(buf);
            if buf.capacity() > self.pool.capacity() {
                self.pool = buf;
            }
        }
    }

    fn decode_v2(&mut self, batch: Bytes) -> Result<RecordBatch> {
        let b = &batch[..];
        let base_offset = be_i64(b, 0);
        if b.len() < RECORD_BATCH_OVERHEAD {
            return Err(CodecError::InvalidLength {
                what: "record batch length",
                len: be_i32(b, 8).into(),
                remaining: b.len() - LOG_OVERHEAD,
            });
        }
        let header = BatchHeader {
            base_offset,
            batch_length: be_i32(b, 8),
            partition_leader_epoch: be_i32(b, 12),
            magic: b[MAGIC_OFFSET] as i8,
            crc: be_u32(b, CRC_OFFSET),
            attributes: i16::from_be_bytes([b[21], b[22]]),
            last_offset_delta: be_i32(b, 23),
            base_timestamp: be_i64(b, 27),
            max_timestamp: be_i64(b, 35),
            producer_id: be_i64(b, 43),
            producer_epoch: i16::from_be_bytes([b[51], b[52]]),
            base_sequence: be_i32(b, 53),
            record_count: be_i32(b, 57),
        };
        if self.verify_crc {
            let computed = crate::codec::crc::crc32c(&b[ATTRIBUTES_OFFSET..]);
            if computed != header.crc {
                return Err(CodecError::CrcMismatch {
                    base_offset,
                    stored: header.crc,
                    computed,
                });
            }
        }
        let compression = header.compression()?;
        let count = header.record_count;
        if count < 0 {
            return Err(CodecError::InvalidLength {
                what: "record count",
                len: count.into(),
                remaining: b.len() - RECORD_BATCH_OVERHEAD,
            });
        }
        let section = &b[RECORD_BATCH_OVERHEAD..];
        let (records, pooled) = if count == 0 {
            // Compaction can leave a batch with no records; its section (if any) is not read.
            (Bytes::new(), false)
        } else if compression == Compression::None {
            check_count(count, section.len())?;
            (batch.slice(RECORD_BATCH_OVERHEAD..), false)
        } else {
            let mut buf = std::mem::take(&mut self.pool);
            buf.clear();
            if let Err(e) = self.decompressor.decompress(compression, section, &mut buf) {
                self.pool = buf;
                return Err(e);
            }
            if let Err(e) = check_count(count, buf.len()) {
                self.pool = buf;
                return Err(e);
            }
            (Bytes::from(buf), true)
        };
        Ok(RecordBatch {
            header,
            compression,
            records,
            pooled,
            legacy: None,
        })
    }
}

/// Every record costs at least [`MIN_RECORD_SIZE`] bytes: a count the bytes cannot hold is
/// refused before anything is iterated.
fn check_count(count: i32, bytes: usize) -> Result<()> {
    if count as usize > bytes / MIN_RECORD_SIZE {
        return Err(CodecError::InvalidLength {
            what: "record count",
            len: count.into(),
            remaining: bytes,
        });
    }
    Ok(())
}

#[inline]
pub(super) fn be_i64(b: &[u8], at: usize) -> i64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    i64::from_be_bytes(a)
}

#[inline]
pub(super) fn be_i32(b: &[u8], at: usize) -> i32 {
    i32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

#[inline]
pub(super) fn be_u32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// An iterator over the batches of one `records` buffer.
///
/// Each step validates one batch completely before yielding it: length, magic, checksum,
/// codec, record count against the (decompressed) bytes. A batch cut short by the end of the
/// buffer ends the iteration without an error, because brokers truncate the last batch of a
/// fetch at `max.partition.fetch.bytes`; [`truncated_tail`](Self::truncated_tail) says how many
/// bytes were left. After an error the iterator is finished.
#[derive(Debug)]
pub struct RecordBatches<'d> {
    decoder: &'d mut BatchDecoder,
    data: Bytes,
    pos: usize,
    failed: bool,
}

impl RecordBatches<'_> {
    /// See [`BatchDecoder::recycle`].
    pub fn recycle(&mut self, batch: RecordBatch) {
        self.decoder.recycle(batch);
    }

    /// Bytes not (yet) consumed: after the iteration ends cleanly, the size of a trailing
    /// partial batch (0 when the buffer ended on a batch boundary).
    pub fn truncated_tail(&self) -> usize {
        self.data.len() - self.pos
    }

    fn next_batch(&mut self) -> Result<Option<RecordBatch>> {
        let rest = &self.data[self.pos..];
        if rest.len() < LOG_OVERHEAD {
            return Ok(None);
        }
        let base_offset = be_i64(rest, 0);
        let length = be_i32(rest, 8);
        if length < 0 || (length as usize) < MIN_ENTRY_SIZE {
            return Err(CodecError::InvalidLength {
                what: "record batch length",
                len: length.into(),
                remaining: rest.len() - LOG_OVERHEAD,
            });
        }
        let total = LOG_OVERHEAD + length as usize;
        if total > rest.len() {
            return Ok(None);
        }
        if base_offset < 0 {
            return Err(CodecError::CorruptBatch {
                base_offset,
                reason: "negative base offset".into(),
            });
        }
        let magic = rest[MAGIC_OFFSET] as i8;
        let batch = self.data.slice(self.pos..self.pos + total);
        self.pos += total;
        match magic {
            2 => self.decoder.decode_v2(batch).map(Some),
            0 | 1 => legacy::decode(self.decoder, batch, magic).map(Some),
            magic => Err(CodecError::UnsupportedMagic { magic }),
        }
    }
}

impl Iterator for RecordBatches<'_> {
    type Item = Result<RecordBatch>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        match self.next_batch() {
            Ok(b) => b.map(Ok),
            Err(e) => {
                self.failed = true;
                Some(Err(e))
            }
        }
    }
}

/// One validated batch: its header and its (decompressed) records section.
///
/// Records are read lazily by [`records`](Self::records); the views borrow from the batch, and
/// [`RecordView::key_bytes`]/[`RecordView::value_bytes`] hand out [`Bytes`] sharing the batch's
/// buffer (the fetch response itself when uncompressed) without copying.
#[derive(Debug, Clone)]
pub struct RecordBatch {
    header: BatchHeader,
    compression: Compression,
    records: Bytes,
    /// `records` is the decoder's decompression buffer (worth recycling).
    pooled: bool,
    legacy: Option<LegacyInfo>,
}

impl RecordBatch {
    pub(super) fn from_legacy(
        header: BatchHeader,
        compression: Compression,
        records: Bytes,
        pooled: bool,
        info: LegacyInfo,
    ) -> Self {
        Self {
            header,
            compression,
            records,
            pooled,
            legacy: Some(info),
        }
    }

    /// The batch header.
    pub fn header(&self) -> &BatchHeader {
        &self.header
    }

    /// The magic byte (2, or 0/1 for a legacy message).
    pub fn magic(&self) -> i8 {
        self.header.magic
    }

    /// Offset of the first record.
    pub fn base_offset(&self) -> i64 {
        self.header.base_offset
    }

    /// Offset of the last record, which the next fetch starts after even when compaction
    /// removed it.
    pub fn last_offset(&self) -> i64 {
        self.header.last_offset()
    }

    /// Number of records (`recordCount`).
    pub fn record_count(&self) -> usize {
        self.header.record_count as usize
    }

    /// The codec the batch was compressed with.
    pub fn compression(&self) -> Compression {
        self.compression
    }

    /// What the record timestamps mean.
    pub fn timestamp_type(&self) -> TimestampType {
        self.header.timestamp_type()
    }

    /// Part of a transaction.
    pub fn is_transactional(&self) -> bool {
        self.header.is_transactional()
    }

    /// A control batch (transaction marker).
    pub fn is_control(&self) -> bool {
        self.header.is_control()
    }

    /// The uncompressed records section (for legacy: the message set).
    pub fn records_bytes(&self) -> &Bytes {
        &self.records
    }

    /// The records, decoded one at a time as they are iterated.
    pub fn records(&self) -> Records<'_> {
        Records {
            batch: self,
            rest: &self.records,
            left: self.header.record_count.max(0) as u32,
            failed: false,
            log_append_time: match &self.legacy {
                None => (self.header.timestamp_type() == TimestampType::LogAppendTime)
                    .then_some(self.header.max_timestamp),
                Some(info) => info.log_append_time,
            },
        }
    }

    /// The transaction marker of a control batch (`None` for other batches).
    pub fn control_record(&self) -> Result<Option<ControlRecord>> {
        if !self.is_control() {
            return Ok(None);
        }
        match self.records().next() {
            Some(r) => {
                let r = r?;
                ControlRecord::parse(r.key(), r.value()).map(Some)
            }
            None => Err(CodecError::CorruptBatch {
                base_offset: self.header.base_offset,
                reason: "control batch without a record".into(),
            }),
        }
    }
}

/// The records of one batch.
///
/// Yields `recordCount` records, then an error if bytes are left over. Each record is checked
/// against its own length before its fields are read; after an error the iterator is finished.
#[derive(Debug, Clone)]
pub struct Records<'a> {
    batch: &'a RecordBatch,
    rest: &'a [u8],
    left: u32,
    failed: bool,
    /// The batch's append time, reported for every record of a `LogAppendTime` batch.
    log_append_time: Option<i64>,
}

impl<'a> Records<'a> {
    /// The fields before the key (length, attributes, timestamp delta, offset delta) when
    /// they sit in the next 8 bytes with one- or two-byte varints, as they nearly always do:
    /// decoded from one load instead of a chain of dependent byte loads. Anything else is
    /// left to [`prefix`](Self::prefix), which also reports the errors.
    #[inline(always)]
    fn prefix_fast(&mut self) -> Option<(u8, i64, i32, &'a [u8])> {
        let r = self.rest;
        let mut w = u64::from_le_bytes(r.get(..8)?.try_into().ok()?);
        let mut n = 0usize;
        let len = unzigzag(take_short_varint(&mut w, &mut n)?);
        let start = n;
        let len = usize::try_from(len).ok()?;
        if len > r.len() - start {
            return None;
        }
        let attributes = w as u8;
        w >>= 8;
        n += 1;
        let ts = unzigzag(take_short_varint(&mut w, &mut n)?);
        let od = unzigzag(take_short_varint(&mut w, &mut n)?);
        if n > start + len {
            return None;
        }
        self.rest = &r[start + len..];
        Some((attributes, ts.into(), od, &r[n..start + len]))
    }

    /// The general (and error-reporting) reader of the fields before the key.
    fn prefix(&mut self) -> Result<(u8, i64, i32, &'a [u8])> {
        let len = varint(&mut self.rest, "record length")?;
        if len < 0 || len as usize > self.rest.len() {
            return Err(CodecError::InvalidLength {
                what: "record",
                len: len.into(),
                remaining: self.rest.len(),
            });
        }
        let (mut body, rest) = self.rest.split_at(len as usize);
        self.rest = rest;
        let Some((&attributes, tail)) = body.split_first() else {
            return Err(CodecError::Truncated {
                what: "record attributes",
                needed: 1,
            });
        };
        body = tail;
        let timestamp_delta = varlong(&mut body, "record timestamp delta")?;
        let offset_delta = varint(&mut body, "record offset delta")?;
        Ok((attributes, timestamp_delta, offset_delta, body))
    }

    fn corrupt(&self, reason: &str) -> CodecError {
        CodecError::CorruptBatch {
            base_offset: self.batch.header.base_offset,
            reason: reason.into(),
        }
    }

    #[inline]
    fn next_v2(&mut self) -> Result<RecordView<'a>> {
        let (attributes, timestamp_delta, offset_delta, mut body) = match self.prefix_fast() {
            Some(prefix) => prefix,
            None => self.prefix()?,
        };
        let key = read_nullable(&mut body, "record key")?;
        let value = read_nullable(&mut body, "record value")?;
        let header_count = varint(&mut body, "record header count")?;
        // Each header costs at least two bytes (key and value lengths).
        if header_count < 0 || header_count as usize > body.len() / 2 {
            return Err(CodecError::InvalidLength {
                what: "record header count",
                len: header_count.into(),
                remaining: body.len(),
            });
        }
        if header_count == 0 && !body.is_empty() {
            return Err(self.corrupt("bytes left over after a record's fields"));
        }
        let h = &self.batch.header;
        Ok(RecordView {
            offset: h.base_offset.wrapping_add(offset_delta.into()),
            timestamp: self
                .log_append_time
                .unwrap_or_else(|| h.base_timestamp.wrapping_add(timestamp_delta)),
            attributes: attributes as i8,
            key,
            value,
            headers: body,
            header_count: header_count as u32,
            owner: &self.batch.records,
        })
    }
}

/// Takes a one- or two-byte unsigned varint off the low end of `w` (bytes in wire order);
/// `None` for a longer one.
#[inline(always)]
fn take_short_varint(w: &mut u64, n: &mut usize) -> Option<u32> {
    let b0 = *w as u32 & 0xff;
    if b0 < 0x80 {
        *w >>= 8;
        *n += 1;
        return Some(b0);
    }
    let b1 = (*w >> 8) as u32 & 0xff;
    if b1 < 0x80 {
        *w >>= 16;
        *n += 2;
        return Some((b0 & 0x7f) | b1 << 7);
    }
    None
}

#[inline(always)]
fn unzigzag(v: u32) -> i32 {
    ((v >> 1) as i32) ^ -((v & 1) as i32)
}

/// Reads a zig-zag `VARINT`. Record fields are almost always one or two bytes long: those
/// are decoded inline, the rest by the general reader.
#[inline(always)]
fn varint(buf: &mut &[u8], what: &'static str) -> Result<i32> {
    let v = match **buf {
        [b0, ref rest @ ..] if b0 < 0x80 => {
            *buf = rest;
            u32::from(b0)
        }
        [b0, b1, ref rest @ ..] if b1 < 0x80 => {
            *buf = rest;
            u32::from(b0 & 0x7f) | u32::from(b1) << 7
        }
        _ => read_uvarint(buf, what)?,
    };
    Ok(((v >> 1) as i32) ^ -((v & 1) as i32))
}

/// Reads a zig-zag `VARLONG`, short ones inline.
#[inline(always)]
fn varlong(buf: &mut &[u8], what: &'static str) -> Result<i64> {
    let v = match **buf {
        [b0, ref rest @ ..] if b0 < 0x80 => {
            *buf = rest;
            u64::from(b0)
        }
        [b0, b1, ref rest @ ..] if b1 < 0x80 => {
            *buf = rest;
            u64::from(b0 & 0x7f) | u64::from(b1) << 7
        }
        _ => read_uvarlong(buf, what)?,
    };
    Ok(((v >> 1) as i64) ^ -((v & 1) as i64))
}

/// Reads a `VARINT`-length-prefixed byte string; -1 is null.
#[inline]
pub(super) fn read_nullable<'a>(
    buf: &mut &'a [u8],
    what: &'static str,
) -> Result<Option<&'a [u8]>> {
    let len = varint(buf, what)?;
    if len < 0 {
        if len == -1 {
            return Ok(None);
        }
    } else if let Some((v, rest)) = buf.split_at_checked(len as usize) {
        *buf = rest;
        return Ok(Some(v));
    }
    Err(CodecError::InvalidLength {
        what,
        len: len.into(),
        remaining: buf.len(),
    })
}

impl<'a> Iterator for Records<'a> {
    type Item = Result<RecordView<'a>>;

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        if self.left == 0 {
            if self.rest.is_empty() || self.failed {
                return None;
            }
            self.failed = true;
            return Some(Err(self.corrupt("bytes left over after the last record")));
        }
        let batch = self.batch;
        let r = match &batch.legacy {
            None => self.next_v2(),
            Some(info) => legacy::next_record(&mut self.rest, info, batch),
        };
        match r {
            Ok(v) => {
                self.left -= 1;
                Some(Ok(v))
            }
            Err(e) => {
                self.left = 0;
                self.failed = true;
                Some(Err(e))
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (0, Some(self.left as usize + 1))
    }
}

/// One record, borrowed from its batch. Copying it is cheap; nothing is allocated.
#[derive(Debug, Clone, Copy)]
pub struct RecordView<'a> {
    pub(super) offset: i64,
    pub(super) timestamp: i64,
    pub(super) attributes: i8,
    pub(super) key: Option<&'a [u8]>,
    pub(super) value: Option<&'a [u8]>,
    pub(super) headers: &'a [u8],
    pub(super) header_count: u32,
    pub(super) owner: &'a Bytes,
}

impl<'a> RecordView<'a> {
    /// The record's absolute offset.
    pub fn offset(&self) -> i64 {
        self.offset
    }

    /// The record's timestamp (the batch's `maxTimestamp` for `LogAppendTime` batches, -1 for
    /// magic 0 messages).
    pub fn timestamp(&self) -> i64 {
        self.timestamp
    }

    /// The record attributes byte (unused by magic 2; the message attributes for legacy).
    pub fn attributes(&self) -> i8 {
        self.attributes
    }

    /// The key; `None` is null.
    pub fn key(&self) -> Option<&'a [u8]> {
        self.key
    }

    /// The value; `None` is null (a tombstone).
    pub fn value(&self) -> Option<&'a [u8]> {
        self.value
    }

    /// The key as [`Bytes`] sharing the batch's buffer (no copy).
    pub fn key_bytes(&self) -> Option<Bytes> {
        self.key.map(|k| self.owner.slice_ref(k))
    }

    /// The value as [`Bytes`] sharing the batch's buffer (no copy).
    pub fn value_bytes(&self) -> Option<Bytes> {
        self.value.map(|v| self.owner.slice_ref(v))
    }

    /// Any slice of this record (a header key or value, say) as [`Bytes`] sharing the batch's
    /// buffer. Slices from elsewhere are copied.
    pub fn bytes_of(&self, part: &[u8]) -> Bytes {
        let whole = self.owner.as_ptr_range();
        let p = part.as_ptr_range();
        if part.is_empty() || (whole.start <= p.start && p.end <= whole.end) {
            self.owner.slice_ref(part)
        } else {
            Bytes::copy_from_slice(part)
        }
    }

    /// Number of headers.
    pub fn header_count(&self) -> usize {
        self.header_count as usize
    }

    /// The headers, decoded as they are iterated.
    pub fn headers(&self) -> Headers<'a> {
        Headers {
            rest: self.headers,
            left: self.header_count,
        }
    }
}

/// The headers of one record. Yields `headerCount` headers, then an error if bytes are left
/// over in the record.
#[derive(Debug, Clone)]
pub struct Headers<'a> {
    rest: &'a [u8],
    left: u32,
}

impl<'a> Headers<'a> {
    fn read(&mut self) -> Result<Header<'a>> {
        let key =
            read_nullable(&mut self.rest, "header key")?.ok_or(CodecError::InvalidLength {
                what: "header key",
                len: -1,
                remaining: self.rest.len(),
            })?;
        let value = read_nullable(&mut self.rest, "header value")?;
        Ok(Header { key, value })
    }
}

impl<'a> Iterator for Headers<'a> {
    type Item = Result<Header<'a>>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.left == 0 {
            if self.rest.is_empty() {
                return None;
            }
            let remaining = std::mem::take(&mut self.rest).len();
            return Some(Err(CodecError::InvalidLength {
                what: "bytes after the last header",
                len: remaining as i64,
                remaining,
            }));
        }
        self.left -= 1;
        let r = self.read();
        if r.is_err() {
            self.left = 0;
            self.rest = &[];
        }
        Some(r)
    }
}
