//! `anemllc lower MODEL -o model.air`.

use std::path::PathBuf;

use clap::Args;

use super::CliError;
use crate::frontend::{LowerError, LowerOptions, lower_checkpoint};
use crate::ir::print_module;

#[derive(Args, Debug)]
pub struct LowerArgs {
    /// The model: a HuggingFace folder (config.json plus model.safetensors, or sharded
    /// model-0000X-of-0000N.safetensors with model.safetensors.index.json), a .gguf file,
    /// or a hub id already in the local Hugging Face cache.
    #[arg(value_name = "MODEL")]
    pub model_dir: PathBuf,
    /// Where to write the IR text (.air). Written atomically.
    #[arg(short, long)]
    pub output: PathBuf,
    #[command(flatten)]
    pub sizes: SizeArgs,
    /// Keep the RMSNorm gains of the norms feeding projections as multiplies instead of
    /// folding them into the projections' weights (what `convert` does when it palettizes
    /// the layer weights: use it before `opt --lut`).
    #[arg(long)]
    pub keep_norm_gains: bool,
}

/// `--context C --batch B`, shared by `lower` and `convert`.
#[derive(Args, Debug, Clone, Copy)]
pub struct SizeArgs {
    /// KV-cache length C: the longest prompt + generated answer the model will handle.
    #[arg(long, default_value_t = 512)]
    pub context: usize,
    /// Prefill batch B: prompt tokens processed per prefill call. C must be a multiple of B.
    #[arg(long, default_value_t = 64)]
    pub batch: usize,
}

impl SizeArgs {
    /// The lowering options these sizes select.
    pub fn lower_options(self) -> LowerOptions {
        LowerOptions::new(self.context, self.batch)
    }
}

pub fn lower(args: LowerArgs) -> Result<(), CliError> {
    let opts = LowerOptions { fold_norm_gains: !args.keep_norm_gains, ..args.sizes.lower_options() };
    let model = super::model_arg::resolve_model(&args.model_dir)?;
    let module = lower_checkpoint(&model, &opts).map_err(|e| match e {
        LowerError::Option(_) => CliError::input(e.to_string()),
        LowerError::Internal { .. } => CliError::failure(e.to_string()),
        _ => CliError::input(e.to_string()),
    })?;
    let text = print_module(&module);
    crate::util::write_atomic(&args.output, text.as_bytes())
        .map_err(|e| CliError::failure(format!("{}: cannot write: {e}", args.output.display())))?;
    let ops: usize = module.functions.iter().map(|f| f.nodes.len()).sum();
    eprintln!(
        "lowered {} ({} layers) into {} functions, {} ops, {} weights → {}",
        module.attr_str("arch").unwrap_or("?"),
        module.attr_int("layers").unwrap_or(0),
        module.functions.len(),
        ops,
        module.weights.len(),
        args.output.display()
    );
    Ok(())
}
