//! DAG-aware greedy extraction.
//!
//! egg's `Extractor` sums costs over the *tree*, so a value used twice is paid twice; in a
//! tensor graph that over-charges shared activations (the residual stream, the normalised
//! input of q/k/v) and can flip choices. Here each e-class keeps the *set* of e-classes its
//! best term uses, with their node costs, and a term's cost is the sum over that set, so a
//! shared class is counted once (the "greedy DAG" extractor of the extraction literature).
//!
//! Invariants:
//! - a node is only chosen when no child's set contains the node's own class (no cycles);
//! - the greedy choices are then refined by local search on the true DAG cost (one class
//!   switched at a time, kept only if the total drops), so sharing the greedy pass cannot
//!   see is still exploited;
//! - the result is checked acyclic from the root, and its cost is recomputed from the final
//!   choices as the sum of node costs over the reachable classes (what the report shows);
//! - iteration order is e-class order and ties keep the earlier node, so results are
//!   deterministic.

use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;

use egg::{Id, Language};

use super::analysis::EG;
use super::cost::node_cost;
use super::lang::Tnode;

/// The chosen node of every class reachable from the root.
pub struct Extraction {
    pub choice: HashMap<Id, Tnode>,
    /// Sum of node costs over the reachable classes.
    pub cost: f64,
}

type CostSet = Rc<BTreeMap<Id, f64>>;

struct Best {
    total: f64,
    set: CostSet,
    node: usize,
}

/// Sweeps over all classes until no class improves (at most `max_sweeps` times).
fn solve(egraph: &EG, costs: &HashMap<Id, Vec<f64>>, max_sweeps: usize) -> HashMap<Id, Best> {
    let mut best: HashMap<Id, Best> = HashMap::new();
    let mut classes: Vec<Id> = egraph.classes().map(|c| c.id).collect();
    classes.sort();
    for _ in 0..max_sweeps {
        let mut changed = false;
        for &c in &classes {
            for (i, node) in egraph[c].nodes.iter().enumerate() {
                let children: Vec<Id> = node.children().iter().map(|&k| egraph.find(k)).collect();
                if children.iter().any(|k| !best.contains_key(k)) {
                    continue;
                }
                if children.iter().any(|k| *k == c || best[k].set.contains_key(&c)) {
                    continue;
                }
                let mut set: BTreeMap<Id, f64> = match children.iter().max_by_key(|k| best[*k].set.len()) {
                    Some(k) => (*best[k].set).clone(),
                    None => BTreeMap::new(),
                };
                for k in &children {
                    for (&id, &v) in best[k].set.iter() {
                        set.entry(id).or_insert(v);
                    }
                }
                set.insert(c, costs[&c][i]);
                let total: f64 = set.values().sum();
                let better = match best.get(&c) {
                    None => true,
                    Some(b) => total < b.total * (1.0 - 1e-12) - 1e-9,
                };
                if better {
                    best.insert(c, Best { total, set: Rc::new(set), node: i });
                    changed = true;
                }
            }
        }
        if !changed {
            break;
        }
    }
    best
}

/// The DAG cost of the term chosen by `pick` from `root`: the sum of node costs over the
/// reachable classes, or `None` if a class has no pick or the picks form a cycle.
fn dag_cost(egraph: &EG, root: Id, pick: &HashMap<Id, usize>, costs: &HashMap<Id, Vec<f64>>) -> Option<(f64, Vec<Id>)> {
    let mut order = Vec::new();
    let mut state: HashMap<Id, bool> = HashMap::new(); // false: on the path, true: done
    let mut stack = vec![(root, false)];
    let mut total = 0.0;
    while let Some((c, leaving)) = stack.pop() {
        if leaving {
            state.insert(c, true);
            order.push(c);
            continue;
        }
        match state.get(&c) {
            Some(true) => continue,
            Some(false) => return None,
            None => {}
        }
        let i = *pick.get(&c)?;
        total += costs[&c][i];
        state.insert(c, false);
        stack.push((c, true));
        for &k in egraph[c].nodes[i].children() {
            let k = egraph.find(k);
            match state.get(&k) {
                Some(true) => {}
                Some(false) => return None,
                None => stack.push((k, false)),
            }
        }
    }
    Some((total, order))
}

/// Greedy DAG choices refined by local search: switch one class's node at a time and keep
/// the switch when the whole term's DAG cost drops. This catches what greedy misses when
/// a choice pays off only through sharing (e.g. normalising the residual stream in the
/// layout it is already converted to).
fn refine(egraph: &EG, root: Id, pick: &mut HashMap<Id, usize>, costs: &HashMap<Id, Vec<f64>>, rounds: usize) {
    let Some((mut current, _)) = dag_cost(egraph, root, pick, costs) else { return };
    for _ in 0..rounds {
        let mut improved = false;
        let Some((_, mut reach)) = dag_cost(egraph, root, pick, costs) else { return };
        reach.sort();
        for c in reach {
            let Some(&start) = pick.get(&c) else { continue };
            for i in 0..egraph[c].nodes.len() {
                if i == pick[&c] {
                    continue;
                }
                let old = pick.insert(c, i).unwrap_or(start);
                match dag_cost(egraph, root, pick, costs) {
                    Some((cost, _)) if cost < current - 1e-9 * current.abs().max(1.0) => {
                        current = cost;
                        improved = true;
                    }
                    _ => {
                        pick.insert(c, old);
                    }
                }
            }
        }
        if !improved {
            break;
        }
    }
}

/// Extracts the cheapest term for `root`. Fails if some reachable class has no acyclic
/// choice (the caller then keeps the original function).
pub fn extract(egraph: &EG, root: Id) -> Result<Extraction, String> {
    let costs: HashMap<Id, Vec<f64>> =
        egraph.classes().map(|c| (c.id, c.nodes.iter().map(|n| node_cost(egraph, c.id, n)).collect())).collect();
    let best = solve(egraph, &costs, 64);
    let root = egraph.find(root);
    let mut pick: HashMap<Id, usize> = best.iter().map(|(c, b)| (*c, b.node)).collect();
    refine(egraph, root, &mut pick, &costs, 4);
    let (cost, order) = dag_cost(egraph, root, &pick, &costs).ok_or("the chosen terms are cyclic or incomplete")?;
    let choice =
        order.into_iter().map(|c| (c, egraph[c].nodes[pick[&c]].clone().map_children(|k| egraph.find(k)))).collect();
    Ok(Extraction { choice, cost })
}
