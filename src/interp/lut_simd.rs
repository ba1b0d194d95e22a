//! AVX-512 decoding of packed LUT indices (1 … 6 bits) into table values, 16 at a time:
//! the `2·bits` bytes holding 16 indices are broadcast to every 128-bit lane, spread to one
//! index per 32-bit lane by a byte shuffle, shifted and masked, and looked up in the table
//! held in registers (`vpermt2ps` over 32 entries; a blend on bit 5 for 64). The values are
//! copies of table entries, so the result equals the scalar decoder's exactly.
//!
//! [`lut_dots`] multiplies the decoded values by the activations without storing them: one
//! 16-lane register per row, multiplied then added (no fused multiply-add), folded by
//! [`fold`] — exactly the operations of [`super::dot::dots`] on the decoded row.

use super::dot::{LANES, fold};

/// Where one LUT row's indices start (`start`, a byte offset; the row begins on a byte) and
/// its group's table (padded to 256 entries).
#[derive(Clone, Copy)]
pub struct LutRow<'a> {
    pub start: usize,
    pub table: &'a [f32; 256],
}

/// `dots(x, [row_0 … row_{R−1}])` with the rows decoded from the packed stream `bytes` of
/// `bits`-bit indices, or `None` when this path does not apply (no AVX-512, more than 6
/// bits, a length that is not a multiple of 16, or a row ending closer than 16 bytes to
/// the end of `bytes`); the caller decodes the rows then.
pub fn lut_dots<const R: usize>(x: &[f32], bytes: &[u8], bits: u32, rows: &[LutRow<'_>; R]) -> Option<[f32; R]> {
    let k = x.len();
    let step = 2 * bits as usize;
    let fits = |r: &LutRow<'_>| (k / LANES).checked_sub(1).is_none_or(|last| r.start + last * step + 16 <= bytes.len());
    #[cfg(target_arch = "x86_64")]
    if (1..=6).contains(&bits)
        && k.is_multiple_of(LANES)
        && rows.iter().all(fits)
        && std::is_x86_feature_detected!("avx512f")
        && std::is_x86_feature_detected!("avx512bw")
    {
        // SAFETY: the CPU supports AVX-512 F and BW; bits and lengths checked just above.
        return Some(unsafe { lut_dots_avx512(x, bytes, bits, rows) });
    }
    let _ = (x, bytes, rows, fits);
    None
}

/// See [`lut_dots`].
///
/// # Safety
/// The CPU must support AVX-512 F and BW; `bits` in 1 ..= 6; `x.len()` a multiple of 16;
/// for every row, `start + (x.len() / 16 − 1) · 2·bits + 16 ≤ bytes.len()`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw")]
unsafe fn lut_dots_avx512<const R: usize>(x: &[f32], bytes: &[u8], bits: u32, rows: &[LutRow<'_>; R]) -> [f32; R] {
    use std::arch::x86_64::*;
    let step = 2 * bits as usize;
    let (control, shifts) = spread_constants(bits);
    // SAFETY (loads and stores below): the constant arrays and tables are ≥ 64 bytes; byte
    // loads stay within `bytes` by the caller's contract; x loads read `16·g .. 16·g + 16 ≤
    // x.len()`.
    let control = unsafe { _mm512_loadu_si512(control.as_ptr().cast()) };
    let shifts = unsafe { _mm512_loadu_si512(shifts.as_ptr().cast()) };
    let mask = _mm512_set1_epi32((1 << bits) - 1);
    let bit5 = _mm512_set1_epi32(32);
    let tables: [[__m512; 4]; R] = std::array::from_fn(|r| {
        std::array::from_fn(|q| unsafe { _mm512_loadu_ps(rows[r].table.as_ptr().add(16 * q)) })
    });
    let mut acc = [_mm512_setzero_ps(); R];
    for g in 0..x.len() / LANES {
        let xv = unsafe { _mm512_loadu_ps(x.as_ptr().add(LANES * g)) };
        for r in 0..R {
            let raw = unsafe { _mm_loadu_si128(bytes.as_ptr().add(rows[r].start + g * step).cast()) };
            let spread = _mm512_shuffle_epi8(_mm512_broadcast_i32x4(raw), control);
            let idx = _mm512_and_si512(_mm512_srlv_epi32(spread, shifts), mask);
            let [t0, t1, t2, t3] = tables[r];
            let low = _mm512_permutex2var_ps(t0, idx, t1);
            let v = if bits == 6 {
                let high = _mm512_permutex2var_ps(t2, idx, t3);
                _mm512_mask_blend_ps(_mm512_test_epi32_mask(idx, bit5), low, high)
            } else {
                low
            };
            acc[r] = _mm512_add_ps(acc[r], _mm512_mul_ps(xv, v));
        }
    }
    std::array::from_fn(|r| {
        let mut lanes = [0.0f32; LANES];
        unsafe { _mm512_storeu_ps(lanes.as_mut_ptr(), acc[r]) };
        // The empty tail of `dots` adds +0.0 (which turns a −0.0 sum into +0.0).
        fold(&lanes) + 0.0
    })
}

/// The byte shuffle that puts the two bytes holding index `i` into 32-bit lane `i`, and
/// the right shift that aligns it.
fn spread_constants(bits: u32) -> ([u8; 64], [u32; 16]) {
    let mut control = [0x80u8; 64];
    let mut shifts = [0u32; 16];
    for i in 0..16 {
        let bit = i * bits as usize;
        control[4 * i] = (bit / 8) as u8;
        control[4 * i + 1] = (bit / 8 + 1) as u8;
        shifts[i] = (bit % 8) as u32;
    }
    (control, shifts)
}

/// Decodes as many leading groups of 16 elements of `out` as it can from the packed
/// stream starting at byte `start` (the first element byte-aligned) and returns how many
/// elements it wrote (a multiple of 16; 0 without AVX-512 or for other widths). Each group
/// reads 16 bytes, so groups closer than that to the end of `bytes` are left to the caller.
pub fn lookup_rows(bytes: &[u8], bits: u32, start: usize, table: &[f32; 256], out: &mut [f32]) -> usize {
    #[cfg(target_arch = "x86_64")]
    if (1..=6).contains(&bits) && std::is_x86_feature_detected!("avx512f") && std::is_x86_feature_detected!("avx512bw")
    {
        // SAFETY: the CPU supports AVX-512 F and BW, checked just above.
        return unsafe { lookup_avx512(bytes, bits, start, table, out) };
    }
    let _ = (bytes, bits, start, table, out);
    0
}

/// See [`lookup_rows`].
///
/// # Safety
/// The CPU must support AVX-512 F and BW; `bits` must be in 1 ..= 6.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw")]
unsafe fn lookup_avx512(bytes: &[u8], bits: u32, start: usize, table: &[f32; 256], out: &mut [f32]) -> usize {
    use std::arch::x86_64::*;
    let step = 2 * bits as usize;
    let (control, shifts) = spread_constants(bits);
    // SAFETY (all loads and stores below): `control`, `shifts` and `table` are at least 64
    // bytes long; every byte load reads `at .. at + 16 ≤ bytes.len()` (checked in the
    // loop); every store writes `16·g .. 16·g + 16 ≤ out.len()`.
    let control = unsafe { _mm512_loadu_si512(control.as_ptr().cast()) };
    let shifts = unsafe { _mm512_loadu_si512(shifts.as_ptr().cast()) };
    let mask = _mm512_set1_epi32((1 << bits) - 1);
    let bit5 = _mm512_set1_epi32(32);
    let t = |k: usize| unsafe { _mm512_loadu_ps(table.as_ptr().add(16 * k)) };
    let (t0, t1, t2, t3) = (t(0), t(1), t(2), t(3));
    let mut done = 0;
    for g in 0..out.len() / 16 {
        let at = start + g * step;
        if at + 16 > bytes.len() {
            break;
        }
        let raw = unsafe { _mm_loadu_si128(bytes.as_ptr().add(at).cast()) };
        let spread = _mm512_shuffle_epi8(_mm512_broadcast_i32x4(raw), control);
        let idx = _mm512_and_si512(_mm512_srlv_epi32(spread, shifts), mask);
        let low = _mm512_permutex2var_ps(t0, idx, t1);
        let v = if bits == 6 {
            let high = _mm512_permutex2var_ps(t2, idx, t3);
            _mm512_mask_blend_ps(_mm512_test_epi32_mask(idx, bit5), low, high)
        } else {
            low
        };
        unsafe { _mm512_storeu_ps(out.as_mut_ptr().add(16 * g), v) };
        done += 16;
    }
    done
}
