//! The output folder against ANEMLL's contract (anemll-contract.md §1, §3.3, §3.4, §11):
//! its files, `meta.yaml` and chunk weights, then its packages read by coremltools' own proto
//! parser and MIL loader (an independent reader; ignored without the coremltools venv, see
//! `build.rs`) with the type check of every package, and byte-identical output across
//! thread counts.

mod emit_support;
mod mil_common;

use std::collections::BTreeMap;
use std::path::PathBuf;

use anemllc::package::EmitReport;
use emit_support::{BATCH, CONTEXT, emit, optimised, scratch};
use mil_common::{coreml_check, dir_contents};
use serde_json::{Value, json};

/// llama_tiny: hidden 64, 3 layers, 2 KV heads of 16, vocab 512; split into 2 chunks
/// (2 + 1 layers) and, with pieces of at most 200 rows, 3 LM-head pieces in multiples of 8 (176, 168, 168).
const H: usize = 64;
const LAYERS: usize = 3;

fn tensor(dtype: &str, shape: &[Option<usize>]) -> Value {
    json!({"kind": "tensor", "dtype": dtype, "shape": shape})
}

fn fixed(dtype: &str, shape: &[usize]) -> Value {
    tensor(dtype, &shape.iter().map(|&d| Some(d)).collect::<Vec<_>>())
}

fn state() -> Value {
    json!({"kind": "state", "dtype": "fp16", "shape": [2 * LAYERS, 2, CONTEXT, 16]})
}

/// `report.functions[f]`: inputs and states as coremltools' loader typed them, outputs as
/// it inferred them.
fn interface(pkg: &Value, f: &str) -> (Value, Value, Vec<(String, Value)>) {
    let info = &pkg["functions"][f];
    let outputs = info["outputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| (o["name"].as_str().unwrap().to_string(), o["inferred"].clone()));
    (info["inputs"].clone(), info["states"].clone(), outputs.collect())
}

fn ffn_inputs(rows: usize) -> Value {
    json!({
        "hidden_states": fixed("fp16", &[1, rows, H]),
        "position_ids": fixed("int32", &[rows]),
        "causal_mask": fixed("fp16", &[1, 1, rows, CONTEXT]),
        "current_pos": fixed("int32", &[1]),
    })
}

/// llama_tiny emitted in 2 chunks with LM-head pieces of at most 200 rows into
/// `scratch(name)/out`.
fn contract_output(name: &str) -> (PathBuf, EmitReport) {
    let module = optimised("llama_tiny", Some(200));
    let out = scratch(name).join("out");
    let report = emit("llama_tiny", &module, Some(2), &out);
    (out, report)
}

/// The folder's files (§3.3, §3.4), `meta.yaml`, `config.json` and per-chunk weights.
#[test]
fn output_folder_satisfies_the_anemll_contract() {
    let (out, report) = contract_output("contract");

    // File names (§3.3) and the step-7 files (§3.4).
    let files: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    assert_eq!(
        files,
        [
            "config.json",
            "generation_config.json",
            "llama_FFN_PF_chunk_01of02.mlpackage",
            "llama_FFN_PF_chunk_02of02.mlpackage",
            "llama_embeddings.mlpackage",
            "llama_lm_head.mlpackage",
            "meta.yaml",
            "special_tokens_map.json",
            "tokenizer.json",
            "tokenizer_config.json",
        ]
    );
    let meta = std::fs::read_to_string(out.join("meta.yaml")).unwrap();
    for line in [
        "  name: anemll-llama_tiny-ctx32\n",
        "  version: 0.3.4\n",
        "  architecture: llama\n",
        "    context_length: 32\n",
        "    batch_size: 8\n",
        "    lut_embeddings: none\n",
        "    lut_ffn: none\n",
        "    lut_lmhead: none\n",
        "    num_chunks: 2\n",
        "    model_prefix: llama\n",
        "    embeddings: llama_embeddings.mlpackage\n",
        "    lm_head: llama_lm_head.mlpackage\n",
        // ANEMLL 0.3.6: the first chunk's file, then its new keys after split_lm_head.
        "    ffn: llama_FFN_PF_chunk_01of02.mlpackage\n",
        "    split_lm_head: 3\n    vocab_size: 512\n    lm_head_chunk_sizes: [176, 168, 168]\n",
        "    prefill_dynamic_slice: true\n",
    ] {
        assert!(meta.contains(line), "meta.yaml lacks {line:?}:\n{meta}");
    }
    let config: Value = serde_json::from_str(&std::fs::read_to_string(out.join("config.json")).unwrap()).unwrap();
    assert_eq!(config, json!({"tokenizer_class": "LlamaTokenizer", "model_type": "llama"}));

    // Chunks: 2 + 1 layers; weights stored once per package although infer and prefill
    // both use them (the weight file is the size of one copy plus headers).
    assert_eq!(report.layout.chunk_plan, vec![0..2, 2..3]);
    for (part, info) in report.layout.parts.iter().zip(&report.packages) {
        assert!(info.weight_bytes >= part.bytes, "{}", part.stem);
        assert!(
            info.weight_bytes < part.bytes + 128 * (part.weights as u64 + 1),
            "{}: weight.bin {} bytes for {} bytes of weights: stored twice?",
            part.stem,
            info.weight_bytes,
            part.bytes
        );
    }
}

/// Every package as coremltools' loader types it: interfaces, enumerated shapes, states and
/// metadata (§1).
#[test]
#[cfg_attr(not(coreml_venv), ignore = "needs the coremltools venv: bash tests/coreml/setup_venv.sh")]
fn coremltools_reads_the_contract_interfaces() {
    let (out, _) = contract_output("contract_coremltools");
    let names = ["llama_embeddings", "llama_FFN_PF_chunk_01of02", "llama_FFN_PF_chunk_02of02", "llama_lm_head"];
    let pkgs: Vec<_> = names.iter().map(|n| out.join(format!("{n}.mlpackage"))).collect();
    let checked = coreml_check(&pkgs, &["--strict-states"]);
    let pkg: BTreeMap<&str, &Value> =
        names.iter().copied().zip(checked["packages"].as_array().unwrap().iter()).collect();
    for (n, p) in &pkg {
        assert_eq!(p["ok"], true, "{n}: {}", p["errors"]);
        assert_eq!(p["specificationVersion"], 9, "{n}");
    }

    // Embeddings (§1.2): input_ids int32 enumerated {[1,1],[1,B]}, default [1,1].
    let emb = pkg["llama_embeddings"];
    assert_eq!(emb["default_function"], "main");
    let declared = &emb["described"]["main"]["inputs"]["input_ids"];
    assert_eq!(declared["dtype"], "int32");
    assert_eq!(declared["shape"], json!([1, 1]));
    assert_eq!(declared["enumerated"], json!([[1, 1], [1, BATCH]]));
    let (inputs, states, outputs) = interface(emb, "main");
    assert_eq!(inputs, json!({"input_ids": tensor("int32", &[Some(1), None])}));
    assert_eq!(states, json!({}));
    assert_eq!(outputs, vec![("hidden_states".to_string(), tensor("fp16", &[Some(1), None, Some(H)]))]);

    // FFN chunks (§1.3–1.5): infer (default) + prefill, one fp16 state of all layers.
    for (n, last) in [("llama_FFN_PF_chunk_01of02", false), ("llama_FFN_PF_chunk_02of02", true)] {
        let p = pkg[n];
        assert_eq!(p["default_function"], "infer", "{n}");
        assert_eq!(p["functions"].as_object().unwrap().len(), 2, "{n}");
        let (inputs, states, outputs) = interface(p, "infer");
        assert_eq!(inputs, ffn_inputs(1), "{n} infer");
        assert_eq!(states, json!({"model_model_kv_cache_0": state()}), "{n} infer");
        assert_eq!(outputs, vec![("output_hidden_states".to_string(), fixed("fp16", &[1, 1, H]))], "{n} infer");
        let (inputs, states, outputs) = interface(p, "prefill");
        assert_eq!(inputs, ffn_inputs(BATCH), "{n} prefill");
        assert_eq!(states, json!({"model_model_kv_cache_0": state()}), "{n} prefill");
        let rows = if last { 1 } else { BATCH };
        assert_eq!(outputs, vec![("output_hidden_states".to_string(), fixed("fp16", &[1, rows, H]))], "{n} prefill");
        let ud = &p["metadata"]["user_defined"];
        assert_eq!(ud["com.anemll.context_length"], "32");
        assert_eq!(ud["com.anemll.batch_size"], "8");
        assert_eq!(ud["com.anemll.num_chunks"], "2");
        assert_eq!(ud["com.anemll.chunk_no"], if last { "2" } else { "1" });
    }

    // LM head (§1.6): hidden_states [1,1,H] → logits1..3 covering all 512 ids.
    let head = pkg["llama_lm_head"];
    let (inputs, _, outputs) = interface(head, "main");
    assert_eq!(inputs, json!({"hidden_states": fixed("fp16", &[1, 1, H])}));
    let want: Vec<(String, Value)> = [176, 168, 168]
        .iter()
        .enumerate()
        .map(|(k, &v)| (format!("logits{}", k + 1), fixed("fp16", &[1, 1, v])))
        .collect();
    assert_eq!(outputs, want);
}

/// The same module emitted with 1 and with 2 rayon threads gives byte-identical folders.
#[test]
fn output_is_byte_identical_across_thread_counts() {
    let module = optimised("llama_tiny", None);
    let dir = scratch("determinism");
    let mut folders = Vec::new();
    for threads in [1, 2] {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        let out = dir.join(format!("out{threads}"));
        pool.install(|| emit("llama_tiny", &module, Some(2), &out));
        folders.push(dir_contents(&out));
    }
    assert!(folders[0].len() > 10, "{:?}", folders[0].keys());
    assert_eq!(folders[0].keys().collect::<Vec<_>>(), folders[1].keys().collect::<Vec<_>>());
    for (k, v) in &folders[0] {
        assert!(&folders[1][k] == v, "{k} differs between 1 and 2 threads");
    }
}
