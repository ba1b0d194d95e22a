//! [`WeightCache`]: the module's weights, materialised lazily and at most once each.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use crate::interp::Tensor;
use crate::ir::{Module, Weight};

use super::{TensorSource, WeightError, materialize};

/// Lazily materialised module weights, shared by every function call.
///
/// Invariants: the cache holds only weights declared in the module it was built from, each
/// with exactly its declared type; once materialised, a weight is never recomputed (weights
/// are shared between layers and functions, and reading them is expensive). Thread-safe: the
/// map sits behind a `Mutex`, and materialisation runs outside the lock, so at worst two
/// threads racing on one weight both compute it and one result is kept.
pub struct WeightCache {
    declared: HashMap<String, Weight>,
    source: Arc<dyn TensorSource + Send + Sync>,
    done: Mutex<HashMap<String, Arc<Tensor>>>,
}

impl WeightCache {
    /// A cache over `module`'s weight declarations, reading checkpoint tensors from `source`.
    pub fn new(module: &Module, source: Arc<dyn TensorSource + Send + Sync>) -> WeightCache {
        let declared = module.weights.iter().map(|w| (w.name.clone(), w.clone())).collect();
        WeightCache { declared, source, done: Mutex::new(HashMap::new()) }
    }

    /// The weight `name`, materialising it on first use. Errors name the weight or tensor.
    pub fn get(&self, name: &str) -> Result<Arc<Tensor>, WeightError> {
        if let Some(t) = self.lock().get(name) {
            return Ok(t.clone());
        }
        let w = self.declared.get(name).ok_or_else(|| WeightError::UnknownWeight { name: name.to_string() })?;
        let t = materialize(&w.recipe, self.source.as_ref())?;
        if t.tensor_type() != w.ty {
            return Err(WeightError::Type { name: name.to_string(), declared: w.ty.clone(), got: t.tensor_type() });
        }
        let t = Arc::new(t);
        Ok(self.lock().entry(name.to_string()).or_insert(t).clone())
    }

    /// The weight `name` without keeping it: the cached tensor if there is one, else a fresh
    /// materialisation that is *not* stored. For streaming consumers (the Core ML emitter
    /// writes each weight once and must not hold them all).
    pub fn get_uncached(&self, name: &str) -> Result<Arc<Tensor>, WeightError> {
        if let Some(t) = self.lock().get(name) {
            return Ok(t.clone());
        }
        let w = self.declared.get(name).ok_or_else(|| WeightError::UnknownWeight { name: name.to_string() })?;
        let t = materialize(&w.recipe, self.source.as_ref())?;
        if t.tensor_type() != w.ty {
            return Err(WeightError::Type { name: name.to_string(), declared: w.ty.clone(), got: t.tensor_type() });
        }
        Ok(Arc::new(t))
    }

    /// Where checkpoint tensors come from.
    pub fn source(&self) -> &(dyn TensorSource + Send + Sync) {
        self.source.as_ref()
    }

    /// Number of weights materialised so far.
    pub fn materialized(&self) -> usize {
        self.lock().len()
    }

    /// Drops every materialised weight (they are recomputed on next use).
    pub fn clear(&self) {
        self.lock().clear();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Tensor>>> {
        // A panic while holding the lock cannot leave the map inconsistent (single inserts).
        self.done.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl std::fmt::Debug for WeightCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WeightCache")
            .field("declared", &self.declared.len())
            .field("materialized", &self.materialized())
            .finish()
    }
}
