//! Real Gemma-3-270M (the GGUF of the PyPI wheels) against transformers: the fp32 lowering,
//! fp16 overflow and the residual scale that prevents it, the fp16 packages on a short
//! prompt, and on a prompt longer than the sliding window (rotate functions).
//!
//! References (tests/fixtures/real/gemma3/): `reference.json` + `logits_{ids,values}.npy`
//! (make_real_references.py: 6-token prompt, 24 greedy tokens, 8 rows of selected logits)
//! and `long/` (make_gemma3_long_reference.py: 600-token prompt, 8 rows).

use std::path::Path;
use std::sync::Arc;

use anemllc::checkpoint::Checkpoint;
use anemllc::frontend::{LowerOptions, lower_checkpoint};
use anemllc::interp::Session;
use anemllc::ir::Module;
use libtest_mimic::Failed;
use ndarray::Array2;

use super::real_support::{RealModel, anemllc, argmax, read_json, rel_err, scratch};

/// transformers' prompt, greedy continuation and the selected logits of the first rows.
pub struct GemmaReference {
    pub prompt: Vec<u32>,
    pub generated: Vec<u32>,
    /// Row r: the logit ids stored for position P − 1 + r, and their values.
    pub ids: Array2<i32>,
    pub values: Array2<f32>,
}

impl GemmaReference {
    pub fn load(dir: &Path) -> GemmaReference {
        let json = read_json(&dir.join("reference.json"));
        let ids = |k: &str| json[k].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as u32).collect::<Vec<_>>();
        GemmaReference {
            prompt: ids("prompt"),
            generated: ids("generated"),
            ids: ndarray_npy::read_npy(dir.join("logits_ids.npy")).unwrap(),
            values: ndarray_npy::read_npy(dir.join("logits_values.npy")).unwrap(),
        }
    }

    pub fn short() -> GemmaReference {
        GemmaReference::load(&RealModel::Gemma3.fixtures())
    }

    pub fn long() -> GemmaReference {
        GemmaReference::load(&RealModel::Gemma3.fixtures().join("long"))
    }

    /// Max and mean relative error over the stored rows, and how many of all `rows` have
    /// transformers' greedy token as their argmax (first maximum).
    pub fn compare(&self, rows: &[Vec<f32>]) -> (f64, f64, usize) {
        let errs: Vec<f64> = self
            .ids
            .rows()
            .into_iter()
            .zip(self.values.rows())
            .zip(rows)
            .map(|((ids, want), got)| {
                let picked: Vec<f32> = ids.iter().map(|&i| got[i as usize]).collect();
                rel_err(&picked, want.as_slice().unwrap())
            })
            .collect();
        let top1 = rows.iter().zip(&self.generated).filter(|(r, g)| argmax(r) == **g as usize).count();
        (errs.iter().copied().fold(0.0, f64::max), errs.iter().sum::<f64>() / errs.len() as f64, top1)
    }
}

/// Teacher-forced logits at the decode positions P−1 … P+n−2 (the prompt goes in without
/// prompt logits; every generated token is fed back as transformers' greedy run chose it).
pub fn decode_rows(session: &mut Session, r: &GemmaReference) -> Result<Vec<Vec<f32>>, Failed> {
    session.start(&r.prompt)?;
    let mut token = *r.prompt.last().unwrap();
    let mut rows = Vec::with_capacity(r.generated.len());
    for (k, &next) in r.generated.iter().enumerate() {
        rows.push(session.decode_step(token, r.prompt.len() - 1 + k)?);
        token = next;
    }
    Ok(rows)
}

fn check(ok: bool, message: impl FnOnce() -> String) -> Result<(), Failed> {
    if ok { Ok(()) } else { Err(message().into()) }
}

fn session(module: Module) -> Result<Session, Failed> {
    let ckpt = Checkpoint::open(&RealModel::Gemma3.path())?;
    Ok(Session::new(module, Arc::new(ckpt))?)
}

fn lowered(context: usize, batch: usize) -> Result<Module, Failed> {
    Ok(lower_checkpoint(&RealModel::Gemma3.path(), &LowerOptions::new(context, batch))?)
}

/// The fp32 lowering is exact to transformers (≤ 1e-4) at every stored row, and every one of
/// the 24 rows has transformers' greedy token on top.
pub fn fp32_lowering() -> Result<(), Failed> {
    let r = GemmaReference::short();
    let rows = decode_rows(&mut session(lowered(64, 16)?)?, &r)?;
    let (worst, mean, top1) = r.compare(&rows);
    eprintln!(
        "gemma3 fp32 lowering vs transformers: max rel {worst:.2e}, mean {mean:.2e}, top-1 {top1}/{}",
        rows.len()
    );
    check(worst <= 1e-4, || format!("max relative error {worst:.3e} > 1e-4"))?;
    check(top1 == rows.len(), || format!("top-1 {top1}/{}", rows.len()))
}

/// Without residual scaling the fp16 module overflows on the real model (the residual stream
/// reaches ~10⁵ > 65504); with the scale `convert` chooses (α = 1/4) it matches transformers.
pub fn fp16_overflow_and_scale() -> Result<(), Failed> {
    let r = GemmaReference::short();
    let names = anemllc::opt::pass_names();
    let unscaled = anemllc::opt::optimize(&lowered(64, 16)?, &names, |_, _| {})?.0;
    let rows = decode_rows(&mut session(unscaled)?, &r)?;
    let non_finite = rows.iter().flatten().filter(|v| !v.is_finite()).count();
    let (worst, _, top1) = r.compare(&rows);
    eprintln!("gemma3 fp16 unscaled: {non_finite} non-finite logits, max rel {worst:.3}, top-1 {top1}/{}", rows.len());
    check(non_finite > 0 || top1 + 4 < rows.len(), || "the unscaled fp16 module did not fail".into())?;

    let peak = anemllc::calib::peaks::residual_peak(
        &RealModel::Gemma3.path(),
        &anemllc::calib::CalibInput::Builtin,
        anemllc::convert::RESIDUAL_PEAK_TOKENS,
    )?;
    let alpha = anemllc::frontend::residual_scale::choose_alpha(peak.max_abs);
    eprintln!("gemma3 residual peak {:.0} over {} tokens → α = {alpha}", peak.max_abs, peak.tokens);
    check(peak.max_abs > 65504.0 && alpha == 0.25, || format!("peak {} α {alpha}", peak.max_abs))?;
    let mut scaled = lowered(64, 16)?;
    anemllc::frontend::residual_scale::scale_residual(&mut scaled, alpha)?;
    let fp32_scaled = decode_rows(&mut session(scaled.clone())?, &r)?;
    let (worst32, _, _) = r.compare(&fp32_scaled);
    check(worst32 <= 1e-4, || format!("the residual scale changes the fp32 logits by {worst32:.3e}"))?;
    let fp16 = anemllc::opt::optimize(&scaled, &names, |_, _| {})?.0;
    let rows = decode_rows(&mut session(fp16)?, &r)?;
    let (worst, mean, top1) = r.compare(&rows);
    eprintln!("gemma3 fp16 scaled: max rel {worst:.4}, mean {mean:.4}, top-1 {top1}/{}", rows.len());
    check(rows.iter().flatten().all(|v| v.is_finite()), || "non-finite logits with the scale".into())?;
    check(worst <= FP16_MAX && mean <= FP16_MEAN, || format!("max {worst:.4} / mean {mean:.4}"))?;
    check(top1 + TOP1_SLACK >= rows.len(), || format!("top-1 {top1}/{}", rows.len()))
}

/// Bounds for fp16 against transformers fp32: measured max 0.0020 / mean 0.0014 on the short
/// prompt, 0.0017 / 0.0012 on the long one (docs/real-models.md), with margin.
const FP16_MAX: f64 = 0.004;
const FP16_MEAN: f64 = 0.003;
/// Rows 11 and 15 of the short reference have top-2 gaps of 0.014 and 0.012 logits, within
/// fp16's rounding of logits near 20; one of them flips (measured 23/24).
const TOP1_SLACK: usize = 1;

fn convert(name: &str, context: usize, batch: usize) -> Result<std::path::PathBuf, Failed> {
    let out = scratch(name).join("out");
    let path = RealModel::Gemma3.path();
    let (c, b) = (context.to_string(), batch.to_string());
    let (code, _, err) = anemllc(&[
        "convert",
        path.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--context",
        &c,
        "--batch",
        &b,
        "--lut-ffn",
        "none",
        "--lut-lmhead",
        "none",
    ]);
    check(code == 0, || format!("convert failed ({code}): {err}"))?;
    check(err.contains("residual scale α = 0.25"), || format!("convert did not report the residual scale:\n{err}"))?;
    Ok(out)
}

fn package_session(out: &Path) -> Result<Session, Failed> {
    let loaded = anemllc::package::load_output(out)?;
    Ok(Session::new(loaded.module, loaded.source)?)
}

/// fp16 packages (ANEMLL 0.3.6 layout, residual scale chosen by convert) on the short prompt.
pub fn fp16_packages() -> Result<(), Failed> {
    let out = convert("gemma3_fp16", 64, 16)?;
    let meta = std::fs::read_to_string(out.join("meta.yaml"))?;
    for line in ["    split_lm_head: 16\n", "    sliding_window: 64\n", "    prefill_dynamic_slice: true\n"] {
        check(meta.contains(line), || format!("meta.yaml lacks {line:?}:\n{meta}"))?;
    }
    let r = GemmaReference::short();
    let rows = decode_rows(&mut package_session(&out)?, &r)?;
    let (worst, mean, top1) = r.compare(&rows);
    eprintln!("gemma3 fp16 packages (short prompt): max rel {worst:.4}, mean {mean:.4}, top-1 {top1}/{}", rows.len());
    check(worst <= FP16_MAX && mean <= FP16_MEAN, || format!("max {worst:.4} / mean {mean:.4}"))?;
    check(top1 + TOP1_SLACK >= rows.len(), || format!("top-1 {top1}/{}", rows.len()))
}

/// fp16 packages at context 1024 on a 600-token prompt: the sliding-window caches rotate
/// (prefill_rotate from position 512, infer_rotate after), and the error stays that of the
/// short prompt (ANEMLL 0.3.6's own build: 0.0039 → 0.18 once the window rotates).
pub fn fp16_long_prompt() -> Result<(), Failed> {
    let out = convert("gemma3_long", 1024, 64)?;
    let meta = std::fs::read_to_string(out.join("meta.yaml"))?;
    check(meta.contains("    sliding_window: 512\n"), || format!("meta.yaml:\n{meta}"))?;
    let r = GemmaReference::long();
    check(r.prompt.len() > 512, || "the long prompt does not pass the window".into())?;
    let mut session = package_session(&out)?;
    check(session.plan().rotate_from == Some(512), || format!("rotation from {:?}", session.plan().rotate_from))?;
    let rows = decode_rows(&mut session, &r)?;
    let (worst, mean, top1) = r.compare(&rows);
    eprintln!(
        "gemma3 fp16 packages ({}-token prompt, context 1024): max rel {worst:.4}, mean {mean:.4}, top-1 {top1}/{}",
        r.prompt.len(),
        rows.len()
    );
    check(worst <= FP16_MAX && mean <= FP16_MEAN, || format!("max {worst:.4} / mean {mean:.4}"))?;
    check(top1 == rows.len(), || format!("top-1 {top1}/{}", rows.len()))
}
