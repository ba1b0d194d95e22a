//! Regression tests for reliability bugs: each was a panic, an abort or a misleading error on
//! hostile input, found by fuzzing (`fuzz/`) or by probing the CLI (tests/hostile_inputs.rs).
//! Reproducers are inline so the tests need no files; fuzz-found ones are also in the fuzz
//! seed corpora. See docs/reliability.md for the findings.

mod hostile_support;

use std::fs;
use std::path::Path;

use anemllc::checkpoint::Checkpoint;
use anemllc::frontend::config::{ConfigError, ModelConfig};
use anemllc::frontend::{LowerError, LowerOptions, lower_checkpoint, rope};
use anemllc::weights::{TensorSource, WeightError};
use hostile_support::*;
use serde_json::json;

fn config_from(json: serde_json::Value) -> Result<ModelConfig, ConfigError> {
    ModelConfig::from_json_str(&json.to_string(), Path::new("config.json"))
}

fn llama(extra: serde_json::Value) -> serde_json::Value {
    let mut c = json!({
        "model_type": "llama", "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
        "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 512,
    });
    for (k, v) in extra.as_object().unwrap() {
        c[k] = v.clone();
    }
    c
}

/// `heads × head_dim` overflowed usize in `declare_weights` (src/frontend/lower.rs): a panic
/// with overflow checks, a wrapped size without. The config is now refused.
#[test]
fn heads_times_head_dim_overflow_is_a_config_error() {
    let big = 1u64 << 32;
    let err = config_from(llama(json!({"num_attention_heads": big, "num_key_value_heads": big, "head_dim": big})))
        .unwrap_err();
    let msg = err.to_string();
    assert!(matches!(&err, ConfigError::Invalid { field, .. } if field == "head_dim"), "{msg}");
    assert!(msg.contains("config.json") && msg.contains("overflows"), "{msg}");
    // Large but representable is still accepted.
    assert!(
        config_from(llama(json!({"num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 1 << 20}))).is_ok()
    );
}

/// `num_hidden_layers = 10^12` made `lower` allocate a per-layer spec before looking up any
/// tensor: "memory allocation of 336000000000000 bytes failed", abort.
#[test]
fn more_layers_than_checkpoint_tensors_is_refused_before_allocating() {
    let dir = scratch("hostile_regressions", "layers");
    copy_fixture("llama_tiny", &dir);
    edit_config(&dir, |c| {
        c.insert("num_hidden_layers".into(), json!(1_000_000_000_000u64));
    });
    let err = lower_checkpoint(&dir, &LowerOptions::new(32, 8)).unwrap_err();
    let msg = err.to_string();
    assert!(
        matches!(&err, LowerError::Config(ConfigError::Invalid { field, .. }) if field == "num_hidden_layers"),
        "{msg}"
    );
    assert!(msg.contains("config.json") && msg.contains("holds only 30 tensors"), "{msg}");
    // One layer more than the checkpoint has is still the precise missing-tensor error.
    edit_config(&dir, |c| {
        c.insert("num_hidden_layers".into(), json!(4));
    });
    let err = lower_checkpoint(&dir, &LowerOptions::new(32, 8)).unwrap_err();
    assert!(matches!(err, LowerError::MissingTensor { .. }), "{err}");
}

/// `--context 2^62 --batch 2^62` gave "internal error: lowering produced ill-typed IR
/// (reshape.numel …); please report this": the attention tensors' element counts overflow.
#[test]
fn context_whose_attention_tensors_overflow_is_an_option_error() {
    let huge = 1usize << 62;
    let err = lower_checkpoint(&fixture("llama_tiny"), &LowerOptions::new(huge, huge)).unwrap_err();
    assert!(matches!(err, LowerError::Option(_)), "{err}");
    assert!(err.to_string().contains("too large"), "{err}");
    // A long but representable context still lowers (nothing is allocated for it).
    lower_checkpoint(&fixture("llama_tiny"), &LowerOptions::new(1 << 20, 8)).unwrap();
}

/// A NaN/Inf weight used to flow silently into `run`'s logits; reading checkpoint values for
/// materialisation now refuses it, naming tensor and file.
#[test]
fn non_finite_checkpoint_values_are_refused_when_read() {
    let dir = scratch("hostile_regressions", "nan");
    copy_fixture("llama_tiny", &dir);
    let file = dir.join("model.safetensors");
    edit_safetensors(&file, |s| {
        s.poke("model.norm.weight", 5, &f32::NAN.to_le_bytes());
        s.poke("model.norm.weight", 6, &f32::INFINITY.to_le_bytes());
        s.poke("model.norm.weight", 9, &f32::NAN.to_le_bytes());
    });
    let ckpt = Checkpoint::open(&dir).unwrap();
    let err = ckpt.read_f32("model.norm.weight").unwrap_err();
    assert_eq!(
        err,
        WeightError::NonFinite { tensor: "model.norm.weight".into(), file: file.clone(), nan: 2, inf: 1, first: 5 }
    );
    let msg = err.to_string();
    assert!(msg.contains(&file.display().to_string()) && msg.contains("\"model.norm.weight\""), "{msg}");
    // Finite values, however large, are not this check's business.
    let (_, v) = ckpt.read_f32("model.layers.0.input_layernorm.weight").unwrap();
    assert!(v.iter().all(|x| x.is_finite()));
    let _ = fs::remove_dir_all(&dir);
}

/// fuzz/config_json (crash-ee596fdc…, now fuzz/corpus/config_json/regress_tiny_theta.json):
/// `rope_theta = 1e-300` (and a linear factor of 1e-300) is a finite, positive f64, so the
/// config was accepted, but in f32 (the precision of the RoPE tables) theta is 0, every
/// inverse frequency but the first is Inf and the cos/sin tables are NaN — a module that
/// lowered fine and computed garbage. `lower` now refuses it, naming the field.
#[test]
fn rope_frequencies_that_overflow_f32_are_refused() {
    // The crash input, byte for byte.
    const REPRODUCER: &str = concat!(
        r#"{"model_type": "llama", "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "#,
        r#""num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 512, "rope_theta": 1e-300, "#,
        r#""rope_scaling": {"rope_type": "linear", "factor": 1e-300}}"#,
    );
    assert_eq!(REPRODUCER.as_bytes(), include_bytes!("../fuzz/corpus/config_json/regress_tiny_theta.json"));
    let cfg = ModelConfig::from_json_str(REPRODUCER, Path::new("config.json")).unwrap();
    assert!(!rope::finite_tables(&rope::inv_freq_for_context(&cfg, 32), 32));

    let dir = scratch("hostile_regressions", "tiny_theta");
    copy_fixture("llama_tiny", &dir);
    for (theta, scaling) in
        [(json!(1e-300), json!(null)), (json!(10000.0), json!({"rope_type": "linear", "factor": 1e-300}))]
    {
        edit_config(&dir, |c| {
            c.insert("rope_theta".into(), theta.clone());
            c.insert("rope_scaling".into(), scaling.clone());
        });
        let err =
            lower_checkpoint(&dir, &LowerOptions { context: 32, batch: 8, ..LowerOptions::default() }).unwrap_err();
        let msg = err.to_string();
        assert!(
            matches!(&err, LowerError::Config(ConfigError::Invalid { field, .. }) if field == "rope_theta"),
            "{msg}"
        );
        assert!(msg.contains("config.json") && msg.contains("not finite in f32"), "{msg}");
    }
    // Unusual but harmless values still lower: a huge theta only drives frequencies to 0.
    edit_config(&dir, |c| {
        c.insert("rope_theta".into(), json!(1e300));
        c.insert("rope_scaling".into(), json!(null));
    });
    lower_checkpoint(&dir, &LowerOptions { context: 32, batch: 8, ..LowerOptions::default() }).unwrap();
    let _ = fs::remove_dir_all(&dir);
}

/// Runs `f` on another thread and fails the test if it has not returned within a minute
/// (a hung thread is leaked; the test process ends anyway).
fn within_a_minute<T: Send + 'static>(what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(std::time::Duration::from_secs(60)).unwrap_or_else(|_| panic!("{what} hung"))
}

/// Found while probing the CLI: a FIFO named `model.safetensors`, `config.json` or
/// `model.safetensors.index.json` made `lower` block forever in open(2)/read(2). Each is now
/// refused as "not a regular file" before it is opened.
#[test]
fn fifos_are_refused_instead_of_blocking() {
    let dir = scratch("hostile_regressions", "fifo_single");
    copy_fixture("llama_tiny", &dir);
    mkfifo(&dir.join("model.safetensors"));
    let d = dir.clone();
    let err = within_a_minute("Checkpoint::open on a FIFO", move || Checkpoint::open(&d).unwrap_err());
    assert!(err.to_string().contains("model.safetensors: not a regular file"), "{err}");

    mkfifo(&dir.join("config.json"));
    let d = dir.clone();
    let err = within_a_minute("ModelConfig::from_dir on a FIFO", move || ModelConfig::from_dir(&d).unwrap_err());
    assert!(err.to_string().contains("config.json: not a regular file"), "{err}");

    let dir = scratch("hostile_regressions", "fifo_index");
    copy_fixture("llama_sharded", &dir);
    mkfifo(&dir.join("model.safetensors.index.json"));
    let d = dir.clone();
    let err = within_a_minute("Checkpoint::open on a FIFO index", move || Checkpoint::open(&d).unwrap_err());
    assert!(err.to_string().contains("model.safetensors.index.json: not a regular file"), "{err}");
}

/// Found while probing the CLI: `run --decode 18446744073709551615` panicked with "attempt to
/// add with overflow" in `Session::generate_greedy` (prompt length + n).
#[test]
fn decode_count_that_overflows_is_an_error() {
    let dir = scratch("hostile_regressions", "decode_overflow");
    let module = dir.join("m.air");
    let lowered = lower(&fixture("llama_tiny"), &module, SIZES);
    assert_eq!(lowered.code, Some(0), "{}", lowered.stderr);
    let o =
        output_or_hang(anemllc().arg("run").arg(&module).args(["--tokens", "1", "--decode", &usize::MAX.to_string()]));
    assert_eq!(failure_problems(&o, 1, &["does not fit the context 32".to_string()]), Vec::<String>::new());
    let _ = fs::remove_dir_all(&dir);
}

/// Found while probing: a module lowered with `--context 1099511627776` (valid: nothing is
/// allocated at lowering) made `run` abort with "memory allocation of 281474976710656 bytes
/// failed" when it zeroed the KV-cache states. States are now allocated fallibly.
#[test]
fn states_too_large_to_allocate_are_an_error() {
    let dir = scratch("hostile_regressions", "huge_state");
    let module = dir.join("m.air");
    let lowered = lower(&fixture("llama_tiny"), &module, &["--context", "1099511627776", "--batch", "8"]);
    assert_eq!(lowered.code, Some(0), "{}", lowered.stderr);
    let o = output_or_hang(anemllc().arg("run").arg(&module).args(["--tokens", "1", "--decode", "1"]));
    let problems = failure_problems(&o, 2, &["state `kv_cache_0`".into(), "too large to allocate".into()]);
    assert!(problems.is_empty(), "{problems:?}: {}", o.stderr);
    let _ = fs::remove_dir_all(&dir);
}

/// The same for a RoPE table whose length comes from a (hand-written) module:
/// `rope_cos(len = 2^60)` aborted on allocation failure.
#[test]
fn rope_table_too_large_to_allocate_is_an_error() {
    let err =
        anemllc::weights::rope_table(&[1.0, 0.1], 1 << 60, 1.0, anemllc::weights::Trig::Cos, anemllc::ir::DType::F32)
            .unwrap_err();
    assert!(err.to_string().contains("too large to allocate"), "{err}");
    let ok = anemllc::weights::rope_table(&[1.0, 0.1], 8, 1.0, anemllc::weights::Trig::Sin, anemllc::ir::DType::F32);
    assert!(ok.is_ok());
}
