//! Runs one op of a compiled plan on bound operands: the evaluator's own ops (`weight`,
//! `read_state`, `write_state`, `slice_update`), the packed-weight kernels, and every other
//! op through [`apply`]. Results of the hot ops (`slice_update`'s copy of a shared
//! destination, pointwise `conv` on a packed weight, float elementwise ops) are written into
//! buffers of the [`BufferPool`]; their values are computed exactly as by the plain kernels.

use std::sync::Arc;

use crate::ir::{Module, Op};
use crate::weights::{WeightCache, WeightError};

use super::super::conv::{ConvAttrs, conv_pointwise_into, is_pointwise};
use super::super::dispatch::apply;
use super::super::elementwise::{binary_into, unary_into};
use super::super::index::slice_update;
use super::super::packed::PackedWeight;
use super::super::tensor::{Data, Tensor};
use super::pool::BufferPool;
use super::{Slot, StateBinding};

pub(super) enum ExecError {
    Op(String),
    Weight(String, WeightError),
}

impl From<String> for ExecError {
    fn from(message: String) -> Self {
        ExecError::Op(message)
    }
}

fn tensor_arg(args: &[Slot], i: usize) -> Result<&Arc<Tensor>, ExecError> {
    match args.get(i) {
        Some(Slot::Tensor(t)) => Ok(t),
        _ => Err(ExecError::Op(format!("operand #{i} must be a tensor"))),
    }
}

fn state_arg(args: &[Slot], i: usize) -> Result<usize, ExecError> {
    match args.get(i) {
        Some(Slot::State(k)) => Ok(*k),
        _ => Err(ExecError::Op(format!("operand #{i} must be a state"))),
    }
}

/// The slot of weight `name`: packed when the cache serves it in its stored form and it is
/// large enough (see [`PackedWeight::from_stored`]), else the materialised tensor.
pub(super) fn weight_slot(module: &Module, name: &str, weights: &WeightCache) -> Result<Slot, ExecError> {
    let weight_err = |e| ExecError::Weight(name.to_string(), e);
    let declared = module.weight(name).map(|w| &w.ty);
    if let (Some(stored), Some(ty)) = (weights.stored(name).map_err(weight_err)?, declared)
        && let Some(p) = PackedWeight::from_stored(stored, ty)
    {
        return Ok(Slot::Packed(Arc::new(p)));
    }
    Ok(Slot::Tensor(weights.get(name).map_err(weight_err)?))
}

/// `lut_to_dense` of packed indices, kept packed and built once per weight cache under
/// `key` (the names of the weights it comes from); `None` when the operands are not packed
/// indices (the ordinary path runs then).
pub(super) fn derived_lut(args: &[Slot], weights: &WeightCache, key: &str) -> Option<Result<Slot, ExecError>> {
    if !matches!(args, [Slot::Packed(_), _]) {
        return None;
    }
    let made = weights.derived(key, || match execute_packed(&Op::LutToDense, args, &mut BufferPool::new()) {
        Some(Ok(Slot::Packed(p))) => Ok(p),
        Some(Err(e)) => Err(e),
        _ => Err(ExecError::Op("internal: lut_to_dense of packed indices did not stay packed".into())),
    });
    Some(made.map(|p| Slot::Packed((*p).clone())))
}

/// The packed-operand kernels; `None` when the op has none for these operands.
fn execute_packed(op: &Op, args: &[Slot], pool: &mut BufferPool) -> Option<Result<Slot, ExecError>> {
    let tensor = |t: Tensor| Slot::Tensor(Arc::new(t));
    match (op, args) {
        (Op::LutToDense, [Slot::Packed(idx), table]) => {
            let table = match table {
                Slot::Tensor(t) => Ok(t.clone()),
                Slot::Packed(t) => t.dense().map(Arc::new),
                Slot::State(_) => return None,
            };
            Some(table.and_then(|t| idx.lut(&t)).map(|p| Slot::Packed(Arc::new(p))).map_err(ExecError::Op))
        }
        (Op::Gather { axis }, [Slot::Packed(x), Slot::Tensor(i)]) => {
            x.gather(i, *axis).map(|r| r.map(tensor).map_err(ExecError::Op))
        }
        (Op::Conv { strides, pads, dilations, groups }, [Slot::Tensor(x), Slot::Packed(w), bias @ ..]) => {
            let attrs = ConvAttrs { strides, pads, dilations, groups: *groups };
            if !is_pointwise(&w.tensor_type().shape, &attrs) {
                return None;
            }
            let bias = match bias {
                [] => None,
                [Slot::Tensor(b)] => Some(b.as_ref()),
                _ => return None,
            };
            let out = w.rows().and_then(|rows| conv_pointwise_into(x, &rows, bias, |n| pool.take_f32(n)));
            Some(out.map(tensor).map_err(ExecError::Op))
        }
        _ => None,
    }
}

/// Runs one op on bound operands; consumed operands are handed back to the pool.
pub(super) fn execute(
    op: &Op,
    args: Vec<Slot>,
    bindings: &mut [StateBinding],
    pool: &mut BufferPool,
) -> Result<Vec<Slot>, ExecError> {
    if let Some(result) = execute_packed(op, &args, pool) {
        recycle_all(args, pool);
        return Ok(vec![result?]);
    }
    // Replace every packed operand by its dense tensor (ops without a packed kernel).
    let args = args
        .into_iter()
        .map(|a| match a {
            Slot::Packed(p) => Ok(Slot::Tensor(Arc::new(p.dense()?))),
            other => Ok(other),
        })
        .collect::<Result<Vec<_>, ExecError>>()?;
    let tensors = |v: Vec<Arc<Tensor>>| v.into_iter().map(Slot::Tensor).collect();
    execute_tensors(op, args, bindings, pool).map(tensors)
}

fn recycle_all(args: Vec<Slot>, pool: &mut BufferPool) {
    for a in args {
        if let Slot::Tensor(t) = a {
            pool.recycle(t);
        }
    }
}

/// A copy of `x` on a pooled buffer (a call's inputs, and a shared `slice_update` operand
/// that the op must write into), or `None` when `x` is not in standard layout.
pub(super) fn pooled_copy(x: &Tensor, pool: &mut BufferPool) -> Option<Tensor> {
    match x.data() {
        Data::Float(a) => {
            let src = a.as_slice()?;
            let mut v = pool.take_f32(src.len());
            v.copy_from_slice(src);
            let a = ndarray::ArrayD::from_shape_vec(a.raw_dim(), v).ok()?;
            Some(Tensor::from_parts(x.dtype(), Data::Float(a)))
        }
        Data::Int(a) => {
            let src = a.as_slice()?;
            let mut v = pool.take_i64(src.len());
            v.copy_from_slice(src);
            let a = ndarray::ArrayD::from_shape_vec(a.raw_dim(), v).ok()?;
            Some(Tensor::from_parts(x.dtype(), Data::Int(a)))
        }
    }
}

/// [`execute`] for operands that are tensors or states.
fn execute_tensors(
    op: &Op,
    args: Vec<Slot>,
    bindings: &mut [StateBinding],
    pool: &mut BufferPool,
) -> Result<Vec<Arc<Tensor>>, ExecError> {
    match op {
        Op::ReadState => Ok(vec![bindings[state_arg(&args, 0)?].current.clone()]),
        Op::WriteState => {
            let k = state_arg(&args, 0)?;
            bindings[k].current = tensor_arg(&args, 1)?.clone();
            Ok(Vec::new())
        }
        Op::SliceUpdate => {
            let mut it = args.into_iter();
            match (it.next(), it.next(), it.next()) {
                (Some(Slot::Tensor(x)), Some(Slot::Tensor(u)), Some(Slot::Tensor(b))) => {
                    // A shared destination is copied (into a pooled buffer) before the update.
                    let x = match Arc::try_unwrap(x) {
                        Ok(own) => Arc::new(own),
                        Err(shared) => pooled_copy(&shared, pool).map_or(shared, Arc::new),
                    };
                    let out = slice_update(x, &u, &b)?;
                    pool.recycle(u);
                    pool.recycle(b);
                    Ok(vec![Arc::new(out)])
                }
                _ => Err(ExecError::Op("expects three tensor operands".into())),
            }
        }
        Op::Add | Op::Sub | Op::Mul | Op::Div | Op::Pow | Op::Maximum | Op::Minimum
            if args.iter().all(|a| matches!(a, Slot::Tensor(t) if t.dtype().is_float())) =>
        {
            let out = binary_into(op, tensor_arg(&args, 0)?, tensor_arg(&args, 1)?, |n| pool.take_f32(n))?;
            recycle_all(args, pool);
            Ok(vec![Arc::new(out)])
        }
        Op::Neg | Op::Sqrt | Op::Rsqrt | Op::Exp | Op::Sigmoid | Op::Silu | Op::Gelu { .. } if matches!(args.as_slice(), [Slot::Tensor(t)] if t.dtype().is_float()) =>
        {
            let out = unary_into(op, tensor_arg(&args, 0)?, |n| pool.take_f32(n))?;
            recycle_all(args, pool);
            Ok(vec![Arc::new(out)])
        }
        op => {
            let results = {
                let tensors: Vec<&Tensor> =
                    (0..args.len()).map(|i| tensor_arg(&args, i).map(|t| t.as_ref())).collect::<Result<_, _>>()?;
                apply(op, &tensors)?
            };
            recycle_all(args, pool);
            Ok(results.into_iter().map(Arc::new).collect())
        }
    }
}
