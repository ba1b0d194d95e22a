//! MIL op → IR op(s): the dispatch, the simple one-to-one ops and the folded sequences; the
//! ops with more parameters live in `ops_math` and `ops_shape`. The table is in
//! `docs/emitter.md`.

use std::sync::Arc;

use super::consts::decode_value;
use super::function::reader_dtype;
use super::function::{Bound, FnReader, R};
use super::fuse::Fused;
use crate::ir::typing::norm_axis;
use crate::ir::{GeluMode, Op};
use crate::mil::dtype::cast_dtype_from_str;
use crate::mil::proto::Operation;

pub(super) fn usizes(v: &[i64], what: &str) -> R<Vec<usize>> {
    v.iter().map(|&x| usize::try_from(x).map_err(|_| format!("{what} must not be negative: {v:?}"))).collect()
}

impl FnReader<'_> {
    /// Translates one MIL op.
    pub(crate) fn lower_op(&mut self, op: &Operation) -> R {
        let outs = op.outputs.clone();
        let t = op.r#type.as_str();
        match t {
            "const" => {
                let o = outs.first().ok_or("const without output")?;
                let val = op.attributes.get("val").ok_or("const without val")?;
                let c = decode_value(&o.name, val)?;
                self.bind(&o.name, Bound::Const(Arc::new(c)));
                Ok(())
            }
            "identity" => {
                let x = self.param(op, "x")?.ok_or("missing x")?;
                let o = outs.first().ok_or("identity without output")?;
                match x {
                    Bound::Value(v) => self.alias_output(op, v),
                    c => {
                        self.bind(&o.name, c);
                        Ok(())
                    }
                }
            }
            "add" | "sub" | "mul" | "real_div" | "pow" | "maximum" | "minimum" => self.binary(op),
            "sqrt" | "exp" | "sigmoid" | "silu" => {
                let x = self.tensor(op, "x")?;
                let ir = match t {
                    "sqrt" => Op::Sqrt,
                    "exp" => Op::Exp,
                    "sigmoid" => Op::Sigmoid,
                    _ => Op::Silu,
                };
                self.push_outputs(ir, vec![x], &outs)
            }
            "rsqrt" => self.rsqrt(op),
            "gelu" => {
                let mode = match self.string(op, "mode")?.as_deref() {
                    None | Some("EXACT") => GeluMode::Exact,
                    Some("TANH_APPROXIMATION") => GeluMode::Tanh,
                    Some(other) => return Err(format!("gelu mode {other} has no IR counterpart")),
                };
                let x = self.tensor(op, "x")?;
                self.push_outputs(Op::Gelu { mode }, vec![x], &outs)
            }
            "cast" => {
                let s = self.string(op, "dtype")?.ok_or("cast without dtype")?;
                let dtype = cast_dtype_from_str(&s)
                    .and_then(reader_dtype)
                    .ok_or_else(|| format!("cast to {s} has no IR counterpart"))?;
                let x = self.tensor(op, "x")?;
                self.push_outputs(Op::Cast { dtype }, vec![x], &outs)
            }
            "reduce_sum" | "reduce_mean" | "reduce_max" => self.reduce(op),
            "reduce_argmax" => {
                if let Some(d) = self.string(op, "output_dtype")?
                    && d != "int32"
                {
                    return Err(format!("output_dtype {d} is not supported (IR argmax gives int32)"));
                }
                let axis = self.int(op, "axis")?.unwrap_or(-1);
                let keep_dims = self.boolean(op, "keep_dims")?.unwrap_or(false);
                let x = self.tensor(op, "x")?;
                self.push_outputs(Op::Argmax { axis, keep_dims }, vec![x], &outs)
            }
            "softmax" => {
                let axis = self.int(op, "axis")?.unwrap_or(-1);
                let x = self.tensor(op, "x")?;
                self.push_outputs(Op::Softmax { axis }, vec![x], &outs)
            }
            "layer_norm" => self.layer_norm(op),
            "matmul" => self.matmul(op),
            "linear" => {
                let x = self.tensor(op, "x")?;
                let w = self.tensor(op, "weight")?;
                let mut operands = vec![x, w];
                if op.inputs.contains_key("bias") {
                    operands.push(self.tensor(op, "bias")?);
                }
                self.push_outputs(Op::Linear, operands, &outs)
            }
            "conv" => self.conv(op),
            "reshape" => self.reshape(op),
            "transpose" => {
                let x = self.tensor(op, "x")?;
                let rank = self.ty(x).rank();
                let perm = self.ints(op, "perm")?.ok_or("transpose without perm")?;
                let perm =
                    perm.iter().map(|&p| norm_axis(p, rank).ok_or("perm out of range")).collect::<Result<_, _>>()?;
                self.push_outputs(Op::Transpose { perm }, vec![x], &outs)
            }
            "concat" => {
                if self.boolean(op, "interleave")?.unwrap_or(false) {
                    return Err("interleaved concat has no IR counterpart".into());
                }
                let axis = self.int(op, "axis")?.ok_or("concat without axis")?;
                let values = self.tensors(op, "values")?;
                self.push_outputs(Op::Concat { axis }, values, &outs)
            }
            "split" => self.split(op),
            "slice_by_index" => self.slice_by_index(op),
            "slice_by_size" => self.slice_by_size(op),
            "slice_update" => self.slice_update(op),
            "expand_dims" => {
                let axes = self.ints(op, "axes")?.ok_or("expand_dims without axes")?;
                let x = self.tensor(op, "x")?;
                self.push_outputs(Op::ExpandDims { axes }, vec![x], &outs)
            }
            "squeeze" => {
                let x = self.tensor(op, "x")?;
                let axes = match self.ints(op, "axes")? {
                    Some(a) => a,
                    None => {
                        self.ty(x).shape.iter().enumerate().filter(|(_, d)| **d == 1).map(|(i, _)| i as i64).collect()
                    }
                };
                self.push_outputs(Op::Squeeze { axes }, vec![x], &outs)
            }
            "tile" => self.tile(op),
            "gather" => {
                if self.int(op, "batch_dims")?.unwrap_or(0) != 0 {
                    return Err("gather with batch_dims ≠ 0 has no IR counterpart".into());
                }
                let axis = self.int(op, "axis")?.unwrap_or(0);
                let x = self.tensor(op, "x")?;
                let i = self.tensor(op, "indices")?;
                self.push_outputs(Op::Gather { axis }, vec![x, i], &outs)
            }
            "read_state" => {
                let s = self.tensor(op, "input")?;
                self.push_outputs(Op::ReadState, vec![s], &outs)
            }
            "write_state" => {
                let s = self.tensor(op, "input")?;
                let v = self.tensor(op, "data")?;
                self.push_effect(Op::WriteState, vec![s, v])
            }
            "constexpr_lut_to_dense" => self.lut_to_dense(op),
            other => Err(format!("MIL op `{other}` has no IR translation")),
        }
    }

    /// Emits the IR op of a folded sequence whose last op is `op`.
    pub(crate) fn lower_fused(&mut self, fused: &Fused, op: &Operation) -> R {
        let outs = op.outputs.clone();
        match fused {
            Fused::Skip => Ok(()),
            Fused::RmsNorm { x, gain, axis, eps } => {
                let x = self.value_of(x)?;
                let g = self.value_of(gain)?;
                self.push_outputs(Op::RmsNorm { axis: *axis, eps: *eps }, vec![x, g], &outs)
            }
            Fused::Alias { x } => {
                let v = self.value_of(x)?;
                self.alias_output(op, v)
            }
            Fused::Linear { x, w, b } => {
                let mut operands = vec![self.value_of(x)?, self.value_of(w)?];
                if let Some(b) = b {
                    operands.push(self.value_of(b)?);
                }
                self.push_outputs(Op::Linear, operands, &outs)
            }
        }
    }
}
