//! IR function → e-graph.
//!
//! Every value becomes an e-class: inputs are `%i` leaves, `weight`/`const` ops are leaves,
//! every other op is an e-node whose children are its operands' classes followed by
//! attribute leaves; result `i` of a multi-result op is `(get node i)`. A `write_state` is an
//! effect e-node. One `(roots …)` node lists the outputs in order, then the effects in
//! program order; it is the extraction root.
//!
//! Preconditions checked by [`can_bridge`]: each state is written at most once and never
//! read after it is written (so rebuilding can emit every read before every write).

use std::collections::HashMap;

use egg::Id;

use crate::ir::{Function, Module, Op, ValueDef, ValueId};

use super::analysis::{EG, TypeAnalysis, with_context};
use super::attrs::{kind_and_leaves, leaf_of};
use super::lang::{AttrLeaf, GET, ROOTS, Tnode};

/// A function loaded into an e-graph.
pub struct Loaded {
    pub egraph: EG,
    /// The `(roots …)` class.
    pub root: Id,
    /// The class of every original value, with its name, in definition order.
    pub names: Vec<(Id, String)>,
    /// How many of the root's children are outputs (the rest are effects).
    pub n_outputs: usize,
}

/// Why a function cannot be optimised as a whole (it is then left unchanged).
pub fn can_bridge(f: &Function) -> Result<(), String> {
    let mut written: HashMap<ValueId, usize> = HashMap::new();
    for (_, node) in f.nodes.iter() {
        match node.op {
            Op::WriteState => {
                let state = node.operands[0];
                if written.insert(state, 1).is_some() {
                    return Err(format!("state %{} is written twice", f.values[state].name));
                }
            }
            Op::ReadState if written.contains_key(&node.operands[0]) => {
                return Err(format!("state %{} is read after it is written", f.values[node.operands[0]].name));
            }
            _ => {}
        }
    }
    Ok(())
}

/// The analysis context of `f` in `m`: input types and weight types.
pub fn analysis_for(m: &Module, f: &Function) -> TypeAnalysis {
    TypeAnalysis {
        inputs: f.inputs.iter().map(|&i| f.values[i].ty.clone()).collect(),
        weights: m.weights.iter().map(|w| (w.name.clone(), w.ty.clone())).collect(),
        error: None,
    }
}

/// Adds an attribute leaf and returns its class.
pub fn add_attr(egraph: &mut EG, leaf: AttrLeaf) -> Id {
    egraph.add(Tnode::Attr(leaf))
}

/// A function added to an e-graph: its output classes, effect classes and value names.
pub struct Added {
    pub outputs: Vec<Id>,
    pub effects: Vec<Id>,
    pub names: Vec<(Id, String)>,
}

/// Adds the values of `f` to `egraph` (whose analysis must describe `f`'s inputs).
pub fn add_function(egraph: &mut EG, f: &Function) -> Added {
    let mut class: HashMap<ValueId, Id> = HashMap::new();
    let mut names = Vec::new();
    for (value_id, v) in f.values.iter() {
        if let ValueDef::Input(i) = v.def {
            let id = egraph.add(Tnode::Input(i));
            class.insert(value_id, id);
            names.push((id, v.name.clone()));
        }
    }
    let mut effects = Vec::new();
    for (_, node) in f.nodes.iter() {
        let id = match leaf_of(&node.op) {
            Some(leaf) => egraph.add(leaf),
            None => {
                let (kind, leaves) = kind_and_leaves(&node.op).expect("non-leaf ops have a kind");
                let mut children: Vec<Id> = node.operands.iter().map(|v| class[v]).collect();
                children.extend(leaves.into_iter().map(|l| add_attr(egraph, l)));
                egraph.add(Tnode::op(kind, children))
            }
        };
        match node.op {
            Op::WriteState => effects.push(id),
            Op::Split { .. } => {
                for (i, &r) in node.results.iter().enumerate() {
                    let index = add_attr(egraph, AttrLeaf::Int(i as i64));
                    let got = egraph.add(Tnode::op(GET, vec![id, index]));
                    class.insert(r, got);
                    names.push((got, f.values[r].name.clone()));
                }
            }
            _ => {
                for &r in &node.results {
                    class.insert(r, id);
                    names.push((id, f.values[r].name.clone()));
                }
            }
        }
    }
    let outputs = f.outputs.iter().map(|o| class[&o.value]).collect();
    Added { outputs, effects, names }
}

/// Loads `f` (a function of `m`) into a fresh e-graph.
pub fn load(m: &Module, f: &Function) -> Loaded {
    with_context("loading the function", || {
        let mut egraph = EG::new(analysis_for(m, f));
        let Added { outputs, effects, names } = add_function(&mut egraph, f);
        let n_outputs = outputs.len();
        let mut roots = outputs;
        roots.extend(effects);
        let root = egraph.add(Tnode::op(ROOTS, roots));
        egraph.rebuild();
        Loaded { egraph, root, names, n_outputs }
    })
}
