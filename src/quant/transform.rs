//! [`palettize_module`]: replaces eligible weights by `lut_to_dense` of palettized weights.
//!
//! A weight use is **eligible** when, in a function of a palettized part (see
//! [`function_part`]), the value of a `%x = weight @w` node is the weight operand of a
//! `linear` or `conv`, or (in an `embed.*` function) the table of a `gather`; and `@w` is a
//! float tensor of rank ≥ 2 with at least `min_elements` elements whose axis 0 is a multiple
//! of `group_size`. Each eligible node becomes
//!
//! ```text
//! %x_lut_idx = weight @w.lut_indices : uintB[shape]
//! %x_lut_table = weight @w.lut_table : fp16[d0 / group_size, 2^B]
//! %x = lut_to_dense(%x_lut_idx, %x_lut_table) : fp16[shape]
//! ```
//!
//! keeping the value name `%x`, so nothing downstream changes. `lut_to_dense` yields the
//! table's dtype, fp16: when `@w` is not fp16 (a module not yet through the precision pass,
//! fp32), the result is renamed `%x_lut_dense` and `%x = cast(%x_lut_dense) {dtype = …}`
//! restores the original type. The new weights are declared right after `@w` with recipes
//! `lut_indices(<recipe of @w>, bits = B, group_size = g)` and `lut_table(…)`; functions that
//! shared `@w` share them. `@w` itself is dropped when no function references it any more. A
//! weight palettized at two different widths (a tied embedding / LM head with different bits)
//! gets `@w.lut{B}_indices` / `@w.lut{B}_table` per width instead.
//!
//! The module attributes record what was done (`docs/module-conventions.md`): `lut_ffn`,
//! `lut_lm_head`, `lut_embed` (bits, set only for a part with at least one palettized weight)
//! and `lut_group_size`.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use crate::ir::recipe::lut_index_dtype;
use crate::ir::{AttrValue, DType, Function, Module, Op, Output, Recipe, TensorType, ValueId, Weight, verify_module};

use super::QuantError;
use super::config::LutConfig;
use super::tuning::Tuning;

/// The part of a model a function belongs to, for [`LutConfig`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Part {
    Ffn,
    LmHead,
    Embed,
}

impl Part {
    /// Every part, in `--lut` order.
    pub const ALL: [Part; 3] = [Part::Ffn, Part::LmHead, Part::Embed];

    /// The part's name in `--lut` (`ffn`, `lm_head`, `embed`).
    pub fn name(self) -> &'static str {
        match self {
            Part::Ffn => "ffn",
            Part::LmHead => "lm_head",
            Part::Embed => "embed",
        }
    }

    /// Position in [`LutConfig::auto`].
    pub fn index(self) -> usize {
        match self {
            Part::Ffn => 0,
            Part::LmHead => 1,
            Part::Embed => 2,
        }
    }

    /// The module attribute recording the part's bits (`lut_ffn`, `lut_lm_head`, `lut_embed`).
    pub fn attr(self) -> &'static str {
        match self {
            Part::Ffn => "lut_ffn",
            Part::LmHead => "lut_lm_head",
            Part::Embed => "lut_embed",
        }
    }
}

/// The module attribute recording the group size of a palettized module.
pub const ATTR_GROUP_SIZE: &str = "lut_group_size";

/// The part of the function `name` by the module conventions (`docs/module-conventions.md`):
/// `embed.*` → embeddings; `lm_head.*` → LM head; `layer{i}.*`, `chunk{k}.*` and
/// `final_norm.*` → FFN. Other functions are not palettized.
pub fn function_part(name: &str) -> Option<Part> {
    let head = name.split('.').next().unwrap_or(name);
    let numbered = |prefix: &str| {
        head.strip_prefix(prefix).is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
    };
    match head {
        "embed" => Some(Part::Embed),
        "lm_head" => Some(Part::LmHead),
        "final_norm" => Some(Part::Ffn),
        _ if numbered("layer") || numbered("chunk") => Some(Part::Ffn),
        _ => None,
    }
}

impl LutConfig {
    /// The bits for a part (`None`: dense).
    pub fn bits(&self, part: Part) -> Option<u32> {
        match part {
            Part::Ffn => self.ffn,
            Part::LmHead => self.lm_head,
            Part::Embed => self.embed,
        }
    }

    /// The bits that name a part in file names and module attributes: its bits, or for
    /// `auto:B` the budget rounded to the nearest integer (ANEMLL's runtimes read an integer;
    /// the per-weight bits are in the report).
    pub fn name_bits(&self, part: Part) -> Option<u32> {
        match self.budget(part.index()) {
            Some(b) => Some(b.round() as u32),
            None => self.bits(part),
        }
    }
}

/// One planned replacement: the `weight @weight` node defining `%value` in `function`
/// becomes `lut_to_dense(@indices, @table)` at `bits` bits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LutDecision {
    pub function: String,
    pub value: String,
    pub weight: String,
    pub bits: u32,
    pub indices: String,
    pub table: String,
}

/// True if `v` is used as a `linear`/`conv` weight operand or (when `embed`) a `gather` table.
fn used_as_weight(f: &Function, v: ValueId, embed: bool) -> bool {
    f.nodes.iter().any(|(_, n)| match n.op {
        Op::Linear | Op::Conv { .. } => n.operands.get(1) == Some(&v),
        Op::Gather { .. } => embed && n.operands.first() == Some(&v),
        _ => false,
    })
}

fn eligible_weight(w: &Weight, cfg: &LutConfig) -> bool {
    let t = &w.ty;
    t.dtype.is_float()
        && t.rank() >= 2
        && t.checked_numel().is_some_and(|n| n >= cfg.min_elements)
        && cfg.group_size > 0
        && t.shape[0].is_multiple_of(cfg.group_size)
}

/// The replacements [`palettize_module`] makes, in function and node order.
pub fn plan_module(module: &Module, cfg: &LutConfig) -> Result<Vec<LutDecision>, QuantError> {
    plan_module_tuned(module, cfg, None)
}

/// [`plan_module`] with per-weight bits from `tuning` where it has them.
pub fn plan_module_tuned(
    module: &Module,
    cfg: &LutConfig,
    tuning: Option<&Tuning>,
) -> Result<Vec<LutDecision>, QuantError> {
    for bits in [cfg.ffn, cfg.lm_head, cfg.embed].into_iter().flatten() {
        super::palettize::check_bits(bits)?;
    }
    if cfg.group_size == 0 {
        return Err(QuantError::Config("LUT group size must be ≥ 1".into()));
    }
    let mut uses: Vec<(String, String, String, u32)> = Vec::new();
    for f in &module.functions {
        let Some(part) = function_part(&f.name) else { continue };
        let Some(bits) = cfg.bits(part) else { continue };
        for (_, node) in f.nodes.iter() {
            let Op::Weight { name } = &node.op else { continue };
            let (Some(&v), Some(w)) = (node.results.first(), module.weight(name)) else { continue };
            if eligible_weight(w, cfg) && used_as_weight(f, v, part == Part::Embed) {
                let bits = tuning.and_then(|t| t.weights.get(name)).map_or(bits, |t| t.bits);
                super::palettize::check_bits(bits)?;
                uses.push((f.name.clone(), f.value(v).name.clone(), name.clone(), bits));
            }
        }
    }
    let mut widths: BTreeMap<&str, BTreeSet<u32>> = BTreeMap::new();
    for (_, _, w, b) in &uses {
        widths.entry(w.as_str()).or_default().insert(*b);
    }
    let names = |w: &str, b: u32| {
        if widths[w].len() == 1 {
            (format!("{w}.lut_indices"), format!("{w}.lut_table"))
        } else {
            (format!("{w}.lut{b}_indices"), format!("{w}.lut{b}_table"))
        }
    };
    Ok(uses
        .iter()
        .map(|(function, value, weight, bits)| {
            let (indices, table) = names(weight, *bits);
            LutDecision {
                function: function.clone(),
                value: value.clone(),
                weight: weight.clone(),
                bits: *bits,
                indices,
                table,
            }
        })
        .collect())
}

/// The declarations of a palettized weight: indices and table.
fn lut_weights(
    w: &Weight,
    d: &LutDecision,
    group_size: usize,
    importance: Option<Vec<f64>>,
    compensation: Option<String>,
) -> Result<[Weight; 2], QuantError> {
    let index = lut_index_dtype(d.bits).ok_or(QuantError::Bits { bits: d.bits })?;
    let input = Box::new(w.recipe.clone());
    let indices = Weight {
        name: d.indices.clone(),
        ty: w.ty.with_dtype(index),
        recipe: Recipe::LutIndices {
            input: input.clone(),
            bits: d.bits,
            group_size,
            importance: importance.clone(),
            compensation: compensation.clone(),
        },
    };
    let table = Weight {
        name: d.table.clone(),
        ty: TensorType::new(DType::F16, vec![w.ty.shape[0] / group_size, 1usize << d.bits]),
        recipe: Recipe::LutTable { input, bits: d.bits, group_size, importance, compensation },
    };
    Ok([indices, table])
}

/// A value name not yet in `taken` (`base`, else `base_1`, `base_2`, …); records it.
fn fresh(taken: &mut HashSet<String>, base: String) -> String {
    let mut name = base.clone();
    let mut n = 0;
    while taken.contains(&name) {
        n += 1;
        name = format!("{base}_{n}");
    }
    taken.insert(name.clone());
    name
}

/// Rebuilds `f` with the nodes defining the values in `decisions` replaced.
fn rewrite_function(f: &Function, module: &Module, decisions: &HashMap<&str, &LutDecision>) -> Function {
    let mut taken: HashSet<String> = f.values.iter().map(|(_, v)| v.name.clone()).collect();
    let mut nf = Function::new(f.name.clone());
    let mut map: HashMap<ValueId, ValueId> = HashMap::new();
    for &input in &f.inputs {
        let v = f.value(input);
        map.insert(input, nf.add_input(v.name.clone(), v.ty.clone()));
    }
    for (_, node) in f.nodes.iter() {
        let replaced = match (&node.op, node.results.first()) {
            (Op::Weight { .. }, Some(&r)) => decisions.get(f.value(r).name.as_str()).map(|d| (r, *d)),
            _ => None,
        };
        if let Some((r, d)) = replaced {
            let value = f.value(r);
            let dense_ty = value.ty.tensor().clone();
            let (idx_ty, table_ty) = (
                module.weight(&d.indices).map(|w| w.ty.clone()).expect("declared"),
                module.weight(&d.table).map(|w| w.ty.clone()).expect("declared"),
            );
            let idx_name = fresh(&mut taken, format!("{}_lut_idx", value.name));
            let table_name = fresh(&mut taken, format!("{}_lut_table", value.name));
            let i = nf.push_node(Op::Weight { name: d.indices.clone() }, vec![], vec![(idx_name, idx_ty.into())]);
            let t = nf.push_node(Op::Weight { name: d.table.clone() }, vec![], vec![(table_name, table_ty.into())]);
            let operands = vec![nf.nodes[i].results[0], nf.nodes[t].results[0]];
            let lut_ty = dense_ty.with_dtype(DType::F16);
            let out = if dense_ty.dtype == DType::F16 {
                nf.push_node(Op::LutToDense, operands, vec![(value.name.clone(), lut_ty.into())])
            } else {
                let dense_name = fresh(&mut taken, format!("{}_lut_dense", value.name));
                let l = nf.push_node(Op::LutToDense, operands, vec![(dense_name, lut_ty.into())]);
                let l = nf.nodes[l].results[0];
                nf.push_node(Op::Cast { dtype: dense_ty.dtype }, vec![l], vec![(value.name.clone(), dense_ty.into())])
            };
            map.insert(r, nf.nodes[out].results[0]);
            continue;
        }
        let operands = node.operands.iter().map(|o| map[o]).collect();
        let results = node.results.iter().map(|&r| (f.value(r).name.clone(), f.value(r).ty.clone())).collect();
        let new = nf.push_node(node.op.clone(), operands, results);
        for (&old, &new) in node.results.iter().zip(&nf.nodes[new].results) {
            map.insert(old, new);
        }
    }
    for o in &f.outputs {
        nf.outputs.push(Output { name: o.name.clone(), ty: o.ty.clone(), value: map[&o.value] });
    }
    nf
}

fn referenced_weights(m: &Module) -> HashSet<String> {
    m.functions
        .iter()
        .flat_map(|f| f.nodes.iter())
        .filter_map(|(_, n)| match &n.op {
            Op::Weight { name } => Some(name.clone()),
            _ => None,
        })
        .collect()
}

/// The module attributes recording `plan` (see the module docs). A module palettized before
/// (attributes present) may gain weights only at the same bits and group size: a part mixing
/// widths could not be named by one attribute.
fn lut_attrs(module: &Module, plan: &[LutDecision], cfg: &LutConfig) -> Result<Vec<(String, i64)>, QuantError> {
    let mut attrs = Vec::new();
    let already = |key: &str, want: i64| match module.attrs.get(key) {
        None => Ok(()),
        Some(AttrValue::Int(have)) if *have == want => Ok(()),
        Some(have) => Err(QuantError::Config(format!(
            "the module is already palettized with {key} = {have}; palettizing more weights at {want} would mix them"
        ))),
    };
    for part in Part::ALL {
        let Some(bits) = cfg.name_bits(part) else { continue };
        if plan.iter().any(|d| function_part(&d.function) == Some(part)) {
            already(part.attr(), i64::from(bits))?;
            attrs.push((part.attr().to_string(), i64::from(bits)));
        }
    }
    let group_size =
        i64::try_from(cfg.group_size).map_err(|_| QuantError::Config("LUT group size too large".into()))?;
    already(ATTR_GROUP_SIZE, group_size)?;
    attrs.push((ATTR_GROUP_SIZE.to_string(), group_size));
    Ok(attrs)
}

/// Palettizes `module` as `cfg` says (see the module docs). The result passes
/// `verify_module`; the k-means itself runs later, when the new weights are materialised.
/// A module with nothing eligible is returned unchanged (attributes included).
pub fn palettize_module(module: &Module, cfg: &LutConfig) -> Result<Module, QuantError> {
    palettize_module_tuned(module, cfg, None)
}

/// [`palettize_module`] with per-weight bits and importance from `tuning` (required for an
/// `auto:B` part).
pub fn palettize_module_tuned(module: &Module, cfg: &LutConfig, tuning: Option<&Tuning>) -> Result<Module, QuantError> {
    if tuning.is_none() && cfg.auto.iter().any(Option::is_some) {
        return Err(QuantError::Config(format!("{cfg}: mixed bits (auto:B) need the tuning pass to choose them")));
    }
    let plan = plan_module_tuned(module, cfg, tuning)?;
    if plan.is_empty() {
        return Ok(module.clone());
    }
    let attrs = lut_attrs(module, &plan, cfg)?;
    // New declarations, grouped under the dense weight they come from.
    let mut added: BTreeMap<&str, Vec<Weight>> = BTreeMap::new();
    let mut declared: HashSet<&str> = HashSet::new();
    for d in &plan {
        if !declared.insert(d.indices.as_str()) {
            continue;
        }
        let w = module.weight(&d.weight).expect("planned from a declared weight");
        let chosen = tuning.and_then(|t| t.weights.get(&d.weight));
        let importance = chosen.and_then(|t| t.importance.clone());
        let compensation = chosen.and_then(|t| t.compensation.clone());
        for new in lut_weights(w, d, cfg.group_size, importance, compensation)? {
            match module.weight(&new.name) {
                Some(old) if *old == new => {}
                Some(_) => {
                    return Err(QuantError::Transform(format!(
                        "weight @{} already exists with another declaration",
                        new.name
                    )));
                }
                None => added.entry(d.weight.as_str()).or_default().push(new),
            }
        }
    }
    let mut staged = module.clone();
    for list in added.values_mut() {
        list.sort_by_key(|w| w.name.clone());
        staged.weights.extend(list.iter().cloned());
    }
    let before = referenced_weights(module);
    let mut out = Module { functions: Vec::new(), ..module.clone() };
    for f in &module.functions {
        let decisions: HashMap<&str, &LutDecision> =
            plan.iter().filter(|d| d.function == f.name).map(|d| (d.value.as_str(), d)).collect();
        out.functions.push(if decisions.is_empty() { f.clone() } else { rewrite_function(f, &staged, &decisions) });
    }
    let after = referenced_weights(&out);
    out.weights = Vec::with_capacity(staged.weights.len());
    for w in &module.weights {
        if after.contains(&w.name) || !before.contains(&w.name) {
            out.weights.push(w.clone());
        }
        out.weights.extend(added.get(w.name.as_str()).into_iter().flatten().cloned());
    }
    for (key, bits) in attrs {
        out.attrs.insert(key, AttrValue::Int(bits));
    }
    verify_module(&out).map_err(QuantError::Verify)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn function_parts_follow_the_conventions() {
        assert_eq!(function_part("embed.infer"), Some(Part::Embed));
        assert_eq!(function_part("lm_head.prefill"), Some(Part::LmHead));
        assert_eq!(function_part("layer12.infer"), Some(Part::Ffn));
        assert_eq!(function_part("chunk0.prefill"), Some(Part::Ffn));
        assert_eq!(function_part("final_norm.infer"), Some(Part::Ffn));
        assert_eq!(function_part("layers.infer"), None);
        assert_eq!(function_part("layer.infer"), None);
        assert_eq!(function_part("main"), None);
    }
}
