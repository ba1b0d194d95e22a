//! Shape ops, `gather` and `slice_update`.

use super::{FnEmitter, R};
use crate::ir::Node;

/// Suffix of the `end = begin + update.shape` op of a `slice_update` (`<result>_end`).
pub const SLICE_END_MARK: &str = "_end";

fn to_i64(v: &[usize]) -> Vec<i64> {
    v.iter().map(|&x| x as i64).collect()
}

impl FnEmitter<'_> {
    pub(super) fn reshape(&mut self, node: &Node, shape: &[usize]) -> R {
        let x = self.operand(node.operands[0])?;
        let name = self.result_name(node, 0);
        let s = self.param_i32s(&name, "shape", &to_i64(shape))?;
        self.emit_result(node, "reshape", vec![("x", vec![x]), ("shape", vec![s])])
    }

    pub(super) fn transpose(&mut self, node: &Node, perm: &[usize]) -> R {
        let x = self.operand(node.operands[0])?;
        let name = self.result_name(node, 0);
        let p = self.param_i32s(&name, "perm", &to_i64(perm))?;
        self.emit_result(node, "transpose", vec![("x", vec![x]), ("perm", vec![p])])
    }

    /// `concat(values = (x0, x1, …), axis, interleave = false)`.
    pub(super) fn concat(&mut self, node: &Node, axis: i64) -> R {
        let values = node.operands.iter().map(|&v| self.operand(v)).collect::<R<Vec<_>>>()?;
        let name = self.result_name(node, 0);
        let a = self.param_i32(&name, "axis", axis)?;
        let il = self.param_bool(&name, "interleave", false)?;
        self.emit_result(node, "concat", vec![("values", values), ("axis", vec![a]), ("interleave", vec![il])])
    }

    /// `split(x, split_sizes, axis)` with one output per IR result.
    pub(super) fn split(&mut self, node: &Node, axis: i64, sizes: &[usize]) -> R {
        let x = self.operand(node.operands[0])?;
        let names: Vec<String> = (0..node.results.len()).map(|k| self.result_name(node, k)).collect();
        let base = names[0].clone();
        let s = self.param_i32s(&base, "split_sizes", &to_i64(sizes))?;
        let a = self.param_i32(&base, "axis", axis)?;
        let outputs = names.iter().zip(&node.results).map(|(n, &r)| (n.clone(), self.mil_ty(r))).collect();
        self.push_op("split", &base, vec![("x", vec![x]), ("split_sizes", vec![s]), ("axis", vec![a])], outputs);
        for (n, &r) in names.into_iter().zip(&node.results) {
            self.bind(r, n);
        }
        Ok(())
    }

    /// `slice` → `slice_by_index(x, begin, end)` (unit stride, no masks).
    pub(super) fn slice(&mut self, node: &Node, begin: &[usize], end: &[usize]) -> R {
        let x = self.operand(node.operands[0])?;
        let name = self.result_name(node, 0);
        let b = self.param_i32s(&name, "begin", &to_i64(begin))?;
        let e = self.param_i32s(&name, "end", &to_i64(end))?;
        self.emit_result(node, "slice_by_index", vec![("x", vec![x]), ("begin", vec![b]), ("end", vec![e])])
    }

    /// `slice_update(x, u, begin)` → `N_end = add(begin, shape(u))`;
    /// `slice_update(x, update = u, begin, end = N_end)` (the run-time box end).
    pub(super) fn slice_update(&mut self, node: &Node) -> R {
        let (xv, uv, bv) = (node.operands[0], node.operands[1], node.operands[2]);
        let rank = self.tensor_ty(uv).rank();
        self.require_static(uv, 0..rank, "slice_update")?;
        let size = to_i64(&self.tensor_ty(uv).shape);
        let x = self.operand(xv)?;
        let u = self.operand(uv)?;
        let b = self.operand(bv)?;
        let key = (b.clone(), size.clone());
        let end = match self.slice_ends.get(&key) {
            Some(end) => end.clone(),
            None => {
                let name = self.result_name(node, 0);
                let end = self.fresh(&format!("{name}{SLICE_END_MARK}"));
                let sz = self.param_i32s(&end, "y", &size)?;
                let ty = self.mil_ty(bv);
                self.push_simple("add", &end, vec![("x", vec![b.clone()]), ("y", vec![sz])], ty);
                self.slice_ends.insert(key, end.clone());
                end
            }
        };
        self.emit_result(
            node,
            "slice_update",
            vec![("x", vec![x]), ("update", vec![u]), ("begin", vec![b]), ("end", vec![end])],
        )
    }

    /// `expand(x, shape)` → `tile(x, reps)` with `reps = shape / x.shape` (identity if all 1).
    pub(super) fn expand(&mut self, node: &Node, shape: &[usize]) -> R {
        let xv = node.operands[0];
        let xt = self.tensor_ty(xv).clone();
        self.require_static(xv, 0..xt.rank(), "expand")?;
        let reps: Vec<i64> = xt.shape.iter().zip(shape).map(|(&d, &s)| if d == s { 1 } else { s as i64 }).collect();
        let x = self.operand(xv)?;
        if reps.iter().all(|&r| r == 1) {
            return self.emit_result(node, "identity", vec![("x", vec![x])]);
        }
        let name = self.result_name(node, 0);
        let r = self.param_i32s(&name, "reps", &reps)?;
        self.emit_result(node, "tile", vec![("x", vec![x]), ("reps", vec![r])])
    }

    /// `squeeze(x, axes)`; an empty list is the identity in the IR (MIL would squeeze all).
    pub(super) fn squeeze(&mut self, node: &Node, axes: &[i64]) -> R {
        let x = self.operand(node.operands[0])?;
        if axes.is_empty() {
            return self.emit_result(node, "identity", vec![("x", vec![x])]);
        }
        let name = self.result_name(node, 0);
        let a = self.param_i32s(&name, "axes", axes)?;
        self.emit_result(node, "squeeze", vec![("x", vec![x]), ("axes", vec![a])])
    }

    pub(super) fn expand_dims(&mut self, node: &Node, axes: &[i64]) -> R {
        let x = self.operand(node.operands[0])?;
        if axes.is_empty() {
            return self.emit_result(node, "identity", vec![("x", vec![x])]);
        }
        let name = self.result_name(node, 0);
        let a = self.param_i32s(&name, "axes", axes)?;
        self.emit_result(node, "expand_dims", vec![("x", vec![x]), ("axes", vec![a])])
    }

    /// `gather(x, indices, axis, batch_dims = 0, validate_indices = false)`.
    pub(super) fn gather(&mut self, node: &Node, axis: i64) -> R {
        let it = self.tensor_ty(node.operands[1]).dtype;
        if it != crate::ir::DType::I32 {
            return Err(format!("gather indices must be int32 for Core ML, got {it}"));
        }
        let x = self.operand(node.operands[0])?;
        let i = self.operand(node.operands[1])?;
        let name = self.result_name(node, 0);
        let a = self.param_i32(&name, "axis", axis)?;
        let bd = self.param_i32(&name, "batch_dims", 0)?;
        let vi = self.param_bool(&name, "validate_indices", false)?;
        self.emit_result(
            node,
            "gather",
            vec![
                ("x", vec![x]),
                ("indices", vec![i]),
                ("axis", vec![a]),
                ("batch_dims", vec![bd]),
                ("validate_indices", vec![vi]),
            ],
        )
    }
}
