//! Reductions, `softmax`, `argmax` and the normalisations.

use super::{FnEmitter, R};
use crate::ir::Node;
use crate::ir::typing::norm_axis;

/// Suffix marking the ops of an `rms_norm` lowering (`<result>_rmsnorm_<part>`).
pub const RMS_NORM_MARK: &str = "_rmsnorm_";

impl FnEmitter<'_> {
    /// `reduce_*(x, axes, keep_dims)`.
    pub(super) fn reduce(&mut self, node: &Node, mil: &str, axes: &[i64], keep_dims: bool) -> R {
        let x = self.operand(node.operands[0])?;
        let name = self.result_name(node, 0);
        let a = self.param_i32s(&name, "axes", axes)?;
        let k = self.param_bool(&name, "keep_dims", keep_dims)?;
        self.emit_result(node, mil, vec![("x", vec![x]), ("axes", vec![a]), ("keep_dims", vec![k])])
    }

    pub(super) fn softmax(&mut self, node: &Node, axis: i64) -> R {
        let x = self.operand(node.operands[0])?;
        let name = self.result_name(node, 0);
        let a = self.param_i32(&name, "axis", axis)?;
        self.emit_result(node, "softmax", vec![("x", vec![x]), ("axis", vec![a])])
    }

    /// `argmax` → `reduce_argmax(x, axis, keep_dims)` (int32 result in both).
    pub(super) fn argmax(&mut self, node: &Node, axis: i64, keep_dims: bool) -> R {
        let x = self.operand(node.operands[0])?;
        let name = self.result_name(node, 0);
        let a = self.param_i32(&name, "axis", axis)?;
        let k = self.param_bool(&name, "keep_dims", keep_dims)?;
        self.emit_result(node, "reduce_argmax", vec![("x", vec![x]), ("axis", vec![a]), ("keep_dims", vec![k])])
    }

    /// `layer_norm(x, axes, epsilon)` without gamma/beta; epsilon as an fp32 scalar (legal
    /// for fp16 `x` since iOS17).
    pub(super) fn layer_norm(&mut self, node: &Node, axes: &[i64], eps: f64) -> R {
        let x = self.operand(node.operands[0])?;
        let name = self.result_name(node, 0);
        let a = self.param_i32s(&name, "axes", axes)?;
        let e = self.param_f32(&name, "epsilon", eps)?;
        self.emit_result(node, "layer_norm", vec![("x", vec![x]), ("axes", vec![a]), ("epsilon", vec![e])])
    }

    /// `rms_norm(x, gain)` along axis `a` (MIL has no RMSNorm), as the exact layer-norm
    /// identity ANEMLL uses — the mean of `[x, −x]` is 0, so its variance is `mean(x²)`:
    ///
    /// ```text
    /// N_rmsnorm_neg  = mul(x, −1)
    /// N_rmsnorm_cat  = concat((x, N_rmsnorm_neg), axis = a)
    /// N_rmsnorm_ln   = layer_norm(N_rmsnorm_cat, axes = [a], epsilon = eps)
    /// N_rmsnorm_half = slice_by_index(N_rmsnorm_ln, begin = 0, end = D on axis a, end_mask elsewhere)
    /// [N_rmsnorm_gain = reshape(gain, [D, 1, …])   when a is not the last axis]
    /// N              = mul(N_rmsnorm_half, gain)
    /// ```
    ///
    /// This never squares in fp16 (no overflow for |x| > 256). The reader folds the sequence
    /// back into one `rms_norm`.
    pub(super) fn rms_norm(&mut self, node: &Node, axis: i64, eps: f64) -> R {
        let (xv, gv) = (node.operands[0], node.operands[1]);
        let xt = self.tensor_ty(xv).clone();
        let r = xt.rank();
        let a = norm_axis(axis, r).ok_or("axis out of range")?;
        self.require_static(xv, [a], "rms_norm")?;
        let d = xt.shape[a];
        let x = self.operand(xv)?;
        let g = self.operand(gv)?;
        let name = self.result_name(node, 0);
        let part = |p: &str| format!("{name}{RMS_NORM_MARK}{p}");
        let x_ty = self.mil_ty(xv);
        let mut cat_shape = xt.shape.clone();
        cat_shape[a] = 2 * d;
        let cat_ty = {
            let dims: Vec<Option<usize>> = cat_shape
                .iter()
                .enumerate()
                .map(|(i, &s)| (!self.flex.is_flexible(xv.index(), i)).then_some(s))
                .collect();
            crate::mil::types::tensor_type(crate::mil::dtype::mil_dtype(xt.dtype), &dims)
        };

        let neg = self.fresh(&part("neg"));
        let m1 = self.scalar_of(&neg, "y", xt.dtype, -1.0)?;
        self.push_simple("mul", &neg, vec![("x", vec![x.clone()]), ("y", vec![m1])], x_ty.clone());

        let cat = self.fresh(&part("cat"));
        let ax = self.param_i32(&cat, "axis", a as i64)?;
        let il = self.param_bool(&cat, "interleave", false)?;
        self.push_simple(
            "concat",
            &cat,
            vec![("values", vec![x, neg]), ("axis", vec![ax]), ("interleave", vec![il])],
            cat_ty.clone(),
        );

        let ln = self.fresh(&part("ln"));
        let axes = self.param_i32s(&ln, "axes", &[a as i64])?;
        let e = self.param_f32(&ln, "epsilon", eps)?;
        self.push_simple("layer_norm", &ln, vec![("x", vec![cat]), ("axes", vec![axes]), ("epsilon", vec![e])], cat_ty);

        let half = self.fresh(&part("half"));
        let begin = self.param_i32s(&half, "begin", &vec![0; r])?;
        let end: Vec<i64> = (0..r).map(|i| if i == a { d as i64 } else { 0 }).collect();
        let end = self.param_i32s(&half, "end", &end)?;
        let mask: Vec<bool> = (0..r).map(|i| i != a).collect();
        let end_mask = self.param_bools(&half, "end_mask", &mask)?;
        self.push_simple(
            "slice_by_index",
            &half,
            vec![("x", vec![ln]), ("begin", vec![begin]), ("end", vec![end]), ("end_mask", vec![end_mask])],
            x_ty,
        );

        let gain = if a + 1 == r {
            g
        } else {
            let mut shape = vec![d];
            shape.extend(std::iter::repeat_n(1, r - 1 - a));
            let gname = self.fresh(&part("gain"));
            let s: Vec<i64> = shape.iter().map(|&v| v as i64).collect();
            let sc = self.param_i32s(&gname, "shape", &s)?;
            let ty = Self::static_ty(xt.dtype, &shape);
            self.push_simple("reshape", &gname, vec![("x", vec![g]), ("shape", vec![sc])], ty);
            gname
        };
        self.emit_result(node, "mul", vec![("x", vec![half]), ("y", vec![gain])])
    }
}
