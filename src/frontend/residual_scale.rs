//! Residual scaling for fp16 (ANEMLL's `--fp16-scale`): the residual stream of some models
//! (Gemma 3: ~10⁵ on real text) exceeds fp16's 65504. Multiplying everything written into the
//! stream by α — the embedding output and each branch added to it — makes the stream α·x
//! everywhere. Every consumer of the stream is an RMSNorm, which cancels α (up to its eps),
//! so the logits are unchanged while the largest activation shrinks by α.
//!
//! On a lowered module (docs/module-conventions.md) the writers are found by structure:
//! the table `embed.*` gathers from, and in each `layer*` function the second operand of the
//! residual adds (`resid_attn`, `output_hidden_states`): an RMSNorm (Gemma's sandwich norms:
//! its gain is scaled) or a linear projection (its weight and bias are scaled). Each weight
//! is rewritten once (a `scale` recipe); the embedding gets a scaled copy, since a tied LM
//! head may read the same table.

use std::collections::BTreeSet;

use crate::ir::{AttrValue, Function, Module, Op, Recipe, ValueDef, ValueId, Weight};

/// The weight a value is read from, if it is a `weight` op's result.
fn weight_of(f: &Function, v: ValueId) -> Option<String> {
    match f.values[v].def {
        ValueDef::Result { node, .. } => match &f.nodes[node].op {
            Op::Weight { name } => Some(name.clone()),
            _ => None,
        },
        ValueDef::Input(_) => None,
    }
}

/// The weights that scale the branch `v` added to the residual stream.
fn branch_weights(f: &Function, v: ValueId) -> Result<Vec<String>, String> {
    let ValueDef::Result { node, .. } = f.values[v].def else {
        return Err(format!("@{}: a residual branch is a function input", f.name));
    };
    let n = &f.nodes[node];
    let operands: Vec<Option<String>> = n.operands.iter().map(|&o| weight_of(f, o)).collect();
    match n.op {
        Op::RmsNorm { .. } => operands.get(1).cloned().flatten().map(|g| vec![g]),
        Op::Linear => Some(operands.into_iter().skip(1).flatten().collect()),
        _ => None,
    }
    .filter(|w| !w.is_empty())
    .ok_or_else(|| format!("@{}: residual branch `{}` is neither an RMSNorm nor a linear", f.name, f.values[v].name))
}

/// Scales the residual stream of the lowered module `m` by `alpha` (see the module docs) and
/// records `residual_scale` as a module attribute. Returns the weights rewritten.
pub fn scale_residual(m: &mut Module, alpha: f64) -> Result<Vec<String>, String> {
    if !(alpha.is_finite() && alpha > 0.0) {
        return Err(format!("the residual scale must be finite and positive, got {alpha}"));
    }
    let mut scaled: BTreeSet<String> = BTreeSet::new();
    let mut embeds: BTreeSet<String> = BTreeSet::new();
    for f in &m.functions {
        if f.name.starts_with("embed.") {
            for (_, n) in f.nodes.iter() {
                if matches!(n.op, Op::Gather { .. })
                    && let Some(w) = weight_of(f, n.operands[0])
                {
                    embeds.insert(w);
                }
            }
        } else if f.name.starts_with("layer") {
            for (_, n) in f.nodes.iter() {
                let is_residual = matches!(n.op, Op::Add)
                    && matches!(f.values[n.results[0]].name.as_str(), "resid_attn" | "output_hidden_states");
                if is_residual {
                    scaled.extend(branch_weights(f, n.operands[1])?);
                }
            }
        }
    }
    if embeds.is_empty() || scaled.is_empty() {
        return Err("the module has no embedding table or no residual branches to scale".into());
    }
    for w in m.weights.iter_mut().filter(|w| scaled.contains(&w.name)) {
        w.recipe = Recipe::Scale { input: Box::new(w.recipe.clone()), factor: alpha };
    }
    for e in &embeds {
        let original = m.weight(e).ok_or_else(|| format!("weight {e} is not declared"))?.clone();
        let name = format!("{e}.residual_scaled");
        m.weights.push(Weight {
            name: name.clone(),
            ty: original.ty.clone(),
            recipe: Recipe::Scale { input: Box::new(original.recipe), factor: alpha },
        });
        for f in m.functions.iter_mut().filter(|f| f.name.starts_with("embed.")) {
            for (_, n) in f.nodes.iter_mut() {
                if let Op::Weight { name: w } = &mut n.op
                    && w == e
                {
                    w.clone_from(&name);
                }
            }
        }
        scaled.insert(name);
    }
    m.attrs.insert("residual_scale".into(), AttrValue::Float(alpha));
    Ok(scaled.into_iter().collect())
}

/// The residual scale for a measured peak: the largest power of two (exact in fp16, so the
/// scaling itself adds no rounding) that keeps `peak · α` at most half of fp16's largest
/// value, or 1 when the peak already fits.
pub fn choose_alpha(peak: f32) -> f64 {
    const TARGET: f64 = 65504.0 / 2.0;
    let peak = f64::from(peak);
    if !(peak.is_finite()) || peak <= TARGET {
        return 1.0;
    }
    let mut alpha = 1.0;
    while peak * alpha > TARGET {
        alpha /= 2.0;
    }
    alpha
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alpha_is_a_power_of_two_with_margin() {
        assert_eq!(choose_alpha(1000.0), 1.0);
        assert_eq!(choose_alpha(104_162.0), 0.25);
        assert_eq!(choose_alpha(61_040.0), 0.5);
        assert_eq!(choose_alpha(292_969.0), 0.0625);
        assert_eq!(choose_alpha(f32::INFINITY), 1.0);
    }
}
