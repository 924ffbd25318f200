//! Request encoding and response decoding for every API and version `kafka-protocol` knows.
//!
//! Requests: `[size: INT32][header][body]`, where the header version follows the API and
//! version (v2, with tagged fields, for flexible versions; v1 otherwise; v0 only for
//! ControlledShutdown v0). Responses: `[size][correlation id][tagged fields if header v1][body]`
//! — ApiVersions always answers with header v0 so that a client can read it at any version
//! (KIP-511).
//!
//! Response bodies are walked against the Kafka schemas ([`crate::codec::schema`]) before
//! `kafka-protocol` decodes them: whatever the bytes, decoding ends in a typed value or a
//! [`CodecError`], never a panic, an abort or a giant allocation.

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseKind};
use kafka_protocol::protocol::{Decodable, Encodable, Request, StrBytes};

use crate::codec::schema::validate_response_body;
use crate::codec::varint::read_uvarint;
use crate::error::{CodecError, Result};

/// Name of an API key, for errors.
pub fn api_name(api_key: i16) -> &'static str {
    crate::codec::schema::response_schema(api_key)
        .map(|s| s.name.trim_end_matches("Response"))
        .unwrap_or("Unknown")
}

fn api_key_of(api_key: i16) -> Result<ApiKey> {
    ApiKey::try_from(api_key).map_err(|_| CodecError::UnknownApiKey { api_key })
}

fn check_version(api_key: i16, version: i16) -> Result<ApiKey> {
    let key = api_key_of(api_key)?;
    let range = key.valid_versions();
    if version < range.min || version > range.max {
        return Err(CodecError::UnsupportedVersion {
            api_key,
            name: api_name(api_key),
            version,
        });
    }
    Ok(key)
}

/// Appends one whole request frame (size prefix, header, body) to `out`.
///
/// `client_id` is sent as is (`None` is a null client id). The request header version is
/// chosen from the API and version, as the Java client does.
pub fn encode_request<R: Request>(
    out: &mut BytesMut,
    correlation_id: i32,
    client_id: Option<&StrBytes>,
    version: i16,
    body: &R,
) -> Result<()> {
    let key = check_version(R::KEY, version)?;
    let name = api_name(R::KEY);
    let header = RequestHeader::default()
        .with_request_api_key(R::KEY)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(client_id.cloned());
    let header_version = key.request_header_version(version);
    let start = out.len();
    out.put_i32(0); // patched below
    let result = header
        .encode(out, header_version)
        .and_then(|()| body.encode(out, version));
    if let Err(e) = result {
        // Leave `out` as it was: no half frame.
        out.truncate(start);
        return Err(CodecError::Encode {
            api: name,
            version,
            message: format!("{e:#}"),
        });
    }
    let size = out.len() - start - 4;
    let size = i32::try_from(size).map_err(|_| {
        out.truncate(start);
        CodecError::TooLarge {
            what: "request",
            len: size,
        }
    })?;
    out[start..start + 4].copy_from_slice(&size.to_be_bytes());
    Ok(())
}

/// Reads the correlation id at the front of a response frame without consuming it.
pub fn peek_correlation_id(frame: &[u8]) -> Result<i32> {
    match frame.first_chunk::<4>() {
        Some(b) => Ok(i32::from_be_bytes(*b)),
        None => Err(CodecError::Truncated {
            what: "correlation id",
            needed: 4 - frame.len(),
        }),
    }
}

/// Strips the response header from `frame` (a frame without its size prefix) and returns the
/// correlation id; `frame` is left holding the body.
pub fn split_response_header(api_key: i16, version: i16, frame: &mut Bytes) -> Result<i32> {
    let key = api_key_of(api_key)?;
    let correlation_id = peek_correlation_id(frame)?;
    let mut rest: &[u8] = &frame[4..];
    if key.response_header_version(version) >= 1 {
        // Header v1: tagged fields; none are defined, so each is skipped by its size.
        let count = read_uvarint(&mut rest, "response header tagged field count")?;
        for _ in 0..count {
            read_uvarint(&mut rest, "response header tag")?;
            let size = read_uvarint(&mut rest, "response header tagged field size")? as usize;
            if size > rest.len() {
                return Err(CodecError::InvalidLength {
                    what: "response header tagged field",
                    len: size as i64,
                    remaining: rest.len(),
                });
            }
            rest = &rest[size..];
        }
    }
    let header_len = frame.len() - rest.len();
    let _ = frame.split_to(header_len);
    Ok(correlation_id)
}

/// Decodes a response body (the frame after its header) for a statically known request type.
pub fn decode_response_body<R: Request>(version: i16, body: Bytes) -> Result<R::Response> {
    check_version(R::KEY, version)?;
    validate_response_body(R::KEY, version, &body)?;
    let mut body = body;
    <R::Response as Decodable>::decode(&mut body, version).map_err(|e| CodecError::Malformed {
        api: api_name(R::KEY),
        version,
        message: format!("{e:#}"),
    })
}

/// Decodes a whole response frame (without its size prefix) for a statically known request
/// type, checking that it answers `expected_correlation_id`.
pub fn decode_response<R: Request>(
    version: i16,
    expected_correlation_id: i32,
    mut frame: Bytes,
) -> Result<R::Response> {
    let id = split_response_header(R::KEY, version, &mut frame)?;
    if id != expected_correlation_id {
        return Err(CodecError::CorrelationMismatch {
            expected: expected_correlation_id,
            actual: id,
        });
    }
    decode_response_body::<R>(version, frame)
}

/// Decodes a whole response frame of any API, chosen at run time; returns the correlation id
/// and the typed response.
pub fn decode_response_kind(
    api_key: i16,
    version: i16,
    mut frame: Bytes,
) -> Result<(i32, ResponseKind)> {
    let key = check_version(api_key, version)?;
    let id = split_response_header(api_key, version, &mut frame)?;
    validate_response_body(api_key, version, &frame)?;
    let kind =
        ResponseKind::decode(key, &mut frame, version).map_err(|e| CodecError::Malformed {
            api: api_name(api_key),
            version,
            message: format!("{e:#}"),
        })?;
    Ok((id, kind))
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::{
        ApiVersionsRequest, ApiVersionsResponse, FetchRequest, MetadataRequest, MetadataResponse,
    };

    #[test]
    fn request_header_versions_follow_flexibility() {
        let mut out = BytesMut::new();
        let cid = StrBytes::from_static_str("c");
        encode_request(&mut out, 7, Some(&cid), 12, &MetadataRequest::default()).unwrap();
        // size, api key 3, version 12, correlation 7, client id "c" (INT16 length even in v2),
        // then the header's empty tagged fields.
        assert_eq!(&out[4..16], &[0, 3, 0, 12, 0, 0, 0, 7, 0, 1, b'c', 0]);
        assert_eq!(
            i32::from_be_bytes(out[..4].try_into().unwrap()) as usize,
            out.len() - 4
        );
        out.clear();
        encode_request(&mut out, 8, None, 1, &MetadataRequest::default()).unwrap();
        // Header v1: null client id (-1), no tagged fields; body: an empty topic array (the
        // default: no topics, as opposed to null = all topics).
        assert_eq!(&out[4..], &[0, 3, 0, 1, 0, 0, 0, 8, 0xff, 0xff, 0, 0, 0, 0]);
    }

    #[test]
    fn encode_refuses_unknown_versions_and_leaves_no_half_frame() {
        let mut out = BytesMut::from(&b"xx"[..]);
        let err = encode_request(&mut out, 1, None, 99, &FetchRequest::default()).unwrap_err();
        assert!(matches!(
            err,
            CodecError::UnsupportedVersion { version: 99, .. }
        ));
        assert_eq!(&out[..], b"xx");
    }

    #[test]
    fn response_roundtrip_and_correlation_check() {
        let resp = MetadataResponse::default().with_throttle_time_ms(5);
        for version in [0i16, 9, 12] {
            let mut frame = BytesMut::new();
            frame.put_i32(42);
            if version >= 9 {
                frame.put_u8(0); // header tagged fields
            }
            resp.encode(&mut frame, version).unwrap();
            let frame = frame.freeze();
            let got = decode_response::<MetadataRequest>(version, 42, frame.clone()).unwrap();
            if version >= 3 {
                assert_eq!(got.throttle_time_ms, 5);
            }
            assert_eq!(
                decode_response::<MetadataRequest>(version, 41, frame.clone()).unwrap_err(),
                CodecError::CorrelationMismatch {
                    expected: 41,
                    actual: 42
                }
            );
            let (id, kind) = decode_response_kind(3, version, frame).unwrap();
            assert_eq!(id, 42);
            assert!(matches!(kind, ResponseKind::Metadata(_)));
        }
    }

    #[test]
    fn api_versions_uses_header_v0_even_when_flexible() {
        let mut frame = BytesMut::new();
        frame.put_i32(1);
        ApiVersionsResponse::default()
            .encode(&mut frame, 3)
            .unwrap();
        decode_response::<ApiVersionsRequest>(3, 1, frame.freeze()).unwrap();
    }

    #[test]
    fn hostile_array_count_is_refused_without_allocating() {
        // Metadata v1: throttle-less; brokers array declared with i32::MAX elements.
        let mut frame = BytesMut::new();
        frame.put_i32(1);
        frame.put_i32(i32::MAX);
        frame.put_slice(&[0; 16]);
        let err = decode_response::<MetadataRequest>(1, 1, frame.freeze()).unwrap_err();
        assert!(matches!(err, CodecError::InvalidLength { len, .. } if len == i32::MAX as i64));
        // Same in a flexible version (compact array count).
        let mut frame = BytesMut::new();
        frame.put_i32(1);
        frame.put_u8(0); // header tags
        frame.put_i32(0); // throttle
        frame.put_slice(&[0xff, 0xff, 0xff, 0xff, 0x07]); // uvarint 2^31-1
        let err = decode_response::<MetadataRequest>(12, 1, frame.freeze()).unwrap_err();
        assert!(matches!(err, CodecError::InvalidLength { .. }), "{err:?}");
    }

    #[test]
    fn trailing_and_truncated_bodies_are_errors() {
        let mut body = BytesMut::new();
        MetadataResponse::default().encode(&mut body, 1).unwrap();
        let full = body.clone().freeze();
        let mut longer = body.clone();
        longer.put_u8(0);
        assert!(matches!(
            decode_response_body::<MetadataRequest>(1, longer.freeze()),
            Err(CodecError::TrailingBytes { trailing: 1, .. })
        ));
        for cut in 0..full.len() {
            assert!(decode_response_body::<MetadataRequest>(1, full.slice(..cut)).is_err());
        }
    }

    /// Found by fuzzing kafka-protocol's decoder with no walker in front (libFuzzer reported a
    /// malloc of 864 MB from these 43 bytes); through our path it is a typed error.
    #[test]
    fn regression_unguarded_decoder_oom() {
        let keys: Vec<ApiKey> = ApiKey::iter().collect();
        let key = keys[88 % keys.len()];
        let version = key.valid_versions().min;
        let body: &[u8] = &[
            0x00, 0x00, 0x00, 0x01, 0x00, 0x89, 0x6c, 0xdd, 0x1d, 0x65, 0x1d, 0x04, 0x6d, 0x62,
            0x78, 0x02, 0x03, 0x78, 0x61, 0x2d, 0x53, 0x66, 0x6f, 0x8c, 0xdb, 0xba, 0x9c, 0x27,
            0xa6, 0xc0, 0xf1, 0x4f, 0xd1, 0x52, 0x10, 0x9a, 0xff, 0x04, 0x77, 0x6d, 0x79, 0x00,
            0x00,
        ];
        assert!(crate::codec::schema::validate_response_body(key as i16, version, body).is_err());
        let mut frame = BytesMut::new();
        frame.put_i32(9);
        if key.response_header_version(version) >= 1 {
            frame.put_u8(0);
        }
        frame.put_slice(body);
        assert!(decode_response_kind(key as i16, version, frame.freeze()).is_err());
    }
}
