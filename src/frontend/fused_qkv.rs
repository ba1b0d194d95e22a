//! The fused q/k/v projection of each layer: one weight `[(nh + 2·nkv)·hd, H]` made of the
//! q, k and v weights stacked along the output axis (a `concat` recipe, so LUT palettization
//! and the fp16 range report see one tensor), with the attention scale folded in.
//!
//! Why fused: one projection gives one conv, one heads layout change (one transpose in
//! prefill instead of three) and lets RoPE run once over the q and k heads together
//! (`concat` order q, k, v puts them side by side), which is 7 fewer ops per layer in decode.
//!
//! The attention scale `s` (`head_dim^-0.5`, Gemma `query_pre_attn_scalar^-0.5`) multiplies
//! the queries instead of the scores: `(q·s)·kᵀ = (q·kᵀ)·s`. It is folded into the q rows
//! of the weight and bias (`scale` recipes), or, for models with per-head q/k norms (whose
//! output does not depend on the scale of their input), into the q norm's gain. Either way
//! the scores are formed from already-scaled queries (fp16-safe) and cost no op.
//!
//! Invariant: the weights named by [`FusedNames`] exist in the module after
//! [`declare_fused`] for every layer of the spec.

use super::spec::DecoderSpec;
use crate::ir::{Recipe, TensorType, Weight};

/// The module weights of layer `index`'s fused projection.
pub struct FusedNames {
    pub weight: String,
    /// Present iff the layer has q/k/v biases.
    pub bias: Option<String>,
    /// Present iff the layer has q/k norms: the scaled q norm gain.
    pub q_norm: Option<String>,
}

/// The names of layer `index`'s fused weights.
pub fn names(index: usize, has_bias: bool, has_qk_norm: bool) -> FusedNames {
    FusedNames {
        weight: format!("layers.{index}.qkv_proj.weight"),
        bias: has_bias.then(|| format!("layers.{index}.qkv_proj.bias")),
        q_norm: has_qk_norm.then(|| format!("layers.{index}.q_norm.scaled")),
    }
}

fn find<'w>(weights: &'w [Weight], name: &str) -> &'w Weight {
    weights.iter().find(|w| w.name == name).expect("declared before fusing")
}

fn scaled(r: &Recipe, factor: f64) -> Recipe {
    Recipe::Scale { input: Box::new(r.clone()), factor }
}

/// Stacks `parts` along axis 0.
fn stacked(weights: &[Weight], parts: [&str; 3], q_factor: f64) -> (Recipe, TensorType) {
    let ws = parts.map(|p| find(weights, p));
    let mut ty = ws[0].ty.clone();
    ty.shape[0] = ws.iter().map(|w| w.ty.shape[0]).sum();
    let q = if q_factor == 1.0 { ws[0].recipe.clone() } else { scaled(&ws[0].recipe, q_factor) };
    let recipe = Recipe::Concat { inputs: vec![q, ws[1].recipe.clone(), ws[2].recipe.clone()], axis: 0 };
    (recipe, ty)
}

/// Declares every layer's fused weights (see the module docs); the q/k/v weights they are
/// made of stay declared (unused ones are dropped by weight folding).
pub fn declare_fused(weights: &mut Vec<Weight>, spec: &DecoderSpec, attn_scale: f64) {
    for (index, l) in spec.layers.iter().enumerate() {
        let n = names(index, l.qkv_bias.is_some(), l.qk_norm.is_some());
        // With q/k norms the scale goes into the q norm's gain instead of the projection.
        let q_factor = if l.qk_norm.is_some() { 1.0 } else { attn_scale };
        let (recipe, ty) = stacked(weights, [&l.q_proj, &l.k_proj, &l.v_proj], q_factor);
        weights.push(Weight { name: n.weight, ty, recipe });
        if let (Some(name), Some([qb, kb, vb])) = (n.bias, &l.qkv_bias) {
            let (recipe, ty) = stacked(weights, [qb, kb, vb], q_factor);
            weights.push(Weight { name, ty, recipe });
        }
        if let (Some(name), Some([qn, _])) = (n.q_norm, &l.qk_norm) {
            let gain = find(weights, qn);
            let (ty, recipe) = (gain.ty.clone(), scaled(&gain.recipe, attn_scale));
            weights.push(Weight { name, ty, recipe });
        }
    }
}
