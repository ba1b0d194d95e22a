//! Weight values for statistics (the fp16 range report, the palettize pass's reconstruction
//! error): materialises module weights, reading the checkpoint named by the module's
//! `checkpoint` attribute through the interpreter's weight code (`crate::weights`).

use std::path::Path;
use std::sync::Arc;

use crate::checkpoint::Checkpoint;
use crate::ir::{DType, Module, Weight};
use crate::weights::WeightCache;

/// `f(name, values)` for every float, non-fp16 weight of `m`, in parallel (rayon, one weight
/// per task, each dropped after use); the results come back in module order. Fails —
/// before calling `f` — when the checkpoint is not available, and on a weight that cannot
/// be read.
pub fn map_float_weights<T: Send>(m: &Module, f: impl Fn(&str, &[f32]) -> T + Sync) -> Result<Vec<T>, String> {
    map_float_weights_or(m, |_, _| None, f)
}

/// [`map_float_weights`] that first asks `shortcut(weight, checkpoint)` for each weight's
/// result and materialises the weight for `f` only when it gives `None`.
pub fn map_float_weights_or<T: Send>(
    m: &Module,
    shortcut: impl Fn(&Weight, &Checkpoint) -> Option<T> + Sync,
    f: impl Fn(&str, &[f32]) -> T + Sync,
) -> Result<Vec<T>, String> {
    use rayon::prelude::*;
    let checkpoint = module_checkpoint(m)?;
    let cache = WeightCache::new(m, checkpoint.clone());
    let weights: Vec<_> = m.weights.iter().filter(|w| w.ty.dtype.is_float() && w.ty.dtype != DType::F16).collect();
    weights
        .par_iter()
        .map(|w| {
            if let Some(done) = shortcut(w, &checkpoint) {
                return Ok(done);
            }
            let t = cache.get_uncached(&w.name).map_err(|e| e.to_string())?;
            Ok(match t.as_f32().and_then(|a| a.as_slice()) {
                Some(values) => f(&w.name, values),
                None => f(&w.name, &t.to_f32_vec()),
            })
        })
        .collect()
}

/// A weight cache over `m` reading the checkpoint named by its `checkpoint` attribute; fails
/// with the reason when that folder is not available.
pub fn weight_cache(m: &Module) -> Result<WeightCache, String> {
    Ok(WeightCache::new(m, module_checkpoint(m)?))
}

/// The checkpoint named by `m`'s `checkpoint` attribute (a folder or a GGUF file), opened;
/// fails with the reason when it is not available.
pub fn module_checkpoint(m: &Module) -> Result<Arc<Checkpoint>, String> {
    let dir = m.attr_str("checkpoint").ok_or("the module has no `checkpoint` attribute")?;
    let path = Path::new(dir);
    if !(path.is_dir() || path.is_file() && crate::gguf::is_gguf_path(path)) {
        return Err(format!("checkpoint `{dir}` is not readable from here"));
    }
    Checkpoint::open(path).map(Arc::new).map_err(|e| e.to_string())
}
