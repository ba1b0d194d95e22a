//! `matmul` (batched, broadcasting, optional transposes) and `linear` (`x · wᵀ + b`).
//!
//! Both go through ndarray's `general_mat_mul` on 2-D views (matrixmultiply's f32 GEMM,
//! accumulating in f32), so hidden sizes of a few thousand stay fast. Results are rounded to
//! the dtype afterwards.

use ndarray::linalg::general_mat_mul;
use ndarray::{Array2, ArrayD, ArrayView2, ArrayViewD, Axis, Ix2, IxDyn};

use crate::ir::typing::broadcast_shapes;

use super::kernel::{OpResult, float_result, floats};
use super::tensor::Tensor;

/// The 2-D matrix at batch index `idx` of a view whose leading axes are the batch axes.
fn matrix<'a>(v: &ArrayViewD<'a, f32>, idx: &[usize]) -> OpResult<ArrayView2<'a, f32>> {
    let mut m = v.clone();
    for &i in idx {
        m = m.index_axis_move(Axis(0), i);
    }
    m.into_dimensionality::<Ix2>().map_err(|e| e.to_string())
}

/// Row-major multi-indices of `shape`, in order.
fn batch_indices(shape: &[usize]) -> Vec<Vec<usize>> {
    let total: usize = shape.iter().product();
    (0..total)
        .map(|mut flat| {
            let mut idx = vec![0; shape.len()];
            for k in (0..shape.len()).rev() {
                idx[k] = flat % shape[k];
                flat /= shape[k];
            }
            idx
        })
        .collect()
}

/// `matmul(a, b)` with `a'`/`b'` the optionally transposed operands:
/// `out[β, m, n] = Σ_k a'[β↓a, m, k] · b'[β↓b, k, n]`.
pub fn matmul(a: &Tensor, b: &Tensor, transpose_a: bool, transpose_b: bool) -> OpResult {
    let (x, y) = (floats(a)?, floats(b)?);
    let (ra, rb) = (x.ndim(), y.ndim());
    if ra < 2 || rb < 2 {
        return Err(format!("operands need rank ≥ 2: {}, {}", a.tensor_type(), b.tensor_type()));
    }
    let last2 =
        |s: &[usize], t: bool| if t { (s[s.len() - 1], s[s.len() - 2]) } else { (s[s.len() - 2], s[s.len() - 1]) };
    let (m, k) = last2(x.shape(), transpose_a);
    let (k2, n) = last2(y.shape(), transpose_b);
    if k != k2 {
        return Err(format!("inner dimensions differ: {k} vs {k2}"));
    }
    let batch = broadcast_shapes(&x.shape()[..ra - 2], &y.shape()[..rb - 2])
        .ok_or_else(|| "batch dimensions do not broadcast".to_string())?;
    let full = |s: &[usize]| -> Vec<usize> { batch.iter().chain(&s[s.len() - 2..]).copied().collect() };
    let xb = x.broadcast(IxDyn(&full(x.shape()))).ok_or("batch broadcast of a failed")?;
    let yb = y.broadcast(IxDyn(&full(y.shape()))).ok_or("batch broadcast of b failed")?;
    let out_shape: Vec<usize> = batch.iter().copied().chain([m, n]).collect();
    let mut out = ArrayD::<f32>::zeros(IxDyn(&out_shape));
    for idx in batch_indices(&batch) {
        let mut am = matrix(&xb, &idx)?;
        let mut bm = matrix(&yb, &idx)?;
        if transpose_a {
            am = am.reversed_axes();
        }
        if transpose_b {
            bm = bm.reversed_axes();
        }
        let mut o = out.view_mut();
        for &i in &idx {
            o = o.index_axis_move(Axis(0), i);
        }
        let mut o = o.into_dimensionality::<Ix2>().map_err(|e| e.to_string())?;
        general_mat_mul(1.0, &am, &bm, 0.0, &mut o);
    }
    float_result(a.dtype(), out)
}

/// `linear(x, w[, b])`: `out[.., o] = Σ_i x[.., i] · w[o, i] + b[o]`.
pub fn linear(x: &Tensor, w: &Tensor, bias: Option<&Tensor>) -> OpResult {
    let (xa, wa) = (floats(x)?, floats(w)?);
    let w2 = wa.view().into_dimensionality::<Ix2>().map_err(|_| format!("weight {} is not rank 2", w.tensor_type()))?;
    let (outf, inf) = w2.dim();
    let Some((&last, lead)) = xa.shape().split_last() else {
        return Err("x must have rank ≥ 1".into());
    };
    if last != inf {
        return Err(format!("x {} does not match weight {}", x.tensor_type(), w.tensor_type()));
    }
    let rows: usize = lead.iter().product();
    let x2 = xa.as_standard_layout();
    let x2 = x2.view().into_shape_with_order((rows, inf)).map_err(|e| e.to_string())?;
    let mut y = Array2::<f32>::zeros((rows, outf));
    general_mat_mul(1.0, &x2, &w2.t(), 0.0, &mut y);
    if let Some(b) = bias {
        let bv = floats(b)?;
        if bv.shape() != [outf] {
            return Err(format!("bias {} does not match weight {}", b.tensor_type(), w.tensor_type()));
        }
        let bv = bv.view().into_dimensionality::<ndarray::Ix1>().map_err(|e| e.to_string())?;
        y += &bv;
    }
    let out_shape: Vec<usize> = lead.iter().copied().chain([outf]).collect();
    let out = y.into_dyn().into_shape_with_order(IxDyn(&out_shape)).map_err(|e| e.to_string())?;
    float_result(x.dtype(), out)
}
