//! `DecoderSpec`: what a frontend tells the generic decoder lowering about one checkpoint —
//! tensor names per role and the architectural features to use. A frontend (one file per
//! architecture) only fills this in; `decoder.rs` turns it into IR.

/// Checkpoint tensor names of one decoder layer.
#[derive(Clone, Debug, PartialEq)]
pub struct LayerTensors {
    pub input_norm: String,
    pub q_proj: String,
    pub k_proj: String,
    pub v_proj: String,
    pub o_proj: String,
    /// q/k/v biases (Qwen2), present iff the spec's `qkv_bias` is set.
    pub qkv_bias: Option<[String; 3]>,
    /// Per-head q/k RMSNorm gains (Qwen3), present iff the spec's `qk_norm` is set.
    pub qk_norm: Option<[String; 2]>,
    /// The norm on the MLP input (`post_attention_layernorm` in Llama/Qwen,
    /// `pre_feedforward_layernorm` in Gemma).
    pub mlp_norm: String,
    /// Sandwich norms (Gemma): on the attention output and on the MLP output, before their
    /// residual adds; present iff the config's `sandwich_norms` is set.
    pub out_norms: Option<[String; 2]>,
    /// Full or sliding-window attention.
    pub kind: LayerKind,
    pub gate_proj: String,
    pub up_proj: String,
    pub down_proj: String,
}

use super::config::{LayerKind, ModelConfig};

/// Everything the generic decoder lowering needs besides the normalised config.
#[derive(Clone, Debug, PartialEq)]
pub struct DecoderSpec {
    pub embed_tokens: String,
    pub final_norm: String,
    /// The output projection's tensor; the embedding table's name when tied.
    pub lm_head: String,
    /// True when the output projection reuses the embedding table.
    pub tied: bool,
    /// The embedding output is multiplied by this (folded into the table the embedding
    /// functions gather from).
    pub embed_scale: Option<f64>,
    pub layers: Vec<LayerTensors>,
}

/// The tensor names of an HF decoder checkpoint whose text-model tensors start with
/// `prefix` (`model.` normally; `language_model.model.` or `model.language_model.` for the
/// text tower of a multimodal checkpoint) and whose output projection is `lm_head`. Which
/// optional tensors exist follows the config's features.
pub fn hf_decoder(cfg: &ModelConfig, prefix: &str, lm_head: &str, tied: bool) -> DecoderSpec {
    let f = &cfg.features;
    let layer = |i: usize| {
        let p = format!("{prefix}layers.{i}");
        LayerTensors {
            input_norm: format!("{p}.input_layernorm.weight"),
            q_proj: format!("{p}.self_attn.q_proj.weight"),
            k_proj: format!("{p}.self_attn.k_proj.weight"),
            v_proj: format!("{p}.self_attn.v_proj.weight"),
            o_proj: format!("{p}.self_attn.o_proj.weight"),
            qkv_bias: cfg.qkv_bias.then(|| {
                [
                    format!("{p}.self_attn.q_proj.bias"),
                    format!("{p}.self_attn.k_proj.bias"),
                    format!("{p}.self_attn.v_proj.bias"),
                ]
            }),
            qk_norm: f
                .qk_norm
                .then(|| [format!("{p}.self_attn.q_norm.weight"), format!("{p}.self_attn.k_norm.weight")]),
            mlp_norm: if f.sandwich_norms {
                format!("{p}.pre_feedforward_layernorm.weight")
            } else {
                format!("{p}.post_attention_layernorm.weight")
            },
            out_norms: f.sandwich_norms.then(|| {
                [format!("{p}.post_attention_layernorm.weight"), format!("{p}.post_feedforward_layernorm.weight")]
            }),
            kind: f.layer_kinds.get(i).copied().unwrap_or(LayerKind::Full),
            gate_proj: format!("{p}.mlp.gate_proj.weight"),
            up_proj: format!("{p}.mlp.up_proj.weight"),
            down_proj: format!("{p}.mlp.down_proj.weight"),
        }
    };
    let embed = format!("{prefix}embed_tokens.weight");
    DecoderSpec {
        lm_head: if tied { embed.clone() } else { lm_head.to_string() },
        embed_tokens: embed,
        final_norm: format!("{prefix}norm.weight"),
        tied,
        embed_scale: f.embed_scale,
        layers: (0..cfg.layers).map(layer).collect(),
    }
}

/// The Llama-family layout (`model.layers.{i}.…`, `lm_head.weight`).
pub fn hf_llama_family(cfg: &ModelConfig, tied: bool) -> DecoderSpec {
    hf_decoder(cfg, "model.", "lm_head.weight", tied)
}
