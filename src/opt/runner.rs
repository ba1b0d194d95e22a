//! Runs one rule set over one function: load into an e-graph, saturate under explicit
//! limits, extract with the cost model, rebuild and verify.
//!
//! Invariants:
//! - the scheduler is egg's `SimpleScheduler` (every rule, every iteration) and the
//!   `deterministic` feature fixes iteration orders, so results depend only on the input
//!   (unless the time limit is hit, which the report shows);
//! - the cost never gets worse: if the extracted function costs more than the original under
//!   the same model, the original is kept and the report says so;
//! - the returned function verifies against the module.

use egg::{Rewrite, Runner, SimpleScheduler, StopReason};

use crate::ir::verify::verify_function;
use crate::ir::{Function, Module};

use super::analysis::{TypeAnalysis, with_context};
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
    }
}

/// Optimises `f` (a function of `m`) with `rules`. `Err` is an internal error (the rebuilt
/// function does not verify): a bug in a rule or in the engine.
pub fn run_function(
    m: &Module,
    f: &Function,
    rules: &[&Rewrite<Tnode, TypeAnalysis>],
    limits: &Limits,
) -> Result<(Function, FunctionReport), String> {
    if let Err(why) = can_bridge(f) {
        return Ok((f.clone(), unchanged(f, why, 0.0)));
    }
    let Loaded { egraph, root, names, n_outputs } = load(m, f);
    let before = extract(&egraph, root).map_err(|e| format!("@{}: extracting the input: {e}", f.name))?;
    let runner = Runner::default()
        .with_egraph(egraph)
        .with_iter_limit(limits.iterations)
        .with_node_limit(limits.nodes)
        .with_time_limit(limits.time)
        .with_scheduler(SimpleScheduler)
        .run(rules.iter().copied());
    let mut fired: Vec<(String, usize)> = Vec::new();
    for it in &runner.iterations {
        for (name, n) in &it.applied {
            match fired.iter_mut().find(|(k, _)| k == name.as_str()) {
                Some((_, total)) => *total += n,
                None => fired.push((name.to_string(), *n)),
            }
        }
    }
    let order: Vec<String> = rules.iter().map(|r| r.name.to_string()).collect();
    fired.sort_by_key(|(n, _)| order.iter().position(|o| o == n));
    let mut report = FunctionReport {
        function: f.name.clone(),
        iterations: runner.iterations.len(),
        enodes: runner.egraph.total_size(),
        eclasses: runner.egraph.number_of_classes(),
        stop: stop_text(&runner.stop_reason),
        fired,
        cost_before: before.cost,
        cost_after: before.cost,
        kept: None,
    };
    let loaded = Loaded { egraph: runner.egraph, root, names, n_outputs };
    let after = match extract(&loaded.egraph, loaded.root) {
        Ok(x) => x,
        Err(e) => {
            report.kept = Some(e);
            return Ok((f.clone(), report));
        }
    };
    if after.cost > before.cost * (1.0 + 1e-9) {
        report.kept = Some(format!("extraction cost {} exceeds the original {}", after.cost, before.cost));
        return Ok((f.clone(), report));
    }
    report.cost_after = after.cost;
    let new = with_context("rebuilding", || rebuild(f, &loaded, &after));
    verify_function(m, &new).map_err(|e| format!("rebuilt function does not verify: {e}"))?;
    Ok((new, report))
}
