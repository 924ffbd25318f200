//! Record-batch compression codecs, as Kafka frames them on the wire.
//!
//! The codec id lives in bits 0-2 of a batch's attributes (Kafka protocol guide, "Record Batch";
//! zstd is id 4 since KIP-110). What each codec's bytes look like is a matter of convention
//! rather than of the protocol page, so this module follows what the Java client writes and reads:
//!
//! * **gzip**: an RFC 1952 member (raw deflate inside a gzip header and CRC32/ISIZE trailer).
//!   Concatenated members are read, as `java.util.zip.GZIPInputStream` does.
//! * **snappy**: the *xerial* stream framing (`\x82SNAPPY\x00`, version, compatible version,
//!   then blocks of `[i32 BE length][raw snappy block]`), written by both the Java client and
//!   librdkafka. Decoding also accepts one bare raw snappy block, as xerial's reader does.
//! * **lz4**: the LZ4 *frame* format (magic `0x184D2204`), 64 KiB independent blocks, no
//!   checksums, as the Java client's `Lz4BlockOutputStream` writes it. Magic v0 message sets
//!   carry a header checksum computed over the magic too (KAFKA-3160); the legacy decode path
//!   accepts that (see [`Decompressor::decompress_legacy`]).
//! * **zstd**: one zstd frame (concatenated frames are read too).
//!
//! [`Compressor`] and [`Decompressor`] keep their codec contexts and scratch buffers from one
//! batch to the next, so a steady-state producer or consumer does not allocate per batch.
//! [`Decompressor`] enforces a hard cap on the decompressed size of one batch and never
//! reserves more than that cap, whatever a header claims: a decompression bomb costs at most
//! `cap` bytes of output and the time to produce them.

use std::fmt;
use std::io::Write as _;
use std::str::FromStr;

use zstd::stream::raw::Operation as _;

use crate::error::{CodecError, Result};

/// A record-batch compression codec (attribute bits 0-2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Compression {
    /// No compression (id 0).
    #[default]
    None,
    /// gzip (id 1).
    Gzip,
    /// snappy, xerial-framed (id 2).
    Snappy,
    /// LZ4 frame format (id 3).
    Lz4,
    /// zstd (id 4, KIP-110; record batches of magic 2 only).
    Zstd,
}

impl Compression {
    /// Every codec, in id order.
    pub const ALL: [Compression; 5] = [
        Compression::None,
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ];

    /// The id carried in attribute bits 0-2.
    pub const fn id(self) -> u8 {
        match self {
            Compression::None => 0,
            Compression::Gzip => 1,
            Compression::Snappy => 2,
            Compression::Lz4 => 3,
            Compression::Zstd => 4,
        }
    }

    /// The codec with attribute id `id`; 5, 6 and 7 (and anything wider than 3 bits) are
    /// [`CodecError::UnknownCompression`].
    pub const fn from_id(id: u8) -> Result<Self> {
        Ok(match id {
            0 => Compression::None,
            1 => Compression::Gzip,
            2 => Compression::Snappy,
            3 => Compression::Lz4,
            4 => Compression::Zstd,
            _ => return Err(CodecError::UnknownCompression { id }),
        })
    }

    /// The name used by `compression.type`: "none", "gzip", "snappy", "lz4", "zstd".
    pub const fn name(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Snappy => "snappy",
            Compression::Lz4 => "lz4",
            Compression::Zstd => "zstd",
        }
    }
}

impl fmt::Display for Compression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The error of parsing a `compression.type` value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown compression type {0:?} (expected none, gzip, snappy, lz4 or zstd)")]
pub struct ParseCompressionError(pub String);

impl FromStr for Compression {
    type Err = ParseCompressionError;

    /// Parses a `compression.type` value (ASCII case-insensitive, as the Java client).
    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        Compression::ALL
            .into_iter()
            .find(|c| c.name().eq_ignore_ascii_case(s))
            .ok_or_else(|| ParseCompressionError(s.to_owned()))
    }
}

/// Compression levels per codec, as the Java producer's `compression.<codec>.level` (KIP-390).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CompressionLevels {
    /// `compression.gzip.level`, 1..=9. Java's default is -1, zlib's default, which is 6.
    pub gzip: u32,
    /// `compression.lz4.level`, 1..=17, default 9. Java uses the fast (non-HC) LZ4 compressor
    /// at its default level; `lz4_flex` only has that compressor, so every level compresses as
    /// the default does. The value is kept so configuration round-trips.
    pub lz4: u32,
    /// `compression.zstd.level`, default 3 (zstd's own default).
    pub zstd: i32,
}

impl Default for CompressionLevels {
    fn default() -> Self {
        Self {
            gzip: 6,
            lz4: 9,
            zstd: 3,
        }
    }
}

/// xerial snappy stream header: magic, then version 1 and minimum compatible version 1 (BE).
const XERIAL_HEADER: [u8; 16] = *b"\x82SNAPPY\x00\x00\x00\x00\x01\x00\x00\x00\x01";
const XERIAL_MAGIC_LEN: usize = 8;
/// xerial's `SnappyOutputStream` default block size, which the Java client uses.
const XERIAL_BLOCK_SIZE: usize = 32 * 1024;

const LZ4_MAGIC: u32 = 0x184D_2204;
/// FLG: version 01, independent blocks, no block or content checksum, no content size.
const LZ4_FLG_JAVA: u8 = 0x60;
/// BD: 64 KiB maximum block size.
const LZ4_BD_64K: u8 = 0x40;
const LZ4_WINDOW: usize = 64 * 1024;

fn compress_err(codec: Compression, reason: impl fmt::Display) -> CodecError {
    CodecError::Compression {
        codec: codec.name(),
        op: "compress",
        reason: reason.to_string(),
    }
}

fn decompress_err(codec: Compression, reason: impl fmt::Display) -> CodecError {
    CodecError::Compression {
        codec: codec.name(),
        op: "decompress",
        reason: reason.to_string(),
    }
}

fn too_large(codec: Compression, cap: usize) -> CodecError {
    CodecError::DecompressedTooLarge {
        codec: codec.name(),
        cap,
    }
}

/// Compresses record sections, keeping codec contexts and output buffers between calls.
///
/// One per producer thread (or per in-flight seal) is the intended use: it is `Send`, not
/// shared.
pub struct Compressor {
    levels: CompressionLevels,
    /// Output of the last `compress` call (all codecs but lz4, whose encoder owns its output).
    out: Vec<u8>,
    gzip: Option<(u32, flate2::Compress)>,
    gzip_crc: flate2::Crc,
    /// Output workspace for deflate; only ever grows.
    gzip_block: Vec<u8>,
    snappy: snap::raw::Encoder,
    /// Initialised workspace for one snappy block; only ever grows.
    snappy_block: Vec<u8>,
    lz4: Option<lz4_flex::frame::FrameEncoder<Vec<u8>>>,
    zstd: Option<(i32, zstd::bulk::Compressor<'static>)>,
}

impl fmt::Debug for Compressor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Compressor")
            .field("levels", &self.levels)
            .field("out_capacity", &self.out.capacity())
            .finish_non_exhaustive()
    }
}

impl Default for Compressor {
    fn default() -> Self {
        Self::new()
    }
}

impl Compressor {
    /// A compressor with the Java client's default levels.
    pub fn new() -> Self {
        Self::with_levels(CompressionLevels::default())
    }

    /// A compressor with the given levels.
    pub fn with_levels(levels: CompressionLevels) -> Self {
        Self {
            levels,
            out: Vec::new(),
            gzip: None,
            gzip_crc: flate2::Crc::new(),
            gzip_block: Vec::new(),
            snappy: snap::raw::Encoder::new(),
            snappy_block: Vec::new(),
            lz4: None,
            zstd: None,
        }
    }

    /// The configured levels.
    pub fn levels(&self) -> CompressionLevels {
        self.levels
    }

    /// Compresses `input` with `codec` at the configured level. The result borrows the
    /// compressor's reused output buffer, valid until the next call.
    ///
    /// `Compression::None` copies `input` into that buffer (callers normally skip the call).
    pub fn compress(&mut self, codec: Compression, input: &[u8]) -> Result<&[u8]> {
        self.compress_with_level(codec, None, input)
    }

    /// As [`compress`](Self::compress), with `level` overriding the configured level for this
    /// call (ignored for none, snappy and lz4).
    pub fn compress_with_level(
        &mut self,
        codec: Compression,
        level: Option<i32>,
        input: &[u8],
    ) -> Result<&[u8]> {
        match codec {
            Compression::None => {
                self.out.clear();
                self.out.extend_from_slice(input);
                Ok(&self.out)
            }
            Compression::Gzip => {
                let level = level.map_or(self.levels.gzip, |l| l.clamp(0, 9) as u32);
                self.gzip(level, input)?;
                Ok(&self.out)
            }
            Compression::Snappy => {
                self.snappy(input)?;
                Ok(&self.out)
            }
            Compression::Lz4 => self.lz4(input),
            Compression::Zstd => {
                let level = level.unwrap_or(self.levels.zstd);
                self.zstd(level, input)?;
                Ok(&self.out)
            }
        }
    }

    fn gzip(&mut self, level: u32, input: &[u8]) -> Result<()> {
        const CODEC: Compression = Compression::Gzip;
        let deflate = match &mut self.gzip {
            Some((l, d)) if *l == level => {
                d.reset();
                d
            }
            slot => {
                let d = flate2::Compress::new(flate2::Compression::new(level), false);
                &mut slot.insert((level, d)).1
            }
        };
        let out = &mut self.out;
        out.clear();
        // RFC 1952 header: magic, CM=deflate, no flags, MTIME 0, XFL 0, OS 255 (unknown).
        out.extend_from_slice(&[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff]);
        // Deflate's worst case is a little over the input (stored blocks): reserve it once.
        out.reserve(input.len() + input.len() / 1000 + 64);
        // Input goes in 64 KiB steps, output through a fixed, reused workspace, as a
        // streaming encoder (GzEncoder) does; one call over the whole input measured the same.
        const STEP: usize = 64 * 1024;
        if self.gzip_block.len() < STEP {
            self.gzip_block.resize(STEP, 0);
        }
        let mut consumed = 0;
        loop {
            let end = input.len().min(consumed + STEP);
            let flush = if end == input.len() {
                flate2::FlushCompress::Finish
            } else {
                flate2::FlushCompress::None
            };
            let (in_before, out_before) = (deflate.total_in(), deflate.total_out());
            let status = deflate
                .compress(&input[consumed..end], &mut self.gzip_block, flush)
                .map_err(|e| compress_err(CODEC, e))?;
            consumed += (deflate.total_in() - in_before) as usize;
            let produced = (deflate.total_out() - out_before) as usize;
            out.extend_from_slice(&self.gzip_block[..produced]);
            if status == flate2::Status::StreamEnd {
                break;
            }
        }
        self.gzip_crc.reset();
        self.gzip_crc.update(input);
        out.extend_from_slice(&self.gzip_crc.sum().to_le_bytes());
        out.extend_from_slice(&(input.len() as u32).to_le_bytes());
        Ok(())
    }

    fn snappy(&mut self, input: &[u8]) -> Result<()> {
        let out = &mut self.out;
        out.clear();
        out.reserve(XERIAL_HEADER.len() + input.len() + input.len() / 6 + 64);
        out.extend_from_slice(&XERIAL_HEADER);
        let max = snap::raw::max_compress_len(XERIAL_BLOCK_SIZE.min(input.len()));
        if self.snappy_block.len() < max {
            self.snappy_block.resize(max, 0);
        }
        for block in input.chunks(XERIAL_BLOCK_SIZE) {
            let n = self
                .snappy
                .compress(block, &mut self.snappy_block)
                .map_err(|e| compress_err(Compression::Snappy, e))?;
            out.extend_from_slice(&(n as u32).to_be_bytes());
            out.extend_from_slice(&self.snappy_block[..n]);
        }
        Ok(())
    }

    fn lz4(&mut self, input: &[u8]) -> Result<&[u8]> {
        const CODEC: Compression = Compression::Lz4;
        let enc = self.lz4.get_or_insert_with(|| {
            let info = lz4_flex::frame::FrameInfo::new()
                .block_size(lz4_flex::frame::BlockSize::Max64KB)
                .block_mode(lz4_flex::frame::BlockMode::Independent);
            lz4_flex::frame::FrameEncoder::with_frame_info(info, Vec::new())
        });
        enc.get_mut().clear();
        if input.is_empty() {
            // lz4_flex writes a header-less frame for empty input after its first frame; write
            // the empty frame by hand.
            let out = enc.get_mut();
            out.extend_from_slice(&LZ4_MAGIC.to_le_bytes());
            let hc = (xxh32(&[LZ4_FLG_JAVA, LZ4_BD_64K], 0) >> 8) as u8;
            out.extend_from_slice(&[LZ4_FLG_JAVA, LZ4_BD_64K, hc, 0, 0, 0, 0]);
            return Ok(enc.get_ref());
        }
        enc.get_mut()
            .reserve(lz4_flex::block::get_maximum_output_size(input.len()) + 32);
        enc.write_all(input).map_err(|e| compress_err(CODEC, e))?;
        enc.try_finish().map_err(|e| compress_err(CODEC, e))?;
        Ok(enc.get_ref())
    }

    fn zstd(&mut self, level: i32, input: &[u8]) -> Result<()> {
        const CODEC: Compression = Compression::Zstd;
        let z = match &mut self.zstd {
            Some((l, z)) if *l == level => z,
            Some((l, z)) => {
                z.set_compression_level(level)
                    .map_err(|e| compress_err(CODEC, e))?;
                *l = level;
                z
            }
            slot => {
                let z = zstd::bulk::Compressor::new(level).map_err(|e| compress_err(CODEC, e))?;
                &mut slot.insert((level, z)).1
            }
        };
        self.out.clear();
        self.out
            .reserve(zstd::zstd_safe::compress_bound(input.len()));
        z.compress_to_buffer(input, &mut self.out)
            .map_err(|e| compress_err(CODEC, e))?;
        Ok(())
    }
}

/// Decompresses record sections into caller-supplied buffers, with a cap on the output size.
///
/// Keeps the gzip and zstd contexts between calls. The output buffer is the caller's: pass
/// the same `Vec` again (cleared) and steady-state decoding does not allocate.
pub struct Decompressor {
    max_decompressed_size: usize,
    gzip: Option<flate2::Decompress>,
    gzip_crc: flate2::Crc,
    snappy: snap::raw::Decoder,
    zstd: Option<zstd::stream::raw::Decoder<'static>>,
}

impl fmt::Debug for Decompressor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Decompressor")
            .field("max_decompressed_size", &self.max_decompressed_size)
            .finish_non_exhaustive()
    }
}

/// Default cap on the decompressed size of one batch: 64 MiB.
///
/// The broker's `message.max.bytes` (1 MiB by default) bounds a *compressed* batch; a cap 64
/// times larger leaves room for very compressible data while keeping a bomb harmless.
pub const DEFAULT_MAX_DECOMPRESSED_SIZE: usize = 64 * 1024 * 1024;

impl Default for Decompressor {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_DECOMPRESSED_SIZE)
    }
}

impl Decompressor {
    /// A decompressor that refuses to produce more than `max_decompressed_size` bytes per call.
    pub fn new(max_decompressed_size: usize) -> Self {
        Self {
            max_decompressed_size,
            gzip: None,
            gzip_crc: flate2::Crc::new(),
            snappy: snap::raw::Decoder::new(),
            zstd: None,
        }
    }

    /// The cap on the output of one call.
    pub fn max_decompressed_size(&self) -> usize {
        self.max_decompressed_size
    }

    /// Decompresses `input` (the records section of a batch compressed with `codec`),
    /// appending to `out`. At most `max_decompressed_size` bytes are appended, and `out` never
    /// grows by more than that: beyond it the call fails with
    /// [`CodecError::DecompressedTooLarge`] (and `out` holds a partial result).
    ///
    /// `Compression::None` copies `input` (subject to the same cap).
    pub fn decompress(
        &mut self,
        codec: Compression,
        input: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<()> {
        self.decompress_impl(codec, input, out, false)
    }

    /// As [`decompress`](Self::decompress), for the value of a magic v0 wrapper message: its LZ4
    /// frame header checksum was computed over the magic number too (KAFKA-3160), and is
    /// accepted in either form, as the Java client does for magic 0.
    pub fn decompress_legacy(
        &mut self,
        codec: Compression,
        input: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<()> {
        self.decompress_impl(codec, input, out, true)
    }

    fn decompress_impl(
        &mut self,
        codec: Compression,
        input: &[u8],
        out: &mut Vec<u8>,
        broken_lz4_checksum: bool,
    ) -> Result<()> {
        let cap = self.max_decompressed_size;
        match codec {
            Compression::None => {
                if input.len() > cap {
                    return Err(too_large(codec, cap));
                }
                out.extend_from_slice(input);
                Ok(())
            }
            Compression::Gzip => self.gunzip(input, out),
            Compression::Snappy => self.unsnappy(input, out),
            Compression::Lz4 => lz4_frame_decode(input, out, cap, broken_lz4_checksum),
            Compression::Zstd => self.unzstd(input, out),
        }
    }

    fn gunzip(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<()> {
        const CODEC: Compression = Compression::Gzip;
        let cap = self.max_decompressed_size;
        let start = out.len();
        let mut rest = input;
        let mut first = true;
        loop {
            let body = match gzip_header(rest) {
                Ok(body) => body,
                // Like GZIPInputStream, bytes after a complete member that are not another
                // member's header are ignored.
                Err(_) if !first => return Ok(()),
                Err(e) => return Err(e),
            };
            first = false;
            let inflate = self
                .gzip
                .get_or_insert_with(|| flate2::Decompress::new(false));
            inflate.reset(false);
            let member_start = out.len();
            let mut consumed = 0usize;
            loop {
                if out.len() == out.capacity() {
                    // One byte past the cap tells "exactly the cap" from "more than the cap".
                    reserve_bounded(out, 32 * 1024, start + cap + 1);
                }
                let (in_before, out_before) = (inflate.total_in(), out.len());
                let status = inflate
                    .decompress_vec(&body[consumed..], out, flate2::FlushDecompress::None)
                    .map_err(|e| decompress_err(CODEC, e))?;
                consumed += (inflate.total_in() - in_before) as usize;
                if out.len() - start > cap {
                    return Err(too_large(CODEC, cap));
                }
                match status {
                    flate2::Status::StreamEnd => break,
                    _ if inflate.total_in() == in_before
                        && out.len() == out_before
                        && out.len() < out.capacity() =>
                    {
                        return Err(CodecError::Truncated {
                            what: "gzip stream",
                            needed: 1,
                        });
                    }
                    _ => {}
                }
            }
            let trailer = body
                .get(consumed..consumed + 8)
                .ok_or(CodecError::Truncated {
                    what: "gzip trailer",
                    needed: 8,
                })?;
            self.gzip_crc.reset();
            self.gzip_crc.update(&out[member_start..]);
            let crc = u32::from_le_bytes([trailer[0], trailer[1], trailer[2], trailer[3]]);
            let isize = u32::from_le_bytes([trailer[4], trailer[5], trailer[6], trailer[7]]);
            if crc != self.gzip_crc.sum() || isize != (out.len() - member_start) as u32 {
                return Err(decompress_err(CODEC, "gzip trailer CRC32 or size mismatch"));
            }
            rest = &body[consumed + 8..];
            if rest.is_empty() {
                return Ok(());
            }
        }
    }

    fn unsnappy(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<()> {
        let cap = self.max_decompressed_size;
        let start = out.len();
        if input.len() < XERIAL_MAGIC_LEN
            || input[..XERIAL_MAGIC_LEN] != XERIAL_HEADER[..XERIAL_MAGIC_LEN]
        {
            // A bare raw snappy block (what some non-Java producers write).
            return self.snappy_block(input, out, start, cap);
        }
        // Magic, then version and minimum compatible version, which xerial's reader ignores.
        let mut rest = input.get(16..).ok_or(CodecError::Truncated {
            what: "xerial snappy header",
            needed: 16usize.saturating_sub(input.len()),
        })?;
        while !rest.is_empty() {
            let Some(len) = rest.get(..4) else {
                return Err(CodecError::Truncated {
                    what: "xerial snappy block length",
                    needed: 4 - rest.len(),
                });
            };
            let len = i32::from_be_bytes([len[0], len[1], len[2], len[3]]);
            rest = &rest[4..];
            if len < 0 || len as usize > rest.len() {
                return Err(CodecError::InvalidLength {
                    what: "xerial snappy block",
                    len: len.into(),
                    remaining: rest.len(),
                });
            }
            let (block, tail) = rest.split_at(len as usize);
            self.snappy_block(block, out, start, cap)?;
            rest = tail;
        }
        Ok(())
    }

    fn snappy_block(
        &mut self,
        block: &[u8],
        out: &mut Vec<u8>,
        start: usize,
        cap: usize,
    ) -> Result<()> {
        const CODEC: Compression = Compression::Snappy;
        let n = snap::raw::decompress_len(block).map_err(|e| decompress_err(CODEC, e))?;
        let at = out.len();
        // The claimed length is checked against the cap before anything is reserved.
        if n > cap - (at - start) {
            return Err(too_large(CODEC, cap));
        }
        reserve_bounded(out, n, start + cap);
        out.resize(at + n, 0);
        let written = self
            .snappy
            .decompress(block, &mut out[at..])
            .map_err(|e| decompress_err(CODEC, e))?;
        out.truncate(at + written);
        Ok(())
    }

    fn unzstd(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<()> {
        const CODEC: Compression = Compression::Zstd;
        let cap = self.max_decompressed_size;
        let start = out.len();
        let dec = match &mut self.zstd {
            Some(d) => {
                d.reinit().map_err(|e| decompress_err(CODEC, e))?;
                d
            }
            slot => slot
                .insert(zstd::stream::raw::Decoder::new().map_err(|e| decompress_err(CODEC, e))?),
        };
        let mut src = zstd::stream::raw::InBuffer::around(input);
        loop {
            if out.len() == out.capacity() {
                reserve_bounded(out, 32 * 1024, start + cap + 1);
            }
            let (in_before, out_before) = (src.pos(), out.len());
            let at = out.len();
            let hint = {
                let mut dst = zstd::stream::raw::OutBuffer::around_pos(out, at);
                dec.run(&mut src, &mut dst)
                    .map_err(|e| decompress_err(CODEC, e))?
            };
            if out.len() - start > cap {
                return Err(too_large(CODEC, cap));
            }
            if hint == 0 && src.pos() == input.len() {
                return Ok(());
            }
            if src.pos() == in_before && out.len() == out_before && out.len() < out.capacity() {
                return Err(CodecError::Truncated {
                    what: "zstd frame",
                    needed: hint.max(1),
                });
            }
        }
    }
}

/// Grows `out` so it has room for `additional` more bytes, but never to a capacity above
/// `limit` (the caller's hard cap): doubling, clamped.
fn reserve_bounded(out: &mut Vec<u8>, additional: usize, limit: usize) {
    let want = out.len().saturating_add(additional).min(limit);
    if want <= out.capacity() {
        return;
    }
    let target = out.capacity().saturating_mul(2).max(want).min(limit);
    out.reserve_exact(target - out.len());
}

/// Parses an RFC 1952 member header, returning the bytes after it.
fn gzip_header(input: &[u8]) -> Result<&[u8]> {
    const FHCRC: u8 = 0x02;
    const FEXTRA: u8 = 0x04;
    const FNAME: u8 = 0x08;
    const FCOMMENT: u8 = 0x10;
    let truncated = |needed| CodecError::Truncated {
        what: "gzip header",
        needed,
    };
    let h = input.get(..10).ok_or(truncated(10 - input.len().min(10)))?;
    if h[0] != 0x1f || h[1] != 0x8b || h[2] != 8 || h[3] & 0xe0 != 0 {
        return Err(decompress_err(
            Compression::Gzip,
            "not a gzip member header",
        ));
    }
    let flags = h[3];
    let mut rest = &input[10..];
    if flags & FEXTRA != 0 {
        let xlen = rest.get(..2).ok_or(truncated(2))?;
        let xlen = u16::from_le_bytes([xlen[0], xlen[1]]) as usize;
        rest = rest.get(2 + xlen..).ok_or(truncated(xlen))?;
    }
    for flag in [FNAME, FCOMMENT] {
        if flags & flag != 0 {
            let nul = rest.iter().position(|&b| b == 0).ok_or(truncated(1))?;
            rest = &rest[nul + 1..];
        }
    }
    if flags & FHCRC != 0 {
        rest = rest.get(2..).ok_or(truncated(2))?;
    }
    Ok(rest)
}

/// Decodes LZ4 frames (concatenated frames and skippable frames included), appending at most
/// `cap` bytes to `out`.
///
/// Block and content checksums, when present, are skipped rather than verified: the batch's
/// CRC32C already covers the compressed bytes, and the Java client writes neither.
fn lz4_frame_decode(input: &[u8], out: &mut Vec<u8>, cap: usize, broken_hc_ok: bool) -> Result<()> {
    const CODEC: Compression = Compression::Lz4;
    let truncated = |what, needed| CodecError::Truncated { what, needed };
    let start = out.len();
    let mut rest = input;
    while !rest.is_empty() {
        let magic = rest.get(..4).ok_or(truncated(
            "lz4 frame magic",
            4usize.saturating_sub(rest.len()),
        ))?;
        let magic = u32::from_le_bytes([magic[0], magic[1], magic[2], magic[3]]);
        if magic & 0xFFFF_FFF0 == 0x184D_2A50 {
            let len = rest.get(4..8).ok_or(truncated("lz4 skippable frame", 4))?;
            let len = u32::from_le_bytes([len[0], len[1], len[2], len[3]]) as usize;
            rest = rest
                .get(8..)
                .and_then(|r| r.get(len..))
                .ok_or(truncated("lz4 skippable frame", len))?;
            continue;
        }
        if magic != LZ4_MAGIC {
            return Err(decompress_err(
                CODEC,
                format_args!("bad frame magic {magic:#010x}"),
            ));
        }
        let desc = rest.get(4..6).ok_or(truncated("lz4 frame descriptor", 2))?;
        let (flg, bd) = (desc[0], desc[1]);
        if flg >> 6 != 1 || flg & 0x02 != 0 || bd & 0x8f != 0 {
            return Err(decompress_err(CODEC, "unsupported frame descriptor"));
        }
        let independent = flg & 0x20 != 0;
        let block_checksum = flg & 0x10 != 0;
        let has_content_size = flg & 0x08 != 0;
        let content_checksum = flg & 0x04 != 0;
        if flg & 0x01 != 0 {
            return Err(decompress_err(
                CODEC,
                "frames with a dictionary id are unsupported",
            ));
        }
        let block_max = match (bd >> 4) & 7 {
            n @ 4..=7 => 1usize << (2 * n + 8),
            _ => return Err(decompress_err(CODEC, "invalid block maximum size")),
        };
        let desc_len = 2 + if has_content_size { 8 } else { 0 };
        let hc = *rest.get(4 + desc_len).ok_or(truncated(
            "lz4 frame descriptor",
            (5 + desc_len).saturating_sub(rest.len()),
        ))?;
        let good = (xxh32(&rest[4..4 + desc_len], 0) >> 8) as u8;
        let broken = (xxh32(&rest[..4 + desc_len], 0) >> 8) as u8;
        if hc != good && !(broken_hc_ok && hc == broken) {
            return Err(decompress_err(CODEC, "frame descriptor checksum mismatch"));
        }
        let content_size = if has_content_size {
            let c = &rest[6..14];
            let size = u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
            // A declared size over the cap is refused before any work.
            if size > (cap - (out.len() - start)) as u64 {
                return Err(too_large(CODEC, cap));
            }
            Some(size as usize)
        } else {
            None
        };
        rest = &rest[4 + desc_len + 1..];
        let frame_start = out.len();
        loop {
            let b = rest
                .get(..4)
                .ok_or(truncated("lz4 block size", 4 - rest.len().min(4)))?;
            let b = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
            rest = &rest[4..];
            if b == 0 {
                break;
            }
            let size = (b & 0x7FFF_FFFF) as usize;
            if size > block_max {
                return Err(decompress_err(
                    CODEC,
                    "block larger than the frame's maximum",
                ));
            }
            let block = rest
                .get(..size)
                .ok_or(truncated("lz4 block", size - rest.len().min(size)))?;
            rest = &rest[size..];
            if block_checksum {
                rest = rest.get(4..).ok_or(truncated("lz4 block checksum", 4))?;
            }
            let cap_left = cap - (out.len() - start);
            if b & 0x8000_0000 != 0 {
                if size > cap_left {
                    return Err(too_large(CODEC, cap));
                }
                reserve_bounded(out, size, start + cap);
                out.extend_from_slice(block);
                continue;
            }
            // LZ4 expands at most ~255:1; sizing the output by that first keeps a small block
            // from costing a zeroed 4 MiB.
            let guess = size.saturating_mul(255).saturating_add(64);
            let room = block_max.min(cap_left);
            let mut try_room = room.min(guess);
            loop {
                let at = out.len();
                reserve_bounded(out, try_room, start + cap);
                out.resize(at + try_room, 0);
                let (before, tail) = out.split_at_mut(at);
                let result = if independent || at == frame_start {
                    lz4_flex::block::decompress_into(block, tail)
                } else {
                    let dict = &before[frame_start.max(at.saturating_sub(LZ4_WINDOW))..];
                    lz4_flex::block::decompress_into_with_dict(block, tail, dict)
                };
                match result {
                    Ok(n) => {
                        out.truncate(at + n);
                        break;
                    }
                    Err(lz4_flex::block::DecompressError::OutputTooSmall { .. }) => {
                        out.truncate(at);
                        if try_room < room {
                            try_room = room;
                        } else if room < block_max {
                            return Err(too_large(CODEC, cap));
                        } else {
                            return Err(decompress_err(
                                CODEC,
                                "block decompresses past its maximum size",
                            ));
                        }
                    }
                    Err(e) => {
                        out.truncate(at);
                        return Err(decompress_err(CODEC, e));
                    }
                }
            }
        }
        if content_checksum {
            rest = rest.get(4..).ok_or(truncated("lz4 content checksum", 4))?;
        }
        if let Some(size) = content_size {
            if out.len() - frame_start != size {
                return Err(decompress_err(CODEC, "content size mismatch"));
            }
        }
    }
    Ok(())
}

/// XXH32, used by the LZ4 frame descriptor checksum.
pub(crate) fn xxh32(input: &[u8], seed: u32) -> u32 {
    const P1: u32 = 2_654_435_761;
    const P2: u32 = 2_246_822_519;
    const P3: u32 = 3_266_489_917;
    const P4: u32 = 668_265_263;
    const P5: u32 = 374_761_393;
    let lane = |b: &[u8]| u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
    let round = |acc: u32, v: u32| {
        acc.wrapping_add(v.wrapping_mul(P2))
            .rotate_left(13)
            .wrapping_mul(P1)
    };
    let mut rest = input;
    let mut h = if input.len() >= 16 {
        let mut v = [
            seed.wrapping_add(P1).wrapping_add(P2),
            seed.wrapping_add(P2),
            seed,
            seed.wrapping_sub(P1),
        ];
        while rest.len() >= 16 {
            for (i, acc) in v.iter_mut().enumerate() {
                *acc = round(*acc, lane(&rest[4 * i..]));
            }
            rest = &rest[16..];
        }
        v[0].rotate_left(1)
            .wrapping_add(v[1].rotate_left(7))
            .wrapping_add(v[2].rotate_left(12))
            .wrapping_add(v[3].rotate_left(18))
    } else {
        seed.wrapping_add(P5)
    };
    h = h.wrapping_add(input.len() as u32);
    while rest.len() >= 4 {
        h = h
            .wrapping_add(lane(rest).wrapping_mul(P3))
            .rotate_left(17)
            .wrapping_mul(P4);
        rest = &rest[4..];
    }
    for &b in rest {
        h = h
            .wrapping_add(u32::from(b).wrapping_mul(P5))
            .rotate_left(11)
            .wrapping_mul(P1);
    }
    h ^= h >> 15;
    h = h.wrapping_mul(P2);
    h ^= h >> 13;
    h = h.wrapping_mul(P3);
    h ^= h >> 16;
    h
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::io::Read as _;

    const CODECS: [Compression; 4] = [
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ];

    #[test]
    fn ids_names_parse() {
        for c in Compression::ALL {
            assert_eq!(Compression::from_id(c.id()).unwrap(), c);
            assert_eq!(c.name().parse::<Compression>().unwrap(), c);
            assert_eq!(c.to_string(), c.name());
        }
        assert_eq!("LZ4".parse::<Compression>().unwrap(), Compression::Lz4);
        assert!("brotli".parse::<Compression>().is_err());
        for id in 5..=7 {
            assert_eq!(
                Compression::from_id(id),
                Err(CodecError::UnknownCompression { id })
            );
        }
    }

    #[test]
    fn xxh32_known_answers() {
        // Reference values from the xxHash test suite.
        assert_eq!(xxh32(b"", 0), 0x02CC_5D05);
        assert_eq!(xxh32(b"a", 0), 0x550D_7456);
        assert_eq!(xxh32(b"abc", 0), 0x32D1_53FF);
        assert_eq!(
            xxh32(b"Nobody inspects the spammish repetition", 0),
            0xE229_3B2F
        );
    }

    fn roundtrip(c: &mut Compressor, d: &mut Decompressor, codec: Compression, data: &[u8]) {
        let compressed = c.compress(codec, data).unwrap().to_vec();
        let mut out = Vec::new();
        d.decompress(codec, &compressed, &mut out).unwrap();
        assert_eq!(out, data, "{codec}");
    }

    #[test]
    fn roundtrip_edge_sizes_with_reuse() {
        let mut c = Compressor::new();
        let mut d = Decompressor::new(1 << 22);
        let big: Vec<u8> = (0..300_000u32)
            .map(|i| (i % 251) as u8 ^ (i >> 9) as u8)
            .collect();
        for codec in Compression::ALL {
            for data in [
                &b""[..],
                b"x",
                &big[..1000],
                &big[..65536],
                &big[..65537],
                &big[..],
            ] {
                roundtrip(&mut c, &mut d, codec, data);
            }
        }
    }

    #[test]
    fn java_compatible_framing() {
        let mut c = Compressor::new();
        let snappy = c
            .compress(Compression::Snappy, b"hello hello hello")
            .unwrap();
        assert_eq!(
            &snappy[..16],
            b"\x82SNAPPY\x00\x00\x00\x00\x01\x00\x00\x00\x01"
        );
        let lz4 = c.compress(Compression::Lz4, b"hello hello hello").unwrap();
        assert_eq!(&lz4[..6], &[0x04, 0x22, 0x4d, 0x18, 0x60, 0x40]);
        let gz = c.compress(Compression::Gzip, b"hello").unwrap();
        assert_eq!(&gz[..3], &[0x1f, 0x8b, 8]);
    }

    #[test]
    fn reads_other_encoders_output() {
        let data: Vec<u8> = b"The quick brown fox jumps over the lazy dog. "
            .iter()
            .cycle()
            .take(200_000)
            .copied()
            .collect();
        let mut d = Decompressor::new(1 << 20);
        // flate2's own gzip encoder, with a file name (FNAME) in the header.
        let mut enc = flate2::GzBuilder::new()
            .filename("x.txt")
            .write(Vec::new(), flate2::Compression::fast());
        enc.write_all(&data).unwrap();
        let gz = enc.finish().unwrap();
        let mut out = Vec::new();
        d.decompress(Compression::Gzip, &gz, &mut out).unwrap();
        assert_eq!(out, data);
        // Two concatenated gzip members.
        let mut two = gz.clone();
        two.extend_from_slice(&gz);
        out.clear();
        d.decompress(Compression::Gzip, &two, &mut out).unwrap();
        assert_eq!(out.len(), 2 * data.len());
        // Raw (unframed) snappy.
        let raw = snap::raw::Encoder::new().compress_vec(&data).unwrap();
        out.clear();
        d.decompress(Compression::Snappy, &raw, &mut out).unwrap();
        assert_eq!(out, data);
        // lz4_flex's frame encoder: linked blocks, content checksum, content size.
        let info = lz4_flex::frame::FrameInfo::new()
            .block_mode(lz4_flex::frame::BlockMode::Linked)
            .content_checksum(true)
            .block_checksums(true)
            .content_size(Some(data.len() as u64));
        let mut enc = lz4_flex::frame::FrameEncoder::with_frame_info(info, Vec::new());
        enc.write_all(&data).unwrap();
        let lz = enc.finish().unwrap();
        out.clear();
        d.decompress(Compression::Lz4, &lz, &mut out).unwrap();
        assert_eq!(out, data);
        // zstd's streaming encoder.
        let z = zstd::stream::encode_all(&data[..], 1).unwrap();
        out.clear();
        d.decompress(Compression::Zstd, &z, &mut out).unwrap();
        assert_eq!(out, data);
    }

    #[test]
    fn other_decoders_read_ours() {
        let data: Vec<u8> = (0..100_000u32).map(|i| (i % 97) as u8).collect();
        let mut c = Compressor::new();
        let gz = c.compress(Compression::Gzip, &data).unwrap().to_vec();
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&gz[..])
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out, data);
        let lz = c.compress(Compression::Lz4, &data).unwrap().to_vec();
        out.clear();
        lz4_flex::frame::FrameDecoder::new(&lz[..])
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out, data);
        let empty = c.compress(Compression::Lz4, b"").unwrap().to_vec();
        out.clear();
        lz4_flex::frame::FrameDecoder::new(&empty[..])
            .read_to_end(&mut out)
            .unwrap();
        assert!(out.is_empty());
        let z = c.compress(Compression::Zstd, &data).unwrap().to_vec();
        assert_eq!(zstd::stream::decode_all(&z[..]).unwrap(), data);
        let sn = c.compress(Compression::Snappy, &data).unwrap().to_vec();
        // Each xerial block is a raw snappy block.
        let len = u32::from_be_bytes([sn[16], sn[17], sn[18], sn[19]]) as usize;
        let first = snap::raw::Decoder::new()
            .decompress_vec(&sn[20..20 + len])
            .unwrap();
        assert_eq!(first, data[..XERIAL_BLOCK_SIZE]);
    }

    #[test]
    fn kafka_3160_broken_lz4_header_checksum_only_for_legacy() {
        let mut c = Compressor::new();
        let mut lz = c
            .compress(Compression::Lz4, b"legacy lz4 payload")
            .unwrap()
            .to_vec();
        lz[6] = (xxh32(&lz[..6], 0) >> 8) as u8;
        let mut d = Decompressor::default();
        let mut out = Vec::new();
        assert!(d.decompress(Compression::Lz4, &lz, &mut out).is_err());
        out.clear();
        d.decompress_legacy(Compression::Lz4, &lz, &mut out)
            .unwrap();
        assert_eq!(out, b"legacy lz4 payload");
    }

    #[test]
    fn decompression_bombs_are_refused_fast_without_big_allocations() {
        const CAP: usize = 1 << 20;
        let zeros = vec![0u8; 100 << 20];
        let mut c = Compressor::new();
        let mut d = Decompressor::new(CAP);
        for codec in CODECS {
            let bomb = c.compress(codec, &zeros).unwrap().to_vec();
            let t = std::time::Instant::now();
            let mut out = Vec::new();
            assert_eq!(
                d.decompress(codec, &bomb, &mut out),
                Err(CodecError::DecompressedTooLarge {
                    codec: codec.name(),
                    cap: CAP
                }),
                "{codec}"
            );
            assert!(out.capacity() <= CAP + 1, "{codec}: {}", out.capacity());
            assert!(t.elapsed() < std::time::Duration::from_secs(2), "{codec}");
        }
        // A header that lies about its size is refused before anything is reserved.
        let mut out = Vec::new();
        let mut lie = snap::raw::Encoder::new().compress_vec(b"x").unwrap();
        lie[0] = 0xff;
        lie.splice(1..1, [0xff, 0xff, 0xff, 0x0f]);
        assert!(d.decompress(Compression::Snappy, &lie, &mut out).is_err());
        assert_eq!(out.capacity(), 0);
        // Exactly the cap is fine.
        let exact = c
            .compress(Compression::Zstd, &zeros[..CAP])
            .unwrap()
            .to_vec();
        d.decompress(Compression::Zstd, &exact, &mut out).unwrap();
        assert_eq!(out.len(), CAP);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let mut d = Decompressor::new(1 << 16);
        let mut out = Vec::new();
        for codec in CODECS {
            for junk in [
                &b""[..],
                b"\x1f\x8b\x08\x00",
                b"\x82SNAPPY\x00",
                b"\x04\x22\x4d\x18\x60\x40",
                b"(\xb5/\xfd",
            ] {
                out.clear();
                let _ = d.decompress(codec, junk, &mut out);
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn roundtrip_any(data in proptest::collection::vec(any::<u8>(), 0..70_000), codec in 1u8..5) {
            let codec = Compression::from_id(codec).unwrap();
            let mut c = Compressor::new();
            let mut d = Decompressor::new(1 << 20);
            roundtrip(&mut c, &mut d, codec, &data);
        }

        #[test]
        fn truncated_or_mutated_never_panics(
            data in proptest::collection::vec(0u8..4, 0..5_000),
            codec in 1u8..5,
            cut in any::<prop::sample::Index>(),
            flip in any::<prop::sample::Index>(),
        ) {
            let codec = Compression::from_id(codec).unwrap();
            let mut c = Compressor::new();
            let mut d = Decompressor::new(1 << 16);
            let mut z = c.compress(codec, &data).unwrap().to_vec();
            let mut out = Vec::new();
            let _ = d.decompress(codec, &z[..cut.index(z.len() + 1)], &mut out);
            if !z.is_empty() {
                let i = flip.index(z.len());
                z[i] ^= 0x55;
                out.clear();
                let _ = d.decompress(codec, &z, &mut out);
                prop_assert!(out.len() <= 1 << 16);
            }
        }
    }
}
