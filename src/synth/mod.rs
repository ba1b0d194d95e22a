//! Synthetic checkpoints: HuggingFace-style Llama folders with random weights of real
//! shapes, for benchmarks and tests (`anemllc synth`).
//!
//! [`generate`] writes `config.json`, `generation_config.json` and the weights as
//! safetensors (`model.safetensors`, or `model-0000K-of-0000N.safetensors` shards plus
//! `model.safetensors.index.json` past [`DEFAULT_MAX_SHARD_BYTES`]) into a hidden temporary
//! folder beside the output, then renames it into place. Errors remove that folder; only a
//! killed process (SIGKILL, SIGINT) leaves it behind, never a partial output folder.
//!
//! Speed: each shard is pre-sized, its header written, and the tensor data filled through
//! memory-mapped windows of [`WINDOW_BYTES`] in parallel with rayon, one job per block of
//! `block_elems` elements. Nothing but the current window is mapped, so memory stays flat
//! whatever the model size. The data is not fsync'ed: the kernel writes it back afterwards.
//!
//! Determinism: block `b` of tensor `t` is drawn from a generator seeded by `(seed, t, b)`
//! (`t` = position in [`Preset::tensors`]), so the files are byte-identical for a seed,
//! dtype and block size whatever the thread count or the shard size; blocks count elements,
//! so bf16/fp16 files hold exactly the fp32 values of the same seed, rounded.

mod layout;
mod preset;
mod rng;
mod write;

use std::path::PathBuf;

pub use preset::{
    GAIN_STD, Init, Llama3Rope, MATRIX_STD, Preset, Shape, TensorSpec, human_bytes, human_count, presets_table,
};
pub use write::generate;

/// Largest shard (tensor bytes) before the weights are split into several files.
pub const DEFAULT_MAX_SHARD_BYTES: u64 = 4 << 30;

/// Elements per independently seeded block (1 MiB of bf16).
pub const DEFAULT_BLOCK_ELEMS: u64 = 1 << 19;

/// Bytes of a shard mapped at once.
pub const WINDOW_BYTES: u64 = 64 << 20;

/// Storage dtype of the generated weights.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, clap::ValueEnum)]
pub enum SynthDType {
    #[value(name = "bf16")]
    BF16,
    #[value(name = "fp16")]
    FP16,
    #[value(name = "fp32")]
    FP32,
}

impl SynthDType {
    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            SynthDType::BF16 | SynthDType::FP16 => 2,
            SynthDType::FP32 => 4,
        }
    }

    /// The safetensors spelling (`BF16`, `F16`, `F32`).
    pub fn safetensors_name(self) -> &'static str {
        match self {
            SynthDType::BF16 => "BF16",
            SynthDType::FP16 => "F16",
            SynthDType::FP32 => "F32",
        }
    }

    /// The `torch_dtype` of `config.json`.
    pub fn torch_dtype(self) -> &'static str {
        match self {
            SynthDType::BF16 => "bfloat16",
            SynthDType::FP16 => "float16",
            SynthDType::FP32 => "float32",
        }
    }

    /// The command-line spelling.
    pub fn name(self) -> &'static str {
        match self {
            SynthDType::BF16 => "bf16",
            SynthDType::FP16 => "fp16",
            SynthDType::FP32 => "fp32",
        }
    }
}

/// The weight files [`generate`] would write for `preset` (name, bytes), in order; shards
/// hold at most `max_shard_bytes` of tensor data each unless one tensor is larger.
pub fn weight_files(preset: Preset, dtype: SynthDType, max_shard_bytes: u64) -> Vec<(String, u64)> {
    let plan = layout::plan(&preset.tensors(), dtype, max_shard_bytes.max(1));
    plan.shards.into_iter().map(|s| (s.file_name, s.len)).collect()
}

/// What to generate.
#[derive(Clone, Debug)]
pub struct SynthOptions {
    pub preset: Preset,
    pub dtype: SynthDType,
    pub seed: u64,
    /// Replace an existing output (file or folder).
    pub force: bool,
    /// Shard limit in bytes of tensor data (> 0).
    pub max_shard_bytes: u64,
    /// Elements per seeded block (> 0); the values depend on it.
    pub block_elems: u64,
    /// Print a progress line on stderr (only when it is a terminal).
    pub progress: bool,
}

impl SynthOptions {
    /// Defaults: bf16, seed 0, no force, 4 GiB shards, 1 MiB blocks, no progress.
    pub fn new(preset: Preset) -> Self {
        SynthOptions {
            preset,
            dtype: SynthDType::BF16,
            seed: 0,
            force: false,
            max_shard_bytes: DEFAULT_MAX_SHARD_BYTES,
            block_elems: DEFAULT_BLOCK_ELEMS,
            progress: false,
        }
    }
}

/// What [`generate`] wrote.
#[derive(Clone, Debug)]
pub struct SynthSummary {
    /// The output folder.
    pub dir: PathBuf,
    /// Every file written (name, bytes), weights first.
    pub files: Vec<(String, u64)>,
    pub tensors: usize,
    pub params: u64,
    /// Sum of the file sizes.
    pub bytes: u64,
}

/// Why generation failed.
#[derive(Debug, thiserror::Error)]
pub enum SynthError {
    #[error("{}: already exists (pass --force to replace it)", path.display())]
    Exists { path: PathBuf },
    #[error("{0}")]
    Usage(String),
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl SynthError {
    /// Bad usage or input (exit 2) rather than a failure while writing (exit 1).
    pub fn is_usage(&self) -> bool {
        matches!(self, SynthError::Exists { .. } | SynthError::Usage(_))
    }
}
