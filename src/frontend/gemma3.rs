//! Gemma 3 text models (`Gemma3ForCausalLM`) and the text tower of multimodal Gemma 3
//! checkpoints. What differs from Llama is all in the config's block features
//! (`gemma_config`): (1 + w) norm gains, sandwich norms, q/k norms, √H embedding scale,
//! GELU-tanh MLP, `query_pre_attn_scalar`, sliding-window layers with their own RoPE base.
//! Here only the tensor names: the text model lives under `model.`, or in multimodal
//! checkpoints under `language_model.model.` (transformers < 4.52) or
//! `model.language_model.` (newer); vision tensors are never read.

use super::Frontend;
use super::config::{Arch, ModelConfig};
use super::spec::{DecoderSpec, hf_decoder};

pub struct Gemma3;

/// Text-model prefixes with the matching output-projection name, in the order tried.
const LAYOUTS: [(&str, &str); 3] = [
    ("model.", "lm_head.weight"),
    ("language_model.model.", "language_model.lm_head.weight"),
    ("model.language_model.", "lm_head.weight"),
];

impl Frontend for Gemma3 {
    fn arch(&self) -> Arch {
        Arch::Gemma3
    }

    fn spec(&self, cfg: &ModelConfig, tied: bool, has: &dyn Fn(&str) -> bool) -> DecoderSpec {
        let (prefix, head) =
            LAYOUTS.iter().find(|(p, _)| has(&format!("{p}embed_tokens.weight"))).copied().unwrap_or(LAYOUTS[0]);
        hf_decoder(cfg, prefix, head, tied)
    }
}
