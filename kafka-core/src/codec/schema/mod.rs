//! Schema-driven validation of response bodies, before `kafka-protocol` sees them.
//!
//! `kafka-protocol` 0.18 decodes every array with `Vec::with_capacity(count)`, the count taken
//! straight off the wire: a response of a few bytes that declares two billion elements makes
//! it ask for hundreds of gigabytes, and the process aborts. Such a count cannot be caught from
//! outside the crate's decoder (it reads array counts and plain `INT32` fields through the same
//! calls), so this module walks the body first, against Kafka's own message definitions
//! (generated into [`generated`] by `scripts/gen-schemas`), and refuses any count or length
//! that the remaining bytes cannot hold. Only a body that walks cleanly, to its last byte, is
//! handed to `kafka-protocol`.
//!
//! The walk allocates nothing and its recursion depth is bounded by the (static) schema
//! nesting, never by the input. Array counts are checked against the *minimum* encoded size
//! of an element at this version, so even zero-width elements cannot multiply an allocation.
//!
//! Wire rules (Kafka protocol guide; KIP-482 for flexible versions): in flexible versions,
//! strings, bytes, records and arrays carry `UNSIGNED_VARINT` lengths offset by one (0 = null)
//! and every struct ends with a tagged-field section; otherwise strings carry `INT16` lengths,
//! bytes and records `INT32`, arrays `INT32` counts, with -1 for null. A nullable struct is
//! preceded by an `INT8` marker (1 = present).

mod generated;

pub use generated::KAFKA_VERSION as SCHEMA_KAFKA_VERSION;

use crate::codec::varint::read_uvarint;
use crate::error::{CodecError, Result};

/// A closed range of versions; `V(1, 0)` is empty.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct V(pub i16, pub i16);

impl V {
    /// Whether `v` lies in the range.
    #[inline]
    pub const fn contains(self, v: i16) -> bool {
        self.0 <= v && v <= self.1
    }
}

/// A field's wire type.
#[derive(Debug)]
pub enum Ty {
    /// `BOOLEAN`.
    Bool,
    /// `INT8`.
    I8,
    /// `INT16`.
    I16,
    /// `UINT16`.
    U16,
    /// `INT32`.
    I32,
    /// `UINT32`.
    U32,
    /// `INT64`.
    I64,
    /// `FLOAT64`.
    F64,
    /// `UUID`.
    Uuid,
    /// `STRING` / `COMPACT_STRING` (nullable per field).
    Str,
    /// `BYTES` / `COMPACT_BYTES`.
    Bytes,
    /// `RECORDS`: length-prefixed like bytes.
    Records,
    /// `ARRAY` / `COMPACT_ARRAY` of the inner type.
    Array(&'static Ty),
    /// A nested struct.
    Struct(&'static [Field]),
}

/// One field of a message or struct.
#[derive(Debug)]
pub struct Field {
    /// The field's name in the Kafka definition.
    pub name: &'static str,
    /// Its type.
    pub ty: Ty,
    /// Versions in which it exists.
    pub versions: V,
    /// Versions in which it may be null.
    pub nullable: V,
    /// Its tag, or -1 for a regular field.
    pub tag: i32,
    /// Versions in which it is a tagged field.
    pub tagged: V,
}

/// A response message's schema.
#[derive(Debug)]
pub struct MessageSchema {
    /// The API key.
    pub api_key: i16,
    /// The message's name, e.g. `FetchResponse`.
    pub name: &'static str,
    /// Valid versions.
    pub valid: V,
    /// Flexible versions (KIP-482).
    pub flexible: V,
    /// Top-level fields.
    pub fields: &'static [Field],
}

/// Every response schema known to this build, sorted by api key.
pub fn response_schemas() -> &'static [MessageSchema] {
    generated::RESPONSES
}

/// The schema of the response to `api_key`, if known.
pub fn response_schema(api_key: i16) -> Option<&'static MessageSchema> {
    let all = generated::RESPONSES;
    all.binary_search_by_key(&api_key, |m| m.api_key)
        .ok()
        .map(|i| &all[i])
}

/// Checks that `body` is a well-formed `api_key` response at `version`, to its last byte.
///
/// After this returns `Ok`, decoding the same bytes with `kafka-protocol` cannot be made to
/// over-allocate or read past the end.
pub fn validate_response_body(api_key: i16, version: i16, body: &[u8]) -> Result<()> {
    let schema = response_schema(api_key).ok_or(CodecError::UnknownApiKey { api_key })?;
    if !schema.valid.contains(version) {
        return Err(CodecError::UnsupportedVersion {
            api_key,
            name: schema.name,
            version,
        });
    }
    let mut w = Walker {
        version,
        flexible: schema.flexible.contains(version),
        buf: body,
    };
    w.fields(schema.fields)?;
    if !w.buf.is_empty() {
        return Err(CodecError::TrailingBytes {
            api: schema.name,
            version,
            trailing: w.buf.len(),
        });
    }
    Ok(())
}

struct Walker<'a> {
    version: i16,
    flexible: bool,
    buf: &'a [u8],
}

impl Walker<'_> {
    #[inline]
    fn skip(&mut self, n: usize, what: &'static str) -> Result<()> {
        if self.buf.len() < n {
            return Err(CodecError::Truncated {
                what,
                needed: n - self.buf.len(),
            });
        }
        self.buf = &self.buf[n..];
        Ok(())
    }

    #[inline]
    fn fixed<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N]> {
        match self.buf.split_first_chunk::<N>() {
            Some((head, rest)) => {
                self.buf = rest;
                Ok(*head)
            }
            None => Err(CodecError::Truncated {
                what,
                needed: N - self.buf.len(),
            }),
        }
    }

    /// A length or count: `Ok(None)` for null, the value otherwise. Flexible versions use an
    /// unsigned varint offset by one; others an `INT16` (strings) or `INT32`.
    fn length(&mut self, wide: bool, what: &'static str) -> Result<Option<usize>> {
        let len: i64 = if self.flexible {
            read_uvarint(&mut self.buf, what)? as i64 - 1
        } else if wide {
            i32::from_be_bytes(self.fixed::<4>(what)?) as i64
        } else {
            i16::from_be_bytes(self.fixed::<2>(what)?) as i64
        };
        match len {
            -1 => Ok(None),
            n if n < -1 => Err(CodecError::InvalidLength {
                what,
                len: n,
                remaining: self.buf.len(),
            }),
            n => Ok(Some(n as usize)),
        }
    }

    fn fields(&mut self, fields: &'static [Field]) -> Result<()> {
        for f in fields {
            if !f.versions.contains(self.version) || self.is_tagged(f) {
                continue;
            }
            self.value(f)?;
        }
        if self.flexible {
            self.tagged_fields(fields)?;
        }
        Ok(())
    }

    #[inline]
    fn is_tagged(&self, f: &Field) -> bool {
        f.tag >= 0 && self.flexible && f.tagged.contains(self.version)
    }

    fn value(&mut self, f: &'static Field) -> Result<()> {
        if let Ty::Struct(inner) = f.ty {
            if f.nullable.contains(self.version) {
                // kafka-protocol's OptionStruct: present only when the marker is exactly 1.
                let [marker] = self.fixed::<1>(f.name)?;
                if marker != 1 {
                    return Ok(());
                }
            }
            return self.fields(inner);
        }
        self.ty(&f.ty, f.name)
    }

    fn ty(&mut self, ty: &'static Ty, what: &'static str) -> Result<()> {
        match ty {
            Ty::Bool | Ty::I8 => self.skip(1, what),
            Ty::I16 | Ty::U16 => self.skip(2, what),
            Ty::I32 | Ty::U32 => self.skip(4, what),
            Ty::I64 | Ty::F64 => self.skip(8, what),
            Ty::Uuid => self.skip(16, what),
            Ty::Str => match self.length(false, what)? {
                Some(n) => self.skip(n, what),
                None => Ok(()),
            },
            Ty::Bytes | Ty::Records => match self.length(true, what)? {
                Some(n) => self.skip(n, what),
                None => Ok(()),
            },
            Ty::Array(elem) => {
                let Some(count) = self.length(true, what)? else {
                    return Ok(());
                };
                // Every element costs at least `min` bytes (at least one, even for an element
                // that encodes to nothing), so a count the remaining bytes cannot hold is a lie.
                let min = self.min_size(elem).max(1);
                if count.saturating_mul(min) > self.buf.len() {
                    return Err(CodecError::InvalidLength {
                        what,
                        len: count as i64,
                        remaining: self.buf.len(),
                    });
                }
                if let Some(width) = fixed_width(elem) {
                    return self.skip(count * width, what);
                }
                for _ in 0..count {
                    match elem {
                        Ty::Struct(inner) => self.fields(inner)?,
                        other => self.ty(other, what)?,
                    }
                }
                Ok(())
            }
            Ty::Struct(inner) => self.fields(inner),
        }
    }

    fn tagged_fields(&mut self, fields: &'static [Field]) -> Result<()> {
        let count = read_uvarint(&mut self.buf, "tagged field count")? as usize;
        // Each tagged field takes at least two bytes (tag and size).
        if count.saturating_mul(2) > self.buf.len() {
            return Err(CodecError::InvalidLength {
                what: "tagged field count",
                len: count as i64,
                remaining: self.buf.len(),
            });
        }
        for _ in 0..count {
            let tag = read_uvarint(&mut self.buf, "tag")?;
            let size = read_uvarint(&mut self.buf, "tagged field size")? as usize;
            if size > self.buf.len() {
                return Err(CodecError::InvalidLength {
                    what: "tagged field size",
                    len: size as i64,
                    remaining: self.buf.len(),
                });
            }
            let (content, rest) = self.buf.split_at(size);
            let known = fields.iter().find(|f| {
                f.tag >= 0
                    && f.tag as u32 == tag
                    && f.versions.contains(self.version)
                    && f.tagged.contains(self.version)
            });
            if let Some(f) = known {
                // kafka-protocol decodes a known tag from the main buffer and ignores the
                // declared size; insisting that the value fills the size exactly keeps both
                // readers in step.
                let mut inner = Walker {
                    version: self.version,
                    flexible: self.flexible,
                    buf: content,
                };
                inner.value(f)?;
                if !inner.buf.is_empty() {
                    return Err(CodecError::InvalidLength {
                        what: f.name,
                        len: size as i64,
                        remaining: content.len() - inner.buf.len(),
                    });
                }
            }
            self.buf = rest;
        }
        Ok(())
    }

    /// The fewest bytes one value of `ty` takes at this version.
    fn min_size(&self, ty: &'static Ty) -> usize {
        if let Some(w) = fixed_width(ty) {
            return w;
        }
        match ty {
            // Length prefixes: one varint byte in flexible versions.
            Ty::Str => {
                if self.flexible {
                    1
                } else {
                    2
                }
            }
            Ty::Bytes | Ty::Records | Ty::Array(_) => {
                if self.flexible {
                    1
                } else {
                    4
                }
            }
            Ty::Struct(fields) => {
                let mut n = usize::from(self.flexible); // the tagged-field count
                for f in fields.iter() {
                    if f.versions.contains(self.version) && !self.is_tagged(f) {
                        n += match f.ty {
                            Ty::Struct(_) if f.nullable.contains(self.version) => 1,
                            ref t => self.min_size(t),
                        };
                    }
                }
                n
            }
            _ => 0,
        }
    }
}

/// The width of a fixed-size type.
#[inline]
fn fixed_width(ty: &Ty) -> Option<usize> {
    Some(match ty {
        Ty::Bool | Ty::I8 => 1,
        Ty::I16 | Ty::U16 => 2,
        Ty::I32 | Ty::U32 => 4,
        Ty::I64 | Ty::F64 => 8,
        Ty::Uuid => 16,
        _ => return None,
    })
}

#[cfg(test)]
mod tests;
