//! Legacy message sets, magic 0 and 1 (read only).
//!
//! ```text
//! Message => offset INT64, messageSize INT32,
//!            crc UINT32 (CRC32/IEEE of magic .. end), magic INT8, attributes INT8,
//!            [timestamp INT64 (magic 1 only)], key BYTES (INT32 length), value BYTES
//! ```
//!
//! A compressed *wrapper* message carries a whole inner message set, compressed, as its value.
//! Inner offsets are absolute for magic 0; for magic 1 they are relative, and the wrapper
//! carries the absolute offset of the last inner message (KIP-31). For magic 1 `LogAppendTime`
//! wrappers, every inner message takes the wrapper's timestamp (KIP-32).
//!
//! Each outer message becomes one [`RecordBatch`] (one record, or the inner messages of a
//! wrapper), so legacy data reads through the same [`RecordView`] as magic 2.

use bytes::Bytes;

use super::decoder::{be_i32, be_i64, be_u32, BatchDecoder, RecordBatch, RecordView};
use super::{
    BatchHeader, NO_PARTITION_LEADER_EPOCH, NO_PRODUCER_EPOCH, NO_PRODUCER_ID, NO_SEQUENCE,
    NO_TIMESTAMP,
};
use crate::codec::compression::Compression;
use crate::error::{CodecError, Result};

/// crc, magic, attributes, key length, value length.
const MIN_MESSAGE_SIZE_V0: usize = 14;
const TIMESTAMP_TYPE_BIT: i8 = 0x08;

/// How a legacy batch's messages map to absolute offsets and timestamps.
#[derive(Debug, Clone, Copy)]
pub(super) struct LegacyInfo {
    /// Added to each message's stored offset.
    offset_adjust: i64,
    /// The wrapper's timestamp, for magic 1 `LogAppendTime` wrappers.
    pub(super) log_append_time: Option<i64>,
}

struct Message<'a> {
    offset: i64,
    size: i32,
    crc: u32,
    magic: i8,
    attributes: i8,
    timestamp: i64,
    key: Option<&'a [u8]>,
    value: Option<&'a [u8]>,
    /// What the CRC covers.
    crc_input: &'a [u8],
}

fn parse_message<'a>(buf: &mut &'a [u8]) -> Result<Message<'a>> {
    let b = *buf;
    if b.len() < 12 {
        return Err(CodecError::Truncated {
            what: "legacy message header",
            needed: 12 - b.len(),
        });
    }
    let offset = be_i64(b, 0);
    let size = be_i32(b, 8);
    if size < 0 || (size as usize) < MIN_MESSAGE_SIZE_V0 || size as usize > b.len() - 12 {
        return Err(CodecError::InvalidLength {
            what: "legacy message size",
            len: size.into(),
            remaining: b.len() - 12,
        });
    }
    let body = &b[12..12 + size as usize];
    *buf = &b[12 + size as usize..];
    let crc = be_u32(body, 0);
    let magic = body[4] as i8;
    let attributes = body[5] as i8;
    let mut rest = &body[6..];
    let timestamp = match magic {
        0 => NO_TIMESTAMP,
        1 => {
            if rest.len() < 8 + 8 {
                return Err(CodecError::InvalidLength {
                    what: "legacy message size",
                    len: size.into(),
                    remaining: body.len(),
                });
            }
            let t = be_i64(rest, 0);
            rest = &rest[8..];
            t
        }
        magic => return Err(CodecError::UnsupportedMagic { magic }),
    };
    let key = read_bytes(&mut rest, "legacy message key")?;
    let value = read_bytes(&mut rest, "legacy message value")?;
    if !rest.is_empty() {
        return Err(CodecError::CorruptBatch {
            base_offset: offset,
            reason: "bytes left over after a legacy message's value".into(),
        });
    }
    Ok(Message {
        offset,
        size,
        crc,
        magic,
        attributes,
        timestamp,
        key,
        value,
        crc_input: &body[4..],
    })
}

/// `BYTES`: an `INT32` length (-1 is null), then the bytes.
fn read_bytes<'a>(buf: &mut &'a [u8], what: &'static str) -> Result<Option<&'a [u8]>> {
    let Some(len) = buf.get(..4) else {
        return Err(CodecError::Truncated {
            what,
            needed: 4 - buf.len(),
        });
    };
    let len = i32::from_be_bytes([len[0], len[1], len[2], len[3]]);
    let rest = &buf[4..];
    if len == -1 {
        *buf = rest;
        return Ok(None);
    }
    match usize::try_from(len)
        .ok()
        .and_then(|n| rest.split_at_checked(n))
    {
        Some((v, tail)) => {
            *buf = tail;
            Ok(Some(v))
        }
        None => Err(CodecError::InvalidLength {
            what,
            len: len.into(),
            remaining: rest.len(),
        }),
    }
}

fn check_crc(m: &Message<'_>, verify: bool) -> Result<()> {
    if verify {
        let mut crc = flate2::Crc::new();
        crc.update(m.crc_input);
        if crc.sum() != m.crc {
            return Err(CodecError::CrcMismatch {
                base_offset: m.offset,
                stored: m.crc,
                computed: crc.sum(),
            });
        }
    }
    Ok(())
}

/// Decodes one outer legacy message (`batch` holds exactly it) into a batch.
pub(super) fn decode(dec: &mut BatchDecoder, batch: Bytes, magic: i8) -> Result<RecordBatch> {
    let mut s = &batch[..];
    let outer = parse_message(&mut s)?;
    debug_assert_eq!(outer.magic, magic);
    check_crc(&outer, dec.verify_crc_enabled())?;
    let corrupt = |reason: &str| CodecError::CorruptBatch {
        base_offset: outer.offset,
        reason: reason.into(),
    };
    let compression = Compression::from_id((outer.attributes & 0x07) as u8)?;
    if compression == Compression::Zstd {
        return Err(corrupt("zstd compression needs magic 2"));
    }
    let log_append = magic == 1 && outer.attributes & TIMESTAMP_TYPE_BIT != 0;
    let mut header = BatchHeader {
        base_offset: outer.offset,
        batch_length: outer.size,
        partition_leader_epoch: NO_PARTITION_LEADER_EPOCH,
        magic,
        crc: outer.crc,
        attributes: i16::from(outer.attributes & 0x0f),
        last_offset_delta: 0,
        base_timestamp: outer.timestamp,
        max_timestamp: outer.timestamp,
        producer_id: NO_PRODUCER_ID,
        producer_epoch: NO_PRODUCER_EPOCH,
        base_sequence: NO_SEQUENCE,
        record_count: 1,
    };
    let log_append_time = log_append.then_some(outer.timestamp);
    if compression == Compression::None {
        let info = LegacyInfo {
            offset_adjust: 0,
            log_append_time,
        };
        return Ok(RecordBatch::from_legacy(
            header,
            compression,
            batch,
            false,
            info,
        ));
    }
    let value = outer
        .value
        .ok_or_else(|| corrupt("compressed wrapper message without a value"))?;
    let mut buf = std::mem::take(&mut dec.pool);
    buf.clear();
    let result = if magic == 0 {
        dec.decompressor
            .decompress_legacy(compression, value, &mut buf)
    } else {
        dec.decompressor.decompress(compression, value, &mut buf)
    };
    let scan =
        result.and_then(|()| scan_inner(&buf, magic, dec.verify_crc_enabled(), outer.offset));
    let scan = match scan {
        Ok(scan) => scan,
        Err(e) => {
            dec.pool = buf;
            return Err(e);
        }
    };
    // Magic 1 inner offsets count from 0; the wrapper holds the last one's absolute offset.
    let offset_adjust = if magic == 1 {
        outer.offset.wrapping_sub(scan.last_offset)
    } else {
        0
    };
    header.base_offset = scan.first_offset.wrapping_add(offset_adjust);
    header.last_offset_delta = scan.last_offset.wrapping_sub(scan.first_offset) as i32;
    header.base_timestamp = log_append_time.unwrap_or(scan.first_timestamp);
    header.record_count = scan.count;
    let info = LegacyInfo {
        offset_adjust,
        log_append_time,
    };
    Ok(RecordBatch::from_legacy(
        header,
        compression,
        Bytes::from(buf),
        true,
        info,
    ))
}

struct InnerScan {
    count: i32,
    first_offset: i64,
    last_offset: i64,
    first_timestamp: i64,
}

/// Validates every inner message of a wrapper once (framing, CRC, magic, no nesting).
fn scan_inner(mut s: &[u8], magic: i8, verify: bool, wrapper_offset: i64) -> Result<InnerScan> {
    let mut scan = InnerScan {
        count: 0,
        first_offset: 0,
        last_offset: 0,
        first_timestamp: NO_TIMESTAMP,
    };
    while !s.is_empty() {
        let m = parse_message(&mut s)?;
        check_crc(&m, verify)?;
        let corrupt = |reason: &str| CodecError::CorruptBatch {
            base_offset: wrapper_offset,
            reason: reason.into(),
        };
        if m.magic != magic {
            return Err(corrupt("inner message magic differs from the wrapper's"));
        }
        if m.attributes & 0x07 != 0 {
            return Err(corrupt("nested compressed message"));
        }
        if scan.count == 0 {
            scan.first_offset = m.offset;
            scan.first_timestamp = m.timestamp;
        }
        scan.last_offset = m.offset;
        // Each message is at least 26 bytes and the buffer is capped: no overflow.
        scan.count += 1;
    }
    Ok(scan)
}

/// Reads the next message of a legacy batch as a record view.
pub(super) fn next_record<'a>(
    rest: &mut &'a [u8],
    info: &LegacyInfo,
    batch: &'a RecordBatch,
) -> Result<RecordView<'a>> {
    let m = parse_message(rest)?;
    Ok(RecordView {
        offset: m.offset.wrapping_add(info.offset_adjust),
        timestamp: info.log_append_time.unwrap_or(m.timestamp),
        attributes: m.attributes,
        key: m.key,
        value: m.value,
        headers: &[],
        header_count: 0,
        owner: batch.records_bytes(),
    })
}
