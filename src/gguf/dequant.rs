//! Dequantisation of ggml blocks to f32, bit-exact with the `gguf` Python package's
//! `gguf.quants.dequantize` (and so with what transformers' GGUF loader feeds a model).
//!
//! Exactness rests on doing the same f32 operations in the same order: every scale is an
//! fp16 widened exactly to f32, every product and sum is one f32 operation rounded to
//! nearest (Rust never contracts `a * b + c` into a fused multiply-add), and the
//! intermediate products numpy forms (`d * sc`, `dmin * m`) are formed here too.

use half::f16;

use super::types::{GgmlType, QK_K};

fn f16_at(b: &[u8], at: usize) -> f32 {
    f16::from_bits(u16::from_le_bytes([b[at], b[at + 1]])).to_f32()
}

/// Decodes `bytes` (whole blocks of `ty`) into `out`.
///
/// Precondition: `bytes.len() == ty.row_bytes(out.len())` (callers check it once per
/// tensor); a violated precondition panics on a slice bound rather than reading past data.
pub fn dequantize_into(ty: GgmlType, bytes: &[u8], out: &mut [f32]) {
    let (bs, ts) = (ty.block_size(), ty.type_size());
    debug_assert_eq!(Some(bytes.len()), ty.row_bytes(out.len()));
    let decode: fn(&[u8], &mut [f32]) = match ty {
        GgmlType::F32 => {
            for (dst, src) in out.iter_mut().zip(bytes.chunks_exact(4)) {
                *dst = f32::from_le_bytes([src[0], src[1], src[2], src[3]]);
            }
            return;
        }
        GgmlType::F16 => {
            for (dst, src) in out.iter_mut().zip(bytes.chunks_exact(2)) {
                *dst = f16::from_bits(u16::from_le_bytes([src[0], src[1]])).to_f32();
            }
            return;
        }
        GgmlType::BF16 => {
            for (dst, src) in out.iter_mut().zip(bytes.chunks_exact(2)) {
                *dst = f32::from_bits(u32::from(u16::from_le_bytes([src[0], src[1]])) << 16);
            }
            return;
        }
        GgmlType::Q4_0 => q4_0,
        GgmlType::Q4_1 => q4_1,
        GgmlType::Q5_0 => q5_0,
        GgmlType::Q5_1 => q5_1,
        GgmlType::Q8_0 => q8_0,
        GgmlType::Q2K => q2_k,
        GgmlType::Q3K => q3_k,
        GgmlType::Q4K => q4_k,
        GgmlType::Q5K => q5_k,
        GgmlType::Q6K => q6_k,
    };
    for (block, out) in bytes.chunks_exact(ts).zip(out.chunks_exact_mut(bs)) {
        decode(block, out);
    }
}

/// Q4_0: fp16 d, 16 bytes of nibbles; element j < 16 is the low nibble of byte j, element
/// 16 + j its high nibble; value d·(q − 8).
fn q4_0(b: &[u8], out: &mut [f32]) {
    let d = f16_at(b, 0);
    for j in 0..16 {
        let q = b[2 + j];
        out[j] = d * ((q & 0x0f) as i32 - 8) as f32;
        out[16 + j] = d * ((q >> 4) as i32 - 8) as f32;
    }
}

/// Q4_1: fp16 d, fp16 m, nibbles as Q4_0; value d·q + m.
fn q4_1(b: &[u8], out: &mut [f32]) {
    let (d, m) = (f16_at(b, 0), f16_at(b, 2));
    for j in 0..16 {
        let q = b[4 + j];
        out[j] = d * (q & 0x0f) as f32 + m;
        out[16 + j] = d * (q >> 4) as f32 + m;
    }
}

/// The fifth bits of a Q5 block: bit i of the little-endian u32 belongs to element i.
fn high_bits(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Q5_0: fp16 d, u32 high bits, nibbles as Q4_0; value d·(q − 16).
fn q5_0(b: &[u8], out: &mut [f32]) {
    let d = f16_at(b, 0);
    let qh = high_bits(b, 2);
    for j in 0..16 {
        let q = b[6 + j];
        let lo = (q & 0x0f) as u32 | (((qh >> j) & 1) << 4);
        let hi = (q >> 4) as u32 | (((qh >> (j + 16)) & 1) << 4);
        out[j] = d * (lo as i32 - 16) as f32;
        out[16 + j] = d * (hi as i32 - 16) as f32;
    }
}

/// Q5_1: fp16 d, fp16 m, u32 high bits, nibbles; value d·q + m.
fn q5_1(b: &[u8], out: &mut [f32]) {
    let (d, m) = (f16_at(b, 0), f16_at(b, 2));
    let qh = high_bits(b, 4);
    for j in 0..16 {
        let q = b[8 + j];
        let lo = (q & 0x0f) as u32 | (((qh >> j) & 1) << 4);
        let hi = (q >> 4) as u32 | (((qh >> (j + 16)) & 1) << 4);
        out[j] = d * lo as f32 + m;
        out[16 + j] = d * hi as f32 + m;
    }
}

/// Q8_0: fp16 d, 32 signed bytes; value q·d.
fn q8_0(b: &[u8], out: &mut [f32]) {
    let d = f16_at(b, 0);
    for (j, o) in out.iter_mut().enumerate() {
        *o = (b[2 + j] as i8) as f32 * d;
    }
}

/// Q2_K: 16 bytes of (4-bit min | 4-bit scale) per 16 elements, 64 bytes of 2-bit values,
/// fp16 d, fp16 dmin. Element e = 128·h + 32·s + j takes bits 2s of byte 32·h + j; its
/// value is (d·scale)·q − (dmin·min) for sub-block e / 16.
fn q2_k(b: &[u8], out: &mut [f32]) {
    let (scales, qs) = (&b[0..16], &b[16..80]);
    let (d, dmin) = (f16_at(b, 80), f16_at(b, 82));
    for (e, o) in out.iter_mut().enumerate().take(QK_K) {
        let (h, s, j) = (e / 128, (e / 32) % 4, e % 32);
        let q = (qs[32 * h + j] >> (2 * s)) & 3;
        let sc = scales[e / 16];
        let dl = d * (sc & 0x0f) as f32;
        let ml = dmin * (sc >> 4) as f32;
        *o = dl * q as f32 - ml;
    }
}

/// Q3_K: 32 bytes of high-bit masks, 64 bytes of 2-bit values, 12 bytes of 6-bit signed
/// scales, fp16 d. Element e = 128·h + 32·s + j takes bits 2s of byte 32·h + j and bit
/// e / 32 of mask byte j; q = low − 4 when that bit is clear. Value (d·scale)·q.
fn q3_k(b: &[u8], out: &mut [f32]) {
    let (hmask, qs, sc, d) = (&b[0..32], &b[32..96], &b[96..108], f16_at(b, 108));
    let mut scales = [0f32; 16];
    for (k, s) in scales.iter_mut().enumerate() {
        let low = if k < 8 { sc[k] & 0x0f } else { sc[k - 8] >> 4 };
        let high = (sc[8 + k % 4] >> (2 * (k / 4))) & 3;
        *s = (((low | (high << 4)) as i8) - 32) as f32;
    }
    for (e, o) in out.iter_mut().enumerate().take(QK_K) {
        let (h, s, j) = (e / 128, (e / 32) % 4, e % 32);
        let low = ((qs[32 * h + j] >> (2 * s)) & 3) as i8;
        let bit = (hmask[j] >> (e / 32)) & 1;
        let q = low - (((bit ^ 1) << 2) as i8);
        *o = (d * scales[e / 16]) * q as f32;
    }
}

/// The 6-bit scales and mins of Q4_K/Q5_K's eight sub-blocks, packed into 12 bytes.
fn scale_min_k4(sc: &[u8]) -> ([u8; 8], [u8; 8]) {
    let (mut scale, mut min) = ([0u8; 8], [0u8; 8]);
    for i in 0..4 {
        scale[i] = sc[i] & 0x3f;
        min[i] = sc[4 + i] & 0x3f;
        scale[4 + i] = (sc[8 + i] & 0x0f) | ((sc[i] >> 2) & 0x30);
        min[4 + i] = (sc[8 + i] >> 4) | ((sc[4 + i] >> 2) & 0x30);
    }
    (scale, min)
}

/// Q4_K: fp16 d, fp16 dmin, 12 scale bytes, 128 bytes of nibbles. Sub-block g = 2c + n
/// (32 elements) takes nibble n of bytes 32c..32c+32; value (d·scale)·q − (dmin·min).
fn q4_k(b: &[u8], out: &mut [f32]) {
    let (d, dmin) = (f16_at(b, 0), f16_at(b, 2));
    let (scale, min) = scale_min_k4(&b[4..16]);
    let qs = &b[16..144];
    for (g, out) in out.chunks_exact_mut(32).enumerate() {
        let (dl, ml) = (d * scale[g] as f32, dmin * min[g] as f32);
        let (c, shift) = (g / 2, 4 * (g % 2));
        for (j, o) in out.iter_mut().enumerate() {
            let q = (qs[32 * c + j] >> shift) & 0x0f;
            *o = dl * q as f32 - ml;
        }
    }
}

/// Q5_K: as Q4_K plus 32 bytes of fifth bits (bit g of byte j for element j of
/// sub-block g) before the nibbles.
fn q5_k(b: &[u8], out: &mut [f32]) {
    let (d, dmin) = (f16_at(b, 0), f16_at(b, 2));
    let (scale, min) = scale_min_k4(&b[4..16]);
    let (qh, qs) = (&b[16..48], &b[48..176]);
    for (g, out) in out.chunks_exact_mut(32).enumerate() {
        let (dl, ml) = (d * scale[g] as f32, dmin * min[g] as f32);
        let (c, shift) = (g / 2, 4 * (g % 2));
        for (j, o) in out.iter_mut().enumerate() {
            let q = ((qs[32 * c + j] >> shift) & 0x0f) | (((qh[j] >> g) & 1) << 4);
            *o = dl * q as f32 - ml;
        }
    }
}

/// Q6_K: 128 bytes of low nibbles, 64 bytes of 2-bit highs, 16 signed scales, fp16 d.
/// Element e = 128·h + 32·t + j (t < 4): low nibble (t mod 2) of byte 64·h + 32·(t / 2)
/// + j, high bits 2t of byte 32·h + j; value (d·scale)·(q − 32) per 16 elements.
fn q6_k(b: &[u8], out: &mut [f32]) {
    let (ql, qh, sc, d) = (&b[0..128], &b[128..192], &b[192..208], f16_at(b, 208));
    for (e, o) in out.iter_mut().enumerate().take(QK_K) {
        let (h, t, j) = (e / 128, (e / 32) % 4, e % 32);
        let low = (ql[64 * h + 32 * (t % 2) + j] >> (4 * (t / 2))) & 0x0f;
        let high = (qh[32 * h + j] >> (2 * t)) & 3;
        let q = ((low | (high << 4)) as i8) - 32;
        *o = (d * (sc[e / 16] as i8) as f32) * q as f32;
    }
}
