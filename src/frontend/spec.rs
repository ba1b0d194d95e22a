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
    pub post_attention_norm: String,
    pub gate_proj: String,
    pub up_proj: String,
    pub down_proj: String,
}

/// Everything the generic decoder lowering needs besides the normalised config.
#[derive(Clone, Debug, PartialEq)]
pub struct DecoderSpec {
    pub embed_tokens: String,
    pub final_norm: String,
    /// The output projection's tensor; the embedding table's name when tied.
    pub lm_head: String,
    /// True when the output projection reuses the embedding table.
    pub tied: bool,
    pub layers: Vec<LayerTensors>,
}

/// The tensor names shared by every HF Llama-family checkpoint (`model.layers.{i}.…`).
pub fn hf_llama_family(layers: usize, qkv_bias: bool, qk_norm: bool, tied: bool) -> DecoderSpec {
    let layer = |i: usize| {
        let p = format!("model.layers.{i}");
        LayerTensors {
            input_norm: format!("{p}.input_layernorm.weight"),
            q_proj: format!("{p}.self_attn.q_proj.weight"),
            k_proj: format!("{p}.self_attn.k_proj.weight"),
            v_proj: format!("{p}.self_attn.v_proj.weight"),
            o_proj: format!("{p}.self_attn.o_proj.weight"),
            qkv_bias: qkv_bias.then(|| {
                [
                    format!("{p}.self_attn.q_proj.bias"),
                    format!("{p}.self_attn.k_proj.bias"),
                    format!("{p}.self_attn.v_proj.bias"),
                ]
            }),
            qk_norm: qk_norm.then(|| [format!("{p}.self_attn.q_norm.weight"), format!("{p}.self_attn.k_norm.weight")]),
            post_attention_norm: format!("{p}.post_attention_layernorm.weight"),
            gate_proj: format!("{p}.mlp.gate_proj.weight"),
            up_proj: format!("{p}.mlp.up_proj.weight"),
            down_proj: format!("{p}.mlp.down_proj.weight"),
        }
    };
    DecoderSpec {
        embed_tokens: "model.embed_tokens.weight".into(),
        final_norm: "model.norm.weight".into(),
        lm_head: if tied { "model.embed_tokens.weight".into() } else { "lm_head.weight".into() },
        tied,
        layers: (0..layers).map(layer).collect(),
    }
}
