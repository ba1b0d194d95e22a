//! [`WeightCache`]: the module's weights, materialised lazily and at most once each.

use std::any::Any;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use crate::interp::Tensor;
use crate::ir::{DType, Module, Recipe, Weight};

use super::{StoredKind, StoredTensor, TensorSource, WeightError, materialize};

/// Lazily materialised module weights, shared by every function call.
///
/// Invariants: the cache holds only weights declared in the module it was built from, each
/// with exactly its declared type; once materialised, a weight is never recomputed (weights
/// are shared between layers and functions, and reading them is expensive). Thread-safe: the
/// map sits behind a `Mutex`, and materialisation runs outside the lock, so at worst two
/// threads racing on one weight both compute it and one result is kept.
pub struct WeightCache {
    /// Distinct per cache built in this process (see [`WeightCache::id`]).
    id: u64,
    declared: HashMap<String, Weight>,
    source: Arc<dyn TensorSource + Send + Sync>,
    done: Mutex<HashMap<String, Arc<Tensor>>>,
    /// Weights served in their stored form (`None`: the source cannot, use [`Self::get`]).
    stored: Mutex<HashMap<String, Option<Arc<StoredTensor>>>>,
    /// Values derived from weights by callers (see [`WeightCache::derived`]).
    derived: Mutex<HashMap<String, Arc<dyn Any + Send + Sync>>>,
}

impl WeightCache {
    /// A cache over `module`'s weight declarations, reading checkpoint tensors from `source`.
    pub fn new(module: &Module, source: Arc<dyn TensorSource + Send + Sync>) -> WeightCache {
        let declared = module.weights.iter().map(|w| (w.name.clone(), w.clone())).collect();
        static NEXT_ID: AtomicU64 = AtomicU64::new(0);
        WeightCache {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            declared,
            source,
            done: Mutex::new(HashMap::new()),
            stored: Mutex::new(HashMap::new()),
            derived: Mutex::new(HashMap::new()),
        }
    }

    /// An identifier no other cache of this process has: a compiled execution plan
    /// (`interp::exec`) keeps the weights it resolved only for the cache they came from.
    pub fn id(&self) -> u64 {
        self.id
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

    /// The weight `name` in its stored encoding, when its recipe is a bare checkpoint
    /// tensor the source can serve that way (see [`TensorSource::stored`]) with the declared
    /// shape, as fp16 for an `fp16` weight or packed indices for a `uintB` one; `Ok(None)`
    /// otherwise (use [`WeightCache::get`]). Nothing is decoded, so this never allocates
    /// the weight's size; the answer is remembered per name.
    pub fn stored(&self, name: &str) -> Result<Option<Arc<StoredTensor>>, WeightError> {
        if let Some(s) = self.stored.lock().unwrap_or_else(PoisonError::into_inner).get(name) {
            return Ok(s.clone());
        }
        let w = self.declared.get(name).ok_or_else(|| WeightError::UnknownWeight { name: name.to_string() })?;
        let found = match &w.recipe {
            Recipe::Checkpoint { tensor, ty } if *ty == w.ty => match self.source.stored(tensor) {
                Some(Ok(t)) => {
                    let kind_fits = match t.kind() {
                        StoredKind::F16 => ty.dtype == DType::F16,
                        StoredKind::Index { bits } => ty.dtype.index_bits() == Some(bits),
                    };
                    if t.shape() != ty.shape.as_slice() {
                        return Err(WeightError::Shape {
                            tensor: tensor.clone(),
                            expected: ty.shape.clone(),
                            got: t.shape().to_vec(),
                        });
                    }
                    kind_fits.then(|| Arc::new(t))
                }
                Some(Err(e)) => return Err(e),
                None => None,
            },
            _ => None,
        };
        self.stored.lock().unwrap_or_else(PoisonError::into_inner).insert(name.to_string(), found.clone());
        Ok(found)
    }

    /// A value derived from this cache's weights only (e.g. a packed LUT weight built from
    /// its indices and table weights), made once per `key` by `make` and shared after. The
    /// caller chooses keys that name every weight the value depends on; a key holding a
    /// value of another type is recomputed and not stored.
    pub fn derived<T: Any + Send + Sync, E>(
        &self,
        key: &str,
        make: impl FnOnce() -> Result<T, E>,
    ) -> Result<Arc<T>, E> {
        let lock = || self.derived.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(v) = lock().get(key).cloned()
            && let Ok(v) = v.downcast::<T>()
        {
            return Ok(v);
        }
        let v = Arc::new(make()?);
        let mut map = lock();
        let kept = map.entry(key.to_string()).or_insert_with(|| v.clone()).clone();
        Ok(kept.downcast::<T>().unwrap_or(v))
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
