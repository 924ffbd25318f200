//! CRC-32C (Castagnoli), the checksum of every record batch: computed once per sealed batch
//! and checked once per fetched one.
//!
//! This is the crate's one module with `unsafe` code (`DESIGN.md`, "unsafe"). The `crc32c`
//! crate runs three interleaved streams of the SSE 4.2 `crc32` instruction: one instruction a
//! cycle, 8 bytes a cycle. On x86-64 with AVX2 and VPCLMULQDQ, batches of
//! [`HYBRID_MIN`] bytes or more take a hybrid instead: carry-less multiplication folds the
//! first part of the input in 256-bit registers while three `crc32` streams run over the rest
//! in the same loop. The two use different execution units, so they overlap: on the team's
//! AMD EPYC a 121 KB batch takes 3.1 µs instead of 5.0 µs. Everywhere else, and below the
//! threshold, the `crc32c` crate does the work, and every test checks the two agree.
//!
//! What is `unsafe`, and why it is sound:
//! * calling the `#[target_feature]` function, only after `is_x86_feature_detected!` has
//!   confirmed every feature it enables;
//! * one 32-byte unaligned load (`_mm256_loadu_si256`) from a `&[u8; 32]`.
//!
//! Everything else is safe Rust: the input is split with slice methods and read through
//! fixed-size array references, so no index can leave it.
#![allow(unsafe_code)]

/// Inputs at least this long take the hybrid where the CPU has it. Below, the fixed cost of
/// combining the four partial checksums (a few dozen multiplications) is not paid back;
/// measured crossover about 3-4 KiB.
pub const HYBRID_MIN: usize = 4096;

/// The CRC-32C of `data` (initial value and final XOR `0xFFFF_FFFF`, reflected), the
/// checksum of magic v2 record batches.
#[inline]
pub fn crc32c(data: &[u8]) -> u32 {
    #[cfg(target_arch = "x86_64")]
    if data.len() >= HYBRID_MIN && x86::available() {
        // SAFETY: `available` confirmed every feature `hybrid` is compiled with.
        return unsafe { x86::hybrid(data) };
    }
    crc32c::crc32c(data)
}

/// The reference implementation (the `crc32c` crate), for tests and the fuzzer to compare
/// against.
#[doc(hidden)]
pub fn crc32c_reference(data: &[u8]) -> u32 {
    crc32c::crc32c(data)
}

/// The hybrid, whatever the length (at least two of its 272-byte steps), when the CPU has it:
/// for tests, which must reach it with short inputs too. `None` without the features.
#[doc(hidden)]
pub fn crc32c_hybrid(data: &[u8]) -> Option<u32> {
    #[cfg(target_arch = "x86_64")]
    if data.len() >= x86::HYBRID_FLOOR && x86::available() {
        // SAFETY: as in `crc32c`.
        return Some(unsafe { x86::hybrid(data) });
    }
    let _ = data;
    None
}

/// Polynomial arithmetic mod P, the CRC-32C polynomial, in normal bit order (bit `m` is the
/// coefficient of x^m), evaluated at compile time for the folding and shifting constants.
mod gf2 {
    /// P = x^32 + x^28 + x^27 + ... + 1 (0x1EDC6F41 with the x^32 term).
    const P: u64 = 0x1_1EDC_6F41;

    /// a * b mod P, for a and b of degree below 32.
    pub const fn mul(a: u64, b: u64) -> u64 {
        let mut r = 0;
        let mut a = a;
        let mut i = 0;
        while i < 32 {
            if b & (1 << i) != 0 {
                r ^= a;
            }
            a <<= 1;
            if a & (1 << 32) != 0 {
                a ^= P;
            }
            i += 1;
        }
        r
    }

    /// x^e mod P.
    pub const fn x_pow(mut e: u64) -> u64 {
        let mut base = 2; // x
        let mut r = 1;
        while e > 0 {
            if e & 1 != 0 {
                r = mul(r, base);
            }
            base = mul(base, base);
            e >>= 1;
        }
        r
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::{
        __m128i, __m256i, _mm256_castsi256_si128, _mm256_clmulepi64_epi128,
        _mm256_extracti128_si256, _mm256_loadu_si256, _mm256_set_epi64x, _mm256_xor_si256,
        _mm_clmulepi64_si128, _mm_crc32_u64, _mm_cvtsi128_si64, _mm_cvtsi32_si128,
        _mm_extract_epi64, _mm_set_epi64x, _mm_xor_si128,
    };

    use super::gf2;

    /// Bytes each `crc32` stream takes per loop iteration, beside the 128 the vector part
    /// folds. Measured best of 32-80 on the team's EPYC (48: 3.1 µs per 121 KB; 32: 3.2;
    /// 80: 3.35).
    const STREAM: usize = 48;
    /// Bytes one iteration consumes.
    const STEP: usize = 128 + 3 * STREAM;
    /// The shortest input `hybrid` accepts: two iterations.
    pub const HYBRID_FLOOR: usize = 2 * STEP;

    pub fn available() -> bool {
        std::arch::is_x86_feature_detected!("avx2")
            && std::arch::is_x86_feature_detected!("vpclmulqdq")
            && std::arch::is_x86_feature_detected!("pclmulqdq")
            && std::arch::is_x86_feature_detected!("sse4.2")
    }

    /// The multipliers that carry a 128-bit lane `d` bits forward: x^(d+63) for its low
    /// (earlier) 64 bits and x^(d-1) for its high 64 bits, bit-reflected to match the data.
    /// (A lane's first byte holds the highest powers; the one-bit offset is the carry-less
    /// product of two reflected 64-bit values landing one bit low.)
    const fn fold_constants(d: u64) -> (i64, i64) {
        (
            gf2::x_pow(d + 63).reverse_bits() as i64,
            gf2::x_pow(d - 1).reverse_bits() as i64,
        )
    }
    const FOLD_1024: (i64, i64) = fold_constants(1024);
    const FOLD_256: (i64, i64) = fold_constants(256);
    const FOLD_128: (i64, i64) = fold_constants(128);

    /// `SHIFT[i]` = x^(8 * 2^i - 33) mod P, reflected: a carry-less product with it followed
    /// by `crc32` of the product (which multiplies by x^33) advances a CRC over 2^i zero bytes.
    const SHIFT: [u32; 64] = {
        let mut t = [0u32; 64];
        let mut i = 3; // 8 * 2^i >= 33 from i = 3 on: shifts are whole multiples of 8 bytes
        while i < 64 - 3 {
            t[i] = (gf2::x_pow((8u64 << i) - 33) as u32).reverse_bits();
            i += 1;
        }
        t
    };

    /// `crc` (a raw remainder: no final XOR) advanced over `len` zero bytes, a multiple of 8.
    #[target_feature(enable = "pclmulqdq,sse4.2")]
    fn shift(mut crc: u32, len: usize) -> u32 {
        debug_assert_eq!(len % 8, 0);
        let mut bits = len >> 3;
        let mut i = 3;
        while bits != 0 {
            if bits & 1 != 0 {
                let product = _mm_clmulepi64_si128(
                    _mm_cvtsi32_si128(crc as i32),
                    _mm_cvtsi32_si128(SHIFT[i] as i32),
                    0x00,
                );
                crc = _mm_crc32_u64(0, _mm_cvtsi128_si64(product) as u64) as u32;
            }
            bits >>= 1;
            i += 1;
        }
        crc
    }

    #[inline]
    #[target_feature(enable = "avx2")]
    fn load(bytes: &[u8; 32]) -> __m256i {
        // SAFETY: reads exactly the 32 bytes `bytes` refers to; the load is unaligned (loadu),
        // and this function is compiled with AVX2.
        unsafe { _mm256_loadu_si256(bytes.as_ptr().cast()) }
    }

    #[inline]
    #[target_feature(enable = "avx2,vpclmulqdq")]
    fn fold(acc: __m256i, k: __m256i) -> __m256i {
        _mm256_xor_si256(
            _mm256_clmulepi64_epi128(acc, k, 0x00),
            _mm256_clmulepi64_epi128(acc, k, 0x11),
        )
    }

    #[inline]
    #[target_feature(enable = "pclmulqdq")]
    fn fold128(acc: __m128i, k: __m128i) -> __m128i {
        _mm_xor_si128(
            _mm_clmulepi64_si128(acc, k, 0x00),
            _mm_clmulepi64_si128(acc, k, 0x11),
        )
    }

    #[inline]
    #[target_feature(enable = "sse4.2")]
    fn stream(crc: u64, bytes: &[u8; STREAM]) -> u64 {
        let (words, _) = bytes.as_chunks::<8>();
        let mut crc = crc;
        for w in words {
            crc = _mm_crc32_u64(crc, u64::from_le_bytes(*w));
        }
        crc
    }

    /// The CRC-32C of `data` (`data.len() >= HYBRID_FLOOR`).
    ///
    /// With n iterations, the input is split into a vector part (128n bytes), three stream
    /// parts (48n bytes each), and a tail under `STEP` bytes. Iteration i folds the vector
    /// part's i-th 128 bytes into four 256-bit accumulators (eight 128-bit lanes, each carried
    /// 1024 bits forward) and feeds the i-th 48 bytes of each stream part to its `crc32`
    /// stream. The accumulators are then folded into one 128-bit value, which `crc32` turns
    /// into the vector part's remainder; each remainder is shifted over the parts after it and
    /// the four are XORed; the tail is appended with the `crc32c` crate.
    #[target_feature(enable = "avx2,vpclmulqdq,pclmulqdq,sse4.2")]
    pub fn hybrid(data: &[u8]) -> u32 {
        debug_assert!(data.len() >= HYBRID_FLOOR);
        let n = data.len() / STEP;
        let (vector, rest) = data.split_at(n * 128);
        let (s0, rest) = rest.split_at(n * STREAM);
        let (s1, rest) = rest.split_at(n * STREAM);
        let (s2, tail) = rest.split_at(n * STREAM);
        let (vector, _) = vector.as_chunks::<128>();
        let (s0, _) = s0.as_chunks::<STREAM>();
        let (s1, _) = s1.as_chunks::<STREAM>();
        let (s2, _) = s2.as_chunks::<STREAM>();

        let k1024 = _mm256_set_epi64x(FOLD_1024.1, FOLD_1024.0, FOLD_1024.1, FOLD_1024.0);
        let k256 = _mm256_set_epi64x(FOLD_256.1, FOLD_256.0, FOLD_256.1, FOLD_256.0);
        let k128 = _mm_set_epi64x(FOLD_128.1, FOLD_128.0);

        let lanes = |block: &[u8; 128]| {
            let (q, _) = block.as_chunks::<32>();
            [load(&q[0]), load(&q[1]), load(&q[2]), load(&q[3])]
        };
        // The initial value 0xFFFF_FFFF is the first four bytes inverted.
        let [mut a0, mut a1, mut a2, mut a3] = lanes(&vector[0]);
        a0 = _mm256_xor_si256(a0, _mm256_set_epi64x(0, 0, 0, 0xFFFF_FFFF));
        let (mut c0, mut c1, mut c2) = (stream(0, &s0[0]), stream(0, &s1[0]), stream(0, &s2[0]));
        for (((block, w0), w1), w2) in vector[1..].iter().zip(&s0[1..]).zip(&s1[1..]).zip(&s2[1..])
        {
            let [b0, b1, b2, b3] = lanes(block);
            a0 = _mm256_xor_si256(fold(a0, k1024), b0);
            a1 = _mm256_xor_si256(fold(a1, k1024), b1);
            a2 = _mm256_xor_si256(fold(a2, k1024), b2);
            a3 = _mm256_xor_si256(fold(a3, k1024), b3);
            c0 = stream(c0, w0);
            c1 = stream(c1, w1);
            c2 = stream(c2, w2);
        }

        // Four accumulators into one (each lane 256 bits forward), its two lanes into one.
        let mut a = _mm256_xor_si256(fold(a0, k256), a1);
        a = _mm256_xor_si256(fold(a, k256), a2);
        a = _mm256_xor_si256(fold(a, k256), a3);
        let x = _mm_xor_si128(
            fold128(_mm256_castsi256_si128(a), k128),
            _mm256_extracti128_si256(a, 1),
        );
        // The 128 bits left stand for the vector part: their remainder is its remainder.
        let mut v = _mm_crc32_u64(0, _mm_cvtsi128_si64(x) as u64);
        v = _mm_crc32_u64(v, _mm_extract_epi64(x, 1) as u64);

        let part = n * STREAM;
        let raw = shift(v as u32, 3 * part)
            ^ shift(c0 as u32, 2 * part)
            ^ shift(c1 as u32, part)
            ^ c2 as u32;
        // `crc32c_append` continues from a finished CRC: undo the final XOR it will redo.
        crc32c::crc32c_append(!raw, tail)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Deterministic bytes (xorshift), so failures reproduce.
    fn bytes(len: usize, seed: u64) -> Vec<u8> {
        let mut s = seed | 1;
        (0..len)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                s as u8
            })
            .collect()
    }

    #[test]
    fn known_answers() {
        assert_eq!(crc32c(b""), 0);
        assert_eq!(crc32c(b"123456789"), 0xE306_9283);
        // 32 zero bytes and 32 0xFF bytes (RFC 3720, B.4).
        assert_eq!(crc32c(&[0; 32]), 0x8A91_36AA);
        assert_eq!(crc32c(&[0xFF; 32]), 0x62A8_AB43);
        // The same through the hybrid, padded past its floor with a known prefix.
        let long = vec![0u8; 8192];
        assert_eq!(crc32c(&long), crc32c_reference(&long));
    }

    #[test]
    fn hybrid_agrees_with_the_reference_at_every_length_around_its_boundaries() {
        let data = bytes(70_000, 7);
        let mut lengths: Vec<usize> = (0..2 * 272 + 300).collect();
        lengths.extend((1..40).flat_map(|k| [k * 272 - 1, k * 272, k * 272 + 1, k * 272 + 271]));
        lengths.extend([HYBRID_MIN - 1, HYBRID_MIN, 16_384, 65_536, 69_993]);
        for len in lengths {
            for offset in [0, 1, 5] {
                let d = &data[offset..offset + len];
                let want = crc32c_reference(d);
                assert_eq!(crc32c(d), want, "len {len} offset {offset}");
                if let Some(got) = crc32c_hybrid(d) {
                    assert_eq!(got, want, "hybrid, len {len} offset {offset}");
                }
            }
        }
    }

    #[test]
    #[cfg(target_arch = "x86_64")]
    fn the_hybrid_is_taken_where_the_cpu_has_it() {
        let has = ["avx2", "vpclmulqdq", "pclmulqdq", "sse4.2"]
            .iter()
            .all(|f| match *f {
                "avx2" => std::arch::is_x86_feature_detected!("avx2"),
                "vpclmulqdq" => std::arch::is_x86_feature_detected!("vpclmulqdq"),
                "pclmulqdq" => std::arch::is_x86_feature_detected!("pclmulqdq"),
                _ => std::arch::is_x86_feature_detected!("sse4.2"),
            });
        // So that the equality tests above compared the hybrid wherever it exists.
        assert_eq!(crc32c_hybrid(&[0; 2 * 272]).is_some(), has);
        assert_eq!(crc32c_hybrid(&[0; 2 * 272 - 1]), None);
    }

    #[test]
    fn shift_constants_follow_from_the_polynomial() {
        // x^(8 * 2^i - 33) computed two ways: by exponentiation and by squaring the previous.
        for i in 4..40u32 {
            let prev = gf2::x_pow((8u64 << (i - 1)) - 33);
            let by_square = gf2::mul(gf2::mul(prev, prev), gf2::x_pow(33));
            assert_eq!(by_square, gf2::x_pow((8u64 << i) - 33), "i = {i}");
        }
    }

    proptest! {
        #[test]
        fn any_input_agrees_with_the_reference(
            data in proptest::collection::vec(any::<u8>(), 0..20_000),
            offset in 0usize..16,
        ) {
            let d = &data[offset.min(data.len())..];
            prop_assert_eq!(crc32c(d), crc32c_reference(d));
            if let Some(got) = crc32c_hybrid(d) {
                prop_assert_eq!(got, crc32c_reference(d));
            }
        }
    }
}
