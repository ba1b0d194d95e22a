//! Dot products in one fixed order of accumulation, whatever the caller's tiling.
//!
//! `dot(x, w)` over `n` elements: 16 lane sums `acc[l] = Σ_j x[16j + l] · w[16j + l]`
//! (in j order, each product rounded to f32 and then added — never fused), then the lanes
//! folded as a tree (`l` with `l + 8`, then `+ 4`, `+ 2`, `+ 1`), then plus the tail
//! `Σ_{i ≥ 16⌊n/16⌋} x[i] · w[i]` summed in order from 0. Every kernel that multiplies by
//! a weight matrix through [`dots`] therefore gives bit-identical results for one output
//! element whether it computes one row (decode) or many (prefill), on one thread or many,
//! with SSE, AVX2 or AVX-512 code: the order is part of the definition, not of the CPU.

/// Lanes of the accumulator.
pub const LANES: usize = 16;

/// `R` dot products of `x` with `w[0] … w[R−1]` (each as long as `x`), in the order of the
/// module docs. Picks an AVX2 build of the same code at run time where the CPU has it
/// (identical results: no fused multiply-add is used).
pub fn dots<const R: usize>(x: &[f32], w: &[&[f32]; R]) -> [f32; R] {
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU supports AVX2, checked just above.
        return unsafe { dots_avx2(x, w) };
    }
    dots_generic(x, w)
}

/// [`dots_generic`] with AVX2 vectors: the 16 lanes as two 8-lane registers per row,
/// multiplied and added separately (no fused multiply-add), so every lane sees exactly the
/// generic code's operations; the fold and the tail are the generic code's.
///
/// # Safety
/// The CPU must support AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn dots_avx2<const R: usize>(x: &[f32], w: &[&[f32]; R]) -> [f32; R] {
    use std::arch::x86_64::*;
    let n = x.len();
    let body = n / LANES * LANES;
    let w: [&[f32]; R] = std::array::from_fn(|r| &w[r][..n]);
    let mut lo = [_mm256_setzero_ps(); R];
    let mut hi = [_mm256_setzero_ps(); R];
    for j in (0..body).step_by(LANES) {
        // SAFETY: j + 16 ≤ body ≤ n = x.len() = w[r].len().
        let (x0, x1) = unsafe { (_mm256_loadu_ps(x.as_ptr().add(j)), _mm256_loadu_ps(x.as_ptr().add(j + 8))) };
        for r in 0..R {
            let (w0, w1) =
                unsafe { (_mm256_loadu_ps(w[r].as_ptr().add(j)), _mm256_loadu_ps(w[r].as_ptr().add(j + 8))) };
            lo[r] = _mm256_add_ps(lo[r], _mm256_mul_ps(x0, w0));
            hi[r] = _mm256_add_ps(hi[r], _mm256_mul_ps(x1, w1));
        }
    }
    let mut out = [0.0f32; R];
    for r in 0..R {
        let mut lanes = [0.0f32; LANES];
        // SAFETY: `lanes` holds 16 floats.
        unsafe {
            _mm256_storeu_ps(lanes.as_mut_ptr(), lo[r]);
            _mm256_storeu_ps(lanes.as_mut_ptr().add(8), hi[r]);
        }
        let mut tail = 0.0f32;
        for (&xv, &wv) in x[body..].iter().zip(&w[r][body..]) {
            tail += xv * wv;
        }
        out[r] = fold(&lanes) + tail;
    }
    out
}

#[inline(always)]
fn dots_generic<const R: usize>(x: &[f32], w: &[&[f32]; R]) -> [f32; R] {
    let n = x.len();
    let body = n / LANES * LANES;
    let w: [&[f32]; R] = std::array::from_fn(|r| &w[r][..n]);
    let mut acc = [[0.0f32; LANES]; R];
    for j in (0..body).step_by(LANES) {
        let xs: &[f32; LANES] = x[j..j + LANES].try_into().expect("16 lanes");
        for r in 0..R {
            let ws: &[f32; LANES] = w[r][j..j + LANES].try_into().expect("16 lanes");
            for l in 0..LANES {
                acc[r][l] += xs[l] * ws[l];
            }
        }
    }
    let mut out = [0.0f32; R];
    for r in 0..R {
        let mut tail = 0.0f32;
        for (&xv, &wv) in x[body..].iter().zip(&w[r][body..]) {
            tail += xv * wv;
        }
        out[r] = fold(&acc[r]) + tail;
    }
    out
}

/// The lane tree of the module docs.
#[inline(always)]
pub fn fold(a: &[f32; LANES]) -> f32 {
    let mut s = *a;
    let mut width = LANES / 2;
    while width > 0 {
        for l in 0..width {
            s[l] += s[l + width];
        }
        width /= 2;
    }
    s[0]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reference(x: &[f32], w: &[f32]) -> f32 {
        let body = x.len() / LANES * LANES;
        let mut lanes = [0.0f32; LANES];
        for i in 0..body {
            lanes[i % LANES] += x[i] * w[i];
        }
        let mut tail = 0.0f32;
        for i in body..x.len() {
            tail += x[i] * w[i];
        }
        let fold = |s: &mut [f32; LANES], width: usize| (0..width).for_each(|l| s[l] += s[l + width]);
        for width in [8, 4, 2, 1] {
            fold(&mut lanes, width);
        }
        lanes[0] + tail
    }

    #[test]
    fn every_tiling_gives_the_documented_order() {
        for n in [0usize, 1, 15, 16, 17, 100, 2048, 2051] {
            let x: Vec<f32> = (0..n).map(|i| ((i * 7919) % 1000) as f32 * 1e-3 - 0.5).collect();
            let w: Vec<Vec<f32>> =
                (0..4).map(|r| (0..n).map(|i| ((i * 104_729 + r * 31) % 997) as f32 * 1e-2 - 5.0).collect()).collect();
            let four = dots(&x, &[&w[0], &w[1], &w[2], &w[3]]);
            for r in 0..4 {
                let one = dots(&x, &[&w[r]])[0];
                assert_eq!(one.to_bits(), reference(&x, &w[r]).to_bits(), "n {n} row {r}");
                assert_eq!(four[r].to_bits(), one.to_bits(), "n {n} row {r}");
                assert_eq!(dots_generic(&x, &[&w[r]])[0].to_bits(), one.to_bits(), "n {n}: generic vs dispatched");
            }
        }
    }
}
