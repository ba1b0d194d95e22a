//! Element-moving ops: `reshape`, `transpose`, `concat`, `split`, `slice`, `expand`,
//! `squeeze`, `expand_dims`. They accept every dtype and never change values, so results are
//! built with [`Tensor::from_parts`] (copies of valid elements keep the tensor invariants).

use ndarray::{ArrayD, ArrayViewD, Axis, IxDyn, Slice};

use crate::ir::typing::norm_axis;

use super::kernel::{OpResult, move_elements, reshape as reshape_arr};
use super::reduce::axes_of;
use super::tensor::Tensor;

/// `reshape` to `shape` (same element count, row-major order kept).
pub fn reshape(x: &Tensor, shape: &[usize]) -> OpResult {
    Ok(move_elements!(x, |a| reshape_arr(a.view(), shape)?))
}

/// `transpose`: result axis `i` is input axis `perm[i]`.
pub fn transpose(x: &Tensor, perm: &[usize]) -> OpResult {
    if !crate::ir::recipe::is_permutation(perm, x.shape().len()) {
        return Err(format!("{perm:?} is not a permutation of 0..{}", x.shape().len()));
    }
    Ok(move_elements!(x, |a| a.view().permuted_axes(IxDyn(perm)).as_standard_layout().into_owned()))
}

fn cat<T: Clone>(axis: usize, parts: &[&ArrayD<T>]) -> OpResult<ArrayD<T>> {
    let views: Vec<ArrayViewD<'_, T>> = parts.iter().map(|a| a.view()).collect();
    ndarray::concatenate(Axis(axis), &views).map_err(|e| e.to_string())
}

/// `concat` along `axis`, operands in order.
pub fn concat(xs: &[&Tensor], axis: i64) -> OpResult {
    let first = xs.first().ok_or("concat needs at least one operand")?;
    let a = norm_axis(axis, first.shape().len()).ok_or_else(|| format!("axis {axis} out of range"))?;
    if xs.iter().any(|t| t.dtype() != first.dtype()) {
        return Err("operands differ in dtype".into());
    }
    let data = if first.dtype().is_float() {
        let parts: Vec<&ArrayD<f32>> = xs.iter().filter_map(|t| t.as_f32()).collect();
        super::tensor::Data::Float(cat(a, &parts)?)
    } else {
        let parts: Vec<&ArrayD<i64>> = xs.iter().filter_map(|t| t.as_i64()).collect();
        super::tensor::Data::Int(cat(a, &parts)?)
    };
    Ok(Tensor::from_parts(first.dtype(), data))
}

/// `split` along `axis` into pieces of `sizes`.
pub fn split(x: &Tensor, axis: i64, sizes: &[usize]) -> OpResult<Vec<Tensor>> {
    let a = norm_axis(axis, x.shape().len()).ok_or_else(|| format!("axis {axis} out of range"))?;
    if sizes.iter().sum::<usize>() != x.shape()[a] {
        return Err(format!("sizes {sizes:?} do not sum to {}", x.shape()[a]));
    }
    let mut start = 0;
    let mut out = Vec::with_capacity(sizes.len());
    for &s in sizes {
        let range = Slice::from(start..start + s);
        out.push(move_elements!(x, |v| v.slice_axis(Axis(a), range).to_owned()));
        start += s;
    }
    Ok(out)
}

/// `slice`: the static box `[begin, end)`.
pub fn slice(x: &Tensor, begin: &[usize], end: &[usize]) -> OpResult {
    let shape = x.shape();
    let ok = begin.len() == shape.len()
        && end.len() == shape.len()
        && (0..shape.len()).all(|i| begin[i] <= end[i] && end[i] <= shape[i]);
    if !ok {
        return Err(format!("box {begin:?}..{end:?} does not fit {}", x.tensor_type()));
    }
    Ok(move_elements!(x, |a| a
        .slice_each_axis(|ax| Slice::from(begin[ax.axis.index()]..end[ax.axis.index()]))
        .to_owned()))
}

/// `expand` (broadcast_to at equal rank).
pub fn expand(x: &Tensor, shape: &[usize]) -> OpResult {
    if shape.len() != x.shape().len() {
        return Err(format!("{} cannot expand to {shape:?}", x.tensor_type()));
    }
    let msg = || format!("{} cannot expand to {shape:?}", x.tensor_type());
    Ok(move_elements!(x, |a| a.broadcast(IxDyn(shape)).ok_or_else(msg)?.to_owned()))
}

/// `squeeze`: removes the listed size-1 axes.
pub fn squeeze(x: &Tensor, axes: &[i64]) -> OpResult {
    let set = axes_of(axes, x.shape().len())?;
    if let Some(&a) = set.iter().find(|&&a| x.shape()[a] != 1) {
        return Err(format!("axis {a} of {} is not 1", x.tensor_type()));
    }
    let shape: Vec<usize> = x.shape().iter().enumerate().filter(|(i, _)| !set.contains(i)).map(|(_, &d)| d).collect();
    reshape(x, &shape)
}

/// `expand_dims`: inserts size-1 axes at the listed positions of the result.
pub fn expand_dims(x: &Tensor, axes: &[i64]) -> OpResult {
    let out_rank = x.shape().len() + axes.len();
    let set = axes_of(axes, out_rank)?;
    let mut rest = x.shape().iter();
    let shape: Vec<usize> =
        (0..out_rank).map(|i| if set.contains(&i) { 1 } else { rest.next().copied().unwrap_or(1) }).collect();
    reshape(x, &shape)
}
