//! A model's `config.json`, rebuilt from GGUF metadata.
//!
//! The JSON has the keys a HuggingFace folder's config.json has (the "classic" transformers
//! 4.x form), so it goes through the same [`super::config::ModelConfig`] normalisation as a
//! folder's: one set of defaults and checks for both inputs. Keys follow transformers' GGUF
//! loader (`{arch}.embedding_length` → `hidden_size`, …), plus what that loader leaves out:
//! `rope.scaling.*`, the llama3 RoPE scaling recovered from the `rope_freqs` tensor, and
//! tied embeddings when `output.weight` is absent.
//!
//! The metadata is checked as it is read: a key of the wrong type, a non-finite float or an
//! architecture without a HuggingFace counterpart is an error naming the file and the key.
//! The tokenizer metadata is checked here too ([`gguf_tokenizer::check`]), although the
//! config does not use it: a file whose tokenizer cannot be rebuilt is then refused by every
//! command up front, instead of by `convert` after the packages are written.

use serde_json::{Map, Value as Json, json};

use crate::chat::gguf_tokenizer;
use crate::gguf::value::shown;
use crate::gguf::{GgmlType, GgufError, GgufFile};

/// HuggingFace `model_type` and `architectures[0]` of a GGUF `general.architecture`.
fn hf_architecture(arch: &str) -> (&str, Option<&'static str>) {
    match arch {
        "llama" => ("llama", Some("LlamaForCausalLM")),
        "qwen2" => ("qwen2", Some("Qwen2ForCausalLM")),
        "qwen3" => ("qwen3", Some("Qwen3ForCausalLM")),
        "gemma3" => ("gemma3_text", Some("Gemma3ForCausalLM")),
        other => (other, None),
    }
}

/// `key` as a finite float, `Ok(None)` when absent.
fn finite(file: &GgufFile, key: &str) -> Result<Option<f64>, GgufError> {
    match file.get_f64(key)? {
        Some(v) if !v.is_finite() => Err(file.error(format!("metadata {key:?} = {v} is not a finite number"))),
        other => Ok(other),
    }
}

/// config.json for the GGUF `file`.
pub fn config_json(file: &GgufFile) -> Result<Json, GgufError> {
    let arch =
        file.get_str("general.architecture")?.ok_or_else(|| file.error("metadata general.architecture is missing"))?;
    let (model_type, Some(class)) = hf_architecture(arch) else {
        return Err(file.error(format!(
            "metadata \"general.architecture\" = {} is not supported (supported: llama, qwen2, qwen3)",
            shown(arch)
        )));
    };
    gguf_tokenizer::check(file)?;
    let key = |k: &str| format!("{arch}.{k}");
    let mut cfg = Map::new();
    cfg.insert("model_type".into(), json!(model_type));
    cfg.insert("architectures".into(), json!([class]));
    let ints = [
        ("embedding_length", "hidden_size"),
        ("feed_forward_length", "intermediate_size"),
        ("block_count", "num_hidden_layers"),
        ("attention.head_count", "num_attention_heads"),
        ("attention.head_count_kv", "num_key_value_heads"),
        ("attention.key_length", "head_dim"),
        ("context_length", "max_position_embeddings"),
        ("vocab_size", "vocab_size"),
        ("attention.sliding_window", "sliding_window"),
    ];
    for (gguf, hf) in ints {
        if let Some(v) = file.get_u64(&key(gguf))? {
            cfg.insert(hf.into(), json!(v));
        }
    }
    for (gguf, hf) in [("rope.freq_base", "rope_theta"), ("attention.layer_norm_rms_epsilon", "rms_norm_eps")] {
        if let Some(v) = finite(file, &key(gguf))? {
            cfg.insert(hf.into(), json!(v));
        }
    }
    if !cfg.contains_key("vocab_size")
        && let Some(tokens) = file.get_array("tokenizer.ggml.tokens")?
    {
        cfg.insert("vocab_size".into(), json!(tokens.len()));
    }
    cfg.insert("tie_word_embeddings".into(), json!(file.tensor("output.weight").is_none()));
    for (gguf, hf) in [("tokenizer.ggml.bos_token_id", "bos_token_id"), ("tokenizer.ggml.eos_token_id", "eos_token_id")]
    {
        if let Some(v) = file.get_u64(gguf)? {
            cfg.insert(hf.into(), json!(v));
        }
    }
    if let Some(scaling) = rope_scaling(file, arch)? {
        cfg.insert("rope_scaling".into(), scaling);
    }
    cfg.insert("torch_dtype".into(), json!("float32"));
    Ok(Json::Object(cfg))
}

/// `rope_scaling` from `{arch}.rope.scaling.*`, or from llama3's `rope_freqs` tensor.
fn rope_scaling(file: &GgufFile, arch: &str) -> Result<Option<Json>, GgufError> {
    let key = |k: &str| format!("{arch}.rope.scaling.{k}");
    let kind = file.get_str(&key("type"))?;
    if let Some(kind) = kind.filter(|k| *k != "none") {
        let mut s = Map::new();
        s.insert("rope_type".into(), json!(kind));
        if let Some(f) = finite(file, &key("factor"))? {
            s.insert("factor".into(), json!(f));
        }
        if let Some(n) = file.get_u64(&key("original_context_length"))? {
            s.insert("original_max_position_embeddings".into(), json!(n));
        }
        return Ok(Some(Json::Object(s)));
    }
    if let Some(t) = file.tensor("rope_freqs.weight") {
        return llama3_from_rope_freqs(file, arch, t).map(Some);
    }
    Ok(None)
}

/// llama.cpp stores Llama 3.x's RoPE scaling as per-frequency divisors (`rope_freqs`) and no
/// metadata. Those divisors are what transformers' `llama3` rule gives for one factor with
/// Meta's published band parameters (low 1, high 4, original context 8192); we recover the
/// factor (the largest divisor), recompute every divisor with that rule and accept only an
/// exact-to-rounding match, so a file built another way is refused rather than guessed.
fn llama3_from_rope_freqs(file: &GgufFile, arch: &str, t: &crate::gguf::RawTensor) -> Result<Json, GgufError> {
    if t.ty != GgmlType::F32 || t.dims.len() != 1 {
        return Err(file.error("tensor \"rope_freqs.weight\" must be a 1-D F32 tensor"));
    }
    let divisors: Vec<f32> =
        file.data(t).chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
    let base = finite(file, &format!("{arch}.rope.freq_base"))?.unwrap_or(10000.0);
    let factor = divisors.iter().copied().fold(f32::MIN, f32::max) as f64;
    let (low, high, old) = (1.0f64, 4.0f64, 8192.0f64);
    let dim = 2 * divisors.len();
    let matches = factor.is_finite()
        && factor >= 1.0
        && divisors.iter().enumerate().all(|(i, &got)| {
            let freq = 1.0 / base.powf((2 * i) as f64 / dim as f64);
            let wavelen = 2.0 * std::f64::consts::PI / freq;
            let want = if wavelen < old / high {
                1.0
            } else if wavelen > old / low {
                factor
            } else {
                let smooth = (old / wavelen - low) / (high - low);
                1.0 / ((1.0 - smooth) / factor + smooth)
            };
            ((got as f64) - want).abs() <= 1e-4 * want
        });
    if !matches {
        return Err(file.error(
            "tensor \"rope_freqs.weight\" holds RoPE divisors that do not follow the llama3 scaling rule \
             (low 1, high 4, original context 8192); this RoPE scaling is not supported",
        ));
    }
    Ok(json!({
        "rope_type": "llama3",
        "factor": factor,
        "low_freq_factor": low,
        "high_freq_factor": high,
        "original_max_position_embeddings": old as u64,
    }))
}
