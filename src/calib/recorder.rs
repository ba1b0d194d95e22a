//! [`MatmulRecorder`]: an interpreter observer that records the inputs of every `linear` of a
//! lowered module (see the module docs of [`super`]).

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use super::{Calibration, ChannelStats, Gram};
use crate::interp::{OpObserver, Tensor};
use crate::ir::{Function, Module, Node, Op, ValueId};

/// Input rows kept per matmul for measuring output error.
pub const MAX_SAMPLES: usize = 32;

/// Of the rows of one call, those at `r % SAMPLE_STRIDE == SAMPLE_STRIDE / 2` are sampled
/// (until [`MAX_SAMPLES`] are kept): spread over positions, never only the first tokens.
const SAMPLE_STRIDE: usize = 16;

/// Every `HOLDOUT_EVERY`-th window (the 4th, 8th, …) is held out of the second-moment
/// matrices and is the only source of sampled rows, so that choosing between tables on the
/// samples measures how a table generalises, not how well compensation fitted its own data.
/// With fewer windows than that, the last window is held out.
pub const HOLDOUT_EVERY: usize = 4;

/// For each (function, input value): its gram and the last window that added to it.
type GramIndex = HashMap<(String, ValueId), (usize, usize)>;

/// Records `linear` inputs, keyed by the first checkpoint tensor of the weight's recipe.
///
/// Only the first [`MatmulRecorder::set_valid_rows`] rows of each input count: a prefill
/// batch is right-padded, and padded rows are not text.
#[derive(Default)]
pub struct MatmulRecorder {
    valid_rows: AtomicUsize,
    /// Windows started so far (a gram is accumulated once per window and input value).
    window: AtomicUsize,
    /// Whether the current window is held out (see [`HOLDOUT_EVERY`]).
    held_out: std::sync::atomic::AtomicBool,
    /// Widest input whose full second-moment matrix is recorded (0: none).
    gram_max_dim: usize,
    /// Rows after which grams stop accumulating (their cost is rows · dim²).
    gram_max_rows: u64,
    stats: Mutex<BTreeMap<String, ChannelStats>>,
    /// Grams, and for each (function, input value) its gram and the last window it saw.
    grams: Mutex<(Vec<Gram>, GramIndex)>,
    /// Per function: weight value → checkpoint tensor key.
    keys: Mutex<HashMap<String, Arc<HashMap<ValueId, String>>>>,
}

impl MatmulRecorder {
    /// A recorder that also keeps `Σ xxᵀ` of every input at most `max_dim` wide, over its
    /// first `max_rows` rows.
    pub fn with_grams(max_dim: usize, max_rows: u64) -> MatmulRecorder {
        MatmulRecorder { gram_max_dim: max_dim, gram_max_rows: max_rows, ..Default::default() }
    }

    /// Starts window `index` (of `count`) whose calls hold `rows` real tokens.
    pub fn start_window(&self, index: usize, count: usize, rows: usize) {
        self.valid_rows.store(rows, Ordering::SeqCst);
        self.window.fetch_add(1, Ordering::SeqCst);
        let held_out =
            (index + 1).is_multiple_of(HOLDOUT_EVERY) || (count < HOLDOUT_EVERY && index + 1 == count && count > 1);
        self.held_out.store(held_out, Ordering::SeqCst);
    }

    fn held_out(&self) -> bool {
        self.held_out.load(Ordering::SeqCst)
    }

    /// The statistics so far.
    pub fn finish(&self, tokens: usize, available_tokens: usize, source: String) -> Calibration {
        let tensors = std::mem::take(&mut *self.stats.lock().unwrap_or_else(PoisonError::into_inner));
        let grams = std::mem::take(&mut self.grams.lock().unwrap_or_else(PoisonError::into_inner).0);
        Calibration { tensors, grams, tokens, available_tokens, source }
    }

    /// Adds this window's rows of input `x` (value `input` of `f`) to its gram, once per
    /// window; returns the gram's index.
    fn gram(&self, f: &Function, input: ValueId, values: &[f32], width: usize, rows: usize) -> Option<usize> {
        if width > self.gram_max_dim || rows == 0 {
            return None;
        }
        if self.held_out() {
            // Known input, but this window only feeds the samples.
            let guard = self.grams.lock().unwrap_or_else(PoisonError::into_inner);
            return guard.1.get(&(f.name.clone(), input)).map(|&(g, _)| g);
        }
        let window = self.window.load(Ordering::SeqCst);
        let mut guard = self.grams.lock().unwrap_or_else(PoisonError::into_inner);
        let (grams, index) = &mut *guard;
        let entry = index.entry((f.name.clone(), input)).or_insert_with(|| {
            grams.push(Gram { dim: width, sum: vec![0.0; width * width], rows: 0 });
            (grams.len() - 1, 0)
        });
        let (g, seen) = *entry;
        if seen == window || grams[g].rows >= self.gram_max_rows {
            return Some(g);
        }
        entry.1 = window;
        let x = ndarray::ArrayView2::from_shape((rows, width), &values[..rows * width]).ok()?;
        let xtx = x.t().dot(&x);
        let gram = &mut grams[g];
        for (acc, v) in gram.sum.iter_mut().zip(xtx.iter()) {
            *acc += v;
        }
        gram.rows += rows as u64;
        Some(g)
    }

    fn keys_of(&self, module: &Module, f: &Function) -> Arc<HashMap<ValueId, String>> {
        let mut cache = self.keys.lock().unwrap_or_else(PoisonError::into_inner);
        cache
            .entry(f.name.clone())
            .or_insert_with(|| {
                let mut map = HashMap::new();
                for (_, node) in f.nodes.iter() {
                    let (Op::Weight { name }, Some(&v)) = (&node.op, node.results.first()) else { continue };
                    let Some(w) = module.weight(name) else { continue };
                    let mut leaves = Vec::new();
                    w.recipe.checkpoint_tensors(&mut leaves);
                    if let Some(first) = leaves.first() {
                        map.insert(v, first.to_string());
                    }
                }
                Arc::new(map)
            })
            .clone()
    }
}

impl OpObserver for MatmulRecorder {
    fn before(&self, module: &Module, f: &Function, node: &Node, operands: &[Option<&Tensor>]) {
        if !matches!(node.op, Op::Linear) {
            return;
        }
        let (Some(&weight), Some(Some(x))) = (node.operands.get(1), operands.first()) else { return };
        let Some(key) = self.keys_of(module, f).get(&weight).cloned() else { return };
        let Some(&width) = x.shape().last().filter(|&&w| w > 0) else { return };
        let values = x.to_f32_vec();
        let rows = (values.len() / width).min(self.valid_rows.load(Ordering::SeqCst));
        let gram = node.operands.first().and_then(|&input| self.gram(f, input, &values, width, rows));
        let held_out = self.held_out();
        let mut stats = self.stats.lock().unwrap_or_else(PoisonError::into_inner);
        let s = stats.entry(key).or_default();
        if s.sum_sq.len() != width {
            if s.rows > 0 {
                return; // A second matmul reading the same tensor with another width: ignore it.
            }
            s.sum_sq = vec![0.0; width];
        }
        if s.gram.is_none() {
            s.gram = gram;
        }
        for (r, row) in values.chunks_exact(width).take(rows).enumerate() {
            for (acc, &v) in s.sum_sq.iter_mut().zip(row) {
                *acc += f64::from(v) * f64::from(v);
                s.max_abs = s.max_abs.max(v.abs());
            }
            if held_out && r % SAMPLE_STRIDE == SAMPLE_STRIDE / 2 && s.samples.len() < MAX_SAMPLES {
                s.samples.push(row.to_vec());
            }
        }
        s.rows += rows as u64;
    }
}
