//! Dead-code removal for read-back functions: pure nodes whose results reach no output and
//! no state write are dropped (e.g. the `end` computation of a `slice_update`, whose box the
//! IR derives from the update's shape).

use crate::ir::{Function, ValueDef, ValueId};

/// A copy of `f` without dead pure nodes (value names and order otherwise unchanged).
pub(crate) fn prune(f: &Function) -> Function {
    let mut live_value = vec![false; f.values.len()];
    for o in &f.outputs {
        live_value[o.value.index()] = true;
    }
    let mut live_node = vec![false; f.nodes.len()];
    for (id, node) in f.nodes.iter().rev() {
        if !node.op.is_pure() || node.results.iter().any(|r| live_value[r.index()]) {
            live_node[id.index()] = true;
            for o in &node.operands {
                live_value[o.index()] = true;
            }
        }
    }
    let mut out = Function::new(f.name.clone());
    let mut map: Vec<Option<ValueId>> = vec![None; f.values.len()];
    for &id in &f.inputs {
        let v = &f.values[id];
        map[id.index()] = Some(out.add_input(v.name.clone(), v.ty.clone()));
    }
    for (id, node) in f.nodes.iter() {
        if !live_node[id.index()] {
            continue;
        }
        let operands = node.operands.iter().map(|o| map[o.index()].expect("SSA order")).collect();
        let results = node.results.iter().map(|&r| (f.values[r].name.clone(), f.values[r].ty.clone())).collect();
        let new = out.push_node(node.op.clone(), operands, results);
        for (&old, &r) in node.results.iter().zip(&out.nodes[new].results) {
            map[old.index()] = Some(r);
        }
    }
    for o in &f.outputs {
        let v = map[o.value.index()].expect("outputs are live");
        debug_assert!(matches!(out.values[v].def, ValueDef::Input(_) | ValueDef::Result { .. }));
        out.add_output(o.name.clone(), v);
    }
    out
}
