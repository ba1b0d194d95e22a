//! Activation magnitudes of the residual stream: how large the hidden states of a model get
//! on real text, measured on the lowered fp32 module by the reference interpreter. This
//! decides whether an fp16 package would overflow (|x| > 65504) and the residual scale that
//! prevents it (`crate::frontend::residual_scale`).
//!
//! Every operand of every op that is a `[1, S, hidden]` float tensor is observed: the
//! embedding output, each layer's input, the mid-layer residual, the branch outputs added to
//! it, and the final norm's input. Non-finite values (masks hold −inf) are skipped.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use super::{CalibError, CalibInput};
use crate::chat::ChatTokenizer;
use crate::checkpoint::Checkpoint;
use crate::frontend::config::ModelConfig;
use crate::frontend::{LowerOptions, lower_checkpoint};
use crate::interp::{OpObserver, Session, Tensor};
use crate::ir::{Function, Module, Node, Op, Recipe, Type, ValueDef};

/// What [`residual_peak`] measured.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ResidualPeak {
    /// Largest finite |x| of a hidden-width activation.
    pub max_abs: f32,
    /// Tokens run.
    pub tokens: usize,
}

/// Records the largest finite |x| over hidden-width operands.
struct PeakObserver {
    hidden: usize,
    /// f32 bits of the running maximum (non-negative floats order like their bits).
    max_bits: AtomicU64,
}

impl OpObserver for PeakObserver {
    fn before(&self, _m: &Module, _f: &Function, _node: &Node, operands: &[Option<&Tensor>]) {
        for t in operands.iter().flatten() {
            let shape = t.shape();
            if shape.len() != 3 || shape[2] != self.hidden || !t.dtype().is_float() {
                continue;
            }
            let peak = t.to_f32_vec().into_iter().filter(|v| v.is_finite()).fold(0.0f32, |m, v| m.max(v.abs()));
            self.max_bits.fetch_max(u64::from(peak.to_bits()), Ordering::Relaxed);
        }
    }
}

/// Runs the model at `model_dir` over at most `max_tokens` tokens of `input` (windows of up
/// to 256 tokens on fresh states) and returns the residual stream's largest magnitude.
pub fn residual_peak(model_dir: &Path, input: &CalibInput, max_tokens: usize) -> Result<ResidualPeak, CalibError> {
    let model = |e: String| CalibError::Model(e);
    let cfg = ModelConfig::from_model_path(model_dir).map_err(|e| model(e.to_string()))?;
    let tok = ChatTokenizer::load(model_dir, &cfg.eos_token_ids).map_err(|e| model(e.to_string()))?;
    let tokens = input.tokens(&tok)?;
    let used = tokens.len().min(max_tokens.max(1));
    // One window per prefill batch; a model with sliding layers keeps its windows within the
    // sliding window (so no cache rotates and every batch is whole).
    let window = used.clamp(1, 256).min(cfg.features.sliding_window.unwrap_or(usize::MAX));
    let mut module =
        lower_checkpoint(model_dir, &LowerOptions::new(window, window)).map_err(|e| model(e.to_string()))?;
    let tokens = compact_embedding(&mut module, &tokens[..used]).map_err(CalibError::Run)?;
    let ckpt = Checkpoint::open(model_dir).map_err(|e| model(e.to_string()))?;
    let mut session = Session::new(module, Arc::new(ckpt)).map_err(|e| CalibError::Run(e.to_string()))?;
    let observer = Arc::new(PeakObserver { hidden: cfg.hidden, max_bits: AtomicU64::new(0) });
    session.set_observer(Some(observer.clone()));
    for chunk in tokens.chunks(window) {
        session.start(chunk).map_err(|e| CalibError::Run(e.to_string()))?;
    }
    session.set_observer(None);
    let bits = observer.max_bits.load(Ordering::Relaxed);
    Ok(ResidualPeak { max_abs: f32::from_bits(bits as u32), tokens: used })
}

/// Shrinks the table the embedding functions gather from to the rows of the distinct
/// `tokens` (read row by row from the checkpoint, not as a whole — a 262144-row Gemma table
/// is 671 MB in f32) and returns the tokens renumbered into it. The LM head, which this
/// measurement never runs, keeps its own weights.
fn compact_embedding(m: &mut Module, tokens: &[u32]) -> Result<Vec<u32>, String> {
    let mut ids: Vec<u32> = tokens.to_vec();
    ids.sort_unstable();
    ids.dedup();
    let table = m
        .functions
        .iter()
        .filter(|f| f.name.starts_with("embed."))
        .flat_map(|f| f.nodes.iter().map(move |(_, n)| (f, n)))
        .filter(|(_, n)| matches!(n.op, Op::Gather { .. }) && !n.operands.is_empty())
        .find_map(|(f, n)| match f.values[n.operands[0]].def {
            ValueDef::Result { node, .. } => match &f.nodes[node].op {
                Op::Weight { name } => Some(name.clone()),
                _ => None,
            },
            ValueDef::Input(_) => None,
        })
        .ok_or("the embedding functions gather from no weight")?;
    let w = m.weights.iter_mut().find(|w| w.name == table).ok_or("the embedding table is not declared")?;
    let rows = |r: &Recipe| Recipe::Concat {
        inputs: ids
            .iter()
            .map(|&i| Recipe::Slice { input: Box::new(r.clone()), axis: 0, start: i as usize, end: i as usize + 1 })
            .collect(),
        axis: 0,
    };
    // Row slices of a checkpoint tensor (through casts) are read row by row; a scale stays on top.
    w.recipe = match &w.recipe {
        Recipe::Scale { input, factor } => Recipe::Scale { input: Box::new(rows(input)), factor: *factor },
        other => rows(other),
    };
    w.ty.shape[0] = ids.len();
    let ty = w.ty.clone();
    for f in m.functions.iter_mut().filter(|f| f.name.starts_with("embed.")) {
        let results: Vec<_> = f
            .nodes
            .iter()
            .filter(|(_, n)| matches!(&n.op, Op::Weight { name } if *name == table))
            .map(|(_, n)| n.results[0])
            .collect();
        for r in results {
            f.values.get_mut(r).ty = Type::Tensor(ty.clone());
        }
    }
    Ok(tokens.iter().map(|t| ids.binary_search(t).expect("every token is in ids") as u32).collect())
}
