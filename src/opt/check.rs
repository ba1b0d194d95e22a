//! The ANE check: does a module only use what the Neural Engine runs?
//!
//! Rules (each violation names the function, the op and the value):
//! - `ane.op`: every op is on the allow-list [`ANE_OPS`] (no `linear`, no `rms_norm`);
//! - `ane.dtype`: every tensor value is `fp16` or `int32` (states `fp16`); weights feeding
//!   `lut_to_dense` may also have sub-byte index types;
//! - `ane.dims`: static shapes with no empty axis; the last two axes (spatial, H and W)
//!   are at most [`MAX_SPATIAL`], every other axis (channels, batch) at most [`MAX_CHANNELS`].
//!   Weights are constants, not activations, and are exempt;
//! - `ane.matmul-weight`: a `matmul` by a weight must be a 1×1 `conv` (the `layout` pass).

use std::fmt;

use crate::ir::{DType, Function, Module, Op, TensorType, Type, ValueDef};

/// Largest extent of a spatial axis (the last two axes).
pub const MAX_SPATIAL: usize = 16384;
/// Largest extent of any other axis (channels, batch).
pub const MAX_CHANNELS: usize = 65536;

/// The ops the ANE runs (in Core ML terms), by IR name.
pub const ANE_OPS: &[&str] = &[
    "const",
    "weight",
    "add",
    "sub",
    "mul",
    "div",
    "pow",
    "maximum",
    "minimum",
    "neg",
    "sqrt",
    "rsqrt",
    "exp",
    "sigmoid",
    "silu",
    "gelu",
    "reduce_sum",
    "reduce_mean",
    "reduce_max",
    "softmax",
    "layer_norm",
    "matmul",
    "conv",
    "reshape",
    "transpose",
    "concat",
    "split",
    "slice",
    "slice_update",
    "expand",
    "squeeze",
    "expand_dims",
    "gather",
    "cast",
    "argmax",
    "read_state",
    "write_state",
    "lut_to_dense",
];

/// True if the ANE runs ops of this name.
pub fn is_ane_op(name: &str) -> bool {
    ANE_OPS.contains(&name)
}

/// One violation of the ANE rules.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckError {
    pub function: String,
    /// `op #i \`name\` (%value)` or `input %x`.
    pub location: String,
    pub rule: &'static str,
    pub message: String,
}

impl fmt::Display for CheckError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "@{}: {}: [{}] {}", self.function, self.location, self.rule, self.message)
    }
}

fn dtype_ok(ty: &Type) -> bool {
    match ty {
        Type::Tensor(t) => matches!(t.dtype, DType::F16 | DType::I32),
        Type::State(t) => t.dtype == DType::F16,
    }
}

fn dims_problem(t: &TensorType) -> Option<String> {
    let r = t.rank();
    for (i, &d) in t.shape.iter().enumerate() {
        let spatial = i + 2 >= r;
        let limit = if spatial { MAX_SPATIAL } else { MAX_CHANNELS };
        if d == 0 {
            return Some(format!("{t} has an empty axis {i}"));
        }
        if d > limit {
            let what = if spatial { "spatial" } else { "channel" };
            return Some(format!("{t}: axis {i} ({what}) has {d} > {limit} elements"));
        }
    }
    None
}

/// Checks one function; appends every violation to `out`.
pub fn check_function(f: &Function, out: &mut Vec<CheckError>) {
    let mut err = |location: String, rule: &'static str, message: String| {
        out.push(CheckError { function: f.name.clone(), location, rule, message })
    };
    for &i in &f.inputs {
        let v = &f.values[i];
        if !dtype_ok(&v.ty) {
            err(format!("input %{}", v.name), "ane.dtype", format!("{} is not fp16/int32 (states: fp16)", v.ty));
        }
        if let Some(p) = dims_problem(v.ty.tensor()) {
            err(format!("input %{}", v.name), "ane.dims", p);
        }
    }
    let feeds_lut =
        |value| f.nodes.iter().any(|(_, n)| matches!(n.op, Op::LutToDense) && n.operands.first() == Some(&value));
    for (id, node) in f.nodes.iter() {
        let name = node.op.name();
        let first = node.results.first().map(|&r| format!(" (%{})", f.values[r].name)).unwrap_or_default();
        let location = format!("op #{} `{name}`{first}", id.index());
        if !is_ane_op(name) {
            err(location.clone(), "ane.op", format!("`{name}` is not an ANE op"));
        }
        let is_weight = matches!(node.op, Op::Weight { .. });
        for &r in &node.results {
            let v = &f.values[r];
            let lut_index = is_weight && v.ty.tensor().dtype.is_lut_index() && feeds_lut(r);
            if !dtype_ok(&v.ty) && !lut_index {
                err(location.clone(), "ane.dtype", format!("%{} is {}, not fp16/int32", v.name, v.ty));
            }
            if !is_weight && let Some(p) = dims_problem(v.ty.tensor()) {
                err(location.clone(), "ane.dims", p);
            }
        }
        if matches!(node.op, Op::Matmul { .. }) {
            let by_weight = node.operands.iter().any(|&o| match f.values[o].def {
                ValueDef::Result { node: n, .. } => matches!(f.nodes[n].op, Op::Weight { .. }),
                ValueDef::Input(_) => false,
            });
            if by_weight {
                err(location, "ane.matmul-weight", "matmul by a weight must be a 1×1 conv".into());
            }
        }
    }
}

/// Checks a whole module; returns every violation (empty = ANE-ready).
pub fn check_module(m: &Module) -> Vec<CheckError> {
    let mut out = Vec::new();
    for f in &m.functions {
        check_function(f, &mut out);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The allow-list names real ops (a misspelt entry would silently reject that op), and
    /// what it leaves out is deliberate: the ops the passes must rewrite away.
    #[test]
    fn allow_list_names_ir_ops_and_excludes_the_unlowered_ones() {
        for name in ANE_OPS {
            assert!(Op::NAMES.contains(name), "`{name}` in ANE_OPS is not an IR op");
        }
        let excluded: Vec<&str> = Op::NAMES.iter().copied().filter(|n| !is_ane_op(n)).collect();
        for must_go in ["linear", "rms_norm"] {
            assert!(excluded.contains(&must_go), "{must_go} must not be on the ANE allow-list");
        }
        eprintln!("ops the ANE check rejects: {excluded:?}");
    }
}
