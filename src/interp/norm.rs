//! Normalisations: `softmax`, `rms_norm`, `layer_norm`. Accumulation is in f64; each result
//! element is rounded once to the dtype.

use ndarray::{ArrayD, ArrayViewMut1, Axis, IxDyn};

use crate::ir::DType;
use crate::ir::typing::norm_axis;

use super::kernel::{OpResult, float_result, floats};
use super::reduce::{axes_of, rows};
use super::tensor::{Tensor, round_f64};

fn axis_of(axis: i64, rank: usize) -> OpResult<usize> {
    norm_axis(axis, rank).ok_or_else(|| format!("axis {axis} out of range for rank {rank}"))
}

fn softmax_lane(dtype: DType, mut lane: ArrayViewMut1<'_, f32>) {
    let m = lane.iter().fold(f64::NEG_INFINITY, |m, &v| {
        let v = f64::from(v);
        if m.is_nan() || v.is_nan() { f64::NAN } else { m.max(v) }
    });
    let sum: f64 = lane.iter().map(|&v| (f64::from(v) - m).exp()).sum();
    lane.mapv_inplace(|v| round_f64(dtype, (f64::from(v) - m).exp() / sum));
}

/// `softmax` along `axis`, with the maximum subtracted first (an all-`−inf` line gives nan).
pub fn softmax(x: &Tensor, axis: i64) -> OpResult {
    let a = axis_of(axis, x.shape().len())?;
    let mut out = floats(x)?.clone();
    for lane in out.lanes_mut(Axis(a)) {
        softmax_lane(x.dtype(), lane);
    }
    float_result(x.dtype(), out)
}

/// `rms_norm`: `x / sqrt(mean(x², axis) + eps) · gain[j]`, gain indexed along `axis`.
pub fn rms_norm(x: &Tensor, gain: &Tensor, axis: i64, eps: f64) -> OpResult {
    let a = axis_of(axis, x.shape().len())?;
    let g = floats(gain)?;
    if g.shape() != [x.shape()[a]] {
        return Err(format!("gain {} does not match axis {a} of {}", gain.tensor_type(), x.tensor_type()));
    }
    let dtype = x.dtype();
    let mut out = floats(x)?.clone();
    for mut lane in out.lanes_mut(Axis(a)) {
        let ms = lane.iter().map(|&v| f64::from(v) * f64::from(v)).sum::<f64>() / lane.len() as f64;
        let scale = 1.0 / (ms + eps).sqrt();
        for (v, &gj) in lane.iter_mut().zip(g.iter()) {
            *v = round_f64(dtype, f64::from(*v) * scale * f64::from(gj));
        }
    }
    float_result(dtype, out)
}

/// `layer_norm` over `axes` without affine terms: `(x − μ) / sqrt(σ² + eps)` with the biased
/// variance `σ² = mean((x − μ)²)`.
pub fn layer_norm(x: &Tensor, axes: &[i64], eps: f64) -> OpResult {
    let rank = x.shape().len();
    let reduced = axes_of(axes, rank)?;
    let dtype = x.dtype();
    let (mut rows, _) = rows(floats(x)?.view(), &reduced, true)?;
    for mut row in rows.outer_iter_mut() {
        let n = row.len() as f64;
        let mean = row.iter().map(|&v| f64::from(v)).sum::<f64>() / n;
        let var = row.iter().map(|&v| (f64::from(v) - mean).powi(2)).sum::<f64>() / n;
        let inv = 1.0 / (var + eps).sqrt();
        row.mapv_inplace(|v| round_f64(dtype, (f64::from(v) - mean) * inv));
    }
    // Undo the move of the reduced axes to the end.
    let kept: Vec<usize> = (0..rank).filter(|i| !reduced.contains(i)).collect();
    let perm: Vec<usize> = kept.iter().chain(&reduced).copied().collect();
    let moved_shape: Vec<usize> = perm.iter().map(|&p| x.shape()[p]).collect();
    let moved = ArrayD::from_shape_vec(IxDyn(&moved_shape), rows.into_iter().collect()).map_err(|e| e.to_string())?;
    let mut inverse = vec![0; rank];
    for (i, &p) in perm.iter().enumerate() {
        inverse[p] = i;
    }
    let out = moved.permuted_axes(IxDyn(&inverse)).as_standard_layout().into_owned();
    float_result(dtype, out)
}
