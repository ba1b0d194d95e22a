//! The splitter keeps the numerics: a module whose layers are chained into FFN chunks (with
//! the final norm folded into the last chunk's `infer` and the last `prefill` returning only
//! row 0), and whose LM head is split along the vocabulary, gives the same logits as
//! transformers for every chunk count — including uneven ones — and the same greedy tokens.

use std::path::Path;
use std::sync::Arc;

use anemllc::checkpoint::Checkpoint;
use anemllc::frontend::{LowerOptions, lower_checkpoint};
use anemllc::interp::Session;
use anemllc::split::{chunks::even_chunks, split_module};
use ndarray::Array2;

fn reference(name: &str) -> (Vec<u32>, Vec<u32>, Vec<u32>, Array2<f32>) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/models").join(name);
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("reference.json")).unwrap()).unwrap();
    let ids = |k: &str| json[k].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as u32).collect::<Vec<_>>();
    (ids("prompt"), ids("generated"), ids("tokens"), ndarray_npy::read_npy(dir.join("logits.npy")).unwrap())
}

fn rel_err(a: &[f32], b: &[f32]) -> f64 {
    let num: f64 = a.iter().zip(b).map(|(x, y)| ((*x as f64) - (*y as f64)).powi(2)).sum();
    let den: f64 = b.iter().map(|y| (*y as f64).powi(2)).sum();
    (num / den).sqrt()
}

fn check(name: &str, chunks: usize, max_vocab_piece: usize) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/models").join(name);
    let opts = LowerOptions { max_vocab_piece, ..LowerOptions::new(32, 8) };
    let lowered = lower_checkpoint(&dir, &opts).unwrap();
    let layers = lowered.attr_int("layers").unwrap() as usize;
    let split = split_module(&lowered, &even_chunks(layers, chunks)).unwrap();
    assert!(split.function("layer0.infer").is_none() && split.function("final_norm.infer").is_none());
    assert_eq!(split.attr_int("chunks"), Some(chunks as i64));
    let last_prefill = split.function(&format!("chunk{}.prefill", chunks - 1)).unwrap();
    assert_eq!(last_prefill.outputs[0].ty.tensor().shape, vec![1, 1, lowered.attr_int("hidden").unwrap() as usize]);
    let pieces = split.function("lm_head.infer").unwrap().outputs.len();
    assert_eq!(pieces, 512usize.div_ceil(max_vocab_piece), "{name}: LM head pieces");

    let (prompt, generated, tokens, want) = reference(name);
    let mut session = Session::new(split, Arc::new(Checkpoint::open(&dir).unwrap())).unwrap();
    assert!(session.plan().head_prefill.is_some());
    let got = session.teacher_forced_logits(&tokens, prompt.len()).unwrap();
    for (p, row) in got.iter().enumerate() {
        let err = rel_err(row, want.row(p).as_slice().unwrap());
        assert!(err <= 1e-4, "{name} with {chunks} chunks, pieces ≤ {max_vocab_piece}: position {p}: {err:.3e}");
    }
    assert_eq!(session.generate_greedy(&prompt, generated.len()).unwrap(), generated, "{name} with {chunks} chunks");
}

#[test]
fn every_chunk_count_of_a_three_layer_model() {
    for chunks in 1..=3 {
        check("llama_tiny", chunks, 16384);
    }
}

#[test]
fn vocabulary_split_lm_head() {
    // 512 = 176 + 168 + 168 (at most 200), 256 + 256 (at most 500): multiples of 8 (LUT groups), no id lost.
    check("llama_tiny", 2, 200);
    check("qwen3_headdim", 2, 128);
    check("llama_tied", 1, 500);
}
