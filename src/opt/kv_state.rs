//! The IR-level step of the `kv-state` pass: the per-layer KV states become one state.
//!
//! Before: layer ℓ's functions declare `kv_cache_ℓ: state<T[2, nkv, C, hd]>` (K at index 0,
//! V at 1). After: every function that declared one of them declares instead
//! `model_model_kv_cache_0: state<T[2L, nkv, C, hd]>` (ANEMLL's name and layout: K of layer ℓ
//! at slot ℓ, V at slot L+ℓ), at the position of its first KV state input.
//!
//! The step is exact and local: the unified state is read once at the top of the function
//! (`%kv_state`); each old `read_state(kv_cache_ℓ)` becomes the view
//! `concat(slice(kv_state, slot ℓ), slice(kv_state, slot L+ℓ))`; each old
//! `write_state(kv_cache_ℓ, x)` becomes two `slice_update`s of the unified value (K half at
//! slot ℓ, V half at slot L+ℓ), chained in program order, and one `write_state` at the end.
//! The rules of `passes/kvstate.rules` then simplify these views so that each new K/V row is
//! written straight into the unified state at `[ℓ, :, current_pos, :]`.
//!
//! Models with sliding-window layers (module attribute `sliding_layers`, as Gemma 3's
//! lowering sets it) get two states instead, ANEMLL 0.3.6's: `model_model_kv_cache_local`
//! `[2·Nl, nkv, W, hd]` for the sliding layers and `model_model_kv_cache_global`
//! `[2·Ng, nkv, C, hd]` for the others; slot j (K) and N+j (V) belong to the j-th layer of
//! that kind in layer order.
//!
//! Preconditions (an error otherwise): `layers` is a module attribute; a function reads and
//! writes each KV state at most once, reading before writing; all KV states of one family
//! have the same type `T[2, nkv, L, hd]`, and one function's KV states are of one family.

use crate::ir::{ConstData, DType, Function, Module, Op, TensorType, Type, ValueId};

use super::rewrite::Copier;

/// ANEMLL's name of the unified KV state.
pub const STATE_NAME: &str = "model_model_kv_cache_0";
/// ANEMLL 0.3.6's names of the sliding-window and full-attention states.
pub const LOCAL_STATE_NAME: &str = "model_model_kv_cache_local";
pub const GLOBAL_STATE_NAME: &str = "model_model_kv_cache_global";

/// Where one layer's K/V live: the unified state's name, the layer's slot j (K at j, V at
/// count + j) and the number of layers sharing that state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Slot {
    state: &'static str,
    index: usize,
    count: usize,
}

/// The slot of every layer: one family, or local/global when `sliding` lists layers.
fn slots(layers: usize, sliding: &[usize]) -> Vec<Slot> {
    if sliding.is_empty() {
        return (0..layers).map(|l| Slot { state: STATE_NAME, index: l, count: layers }).collect();
    }
    let n_local = (0..layers).filter(|l| sliding.contains(l)).count();
    let (mut local, mut global) = (0, 0);
    (0..layers)
        .map(|l| {
            if sliding.contains(&l) {
                local += 1;
                Slot { state: LOCAL_STATE_NAME, index: local - 1, count: n_local }
            } else {
                global += 1;
                Slot { state: GLOBAL_STATE_NAME, index: global - 1, count: layers - n_local }
            }
        })
        .collect()
}

/// The layer of a per-layer KV state input name (`kv_cache_3` → 3).
fn layer_of(name: &str) -> Option<usize> {
    name.strip_prefix("kv_cache_")?.parse().ok()
}

fn i32_const(c: &mut Copier, values: Vec<i64>, name: &str) -> ValueId {
    let ty = TensorType::new(DType::I32, vec![values.len()]);
    let name = c.fresh(name);
    c.push(Op::Const { ty: ty.clone(), data: ConstData::Ints(values) }, vec![], vec![(name, Type::Tensor(ty))])[0]
}

fn slice(c: &mut Copier, x: ValueId, slab: &TensorType, slot: usize, name: &str) -> ValueId {
    let mut begin = vec![0; slab.rank()];
    begin[0] = slot;
    let mut end = slab.shape.clone();
    end[0] = slot + 1;
    let mut shape = slab.shape.clone();
    shape[0] = 1;
    let name = c.fresh(name);
    c.push(Op::Slice { begin, end }, vec![x], vec![(name, Type::Tensor(slab.with_shape(shape)))])[0]
}

/// Rewrites one function; `None` if it has no per-layer KV state.
fn unify_function(f: &Function, slots: &[Slot]) -> Result<Option<Function>, String> {
    let layers = slots.len();
    let kv: Vec<(usize, usize, TensorType)> = f
        .inputs
        .iter()
        .enumerate()
        .filter_map(|(k, &i)| {
            let v = &f.values[i];
            match (&v.ty, layer_of(&v.name)) {
                (Type::State(t), Some(l)) => Some((k, l, t.clone())),
                _ => None,
            }
        })
        .collect();
    let Some((first, first_layer, slab)) = kv.first().cloned() else { return Ok(None) };
    if slab.rank() != 4 || slab.shape[0] != 2 || kv.iter().any(|(_, l, t)| *t != slab || *l >= layers) {
        return Err(format!("@{}: KV states must all be [2, nkv, C, hd] of layers < {layers}", f.name));
    }
    let family = slots[first_layer];
    if kv.iter().any(|(_, l, _)| slots[*l].state != family.state) {
        return Err(format!("@{}: KV states of sliding and full-attention layers in one function", f.name));
    }
    let mut unified = slab.clone();
    unified.shape[0] = 2 * family.count;
    // New inputs: the unified state replaces the first KV state; the others disappear.
    let keep: Vec<usize> = (0..f.inputs.len()).filter(|k| *k == first || !kv.iter().any(|(j, _, _)| j == k)).collect();
    let sub = Function { name: f.name.clone(), inputs: keep.iter().map(|&k| f.inputs[k]).collect(), ..f.clone() };
    let types: Vec<Type> = keep
        .iter()
        .map(|&k| if k == first { Type::State(unified.clone()) } else { f.values[f.inputs[k]].ty.clone() })
        .collect();
    let mut c = Copier::new(&sub, Some(&types));
    let state = c.func.inputs[keep.iter().position(|&k| k == first).expect("kept")];
    c.func.values.get_mut(state).name = family.state.to_string();
    let layer_by_value = |v: ValueId| kv.iter().find(|(k, _, _)| f.inputs[*k] == v).map(|(_, l, _)| *l);
    let read_name = c.fresh("kv_state");
    let all = c.push(Op::ReadState, vec![state], vec![(read_name, Type::Tensor(unified.clone()))])[0];
    let mut written = all;
    let mut writes = 0;
    // The value each per-layer write stores, by old value id, with its layer. Its updates of
    // the unified state are made as soon as it is computed, and its other uses read it back
    // from the updated state (the same elements), so that attention can read each layer's
    // K/V from the value the function writes instead of updating a copy of its own.
    let mut stored: Vec<(ValueId, usize)> = Vec::new();
    for (_, node) in f.nodes.iter() {
        if matches!(node.op, Op::WriteState)
            && let Some(l) = layer_by_value(node.operands[0])
        {
            stored.push((node.operands[1], l));
        }
    }
    let unify_write = |c: &mut Copier, old: ValueId, l: usize, written: &mut ValueId| {
        let x = c.get(old);
        let base = f.values[old].name.clone();
        let s = slots[l];
        for (half, slot) in [(0, s.index), (1, s.count + s.index)] {
            let part = slice(c, x, &slab, half, &format!("{base}.{half}"));
            let mut at = vec![0; unified.rank()];
            at[0] = slot as i64;
            let offset = i32_const(c, at, &format!("{base}.at{half}"));
            let name = c.fresh(&format!("kv_state.{l}.{half}"));
            *written =
                c.push(Op::SliceUpdate, vec![*written, part, offset], vec![(name, Type::Tensor(unified.clone()))])[0];
        }
        // Reading the slab back from the updated state gives `x` again, element for element.
        let k = slice(c, *written, &unified, s.index, &format!("{base}.stored.k"));
        let v = slice(c, *written, &unified, s.count + s.index, &format!("{base}.stored.v"));
        let name = c.fresh(&format!("{base}.stored"));
        let view = c.push(Op::Concat { axis: 0 }, vec![k, v], vec![(name, Type::Tensor(slab.clone()))])[0];
        c.set(old, view);
    };
    let mut done: Vec<ValueId> = Vec::new();
    for (id, node) in f.nodes.iter() {
        match node.op {
            Op::ReadState if layer_by_value(node.operands[0]).is_some() => {
                let l = layer_by_value(node.operands[0]).expect("checked");
                let r = node.results[0];
                let name = f.values[r].name.clone();
                let slot = slots[l];
                let k = slice(&mut c, all, &unified, slot.index, &format!("{name}.k"));
                let v = slice(&mut c, all, &unified, slot.count + slot.index, &format!("{name}.v"));
                let both = c.push(Op::Concat { axis: 0 }, vec![k, v], vec![(name, Type::Tensor(slab.clone()))]);
                c.set(r, both[0]);
            }
            Op::WriteState if layer_by_value(node.operands[0]).is_some() => {
                let l = layer_by_value(node.operands[0]).expect("checked");
                if !done.contains(&node.operands[1]) {
                    // Stored straight from an input or a state read: update here.
                    unify_write(&mut c, node.operands[1], l, &mut written);
                    done.push(node.operands[1]);
                }
                writes += 1;
            }
            _ => {
                c.copy_node(f, id);
                for r in &node.results {
                    if let Some(&(old, l)) = stored.iter().find(|(v, _)| v == r)
                        && !done.contains(&old)
                    {
                        unify_write(&mut c, old, l, &mut written);
                        done.push(old);
                    }
                }
            }
        }
    }
    if writes > 0 {
        c.push(Op::WriteState, vec![state, written], Vec::new());
    }
    Ok(Some(c.finish(f)))
}

/// The pass's IR step over the whole module; returns report notes.
pub fn prepare(m: &mut Module) -> Result<Vec<String>, String> {
    let has_kv = m.functions.iter().any(|f| f.inputs.iter().any(|&i| layer_of(&f.values[i].name).is_some()));
    if !has_kv {
        return Ok(vec!["no per-layer KV states (`kv_cache_<layer>`): nothing to unify".into()]);
    }
    let layers = m
        .attr_int("layers")
        .and_then(|l| usize::try_from(l).ok())
        .filter(|&l| l > 0)
        .ok_or("the module has no positive `layers` attribute")?;
    let sliding: Vec<usize> = match m.attrs.get("sliding_layers") {
        None => Vec::new(),
        Some(crate::ir::AttrValue::Ints(v)) => v.iter().filter_map(|&l| usize::try_from(l).ok()).collect(),
        Some(other) => return Err(format!("module attribute `sliding_layers` must be an int list, got {other}")),
    };
    if sliding.iter().any(|&l| l >= layers) {
        return Err(format!("module attribute `sliding_layers` names a layer ≥ {layers}"));
    }
    let slots = slots(layers, &sliding);
    let mut changed = 0;
    for f in &mut m.functions {
        if let Some(g) = unify_function(f, &slots)? {
            super::bridge::can_bridge(f).map_err(|e| format!("@{}: {e}", f.name))?;
            *f = g;
            changed += 1;
        }
    }
    if sliding.is_empty() {
        Ok(vec![format!("{changed} functions now share one KV state `{STATE_NAME}` ([2·{layers}, nkv, C, hd])")])
    } else {
        let n_local = sliding.len();
        Ok(vec![format!(
            "{changed} functions now share `{LOCAL_STATE_NAME}` ([2·{n_local}, nkv, W, hd], sliding layers) and \
             `{GLOBAL_STATE_NAME}` ([2·{}, nkv, C, hd])",
            layers - n_local
        )])
    }
}
