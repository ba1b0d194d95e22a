//! Issue #16: anemllc's weight-product kernel (`anemllc::interp::project`, what `anemllc run`
//! uses for every projection: fp16 weight rows decoded to f32, fixed-order f32 dot
//! products, rayon over tiles of 32 output channels) against the `gemm` crate, on the
//! matrix shapes of a Llama-3.2-1B decode and prefill step.
//!
//! Usage: `gemm-compare [REPS]` (REPS timed calls per case after one warm-up; default 10).
//!
//! Variants, all computing `y[p, o] = Σ_k x[p, k] · w[o, k]` with `w` stored `[out, in]`
//! as in the packages:
//! - `anemllc f16w`: fp16 weight bytes, f32 activations, f32 result (the `run` path of
//!   an fp16 package);
//! - `anemllc f32w`: the same kernel on the weights widened to f32 beforehand (so the
//!   fp16 → f32 row decode is not timed; same bits as `f16w`, asserted);
//! - `anemllc lut6`: the same kernel on 6-bit LUT rows of the same shape (the `run` path
//!   of a LUT6 package; other values, so only its speed is comparable);
//! - `gemm f32`: the same weights widened to f32 beforehand (twice the bytes), f32 result;
//! - `gemm f16`: fp16 weights and fp16 activations, fp16 result (gemm's f16 kernel; it has
//!   no mixed fp16-weight / f32-activation entry point).
//!
//! Then the bit-exactness checks: is each result the same with 1 and 2 threads, and is a
//! row of the 64-row (prefill) product the same as the 1-row (decode) product of that row?

use std::time::Instant;

use anemllc::interp::{MatrixRows, project};
use gemm::{Parallelism, gemm};
use half::f16;

/// Deterministic values of ~N(0, σ) (sum of 4 uniforms), from a 64-bit LCG.
fn values(n: usize, seed: u64, sigma: f32) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut next = || {
        s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (s >> 40) as f32 / (1u64 << 24) as f32
    };
    (0..n).map(|_| ((next() + next() + next() + next()) - 2.0) * sigma * 1.732).collect()
}

struct Case {
    name: &'static str,
    m: usize,
    k: usize,
    n: usize,
}

/// `dst[m, n] = x[m, k] · w[n, k]ᵀ` with gemm (row-major dst and x, w read transposed).
fn gemm_call<T: 'static + Copy>(
    m: usize,
    k: usize,
    n: usize,
    x: &[T],
    w: &[T],
    dst: &mut [T],
    zero: T,
    one: T,
    par: Parallelism,
) {
    assert!(x.len() == m * k && w.len() == n * k && dst.len() == m * n);
    // SAFETY: the slices hold exactly the elements the strides address (asserted above).
    unsafe {
        gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            n as isize,
            false,
            x.as_ptr(),
            1,
            k as isize,
            w.as_ptr(),
            k as isize,
            1,
            zero,
            one,
            false,
            false,
            false,
            par,
        )
    }
}

/// Median and minimum wall time of `reps` calls, after one warm-up call, in ms.
fn time(reps: usize, mut f: impl FnMut()) -> (f64, f64) {
    f();
    let mut t: Vec<f64> = (0..reps)
        .map(|_| {
            let t0 = Instant::now();
            f();
            t0.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    t.sort_by(f64::total_cmp);
    (t[t.len() / 2], t[0])
}

fn bits_f32(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

fn main() {
    let reps: usize = std::env::args().nth(1).map_or(10, |s| s.parse().expect("REPS"));
    let cases = [
        Case { name: "decode  [1, 2048] x [2048, 8192]", m: 1, k: 2048, n: 8192 },
        Case { name: "decode  [1, 8192] x [8192, 2048]", m: 1, k: 8192, n: 2048 },
        Case { name: "prefill [64, 2048] x [2048, 8192]", m: 64, k: 2048, n: 8192 },
    ];
    let pools: Vec<(usize, rayon::ThreadPool)> =
        [1usize, 2].iter().map(|&t| (t, rayon::ThreadPoolBuilder::new().num_threads(t).build().unwrap())).collect();
    let par = |t: usize| if t == 1 { Parallelism::None } else { Parallelism::Rayon(t) };
    println!("{reps} timed calls per case (median / min); GFLOP/s = 2·m·n·k / median");
    for c in &cases {
        let (m, k, n) = (c.m, c.k, c.n);
        let flop = 2.0 * (m * n * k) as f64;
        let w32: Vec<f32> = values(n * k, 1, 0.02).into_iter().map(|v| f16::from_f32(v).to_f32()).collect();
        let w16: Vec<f16> = w32.iter().map(|&v| f16::from_f32(v)).collect();
        let wbytes: Vec<u8> = w16.iter().flat_map(|v| v.to_le_bytes()).collect();
        let x32: Vec<f32> = values(m * k, 2, 1.0);
        let x16: Vec<f16> = x32.iter().map(|&v| f16::from_f32(v)).collect();
        let rows = MatrixRows::f16(&wbytes, n, k).unwrap();
        // The same kernel on f32 rows (no fp16 decode) and on 6-bit LUT rows (what a LUT6
        // package holds: packed indices, one 64-entry table per 8 output channels; random
        // bytes are valid 6-bit indices, and the speed does not depend on the values).
        let dense = MatrixRows::dense(&w32, n, k).unwrap();
        let idx: Vec<u8> = values(n * k * 6 / 8, 3, 1.0).into_iter().map(|v| v.to_bits() as u8).collect();
        let table: Vec<f32> = values(n / 8 * 64, 4, 0.02);
        let lut = MatrixRows::lut(&idx, 6, &table, n, k).unwrap();
        println!("\n{}  ({:.3} GFLOP per call, fp16 weights {:.1} MB)", c.name, flop / 1e9, wbytes.len() as f64 / 1e6);
        let mut ours_by_t = Vec::new();
        let mut g32_by_t = Vec::new();
        let mut g16_by_t = Vec::new();
        for (t, pool) in &pools {
            let t = *t;
            let line = |what: &str, (med, min): (f64, f64)| {
                println!(
                    "  {what:<14} {t} thread{}  {med:8.2} ms  (min {min:8.2})  {:6.1} GFLOP/s",
                    if t == 1 { " " } else { "s" },
                    flop / med / 1e6
                );
            };
            let mut out = vec![0f32; n * m];
            line("anemllc f16w", pool.install(|| time(reps, || project(&x32, m, &rows, None, &mut out))));
            ours_by_t.push(bits_f32(&out));
            let mut o2 = vec![0f32; n * m];
            line("anemllc f32w", pool.install(|| time(reps, || project(&x32, m, &dense, None, &mut o2))));
            assert_eq!(bits_f32(&o2), bits_f32(&out), "f32 rows of the same values give the same bits");
            line("anemllc lut6", pool.install(|| time(reps, || project(&x32, m, &lut, None, &mut o2))));
            let mut d32 = vec![0f32; m * n];
            line(
                "gemm f32",
                pool.install(|| time(reps, || gemm_call(m, k, n, &x32, &w32, &mut d32, 0.0, 1.0, par(t)))),
            );
            g32_by_t.push(bits_f32(&d32));
            let mut d16 = vec![f16::ZERO; m * n];
            line(
                "gemm f16",
                pool.install(|| time(reps, || gemm_call(m, k, n, &x16, &w16, &mut d16, f16::ZERO, f16::ONE, par(t)))),
            );
            g16_by_t.push(d16.iter().map(|v| v.to_bits() as u32).collect::<Vec<_>>());
        }
        let same = |v: &[Vec<u32>]| if v[0] == v[1] { "identical" } else { "DIFFERENT" };
        println!(
            "  1 vs 2 threads: anemllc {}, gemm f32 {}, gemm f16 {}",
            same(&ours_by_t),
            same(&g32_by_t),
            same(&g16_by_t)
        );
        // Accuracy against an f64 reference on every 97th output (gemm f16 also sees x in fp16).
        let (mut e_ours, mut e32, mut e16) = (0f64, 0f64, 0f64);
        let mut scale = 0f64;
        for idx in (0..m * n).step_by(97) {
            let (p, o) = (idx / n, idx % n);
            let r: f64 = (0..k).map(|j| f64::from(x32[p * k + j]) * f64::from(w32[o * k + j])).sum();
            scale = scale.max(r.abs());
            e_ours = e_ours.max((f64::from(f32::from_bits(ours_by_t[0][o * m + p])) - r).abs());
            e32 = e32.max((f64::from(f32::from_bits(g32_by_t[0][idx])) - r).abs());
            e16 = e16.max((f64::from(f16::from_bits(g16_by_t[0][idx] as u16).to_f32()) - r).abs());
        }
        println!(
            "  max |error| vs f64 (sampled, / max |y| {scale:.2}): anemllc {:.2e}, gemm f32 {:.2e}, gemm f16 {:.2e}",
            e_ours / scale,
            e32 / scale,
            e16 / scale
        );
        if m > 1 {
            // Row p of the prefill product against the decode product of row p alone.
            let (mut ours_same, mut g32_same) = (0, 0);
            let probe = [0usize, 1, m / 2, m - 1];
            for &p in &probe {
                let xr = &x32[p * k..(p + 1) * k];
                let mut o1 = vec![0f32; n];
                project(xr, 1, &rows, None, &mut o1);
                ours_same += usize::from((0..n).all(|o| o1[o].to_bits() == ours_by_t[0][o * m + p]));
                let mut g1 = vec![0f32; n];
                gemm_call(1, k, n, xr, &w32, &mut g1, 0.0, 1.0, Parallelism::None);
                g32_same += usize::from((0..n).all(|o| g1[o].to_bits() == g32_by_t[0][p * n + o]));
            }
            println!(
                "  prefill row = decode of that row (rows {probe:?}): anemllc {ours_same}/{}, gemm f32 {g32_same}/{}",
                probe.len(),
                probe.len()
            );
        }
    }
}
