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
        if worst > MAX_REL_ERR || !greedy {
            failures.push(format!("{name}: {worst:.2e} (greedy identical: {greedy})"));
        }
    }
    assert!(failures.is_empty(), "beyond {MAX_REL_ERR:e}:\n{}", failures.join("\n"));
}

/// One chunk per layer, and an LM head split into pieces of at most 200 rows (171+171+170):
/// the hidden state crosses every package boundary and the pieces are joined in order.
#[test]
fn chunk_per_layer_and_split_head_agree() {
    let (worst, greedy) = through_packages("llama_tiny", 3, Some(200));
    eprintln!("llama_tiny: 3 chunks, 3 head pieces: {worst:.2e}, greedy identical: {greedy}");
    assert!(worst <= MAX_REL_ERR && greedy, "{worst:.2e} greedy {greedy}");
}
