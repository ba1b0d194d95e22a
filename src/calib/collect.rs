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
}

impl CalibOptions {
    /// The built-in text, windows of 256, the automatic budget.
    pub fn builtin() -> CalibOptions {
        CalibOptions { input: CalibInput::Builtin, window: 256, max_tokens: None }
    }
}

/// Largest matmul input width whose full second-moment matrix is recorded.
pub const GRAM_MAX_DIM: usize = 2048;
/// Rows over which second-moment matrices are accumulated.
pub const GRAM_MAX_ROWS: u64 = 2048;
/// Most multiply-adds error-compensating palettization may cost (Σ out · in²).
pub const COMPENSATION_BUDGET: f64 = 2e11;

/// Default token budget for a model of `params` parameters: about 4·10¹¹ multiply-adds of
/// matmuls on the interpreter (~1 500 tokens for 135 M parameters, ~200 for 1 B), never
/// fewer than 128 tokens.
pub fn auto_token_budget(params: u64) -> usize {
    let per_token = params.max(1) as f64;
    ((4e11 / per_token) as usize).max(128)
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
    let window = opts.window.clamp(1, cfg.max_position_embeddings.max(1));
    let module = lower_checkpoint(model_dir, &LowerOptions::new(window, window)).map_err(|e| model(e.to_string()))?;
    let params: u64 = module.weights.iter().map(|w| w.ty.numel() as u64).sum();
    let budget = opts.max_tokens.unwrap_or_else(|| auto_token_budget(params)).max(1);
    let used = tokens.len().min(budget);
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
