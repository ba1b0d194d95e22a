//! Qwen2 / Qwen2.5 (and DeepSeek-R1-Distill-Qwen): q/k/v projections carry biases.

use super::Frontend;
use super::config::{Arch, ModelConfig};
use super::spec::{DecoderSpec, hf_llama_family};

pub struct Qwen2;

impl Frontend for Qwen2 {
    fn arch(&self) -> Arch {
        Arch::Qwen2
    }

    fn spec(&self, cfg: &ModelConfig, tied: bool, _has: &dyn Fn(&str) -> bool) -> DecoderSpec {
        hf_llama_family(cfg, tied)
    }
}
