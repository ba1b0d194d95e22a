//! `anemllc synth --preset 1b -o DIR`: a synthetic Llama checkpoint for benchmarks.

use std::path::PathBuf;
use std::time::Instant;

use clap::Args;

use super::CliError;
use crate::synth::{
    DEFAULT_BLOCK_ELEMS, DEFAULT_MAX_SHARD_BYTES, Preset, SynthDType, SynthOptions, generate, human_bytes, human_count,
    presets_table,
};

#[derive(Args, Debug)]
#[command(after_help = presets_table(), after_long_help = long_help())]
pub struct SynthArgs {
    /// Model shape (see the presets below).
    #[arg(long, value_enum)]
    pub preset: Preset,
    /// Output folder; must not exist unless --force.
    #[arg(short, long, value_name = "DIR")]
    pub output: PathBuf,
    /// Random seed.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Storage dtype of the weights.
    #[arg(long, value_enum, default_value_t = SynthDType::BF16)]
    pub dtype: SynthDType,
    /// Replace DIR if it exists.
    #[arg(long)]
    pub force: bool,
    /// Largest shard in bytes of tensor data (testing knob).
    #[arg(long, hide = true, default_value_t = DEFAULT_MAX_SHARD_BYTES)]
    pub max_shard_bytes: u64,
    /// Elements per independently seeded block; changes the values (testing knob).
    #[arg(long, hide = true, default_value_t = DEFAULT_BLOCK_ELEMS)]
    pub block_elems: u64,
}

/// The `--help` epilogue: what is written, then the presets.
fn long_help() -> String {
    format!(
        "Writes config.json, generation_config.json and safetensors weights with HuggingFace tensor \
         names (model.safetensors, or model-0000K-of-0000N.safetensors shards of at most 4 GiB plus \
         model.safetensors.index.json, like save_pretrained). Values: matrices ~ 0.02 × (normal-ish \
         noise), norm gains ~ 1 + 0.02 × noise. The bytes depend only on the preset, seed and dtype, \
         not on the number of threads (RAYON_NUM_THREADS). Everything is written into a hidden \
         temporary folder beside DIR and renamed into place; the data is not fsync'ed.\n\n{}",
        presets_table()
    )
}

pub fn synth(args: SynthArgs) -> Result<(), CliError> {
    let opts = SynthOptions {
        preset: args.preset,
        dtype: args.dtype,
        seed: args.seed,
        force: args.force,
        max_shard_bytes: args.max_shard_bytes,
        block_elems: args.block_elems,
        progress: true,
    };
    let started = Instant::now();
    let summary = generate(&args.output, &opts)
        .map_err(|e| if e.is_usage() { CliError::input(e.to_string()) } else { CliError::failure(e.to_string()) })?;
    let secs = started.elapsed().as_secs_f64();
    let weight_files = summary.files.iter().filter(|(name, _)| name.ends_with(".safetensors")).count();
    eprintln!(
        "synth {} ({} params, {} tensors, {}, seed {}) → {}: {} weight file{}, {} in {:.2} s ({:.2} GB/s)",
        args.preset.name(),
        human_count(summary.params),
        summary.tensors,
        args.dtype.name(),
        args.seed,
        summary.dir.display(),
        weight_files,
        if weight_files == 1 { "" } else { "s" },
        human_bytes(summary.bytes),
        secs,
        summary.bytes as f64 / 1e9 / secs.max(1e-9),
    );
    Ok(())
}

/// `anemllc gguf-export MODEL -o OUT.gguf [--type q8_0|f16]`.
#[derive(Args, Debug)]
pub struct GgufExportArgs {
    /// A llama checkpoint folder (e.g. from `anemllc synth`).
    pub model: PathBuf,
    /// The GGUF file to write (atomically).
    #[arg(short, long)]
    pub output: PathBuf,
    /// Encoding of the matrices (1-D tensors stay F32).
    #[arg(long, default_value = "q8_0", value_parser = ["q8_0", "f16"])]
    pub r#type: String,
}

pub fn gguf_export(args: GgufExportArgs) -> Result<(), CliError> {
    let ty = if args.r#type == "f16" { crate::gguf::GgmlType::F16 } else { crate::gguf::GgmlType::Q8_0 };
    let started = Instant::now();
    let bytes = crate::gguf::export::export_llama(&args.model, &args.output, ty).map_err(CliError::input)?;
    eprintln!("wrote {} ({}) in {:.1} s", args.output.display(), human_bytes(bytes), started.elapsed().as_secs_f64());
    Ok(())
}
