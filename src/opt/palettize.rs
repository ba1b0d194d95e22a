//! The `palettize` pass: LUT palettization of the weights ([`crate::quant`]) as
//! [`OptOptions::lut`] says; off (module unchanged) by default.
//!
//! It is a module transform ([`PassKind::Transform`](super::PassKind::Transform)), not an
//! e-graph pass: which weights become `lut_to_dense` is a decision by part, size and use
//! ([`plan_module`]), not an equality to saturate, and the rewrite ([`palettize_module`]) only
//! swaps weight nodes, keeping every value name. It runs last in the default pipeline, so the
//! lookup tables are computed from the fp16, conv-shaped weights the ANE reads, as
//! coremltools does after ANEMLL's conversion. The module attributes `lut_ffn`,
//! `lut_lm_head`, `lut_embed` and `lut_group_size` record what was done.
//!
//! Report: per part (ffn, lm_head, embed) the distinct weights palettized, with bits and
//! elements; with [`OptOptions::measure_lut_error`], each weight's relative reconstruction
//! error ‖W − Ŵ‖/‖W‖ (W: the weight's values as the module declares them; Ŵ: the indices looked
//! up in the tables, from the same [`palettize_tensor`] the `lut_*` recipes use) and the
//! k-means time per part.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::ir::Module;
use crate::quant::palettize::relative_error;
use crate::quant::transform::{palettize_module_tuned, plan_module_tuned};
use crate::quant::tuning::{Tuning, tune};
use crate::quant::{LutConfig, LutDecision, Part, function_part, palettize_tensor_weighted, plan_module};

use super::OptOptions;
use super::passes::Transformed;
use super::report::{CalibratedChoice, LutPartReport, LutTensorReport, PalettizeReport, PassRun};
use super::weight_values::weight_cache;

/// The pass: see the module docs.
pub fn run(m: &Module, opts: &OptOptions) -> Result<Transformed, String> {
    let cfg = &opts.lut;
    let report = |off: Option<String>, parts: Vec<LutPartReport>| {
        PassRun::Palettize(PalettizeReport { config: cfg.clone(), off, parts })
    };
    if cfg.is_off() {
        let why = "no part has LUT bits (`--lut` not given, or every part `none`)".to_string();
        return Ok(Transformed { module: m.clone(), notes: Vec::new(), run: report(Some(why), Vec::new()) });
    }
    let mut notes = Vec::new();
    let tuning = if opts.calibration.is_some() || cfg.auto.iter().any(Option::is_some) {
        let first = plan_module(m, cfg).map_err(|e| e.to_string())?;
        let cache = weight_cache(m)?;
        let load = |name: &str| -> Result<(Vec<f32>, Vec<usize>), String> {
            let t = cache.get_uncached(name).map_err(|e| format!("@{name}: {e}"))?;
            Ok((t.to_f32_vec(), t.shape().to_vec()))
        };
        let t = tune(m, &first, cfg, opts.calibration.as_deref(), &load)?;
        if let Some(c) = &opts.calibration {
            let weighted = t.weights.values().filter(|w| w.importance.is_some()).count();
            let compensated = t.weights.values().filter(|w| w.compensation.is_some()).count();
            notes.push(format!(
                "calibrated on {} of {} tokens ({}): {} of {} weights use the sensitivity-weighted table \
                 ({} of them with error-compensating assignment), scored on {} sampled rows each",
                c.tokens,
                c.available_tokens,
                c.source,
                weighted,
                t.weights.len(),
                compensated,
                t.samples_used
            ));
        }
        Some(t)
    } else {
        None
    };
    let plan = plan_module_tuned(m, cfg, tuning.as_ref()).map_err(|e| e.to_string())?;
    let module = palettize_module_tuned(m, cfg, tuning.as_ref()).map_err(|e| e.to_string())?;
    let mut parts = part_reports(m, &module, &plan, cfg, tuning.as_ref());
    if plan.is_empty() {
        notes.push(format!(
            "no eligible weight: a float weight of rank ≥ 2 with ≥ {} elements and axis 0 a multiple of {}, \
             used by a linear/conv (or an embed gather) of a palettized part; module unchanged",
            cfg.min_elements, cfg.group_size
        ));
    } else if !opts.measure_lut_error {
        notes.push("reconstruction error not measured (not requested)".into());
    } else if let Err(why) = measure(m, &mut parts, cfg.group_size, tuning.as_ref()) {
        notes.push(format!("reconstruction error not measured: {why}"));
        for t in parts.iter_mut().flat_map(|p| p.tensors.iter_mut()) {
            t.rel_error = None;
        }
        for p in &mut parts {
            p.time = None;
        }
    }
    Ok(Transformed { module, notes, run: report(None, parts) })
}

/// The distinct weights of `plan` per part, in first-use order.
fn part_reports(
    before: &Module,
    after: &Module,
    plan: &[LutDecision],
    cfg: &LutConfig,
    tuning: Option<&Tuning>,
) -> Vec<LutPartReport> {
    Part::ALL
        .into_iter()
        .map(|part| {
            let mut tensors: Vec<LutTensorReport> = Vec::new();
            for d in plan.iter().filter(|d| function_part(&d.function) == Some(part)) {
                if tensors.iter().any(|t| t.indices == d.indices) {
                    continue;
                }
                let (Some(w), Some(table)) = (before.weight(&d.weight), after.weight(&d.table)) else { continue };
                tensors.push(LutTensorReport {
                    weight: d.weight.clone(),
                    ty: w.ty.clone(),
                    indices: d.indices.clone(),
                    table: d.table.clone(),
                    table_ty: table.ty.clone(),
                    rel_error: None,
                    bits: d.bits,
                    calibrated: tuning
                        .and_then(|t| t.weights.get(&d.weight))
                        .filter(|w| w.sample_error.is_some() || w.importance.is_some())
                        .map(|w| CalibratedChoice {
                            weighted: w.importance.is_some(),
                            sample_error: w.sample_error,
                            other_error: w.other_error,
                        }),
                });
            }
            LutPartReport { part: part.name(), bits: cfg.name_bits(part), tensors, time: None }
        })
        .collect()
}

/// Palettizes every reported weight of `m` (read from its checkpoint) and records its
/// reconstruction error and, per part, the k-means time. A weight shared by two parts at
/// the same width is palettized once.
fn measure(m: &Module, parts: &mut [LutPartReport], group_size: usize, tuning: Option<&Tuning>) -> Result<(), String> {
    let cache = weight_cache(m)?;
    let mut done: HashMap<String, f64> = HashMap::new();
    for p in parts.iter_mut() {
        if p.bits.is_none() {
            continue;
        }
        let mut time = Duration::ZERO;
        for t in &mut p.tensors {
            if let Some(&e) = done.get(&t.indices) {
                t.rel_error = Some(e);
                continue;
            }
            let dense = cache.get_uncached(&t.weight).map_err(|e| format!("@{}: {e}", t.weight))?;
            let values = dense.to_f32_vec();
            let start = Instant::now();
            let importance = tuning.and_then(|tu| tu.weights.get(&t.weight)).and_then(|w| w.importance.as_deref());
            let lut = palettize_tensor_weighted(&values, dense.shape(), t.bits, group_size, importance)
                .map_err(|e| format!("@{}: {e}", t.weight))?;
            time += start.elapsed();
            let e = relative_error(&values, &lut.dense());
            done.insert(t.indices.clone(), e);
            t.rel_error = Some(e);
        }
        p.time = Some(time);
    }
    Ok(())
}
