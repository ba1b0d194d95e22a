//! Gemma 3 output against ANEMLL 0.3.6's contract (anemll-gemma3-contract.md §2, §4):
//! gemma3_tiny (3 layers: sliding, full, sliding; window 8; context 32; batch 8) emitted in 2
//! chunks. Every FFN package has `infer` (default), `infer_rotate`, `prefill` and
//! `prefill_rotate`; every function declares the local [2·2, 2, 8, 32] and global
//! [2·1, 2, 32, 32] fp16 states (also the chunk without a full-attention layer); the LM head
//! has 16 pieces; meta.yaml has the 0.3.6 keys. Checked by coremltools' loader (ignored
//! without the venv, failing under CI) and by reading the packages back.

mod emit_support;
mod mil_common;

use std::collections::BTreeMap;

use emit_support::{BATCH, CONTEXT, emit, optimised, scratch};
use mil_common::coreml_check;
use serde_json::{Value, json};

const H: usize = 64;
const MODES: [&str; 4] = ["infer", "infer_rotate", "prefill", "prefill_rotate"];

fn states() -> Value {
    json!({
        "model_model_kv_cache_local": {"kind": "state", "dtype": "fp16", "shape": [4, 2, 8, 32]},
        "model_model_kv_cache_global": {"kind": "state", "dtype": "fp16", "shape": [2, 2, CONTEXT, 32]},
    })
}

fn output(tag: &str) -> std::path::PathBuf {
    let module = optimised("gemma3_tiny", None);
    let out = scratch(&format!("gemma3_contract_{tag}")).join("out");
    let report = emit("gemma3_tiny", &module, Some(2), &out);
    assert_eq!(report.layout.chunk_plan, vec![0..2, 2..3], "chunk 2 holds only the sliding layer 2");
    out
}

#[test]
fn meta_yaml_has_the_0_3_6_keys() {
    let out = output("meta");
    let meta = std::fs::read_to_string(out.join("meta.yaml")).unwrap();
    let sizes = vec!["32"; 16].join(", ");
    for line in [
        "  architecture: gemma3_text\n".to_string(),
        "    model_prefix: gemma3\n".into(),
        "    ffn: gemma3_FFN_PF_chunk_01of02.mlpackage\n".into(),
        format!("    split_lm_head: 16\n    vocab_size: 512\n    lm_head_chunk_sizes: [{sizes}]\n"),
        "    sliding_window: 8\n    prefill_dynamic_slice: true\n".into(),
    ] {
        assert!(meta.contains(&line), "meta.yaml lacks {line:?}:\n{meta}");
    }
    // Read back, the rotate functions are found and the module knows where rotation starts.
    let loaded = anemllc::package::load_output(&out).unwrap();
    for k in 0..2 {
        for mode in MODES {
            assert!(loaded.module.function(&format!("chunk{k}.{mode}")).is_some(), "chunk{k}.{mode}");
        }
    }
    assert_eq!(loaded.module.attr_int("sliding_window"), Some(8));
}

#[test]
#[cfg_attr(not(coreml_venv), ignore = "needs the coremltools venv: bash tests/coreml/setup_venv.sh")]
fn coremltools_reads_the_gemma3_interfaces() {
    let out = output("coremltools");
    let names = ["gemma3_embeddings", "gemma3_FFN_PF_chunk_01of02", "gemma3_FFN_PF_chunk_02of02", "gemma3_lm_head"];
    let pkgs: Vec<_> = names.iter().map(|n| out.join(format!("{n}.mlpackage"))).collect();
    let checked = coreml_check(&pkgs, &["--strict-states"]);
    let pkg: BTreeMap<&str, &Value> =
        names.iter().copied().zip(checked["packages"].as_array().unwrap().iter()).collect();
    for (n, p) in &pkg {
        assert_eq!(p["ok"], true, "{n}: {}", p["errors"]);
    }
    for (n, last) in [("gemma3_FFN_PF_chunk_01of02", false), ("gemma3_FFN_PF_chunk_02of02", true)] {
        let p = pkg[n];
        assert_eq!(p["default_function"], "infer", "{n}");
        let functions: Vec<&str> = p["functions"].as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(functions.len(), 4, "{n}: {functions:?}");
        for mode in MODES {
            let info = &p["functions"][mode];
            assert_eq!(info["states"], states(), "{n} {mode}");
            let rows = if mode.starts_with("prefill") { BATCH } else { 1 };
            let inputs = &info["inputs"];
            assert_eq!(inputs["hidden_states"]["shape"], json!([1, rows, H]), "{n} {mode}");
            assert_eq!(inputs["causal_mask"]["shape"], json!([1, 1, rows, CONTEXT]), "{n} {mode}");
            let out_rows = if last && rows > 1 { 1 } else { rows };
            let outputs = info["outputs"].as_array().unwrap();
            assert_eq!(outputs.len(), 1, "{n} {mode}");
            assert_eq!(outputs[0]["inferred"]["shape"], json!([1, out_rows, H]), "{n} {mode}");
        }
    }
    let head = &pkg["gemma3_lm_head"]["functions"]["main"];
    let outputs = head["outputs"].as_array().unwrap();
    assert_eq!(outputs.len(), 16);
    for (k, o) in outputs.iter().enumerate() {
        assert_eq!(o["name"], format!("logits{}", k + 1));
        assert_eq!(o["inferred"]["shape"], json!([1, 1, 32]));
    }
}

/// The scaled embedding table (`cast(scale(checkpoint), fp16)`, streamed to the package in
/// row blocks) holds exactly the values the interpreter materialises for the same recipe.
#[test]
fn streamed_scaled_embeddings_equal_the_materialised_recipe() {
    use anemllc::checkpoint::Checkpoint;
    use anemllc::weights::WeightCache;
    use std::sync::Arc;
    let module = optimised("gemma3_tiny", None);
    let out = scratch("gemma3_contract_embed").join("out");
    emit("gemma3_tiny", &module, Some(2), &out);
    let gathered = |m: &anemllc::ir::Module| -> String {
        let f = m.function("embed.infer").unwrap();
        f.nodes
            .iter()
            .find_map(|(_, n)| match &n.op {
                anemllc::ir::Op::Weight { name } => Some(name.clone()),
                _ => None,
            })
            .unwrap()
    };
    let name = gathered(&module);
    let recipe = &module.weight(&name).unwrap().recipe;
    assert!(recipe.to_string().starts_with("cast(scale(checkpoint("), "{recipe}");
    let ckpt = Checkpoint::open(&emit_support::fixture_dir("gemma3_tiny")).unwrap();
    let want = WeightCache::new(&module, Arc::new(ckpt)).get(&name).unwrap().to_f32_vec();
    let loaded = anemllc::package::load_output(&out).unwrap();
    let got_name = gathered(&loaded.module);
    let got = WeightCache::new(&loaded.module, loaded.source.clone()).get(&got_name).unwrap().to_f32_vec();
    assert_eq!(got.len(), want.len());
    assert!(got.iter().zip(&want).all(|(a, b)| a.to_bits() == b.to_bits()), "the streamed table differs");
}

/// The fp16 range report counts a scaled table (`scale(checkpoint)`, here the √H-scaled
/// embedding times a residual scale large enough to overflow) from row blocks exactly as
/// from the materialised tensor.
#[test]
fn range_report_of_a_scaled_table_equals_the_materialised_count() {
    use anemllc::checkpoint::Checkpoint;
    use anemllc::frontend::{LowerOptions, lower_checkpoint};
    use anemllc::ir::Recipe;
    use anemllc::opt::fp16_range::stats;
    use anemllc::opt::fp16_range_bits::recipe_stats;
    use anemllc::weights::WeightCache;
    use std::sync::Arc;
    let dir = emit_support::fixture_dir("gemma3_tiny");
    let mut module = lower_checkpoint(&dir, &LowerOptions::new(CONTEXT, BATCH)).unwrap();
    let w = module.weights.iter_mut().find(|w| w.name.ends_with(".scaled")).expect("a scaled embedding table");
    // ×40000: the largest entries (|x|·8 up to ~2) pass 65504, most stay below.
    w.recipe = Recipe::Scale { input: Box::new(w.recipe.clone()), factor: 40000.0 };
    let (name, recipe) = (w.name.clone(), w.recipe.clone());
    let ckpt = Arc::new(Checkpoint::open(&dir).unwrap());
    let streamed = recipe_stats(&recipe, &ckpt).expect("handled from row blocks");
    let values = WeightCache::new(&module, ckpt.clone()).get(&name).unwrap().to_f32_vec();
    let materialised = stats(&values);
    assert_eq!(streamed, materialised);
    assert!(materialised.overflow > 0 && materialised.overflow < materialised.total, "{materialised:?}");
}
