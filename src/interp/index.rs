//! Indexing ops with run-time indices: `gather`, `slice_update`, `lut_to_dense`.
//! Every index is checked; an out-of-range (or negative) index is a run-time error, never a
//! clamp or a wrap.

use std::sync::Arc;

use ndarray::{ArrayD, Axis, IxDyn, Slice};

use crate::ir::typing::norm_axis;

use super::kernel::{OpResult, floats, ints, move_elements, reshape};
use super::tensor::{Data, Tensor};

/// `gather(x, indices){axis}`: shape `x.shape[..a] ++ indices.shape ++ x.shape[a+1..]`.
pub fn gather(x: &Tensor, indices: &Tensor, axis: i64) -> OpResult {
    let a = norm_axis(axis, x.shape().len()).ok_or_else(|| format!("axis {axis} out of range"))?;
    let extent = x.shape()[a];
    let idx = ints(indices)?;
    let mut flat = Vec::with_capacity(idx.len());
    for &i in idx.iter() {
        match usize::try_from(i) {
            Ok(u) if u < extent => flat.push(u),
            _ => return Err(format!("index {i} out of range [0, {extent}) on axis {a} of {}", x.tensor_type())),
        }
    }
    let shape: Vec<usize> = x.shape()[..a].iter().chain(idx.shape()).chain(&x.shape()[a + 1..]).copied().collect();
    // `select` yields axis `a` of length numel(indices); row-major reshape unfolds it.
    Ok(move_elements!(x, |v| reshape(v.select(Axis(a), &flat).view(), &shape)?))
}

/// `slice_update(x, u, begin)`: `x` with the box `[begin, begin + u.shape)` replaced by `u`.
/// Takes `x` by `Arc` so that a uniquely held destination (e.g. a KV cache read for its last
/// use) is updated in place instead of copied.
pub fn slice_update(x: Arc<Tensor>, u: &Tensor, begin: &Tensor) -> OpResult {
    let starts = update_box(&x, u, begin)?;
    let mut out = Arc::try_unwrap(x).unwrap_or_else(|shared| (*shared).clone());
    write_box(&mut out, u, &starts)?;
    Ok(out)
}

/// [`slice_update`] on an owned destination, in place; returns what the box held before (a
/// tensor shaped like `u`), so that `slice_update_in_place(x, &old, begin)` undoes it. On
/// error `x` is unchanged.
pub fn slice_update_in_place(x: &mut Tensor, u: &Tensor, begin: &Tensor) -> OpResult {
    let starts = update_box(x, u, begin)?;
    let boxed = |ax: ndarray::AxisDescription| {
        let k = ax.axis.index();
        Slice::from(starts[k]..starts[k] + u.shape()[k])
    };
    let old = match x.data() {
        Data::Float(a) => Data::Float(a.slice_each_axis(boxed).to_owned()),
        Data::Int(a) => Data::Int(a.slice_each_axis(boxed).to_owned()),
    };
    write_box(x, u, &starts)?;
    Ok(Tensor::from_parts(x.dtype(), old))
}

/// The start on every axis of the box `slice_update(x, u, begin)` writes, after checking
/// that `u` fits `x` there.
fn update_box(x: &Tensor, u: &Tensor, begin: &Tensor) -> OpResult<Vec<usize>> {
    let b = ints(begin)?;
    let rank = x.shape().len();
    if b.len() != rank || u.shape().len() != rank || u.dtype() != x.dtype() {
        return Err(format!(
            "update {} with begin {} does not fit {}",
            u.tensor_type(),
            begin.tensor_type(),
            x.tensor_type()
        ));
    }
    let mut starts = Vec::with_capacity(rank);
    for (k, &s) in b.iter().enumerate() {
        let (dim, len) = (x.shape()[k], u.shape()[k]);
        match usize::try_from(s) {
            Ok(s) if len <= dim && s <= dim - len => starts.push(s),
            _ => {
                return Err(format!(
                    "begin {s} on axis {k} out of range: the update of extent {len} must fit in [0, {dim})"
                ));
            }
        }
    }
    Ok(starts)
}

/// Copies `u` into the box of `x` at `starts` (checked by [`update_box`]).
fn write_box(x: &mut Tensor, u: &Tensor, starts: &[usize]) -> OpResult<()> {
    let boxed = |ax: ndarray::AxisDescription| {
        let k = ax.axis.index();
        Slice::from(starts[k]..starts[k] + u.shape()[k])
    };
    match (x.data_mut(), u.data()) {
        (Data::Float(dst), Data::Float(src)) => dst.slice_each_axis_mut(boxed).assign(src),
        (Data::Int(dst), Data::Int(src)) => dst.slice_each_axis_mut(boxed).assign(src),
        _ => return Err(format!("update {} does not match the destination's kind", u.tensor_type())),
    }
    Ok(())
}

/// `lut_to_dense(indices, lut)`: `out[i, …] = lut[i / (d0 / G), indices[i, …]]`, copied exactly.
pub fn lut_to_dense(indices: &Tensor, lut: &Tensor) -> OpResult {
    let bits = indices.dtype().index_bits().ok_or_else(|| format!("{} is not an index type", indices.dtype()))?;
    let idx = ints(indices)?;
    let table = floats(lut)?;
    let (&d0, _) = idx.shape().split_first().ok_or("indices must have rank ≥ 1")?;
    let (groups, entries) = match table.shape() {
        &[g, e] if e == 1usize << bits && g > 0 && d0 % g == 0 => (g, e),
        _ => return Err(format!("lut {} does not fit indices {}", lut.tensor_type(), indices.tensor_type())),
    };
    let rows_per_group = d0 / groups;
    let mut out = ArrayD::<f32>::zeros(IxDyn(idx.shape()));
    for (i, (src, mut dst)) in idx.outer_iter().zip(out.outer_iter_mut()).enumerate() {
        let g = i / rows_per_group;
        for (d, &s) in dst.iter_mut().zip(src.iter()) {
            let e = usize::try_from(s).ok().filter(|&e| e < entries).ok_or_else(|| format!("index {s} ≥ {entries}"))?;
            *d = table[[g, e]];
        }
    }
    Ok(Tensor::from_parts(lut.dtype(), Data::Float(out)))
}
