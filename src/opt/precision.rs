//! The IR-level step of the `precision` pass: the function signatures move to the
//! contract's I/O dtypes before the e-graph runs.
//!
//! Every float input, output and state that is not fp16 becomes fp16 (int32 ids and
//! positions stay). Inside the function the old precision is restored with explicit casts —
//! `cast(%in, fp32)` after each input, `cast(read_state(%s), fp32)` after each state read,
//! `write_state(%s, cast(%v, fp16))`, `cast(%out, fp16)` before each output — so the
//! function computes exactly what it did, up to the rounding at its boundary. The rules of
//! `passes/precision.rules` then sink the casts through every op until they meet and
//! cancel, which leaves an fp16 body. The helper casts get names with a `.` suffix
//! (`hidden_states.fp32`), which the rebuild treats as secondary (`rebuild::anchors`).

use crate::ir::{DType, Function, Module, Op, Type};

use super::rewrite::Copier;

fn lowered(t: &Type) -> Type {
    let to_half = |d: DType| if d.is_float() { DType::F16 } else { d };
    match t {
        Type::Tensor(t) => Type::Tensor(t.with_dtype(to_half(t.dtype))),
        Type::State(t) => Type::State(t.with_dtype(to_half(t.dtype))),
    }
}

/// Moves one function's signature to fp16. Returns the new function and how many inputs,
/// states and outputs changed.
pub fn half_signature(f: &Function) -> (Function, [usize; 3]) {
    let old: Vec<Type> = f.inputs.iter().map(|&i| f.values[i].ty.clone()).collect();
    let new: Vec<Type> = old.iter().map(lowered).collect();
    let mut counts = [0usize; 3];
    let mut c = Copier::new(f, Some(&new));
    for (k, &i) in f.inputs.iter().enumerate() {
        if old[k] == new[k] {
            continue;
        }
        if old[k].is_state() {
            counts[1] += 1;
            continue;
        }
        counts[0] += 1;
        let v = &f.values[i];
        let name = c.fresh(&format!("{}.{}", v.name, old[k].tensor().dtype));
        let cast = c.push(Op::Cast { dtype: old[k].tensor().dtype }, vec![c.get(i)], vec![(name, old[k].clone())]);
        c.set(i, cast[0]);
    }
    for (id, node) in f.nodes.iter() {
        let state_changed = |s| {
            let k = f.inputs.iter().position(|&i| i == s);
            k.is_some_and(|k| old[k] != new[k])
        };
        match node.op {
            Op::ReadState if state_changed(node.operands[0]) => {
                let r = node.results[0];
                let v = &f.values[r];
                let back_name = c.fresh(&format!("{}.{}", v.name, v.ty.tensor().dtype));
                let read = c.push(Op::ReadState, vec![c.get(node.operands[0])], vec![(v.name.clone(), lowered(&v.ty))]);
                let back =
                    c.push(Op::Cast { dtype: v.ty.tensor().dtype }, vec![read[0]], vec![(back_name, v.ty.clone())]);
                c.set(r, back[0]);
            }
            Op::WriteState if state_changed(node.operands[0]) => {
                let value = node.operands[1];
                let v = &f.values[value];
                let name = c.fresh(&format!("{}.fp16", v.name));
                let half = c.push(Op::Cast { dtype: DType::F16 }, vec![c.get(value)], vec![(name, lowered(&v.ty))]);
                c.push(Op::WriteState, vec![c.get(node.operands[0]), half[0]], Vec::new());
            }
            _ => c.copy_node(f, id),
        }
    }
    for o in &f.outputs {
        let new_ty = lowered(&o.ty);
        let mut v = c.get(o.value);
        if new_ty != o.ty {
            counts[2] += 1;
            let name = c.fresh(&format!("{}.fp16", o.name));
            v = c.push(Op::Cast { dtype: DType::F16 }, vec![v], vec![(name, new_ty)])[0];
        }
        c.func.add_output(o.name.clone(), v);
    }
    (c.func, counts)
}

/// The pass's IR step over the whole module; returns report notes.
pub fn prepare(m: &mut Module) -> Result<Vec<String>, String> {
    let mut totals = [0usize; 3];
    for f in &mut m.functions {
        let (new, counts) = half_signature(f);
        for (t, c) in totals.iter_mut().zip(counts) {
            *t += c;
        }
        *f = new;
    }
    let mut notes = vec![format!(
        "signatures to fp16: {} inputs, {} states, {} outputs (int32 ids/positions kept)",
        totals[0], totals[1], totals[2]
    )];
    notes.extend(super::fp16_range::report(m));
    Ok(notes)
}
