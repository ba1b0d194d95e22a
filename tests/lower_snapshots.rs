//! insta snapshots of the lowered IR of the tiny fixtures (context 16, batch 8): the
//! framework-neutral form every later pass starts from. Reviewers see lowering changes as
//! IR diffs.

use anemllc::frontend::{LowerOptions, lower_checkpoint};
use anemllc::ir::print_module;
use std::path::Path;

fn lowered(name: &str) -> String {
    // A relative path keeps the `checkpoint` attribute machine-independent.
    let dir = Path::new("tests/fixtures/models").join(name);
    let module = lower_checkpoint(&dir, &LowerOptions::new(16, 8)).unwrap();
    print_module(&module)
}

#[test]
fn lowered_llama_tied() {
    insta::assert_snapshot!(lowered("llama_tied"));
}

#[test]
fn lowered_qwen2_bias() {
    insta::assert_snapshot!(lowered("qwen2_bias"));
}

#[test]
fn lowered_qwen3_headdim() {
    insta::assert_snapshot!(lowered("qwen3_headdim"));
}

#[test]
fn lowered_llama3_rope() {
    insta::assert_snapshot!(lowered("llama3_rope"));
}

/// Gemma 3 (context 16, sliding window 8, batch 8): the embedding with its folded √H scale,
/// the sliding layer 0 in all four modes (fill and rotate, decode and prefill) and the full
/// attention layer 1's decode function.
#[test]
fn lowered_gemma3_layers() {
    let dir = Path::new("tests/fixtures/models").join("gemma3_tiny");
    let mut module = lower_checkpoint(&dir, &LowerOptions::new(16, 8)).unwrap();
    module.functions.retain(|f| f.name == "embed.infer" || f.name.starts_with("layer0.") || f.name == "layer1.infer");
    insta::assert_snapshot!(print_module(&module));
}
