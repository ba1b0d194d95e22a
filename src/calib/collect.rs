//! [`calibrate`]: runs the lowered fp32 model over the calibration tokens and returns the
//! statistics of every matmul input.
//!
//! The model is lowered with context = prefill batch = the window `W`, and the tokens are cut
//! into consecutive windows of `W`, each run as one prefill on fresh states: nothing is
//! truncated, the last window is simply shorter (its padded rows are not recorded). A token
//! budget (`max_tokens`) keeps calibration of big models within seconds; the report says
//! how many tokens were used out of how many.

use std::path::Path;
use std::sync::Arc;

use super::recorder::MatmulRecorder;
use super::{CalibError, CalibInput, Calibration};
use crate::chat::ChatTokenizer;
use crate::checkpoint::Checkpoint;
use crate::frontend::config::ModelConfig;
use crate::frontend::{LowerOptions, lower_checkpoint};
use crate::interp::Session;

/// How to calibrate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CalibOptions {
    pub input: CalibInput,
    /// Tokens per window (context and prefill batch of the calibration run).
    pub window: usize,
    /// At most this many tokens (the first ones); `None`: [`auto_token_budget`].
    pub max_tokens: Option<usize>,
    /// Lower with the norm gains folded into the projections (`LowerOptions::fold_norm_gains`):
    /// must match the module being palettized, whose matmul inputs the statistics describe
    /// (gain-free normalised values when folded, the gained ones otherwise).
    pub fold_norm_gains: bool,
}

impl CalibOptions {
    /// The built-in text, windows of 256, the automatic budget.
    pub fn builtin() -> CalibOptions {
        CalibOptions { input: CalibInput::Builtin, window: 256, max_tokens: None, fold_norm_gains: true }
    }
}

/// Largest matmul input width whose full second-moment matrix is recorded.
pub const GRAM_MAX_DIM: usize = 2048;
/// Rows over which second-moment matrices are accumulated.
pub const GRAM_MAX_ROWS: u64 = 2048;
/// Most multiply-adds error-compensating palettization may cost (Σ out · in²).
pub const COMPENSATION_BUDGET: f64 = 2e11;

/// Default token budget for a model of `params` parameters: about 4·10¹¹ multiply-adds of
/// matmuls on the interpreter up to 500 M parameters (~2 500 tokens for SmolLM2-135M with its
/// tied head counted once per use), 1.5·10¹¹ above (~120 → 128 tokens for 1 B, so a 1 B
/// conversion stays near a minute), never fewer than 128 tokens.
pub fn auto_token_budget(params: u64) -> usize {
    let per_token = params.max(1) as f64;
    let macs = if params > 500_000_000 { 1.5e11 } else { 4e11 };
    ((macs / per_token) as usize).max(128)
}

/// Runs the model of `model_dir` (HF folder or GGUF) over the calibration tokens.
/// `progress(done, total)` is called after each window.
pub fn calibrate(
    model_dir: &Path,
    opts: &CalibOptions,
    progress: &(dyn Fn(usize, usize) + Sync),
) -> Result<Calibration, CalibError> {
    let model = |e: String| CalibError::Model(e);
    let cfg = ModelConfig::from_model_path(model_dir).map_err(|e| model(e.to_string()))?;
    let tok = ChatTokenizer::load(model_dir, &cfg.eos_token_ids).map_err(|e| model(e.to_string()))?;
    let tokens = opts.input.tokens(&tok)?;
    if let Some(&bad) = tokens.iter().find(|&&t| t as usize >= cfg.vocab) {
        return Err(model(format!("the tokenizer produced id {bad}, beyond the model's vocabulary {}", cfg.vocab)));
    }
    // The budget depends on the model's size, read off a lowering's weight declarations
    // (headers only, no weights are read).
    let sizing = LowerOptions { fold_norm_gains: opts.fold_norm_gains, ..LowerOptions::new(1, 1) };
    let sized = lower_checkpoint(model_dir, &sizing).map_err(|e| model(e.to_string()))?;
    let params: u64 = sized.weights.iter().map(|w| w.ty.numel() as u64).sum();
    drop(sized);
    let budget = opts.max_tokens.unwrap_or_else(|| auto_token_budget(params)).max(1);
    let used = tokens.len().min(budget);
    // At least two windows, so that one is held out for scoring (see recorder::HOLDOUT_EVERY).
    let window = opts
        .window
        .min(used.div_ceil(2))
        .min(cfg.features.sliding_window.unwrap_or(usize::MAX))
        .clamp(1, cfg.max_position_embeddings.max(1));
    let lower = LowerOptions { fold_norm_gains: opts.fold_norm_gains, ..LowerOptions::new(window, window) };
    let module = lower_checkpoint(model_dir, &lower).map_err(|e| model(e.to_string()))?;
    let ckpt = Checkpoint::open(model_dir).map_err(|e| model(e.to_string()))?;
    let mut session = Session::new(module, Arc::new(ckpt)).map_err(|e| CalibError::Run(e.to_string()))?;
    // Full second moments (for error-compensating palettization) only where that pays off
    // within seconds: inputs up to 2 048 wide, models whose compensation costs at most
    // ~2·10¹¹ multiply-adds (Σ out · in² over the matmuls), over the first 2 048 rows of the windows not held out.
    let compensation_cost: f64 = session
        .module()
        .weights
        .iter()
        .filter(|w| w.ty.rank() == 2)
        .map(|w| w.ty.shape[0] as f64 * (w.ty.shape[1] as f64).powi(2))
        .sum();
    let recorder = Arc::new(if compensation_cost <= COMPENSATION_BUDGET {
        MatmulRecorder::with_grams(GRAM_MAX_DIM, GRAM_MAX_ROWS)
    } else {
        MatmulRecorder::default()
    });
    session.set_observer(Some(recorder.clone()));
    let mut done = 0;
    let count = used.div_ceil(window);
    for (index, chunk) in tokens[..used].chunks(window).enumerate() {
        recorder.start_window(index, count, chunk.len());
        session.prefill(chunk).map_err(|e| CalibError::Run(e.to_string()))?;
        done += chunk.len();
        progress(done, used);
    }
    session.set_observer(None);
    Ok(recorder.finish(used, tokens.len(), opts.input.describe()))
}
