//! Weight folding: weight-only subexpressions become new module weights.
//!
//! Rules never copy weight bytes; when they need a transformed weight (a `[O, I]` linear
//! weight as a `[O, I, 1, 1]` conv weight, an fp32 weight in fp16) they apply IR ops to the
//! `weight` leaf. After extraction this step turns every maximal weight-only expression
//! (`reshape`, `squeeze`, `expand_dims`, `transpose`, float `cast`, `slice`, `concat`, `neg`,
//! `mul` by a splat literal) into a `weight @new` whose [`Recipe`] wraps the original
//! recipes, then drops module weights no function references any more.
//!
//! Invariants:
//! - the same recipe always gets the same weight, in every function (functions that shared
//!   a weight keep sharing it);
//! - names are deterministic: `<source>.<tag>…` where `<source>` names the innermost recipe
//!   (checkpoint tensor or rope table) and each tag one transformation (`fp16`,
//!   `r64x64x1x1`, `t1x0`, `s0_0_32`, `cat`, `x0.25`, `xa1` for `scale_along` axis 1); a clash with a different recipe
//!   appends `_2`, `_3`, …;
//! - recipes are simplified (casts through fp32 collapse, reshape chains merge, casts of
//!   rope tables change the table's dtype), so equal tensors get equal recipes as often as
//!   cheaply possible.

use std::collections::{HashMap, HashSet};

use crate::ir::attr::format_float;
use crate::ir::typing::norm_axis;
use crate::ir::{DType, Function, Module, Op, Recipe, TensorType, Type, ValueId, Weight};

use super::attrs::float_splat;
use super::rewrite::{Copier, dce};

/// The module weights being built, deduplicated by recipe text.
struct Table {
    by_recipe: HashMap<String, String>,
    names: HashSet<String>,
    new: Vec<Weight>,
}

impl Table {
    fn new(m: &Module) -> Self {
        let mut t = Table { by_recipe: HashMap::new(), names: HashSet::new(), new: Vec::new() };
        for w in &m.weights {
            t.names.insert(w.name.clone());
            t.by_recipe.entry(w.recipe.to_string()).or_insert_with(|| w.name.clone());
        }
        t
    }

    /// The weight holding `recipe`, creating it if needed.
    fn weight_for(&mut self, recipe: Recipe, ty: &TensorType) -> String {
        let key = recipe.to_string();
        if let Some(n) = self.by_recipe.get(&key) {
            return n.clone();
        }
        let base = recipe_name(&recipe);
        let mut name = base.clone();
        let mut k = 2;
        while self.names.contains(&name) {
            name = format!("{base}_{k}");
            k += 1;
        }
        self.names.insert(name.clone());
        self.by_recipe.insert(key, name.clone());
        self.new.push(Weight { name: name.clone(), ty: ty.clone(), recipe });
        name
    }
}

fn dims(v: &[usize]) -> String {
    v.iter().map(|d| d.to_string()).collect::<Vec<_>>().join("x")
}

/// The deterministic name of a derived weight (see the module invariants).
pub fn recipe_name(r: &Recipe) -> String {
    match r {
        Recipe::Checkpoint { tensor, .. } => tensor.clone(),
        Recipe::RopeCos { dtype, .. } | Recipe::RopeSin { dtype, .. } => {
            let table = if matches!(r, Recipe::RopeCos { .. }) { "rope.cos" } else { "rope.sin" };
            if *dtype == DType::F32 { table.into() } else { format!("{table}.{dtype}") }
        }
        Recipe::Cast { input, dtype } => format!("{}.{dtype}", recipe_name(input)),
        Recipe::Reshape { input, shape } => format!("{}.r{}", recipe_name(input), dims(shape)),
        Recipe::Transpose { input, perm } => format!("{}.t{}", recipe_name(input), dims(perm)),
        Recipe::Slice { input, axis, start, end } => format!("{}.s{axis}_{start}_{end}", recipe_name(input)),
        Recipe::Concat { inputs, .. } => format!("{}.cat", inputs.first().map_or("w".into(), recipe_name)),
        Recipe::Scale { input, factor } => format!("{}.x{}", recipe_name(input), format_float(*factor)),
        Recipe::Offset { input, value } => format!("{}.p{}", recipe_name(input), format_float(*value)),
        Recipe::ScaleAlong { input, axis, .. } => format!("{}.xa{axis}", recipe_name(input)),
        Recipe::LutIndices { input, bits, .. } => format!("{}.lut{bits}_indices", recipe_name(input)),
        Recipe::LutTable { input, bits, .. } => format!("{}.lut{bits}_table", recipe_name(input)),
    }
}

fn exact_in_f32(d: DType) -> bool {
    matches!(d, DType::BF16 | DType::F16 | DType::F32)
}

/// Simplifies a recipe without changing the tensor it produces (beyond removing a double
/// rounding through fp32, which is exact for bf16/fp16 sources).
pub fn simplify(r: Recipe) -> Recipe {
    match r {
        Recipe::Cast { input, dtype } => {
            let input = simplify(*input);
            let from = input.infer_type().map(|t| t.dtype).ok();
            match input {
                _ if from == Some(dtype) => input,
                Recipe::Cast { input: inner, dtype: DType::F32 }
                    if inner.infer_type().is_ok_and(|t| exact_in_f32(t.dtype)) =>
                {
                    simplify(Recipe::Cast { input: inner, dtype })
                }
                Recipe::RopeCos { inv_freq, len, scale, .. } => Recipe::RopeCos { inv_freq, len, scale, dtype },
                Recipe::RopeSin { inv_freq, len, scale, .. } => Recipe::RopeSin { inv_freq, len, scale, dtype },
                // A cast commutes with selecting elements and with an exact sign change, so over
                // a RoPE table it moves inwards until it meets the table, which is then
                // regenerated in the target dtype (one rounding instead of two).
                input if !over_rope_table(&input) => Recipe::Cast { input: Box::new(input), dtype },
                Recipe::Slice { input, axis, start, end } => {
                    let input = Box::new(simplify(Recipe::Cast { input, dtype }));
                    Recipe::Slice { input, axis, start, end }
                }
                Recipe::Concat { inputs, axis } => Recipe::Concat {
                    inputs: inputs.into_iter().map(|r| simplify(Recipe::Cast { input: Box::new(r), dtype })).collect(),
                    axis,
                },
                Recipe::Scale { input, factor } if factor.abs() == 1.0 => {
                    Recipe::Scale { input: Box::new(simplify(Recipe::Cast { input, dtype })), factor }
                }
                input => Recipe::Cast { input: Box::new(input), dtype },
            }
        }
        Recipe::Reshape { input, shape } => {
            let input = match simplify(*input) {
                Recipe::Reshape { input, .. } => *input,
                other => other,
            };
            if input.infer_type().is_ok_and(|t| t.shape == shape) {
                input
            } else {
                Recipe::Reshape { input: Box::new(input), shape }
            }
        }
        Recipe::Transpose { input, perm } => {
            let (input, perm) = match simplify(*input) {
                Recipe::Transpose { input, perm: p } => (*input, perm.iter().map(|&i| p[i]).collect()),
                other => (other, perm),
            };
            if perm.iter().enumerate().all(|(i, &p)| i == p) {
                input
            } else {
                Recipe::Transpose { input: Box::new(input), perm }
            }
        }
        Recipe::Slice { input, axis, start, end } => {
            Recipe::Slice { input: Box::new(simplify(*input)), axis, start, end }
        }
        Recipe::Concat { inputs, axis } => Recipe::Concat { inputs: inputs.into_iter().map(simplify).collect(), axis },
        Recipe::Scale { input, factor } => match simplify(*input) {
            Recipe::Scale { input, factor: f } => Recipe::Scale { input, factor: f * factor },
            other if factor == 1.0 => other,
            other => Recipe::Scale { input: Box::new(other), factor },
        },
        Recipe::Offset { input, value } => Recipe::Offset { input: Box::new(simplify(*input)), value },
        Recipe::ScaleAlong { input, scale, axis } => {
            Recipe::ScaleAlong { input: Box::new(simplify(*input)), scale: Box::new(simplify(*scale)), axis }
        }
        leaf => leaf,
    }
}

/// True for a RoPE table, or slices, concatenations and sign changes of RoPE tables.
fn over_rope_table(r: &Recipe) -> bool {
    match r {
        Recipe::RopeCos { .. } | Recipe::RopeSin { .. } => true,
        Recipe::Slice { input, .. } => over_rope_table(input),
        Recipe::Scale { input, factor } => factor.abs() == 1.0 && over_rope_table(input),
        Recipe::Concat { inputs, .. } => inputs.iter().all(over_rope_table),
        _ => false,
    }
}

/// The recipe of a foldable op over operand recipes (`None` if the op does not fold).
fn fold_op(op: &Op, operands: &[Option<Recipe>], literals: &[Option<f64>], out: &TensorType) -> Option<Recipe> {
    let one = || operands.first().cloned().flatten().map(Box::new);
    let recipe = match op {
        Op::Reshape { .. } | Op::Squeeze { .. } | Op::ExpandDims { .. } => {
            Recipe::Reshape { input: one()?, shape: out.shape.clone() }
        }
        Op::Transpose { perm } => Recipe::Transpose { input: one()?, perm: perm.clone() },
        Op::Cast { dtype } if dtype.is_float() => {
            let input = one()?;
            input.infer_type().ok()?.dtype.is_float().then_some(())?;
            Recipe::Cast { input, dtype: *dtype }
        }
        Op::Neg => Recipe::Scale { input: one()?, factor: -1.0 },
        Op::Slice { begin, end } => {
            let mut r = *one()?;
            let full = r.infer_type().ok()?;
            for axis in 0..begin.len() {
                if begin[axis] != 0 || end[axis] != full.shape[axis] {
                    r = Recipe::Slice { input: Box::new(r), axis, start: begin[axis], end: end[axis] };
                }
            }
            r
        }
        Op::Concat { axis } => {
            let inputs: Vec<Recipe> = operands.iter().cloned().collect::<Option<_>>()?;
            Recipe::Concat { inputs, axis: norm_axis(*axis, out.rank())? }
        }
        Op::Mul => {
            let (w, factor) = match (&operands[0], &operands[1], literals[0], literals[1]) {
                (Some(w), None, _, Some(f)) | (None, Some(w), Some(f), _) => (w.clone(), f),
                _ => return None,
            };
            (w.infer_type().ok()? == *out).then_some(())?;
            Recipe::Scale { input: Box::new(w), factor }
        }
        _ => return None,
    };
    let recipe = simplify(recipe);
    (recipe.infer_type().ok()? == *out).then_some(recipe)
}

/// Folds weight-only expressions of one function. Returns the new function.
fn fold_function(m: &Module, f: &Function, table: &mut Table) -> Function {
    let mut recipe: HashMap<ValueId, Recipe> = HashMap::new();
    let mut literal: HashMap<ValueId, f64> = HashMap::new();
    let mut c = Copier::new(f, None);
    // Values whose definition was deferred because they may fold: emitted on first use.
    let mut deferred: HashMap<ValueId, crate::ir::NodeId> = HashMap::new();
    let mut materialised: HashSet<ValueId> = HashSet::new();
    fn materialise(
        v: ValueId,
        f: &Function,
        c: &mut Copier,
        table: &mut Table,
        recipe: &HashMap<ValueId, Recipe>,
        deferred: &HashMap<ValueId, crate::ir::NodeId>,
        done: &mut HashSet<ValueId>,
    ) {
        if !deferred.contains_key(&v) || !done.insert(v) {
            return;
        }
        let value = &f.values[v];
        let r = &recipe[&v];
        let node = &f.nodes[deferred[&v]];
        let name = match &node.op {
            Op::Weight { name } => name.clone(),
            _ => table.weight_for(r.clone(), value.ty.tensor()),
        };
        let out = c.push(Op::Weight { name }, vec![], vec![(value.name.clone(), value.ty.clone())]);
        c.set(v, out[0]);
    }
    for (id, node) in f.nodes.iter() {
        if let Op::Const { data, .. } = &node.op
            && let Some(v) = float_splat(data)
        {
            literal.insert(node.results[0], v);
        }
        let operand_recipes: Vec<Option<Recipe>> = node.operands.iter().map(|o| recipe.get(o).cloned()).collect();
        let operand_literals: Vec<Option<f64>> = node.operands.iter().map(|o| literal.get(o).copied()).collect();
        let folded = match (&node.op, node.results.as_slice()) {
            (Op::Weight { name }, [r]) => m.weight(name).map(|w| (*r, w.recipe.clone())),
            (op, [r]) => match &f.values[*r].ty {
                Type::Tensor(t) => fold_op(op, &operand_recipes, &operand_literals, t).map(|rc| (*r, rc)),
                Type::State(_) => None,
            },
            _ => None,
        };
        if let Some((r, rc)) = folded {
            recipe.insert(r, rc);
            deferred.insert(r, id);
            continue;
        }
        for &o in &node.operands {
            materialise(o, f, &mut c, table, &recipe, &deferred, &mut materialised);
        }
        c.copy_node(f, id);
    }
    for o in &f.outputs {
        materialise(o.value, f, &mut c, table, &recipe, &deferred, &mut materialised);
    }
    dce(&c.finish(f))
}

/// Folds weight-only expressions in every function, adds the derived weights next to their
/// sources and drops unreferenced weights.
pub fn fold_weights(m: &Module) -> Module {
    let mut table = Table::new(m);
    let functions: Vec<Function> = m.functions.iter().map(|f| fold_function(m, f, &mut table)).collect();
    let mut used: HashSet<String> = HashSet::new();
    for f in &functions {
        for (_, n) in f.nodes.iter() {
            if let Op::Weight { name } = &n.op {
                used.insert(name.clone());
            }
        }
    }
    // Keep the module order: each surviving weight, followed by the new weights derived from
    // the same source tensor.
    let mut weights: Vec<Weight> = Vec::new();
    let mut pending: Vec<Weight> = table.new.into_iter().filter(|n| used.contains(&n.name)).collect();
    for w in &m.weights {
        if used.contains(&w.name) {
            weights.push(w.clone());
        }
        let source = source_name(&w.recipe);
        let (mine, rest): (Vec<Weight>, Vec<Weight>) =
            pending.into_iter().partition(|n| source_name(&n.recipe) == source);
        weights.extend(mine);
        pending = rest;
    }
    weights.extend(pending);
    Module { name: m.name.clone(), attrs: m.attrs.clone(), weights, functions }
}

/// The innermost source of a recipe (first input of a concat).
fn source_name(r: &Recipe) -> String {
    match r {
        Recipe::Cast { input, .. }
        | Recipe::Reshape { input, .. }
        | Recipe::Transpose { input, .. }
        | Recipe::Slice { input, .. }
        | Recipe::Scale { input, .. }
        | Recipe::Offset { input, .. }
        | Recipe::ScaleAlong { input, .. } => source_name(input),
        Recipe::Concat { inputs, .. } => inputs.first().map_or_else(String::new, source_name),
        leaf => recipe_name(leaf),
    }
}
