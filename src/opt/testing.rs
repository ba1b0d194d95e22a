//! Support for rule tests in egg's style: run some rules of a pass on a function and ask
//! whether a goal function is now provably equal (in the same e-class), independent of
//! what extraction would pick ([`proves`]); or extract the form the rules built even where
//! the cost model would keep the original ([`rewritten`]), so that property tests can
//! evaluate it.

use std::collections::{HashMap, HashSet};

use egg::{CostFunction, Extractor, Id, Language, Rewrite};

use crate::ir::Module;
use crate::ir::verify::verify_function;

use super::analysis::{EG, TypeAnalysis, with_context};
use super::bridge::{add_function, load};
use super::extract::Extraction;
use super::lang::Tnode;
use super::rebuild::rebuild;
use super::runner::{fired_counts, saturate};
use super::{OptError, load_pass_rules, passes};

/// The rewrites of pass `pass` named in `rules` (all of them must exist).
fn selected<'a>(
    sets: &'a [super::RuleSet],
    pass: &str,
    rules: &[&str],
) -> Result<Vec<&'a Rewrite<Tnode, TypeAnalysis>>, String> {
    let rewrites: Vec<_> = sets
        .iter()
        .flat_map(|s| s.rules.iter())
        .filter(|r| rules.contains(&r.name.as_str()))
        .map(|r| &r.rewrite)
        .collect();
    if rewrites.len() != rules.len() {
        return Err(format!("pass `{pass}` does not have all of the rules {rules:?}"));
    }
    Ok(rewrites)
}

/// Tree cost preferring e-nodes the rules added: an op node present in the freshly loaded
/// e-graph costs [`ORIGINAL`], a new one 1, leaves 1.
struct PreferNew<'a> {
    egraph: &'a EG,
    original: &'a HashSet<Tnode>,
}

/// The cost of an op e-node that was already in the loaded function.
const ORIGINAL: f64 = 1000.0;

impl CostFunction<Tnode> for PreferNew<'_> {
    type Cost = f64;
    fn cost<C: FnMut(Id) -> f64>(&mut self, enode: &Tnode, mut costs: C) -> f64 {
        let own = match enode {
            Tnode::Op(..) if self.original.contains(&enode.clone().map_children(|c| self.egraph.find(c))) => ORIGINAL,
            _ => 1.0,
        };
        enode.children().iter().fold(own, |sum, &c| sum + costs(c))
    }
}

/// What [`rewritten`] returns: the module with the function replaced by the rewritten form,
/// and the rules that fired with their counts.
pub struct Rewritten {
    pub module: Module,
    pub fired: Vec<(String, usize)>,
}

/// Runs the rules `rules` of pass `pass` (not its IR step) on function `name` of `m` and
/// rebuilds the function from the e-graph choosing, in every e-class, a node the rules
/// added where there is one (original op nodes cost [`ORIGINAL`] each, new ones 1, summed
/// over the tree). Every term of an e-class is equal to the original value if the rules
/// are sound, so evaluating this form against the original checks the rules' equalities
/// numerically — also for enabling rules whose form the cost model would never extract.
pub fn rewritten(m: &Module, pass: &str, rules: &[&str], name: &str) -> Result<Rewritten, String> {
    let p = passes::pass(pass).ok_or_else(|| OptError::UnknownPass(pass.into()).to_string())?;
    let (sets, limits) = load_pass_rules(p).map_err(|e| e.to_string())?;
    let rewrites = selected(&sets, pass, rules)?;
    let f = m.function(name).ok_or_else(|| format!("no function @{name}"))?;
    let loaded = load(m, f);
    let original: Vec<Tnode> = loaded.egraph.classes().flat_map(|c| c.nodes.iter().cloned()).collect();
    let root = loaded.root;
    let runner = saturate(loaded.egraph, &rewrites, &limits);
    if let Some(e) = &runner.egraph.analysis.error {
        return Err(format!("type error: {e}"));
    }
    let fired = fired_counts(&runner);
    let egraph = runner.egraph;
    let original: HashSet<Tnode> = original.into_iter().map(|n| n.map_children(|c| egraph.find(c))).collect();
    let extractor = Extractor::new(&egraph, PreferNew { egraph: &egraph, original: &original });
    let mut choice = HashMap::new();
    let mut todo = vec![egraph.find(root)];
    while let Some(c) = todo.pop() {
        if choice.contains_key(&c) {
            continue;
        }
        let node = extractor.find_best_node(c).clone().map_children(|k| egraph.find(k));
        todo.extend(node.children().iter().copied());
        choice.insert(c, node);
    }
    let loaded = super::bridge::Loaded { egraph, root, names: loaded.names, n_outputs: loaded.n_outputs };
    let new = with_context("rebuilding", || rebuild(f, &loaded, &Extraction { choice, cost: 0.0 }));
    verify_function(m, &new).map_err(|e| format!("rewritten @{name} does not verify: {e}"))?;
    let mut module = m.clone();
    let at = module.functions.iter().position(|g| g.name == name).expect("found above");
    module.functions[at] = new;
    Ok(Rewritten { module, fired })
}

/// Runs the rules `rules` of pass `pass` on function `start` of `m`, then adds function
/// `goal` (same signature) to the e-graph and checks that every output and effect of
/// `goal` is equal to the corresponding one of `start`. `Err` explains what differs.
pub fn proves(m: &Module, pass: &str, rules: &[&str], start: &str, goal: &str) -> Result<(), String> {
    let p = passes::pass(pass).ok_or_else(|| OptError::UnknownPass(pass.into()).to_string())?;
    let (sets, limits) = load_pass_rules(p).map_err(|e| e.to_string())?;
    let rewrites = selected(&sets, pass, rules)?;
    let f = m.function(start).ok_or_else(|| format!("no function @{start}"))?;
    let g = m.function(goal).ok_or_else(|| format!("no function @{goal}"))?;
    let loaded = load(m, f);
    let runner = saturate(loaded.egraph, &rewrites, &limits);
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
