//! Calibration: what the activations of a model look like on real text, measured by running
//! the lowered fp32 module on the reference interpreter.
//!
//! For every matmul input of the model (q/k/v, o, gate/up, down, the LM head) it records, per
//! input channel `j`, the second moment `E[x_j²]` over the calibration tokens, the largest
//! `|x|`, and a few sampled input rows. Palettization weights its k-means by the moments
//! (`crate::quant::weighted`) and measures output error on the samples; the fp16 range
//! report gains the activation maxima.
//!
//! - [`source`]: the calibration text — the built-in mixed-domain text, or a file of plain
//!   text or JSONL chat messages rendered with the model's chat template — checked and
//!   tokenized.
//! - [`recorder`]: the interpreter observer that accumulates the statistics.
//! - [`collect`]: lowering, windowing and driving the session.
//!
//! Statistics are keyed by the **checkpoint tensor** of the matmul weight (e.g.
//! `model.layers.3.mlp.down_proj.weight`), so they survive every later rewrite of the weight
//! (casts, reshapes to conv form, fusion by concatenation along the output axis, LM-head
//! slicing): the input channels stay axis 1.
//!
//! Determinism: windows run in order on one session, rows are visited in order and sums are
//! accumulated in f64 in that order, so the statistics do not depend on the thread count.

pub mod collect;
pub mod peaks;
pub mod recorder;
pub mod source;

use std::collections::BTreeMap;
use std::path::PathBuf;

pub use collect::{CalibOptions, calibrate};
pub use source::{BUILTIN_TEXT, CalibInput, HELDOUT_TEXT};

/// Statistics of one matmul input.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ChannelStats {
    /// `Σ x_j²` over all recorded rows, per input channel.
    pub sum_sq: Vec<f64>,
    /// Rows recorded.
    pub rows: u64,
    /// Largest `|x|` seen.
    pub max_abs: f32,
    /// Up to [`recorder::MAX_SAMPLES`] input rows, in the order seen.
    pub samples: Vec<Vec<f32>>,
    /// Index into [`Calibration::grams`] of this input's second-moment matrix, when recorded.
    pub gram: Option<usize>,
}

/// `Σ xxᵀ` of one matmul input (shared by the matmuls that read the same value, e.g. q/k/v).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Gram {
    pub dim: usize,
    /// `dim × dim`, row-major.
    pub sum: Vec<f32>,
    pub rows: u64,
}

impl Gram {
    /// `E[xxᵀ]`, row-major f64.
    pub fn moments(&self) -> Vec<f64> {
        let n = self.rows.max(1) as f64;
        self.sum.iter().map(|&v| f64::from(v) / n).collect()
    }
}

impl ChannelStats {
    /// `E[x_j²]` per channel (empty when nothing was recorded).
    pub fn moments(&self) -> Vec<f64> {
        if self.rows == 0 {
            return Vec::new();
        }
        self.sum_sq.iter().map(|s| s / self.rows as f64).collect()
    }
}

/// The statistics of one calibration run.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Calibration {
    /// By checkpoint tensor name of the matmul weight.
    pub tensors: BTreeMap<String, ChannelStats>,
    /// Full second-moment matrices (see [`ChannelStats::gram`]).
    pub grams: Vec<Gram>,
    /// Tokens run through the model.
    pub tokens: usize,
    /// Tokens the calibration text had (more than `tokens` when a budget cut it).
    pub available_tokens: usize,
    /// Where the text came from (`built-in` or the file).
    pub source: String,
}

impl Calibration {
    /// The stats of the matmul whose weight reads `tensor`.
    pub fn get(&self, tensor: &str) -> Option<&ChannelStats> {
        self.tensors.get(tensor)
    }
}

/// Why calibration failed. All but [`CalibError::Run`] are the input's fault.
#[derive(Debug, thiserror::Error)]
pub enum CalibError {
    #[error("calibration file {path}: {message}")]
    File { path: PathBuf, message: String },
    #[error("calibration text: {0}")]
    Text(String),
    #[error("calibration: {0}")]
    Model(String),
    #[error("calibration run failed: {0}")]
    Run(String),
}

impl CalibError {
    /// True when the calibration input or the model is at fault.
    pub fn is_input(&self) -> bool {
        !matches!(self, CalibError::Run(_))
    }
}
