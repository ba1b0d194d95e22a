//! Support for rule tests in egg's style: run some rules of a pass on a function and ask
//! whether a goal function is now provably equal (in the same e-class), independent of
//! what extraction would pick.

use egg::{Runner, SimpleScheduler};

use crate::ir::Module;

use super::bridge::{add_function, load};
use super::{OptError, load_pass_rules, passes};

/// Runs the rules `rules` of pass `pass` on function `start` of `m`, then adds function
/// `goal` (same signature) to the e-graph and checks that every output and effect of
/// `goal` is equal to the corresponding one of `start`. `Err` explains what differs.
pub fn proves(m: &Module, pass: &str, rules: &[&str], start: &str, goal: &str) -> Result<(), String> {
    let p = passes::pass(pass).ok_or_else(|| OptError::UnknownPass(pass.into()).to_string())?;
    let (sets, limits) = load_pass_rules(p).map_err(|e| e.to_string())?;
    let rewrites: Vec<_> = sets
        .iter()
        .flat_map(|s| s.rules.iter())
        .filter(|r| rules.contains(&r.name.as_str()))
        .map(|r| &r.rewrite)
        .collect();
    if rewrites.len() != rules.len() {
        return Err(format!("pass `{pass}` does not have all of the rules {rules:?}"));
    }
    let f = m.function(start).ok_or_else(|| format!("no function @{start}"))?;
    let g = m.function(goal).ok_or_else(|| format!("no function @{goal}"))?;
    let loaded = load(m, f);
    let runner = Runner::default()
        .with_egraph(loaded.egraph)
        .with_iter_limit(limits.iterations)
        .with_node_limit(limits.nodes)
        .with_time_limit(limits.time)
        .with_scheduler(SimpleScheduler)
        .run(rewrites.iter().copied());
    let mut egraph = runner.egraph;
    let start_added = {
        let root = egraph.find(loaded.root);
        egraph[root].nodes[0].clone()
    };
    let goal_added = add_function(&mut egraph, g);
    egraph.rebuild();
    if let Some(e) = &egraph.analysis.error {
        return Err(format!("type error: {e}"));
    }
    let starts: Vec<egg::Id> = egg::Language::children(&start_added).iter().map(|&c| egraph.find(c)).collect();
    let goals: Vec<egg::Id> = goal_added.outputs.iter().chain(&goal_added.effects).map(|&c| egraph.find(c)).collect();
    if starts == goals {
        Ok(())
    } else {
        Err(format!(
            "@{goal} is not proven equal to @{start} (stop: {:?}, {} e-nodes)",
            runner.stop_reason,
            egraph.total_size()
        ))
    }
}
