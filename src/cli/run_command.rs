//! `anemllc run model.air --tokens …`: drive a module with the reference interpreter the way
//! ANEMLL's runtime drives its parts (batched prefill, then decode), print greedy tokens and
//! optionally write per-position logits.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use clap::Args;
use ndarray::Array2;

use super::CliError;
use super::ir_commands::load_verified;
use crate::checkpoint::Checkpoint;
use crate::interp::Session;

#[derive(Args, Debug)]
pub struct RunArgs {
    /// The IR module to run (output of `lower` or `opt`).
    pub module: PathBuf,
    /// Prompt token ids, comma-separated (e.g. 1,331,201).
    #[arg(long, value_delimiter = ',', required = true)]
    pub tokens: Vec<u32>,
    /// Number of tokens to generate greedily after the prompt.
    #[arg(long, default_value_t = 0)]
    pub decode: usize,
    /// Write float32 logits of every position (prompt and generated) to this .npy file,
    /// shape [positions, vocab].
    #[arg(long)]
    pub logits: Option<PathBuf>,
    /// Checkpoint folder holding the weights; defaults to the module's `checkpoint` attribute.
    #[arg(long)]
    pub model: Option<PathBuf>,
}

/// The checkpoint folder: `--model`, else the module attribute, resolved against the current
/// directory and then against the module file's directory.
fn checkpoint_dir(args: &RunArgs, attr: Option<&str>) -> Result<PathBuf, CliError> {
    if let Some(dir) = &args.model {
        return Ok(dir.clone());
    }
    let attr = attr.ok_or_else(|| {
        CliError::input(format!("{}: no `checkpoint` attribute; pass --model DIR", args.module.display()))
    })?;
    let direct = PathBuf::from(attr);
    if direct.is_absolute() || direct.join("config.json").exists() {
        return Ok(direct);
    }
    let beside = args.module.parent().unwrap_or(Path::new(".")).join(attr);
    Ok(if beside.exists() { beside } else { direct })
}

pub fn run(args: RunArgs) -> Result<(), CliError> {
    let module = load_verified(&args.module)?;
    let dir = checkpoint_dir(&args, module.attr_str("checkpoint"))?;
    let ckpt = Checkpoint::open(&dir).map_err(|e| CliError::input(e.to_string()))?;
    let mut session = Session::new(module, Arc::new(ckpt)).map_err(|e| CliError::input(e.to_string()))?;
    let prompt = args.tokens.clone();
    let generated = if args.decode > 0 {
        session.generate_greedy(&prompt, args.decode).map_err(|e| CliError::failure(e.to_string()))?
    } else {
        Vec::new()
    };
    if !generated.is_empty() {
        let list: Vec<String> = generated.iter().map(|t| t.to_string()).collect();
        println!("{}", list.join(","));
    }
    if let Some(path) = &args.logits {
        let mut all = prompt.clone();
        all.extend(&generated);
        let rows = session.teacher_forced_logits(&all, prompt.len()).map_err(|e| CliError::failure(e.to_string()))?;
        let vocab = rows.first().map_or(0, Vec::len);
        let flat: Vec<f32> = rows.iter().flatten().copied().collect();
        let array = Array2::from_shape_vec((rows.len(), vocab), flat)
            .map_err(|e| CliError::failure(format!("logits have ragged rows: {e}")))?;
        let mut bytes = Vec::new();
        ndarray_npy::WriteNpyExt::write_npy(&array, &mut bytes)
            .map_err(|e| CliError::failure(format!("{}: {e}", path.display())))?;
        crate::util::write_atomic(path, &bytes).map_err(|e| CliError::failure(format!("{}: {e}", path.display())))?;
        eprintln!("wrote logits [{}, {vocab}] to {}", rows.len(), path.display());
    }
    Ok(())
}
