//! `anemllc lower` on bad checkpoints and options: a one-line error naming the file, tensor
//! or field and the problem, exit code 2, no panic, and no output file.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A scratch copy of llama_tiny whose config.json is edited by `edit`.
fn edited_fixture(tag: &str, edit: impl FnOnce(&mut serde_json::Value)) -> PathBuf {
    edited("llama_tiny", tag, edit)
}

/// A scratch copy of fixture `name` whose config.json is edited by `edit`.
fn edited(name: &str, tag: &str, edit: impl FnOnce(&mut serde_json::Value)) -> PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/models").join(name);
    let dir = std::env::temp_dir().join(format!("anemllc-lower-err-{}-{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    for f in ["model.safetensors", "config.json"] {
        std::fs::copy(src.join(f), dir.join(f)).unwrap();
    }
    let mut cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("config.json")).unwrap()).unwrap();
    edit(&mut cfg);
    std::fs::write(dir.join("config.json"), serde_json::to_string_pretty(&cfg).unwrap()).unwrap();
    dir
}

fn lower(dir: &Path, extra: &[&str]) -> (Option<i32>, String, PathBuf) {
    let out = dir.join("out.air");
    let sizes: &[&str] = if extra.is_empty() { &["--context", "32", "--batch", "8"] } else { extra };
    let o = Command::new(env!("CARGO_BIN_EXE_anemllc"))
        .arg("lower")
        .arg(dir)
        .arg("-o")
        .arg(&out)
        .args(sizes)
        .output()
        .unwrap();
    (o.status.code(), String::from_utf8_lossy(&o.stderr).into_owned(), out)
}

fn assert_clean_failure(tag: &str, dir: &Path, extra: &[&str], wants: &[&str]) {
    let (code, stderr, out) = lower(dir, extra);
    assert_eq!(code, Some(2), "{tag}: {stderr}");
    assert!(!stderr.contains("panicked"), "{tag}: {stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "{tag}: one line: {stderr}");
    for want in wants {
        assert!(stderr.contains(want), "{tag}: {stderr:?} should contain {want:?}");
    }
    assert!(!out.exists(), "{tag}: no output may be written");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn missing_tensor_is_named() {
    let dir = edited_fixture("missing", |c| c["num_hidden_layers"] = 4.into());
    assert_clean_failure("missing", &dir, &[], &["model.layers.3.input_layernorm.weight", "missing", "layer 3"]);
}

#[test]
fn wrong_shape_is_named() {
    let dir = edited_fixture("shape", |c| c["intermediate_size"] = 100.into());
    assert_clean_failure(
        "shape",
        &dir,
        &[],
        &["model.safetensors", "model.layers.0.mlp.gate_proj.weight", "[128, 64]", "[100, 64]"],
    );
}

#[test]
fn unknown_architecture_is_named() {
    let dir = edited_fixture("arch", |c| {
        c["model_type"] = "mamba".into();
        c["architectures"] = serde_json::json!(["MambaForCausalLM"]);
    });
    assert_clean_failure("arch", &dir, &[], &["config.json", "mamba"]);
}

#[test]
fn quantized_checkpoint_is_refused() {
    let dir =
        edited_fixture("quant", |c| c["quantization_config"] = serde_json::json!({"quant_method": "gptq", "bits": 4}));
    assert_clean_failure("quant", &dir, &[], &["config.json", "quantiz"]);
}

#[test]
fn missing_field_is_named() {
    let dir = edited_fixture("field", |c| {
        c.as_object_mut().unwrap().remove("hidden_size");
    });
    assert_clean_failure("field", &dir, &[], &["config.json", "hidden_size"]);
}

#[test]
fn wrong_field_type_is_named() {
    let dir = edited_fixture("ftype", |c| c["num_attention_heads"] = "four".into());
    assert_clean_failure("ftype", &dir, &[], &["config.json", "num_attention_heads"]);
}

#[test]
fn heads_not_divisible_by_kv_heads() {
    let dir = edited_fixture("gqa", |c| c["num_key_value_heads"] = 3.into());
    assert_clean_failure("gqa", &dir, &[], &["config.json", "num_key_value_heads"]);
}

#[test]
fn context_must_be_multiple_of_batch() {
    let dir = edited_fixture("ctx", |_| {});
    assert_clean_failure(
        "ctx",
        &dir,
        &["--context", "32", "--batch", "12"],
        &["--context 32", "--batch 12", "multiple"],
    );
}

#[test]
fn missing_model_dir_is_named() {
    let dir = std::env::temp_dir().join(format!("anemllc-lower-err-{}-none", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    assert_clean_failure("none", &dir, &[], &["config.json"]);
}

/// A named config edit and what its error must say.
type Case = (&'static str, fn(&mut serde_json::Value), &'static [&'static str]);

/// Gemma 3 configs that cannot be right: named by field, exit 2.
#[test]
fn gemma3_bad_configs_are_named() {
    let cases: [Case; 5] = [
        (
            "layer_types_length",
            |c| c["layer_types"] = serde_json::json!(["full_attention"]),
            &["layer_types", "1 entries", "3"],
        ),
        (
            "layer_types_entry",
            |c| c["layer_types"][1] = "chunked_attention".into(),
            &["layer_types[1]", "chunked_attention"],
        ),
        ("window_zero", |c| c["sliding_window"] = 0.into(), &["sliding_window", "greater than zero"]),
        ("window_null", |c| c["sliding_window"] = serde_json::Value::Null, &["sliding_window", "null"]),
        (
            "multimodal_without_text",
            |c| {
                c["model_type"] = "gemma3".into();
                c["architectures"] = serde_json::json!(["Gemma3ForConditionalGeneration"]);
            },
            &["text_config", "text tower"],
        ),
    ];
    for (tag, edit, wants) in cases {
        let dir = edited("gemma3_tiny", &format!("gemma3-{tag}"), edit);
        assert_clean_failure(tag, &dir, &[], wants);
    }
}

/// A missing Gemma norm tensor is named with its role; a batch that does not divide the
/// sliding window is refused with the reason.
#[test]
fn gemma3_missing_norm_and_bad_batch_are_named() {
    let dir = edited("gemma3_tiny", "gemma3-norm", |c| c["num_hidden_layers"] = 4.into());
    c_layer_types_for_four(&dir);
    assert_clean_failure("norm", &dir, &[], &["model.layers.3.input_layernorm.weight", "layer 3 input norm"]);
    let dir = edited("gemma3_tiny", "gemma3-batch", |_| {});
    assert_clean_failure("batch", &dir, &["--context", "32", "--batch", "16"], &["--batch 16", "sliding window 8"]);
}

/// Gives the 4-layer edit of gemma3_tiny a matching `layer_types`.
fn c_layer_types_for_four(dir: &Path) {
    let path = dir.join("config.json");
    let mut cfg: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    cfg["layer_types"] =
        serde_json::json!(["sliding_attention", "full_attention", "sliding_attention", "sliding_attention"]);
    std::fs::write(&path, serde_json::to_string_pretty(&cfg).unwrap()).unwrap();
}
