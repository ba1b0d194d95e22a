//! Palettization throughput on a synthetic 2048×8192 matrix (a large FFN projection).
//! Ignored by default: run it through `bench/palettize.sh` (release build). Nothing here
//! asserts on time.

use std::time::Instant;

use anemllc::quant::{palettize_tensor, relative_error};

/// A deterministic bell-shaped matrix (sum of four uniforms, scaled like LLM weights),
/// rounded to bf16 like a real checkpoint and then to fp16, as `opt` casts weights before
/// `lut_indices` palettizes them.
fn synthetic(rows: usize, cols: usize) -> Vec<f32> {
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    let mut uniform = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 40) as f32 / (1u64 << 24) as f32
    };
    (0..rows * cols)
        .map(|_| {
            let s: f32 = (0..4).map(|_| uniform()).sum::<f32>() - 2.0;
            half::f16::from_f32(half::bf16::from_f32(s * 0.03).to_f32()).to_f32()
        })
        .collect()
}

#[test]
#[ignore = "benchmark: run bench/palettize.sh"]
fn palettize_throughput() {
    let (rows, cols) = (2048, 8192);
    let bits: u32 = std::env::var("ANEMLLC_BENCH_BITS").ok().and_then(|b| b.parse().ok()).unwrap_or(6);
    let values = synthetic(rows, cols);
    let threads = rayon::current_num_threads();
    let start = Instant::now();
    let p = palettize_tensor(&values, &[rows, cols], bits, 8).unwrap();
    let secs = start.elapsed().as_secs_f64();
    let n = values.len() as f64;
    println!(
        "palettize {rows}x{cols} at {bits} bits, group 8, {threads} threads: {secs:.3} s, {:.2} M weights/s, rel err {:.4}",
        n / secs / 1e6,
        relative_error(&values, &p.dense())
    );
}
