//! Maps a pure, stateless op to its kernel. `weight`, `read_state`, `write_state` and
//! `slice_update` need the evaluator's context (weights, states, operand ownership) and are
//! handled in `eval.rs`.

use crate::ir::Op;

use super::cast::{cast, constant};
use super::conv::{ConvAttrs, conv};
use super::elementwise::{binary, unary};
use super::index::{gather, lut_to_dense};
use super::kernel::OpResult;
use super::linalg::{linear, matmul};
use super::norm::{layer_norm, rms_norm, softmax};
use super::reduce::{argmax, reduce};
use super::shape;
use super::tensor::Tensor;

fn arg<'a>(args: &[&'a Tensor], i: usize) -> OpResult<&'a Tensor> {
    args.get(i).copied().ok_or_else(|| format!("missing operand #{i}"))
}

/// Runs `op` on `args`; returns its results in order.
pub fn apply(op: &Op, args: &[&Tensor]) -> OpResult<Vec<Tensor>> {
    let x = || arg(args, 0);
    let one = |t: OpResult| t.map(|t| vec![t]);
    match op {
        Op::Const { ty, data } => one(constant(ty, data)),
        Op::Add | Op::Sub | Op::Mul | Op::Div | Op::Pow | Op::Maximum | Op::Minimum => {
            one(binary(op, x()?, arg(args, 1)?))
        }
        Op::Neg | Op::Sqrt | Op::Rsqrt | Op::Exp | Op::Sigmoid | Op::Silu | Op::Gelu { .. } => one(unary(op, x()?)),
        Op::ReduceSum { .. } | Op::ReduceMean { .. } | Op::ReduceMax { .. } => one(reduce(op, x()?)),
        Op::Softmax { axis } => one(softmax(x()?, *axis)),
        Op::RmsNorm { axis, eps } => one(rms_norm(x()?, arg(args, 1)?, *axis, *eps)),
        Op::LayerNorm { axes, eps } => one(layer_norm(x()?, axes, *eps)),
        Op::Matmul { transpose_a, transpose_b } => one(matmul(x()?, arg(args, 1)?, *transpose_a, *transpose_b)),
        Op::Linear => one(linear(x()?, arg(args, 1)?, args.get(2).copied())),
        Op::Conv { strides, pads, dilations, groups } => {
            let attrs = ConvAttrs { strides, pads, dilations, groups: *groups };
            one(conv(x()?, arg(args, 1)?, args.get(2).copied(), &attrs))
        }
        Op::Reshape { shape: s } => one(shape::reshape(x()?, s)),
        Op::Transpose { perm } => one(shape::transpose(x()?, perm)),
        Op::Concat { axis } => one(shape::concat(args, *axis)),
        Op::Split { axis, sizes } => shape::split(x()?, *axis, sizes),
        Op::Slice { begin, end } => one(shape::slice(x()?, begin, end)),
        Op::Expand { shape: s } => one(shape::expand(x()?, s)),
        Op::Squeeze { axes } => one(shape::squeeze(x()?, axes)),
        Op::ExpandDims { axes } => one(shape::expand_dims(x()?, axes)),
        Op::Gather { axis } => one(gather(x()?, arg(args, 1)?, *axis)),
        Op::Cast { dtype } => one(cast(x()?, *dtype)),
        Op::Argmax { axis, keep_dims } => one(argmax(x()?, *axis, *keep_dims)),
        Op::LutToDense => one(lut_to_dense(x()?, arg(args, 1)?)),
        Op::Weight { .. } | Op::ReadState | Op::WriteState | Op::SliceUpdate => {
            Err(format!("internal: `{}` must be handled by the evaluator", op.name()))
        }
    }
}
