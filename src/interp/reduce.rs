//! Reductions (`reduce_sum`, `reduce_mean`, `reduce_max`) and `argmax`.
//!
//! Multi-axis reductions move the reduced axes last and view the data as rows
//! `[outer, N]`; the kept axes keep their relative order, so the row results are already in
//! row-major order of the result. Float sums accumulate in f64 and are rounded once.

use ndarray::{Array2, ArrayD, ArrayViewD, Axis, IxDyn, Zip};

use crate::ir::typing::norm_axis;
use crate::ir::{DType, Op};

use super::kernel::{OpResult, float_result, int_result};
use super::tensor::{Data, Tensor, round_f64, wrap_int};

/// Normalised, duplicate-free axes.
pub fn axes_of(axes: &[i64], rank: usize) -> OpResult<Vec<usize>> {
    let mut out = Vec::with_capacity(axes.len());
    for &a in axes {
        match norm_axis(a, rank) {
            Some(n) if !out.contains(&n) => out.push(n),
            _ => return Err(format!("invalid or repeated axis {a} for rank {rank}")),
        }
    }
    Ok(out)
}

/// `a` with the `reduced` axes moved last, as rows `[outer, N]`, plus the result shape.
pub fn rows<T: Clone>(a: ArrayViewD<'_, T>, reduced: &[usize], keep_dims: bool) -> OpResult<(Array2<T>, Vec<usize>)> {
    let rank = a.ndim();
    let dims = a.shape().to_vec();
    let kept: Vec<usize> = (0..rank).filter(|i| !reduced.contains(i)).collect();
    let outer: usize = kept.iter().map(|&i| dims[i]).product();
    let n: usize = reduced.iter().map(|&i| dims[i]).product();
    let perm: Vec<usize> = kept.iter().chain(reduced).copied().collect();
    let moved = a.permuted_axes(IxDyn(&perm));
    let rows = Array2::from_shape_vec((outer, n), moved.iter().cloned().collect()).map_err(|e| e.to_string())?;
    let shape = (0..rank).filter_map(|i| if reduced.contains(&i) { keep_dims.then_some(1) } else { Some(dims[i]) });
    Ok((rows, shape.collect()))
}

fn collect<T>(shape: &[usize], values: Vec<T>) -> OpResult<ArrayD<T>> {
    ArrayD::from_shape_vec(IxDyn(shape), values).map_err(|e| e.to_string())
}

fn float_reduce(op: &Op, dtype: DType, row: ndarray::ArrayView1<'_, f32>) -> f32 {
    match op {
        Op::ReduceMax { .. } => {
            row.iter().fold(f32::NEG_INFINITY, |m, &v| if m.is_nan() || v.is_nan() { f32::NAN } else { m.max(v) })
        }
        _ => {
            let sum: f64 = row.iter().map(|&v| f64::from(v)).sum();
            let value = if matches!(op, Op::ReduceMean { .. }) { sum / row.len() as f64 } else { sum };
            round_f64(dtype, value)
        }
    }
}

fn int_reduce(op: &Op, dtype: DType, row: ndarray::ArrayView1<'_, i64>) -> OpResult<i64> {
    if let Op::ReduceMax { .. } = op {
        let min = if dtype == DType::I32 { i64::from(i32::MIN) } else { i64::MIN };
        return Ok(row.iter().copied().fold(min, i64::max));
    }
    let sum = wrap_int(dtype, row.iter().fold(0i64, |s, &v| s.wrapping_add(v)));
    if matches!(op, Op::ReduceMean { .. }) {
        if row.is_empty() {
            return Err("integer mean over an empty extent".into());
        }
        return Ok(sum.wrapping_div(row.len() as i64));
    }
    Ok(sum)
}

/// `reduce_sum`, `reduce_mean`, `reduce_max`.
pub fn reduce(op: &Op, x: &Tensor) -> OpResult {
    let (Op::ReduceSum { axes, keep_dims } | Op::ReduceMean { axes, keep_dims } | Op::ReduceMax { axes, keep_dims }) =
        op
    else {
        return Err(format!("`{}` is not a reduction", op.name()));
    };
    let reduced = axes_of(axes, x.shape().len())?;
    let dtype = x.dtype();
    match x.data() {
        Data::Float(a) => {
            let (rows, shape) = rows(a.view(), &reduced, *keep_dims)?;
            let values = rows.outer_iter().map(|r| float_reduce(op, dtype, r)).collect();
            float_result(dtype, collect(&shape, values)?)
        }
        Data::Int(a) => {
            let (rows, shape) = rows(a.view(), &reduced, *keep_dims)?;
            let values = rows.outer_iter().map(|r| int_reduce(op, dtype, r)).collect::<OpResult<Vec<_>>>()?;
            int_result(dtype, collect(&shape, values)?)
        }
    }
}

/// First index of the maximum; a nan beats every number (the first nan wins).
fn argmax_f32(lane: ndarray::ArrayView1<'_, f32>) -> usize {
    let mut best = 0;
    for (j, &v) in lane.iter().enumerate() {
        let b = lane[best];
        if b.is_nan() {
            break;
        }
        if v.is_nan() || v > b {
            best = j;
        }
    }
    best
}

fn argmax_i64(lane: ndarray::ArrayView1<'_, i64>) -> usize {
    let mut best = 0;
    for (j, &v) in lane.iter().enumerate() {
        if v > lane[best] {
            best = j;
        }
    }
    best
}

/// `argmax` → `int32`. An empty search axis is a run-time error.
pub fn argmax(x: &Tensor, axis: i64, keep_dims: bool) -> OpResult {
    let a = norm_axis(axis, x.shape().len()).ok_or_else(|| format!("axis {axis} out of range"))?;
    if x.shape()[a] == 0 {
        return Err(format!("argmax over the empty axis {a} of {}", x.tensor_type()));
    }
    let mut out: ArrayD<i64> = match x.data() {
        Data::Float(v) => Zip::from(v.lanes(Axis(a))).map_collect(|l| argmax_f32(l) as i64),
        Data::Int(v) => Zip::from(v.lanes(Axis(a))).map_collect(|l| argmax_i64(l) as i64),
    };
    if keep_dims {
        out.insert_axis_inplace(Axis(a));
    }
    Tensor::from_int_array(DType::I32, out).map_err(|e| e.to_string())
}
