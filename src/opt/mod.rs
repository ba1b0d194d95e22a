//! `anemllc opt`: e-graph passes that rewrite a lowered module into ANE-friendly form
//! (design in `docs/opt.md`, cost model in `docs/cost-model.md`, rule policy in
//! `passes/README.md`).
//!
//! A pass runs, per function: IR → e-graph ([`bridge`]), equality saturation with the
//! pass's rules ([`rules`], under explicit [`Limits`]), extraction with the ANE cost model
//! ([`extract`], [`cost`]), rebuild ([`rebuild`]); then, per module, weight folding
//! ([`fold`]) and the verifier. [`check`] is the ANE check run after `opt`.
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
pub mod kv_state;
pub mod lang;
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

pub use check::{CheckError, check_module};
pub use passes::{PASSES, Pass};
pub use report::{FunctionReport, Limits, OptReport, PassReport};
pub use rules::{LoadError, RuleSet};

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

/// Loads every rule file of a pass. The first file's `limits` line sets the limits.
pub fn load_pass_rules(pass: &Pass) -> Result<(Vec<RuleSet>, Limits), LoadError> {
    let sets: Vec<RuleSet> = pass.files.iter().map(|f| rules::load(f.path, f.source)).collect::<Result<_, _>>()?;
    let mut limits = Limits::default();
    if let Some(l) = sets.first().and_then(|s| s.limits) {
        limits.iterations = l.iterations.unwrap_or(limits.iterations);
        limits.nodes = l.nodes.unwrap_or(limits.nodes);
        limits.time = l.time_secs.map_or(limits.time, Duration::from_secs_f64);
    }
    Ok((sets, limits))
}

/// Runs one pass over a module, optionally restricted to the rules named in `only`.
pub fn run_pass_with(m: &Module, pass: &Pass, only: Option<&[&str]>) -> Result<(Module, PassReport), OptError> {
    let err = |message: String| OptError::Pass { pass: pass.name.to_string(), message };
    let (sets, limits) = load_pass_rules(pass)?;
    let rewrites: Vec<_> = sets
        .iter()
        .flat_map(|s| s.rules.iter())
        .filter(|r| only.is_none_or(|names| names.contains(&r.name.as_str())))
        .map(|r| &r.rewrite)
        .collect();
    let mut module = m.clone();
    let notes = match pass.prepare {
        Some(prepare) => prepare(&mut module).map_err(err)?,
        None => Vec::new(),
    };
    verify_module(&module).map_err(|error| OptError::Verify { pass: pass.name.to_string(), error })?;
    let mut functions = Vec::with_capacity(module.functions.len());
    let mut reports = Vec::with_capacity(module.functions.len());
    for f in &module.functions {
        let (new, report) = runner::run_function(&module, f, &rewrites, &limits).map_err(err)?;
        functions.push(new);
        reports.push(report);
    }
    module.functions = functions;
    let module = fold::fold_weights(&module);
    verify_module(&module).map_err(|error| OptError::Verify { pass: pass.name.to_string(), error })?;
    Ok((module, PassReport { pass: pass.name.to_string(), limits, notes, functions: reports }))
}

/// Runs the named pass.
pub fn run_pass(m: &Module, name: &str) -> Result<(Module, PassReport), OptError> {
    let pass = passes::pass(name).ok_or_else(|| OptError::UnknownPass(name.to_string()))?;
    run_pass_with(m, pass, None)
}

/// Runs `names` (all passes when empty) in order; `after` sees the module after each pass.
pub fn optimize(
    m: &Module,
    names: &[&str],
    mut after: impl FnMut(&str, &Module),
) -> Result<(Module, OptReport), OptError> {
    let names: Vec<&str> = if names.is_empty() { pass_names() } else { names.to_vec() };
    for n in &names {
        passes::pass(n).ok_or_else(|| OptError::UnknownPass(n.to_string()))?;
    }
    let mut module = m.clone();
    let mut report = OptReport::default();
    for n in names {
        let (next, r) = run_pass(&module, n)?;
        after(n, &next);
        module = next;
        report.passes.push(r);
    }
    Ok((module, report))
}
