//! config.json → ModelConfig: real-world configs, transformers' defaults, and every error.

use std::path::Path;

use anemllc::frontend::config::{Activation, Arch, BlockFeatures, ConfigError, ModelConfig, RawConfig, RopeScaling};

const FILE: &str = "models/x/config.json";

fn parse(json: &str) -> Result<ModelConfig, ConfigError> {
    ModelConfig::from_json_str(json, Path::new(FILE))
}

/// Parses, expecting an error whose one-line message names the file and contains `needles`.
fn parse_err(json: &str, needles: &[&str]) -> ConfigError {
    let err = parse(json).expect_err("config should be rejected");
    let msg = err.to_string();
    assert!(!msg.contains('\n'), "multi-line message: {msg}");
    assert!(msg.starts_with(FILE), "message does not start with the file: {msg}");
    for needle in needles {
        assert!(msg.contains(needle), "message lacks {needle:?}: {msg}");
    }
    err
}

/// A minimal config of the given model_type plus `extra` fields (a JSON fragment that
/// starts with a comma), or with `extra` overriding nothing when empty.
fn minimal(model_type: &str, extra: &str) -> String {
    format!(
        r#"{{"model_type": "{model_type}", "hidden_size": 64, "intermediate_size": 128,
            "num_hidden_layers": 2, "num_attention_heads": 4, "vocab_size": 100 {extra}}}"#
    )
}

// ---------------------------------------------------------------- real configs

const LLAMA_3_2_1B: &str = r#"{
  "architectures": ["LlamaForCausalLM"], "attention_bias": false, "attention_dropout": 0.0,
  "bos_token_id": 128000, "eos_token_id": [128001, 128008, 128009], "head_dim": 64,
  "hidden_act": "silu", "hidden_size": 2048, "initializer_range": 0.02,
  "intermediate_size": 8192, "max_position_embeddings": 131072, "mlp_bias": false,
  "model_type": "llama", "num_attention_heads": 32, "num_hidden_layers": 16,
  "num_key_value_heads": 8, "pretraining_tp": 1, "rms_norm_eps": 1e-05,
  "rope_scaling": {"factor": 32.0, "high_freq_factor": 4.0, "low_freq_factor": 1.0,
                   "original_max_position_embeddings": 8192, "rope_type": "llama3"},
  "rope_theta": 500000.0, "tie_word_embeddings": true, "torch_dtype": "bfloat16",
  "transformers_version": "4.45.0.dev0", "use_cache": true, "vocab_size": 128256
}"#;

const QWEN2_5_0_5B: &str = r#"{
  "architectures": ["Qwen2ForCausalLM"], "attention_dropout": 0.0, "bos_token_id": 151643,
  "eos_token_id": 151645, "hidden_act": "silu", "hidden_size": 896,
  "initializer_range": 0.02, "intermediate_size": 4864, "max_position_embeddings": 32768,
  "max_window_layers": 21, "model_type": "qwen2", "num_attention_heads": 14,
  "num_hidden_layers": 24, "num_key_value_heads": 2, "rms_norm_eps": 1e-06,
  "rope_theta": 1000000.0, "sliding_window": 32768, "tie_word_embeddings": true,
  "torch_dtype": "bfloat16", "transformers_version": "4.43.1", "use_cache": true,
  "use_sliding_window": false, "vocab_size": 151936
}"#;

const QWEN3_0_6B: &str = r#"{
  "architectures": ["Qwen3ForCausalLM"], "attention_bias": false, "attention_dropout": 0.0,
  "bos_token_id": 151643, "eos_token_id": 151645, "head_dim": 128, "hidden_act": "silu",
  "hidden_size": 1024, "initializer_range": 0.02, "intermediate_size": 3072,
  "max_position_embeddings": 40960, "max_window_layers": 28, "model_type": "qwen3",
  "num_attention_heads": 16, "num_hidden_layers": 28, "num_key_value_heads": 8,
  "rms_norm_eps": 1e-06, "rope_scaling": null, "rope_theta": 1000000,
  "sliding_window": null, "tie_word_embeddings": true, "torch_dtype": "bfloat16",
  "transformers_version": "4.51.0", "use_cache": true, "use_sliding_window": false,
  "vocab_size": 151936
}"#;

#[test]
fn llama_3_2_1b() {
    let c = parse(LLAMA_3_2_1B).unwrap();
    let want = ModelConfig {
        arch: Arch::Llama,
        hidden: 2048,
        intermediate: 8192,
        layers: 16,
        heads: 32,
        kv_heads: 8,
        head_dim: 64,
        vocab: 128256,
        rms_eps: 1e-5,
        rope_theta: 500000.0,
        rope_scaling: RopeScaling::Llama3 {
            factor: 32.0,
            low_freq_factor: 1.0,
            high_freq_factor: 4.0,
            original_max_position_embeddings: 8192,
        },
        max_position_embeddings: 131072,
        tie_word_embeddings: true,
        qkv_bias: false,
        o_bias: false,
        mlp_bias: false,
        qk_norm: false,
        hidden_act: Activation::Silu,
        eos_token_ids: vec![128001, 128008, 128009],
        bos_token_id: Some(128000),
        torch_dtype: Some("bfloat16".into()),
        features: BlockFeatures::plain(16, 64),
    };
    assert_eq!(c, want);
}

#[test]
fn qwen2_5_0_5b() {
    let c = parse(QWEN2_5_0_5B).unwrap();
    assert_eq!(c.arch, Arch::Qwen2);
    assert_eq!((c.hidden, c.intermediate, c.layers), (896, 4864, 24));
    assert_eq!((c.heads, c.kv_heads, c.head_dim), (14, 2, 64));
    assert_eq!(c.vocab, 151936);
    assert_eq!(c.rms_eps, 1e-6);
    assert_eq!(c.rope_theta, 1e6);
    assert_eq!(c.rope_scaling, RopeScaling::None);
    assert_eq!(c.max_position_embeddings, 32768);
    assert!(c.tie_word_embeddings);
    assert!(c.qkv_bias, "qwen2 always has q/k/v bias");
    assert!(!c.o_bias && !c.mlp_bias && !c.qk_norm);
    assert_eq!(c.eos_token_ids, vec![151645]);
    assert_eq!(c.bos_token_id, Some(151643));
}

#[test]
fn qwen3_0_6b() {
    let c = parse(QWEN3_0_6B).unwrap();
    assert_eq!(c.arch, Arch::Qwen3);
    assert_eq!((c.heads, c.kv_heads, c.head_dim), (16, 8, 128));
    assert_eq!(c.hidden, 1024);
    assert_eq!(c.rope_theta, 1e6, "integer rope_theta is accepted");
    assert_eq!(c.max_position_embeddings, 40960);
    assert!(c.qk_norm);
    assert!(!c.qkv_bias && !c.o_bias && !c.mlp_bias);
    assert_eq!(c.torch_dtype.as_deref(), Some("bfloat16"));
}

// ---------------------------------------------------------------- defaults

#[test]
fn llama_defaults() {
    let c = parse(&minimal("llama", "")).unwrap();
    assert_eq!(c.kv_heads, 4, "num_key_value_heads defaults to num_attention_heads");
    assert_eq!(c.head_dim, 16, "head_dim defaults to hidden / heads");
    assert_eq!(c.rope_theta, 10000.0);
    assert_eq!(c.rms_eps, 1e-6);
    assert_eq!(c.max_position_embeddings, 2048);
    assert_eq!(c.rope_scaling, RopeScaling::None);
    assert!(!c.tie_word_embeddings);
    assert!(!c.qkv_bias && !c.o_bias && !c.mlp_bias && !c.qk_norm);
    assert_eq!(c.hidden_act, Activation::Silu);
    assert_eq!(c.bos_token_id, Some(1), "LlamaConfig bos_token_id=1");
    assert_eq!(c.eos_token_ids, vec![2], "LlamaConfig eos_token_id=2");
    assert_eq!(c.torch_dtype, None);
}

#[test]
fn llama_reads_optional_fields() {
    let c = parse(&minimal(
        "llama",
        r#", "head_dim": 32, "attention_bias": true, "mlp_bias": true,
            "num_key_value_heads": 2, "dtype": "float16""#,
    ))
    .unwrap();
    assert_eq!(c.head_dim, 32);
    assert_eq!(c.kv_heads, 2);
    assert!(c.qkv_bias && c.o_bias && c.mlp_bias);
    assert_eq!(c.torch_dtype.as_deref(), Some("float16"));
}

#[test]
fn qwen2_defaults() {
    let c = parse(&minimal("qwen2", r#", "num_attention_heads": 32, "hidden_size": 256"#)).unwrap();
    assert_eq!(c.kv_heads, 32, "Qwen2Config num_key_value_heads=32 when absent");
    assert_eq!(c.head_dim, 8);
    assert_eq!(c.max_position_embeddings, 32768);
    assert_eq!(c.rope_theta, 10000.0);
    assert_eq!(c.rms_eps, 1e-6);
    assert!(c.qkv_bias && !c.o_bias);
    assert_eq!(c.bos_token_id, None);
    assert!(c.eos_token_ids.is_empty());
}

#[test]
fn qwen2_ignores_attention_bias_and_null_kv_heads_means_heads() {
    let c = parse(&minimal("qwen2", r#", "attention_bias": false, "num_key_value_heads": null"#)).unwrap();
    assert!(c.qkv_bias, "Qwen2Attention hardcodes bias=True");
    assert_eq!(c.kv_heads, 4);
}

#[test]
fn qwen2_head_dim_from_config() {
    let c = parse(&minimal("qwen2", r#", "head_dim": 32, "num_key_value_heads": 4"#)).unwrap();
    assert_eq!(c.head_dim, 32);
}

#[test]
fn qwen3_defaults() {
    let c = parse(&minimal("qwen3", r#", "num_key_value_heads": 2"#)).unwrap();
    assert_eq!(c.head_dim, 128, "Qwen3Config head_dim=128 when absent");
    assert_eq!(c.max_position_embeddings, 32768);
    assert!(c.qk_norm);
    assert!(!c.qkv_bias);
    let c = parse(&minimal("qwen3", r#", "num_key_value_heads": 2, "attention_bias": true"#)).unwrap();
    assert!(c.qkv_bias && c.o_bias && !c.mlp_bias);
    let c = parse(&minimal("qwen3", r#", "num_key_value_heads": 2, "head_dim": null"#)).unwrap();
    assert_eq!(c.head_dim, 16, "explicit null head_dim means hidden / heads");
}

#[test]
fn arch_from_architectures_when_model_type_absent() {
    let json = r#"{"architectures": ["Qwen3ForCausalLM"], "hidden_size": 64,
        "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
        "num_key_value_heads": 4, "head_dim": 16, "vocab_size": 100}"#;
    assert_eq!(parse(json).unwrap().arch, Arch::Qwen3);
}

#[test]
fn unknown_fields_are_ignored() {
    let c =
        parse(&minimal("llama", r#", "some_future_field": {"nested": [1, 2]}, "auto_map": "x", "use_cache": true"#));
    assert!(c.is_ok());
}

// ---------------------------------------------------------------- token ids

#[test]
fn eos_as_int_list_and_null() {
    let c = parse(&minimal("qwen2", r#", "num_key_value_heads": 4, "eos_token_id": 7"#)).unwrap();
    assert_eq!(c.eos_token_ids, vec![7]);
    let c = parse(&minimal("qwen2", r#", "num_key_value_heads": 4, "eos_token_id": [7, 8]"#)).unwrap();
    assert_eq!(c.eos_token_ids, vec![7, 8]);
    let c = parse(&minimal("llama", r#", "eos_token_id": null, "bos_token_id": null"#)).unwrap();
    assert!(c.eos_token_ids.is_empty(), "explicit null overrides Llama's default 2");
    assert_eq!(c.bos_token_id, None);
}

#[test]
fn eos_wrong_type() {
    parse_err(&minimal("llama", r#", "eos_token_id": "</s>""#), &[r#"field "eos_token_id""#]);
    parse_err(&minimal("llama", r#", "eos_token_id": [1, -2]"#), &[r#"field "eos_token_id""#]);
}

// ---------------------------------------------------------------- rope

#[test]
fn rope_linear_dynamic_and_legacy_type_key() {
    let c = parse(&minimal("llama", r#", "rope_scaling": {"type": "linear", "factor": 2.0}"#)).unwrap();
    assert_eq!(c.rope_scaling, RopeScaling::Linear { factor: 2.0 });
    let c = parse(&minimal(
        "llama",
        r#", "max_position_embeddings": 4096,
            "rope_scaling": {"rope_type": "dynamic", "factor": 2,
                             "original_max_position_embeddings": 1024}"#,
    ))
    .unwrap();
    assert_eq!(
        c.rope_scaling,
        RopeScaling::Dynamic { factor: 2.0, original_max: 4096 },
        "transformers uses max_position_embeddings for dynamic NTK"
    );
    // Legacy "type" wins over "rope_type" (transformers copies it over).
    let c = parse(&minimal("llama", r#", "rope_scaling": {"type": "linear", "rope_type": "default", "factor": 3.0}"#))
        .unwrap();
    assert_eq!(c.rope_scaling, RopeScaling::Linear { factor: 3.0 });
    let c = parse(&minimal("llama", r#", "rope_scaling": {"rope_type": "default"}"#)).unwrap();
    assert_eq!(c.rope_scaling, RopeScaling::None);
}

#[test]
fn rope_parameters_v5_form() {
    let c = parse(&minimal(
        "llama",
        r#", "rope_theta": 1.0,
            "rope_parameters": {"rope_type": "linear", "factor": 4.0, "rope_theta": 50000.0}"#,
    ))
    .unwrap();
    assert_eq!(c.rope_theta, 50000.0);
    assert_eq!(c.rope_scaling, RopeScaling::Linear { factor: 4.0 });
    let c = parse(&minimal(
        "qwen3",
        r#", "num_key_value_heads": 4, "rope_parameters": {"rope_type": "default",
            "rope_theta": 1000000.0}"#,
    ))
    .unwrap();
    assert_eq!((c.rope_theta, c.rope_scaling), (1e6, RopeScaling::None));
}

#[test]
fn rope_errors() {
    parse_err(
        &minimal("llama", r#", "rope_scaling": {"rope_type": "yarn", "factor": 4.0}"#),
        &[r#"field "rope_scaling.rope_type""#, r#""yarn" is not supported"#, "llama3"],
    );
    parse_err(
        &minimal("llama", r#", "rope_scaling": {"rope_type": "linear"}"#),
        &[r#"field "rope_scaling.factor": required but missing"#],
    );
    parse_err(
        &minimal("llama", r#", "rope_scaling": {"factor": 2.0}"#),
        &[r#"field "rope_scaling.rope_type": required but missing"#],
    );
    parse_err(
        &minimal("llama", r#", "rope_scaling": {"rope_type": "linear", "factor": -1}"#),
        &[r#"field "rope_scaling.factor""#, "must be finite and > 0"],
    );
    parse_err(
        &minimal("llama", r#", "rope_scaling": {"rope_type": "linear", "factor": "2"}"#),
        &[r#"field "rope_scaling.factor""#, "expected a number"],
    );
    parse_err(
        &minimal(
            "llama",
            r#", "rope_scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                "high_freq_factor": 4.0}"#,
        ),
        &[r#"field "rope_scaling.original_max_position_embeddings": required but missing"#],
    );
    parse_err(
        &minimal(
            "llama",
            r#", "rope_scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 4.0,
                "high_freq_factor": 1.0, "original_max_position_embeddings": 8192}"#,
        ),
        &[r#"field "rope_scaling.high_freq_factor""#, "greater than"],
    );
    parse_err(
        &minimal("llama", r#", "rope_scaling": [1]"#),
        &[r#"field "rope_scaling": must be a JSON object or null"#],
    );
    parse_err(&minimal("llama", r#", "rope_theta": 0"#), &[r#"field "rope_theta""#, "finite and > 0"]);
    parse_err(
        &minimal("llama", r#", "partial_rotary_factor": 0.5"#),
        &[r#"field "partial_rotary_factor": 0.5 is not supported"#],
    );
    parse_err(&minimal("llama", r#", "head_dim": 15"#), &[r#"field "head_dim""#, "must be even"]);
}

// ---------------------------------------------------------------- errors

#[test]
fn not_json_and_not_object() {
    let err = parse_err("{ not json", &["not valid JSON"]);
    assert!(matches!(err, ConfigError::Json { .. }));
    parse_err("[1, 2]", &["top level must be a JSON object"]);
}

#[test]
fn missing_required_fields() {
    for field in ["hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads", "vocab_size"] {
        let mut v: serde_json::Value = serde_json::from_str(&minimal("llama", "")).unwrap();
        v.as_object_mut().unwrap().remove(field);
        let err = parse_err(&v.to_string(), &[&format!("field {field:?}: required but missing")]);
        assert!(matches!(err, ConfigError::MissingField { .. }));
    }
}

#[test]
fn wrong_json_types_name_the_field() {
    let err =
        parse_err(&minimal("llama", r#", "hidden_size": "4096""#), &[r#"field "hidden_size""#, "invalid type: string"]);
    assert!(matches!(err, ConfigError::FieldType { .. }));
    parse_err(&minimal("llama", r#", "num_hidden_layers": -3"#), &[r#"field "num_hidden_layers""#]);
    parse_err(&minimal("llama", r#", "rms_norm_eps": "1e-6""#), &[r#"field "rms_norm_eps""#]);
    parse_err(&minimal("llama", r#", "tie_word_embeddings": 1"#), &[r#"field "tie_word_embeddings""#]);
    parse_err(&minimal("llama", r#", "intermediate_size": 12.5"#), &[r#"field "intermediate_size""#]);
}

#[test]
fn quantized_checkpoint_rejected() {
    let err = parse_err(
        &minimal("llama", r#", "quantization_config": {"quant_method": "gptq", "bits": 4}"#),
        &[r#"field "quantization_config""#, "quantized checkpoints are not supported; dequantize first"],
    );
    assert!(matches!(err, ConfigError::Quantized { .. }));
    assert!(parse(&minimal("llama", r#", "quantization_config": null"#)).is_ok());
}

#[test]
fn hidden_not_divisible_by_heads() {
    let err = parse_err(
        &minimal("llama", r#", "hidden_size": 66"#),
        &[r#"field "hidden_size": 66 is not divisible by num_attention_heads (4)"#, "no head_dim"],
    );
    assert!(matches!(err, ConfigError::NotDivisible { .. }));
    // With an explicit head_dim, hidden need not divide.
    assert!(parse(&minimal("llama", r#", "hidden_size": 66, "head_dim": 16"#)).is_ok());
}

#[test]
fn heads_not_divisible_by_kv_heads() {
    parse_err(
        &minimal("llama", r#", "num_key_value_heads": 3"#),
        &[r#"field "num_attention_heads": 4 is not divisible by num_key_value_heads (3)"#],
    );
    // Qwen's default of 32 kv heads is named when it is the culprit.
    parse_err(&minimal("qwen2", ""), &["transformers' Qwen default is 32"]);
}

#[test]
fn zero_sizes() {
    for field in [
        "hidden_size",
        "intermediate_size",
        "num_hidden_layers",
        "num_attention_heads",
        "vocab_size",
        "num_key_value_heads",
        "head_dim",
        "max_position_embeddings",
    ] {
        let err = parse_err(
            &minimal("llama", &format!(r#", "{field}": 0"#)),
            &[&format!("field {field:?}: must be greater than zero")],
        );
        assert!(matches!(err, ConfigError::Zero { .. }), "{field}");
    }
}

#[test]
fn unsupported_architectures() {
    let err = parse_err(
        &minimal("mistral", ""),
        &[r#"field "model_type": unsupported architecture "mistral""#, "llama, qwen2, qwen3"],
    );
    assert!(matches!(err, ConfigError::UnsupportedArch { .. }));
    parse_err(&minimal("gpt2", ""), &[r#""gpt2""#]);
    let json = r#"{"architectures": ["MistralForCausalLM"], "hidden_size": 64}"#;
    parse_err(
        json,
        &[
            r#"field "architectures": unsupported architecture "MistralForCausalLM""#,
            "LlamaForCausalLM, Qwen2ForCausalLM, Qwen3ForCausalLM",
        ],
    );
    parse_err(r#"{"hidden_size": 64}"#, &["neither \"model_type\" nor \"architectures\""]);
    parse_err(r#"{"architectures": []}"#, &["cannot detect the architecture"]);
}

#[test]
fn unsupported_activation() {
    parse_err(&minimal("llama", r#", "hidden_act": "gelu""#), &[r#"field "hidden_act": "gelu" is not supported"#]);
}

#[test]
fn sliding_window() {
    let base = r#", "num_key_value_heads": 4, "num_hidden_layers": 4"#;
    // Disabled: fine whatever sliding_window says.
    assert!(
        parse(&minimal("qwen2", &format!(r#"{base}, "use_sliding_window": false, "sliding_window": 4096"#))).is_ok()
    );
    // Enabled but no layer at or past max_window_layers: fine.
    assert!(
        parse(&minimal("qwen2", &format!(r#"{base}, "use_sliding_window": true, "max_window_layers": 4"#))).is_ok()
    );
    // Enabled on layers 2..4: rejected.
    parse_err(
        &minimal("qwen2", &format!(r#"{base}, "use_sliding_window": true, "max_window_layers": 2"#)),
        &[r#"field "use_sliding_window": true is not supported"#, "layers 2..4"],
    );
    parse_err(
        &minimal("qwen3", &format!(r#"{base}, "layer_types": ["full_attention", "sliding_attention"]"#)),
        &[r#"field "layer_types": "sliding_attention" is not supported"#],
    );
}

#[test]
fn raw_config_keeps_absent_and_null_apart() {
    let raw =
        RawConfig::from_json_str(r#"{"num_key_value_heads": null, "eos_token_id": [1, 2]}"#, Path::new(FILE)).unwrap();
    assert_eq!(raw.num_key_value_heads, Some(None));
    assert_eq!(raw.head_dim, None);
    assert!(raw.hidden_size.is_none());
}

#[test]
fn from_dir_reads_config_json() {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("config_parsing");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("config.json"), QWEN3_0_6B).unwrap();
    assert_eq!(ModelConfig::from_dir(&dir).unwrap().arch, Arch::Qwen3);

    let missing = dir.join("nothing-here");
    let err = ModelConfig::from_dir(&missing).unwrap_err();
    assert!(matches!(err, ConfigError::Io { .. }));
    assert!(err.to_string().starts_with(&missing.join("config.json").display().to_string()));
}
