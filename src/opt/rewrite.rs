//! Small IR-level editing helpers shared by the non-e-graph steps (signature changes,
//! weight folding): a copier that rebuilds a function node by node, and dead-code removal.
//!
//! Invariant: the copier only appends nodes whose operands were already emitted, so its
//! output is in SSA order; names stay unique because every new name goes through `fresh`.

use std::collections::{HashMap, HashSet};

use crate::ir::{Function, Op, Type, ValueId};

/// Rebuilds a function into a new one, mapping old values to new values.
pub struct Copier {
    pub func: Function,
    map: HashMap<ValueId, ValueId>,
    used: HashSet<String>,
}

impl Copier {
    /// Starts a copy of `f` with the same inputs, or with `input_types` replacing their types.
    pub fn new(f: &Function, input_types: Option<&[Type]>) -> Self {
        let mut c = Copier { func: Function::new(f.name.clone()), map: HashMap::new(), used: HashSet::new() };
        for (k, &i) in f.inputs.iter().enumerate() {
            let v = &f.values[i];
            let ty = input_types.map_or_else(|| v.ty.clone(), |t| t[k].clone());
            let new = c.func.add_input(v.name.clone(), ty);
            c.used.insert(v.name.clone());
            c.map.insert(i, new);
        }
        for (_, v) in f.values.iter() {
            c.used.insert(v.name.clone());
        }
        c
    }

    /// A name not used by the original function nor by the copy.
    pub fn fresh(&mut self, base: &str) -> String {
        let mut name = base.to_string();
        let mut n = 1;
        while self.used.contains(&name) {
            name = format!("{base}_{n}");
            n += 1;
        }
        self.used.insert(name.clone());
        name
    }

    /// The new value standing for old value `v`.
    pub fn get(&self, v: ValueId) -> ValueId {
        self.map[&v]
    }

    pub fn set(&mut self, old: ValueId, new: ValueId) {
        self.map.insert(old, new);
    }

    /// Appends a node (results named and typed by the caller).
    pub fn push(&mut self, op: Op, operands: Vec<ValueId>, results: Vec<(String, Type)>) -> Vec<ValueId> {
        let n = self.func.push_node(op, operands, results);
        self.func.nodes[n].results.clone()
    }

    /// Copies node `node` of `f` unchanged (operands mapped), keeping result names.
    pub fn copy_node(&mut self, f: &Function, node: crate::ir::NodeId) {
        let n = &f.nodes[node];
        let operands = n.operands.iter().map(|&o| self.get(o)).collect();
        let results = n.results.iter().map(|&r| (f.values[r].name.clone(), f.values[r].ty.clone())).collect();
        let new = self.push(n.op.clone(), operands, results);
        for (&old, new) in n.results.iter().zip(new) {
            self.map.insert(old, new);
        }
    }

    /// Finishes with outputs named as in `f`, each returning `value(old output value)`.
    pub fn finish(mut self, f: &Function) -> Function {
        for o in &f.outputs {
            let v = self.get(o.value);
            self.func.add_output(o.name.clone(), v);
        }
        self.func
    }
}

/// Removes nodes none of whose results are used (effects are always kept).
pub fn dce(f: &Function) -> Function {
    let mut live: HashSet<ValueId> = f.outputs.iter().map(|o| o.value).collect();
    let mut keep = vec![false; f.nodes.len()];
    for (id, node) in f.nodes.iter().rev() {
        if node.results.is_empty() || node.results.iter().any(|r| live.contains(r)) {
            keep[id.index()] = true;
            live.extend(node.operands.iter().copied());
        }
    }
    if keep.iter().all(|k| *k) {
        return f.clone();
    }
    let mut c = Copier::new(f, None);
    for (id, _) in f.nodes.iter() {
        if keep[id.index()] {
            c.copy_node(f, id);
        }
    }
    c.finish(f)
}
