//! Elementwise ops, `neg`, unary activations and `cast`.

use super::{FnEmitter, R};
use crate::ir::{DType, GeluMode, Node};

impl FnEmitter<'_> {
    /// `op(x, y)` for the binary elementwise ops (numpy broadcasting in both IRs).
    pub(super) fn binary(&mut self, node: &Node, mil: &str) -> R {
        let x = self.operand(node.operands[0])?;
        let y = self.operand(node.operands[1])?;
        self.emit_result(node, mil, vec![("x", vec![x]), ("y", vec![y])])
    }

    /// `div` → `real_div` (floats only: MIL has no truncating integer division).
    pub(super) fn div(&mut self, node: &Node) -> R {
        let dtype = self.tensor_ty(node.operands[0]).dtype;
        if !dtype.is_float() {
            return Err(format!("integer division ({dtype}) has no MIL counterpart (floor_div rounds differently)"));
        }
        self.binary(node, "real_div")
    }

    /// `neg(x)` → `mul(x, −1)`: exact for floats (a sign flip) and for wrapping integers.
    pub(super) fn neg(&mut self, node: &Node) -> R {
        let x = self.operand(node.operands[0])?;
        let name = self.result_name(node, 0);
        let dtype = self.tensor_ty(node.operands[0]).dtype;
        let minus_one = self.scalar_of(&name, "y", dtype, -1.0)?;
        self.emit_result(node, "mul", vec![("x", vec![x]), ("y", vec![minus_one])])
    }

    pub(super) fn unary(&mut self, node: &Node, mil: &str) -> R {
        let x = self.operand(node.operands[0])?;
        self.emit_result(node, mil, vec![("x", vec![x])])
    }

    /// `rsqrt(x)` → `rsqrt(x, epsilon = 0)` (MIL's default epsilon is 1e-12).
    pub(super) fn rsqrt(&mut self, node: &Node) -> R {
        let x = self.operand(node.operands[0])?;
        let name = self.result_name(node, 0);
        let eps = self.param_f32(&name, "epsilon", 0.0)?;
        self.emit_result(node, "rsqrt", vec![("x", vec![x]), ("epsilon", vec![eps])])
    }

    pub(super) fn gelu(&mut self, node: &Node, mode: GeluMode) -> R {
        let x = self.operand(node.operands[0])?;
        let name = self.result_name(node, 0);
        let mode = match mode {
            GeluMode::Exact => "EXACT",
            GeluMode::Tanh => "TANH_APPROXIMATION",
        };
        let mode = self.param_str(&name, "mode", mode)?;
        self.emit_result(node, "gelu", vec![("x", vec![x]), ("mode", vec![mode])])
    }

    /// `cast(x, dtype)`; MIL casts among fp16, fp32, int32 and bool.
    pub(super) fn cast(&mut self, node: &Node, dtype: DType) -> R {
        let target = match dtype {
            DType::F16 => "fp16",
            DType::F32 => "fp32",
            DType::I32 => "int32",
            DType::Bool => "bool",
            other => return Err(format!("cast to {other} has no MIL counterpart")),
        };
        let x = self.operand(node.operands[0])?;
        let name = self.result_name(node, 0);
        let d = self.param_str(&name, "dtype", target)?;
        self.emit_result(node, "cast", vec![("x", vec![x]), ("dtype", vec![d])])
    }
}
