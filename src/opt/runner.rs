//! Runs one rule set over one function: load into an e-graph, saturate under explicit
//! limits, extract with the cost model, rebuild and verify.
//!
//! Invariants:
//! - the scheduler is egg's `SimpleScheduler` (every rule, every iteration) and the
//!   `deterministic` feature fixes iteration orders, so results depend only on the input
//!   (unless the time limit is hit, which the report shows);
//! - the cost never gets worse than the function *as it entered the pass* (`baseline`, the
//!   cost before the pass's IR step, if it has one): if the extracted function costs more
//!   than the loaded one, the loaded one is kept and the report says so; if what remains
//!   still costs more than the baseline (only possible after an IR step, which cannot be
//!   undone for one function alone) the run is an error;
//! - a type error of a rule (an ill-typed node, a merge of different types) is an error
//!   naming the rule, never a panic: saturation stops at the first one;
//! - the returned function verifies against the module.

use egg::{Rewrite, Runner, SimpleScheduler, StopReason};

use crate::ir::verify::verify_function;
use crate::ir::{Function, Module};

use super::analysis::{EG, TypeAnalysis, with_context};
use super::bridge::{Loaded, can_bridge, load};
use super::extract::extract;
use super::lang::Tnode;
use super::rebuild::rebuild;
use super::report::{FunctionReport, Limits};

fn stop_text(s: &Option<StopReason>) -> String {
    match s {
        Some(StopReason::Saturated) => "saturated".into(),
        Some(StopReason::IterationLimit(n)) => format!("iteration limit ({n})"),
        Some(StopReason::NodeLimit(n)) => format!("node limit ({n} e-nodes)"),
        Some(StopReason::TimeLimit(t)) => format!("time limit ({t:.1}s)"),
        Some(StopReason::Other(o)) => o.clone(),
        None => "not run".into(),
    }
}

fn unchanged(f: &Function, why: String, cost: f64) -> FunctionReport {
    FunctionReport {
        function: f.name.clone(),
        iterations: 0,
        enodes: 0,
        eclasses: 0,
        stop: "not run".into(),
        fired: Vec::new(),
        cost_before: cost,
        cost_after: cost,
        kept: Some(why),
        seconds: 0.0,
    }
}

/// The type error recorded by the analysis of `egraph`, as a run error of `f`.
fn type_error(egraph: &EG, f: &Function) -> Result<(), String> {
    match &egraph.analysis.error {
        Some(e) => Err(format!("@{}: {e}", f.name)),
        None => Ok(()),
    }
}

/// Equality saturation of `egraph` with `rules` under `limits`, with the engine's fixed
/// scheduler; it stops early when the analysis records a type error (the caller checks
/// `analysis.error`).
pub fn saturate(
    egraph: super::analysis::EG,
    rules: &[&Rewrite<Tnode, TypeAnalysis>],
    limits: &Limits,
) -> Runner<Tnode, TypeAnalysis> {
    Runner::default()
        .with_egraph(egraph)
        .with_iter_limit(limits.iterations)
        .with_node_limit(limits.nodes)
        .with_time_limit(limits.time)
        .with_scheduler(SimpleScheduler)
        .with_hook(|r| match &r.egraph.analysis.error {
            Some(_) => Err("type error".into()),
            None => Ok(()),
        })
        .run(rules.iter().copied())
}

/// How often each rule fired over all iterations of `runner`, in first-fired order.
pub fn fired_counts(runner: &Runner<Tnode, TypeAnalysis>) -> Vec<(String, usize)> {
    let mut fired: Vec<(String, usize)> = Vec::new();
    for it in &runner.iterations {
        for (name, n) in &it.applied {
            match fired.iter_mut().find(|(k, _)| k == name.as_str()) {
                Some((_, total)) => *total += n,
                None => fired.push((name.to_string(), *n)),
            }
        }
    }
    fired
}

/// The cost of `f` (a function of `m`) under the cost model, as extraction measures the
/// freshly loaded function; `None` if `f` cannot be loaded into an e-graph (`can_bridge`).
pub fn function_cost(m: &Module, f: &Function) -> Result<Option<f64>, String> {
    if can_bridge(f).is_err() {
        return Ok(None);
    }
    let loaded = load(m, f);
    type_error(&loaded.egraph, f)?;
    let x = extract(&loaded.egraph, loaded.root).map_err(|e| format!("@{}: extracting the input: {e}", f.name))?;
    Ok(Some(x.cost))
}

/// Optimises `f` (a function of `m`) with `rules`. `baseline` is the cost of the function as
/// it entered the pass when the pass's IR step changed it (`None`: `f` is the pass's input).
/// `Err` is a bug in a rule or in the engine: a type error (naming the rule), a rebuilt
/// function that does not verify, or a result costlier than the baseline.
pub fn run_function(
    m: &Module,
    f: &Function,
    rules: &[&Rewrite<Tnode, TypeAnalysis>],
    limits: &Limits,
    baseline: Option<f64>,
) -> Result<(Function, FunctionReport), String> {
    let start = std::time::Instant::now();
    let (new, mut report) = optimise_function(m, f, rules, limits, baseline)?;
    report.seconds = start.elapsed().as_secs_f64();
    Ok((new, report))
}

/// [`run_function`] without the clock.
fn optimise_function(
    m: &Module,
    f: &Function,
    rules: &[&Rewrite<Tnode, TypeAnalysis>],
    limits: &Limits,
    baseline: Option<f64>,
) -> Result<(Function, FunctionReport), String> {
    if let Err(why) = can_bridge(f) {
        return Ok((f.clone(), unchanged(f, why, 0.0)));
    }
    let Loaded { egraph, root, names, n_outputs } = load(m, f);
    type_error(&egraph, f)?;
    let before = extract(&egraph, root).map_err(|e| format!("@{}: extracting the input: {e}", f.name))?;
    let baseline = baseline.unwrap_or(before.cost);
    let runner = saturate(egraph, rules, limits);
    type_error(&runner.egraph, f)?;
    let mut fired = fired_counts(&runner);
    let order: Vec<String> = rules.iter().map(|r| r.name.to_string()).collect();
    fired.sort_by_key(|(n, _)| order.iter().position(|o| o == n));
    let mut report = FunctionReport {
        function: f.name.clone(),
        iterations: runner.iterations.len(),
        enodes: runner.egraph.total_size(),
        eclasses: runner.egraph.number_of_classes(),
        stop: stop_text(&runner.stop_reason),
        fired,
        cost_before: baseline,
        cost_after: before.cost,
        kept: None,
        seconds: 0.0,
    };
    let loaded = Loaded { egraph: runner.egraph, root, names, n_outputs };
    let worse = |cost: f64, than: f64| cost > than * (1.0 + 1e-9);
    let kept = match extract(&loaded.egraph, loaded.root) {
        Ok(after) if worse(after.cost, before.cost) => {
            Some(format!("extraction cost {} exceeds the original {}", after.cost, before.cost))
        }
        Ok(after) => {
            report.cost_after = after.cost;
            let new = with_context("rebuilding", || rebuild(f, &loaded, &after));
            verify_function(m, &new).map_err(|e| format!("rebuilt function does not verify: {e}"))?;
            if worse(after.cost, baseline) {
                return Err(over_baseline(f, after.cost, baseline));
            }
            return Ok((new, report));
        }
        Err(e) => Some(e),
    };
    if worse(before.cost, baseline) {
        return Err(over_baseline(f, before.cost, baseline));
    }
    report.kept = kept;
    Ok((f.clone(), report))
}

fn over_baseline(f: &Function, cost: f64, baseline: f64) -> String {
    format!(
        "@{}: the pass would raise the cost from {baseline} (the function as it entered the pass) to {cost}; \
         the pass's IR step cannot be undone for one function, so the pass fails",
        f.name
    )
}
