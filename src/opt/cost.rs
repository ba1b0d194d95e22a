//! The ANE cost model used by extraction (documented in `docs/cost-model.md`).
//!
//! A node's cost is an estimate of its run time on the Neural Engine in *element-operation
//! units*: roughly `elements touched × per-op factor × dtype factor`. Absolute values do not
//! matter, only comparisons between alternatives of one function do.
//!
//! Invariants:
//! - leaves (inputs, weights, literals, attributes) and the pseudo ops cost 0;
//! - a weight-derived node (folded into a weight recipe after extraction) costs 0;
//! - an op outside the ANE allow-list ([`super::check::is_ane_op`]) costs at least
//!   [`PROHIBITIVE`], so any ANE-legal alternative wins;
//! - every cost is finite and non-negative, so sums are well defined;
//! - state traffic is charged by the elements actually touched: `read_state` is a reference
//!   (free; its consumers pay for what they read), a `slice` pays for the elements it
//!   produces (not for the tensor it is cut from), a `slice_update` for the elements it
//!   writes — nothing when its base is a `slice`, a copy being made anyway that writes the
//!   update's elements in place of the base's ([`fused_update`]) — and a `write_state` of an
//!   in-place update of the same state ([`in_place`]) for nothing more. So a view of one
//!   layer's K/V in a `[2L, …]` state costs what the same view of a `[2, …]` state costs;
//! - every dispatched op costs [`DISPATCH`] more than its element work (a tie-breaker
//!   towards fewer ops);
//! - index arithmetic ([`is_index_arithmetic`]: integer operands and result of at most
//!   [`INDEX_ELEMENTS`] elements, e.g. the `concat` of a slice offset with `current_pos`)
//!   is free: a handful of integers per call, not tensor work.

use egg::Id;

use crate::ir::{DType, Op};

use super::analysis::{Data, EG, node_op, splat_of, tensor_of};
use super::attrs::operand_count;
use super::check::is_ane_op;
use super::lang::{GET, ROOTS, Tnode};

/// The cost floor of an op the ANE cannot run.
pub const PROHIBITIVE: f64 = 1e9;

/// What every dispatched op costs on top of its element work: the Neural Engine pays a
/// fixed overhead per op, so among alternatives doing the same element work the one with
/// fewer ops wins (e.g. reading a layer's K/V slab back from the state just written rather
/// than updating a copy of its own).
pub const DISPATCH: f64 = 1.0;

/// Multiplier for float work not in fp16 (the ANE computes in fp16; fp32 work falls back).
pub const NON_FP16_FACTOR: f64 = 4.0;

/// Per-element factor of each op kind (see `docs/cost-model.md`).
pub fn kind_factor(kind: &str) -> f64 {
    match kind {
        "add" | "sub" | "mul" | "maximum" | "minimum" | "neg" | "cast" | "expand" => 1.0,
        "exp" | "sqrt" | "rsqrt" | "sigmoid" | "silu" | "div" => 2.0,
        "gelu" => 4.0,
        // x^y is exp(y·ln x): two transcendental steps, and x² overflows fp16 for |x| > 256.
        "pow" => 8.0,
        "reshape" | "squeeze" | "expand_dims" => 0.25,
        "slice" | "split" | "concat" => 0.5,
        "transpose" => 4.0,
        "gather" => 8.0,
        "reduce_sum" | "reduce_mean" | "reduce_max" | "argmax" => 2.0,
        "softmax" => 4.0,
        "layer_norm" => 3.0,
        "slice_update" | "write_state" => 1.0,
        _ => 1.0,
    }
}

fn non_fp16(d: DType) -> bool {
    d.is_float() && d != DType::F16
}

/// Whether the op node would be folded into a weight recipe (its operands are weights).
fn folds(egraph: &EG, kind: &str, operands: &[Id]) -> bool {
    let weight = |c: &Id| egraph[*c].data.is_weight();
    match kind {
        "mul" => {
            let scaled = |w: Id, c: Id| weight(&w) && splat_of(egraph, c).is_some();
            scaled(operands[0], operands[1]) || scaled(operands[1], operands[0])
        }
        _ => super::analysis::is_foldable_kind(kind) && operands.iter().all(weight),
    }
}

/// Whether the tensor class `value` is the state class `state` updated in place: its
/// e-class holds `read_state(state)` or a `slice_update` whose base is (recursively) such
/// an update. Writing such a value back writes only the updated elements, which the
/// `slice_update`s already pay for.
pub fn in_place(egraph: &EG, state: Id, value: Id) -> bool {
    let state = egraph.find(state);
    let mut seen = Vec::new();
    let mut todo = vec![egraph.find(value)];
    while let Some(c) = todo.pop() {
        if seen.contains(&c) || seen.len() > 64 {
            continue;
        }
        seen.push(c);
        for node in &egraph[c].nodes {
            match node {
                Tnode::Op("read_state", ch) if egraph.find(ch[0]) == state => return true,
                Tnode::Op("slice_update", ch) => todo.push(egraph.find(ch[0])),
                _ => {}
            }
        }
    }
    false
}

/// Whether a `slice_update` of base class `base` is fused into the copy that produces its
/// base: the class holds a `slice` (a region copied out of a larger tensor), and copying
/// with the update's elements in place of the base's writes each element once.
pub fn fused_update(egraph: &EG, base: Id) -> bool {
    egraph[base].nodes.iter().any(|n| matches!(n, Tnode::Op("slice", _)))
}

/// The most elements of an integer tensor that [`is_index_arithmetic`] counts as an index.
pub const INDEX_ELEMENTS: usize = 8;

/// Whether an op only computes indices: every operand and the result are integer tensors
/// of at most [`INDEX_ELEMENTS`] elements (offsets, positions).
pub fn is_index_arithmetic(egraph: &EG, class: Id, operands: &[Id]) -> bool {
    let small_int = |c: Id| tensor_of(egraph, c).is_some_and(|t| !t.dtype.is_float() && t.numel() <= INDEX_ELEMENTS);
    small_int(class) && operands.iter().all(|&c| small_int(c))
}

/// The cost of one e-node of e-class `class`, given the types in the e-graph.
pub fn node_cost(egraph: &EG, class: Id, node: &Tnode) -> f64 {
    let Tnode::Op(kind, children) = node else { return 0.0 };
    if *kind == GET || *kind == ROOTS {
        return 0.0;
    }
    let operands = &children[..operand_count(kind, children.len())];
    if folds(egraph, kind, operands) || is_index_arithmetic(egraph, class, operands) {
        return 0.0;
    }
    let out_ty = match &egraph[class].data {
        Data::Tensor { ty, .. } => Some(ty.clone()),
        _ => None,
    };
    let in_types: Vec<_> = operands.iter().filter_map(|&c| tensor_of(egraph, c)).collect();
    let out_numel = out_ty.as_ref().map_or(0, |t| t.numel()) as f64;
    let in_numel = in_types.iter().map(|t| t.numel()).max().unwrap_or(0) as f64;
    let elems = out_numel.max(in_numel).max(1.0);
    let work = match *kind {
        "conv" => {
            let Some(w) = in_types.get(1) else { return PROHIBITIVE };
            let taps = (w.shape[1] * w.shape[2] * w.shape[3]) as f64;
            out_numel * taps / 16.0 + out_numel
        }
        "matmul" | "linear" => {
            let Some(a) = in_types.first() else { return PROHIBITIVE };
            let transpose_a = *kind == "matmul"
                && matches!(node_op(egraph, kind, children), Ok(Op::Matmul { transpose_a: true, .. }));
            let r = a.rank();
            let k = if transpose_a && r >= 2 { a.shape[r - 2] } else { a.shape.last().copied().unwrap_or(1) };
            out_numel * k as f64 / 8.0 + out_numel
        }
        // A reference to the state's memory: its consumers pay for the elements they read.
        "read_state" => 0.0,
        // The elements it copies out (a region of a larger tensor costs the region).
        "slice" => out_numel.max(1.0) * kind_factor("slice"),
        "slice_update" if fused_update(egraph, children[0]) => 0.0,
        "slice_update" => in_types.get(1).map_or(elems, |t| t.numel() as f64),
        "write_state" if in_place(egraph, children[0], children[1]) => 0.0,
        "write_state" => in_types.get(1).map_or(elems, |t| t.numel() as f64),
        "lut_to_dense" => 0.0,
        k => elems * kind_factor(k),
    };
    let dtype_factor =
        if out_ty.as_ref().is_some_and(|t| non_fp16(t.dtype)) || in_types.iter().any(|t| non_fp16(t.dtype)) {
            NON_FP16_FACTOR
        } else {
            1.0
        };
    let base = work * dtype_factor;
    // Reading and writing back a state, and expanding LUT weights, happen once per function
    // whatever is extracted; every other op is dispatched.
    let dispatch = if matches!(*kind, "read_state" | "write_state" | "lut_to_dense") { 0.0 } else { DISPATCH };
    if is_ane_op(kind) { base + dispatch } else { PROHIBITIVE + base }
}
