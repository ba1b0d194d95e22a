//! [`tune`]: per-weight palettization decisions from calibration — sensitivity weights, the
//! choice between the weighted and the plain table, and mixed bits under a budget.
//!
//! For each weight the palettize pass is about to replace:
//!
//! 1. **Importance.** With a calibration ([`crate::calib`]) whose statistics match the
//!    weight (the first checkpoint tensor of its recipe, axis 1 = the matmul's input
//!    channels, a recipe that never moves axis 1), the k-means weights are
//!    [`normalized_importance`] of the channels' second moments.
//! 2. **Weighted or plain.** Both tables are built and scored on the calibration's sampled
//!    input rows by the relative output error `Σ‖(W − Ŵ)x‖² / Σ‖Wx‖²`; the lower one wins
//!    (ties go to the weighted table). Without samples the weighted table is kept.
//! 3. **Mixed bits** (`auto:B` parts). For every weight and every width in [`AUTO_BITS`],
//!    the error `e(w, b)` is the importance-weighted relative error `Σ h_j Δ_ij² / Σ h_j W_ij²`
//!    plus the plain one `‖Δ‖² / ‖W‖²` (only the plain one when uncalibrated). All weights start at the narrowest width; the upgrade with
//!    the largest error reduction per extra index bit is taken while the part's average
//!    stays within `B` bits per weight (table bytes excluded, as in coremltools' `nbits`).
//!
//! Everything is deterministic: weights are visited in name order, ties are broken by name,
//! and the k-means is deterministic.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use rayon::prelude::*;

use super::config::LutConfig;
use super::gptq::{Compensator, palettize_compensated};
use super::palettize::{Palettized, palettize_tensor_weighted};
use super::transform::{LutDecision, Part, function_part};
use super::weighted::normalized_importance;
use crate::calib::Calibration;
use crate::ir::{Module, Recipe};

/// Widths an `auto:B` part chooses from.
pub const AUTO_BITS: [u32; 5] = [2, 3, 4, 6, 8];

/// The decision for one weight.
#[derive(Clone, Debug, PartialEq)]
pub struct WeightTuning {
    pub bits: u32,
    /// The k-means weights, when the weighted table was chosen.
    pub importance: Option<Vec<f64>>,
    /// The digest of the registered compensated result (`crate::quant::compensated`), when
    /// error-compensating assignment was chosen.
    pub compensation: Option<String>,
    /// Relative output error on the calibration samples of the chosen table, and of the
    /// other candidate (weighted when plain was chosen and vice versa); `None` without samples.
    pub sample_error: Option<f64>,
    pub other_error: Option<f64>,
}

/// Decisions by weight name (`@w` of the module before palettization).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Tuning {
    pub weights: BTreeMap<String, WeightTuning>,
    /// Calibration rows used per weight to score tables.
    pub samples_used: usize,
}

/// Reads a weight's values (row-major) and shape.
pub type LoadWeight<'a> = dyn Fn(&str) -> Result<(Vec<f32>, Vec<usize>), String> + Sync + 'a;

/// True if `r` keeps axis 1 of its checkpoint tensor as its own axis 1: casts, scales (by
/// a constant or, `scale_along`, by a vector: a folded norm gain), reshapes that keep the
/// first two dimensions, slices and concatenations along axis 0.
fn keeps_input_axis(r: &Recipe) -> bool {
    match r {
        Recipe::Checkpoint { .. } => true,
        Recipe::Cast { input, .. }
        | Recipe::Scale { input, .. }
        | Recipe::Offset { input, .. }
        | Recipe::ScaleAlong { input, .. } => keeps_input_axis(input),
        Recipe::Reshape { input, shape } => {
            let inner = input.infer_type().map(|t| t.shape).unwrap_or_default();
            inner.len() >= 2 && shape.len() >= 2 && shape[..2] == inner[..2] && keeps_input_axis(input)
        }
        Recipe::Slice { input, axis, .. } => *axis == 0 && keeps_input_axis(input),
        Recipe::Concat { inputs, axis } => *axis == 0 && inputs.iter().all(keeps_input_axis),
        _ => false,
    }
}

/// Importance, sampled rows, second moments and their index in the calibration.
type Calibrated<'c> = (Vec<f64>, &'c [Vec<f32>], Option<Arc<Vec<f64>>>, Option<usize>);

/// The calibration statistics that apply to `weight` of `module`: (importance, samples,
/// second moments).
fn calibrated<'c>(module: &Module, weight: &str, calib: &'c Calibration) -> Option<Calibrated<'c>> {
    let w = module.weight(weight)?;
    if !keeps_input_axis(&w.recipe) {
        return None;
    }
    let mut leaves = Vec::new();
    w.recipe.checkpoint_tensors(&mut leaves);
    let stats = calib.get(leaves.first()?)?;
    let width = *w.ty.shape.get(1)?;
    let moments = stats.moments();
    if moments.len() != width {
        return None;
    }
    let gram = stats.gram.and_then(|g| calib.grams.get(g)).filter(|g| g.dim == width).map(|g| Arc::new(g.moments()));
    Some((normalized_importance(&moments)?, &stats.samples, gram, stats.gram))
}

/// `Σ‖(W − Ŵ)x‖² / Σ‖Wx‖²` over `samples` (rows of the input width `d1`), with `W` of
/// shape `[d0, d1, 1…]` row-major.
fn sample_error(values: &[f32], approx: &[f32], d1: usize, samples: &[Vec<f32>]) -> f64 {
    let rows = values.len() / d1;
    let (num, den) = (0..rows)
        .into_par_iter()
        .map(|r| {
            let (w, a) = (&values[r * d1..(r + 1) * d1], &approx[r * d1..(r + 1) * d1]);
            let delta: Vec<f32> = w.iter().zip(a).map(|(x, y)| x - y).collect();
            let mut acc = (0.0f64, 0.0f64);
            for x in samples {
                let (y, dy) = (dot_f32(w, x), dot_f32(&delta, x));
                acc.0 += f64::from(dy) * f64::from(dy);
                acc.1 += f64::from(y) * f64::from(y);
            }
            acc
        })
        .reduce(|| (0.0, 0.0), |a, b| (a.0 + b.0, a.1 + b.1));
    if num == 0.0 { 0.0 } else { num / den.max(f64::MIN_POSITIVE) }
}

/// `Σ a_i b_i` in f32 with eight independent partial sums (vectorizable, fixed order).
fn dot_f32(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ca.remainder().iter().zip(cb.remainder()).map(|(x, y)| x * y).sum();
    for (x, y) in ca.zip(cb) {
        for l in 0..8 {
            acc[l] += x[l] * y[l];
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// `Σ h_j Δ_ij² / Σ h_j W_ij²` (`h ≡ 1` without importance).
fn weighted_error(values: &[f32], p: &Palettized, importance: Option<&[f64]>, d1: usize, inner: usize) -> f64 {
    let dense = p.dense();
    let (mut num, mut den) = (0.0f64, 0.0f64);
    for (e, (&v, &a)) in values.iter().zip(&dense).enumerate() {
        let h = importance.map_or(1.0, |imp| imp[(e / inner) % d1]);
        num += h * (f64::from(v) - f64::from(a)).powi(2);
        den += h * f64::from(v).powi(2);
    }
    if num == 0.0 { 0.0 } else { num / den.max(f64::MIN_POSITIVE) }
}

/// One weight to decide.
struct Candidate {
    name: String,
    part: Part,
    numel: usize,
    importance: Option<Vec<f64>>,
    samples: Vec<Vec<f32>>,
    gram: Option<Arc<Vec<f64>>>,
    /// Index of the gram in the calibration (shared by matmuls reading the same input).
    gram_index: Option<usize>,
}

/// Computes the tuning for the weights of `plan` (see the module docs). Weights of parts
/// with fixed bits get an entry only when calibration applies to them.
pub fn tune(
    module: &Module,
    plan: &[LutDecision],
    cfg: &LutConfig,
    calib: Option<&Calibration>,
    load: &LoadWeight<'_>,
) -> Result<Tuning, String> {
    let mut seen = BTreeSet::new();
    let mut candidates = Vec::new();
    for d in plan {
        let Some(part) = function_part(&d.function) else { continue };
        if !seen.insert(d.weight.clone()) {
            continue;
        }
        let stats = calib.and_then(|c| calibrated(module, &d.weight, c));
        let auto = cfg.budget(part.index()).is_some();
        if stats.is_none() && !auto {
            continue;
        }
        let numel = module.weight(&d.weight).map_or(0, |w| w.ty.numel());
        let (importance, samples, gram, gram_index) = match stats {
            Some((imp, s, g, gi)) => (Some(imp), s.to_vec(), g, gi),
            None => (None, Vec::new(), None, None),
        };
        candidates.push(Candidate { name: d.weight.clone(), part, numel, importance, samples, gram, gram_index });
    }
    candidates.sort_by(|a, b| a.name.cmp(&b.name));
    // Scoring cost is numel × samples per table: keep it near 3·10⁹ multiply-adds.
    let total: usize = candidates.iter().map(|c| c.numel).sum();
    let samples_used = (3.2e9 / total.max(1) as f64).clamp(4.0, crate::calib::recorder::MAX_SAMPLES as f64) as usize;

    // Mixed bits first: the width of every weight of an auto part.
    let mut bits: BTreeMap<String, u32> = BTreeMap::new();
    for part in Part::ALL {
        let Some(budget) = cfg.budget(part.index()) else { continue };
        let members: Vec<&Candidate> = candidates.iter().filter(|c| c.part == part).collect();
        let mut curves = Vec::with_capacity(members.len());
        for c in &members {
            let (values, shape) = load(&c.name)?;
            let (d1, inner) = (shape.get(1).copied().unwrap_or(1), shape.iter().skip(2).product::<usize>().max(1));
            let mut curve = Vec::with_capacity(AUTO_BITS.len());
            for b in AUTO_BITS {
                let p = palettize_tensor_weighted(&values, &shape, b, cfg.group_size, c.importance.as_deref())
                    .map_err(|e| format!("@{}: {e}", c.name))?;
                // Both the weighted and the plain relative error: the weighted one alone calls a
                // tensor fine when one huge input channel dominates `Σ h W²` (SmolLM2's
                // massive-activation down projections), though its other weights still matter.
                let weighted = weighted_error(&values, &p, c.importance.as_deref(), d1, inner);
                let plain = if c.importance.is_some() { weighted_error(&values, &p, None, d1, inner) } else { 0.0 };
                curve.push(weighted + plain);
            }
            curves.push(curve);
        }
        let chosen = allocate(&members.iter().map(|c| c.numel).collect::<Vec<_>>(), &curves, budget);
        for (c, level) in members.iter().zip(chosen) {
            bits.insert(c.name.clone(), AUTO_BITS[level]);
        }
    }

    let mut weights = BTreeMap::new();
    // One inverse factor per distinct input (q/k/v share one), computed in parallel.
    let mut inputs: BTreeMap<usize, (Arc<Vec<f64>>, usize)> = BTreeMap::new();
    for c in &candidates {
        if let (Some(g), Some(gi), Some(_)) = (&c.gram, c.gram_index, &c.importance) {
            let width = (g.len() as f64).sqrt() as usize;
            inputs.entry(gi).or_insert_with(|| (Arc::clone(g), width));
        }
    }
    let compensators: BTreeMap<usize, Result<Compensator, String>> =
        inputs.into_par_iter().map(|(gi, (g, width))| (gi, Compensator::new(&g, width))).collect();
    for c in &candidates {
        let b = match bits.get(&c.name) {
            Some(&b) => b,
            None => cfg.bits(c.part).ok_or_else(|| format!("@{}: part {} has no bits", c.name, c.part.name()))?,
        };
        let plain_tuning = |importance| WeightTuning {
            bits: b,
            importance,
            compensation: None,
            sample_error: None,
            other_error: None,
        };
        let Some(imp) = c.importance.clone() else {
            weights.insert(c.name.clone(), plain_tuning(None));
            continue;
        };
        let samples = &c.samples[..c.samples.len().min(samples_used)];
        if samples.is_empty() {
            weights.insert(c.name.clone(), plain_tuning(Some(imp)));
            continue;
        }
        let (full_values, full_shape) = load(&c.name)?;
        // Without compensation (big models) the choice is scored on a spread subset of the
        // row groups: groups are palettized independently, so the subset's tables are
        // exactly those of the full tensor, at a fraction of the cost.
        let subset = if c.gram.is_none() { group_subset(&full_values, &full_shape, cfg.group_size) } else { None };
        let (values, shape): (&[f32], &[usize]) = match &subset {
            Some((v, s)) => (v, s),
            None => (&full_values, &full_shape),
        };
        let d1 = shape.get(1).copied().unwrap_or(1);
        let fail = |e: super::QuantError| format!("@{}: {e}", c.name);
        let score = |p: &Palettized| sample_error(values, &p.dense(), d1, samples);
        // Candidates: (error, importance, compensated result).
        let mut options: Vec<(f64, Option<Vec<f64>>, Option<Palettized>)> = Vec::with_capacity(3);
        let weighted = palettize_tensor_weighted(values, shape, b, cfg.group_size, Some(&imp)).map_err(fail)?;
        options.push((score(&weighted), Some(imp.clone()), None));
        let plain = palettize_tensor_weighted(values, shape, b, cfg.group_size, None).map_err(fail)?;
        options.push((score(&plain), None, None));
        if let (Some(gram), Some(gi)) = (&c.gram, c.gram_index) {
            let compensator = match compensators.get(&gi) {
                Some(Ok(x)) => x,
                Some(Err(e)) => return Err(format!("@{}: {e}", c.name)),
                None => return Err(format!("@{}: no compensator for its input", c.name)),
            };
            let _ = gram;
            let comp =
                palettize_compensated(values, shape, b, cfg.group_size, Some(&imp), compensator).map_err(fail)?;
            options.push((score(&comp), Some(imp.clone()), Some(comp)));
        }
        // Lowest error wins; on ties the earlier option (weighted, then plain).
        let best = (0..options.len()).fold(0, |a, i| if options[i].0 < options[a].0 { i } else { a });
        let other =
            options.iter().enumerate().filter(|(i, _)| *i != best).map(|(_, o)| o.0).fold(f64::INFINITY, f64::min);
        let (error, importance, comp) = options.swap_remove(best);
        let compensation = comp.map(|p| {
            let recipe = &module.weight(&c.name).expect("planned weight").recipe;
            let gram_bytes: Vec<u8> = c.gram.iter().flat_map(|g| g.iter()).flat_map(|v| v.to_le_bytes()).collect();
            let imp_bytes: Vec<u8> = imp.iter().flat_map(|v| v.to_le_bytes()).collect();
            let solver = format!("gptq damping {}", super::gptq::DAMPING);
            let digest = super::compensated::digest(&[&gram_bytes, &imp_bytes, solver.as_bytes()]);
            super::compensated::register(&digest, recipe, b, cfg.group_size, Arc::new(p));
            digest
        });
        weights.insert(
            c.name.clone(),
            WeightTuning { bits: b, importance, compensation, sample_error: Some(error), other_error: Some(other) },
        );
    }
    Ok(Tuning { weights, samples_used })
}

/// Row groups scored per tensor when compensation is off.
const SCORED_GROUPS: usize = 32;

/// Every k-th group of `group_size` rows so that about [`SCORED_GROUPS`] remain, or `None`
/// when the tensor has no more groups than that.
fn group_subset(values: &[f32], shape: &[usize], group_size: usize) -> Option<(Vec<f32>, Vec<usize>)> {
    let groups = shape.first()? / group_size.max(1);
    if groups <= SCORED_GROUPS {
        return None;
    }
    let step = groups.div_ceil(SCORED_GROUPS);
    let row = values.len() / shape[0];
    let mut out = Vec::new();
    let mut rows = 0;
    for g in (0..groups).step_by(step) {
        out.extend_from_slice(&values[g * group_size * row..(g + 1) * group_size * row]);
        rows += group_size;
    }
    let mut s = shape.to_vec();
    s[0] = rows;
    Some((out, s))
}

/// Greedy allocation of [`AUTO_BITS`] levels: every item starts at level 0; repeatedly the
/// affordable upgrade with the largest error reduction per added bit (ties: lower index) is
/// taken while `Σ numel · bits ≤ budget · Σ numel`. Returns each item's level.
pub fn allocate(numel: &[usize], curves: &[Vec<f64>], budget: f64) -> Vec<usize> {
    let mut level = vec![0usize; numel.len()];
    let total: f64 = numel.iter().map(|&n| n as f64).sum();
    let cap = budget * total;
    let mut used: f64 = numel.iter().map(|&n| n as f64 * f64::from(AUTO_BITS[0])).sum();
    loop {
        let mut best: Option<(f64, usize)> = None;
        for (i, (&n, curve)) in numel.iter().zip(curves).enumerate() {
            let l = level[i];
            if l + 1 >= AUTO_BITS.len() {
                continue;
            }
            let cost = n as f64 * f64::from(AUTO_BITS[l + 1] - AUTO_BITS[l]);
            if used + cost > cap + 1e-9 * total {
                continue;
            }
            let gain = (curve[l] - curve[l + 1]) / cost.max(1.0);
            if best.is_none_or(|(g, _)| gain > g) {
                best = Some((gain, i));
            }
        }
        let Some((_, i)) = best else { break };
        used += numel[i] as f64 * f64::from(AUTO_BITS[level[i] + 1] - AUTO_BITS[level[i]]);
        level[i] += 1;
    }
    level
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allocation_spends_bits_where_they_buy_most_and_keeps_the_budget() {
        // Item 0 is sensitive, item 1 barely cares; equal sizes, budget 4 bits on average.
        let curves = vec![vec![1.0, 0.5, 0.25, 0.06, 0.015], vec![0.01, 0.005, 0.0025, 0.0006, 0.00015]];
        let levels = allocate(&[100, 100], &curves, 4.0);
        let bits: Vec<u32> = levels.iter().map(|&l| AUTO_BITS[l]).collect();
        assert_eq!(bits, vec![6, 2]);
        let avg = (bits[0] + bits[1]) as f64 / 2.0;
        assert!(avg <= 4.0);
        // A generous budget lifts everything to 8 bits; the minimum keeps 2.
        assert_eq!(allocate(&[10, 30], &curves, 8.0), vec![4, 4]);
        assert_eq!(allocate(&[10, 30], &curves, 2.0), vec![0, 0]);
    }
}
