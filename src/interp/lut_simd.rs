//! AVX-512 decoding of packed LUT indices (1 … 6 bits) into table values, 16 at a time:
//! the `2·bits` bytes holding 16 indices are broadcast to every 128-bit lane, spread to one
//! index per 32-bit lane by a byte shuffle, shifted and masked, and looked up in the table
//! held in registers (`vpermt2ps` over 32 entries; a blend on bit 5 for 64). The values are
//! copies of table entries, so the result equals the scalar decoder's exactly.

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
    let mut control = [0x80u8; 64];
    let mut shifts = [0u32; 16];
    for i in 0..16 {
        let bit = i * bits as usize;
        control[4 * i] = (bit / 8) as u8;
        control[4 * i + 1] = (bit / 8 + 1) as u8;
        shifts[i] = (bit % 8) as u32;
    }
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
