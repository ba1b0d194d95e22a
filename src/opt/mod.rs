//! `anemllc opt`: e-graph passes that rewrite a lowered module into ANE-friendly form
//! (design in `docs/opt.md`, cost model in `docs/cost-model.md`, rule policy in
//! `passes/README.md`).
//!
//! An e-graph pass runs, per function: IR → e-graph ([`bridge`]), equality saturation with
//! the pass's rules ([`rules`], under explicit [`Limits`]), extraction with the ANE cost
//! model ([`extract`], [`cost`]), rebuild ([`rebuild`]); then, per module, weight folding
//! ([`fold`]) and the verifier. The last pass, `palettize` ([`palettize`]), is a module
//! transform instead ([`PassKind::Transform`]): LUT palettization as the [`OptOptions`] say,
//! off by default. [`check`] is the ANE check run after `opt`.
//!
//! Invariants: after every pass the module verifies (`ir::verify_module`); a pass never
//! makes a function's cost worse; results are deterministic.

pub mod analysis;
pub mod attrs;
pub mod bridge;
pub mod check;
pub mod cost;
pub mod extract;
pub mod fold;
pub mod fp16_range;
pub mod fp16_range_bits;
pub mod kv_state;
pub mod lang;
pub mod palettize;
pub mod passes;
pub mod precision;
pub mod rebuild;
pub mod report;
pub mod rewrite;
pub mod rules;
pub mod runner;
pub mod testing;
pub mod weight_values;

use std::time::Duration;

use crate::ir::{Module, VerifyError, verify_module};
use crate::quant::LutConfig;

pub use check::{CheckError, check_module};
pub use passes::{PASSES, Pass, PassKind};
pub use report::{
    FunctionReport, Limits, LutPartReport, LutTensorReport, OptReport, PalettizeReport, PassReport, PassRun,
};
pub use rules::{LoadError, RuleSet};

/// What configures the passes beyond their rules.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct OptOptions {
    /// What the `palettize` pass palettizes (`--lut`, `--lut-group-size`). The default,
    /// nothing, leaves the module unchanged.
    pub lut: LutConfig,
    /// Whether `palettize` measures every palettized weight's reconstruction error for the
    /// report (`opt --report`). This runs the k-means now, once more than materialising the
    /// weights will, and needs the checkpoint named by the module's `checkpoint` attribute;
    /// without it the report says the error was not measured.
    pub measure_lut_error: bool,
    /// Activation statistics (`convert --calibrate`): the palettize pass weights its k-means
    /// by them and picks the better table per weight (`crate::quant::tuning`).
    pub calibration: Option<std::sync::Arc<crate::calib::Calibration>>,
}

/// Why `opt` failed.
#[derive(Debug, thiserror::Error)]
pub enum OptError {
    #[error("unknown pass `{0}` (passes: {passes})", passes = pass_names().join(", "))]
    UnknownPass(String),
    #[error("rule file: {0}")]
    Rules(#[from] LoadError),
    #[error("pass `{pass}`: {message}")]
    Pass { pass: String, message: String },
    #[error("pass `{pass}` produced an invalid module (a bug): {error}")]
    Verify { pass: String, error: VerifyError },
}

/// The names of every pass, in default order.
pub fn pass_names() -> Vec<&'static str> {
    PASSES.iter().map(|p| p.name).collect()
}

/// Loads every rule file of a pass. The first file's `limits` line sets the limits. A module
/// transform has no rule files: no sets, default limits.
pub fn load_pass_rules(pass: &Pass) -> Result<(Vec<RuleSet>, Limits), LoadError> {
    let sets: Vec<RuleSet> =
        pass.rule_files().iter().map(|f| rules::load(f.path, f.source)).collect::<Result<_, _>>()?;
    let mut limits = Limits::default();
    if let Some(l) = sets.first().and_then(|s| s.limits) {
        limits.iterations = l.iterations.unwrap_or(limits.iterations);
        limits.nodes = l.nodes.unwrap_or(limits.nodes);
        limits.time = l.time_secs.map_or(limits.time, Duration::from_secs_f64);
    }
    Ok((sets, limits))
}

/// Runs one pass over a module with default options (palettize off), optionally restricted
/// to the rules named in `only`.
pub fn run_pass_with(m: &Module, pass: &Pass, only: Option<&[&str]>) -> Result<(Module, PassReport), OptError> {
    run_pass_with_options(m, pass, &OptOptions::default(), only)
}

/// Runs one pass over a module with `opts`. `only` restricts an e-graph pass to the rules it
/// names; a module transform has no rules, so `only` must be `None` for it. The report
/// carries the pass's wall time.
pub fn run_pass_with_options(
    m: &Module,
    pass: &Pass,
    opts: &OptOptions,
    only: Option<&[&str]>,
) -> Result<(Module, PassReport), OptError> {
    let start = std::time::Instant::now();
    let (module, mut report) = run_pass_untimed(m, pass, opts, only)?;
    report.seconds = start.elapsed().as_secs_f64();
    Ok((module, report))
}

/// [`run_pass_with_options`] without the clock.
fn run_pass_untimed(
    m: &Module,
    pass: &Pass,
    opts: &OptOptions,
    only: Option<&[&str]>,
) -> Result<(Module, PassReport), OptError> {
    let err = |message: String| OptError::Pass { pass: pass.name.to_string(), message };
    let verify = |m: &Module| verify_module(m).map_err(|error| OptError::Verify { pass: pass.name.to_string(), error });
    let prepare = match pass.kind {
        PassKind::EGraph { prepare, .. } => prepare,
        PassKind::Transform(transform) => {
            if only.is_some() {
                return Err(err("a module transform has no rules to select".into()));
            }
            let out = transform(m, opts).map_err(err)?;
            verify(&out.module)?;
            let report = PassReport { pass: pass.name.to_string(), notes: out.notes, run: out.run, seconds: 0.0 };
            return Ok((out.module, report));
        }
    };
    let (sets, limits) = load_pass_rules(pass)?;
    let rewrites: Vec<_> = sets
        .iter()
        .flat_map(|s| s.rules.iter())
        .filter(|r| only.is_none_or(|names| names.contains(&r.name.as_str())))
        .map(|r| &r.rewrite)
        .collect();
    run_egraph(m, pass.name, prepare, &rewrites, limits)
}

/// Runs the rules of `sets` over every function of `m` as an e-graph pass called `name`
/// (no IR step): the engine without the pass table, for rule sets loaded from elsewhere
/// (tests of the engine itself).
pub fn run_rules(m: &Module, name: &str, sets: &[RuleSet], limits: Limits) -> Result<(Module, PassReport), OptError> {
    let rewrites: Vec<_> = sets.iter().flat_map(|s| s.rules.iter()).map(|r| &r.rewrite).collect();
    run_egraph(m, name, None, &rewrites, limits)
}

/// An e-graph pass: the IR step `prepare`, then every function saturated with `rewrites`,
/// extracted and rebuilt, then weight folding.
///
/// Invariant: every function's cost after the pass is at most its cost as it entered the
/// pass, *before* `prepare` (the report's "cost before" is that cost); see
/// [`runner::run_function`] for what happens otherwise.
fn run_egraph(
    m: &Module,
    name: &str,
    prepare: Option<passes::Prepare>,
    rewrites: &[&egg::Rewrite<lang::Tnode, analysis::TypeAnalysis>],
    limits: Limits,
) -> Result<(Module, PassReport), OptError> {
    use rayon::prelude::*;
    let err = |message: String| OptError::Pass { pass: name.to_string(), message };
    let verify = |m: &Module| verify_module(m).map_err(|error| OptError::Verify { pass: name.to_string(), error });
    let mut module = m.clone();
    let (notes, baselines) = match prepare {
        Some(prepare) => {
            // The cost of every function as it entered the pass, by name (the IR step keeps
            // function names).
            let costs: Vec<(String, Option<f64>)> = m
                .functions
                .par_iter()
                .map(|f| runner::function_cost(m, f).map(|c| (f.name.clone(), c)))
                .collect::<Result<_, _>>()
                .map_err(err)?;
            (prepare(&mut module).map_err(err)?, costs)
        }
        None => (Vec::new(), Vec::new()),
    };
    verify(&module)?;
    let baseline = |f: &crate::ir::Function| baselines.iter().find(|(n, _)| *n == f.name).and_then(|(_, c)| *c);
    // Functions are rewritten independently (each in its own e-graph), so in parallel; the
    // results keep module order.
    let results: Vec<_> =
        module.functions.par_iter().map(|f| runner::run_function(&module, f, rewrites, &limits, baseline(f))).collect();
    let mut functions = Vec::with_capacity(results.len());
    let mut reports = Vec::with_capacity(results.len());
    for result in results {
        let (new, report) = result.map_err(err)?;
        functions.push(new);
        reports.push(report);
    }
    module.functions = functions;
    let module = fold::fold_weights(&module);
    verify(&module)?;
    let run = PassRun::EGraph { limits, functions: reports };
    Ok((module, PassReport { pass: name.to_string(), notes, run, seconds: 0.0 }))
}

/// Runs the named pass with default options.
pub fn run_pass(m: &Module, name: &str) -> Result<(Module, PassReport), OptError> {
    let pass = passes::pass(name).ok_or_else(|| OptError::UnknownPass(name.to_string()))?;
    run_pass_with(m, pass, None)
}

/// Runs `names` (all passes when empty) in order with default options (palettize off);
/// `after` sees the module after each pass. See [`optimize_with`].
pub fn optimize(m: &Module, names: &[&str], after: impl FnMut(&str, &Module)) -> Result<(Module, OptReport), OptError> {
    optimize_with(m, names, &OptOptions::default(), after)
}

/// Runs `names` (all passes when empty, in [`PASSES`] order) in order with `opts`; `after`
/// sees the module after each pass. Every name is checked before any pass runs.
pub fn optimize_with(
    m: &Module,
    names: &[&str],
    opts: &OptOptions,
    mut after: impl FnMut(&str, &Module),
) -> Result<(Module, OptReport), OptError> {
    let names: Vec<&str> = if names.is_empty() { pass_names() } else { names.to_vec() };
    let passes: Vec<&Pass> = names
        .iter()
        .map(|n| passes::pass(n).ok_or_else(|| OptError::UnknownPass(n.to_string())))
        .collect::<Result<_, _>>()?;
    let mut module = m.clone();
    let mut report = OptReport::default();
    for pass in passes {
        let (next, r) = run_pass_with_options(&module, pass, opts, None)?;
        after(pass.name, &next);
        module = next;
        report.passes.push(r);
    }
    Ok((module, report))
}
