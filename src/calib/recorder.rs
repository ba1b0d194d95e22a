//! [`MatmulRecorder`]: an interpreter observer that records the inputs of every `linear` of a
//! lowered module (see the module docs of [`super`]).

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use super::{Calibration, ChannelStats};
use crate::interp::{OpObserver, Tensor};
use crate::ir::{Function, Module, Node, Op, ValueId};

/// Input rows kept per matmul for measuring output error.
pub const MAX_SAMPLES: usize = 32;

/// Of the rows of one call, those at `r % SAMPLE_STRIDE == SAMPLE_STRIDE / 2` are sampled
/// (until [`MAX_SAMPLES`] are kept): spread over positions, never only the first tokens.
const SAMPLE_STRIDE: usize = 16;

/// Records `linear` inputs, keyed by the first checkpoint tensor of the weight's recipe.
///
/// Only the first [`MatmulRecorder::set_valid_rows`] rows of each input count: a prefill
/// batch is right-padded, and padded rows are not text.
#[derive(Default)]
pub struct MatmulRecorder {
    valid_rows: AtomicUsize,
    stats: Mutex<BTreeMap<String, ChannelStats>>,
    /// Per function: weight value → checkpoint tensor key.
    keys: Mutex<HashMap<String, Arc<HashMap<ValueId, String>>>>,
}

impl MatmulRecorder {
    /// Rows of the current call that hold real tokens.
    pub fn set_valid_rows(&self, rows: usize) {
        self.valid_rows.store(rows, Ordering::SeqCst);
    }

    /// The statistics so far.
    pub fn finish(&self, tokens: usize, available_tokens: usize, source: String) -> Calibration {
        let tensors = std::mem::take(&mut *self.stats.lock().unwrap_or_else(PoisonError::into_inner));
        Calibration { tensors, tokens, available_tokens, source }
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
        let mut stats = self.stats.lock().unwrap_or_else(PoisonError::into_inner);
        let s = stats.entry(key).or_default();
        if s.sum_sq.len() != width {
            if s.rows > 0 {
                return; // A second matmul reading the same tensor with another width: ignore it.
            }
            s.sum_sq = vec![0.0; width];
        }
        for (r, row) in values.chunks_exact(width).take(rows).enumerate() {
            for (acc, &v) in s.sum_sq.iter_mut().zip(row) {
                *acc += f64::from(v) * f64::from(v);
                s.max_abs = s.max_abs.max(v.abs());
            }
            if r % SAMPLE_STRIDE == SAMPLE_STRIDE / 2 && s.samples.len() < MAX_SAMPLES {
                s.samples.push(row.to_vec());
            }
        }
        s.rows += rows as u64;
    }
}
