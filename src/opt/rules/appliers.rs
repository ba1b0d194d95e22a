//! Registered appliers (`=> name(args)` in rule files): right-hand sides that are one rule
//! over many op kinds, so writing them as patterns would need one rule per op.
//!
//! Every returned class is united with the matched class by the engine, so an applier must
//! only build terms equal to (for precision: the fp16 counterpart of) the matched term.

use egg::Id;

use crate::ir::DType;

use super::super::analysis::{EG, node_op, tensor_of};
use super::super::attrs::operand_count;
use super::super::lang::{AttrLeaf, GET, Kind, Tnode};
use super::read::{add_leaf, dtype};
use super::registry::{ApplierFn, Val};

/// Unary ops that act element by element (a layout change commutes with them).
const UNARY: &[&str] = &["neg", "sqrt", "rsqrt", "exp", "sigmoid", "silu", "gelu", "cast"];
/// Binary elementwise ops (commute with a layout change when both operands share a shape).
const BINARY: &[&str] = &["add", "sub", "mul", "div", "pow", "maximum", "minimum"];

fn layout_kind(lit: &str) -> Option<Kind> {
    match lit {
        "transpose" => Some("transpose"),
        "reshape" => Some("reshape"),
        _ => None,
    }
}

/// `layout(op(a, b…), attr)` → `op(layout(a, attr), layout(b, attr)…)` for every elementwise
/// node of the class `?y`; `layout` is the literal `transpose` or `reshape`.
fn sink_elementwise(eg: &mut EG, a: &[Val]) -> Vec<Id> {
    let Some(layout) = layout_kind(a[0].lit()) else { return Vec::new() };
    let (y, attr) = (a[1].id(), a[2].id());
    let nodes: Vec<(Kind, Vec<Id>)> = eg[y]
        .nodes
        .iter()
        .filter_map(|n| match n {
            Tnode::Op(k, c) if UNARY.contains(k) || BINARY.contains(k) => Some((*k, c.clone())),
            _ => None,
        })
        .collect();
    let mut out = Vec::new();
    let mut done: Vec<Kind> = Vec::new();
    for (kind, children) in nodes {
        // One node per op kind: the class's nodes of one kind are equal, and sinking through
        // each of them would multiply the layout variants without adding equalities.
        if done.contains(&kind) {
            continue;
        }
        let n = operand_count(kind, children.len());
        let shapes: Vec<_> = children[..n].iter().map(|&c| tensor_of(eg, c).map(|t| t.shape.clone())).collect();
        if shapes.iter().any(|s| s.is_none() || *s != shapes[0]) {
            continue;
        }
        done.push(kind);
        let mut new_children = Vec::with_capacity(children.len());
        for (i, &c) in children.iter().enumerate() {
            new_children.push(if i < n { eg.add(Tnode::op(layout, vec![c, attr])) } else { c });
        }
        out.push(eg.add(Tnode::op(kind, new_children)));
    }
    out
}

/// Wraps an fp32 operand in `cast(·, fp16)`; other operands are kept.
fn to_half(eg: &mut EG, c: Id, half: Id) -> Id {
    match tensor_of(eg, c) {
        Some(t) if t.dtype.is_float() && t.dtype != DType::F16 => eg.add(Tnode::op("cast", vec![c, half])),
        _ => c,
    }
}

/// Ops never recomputed at a lower precision by `sink_cast`.
fn keeps_precision(kind: &str) -> bool {
    matches!(kind, "cast" | "read_state" | "write_state" | "roots" | "lut_to_dense")
}

/// `cast(op(a, b…), d)` with an fp32 `op` → `op(cast(a, d), cast(b, d)…)`: compute the op in
/// the lower precision `d` (rounding its float operands first). Integer operands (indices,
/// positions) are kept. Through `get i` it rebuilds the multi-result op. A cast of a cast
/// from an integer becomes one cast of the integer.
fn sink_cast(eg: &mut EG, a: &[Val]) -> Vec<Id> {
    let x = a[0].id();
    let Some(to) = dtype(eg, &a[1]) else { return Vec::new() };
    if !to.is_float() || tensor_of(eg, x).is_none_or(|t| !t.dtype.is_float() || t.dtype == to) {
        return Vec::new();
    }
    let half = add_leaf(eg, AttrLeaf::DType(to));
    let nodes: Vec<(Kind, Vec<Id>)> = eg[x]
        .nodes
        .iter()
        .filter_map(|n| match n {
            Tnode::Op(k, c) => Some((*k, c.clone())),
            _ => None,
        })
        .collect();
    let mut out = Vec::new();
    let mut done: Vec<Kind> = Vec::new();
    for (kind, children) in nodes {
        if kind == "cast" {
            let inner = children[0];
            // An integer source is cast once; float round trips are `cast-round-trip`'s.
            if tensor_of(eg, inner).is_some_and(|t| !t.dtype.is_float()) {
                out.push(eg.add(Tnode::op("cast", vec![inner, half])));
            }
            continue;
        }
        if kind == GET {
            let (source, index) = (children[0], children[1]);
            let splits: Vec<Vec<Id>> = eg[source]
                .nodes
                .iter()
                .filter_map(|n| match n {
                    Tnode::Op("split", c) => Some(c.clone()),
                    _ => None,
                })
                .collect();
            for c in splits {
                let operand = to_half(eg, c[0], half);
                let split = eg.add(Tnode::op("split", vec![operand, c[1], c[2]]));
                out.push(eg.add(Tnode::op(GET, vec![split, index])));
            }
            continue;
        }
        if keeps_precision(kind) || done.contains(&kind) || node_op(eg, kind, &children).is_err() {
            continue;
        }
        done.push(kind);
        let n = operand_count(kind, children.len());
        let mut new_children = Vec::with_capacity(children.len());
        for (i, &c) in children.iter().enumerate() {
            new_children.push(if i < n { to_half(eg, c, half) } else { c });
        }
        out.push(eg.add(Tnode::op(kind, new_children)));
    }
    out
}

/// `mul(a, s)` for a float `a` of the scale's dtype, else `None`.
fn scaled(eg: &mut EG, a: Id, s: Id) -> Option<Id> {
    let (ta, ts) = (tensor_of(eg, a)?, tensor_of(eg, s)?);
    (ta.dtype == ts.dtype && ta.dtype.is_float()).then(|| eg.add(Tnode::op("mul", vec![a, s])))
}

/// Ops through which a scalar factor passes to operand 0 unchanged: `op(a, …)·s = op(a·s, …)`.
const SCALE_THROUGH_FIRST: &[&str] =
    &["reshape", "transpose", "squeeze", "expand_dims", "slice", "expand", "gather", "split", "matmul"];

/// `mul(x, s)` with a scalar factor `s` → the same factor applied one op earlier, for every
/// node of `x` that is linear in (one of) its operands: through layout ops, `split`/`get`,
/// `concat`, `neg`, `add`/`sub` (both sides), `mul` (one side), `matmul` (left side), and
/// into the weight and bias of `conv`/`linear` and the gain of `rms_norm`. Repeated
/// application moves the factor to the weights, where it folds into a `scale` recipe.
fn sink_scale(eg: &mut EG, a: &[Val]) -> Vec<Id> {
    let (x, s) = (a[0].id(), a[1].id());
    let nodes: Vec<(Kind, Vec<Id>)> = eg[x]
        .nodes
        .iter()
        .filter_map(|n| match n {
            Tnode::Op(k, c) => Some((*k, c.clone())),
            _ => None,
        })
        .collect();
    let mut out = Vec::new();
    for (kind, c) in nodes {
        let n = operand_count(kind, c.len());
        let with = |eg: &mut EG, i: usize, v: Id| {
            let mut c2 = c.clone();
            c2[i] = v;
            eg.add(Tnode::op(kind, c2))
        };
        match kind {
            k if SCALE_THROUGH_FIRST.contains(&k) => {
                if let Some(v) = scaled(eg, c[0], s) {
                    out.push(with(eg, 0, v));
                }
            }
            GET => {
                let (source, index) = (c[0], c[1]);
                let splits: Vec<Vec<Id>> = eg[source]
                    .nodes
                    .iter()
                    .filter_map(|n| match n {
                        Tnode::Op("split", sc) => Some(sc.clone()),
                        _ => None,
                    })
                    .collect();
                for sc in splits {
                    if let Some(v) = scaled(eg, sc[0], s) {
                        let split = eg.add(Tnode::op("split", vec![v, sc[1], sc[2]]));
                        out.push(eg.add(Tnode::op(GET, vec![split, index])));
                    }
                }
            }
            "neg" | "add" | "sub" | "concat" => {
                let parts: Option<Vec<Id>> = (0..n).map(|i| scaled(eg, c[i], s)).collect();
                if let Some(parts) = parts {
                    let mut c2 = parts;
                    c2.extend_from_slice(&c[n..]);
                    out.push(eg.add(Tnode::op(kind, c2)));
                }
            }
            "mul" => {
                // One side only, so that the e-graph does not offer a scaled copy of every
                // shared operand (greedy extraction cannot trade two such copies at once):
                // a weight-derived side (the factor folds into it), else the side that
                // already has the result's shape (not a broadcast table such as RoPE's cos).
                let out_shape = tensor_of(eg, x).map(|t| t.shape.clone());
                let pick = (0..2)
                    .find(|&i| eg[c[i]].data.is_weight())
                    .or_else(|| (0..2).find(|&i| tensor_of(eg, c[i]).map(|t| &t.shape) == out_shape.as_ref()));
                if let Some(i) = pick
                    && let Some(v) = scaled(eg, c[i], s)
                {
                    out.push(with(eg, i, v));
                }
            }
            "conv" | "linear" => {
                let parts: Option<Vec<Id>> = (1..n).map(|i| scaled(eg, c[i], s)).collect();
                if let Some(parts) = parts {
                    let mut c2 = vec![c[0]];
                    c2.extend(parts);
                    c2.extend_from_slice(&c[n..]);
                    out.push(eg.add(Tnode::op(kind, c2)));
                }
            }
            "rms_norm" => {
                if let Some(v) = scaled(eg, c[1], s) {
                    out.push(with(eg, 1, v));
                }
            }
            _ => {}
        }
    }
    out
}

/// Every applier a rule file may name.
pub const TABLE: &[ApplierFn] = &[
    ApplierFn {
        name: "sink_elementwise",
        params: "lcc",
        doc: "push a transpose/reshape below an elementwise op onto its same-shape operands",
        f: sink_elementwise,
    },
    ApplierFn {
        name: "sink_scale",
        params: "cc",
        doc: "move a scalar factor one op towards the weights (through linear ops)",
        f: sink_scale,
    },
    ApplierFn {
        name: "sink_cast",
        params: "ca",
        doc: "compute an op in the cast's dtype from cast operands (integer operands kept)",
        f: sink_cast,
    },
];
