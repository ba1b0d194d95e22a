//! Qwen3: per-head RMSNorm on q and k (after projection, before RoPE); `head_dim` from the
//! config may differ from hidden/heads.

use super::Frontend;
use super::config::{Arch, ModelConfig};
use super::spec::{DecoderSpec, hf_llama_family};

pub struct Qwen3;

impl Frontend for Qwen3 {
    fn arch(&self) -> Arch {
        Arch::Qwen3
    }

    fn spec(&self, cfg: &ModelConfig, tied: bool, _has: &dyn Fn(&str) -> bool) -> DecoderSpec {
        hf_llama_family(cfg, tied)
    }
}
