//! The chunk-level pass: after per-layer functions are chained into a chunk function, the
//! work the per-layer e-graphs could not see is removed here.
//!
//! - **Layer boundaries.** Each layer function returns `[1, S, H]` and takes `[1, S, H]`
//!   (the contract's hidden-state form), so the chain holds a layout change back and forth
//!   at every link: `reshape(reshape(x))`, `transpose(transpose(x))`. Composing them and
//!   dropping identities keeps the residual stream in `(1, C, 1, S)` from the chunk's first
//!   layer to its last.
//! - **Hoisting by sharing.** Position-only work (RoPE's `gather` of the cos/sin rows by
//!   `position_ids`, the int32 `begin`/`end` arithmetic of the cache writes, the mask
//!   slices) is the same expression in every layer; common-subexpression elimination keeps
//!   the first copy (in the chunk's first layer) and every later layer uses it.
//!
//! Why here and not in an e-graph over the whole chunk: every layer writes the KV state
//! and the next layer reads it again (`read_state → slice_update → write_state` per layer,
//! the in-place pattern Core ML recognises), and an e-graph of pure values has no order for
//! 2·L state effects. Each layer is therefore saturated in its own e-graph (bounded size,
//! in parallel), and this pass, linear in the chunk's size, does the cross-layer part.
//!
//! Invariants: every rewrite here is an exact identity (no value changes, bit for bit);
//! `read_state` and effects are never merged or moved; the result verifies.

use std::collections::HashMap;

use crate::ir::{Function, Op, Type, ValueDef, ValueId};
use crate::opt::rewrite::{Copier, dce};

/// What the pass removed from one function.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TidyStats {
    /// Layout changes composed or dropped.
    pub layout: usize,
    /// Ops replaced by an earlier identical op.
    pub shared: usize,
}

/// `f` with layer-boundary layout changes cancelled and repeated pure work shared (see the
/// module docs).
pub fn tidy_chunk(f: &Function) -> (Function, TidyStats) {
    let mut stats = TidyStats::default();
    let mut c = Copier::new(f, None);
    // Value numbering: (op, operands) → the first result values computing it.
    let mut seen: HashMap<(String, Vec<ValueId>), Vec<ValueId>> = HashMap::new();
    for (_, node) in f.nodes.iter() {
        let mut op = node.op.clone();
        let mut operands: Vec<ValueId> = node.operands.iter().map(|&o| c.get(o)).collect();
        if node.results.len() == 1 {
            let want = f.values[node.results[0]].ty.clone();
            if let Some(v) = simplify_layout(&c.func, &mut op, &mut operands, &want, &mut stats) {
                c.set(node.results[0], v);
                continue;
            }
        }
        let pure = !node.results.is_empty() && !matches!(op, Op::ReadState);
        let key = (format!("{op:?}"), operands.clone());
        if pure && let Some(prev) = seen.get(&key) {
            stats.shared += 1;
            for (&old, &new) in node.results.iter().zip(prev) {
                c.set(old, new);
            }
            continue;
        }
        let results = node.results.iter().map(|&r| (f.values[r].name.clone(), f.values[r].ty.clone())).collect();
        let new = c.push(op, operands, results);
        for (&old, &n) in node.results.iter().zip(&new) {
            c.set(old, n);
        }
        if pure {
            seen.insert(key, new);
        }
    }
    (dce(&c.finish(f)), stats)
}

/// The node defining `v` in `f`, if `v` is the single result of a node.
fn def_of(f: &Function, v: ValueId) -> Option<(&Op, ValueId)> {
    match f.values[v].def {
        ValueDef::Result { node, .. } => {
            let n = &f.nodes[node];
            (n.results.len() == 1 && n.operands.len() == 1).then(|| (&n.op, n.operands[0]))
        }
        ValueDef::Input(_) => None,
    }
}

/// Composes a `reshape`/`transpose` with the layout change defining its operand, and
/// returns the operand itself when the (composed) change is an identity. `op` and
/// `operands` are updated in place when composed but not eliminated.
fn simplify_layout(
    f: &Function,
    op: &mut Op,
    operands: &mut [ValueId],
    want: &Type,
    stats: &mut TidyStats,
) -> Option<ValueId> {
    loop {
        let x = *operands.first()?;
        match (&*op, def_of(f, x)) {
            (Op::Reshape { .. }, Some((Op::Reshape { .. }, y))) => {
                operands[0] = y;
                stats.layout += 1;
            }
            (Op::Transpose { perm: q }, Some((Op::Transpose { perm: p }, y))) => {
                // transpose(transpose(y, p), q)[i] = y[p[q[i]]]
                let perm = q.iter().map(|&i| p[i]).collect();
                *op = Op::Transpose { perm };
                operands[0] = y;
                stats.layout += 1;
            }
            _ => break,
        }
    }
    let x = operands[0];
    let identity = match &*op {
        Op::Reshape { .. } => &f.values[x].ty == want,
        Op::Transpose { perm } => perm.iter().enumerate().all(|(i, &p)| i == p),
        _ => false,
    };
    if identity {
        stats.layout += 1;
        return Some(x);
    }
    None
}
