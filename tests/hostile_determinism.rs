//! Determinism of what exists today: `lower` gives byte-identical .air files when run twice
//! and with different rayon thread counts (RAYON_NUM_THREADS=1 vs 2), and `run --logits`
//! gives byte-identical logits (and tokens) across thread counts.
//!
//! The .air output embeds the checkpoint path (`checkpoint` attribute) and the folder name
//! (module name), so "the same checkpoint" means the same path here.

mod hostile_support;

use std::fs;
use std::path::Path;

use hostile_support::*;

/// `anemllc lower DIR -o OUT SIZES` with `RAYON_NUM_THREADS=threads` (unset if `None`).
fn lower_with_threads(dir: &Path, out: &Path, sizes: &[&str], threads: Option<&str>) -> Vec<u8> {
    let mut cmd = anemllc();
    cmd.arg("lower").arg(dir).arg("-o").arg(out).args(sizes);
    match threads {
        Some(n) => cmd.env("RAYON_NUM_THREADS", n),
        None => cmd.env_remove("RAYON_NUM_THREADS"),
    };
    let o: Outcome = cmd.output().unwrap().into();
    assert_eq!(o.code, Some(0), "lower {}: {}", dir.display(), o.stderr);
    fs::read(out).unwrap()
}

#[test]
fn lower_is_byte_identical_across_runs_and_thread_counts() {
    let scratch = scratch("hostile_determinism", "lower");
    for name in ["llama_tiny", "llama_sharded", "llama_bf16", "qwen2_bias", "qwen3_headdim", "llama3_rope"] {
        let dir = fixture(name);
        let first = lower_with_threads(&dir, &scratch.join(format!("{name}-a.air")), SIZES, None);
        let again = lower_with_threads(&dir, &scratch.join(format!("{name}-b.air")), SIZES, None);
        let one = lower_with_threads(&dir, &scratch.join(format!("{name}-t1.air")), SIZES, Some("1"));
        let two = lower_with_threads(&dir, &scratch.join(format!("{name}-t2.air")), SIZES, Some("2"));
        assert!(!first.is_empty());
        assert!(first == again, "{name}: two runs differ");
        assert!(first == one, "{name}: RAYON_NUM_THREADS=1 differs");
        assert!(first == two, "{name}: RAYON_NUM_THREADS=2 differs");
    }
    let _ = fs::remove_dir_all(&scratch);
}

/// `run MODULE --tokens … --decode 3 --logits OUT` with `RAYON_NUM_THREADS=threads`; returns
/// (stdout tokens, logits file bytes).
fn run_with_threads(module: &Path, logits: &Path, threads: &str) -> (String, Vec<u8>) {
    let o: Outcome = anemllc()
        .arg("run")
        .arg(module)
        .args(["--tokens", "1,5,9,2,7,3,8,4,6,11", "--decode", "3", "--logits"])
        .arg(logits)
        .env("RAYON_NUM_THREADS", threads)
        .output()
        .unwrap()
        .into();
    assert_eq!(o.code, Some(0), "run {}: {}", module.display(), o.stderr);
    (o.stdout, fs::read(logits).unwrap())
}

#[test]
fn run_logits_are_byte_identical_across_thread_counts() {
    let scratch = scratch("hostile_determinism", "run");
    // The fixtures' tensors are all below the checkpoint decoder's parallel chunk (65536
    // elements), so also use a synthetic model whose embedding and head (1100 × 64 = 70400
    // elements) are decoded in parallel chunks.
    let synthetic = scratch.join("synthetic");
    write_synthetic_llama(
        &synthetic,
        Synth { layers: 2, hidden: 64, heads: 4, kv_heads: 2, intermediate: 96, vocab: 1100 },
    );
    for (name, dir) in
        [("llama_tiny", fixture("llama_tiny")), ("llama_bf16", fixture("llama_bf16")), ("synthetic", synthetic)]
    {
        let module = scratch.join(format!("{name}.air"));
        lower_with_threads(&dir, &module, SIZES, None);
        let (tokens1, logits1) = run_with_threads(&module, &scratch.join(format!("{name}-t1.npy")), "1");
        let (tokens2, logits2) = run_with_threads(&module, &scratch.join(format!("{name}-t2.npy")), "2");
        let (tokens2b, logits2b) = run_with_threads(&module, &scratch.join(format!("{name}-t2b.npy")), "2");
        assert!(!tokens1.trim().is_empty(), "{name}: no tokens generated");
        assert_eq!(tokens1, tokens2, "{name}: generated tokens differ between 1 and 2 threads");
        assert!(logits1 == logits2, "{name}: logits differ between RAYON_NUM_THREADS=1 and 2");
        assert!(logits2 == logits2b, "{name}: logits differ between two runs");
        assert_eq!(tokens2, tokens2b);
    }
    let _ = fs::remove_dir_all(&scratch);
}
