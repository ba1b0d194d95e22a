//! MIL → IR for arithmetic, normalisation and linear-algebra ops with parameters.

use super::function::{FnReader, R};
use super::ops::usizes;
use crate::ir::Op;
use crate::ir::typing::norm_axis;
use crate::mil::dtype::ir_dtype;
use crate::mil::proto::Operation;

impl FnReader<'_> {
    /// Binary elementwise ops; `mul(x, −1)` by a scalar constant is `neg`.
    pub(super) fn binary(&mut self, op: &Operation) -> R {
        let outs = op.outputs.clone();
        if op.r#type == "mul"
            && let Some(c) = self.const_of(op, "y")?
            && c.numel() == 1
            && c.shape.len() <= 1
        {
            let v = c.tensor(self.ctx.tensors())?;
            if v.get_f64(0) == Some(-1.0) {
                let x = self.tensor(op, "x")?;
                if ir_dtype(c.dtype) == Some(self.ty(x).dtype) && (c.shape.is_empty() || self.ty(x).rank() >= 1) {
                    return self.push_outputs(Op::Neg, vec![x], &outs);
                }
            }
        }
        let ir = match op.r#type.as_str() {
            "add" => Op::Add,
            "sub" => Op::Sub,
            "mul" => Op::Mul,
            "real_div" => Op::Div,
            "pow" => Op::Pow,
            "maximum" => Op::Maximum,
            _ => Op::Minimum,
        };
        let x = self.tensor(op, "x")?;
        let y = self.tensor(op, "y")?;
        if op.r#type == "real_div" && !self.ty(x).dtype.is_float() {
            return Err("integer real_div has no IR counterpart".into());
        }
        self.push_outputs(ir, vec![x, y], &outs)
    }

    /// `rsqrt(x, epsilon)` = `rsqrt(x + epsilon)` (MIL's default epsilon is 1e-12).
    pub(super) fn rsqrt(&mut self, op: &Operation) -> R {
        let outs = op.outputs.clone();
        let eps = self.float(op, "epsilon")?.unwrap_or(1e-12);
        let mut x = self.tensor(op, "x")?;
        if eps != 0.0 {
            let dtype = self.ty(x).dtype;
            let base = format!("{}_eps", outs.first().map_or("rsqrt", |o| o.name.as_str()));
            let e = self.scalar(dtype, eps, &base)?;
            x = self.push_internal(Op::Add, vec![x, e], &format!("{base}_add"))?;
        }
        self.push_outputs(Op::Rsqrt, vec![x], &outs)
    }

    /// `reduce_*(x, axes = all, keep_dims = false)`.
    pub(super) fn reduce(&mut self, op: &Operation) -> R {
        let outs = op.outputs.clone();
        let x = self.tensor(op, "x")?;
        let axes = match self.ints(op, "axes")? {
            Some(a) => a,
            None => (0..self.ty(x).rank() as i64).collect(),
        };
        let keep_dims = self.boolean(op, "keep_dims")?.unwrap_or(false);
        let ir = match op.r#type.as_str() {
            "reduce_sum" => Op::ReduceSum { axes, keep_dims },
            "reduce_mean" => Op::ReduceMean { axes, keep_dims },
            _ => Op::ReduceMax { axes, keep_dims },
        };
        self.push_outputs(ir, vec![x], &outs)
    }

    /// `layer_norm(x, axes, gamma?, beta?, epsilon = 1e-5)`; gamma/beta (over trailing axes)
    /// become `mul`/`add`.
    pub(super) fn layer_norm(&mut self, op: &Operation) -> R {
        let outs = op.outputs.clone();
        let x = self.tensor(op, "x")?;
        let rank = self.ty(x).rank();
        let axes = match self.ints(op, "axes")? {
            Some(a) => a,
            None => (0..rank as i64).collect(),
        };
        let eps = self.float(op, "epsilon")?.unwrap_or(1e-5);
        let (has_gamma, has_beta) = (op.inputs.contains_key("gamma"), op.inputs.contains_key("beta"));
        if !has_gamma && !has_beta {
            return self.push_outputs(Op::LayerNorm { axes, eps }, vec![x], &outs);
        }
        let mut norm: Vec<usize> =
            axes.iter().map(|&a| norm_axis(a, rank).ok_or("axis out of range")).collect::<Result<_, _>>()?;
        norm.sort_unstable();
        if norm.windows(2).any(|w| w[0] == w[1]) {
            return Err(format!("layer_norm axes {axes:?} repeat an axis"));
        }
        if norm.iter().enumerate().any(|(i, &a)| a + norm.len() != rank + i) {
            return Err("layer_norm gamma/beta over non-trailing axes is not supported".into());
        }
        let base = outs.first().map_or("ln".to_string(), |o| o.name.clone());
        let mut y = self.push_internal(Op::LayerNorm { axes, eps }, vec![x], &format!("{base}_norm"))?;
        let affine: Vec<(&str, Op)> =
            [("gamma", Op::Mul), ("beta", Op::Add)].into_iter().filter(|(p, _)| op.inputs.contains_key(*p)).collect();
        for (k, (param, ir)) in affine.iter().enumerate() {
            let p = self.tensor(op, param)?;
            if k + 1 == affine.len() {
                return self.push_outputs(ir.clone(), vec![y, p], &outs);
            }
            y = self.push_internal(ir.clone(), vec![y, p], &format!("{base}_{param}"))?;
        }
        unreachable!("affine is non-empty")
    }

    /// `matmul`: IR `matmul` for rank ≥ 2 operands; `x · Wᵀ` with a rank-1 `x` is `linear`.
    pub(super) fn matmul(&mut self, op: &Operation) -> R {
        let outs = op.outputs.clone();
        let ta = self.boolean(op, "transpose_x")?.unwrap_or(false);
        let tb = self.boolean(op, "transpose_y")?.unwrap_or(false);
        let x = self.tensor(op, "x")?;
        let y = self.tensor(op, "y")?;
        if self.ty(x).rank() == 1 && !ta && tb && self.ty(y).rank() == 2 {
            return self.push_outputs(Op::Linear, vec![x, y], &outs);
        }
        self.push_outputs(Op::Matmul { transpose_a: ta, transpose_b: tb }, vec![x, y], &outs)
    }

    /// `conv` with 1 or 2 spatial dims (1-D as 2-D over a unit height); `pad_type` valid /
    /// custom / same / same_lower.
    pub(super) fn conv(&mut self, op: &Operation) -> R {
        let outs = op.outputs.clone();
        let x = self.tensor(op, "x")?;
        let w = self.tensor(op, "weight")?;
        let (mut x, mut w) = (x, w);
        let one_d = self.ty(x).rank() == 3 && self.ty(w).rank() == 3;
        let base = outs.first().map_or("conv".to_string(), |o| o.name.clone());
        if one_d {
            // A 1-D convolution is a 2-D one over [N, C, 1, W].
            x = self.push_internal(Op::ExpandDims { axes: vec![2] }, vec![x], &format!("{base}_x4"))?;
            w = self.push_internal(Op::ExpandDims { axes: vec![2] }, vec![w], &format!("{base}_w4"))?;
        }
        let (xt, wt) = (self.ty(x).clone(), self.ty(w).clone());
        if xt.rank() != 4 || wt.rank() != 4 {
            return Err("only 1-D and 2-D convolutions have an IR counterpart".into());
        }
        let spatial = |v: Option<Vec<i64>>, dflt: i64| -> R<Vec<usize>> {
            let v = v.unwrap_or(vec![dflt; if one_d { 1 } else { 2 }]);
            let v = if one_d { [vec![dflt], v].concat() } else { v };
            usizes(&v, "conv parameter")
        };
        let strides = spatial(self.ints(op, "strides")?, 1)?;
        let dilations = spatial(self.ints(op, "dilations")?, 1)?;
        for (what, v) in [("strides", &strides), ("dilations", &dilations)] {
            if v.len() != 2 {
                return Err(format!("{what} {v:?} need one entry per spatial dim"));
            }
        }
        let groups = usize::try_from(self.int(op, "groups")?.unwrap_or(1)).map_err(|_| "negative groups")?;
        let pads = match self.string(op, "pad_type")?.as_deref().unwrap_or("valid") {
            "valid" => vec![0; 4],
            "custom" => {
                let p = self.ints(op, "pad")?.unwrap_or(vec![0; if one_d { 2 } else { 4 }]);
                usizes(&if one_d { [vec![0, 0], p].concat() } else { p }, "pad")?
            }
            kind @ ("same" | "same_lower") => {
                let mut p = Vec::new();
                for i in 0..2 {
                    // total = max(0, (ceil(n / s) - 1)·s + (k - 1)·dilation + 1 - n)
                    let (n, s) = (xt.shape[2 + i], strides[i].max(1));
                    let total = n
                        .div_ceil(s)
                        .checked_sub(1)
                        .and_then(|c| c.checked_mul(s))
                        .and_then(|c| c.checked_add(dilations[i].checked_mul(wt.shape[2 + i].max(1) - 1)?))
                        .and_then(|c| c.checked_add(1))
                        .ok_or_else(|| format!("{kind} padding of spatial dim {i} (size {n}) is out of range"))?
                        .saturating_sub(n);
                    let small = total / 2;
                    p.extend(if kind == "same" { [small, total - small] } else { [total - small, small] });
                }
                p
            }
            other => return Err(format!("pad_type {other} is not supported")),
        };
        let mut operands = vec![x, w];
        if op.inputs.contains_key("bias") {
            operands.push(self.tensor(op, "bias")?);
        }
        let conv = Op::Conv { strides, pads, dilations, groups };
        if !one_d {
            return self.push_outputs(conv, operands, &outs);
        }
        let y = self.push_internal(conv, operands, &format!("{base}_y4"))?;
        self.push_outputs(Op::Squeeze { axes: vec![2] }, vec![y], &outs)
    }
}
