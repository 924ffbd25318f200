//! Variable-length integers as Kafka uses them.
//!
//! * unsigned varints (`UNSIGNED_VARINT`, protobuf base-128): flexible-version lengths, counts
//!   and tags (KIP-482);
//! * zig-zag signed varints (`VARINT`, `VARLONG`): fields of records inside a v2 batch.
//!
//! Readers work on a `&[u8]` cursor and advance it; they never panic on short input.

use crate::error::{CodecError, Result};

/// Reads an unsigned varint of at most 5 bytes (a `u32`).
#[inline]
pub fn read_uvarint(buf: &mut &[u8], what: &'static str) -> Result<u32> {
    let mut value: u32 = 0;
    for i in 0..5 {
        let Some((&b, rest)) = buf.split_first() else {
            return Err(CodecError::Truncated { what, needed: 1 });
        };
        *buf = rest;
        if i == 4 && b > 0x0f {
            return Err(CodecError::MalformedVarint { what });
        }
        value |= ((b & 0x7f) as u32) << (7 * i);
        if b & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err(CodecError::MalformedVarint { what })
}

/// Reads an unsigned varint of at most 10 bytes (a `u64`).
#[inline]
pub fn read_uvarlong(buf: &mut &[u8], what: &'static str) -> Result<u64> {
    let mut value: u64 = 0;
    for i in 0..10 {
        let Some((&b, rest)) = buf.split_first() else {
            return Err(CodecError::Truncated { what, needed: 1 });
        };
        *buf = rest;
        if i == 9 && b > 0x01 {
            return Err(CodecError::MalformedVarint { what });
        }
        value |= ((b & 0x7f) as u64) << (7 * i);
        if b & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err(CodecError::MalformedVarint { what })
}

/// Reads a zig-zag `VARINT` (an `i32`).
#[inline]
pub fn read_varint(buf: &mut &[u8], what: &'static str) -> Result<i32> {
    let v = read_uvarint(buf, what)?;
    Ok(((v >> 1) as i32) ^ -((v & 1) as i32))
}

/// Reads a zig-zag `VARLONG` (an `i64`).
#[inline]
pub fn read_varlong(buf: &mut &[u8], what: &'static str) -> Result<i64> {
    let v = read_uvarlong(buf, what)?;
    Ok(((v >> 1) as i64) ^ -((v & 1) as i64))
}

/// Number of bytes `put_uvarint` writes for `v`.
#[inline]
pub const fn uvarint_len(v: u32) -> usize {
    // 1 + floor(bits/7), computed without a loop.
    let bits = 32 - (v | 1).leading_zeros() as usize;
    bits.div_ceil(7)
}

/// Number of bytes `put_uvarlong` writes for `v`.
#[inline]
pub const fn uvarlong_len(v: u64) -> usize {
    let bits = 64 - (v | 1).leading_zeros() as usize;
    bits.div_ceil(7)
}

/// Number of bytes a zig-zag `VARINT` takes.
#[inline]
pub const fn varint_len(v: i32) -> usize {
    uvarint_len(((v << 1) ^ (v >> 31)) as u32)
}

/// Number of bytes a zig-zag `VARLONG` takes.
#[inline]
pub const fn varlong_len(v: i64) -> usize {
    uvarlong_len(((v << 1) ^ (v >> 63)) as u64)
}

/// Appends an unsigned varint.
#[inline]
pub fn put_uvarint(out: &mut impl bytes::BufMut, mut v: u32) {
    while v >= 0x80 {
        out.put_u8((v as u8) | 0x80);
        v >>= 7;
    }
    out.put_u8(v as u8);
}

/// Appends an unsigned 64-bit varint.
#[inline]
pub fn put_uvarlong(out: &mut impl bytes::BufMut, mut v: u64) {
    while v >= 0x80 {
        out.put_u8((v as u8) | 0x80);
        v >>= 7;
    }
    out.put_u8(v as u8);
}

/// Appends a zig-zag `VARINT`.
#[inline]
pub fn put_varint(out: &mut impl bytes::BufMut, v: i32) {
    put_uvarint(out, ((v << 1) ^ (v >> 31)) as u32)
}

/// Appends a zig-zag `VARLONG`.
#[inline]
pub fn put_varlong(out: &mut impl bytes::BufMut, v: i64) {
    put_uvarlong(out, ((v << 1) ^ (v >> 63)) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn known_answers() {
        // Values and encodings from the protobuf/Kafka documentation.
        let cases: &[(i64, &[u8])] = &[
            (0, &[0x00]),
            (-1, &[0x01]),
            (1, &[0x02]),
            (-2, &[0x03]),
            (63, &[0x7e]),
            (-64, &[0x7f]),
            (64, &[0x80, 0x01]),
            (300, &[0xd8, 0x04]),
            (i32::MAX as i64, &[0xfe, 0xff, 0xff, 0xff, 0x0f]),
            (i32::MIN as i64, &[0xff, 0xff, 0xff, 0xff, 0x0f]),
        ];
        for &(v, enc) in cases {
            let mut out = Vec::new();
            put_varlong(&mut out, v);
            assert_eq!(out, enc, "varlong {v}");
            assert_eq!(varlong_len(v), enc.len());
            let mut s = enc;
            assert_eq!(read_varlong(&mut s, "t").unwrap(), v);
            assert!(s.is_empty());
            if let Ok(v32) = i32::try_from(v) {
                let mut out = Vec::new();
                put_varint(&mut out, v32);
                assert_eq!(out, enc, "varint {v}");
                let mut s = enc;
                assert_eq!(read_varint(&mut s, "t").unwrap(), v32);
            }
        }
        assert_eq!(uvarint_len(0), 1);
        assert_eq!(uvarint_len(127), 1);
        assert_eq!(uvarint_len(128), 2);
        assert_eq!(uvarint_len(u32::MAX), 5);
        assert_eq!(uvarlong_len(u64::MAX), 10);
    }

    #[test]
    fn rejects_overlong_and_truncated() {
        let mut s: &[u8] = &[0x80, 0x80];
        assert!(matches!(
            read_uvarint(&mut s, "t"),
            Err(CodecError::Truncated { .. })
        ));
        let mut s: &[u8] = &[0xff, 0xff, 0xff, 0xff, 0xff, 0x01];
        assert!(matches!(
            read_uvarint(&mut s, "t"),
            Err(CodecError::MalformedVarint { .. })
        ));
        let mut s: &[u8] = &[0xff; 11];
        assert!(matches!(
            read_uvarlong(&mut s, "t"),
            Err(CodecError::MalformedVarint { .. })
        ));
    }

    proptest! {
        #[test]
        fn roundtrip_varint(v in any::<i32>()) {
            let mut out = Vec::new();
            put_varint(&mut out, v);
            prop_assert_eq!(out.len(), varint_len(v));
            let mut s = &out[..];
            prop_assert_eq!(read_varint(&mut s, "t").unwrap(), v);
        }
        #[test]
        fn roundtrip_varlong(v in any::<i64>()) {
            let mut out = Vec::new();
            put_varlong(&mut out, v);
            prop_assert_eq!(out.len(), varlong_len(v));
            let mut s = &out[..];
            prop_assert_eq!(read_varlong(&mut s, "t").unwrap(), v);
        }
        #[test]
        fn roundtrip_uvarint(v in any::<u32>()) {
            let mut out = Vec::new();
            put_uvarint(&mut out, v);
            prop_assert_eq!(out.len(), uvarint_len(v));
            let mut s = &out[..];
            prop_assert_eq!(read_uvarint(&mut s, "t").unwrap(), v);
        }
    }
}
