//! `matmul`, `linear`, `conv`.

use super::{FnEmitter, R};
use crate::ir::Node;

/// Suffix of the matmul in a `linear` lowered as matmul + add (`<result>_linear_mm`).
pub const LINEAR_MARK: &str = "_linear_mm";

impl FnEmitter<'_> {
    pub(super) fn matmul(&mut self, node: &Node, ta: bool, tb: bool) -> R {
        let x = self.operand(node.operands[0])?;
        let y = self.operand(node.operands[1])?;
        let name = self.result_name(node, 0);
        let tx = self.param_bool(&name, "transpose_x", ta)?;
        let ty = self.param_bool(&name, "transpose_y", tb)?;
        self.emit_result(
            node,
            "matmul",
            vec![("x", vec![x]), ("y", vec![y]), ("transpose_x", vec![tx]), ("transpose_y", vec![ty])],
        )
    }

    /// `linear(x, w[, b])` → MIL `linear` when MIL allows it (weight and bias compile-time
    /// constants, `1 ≤ rank(x) ≤ 3`); otherwise `<result>_linear_mm = matmul(x, w,
    /// transpose_y = true)` followed by `add` of the bias or an `identity` (the reader folds
    /// the pair back into one `linear`).
    pub(super) fn linear(&mut self, node: &Node) -> R {
        let ops = &node.operands;
        let rank = self.tensor_ty(ops[0]).rank();
        let consts = ops[1..].iter().all(|&v| self.is_const(v));
        let x = self.operand(ops[0])?;
        let w = self.operand(ops[1])?;
        let b = ops.get(2).map(|&v| self.operand(v)).transpose()?;
        if consts && (1..=3).contains(&rank) {
            let mut inputs = vec![("x", vec![x]), ("weight", vec![w])];
            if let Some(b) = b {
                inputs.push(("bias", vec![b]));
            }
            return self.emit_result(node, "linear", inputs);
        }
        let name = self.result_name(node, 0);
        let mm = self.fresh(&format!("{name}{LINEAR_MARK}"));
        let tx = self.param_bool(&mm, "transpose_x", false)?;
        let ty = self.param_bool(&mm, "transpose_y", true)?;
        let out_ty = self.mil_ty(node.results[0]);
        self.push_simple(
            "matmul",
            &mm,
            vec![("x", vec![x]), ("y", vec![w]), ("transpose_x", vec![tx]), ("transpose_y", vec![ty])],
            out_ty,
        );
        match b {
            Some(b) => self.emit_result(node, "add", vec![("x", vec![mm]), ("y", vec![b])]),
            None => self.emit_result(node, "identity", vec![("x", vec![mm])]),
        }
    }

    /// `conv` → `conv(x, weight[, bias], strides, pad_type = "custom", pad, dilations,
    /// groups)`; the IR pads `[top, bottom, left, right]` are MIL's `pad` order.
    pub(super) fn conv(
        &mut self,
        node: &Node,
        strides: &[usize],
        pads: &[usize],
        dilations: &[usize],
        groups: usize,
    ) -> R {
        let as_i64 = |v: &[usize]| v.iter().map(|&x| x as i64).collect::<Vec<_>>();
        let x = self.operand(node.operands[0])?;
        let w = self.operand(node.operands[1])?;
        let b = node.operands.get(2).map(|&v| self.operand(v)).transpose()?;
        let name = self.result_name(node, 0);
        let s = self.param_i32s(&name, "strides", &as_i64(strides))?;
        let pt = self.param_str(&name, "pad_type", "custom")?;
        let p = self.param_i32s(&name, "pad", &as_i64(pads))?;
        let d = self.param_i32s(&name, "dilations", &as_i64(dilations))?;
        let g = self.param_i32(&name, "groups", groups as i64)?;
        let mut inputs = vec![("x", vec![x]), ("weight", vec![w])];
        if let Some(b) = b {
            inputs.push(("bias", vec![b]));
        }
        inputs.extend([
            ("strides", vec![s]),
            ("pad_type", vec![pt]),
            ("pad", vec![p]),
            ("dilations", vec![d]),
            ("groups", vec![g]),
        ]);
        self.emit_result(node, "conv", inputs)
    }
}
