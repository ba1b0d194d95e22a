//! RMSNorm gains folded into the projections that read the normalised value.
//!
//! In every decoder layer two norms feed nothing but projections: the input norm feeds the
//! fused q/k/v projection and the MLP input norm (`post_attention_layernorm`, Gemma's
//! `pre_feedforward_layernorm`) feeds the gate and up projections. With `x̂` the gain-free
//! normalised value and `g` the gain, `W · (g ⊙ x̂) = (W · diag(g)) · x̂`, so the gain moves
//! into the weights' input columns (axis 1): each folded weight is one `scale_along(W, g,
//! axis = 1)` recipe, so LUT palettization, calibration and the fp16 range report still see
//! one tensor per projection, and the norm itself runs with a unit gain, which the `rmsnorm`
//! pass lowers without a multiply (one op and one fp16 rounding less per norm).
//!
//! Not folded: Gemma's sandwich norms on the branch outputs (they follow a projection) and
//! the final norm (the LM head may be the tied embedding table, which must stay unscaled).
//!
//! Invariants:
//! - a folded weight is `scale_along(<the projection's recipe>, <the gain's recipe>, axis =
//!   1)`, so [`crate::ir::Recipe::checkpoint_tensors`] still names the projection's own
//!   tensor first (calibration statistics are keyed by it);
//! - after [`declare_folded`], the weights named by [`names`] exist for every layer of the
//!   spec; the unfolded projections and gains stay declared and are dropped by the lowering
//!   when no function reads them.
//!
//! fp16: a folded value `W[o, i] · g[i]` must fit fp16 like any weight. The `precision` pass's
//! range report covers the folded weights (their recipes are materialised), and `convert`
//! refuses a module whose weights overflow fp16, naming each (`…xa1…`: a folded weight).

use super::fused_qkv;
use super::spec::{DecoderSpec, LayerTensors};
use crate::ir::{Recipe, Weight};

/// The module weights of layer `index` with its norm gains folded in.
pub struct FoldedNames {
    /// The fused q/k/v projection times the input norm's gain.
    pub qkv: String,
    /// The gate and up projections times the MLP input norm's gain.
    pub gate: String,
    pub up: String,
}

/// The names of layer `index`'s folded weights.
pub fn names(index: usize) -> FoldedNames {
    FoldedNames {
        qkv: format!("layers.{index}.qkv_proj.folded"),
        gate: format!("layers.{index}.gate_proj.folded"),
        up: format!("layers.{index}.up_proj.folded"),
    }
}

fn find<'w>(weights: &'w [Weight], name: &str) -> &'w Weight {
    weights.iter().find(|w| w.name == name).expect("declared before folding")
}

/// `projection · diag(gain)` as a weight named `name`.
fn folded(weights: &[Weight], name: String, projection: &str, gain: &str) -> Weight {
    let (w, g) = (find(weights, projection), find(weights, gain));
    let recipe = Recipe::ScaleAlong { input: Box::new(w.recipe.clone()), scale: Box::new(g.recipe.clone()), axis: 1 };
    Weight { name, ty: w.ty.clone(), recipe }
}

/// Declares the folded weights of every layer (after [`fused_qkv::declare_fused`]).
pub fn declare_folded(weights: &mut Vec<Weight>, spec: &DecoderSpec) {
    for (index, l) in spec.layers.iter().enumerate() {
        let n = names(index);
        let qkv = fused_qkv::names(index, l.qkv_bias.is_some(), l.qk_norm.is_some()).weight;
        let LayerTensors { input_norm, mlp_norm, gate_proj, up_proj, .. } = l;
        let new = [
            folded(weights, n.qkv, &qkv, input_norm),
            folded(weights, n.gate, gate_proj, mlp_norm),
            folded(weights, n.up, up_proj, mlp_norm),
        ];
        weights.extend(new);
    }
}

/// True if `r` multiplies by a vector along an axis anywhere: a weight with a folded norm
/// gain (the only producer of `scale_along`).
pub fn is_folded(r: &Recipe) -> bool {
    matches!(r, Recipe::ScaleAlong { .. }) || r.inputs().into_iter().any(is_folded)
}
