//! Deterministic random tensor values, generated block by block.
//!
//! A tensor is split into blocks of `block_elems` elements; block `b` of tensor `t` is drawn
//! from its own generator seeded with `splitmix64` of `(seed, t, b)`, so every block can be
//! filled independently (in any order, on any thread) and the bytes depend only on the seed,
//! the tensor index, the block size and the dtype.
//!
//! The generator is [`LANES`] interleaved xorshift128+ streams (element `i` of a block comes
//! from stream `i % LANES`), written as array code so it vectorises; on x86-64 the block
//! filler is compiled a second time for AVX2 and picked at run time. Both versions do the
//! same integer operations and the same separate f32 multiply and add (Rust never fuses them
//! into an FMA), so their bytes are identical (`ANEMLLC_SYNTH_GENERIC=1` forces the
//! portable version, for the test that says so). Each element takes one 64-bit output whose
//! four 16-bit lanes are summed (Irwin–Hall with n = 4: bell-shaped, bounded at ±3.46 σ),
//! centred and scaled to the requested standard deviation.

use half::slice::HalfFloatSliceExt;

use super::SynthDType;
use super::preset::Init;

/// splitmix64's output function applied to `x + golden` (one step of the generator).
#[inline]
pub(crate) fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The seed of block `block` of tensor `tensor`.
pub(crate) fn block_seed(seed: u64, tensor: u64, block: u64) -> u64 {
    splitmix64(splitmix64(splitmix64(seed) ^ tensor) ^ block)
}

/// Interleaved generator streams.
const LANES: usize = 8;

/// Sum of four uniform 16-bit lanes, minus its mean 2 × 65535 (an exact integer in f32).
const LANES_MEAN: i32 = 2 * 65535;
/// Standard deviation of that sum: sqrt(4 × (65536² − 1) / 12) = 37837.227….
const LANES_STD: f32 = 37837.23;

/// [`LANES`] xorshift128+ generators (Vigna), stepped together.
struct Streams {
    s0: [u64; LANES],
    s1: [u64; LANES],
}

impl Streams {
    fn new(seed: u64) -> Self {
        let mut s = Streams { s0: [0; LANES], s1: [0; LANES] };
        for j in 0..LANES {
            s.s0[j] = splitmix64(seed.wrapping_add(2 * j as u64));
            // xorshift128+ must not start from the all-zero state.
            s.s1[j] = splitmix64(seed.wrapping_add(2 * j as u64 + 1)) | 1;
        }
        s
    }

    /// One output per stream, turned into `mean + scale × (centred lane sum)`.
    #[inline(always)]
    fn step(&mut self, mean: f32, scale: f32) -> [f32; LANES] {
        let mut out = [0f32; LANES];
        for ((o, s0), s1) in out.iter_mut().zip(&mut self.s0).zip(&mut self.s1) {
            let mut a = *s0;
            let b = *s1;
            *s0 = b;
            a ^= a << 23;
            a ^= a >> 17;
            a ^= b ^ (b >> 26);
            *s1 = a;
            let r = a.wrapping_add(b);
            let (lo, hi) = (r as u32, (r >> 32) as u32);
            let sum = (lo & 0xFFFF) + (lo >> 16) + (hi & 0xFFFF) + (hi >> 16);
            *o = mean + (sum as i32 - LANES_MEAN) as f32 * scale;
        }
        out
    }

    /// Fills `values` with the next `values.len()` draws (a partial last step discards the
    /// unused lanes).
    #[inline(always)]
    fn fill(&mut self, values: &mut [f32], mean: f32, scale: f32) {
        let mut chunks = values.chunks_exact_mut(LANES);
        for c in &mut chunks {
            c.copy_from_slice(&self.step(mean, scale));
        }
        let rest = chunks.into_remainder();
        if !rest.is_empty() {
            let n = rest.len();
            rest.copy_from_slice(&self.step(mean, scale)[..n]);
        }
    }
}

/// Values generated at once before encoding (a multiple of [`LANES`]).
const BATCH: usize = 256;

/// Fills `out` (exactly `n × dtype.size()` bytes, little-endian) with the `n` values of one
/// block seeded by `seed`.
pub(crate) fn fill_block(out: &mut [u8], dtype: SynthDType, init: Init, seed: u64) {
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") && !force_generic() {
        // SAFETY: the CPU supports AVX2, checked just above.
        return unsafe { fill_block_avx2(out, dtype, init, seed) };
    }
    fill_block_generic(out, dtype, init, seed)
}

/// `ANEMLLC_SYNTH_GENERIC=1` disables the AVX2 path (for the test that both agree).
#[cfg(target_arch = "x86_64")]
fn force_generic() -> bool {
    static FORCE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *FORCE.get_or_init(|| std::env::var_os("ANEMLLC_SYNTH_GENERIC").is_some_and(|v| v == "1"))
}

/// [`fill_block_generic`] compiled with AVX2 (4 × u64 per vector instead of 2).
///
/// # Safety
/// The CPU must support AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn fill_block_avx2(out: &mut [u8], dtype: SynthDType, init: Init, seed: u64) {
    fill_block_generic(out, dtype, init, seed)
}

#[inline(always)]
fn fill_block_generic(out: &mut [u8], dtype: SynthDType, init: Init, seed: u64) {
    let mut streams = Streams::new(seed);
    let (mean, scale) = (init.mean, init.std / LANES_STD);
    let size = dtype.size();
    debug_assert!(out.len().is_multiple_of(size));
    let mut values = [0f32; BATCH];
    let mut halves = [half::f16::ZERO; BATCH];
    for chunk in out.chunks_mut(BATCH * size) {
        let values = &mut values[..chunk.len() / size];
        streams.fill(values, mean, scale);
        match dtype {
            SynthDType::BF16 => {
                for (c, v) in chunk.chunks_exact_mut(2).zip(values.iter()) {
                    c.copy_from_slice(&bf16_bits(*v).to_le_bytes());
                }
            }
            SynthDType::FP16 => {
                let halves = &mut halves[..values.len()];
                halves.convert_from_f32_slice(values);
                for (c, h) in chunk.chunks_exact_mut(2).zip(halves.iter()) {
                    c.copy_from_slice(&h.to_bits().to_le_bytes());
                }
            }
            SynthDType::FP32 => {
                for (c, v) in chunk.chunks_exact_mut(4).zip(values.iter()) {
                    c.copy_from_slice(&v.to_le_bytes());
                }
            }
        }
    }
}

/// `bf16::from_f32(v).to_bits()` without branches: round to nearest, ties to even. Only for
/// finite values far from the bf16 maximum (ours are bounded by a few units).
#[inline(always)]
fn bf16_bits(v: f32) -> u16 {
    let x = v.to_bits();
    ((x + 0x7FFF + ((x >> 16) & 1)) >> 16) as u16
}
