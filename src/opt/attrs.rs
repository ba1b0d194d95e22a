//! The attribute layout of each op kind in the e-graph: which attribute leaves follow the
//! operands, in `Op::attrs` order, and the conversions between an IR [`Op`] and
//! `(kind, attribute leaves)`.
//!
//! Invariant (tested): for every op, `attr_names(op.name())` lists exactly the keys of
//! `op.attrs()` in the same order, so `op_from_parts(kind_and_leaves(op)) == op`.

use std::collections::BTreeMap;

use crate::ir::attr::AttrMap;
use crate::ir::{ConstData, Op};

use super::lang::{AttrLeaf, ConstLeaf, GET, Kind, Tnode};

/// The attribute keys of an op kind, in child order after the operands.
pub fn attr_names(kind: &str) -> &'static [&'static str] {
    match kind {
        "gelu" => &["mode"],
        "reduce_sum" | "reduce_mean" | "reduce_max" => &["axes", "keep_dims"],
        "argmax" => &["axis", "keep_dims"],
        "softmax" | "concat" | "gather" => &["axis"],
        "rms_norm" => &["axis", "eps"],
        "layer_norm" => &["axes", "eps"],
        "matmul" => &["transpose_a", "transpose_b"],
        "conv" => &["strides", "pads", "dilations", "groups"],
        "reshape" | "expand" => &["shape"],
        "transpose" => &["perm"],
        "split" => &["axis", "sizes"],
        "slice" => &["begin", "end"],
        "squeeze" | "expand_dims" => &["axes"],
        "cast" => &["dtype"],
        "get" => &["index"],
        _ => &[],
    }
}

/// Number of operand children of a node of `kind` with `n_children` children.
pub fn operand_count(kind: &str, n_children: usize) -> usize {
    n_children - attr_names(kind).len()
}

/// The IR op as an e-node payload: its kind and its attribute leaves (the operands are
/// supplied by the caller). `const` and `weight` are leaves and have no kind: `None`.
pub fn kind_and_leaves(op: &Op) -> Option<(Kind, Vec<AttrLeaf>)> {
    let kind = super::lang::kind_of(op.name())?;
    let leaves = op.attrs().iter().map(|(_, v)| AttrLeaf::from_value(v)).collect();
    Some((kind, leaves))
}

/// Rebuilds the IR op of kind `kind` from its attribute leaves. Errors name the problem
/// (a rule built a node with a malformed attribute).
pub fn op_from_parts(kind: Kind, leaves: &[&AttrLeaf]) -> Result<Op, String> {
    let names = attr_names(kind);
    if names.len() != leaves.len() {
        return Err(format!("`{kind}` needs {} attribute leaves, got {}", names.len(), leaves.len()));
    }
    let entries: BTreeMap<String, _> = names.iter().zip(leaves).map(|(n, l)| (n.to_string(), l.to_value())).collect();
    Op::from_name_and_attrs(kind, AttrMap::new(entries))
}

/// The leaf e-node of a `const` or `weight` op, if `op` is one.
pub fn leaf_of(op: &Op) -> Option<Tnode> {
    match op {
        Op::Const { ty, data } => Some(Tnode::Const(ConstLeaf::new(ty, data))),
        Op::Weight { name } => Some(Tnode::Weight(name.clone())),
        _ => None,
    }
}

/// The IR op of a leaf e-node that stands for a value (`const`/`weight`).
pub fn op_of_leaf(node: &Tnode) -> Option<Op> {
    match node {
        Tnode::Const(c) => Some(Op::Const { ty: c.ty(), data: c.data() }),
        Tnode::Weight(w) => Some(Op::Weight { name: w.clone() }),
        _ => None,
    }
}

/// `true` for the pseudo op `get`.
pub fn is_get(kind: Kind) -> bool {
    kind == GET
}

/// The splat value of a literal, if it is a float splat.
pub fn float_splat(data: &ConstData) -> Option<f64> {
    match data {
        ConstData::Floats(v) if !v.is_empty() && v.iter().all(|x| x.to_bits() == v[0].to_bits()) => Some(v[0]),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::{DType, GeluMode};

    fn samples() -> Vec<Op> {
        vec![
            Op::Gelu { mode: GeluMode::Tanh },
            Op::ReduceSum { axes: vec![-1], keep_dims: true },
            Op::ReduceMean { axes: vec![1], keep_dims: false },
            Op::ReduceMax { axes: vec![0, 1], keep_dims: true },
            Op::Softmax { axis: -1 },
            Op::RmsNorm { axis: -1, eps: 1e-5 },
            Op::LayerNorm { axes: vec![1], eps: 1e-6 },
            Op::Matmul { transpose_a: false, transpose_b: true },
            Op::Linear,
            Op::Conv { strides: vec![1, 1], pads: vec![0, 0, 0, 0], dilations: vec![1, 1], groups: 1 },
            Op::Reshape { shape: vec![1, 2] },
            Op::Transpose { perm: vec![1, 0] },
            Op::Concat { axis: 0 },
            Op::Split { axis: 1, sizes: vec![2, 2] },
            Op::Slice { begin: vec![0], end: vec![1] },
            Op::SliceUpdate,
            Op::Expand { shape: vec![2, 2] },
            Op::Squeeze { axes: vec![0] },
            Op::ExpandDims { axes: vec![0] },
            Op::Gather { axis: 0 },
            Op::Cast { dtype: DType::F16 },
            Op::Argmax { axis: -1, keep_dims: false },
            Op::Add,
            Op::ReadState,
            Op::WriteState,
            Op::LutToDense,
        ]
    }

    #[test]
    fn attribute_layout_matches_the_ir() {
        for op in samples() {
            let keys: Vec<&str> = op.attrs().iter().map(|(k, _)| *k).collect();
            assert_eq!(attr_names(op.name()), keys.as_slice(), "{}", op.name());
            let (kind, leaves) = kind_and_leaves(&op).unwrap();
            let refs: Vec<&AttrLeaf> = leaves.iter().collect();
            assert_eq!(op_from_parts(kind, &refs).unwrap(), op);
        }
    }
}
