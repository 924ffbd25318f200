//! The walker must read exactly what `kafka-protocol` reads. These tests generate random,
//! well-formed bodies *from the schema tables* for every API and version (arrays with elements,
//! nulls, nested structs, tagged fields), then require that `kafka-protocol` decodes each one
//! and re-encodes it to the same bytes: any disagreement on structure shows up as a decode
//! error or a byte difference.

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, ResponseKind};

use super::*;
use crate::codec::varint::put_uvarint;

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

struct Gen<'r> {
    rng: &'r mut Rng,
    version: i16,
    flexible: bool,
    depth: u32,
    /// Set while writing a tagged field's value: kafka-protocol leaves out tagged fields equal
    /// to their default, so generate non-default ones (non-empty, non-null).
    non_default: bool,
}

impl Gen<'_> {
    fn len(&mut self, out: &mut BytesMut, len: Option<usize>, wide: bool) {
        match (self.flexible, len) {
            (true, None) => put_uvarint(out, 0),
            (true, Some(n)) => put_uvarint(out, n as u32 + 1),
            (false, None) if wide => out.put_i32(-1),
            (false, None) => out.put_i16(-1),
            (false, Some(n)) if wide => out.put_i32(n as i32),
            (false, Some(n)) => out.put_i16(n as i16),
        }
    }

    fn fields(&mut self, out: &mut BytesMut, fields: &'static [Field]) {
        for f in fields {
            if f.versions.contains(self.version) && !self.tagged(f) {
                self.value(out, f);
            }
        }
        if self.flexible {
            // Known tagged fields, in tag order (as kafka-protocol writes them), each maybe.
            let mut tagged: Vec<&'static Field> = Vec::new();
            for f in fields {
                if f.versions.contains(self.version) && self.tagged(f) && self.rng.below(2) == 0 {
                    tagged.push(f);
                }
            }
            tagged.sort_by_key(|f| f.tag);
            put_uvarint(out, tagged.len() as u32);
            for f in tagged {
                let mut inner = BytesMut::new();
                self.non_default = true;
                self.value(&mut inner, f);
                self.non_default = false;
                put_uvarint(out, f.tag as u32);
                put_uvarint(out, inner.len() as u32);
                out.put_slice(&inner);
            }
        }
    }

    fn tagged(&self, f: &Field) -> bool {
        f.tag >= 0 && self.flexible && f.tagged.contains(self.version)
    }

    fn value(&mut self, out: &mut BytesMut, f: &'static Field) {
        let nullable = f.nullable.contains(self.version) && !self.non_default;
        if let Ty::Struct(inner) = f.ty {
            if nullable {
                if self.rng.below(3) == 0 {
                    out.put_i8(-1);
                    return;
                }
                out.put_i8(1);
            }
            self.depth += 1;
            self.fields(out, inner);
            self.depth -= 1;
            return;
        }
        self.ty(out, &f.ty, nullable);
    }

    fn ty(&mut self, out: &mut BytesMut, ty: &'static Ty, nullable: bool) {
        let null = nullable && !self.non_default && self.rng.below(4) == 0;
        let min_len = usize::from(self.non_default);
        self.non_default = false;
        match ty {
            // Tagged booleans default to false.
            Ty::Bool => out.put_u8(if min_len == 1 {
                1
            } else {
                self.rng.below(2) as u8
            }),
            Ty::I8 => out.put_u8(self.rng.next() as u8),
            Ty::I16 | Ty::U16 => out.put_u16(self.rng.next() as u16),
            Ty::I32 | Ty::U32 => out.put_u32(self.rng.next() as u32),
            Ty::I64 => out.put_u64(self.rng.next()),
            // Only finite floats survive a decode/encode round trip bit for bit.
            Ty::F64 => out.put_f64((self.rng.below(1 << 20) as f64) / 8.0),
            Ty::Uuid => {
                out.put_u64(self.rng.next());
                out.put_u64(self.rng.next());
            }
            Ty::Str | Ty::Bytes | Ty::Records => {
                if null {
                    self.len(out, None, !matches!(ty, Ty::Str));
                    return;
                }
                let n = min_len.max(self.rng.below(6) as usize);
                self.len(out, Some(n), !matches!(ty, Ty::Str));
                for _ in 0..n {
                    out.put_u8(b'a' + self.rng.below(26) as u8);
                }
            }
            Ty::Array(elem) => {
                if null {
                    self.len(out, None, true);
                    return;
                }
                let n = if self.depth > 3 {
                    min_len
                } else {
                    min_len.max(self.rng.below(3) as usize)
                };
                self.len(out, Some(n), true);
                for _ in 0..n {
                    match elem {
                        Ty::Struct(inner) => {
                            self.depth += 1;
                            self.fields(out, inner);
                            self.depth -= 1;
                        }
                        other => self.ty(out, other, false),
                    }
                }
            }
            Ty::Struct(inner) => self.fields(out, inner),
        }
    }
}

fn generate(schema: &MessageSchema, version: i16, seed: u64) -> Bytes {
    let mut rng = Rng(seed | 1);
    let mut g = Gen {
        rng: &mut rng,
        version,
        flexible: schema.flexible.contains(version),
        depth: 0,
        non_default: false,
    };
    let mut out = BytesMut::new();
    g.fields(&mut out, schema.fields);
    out.freeze()
}

#[test]
fn tables_cover_every_api_and_version_of_kafka_protocol() {
    for key in ApiKey::iter() {
        let range = key.valid_versions();
        let schema =
            response_schema(key as i16).unwrap_or_else(|| panic!("no response schema for {key:?}"));
        assert_eq!(
            (schema.valid.0, schema.valid.1),
            (range.min, range.max),
            "{key:?}: schema versions differ from kafka-protocol's"
        );
    }
}

#[test]
fn generated_bodies_decode_and_reencode_identically() {
    let mut checked = 0;
    for key in ApiKey::iter() {
        let schema = response_schema(key as i16).unwrap();
        for version in schema.valid.0..=schema.valid.1 {
            for seed in 0..40u64 {
                let body = generate(schema, version, seed * 7919 + version as u64);
                validate_response_body(key as i16, version, &body).unwrap_or_else(|e| {
                    panic!(
                        "{} v{version} seed {seed}: walker refused its own output: {e}",
                        schema.name
                    )
                });
                let mut rest = body.clone();
                let decoded = ResponseKind::decode(key, &mut rest, version).unwrap_or_else(|e| {
                    panic!(
                        "{} v{version} seed {seed}: kafka-protocol refused: {e:#}\n{body:02x?}",
                        schema.name
                    )
                });
                assert!(
                    rest.is_empty(),
                    "{} v{version}: kafka-protocol left {} bytes",
                    schema.name,
                    rest.len()
                );
                let mut again = BytesMut::new();
                decoded.encode(&mut again, version).unwrap();
                assert_eq!(
                    &again[..],
                    &body[..],
                    "{} v{version} seed {seed}: re-encoding differs",
                    schema.name
                );
                // Every strict prefix must be refused (no reading past the end).
                let cut = (seed as usize * 31) % body.len().max(1);
                if cut < body.len() {
                    assert!(validate_response_body(key as i16, version, &body[..cut]).is_err());
                }
                if seed == 0 && version == schema.valid.1 {
                    write_fuzz_seed(schema, version, &body);
                }
                checked += 1;
            }
        }
    }
    assert!(checked > 10_000, "only {checked} bodies checked");
}

/// With `KAFKA_WRITE_FUZZ_SEEDS=<dir>`, writes one generated response per API in the layout
/// of the `response` fuzz target: [schema index][version offset][correlation id][header][body].
fn write_fuzz_seed(schema: &MessageSchema, version: i16, body: &[u8]) {
    let Some(dir) = std::env::var_os("KAFKA_WRITE_FUZZ_SEEDS") else {
        return;
    };
    let index = response_schemas()
        .iter()
        .position(|s| s.api_key == schema.api_key)
        .unwrap();
    let key = ApiKey::try_from(schema.api_key).unwrap();
    let mut out = vec![index as u8, (version - schema.valid.0) as u8, 0, 0, 0, 1];
    if key.response_header_version(version) >= 1 {
        out.push(0);
    }
    out.extend_from_slice(body);
    let path = std::path::Path::new(&dir).join(format!("{}_v{version}", schema.name));
    std::fs::write(path, out).unwrap();
}
