//! Llama (and Llama-architecture distills such as DeepSeek-R1-Distill-Llama, DeepHermes):
//! no q/k/v bias unless `attention_bias`, no q/k norm.

use super::Frontend;
use super::config::{Arch, ModelConfig};
use super::spec::{DecoderSpec, hf_llama_family};

pub struct Llama;

impl Frontend for Llama {
    fn arch(&self) -> Arch {
        Arch::Llama
    }

    fn spec(&self, cfg: &ModelConfig, tied: bool, _has: &dyn Fn(&str) -> bool) -> DecoderSpec {
        hf_llama_family(cfg, tied)
    }
}
