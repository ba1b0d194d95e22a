//! RoPE cosine/sine tables, computed the way transformers computes them in float32.
//!
//! transformers' rotary embedding does `freqs = inv_freq.float() @ position_ids.float()` (an
//! inner dimension of 1, so each entry is one f32 product), `emb = cat(freqs, freqs)`,
//! `cos = emb.cos() * attention_scaling` — all in f32. Doing the same here, element by
//! element in f32, reproduces those tables up to the last-bit differences of the platform's
//! `cosf`/`sinf`.

use ndarray::{Array2, ArrayD};

use crate::interp::Tensor;
use crate::interp::tensor::can_allocate;
use crate::ir::DType;

use super::WeightError;

/// Which trigonometric table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trig {
    Cos,
    Sin,
}

/// The `[len, 2·n]` table with `table[p, i] = trig(p · inv_freq[i mod n]) · scale` (n =
/// `inv_freq.len()`), computed in f32 and rounded to `dtype`.
pub fn rope_table(inv_freq: &[f64], len: usize, scale: f64, trig: Trig, dtype: DType) -> Result<Tensor, WeightError> {
    let n = inv_freq.len();
    if n == 0 || len == 0 || !dtype.is_float() {
        return Err(WeightError::Recipe { message: "rope table: needs inv_freq, len > 0 and a float dtype".into() });
    }
    // `len` comes from the module file: refuse a table that cannot be allocated rather than
    // abort on allocation failure.
    if !len.checked_mul(2 * n).is_some_and(can_allocate::<f32>) {
        return Err(WeightError::Recipe { message: format!("rope table [{len}, {}] is too large to allocate", 2 * n) });
    }
    let freqs: Vec<f32> = inv_freq.iter().map(|&f| f as f32).collect();
    let scale = scale as f32;
    let table = Array2::from_shape_fn((len, 2 * n), |(p, i)| {
        let angle = (p as f32) * freqs[i % n];
        let v = match trig {
            Trig::Cos => angle.cos(),
            Trig::Sin => angle.sin(),
        };
        v * scale
    });
    let table: ArrayD<f32> = table.into_dyn();
    Tensor::from_float_array(dtype, table).map_err(|e| WeightError::Recipe { message: e.to_string() })
}
