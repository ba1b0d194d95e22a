//! Frontends: HuggingFace checkpoint folders → IR.
//!
//! `config` normalises config.json, `rope` computes rotary frequencies exactly as
//! transformers does, and each architecture file (`llama`, `qwen2`, `qwen3`, `gemma3`) implements
//! [`Frontend`] by describing its checkpoint layout as a [`spec::DecoderSpec`]; the generic
//! `decoder` lowering does the rest. docs/new-frontend.md walks through adding one.

pub mod config;
pub mod decoder;
pub mod fused_qkv;
pub mod gemma3;
pub mod gemma_config;
pub mod gguf_config;
pub mod llama;
pub mod lower;
pub mod norm_fold;
pub mod qwen2;
pub mod qwen3;
pub mod residual_scale;
pub mod rope;
pub mod spec;

use config::{Arch, ModelConfig};
use spec::DecoderSpec;

pub use lower::{LowerError, LowerOptions, lower_checkpoint};

/// One architecture: how its checkpoints name tensors and which decoder features it uses.
pub trait Frontend {
    /// The architecture this frontend lowers.
    fn arch(&self) -> Arch;
    /// The tensor layout of a checkpoint with this config; `tied` says whether the output
    /// projection reuses the embedding table, `has` whether the checkpoint holds a tensor
    /// (for layouts with more than one spelling).
    fn spec(&self, cfg: &ModelConfig, tied: bool, has: &dyn Fn(&str) -> bool) -> DecoderSpec;
}

/// The frontend for a (normalised) architecture.
pub fn frontend_for(arch: Arch) -> &'static dyn Frontend {
    match arch {
        Arch::Llama => &llama::Llama,
        Arch::Qwen2 => &qwen2::Qwen2,
        Arch::Qwen3 => &qwen3::Qwen3,
        Arch::Gemma3 => &gemma3::Gemma3,
    }
}
