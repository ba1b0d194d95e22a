//! Extraction → IR function.
//!
//! The new function keeps the original signature (input names/types, output names). Values
//! are emitted in the original program order where possible: original values are visited in
//! definition order and each pulls in its (new) dependencies first; effects (`write_state`)
//! come last, after every value, so every state read precedes every state write.
//!
//! Naming: an e-class holding an original value keeps that value's name (the first one in
//! program order). A new class is named after the nearest named consumer and its own op
//! (`q` ← `q_conv` ← …), made unique with `_1`, `_2`, ….

use std::collections::{HashMap, HashSet};

use egg::Id;

use crate::ir::{Function, Op, Type, ValueId};

use super::analysis::{Data, EG, node_op, splat_of};
use super::attrs::{op_of_leaf, operand_count};
use super::bridge::Loaded;
use super::extract::Extraction;
use super::lang::{AttrLeaf, GET, ROOTS, Tnode};

struct Builder<'a> {
    egraph: &'a EG,
    choice: &'a HashMap<Id, Tnode>,
    names: HashMap<Id, String>,
    used: HashSet<String>,
    func: Function,
    /// The value of each emitted tensor class; multi-result classes map to their results.
    values: HashMap<Id, Vec<ValueId>>,
}

impl Builder<'_> {
    fn fresh(&mut self, base: &str) -> String {
        let mut name = base.to_string();
        let mut n = 1;
        while self.used.contains(&name) {
            name = format!("{base}_{n}");
            n += 1;
        }
        self.used.insert(name.clone());
        name
    }

    fn name_for(&mut self, class: Id, hint: &str, kind: &str) -> String {
        match self.names.get(&class) {
            Some(n) if !self.used.contains(n) => {
                let n = n.clone();
                self.used.insert(n.clone());
                n
            }
            _ => self.fresh(&format!("{hint}_{kind}")),
        }
    }

    fn ty(&self, class: Id) -> Type {
        match &self.egraph[class].data {
            Data::Tensor { ty, .. } => Type::Tensor(ty.clone()),
            other => panic!("class {class} is not a tensor: {other:?}"),
        }
    }

    /// Emits `class` (and its dependencies) and returns its values. `hint` is the nearest
    /// named consumer, used to name new values.
    fn emit(&mut self, class: Id, hint: &str) -> Vec<ValueId> {
        if let Some(v) = self.values.get(&class) {
            return v.clone();
        }
        let node = self.choice[&class].clone();
        let own = self.names.get(&class).cloned();
        let hint = own.as_deref().unwrap_or(hint).to_string();
        let result = match &node {
            Tnode::Input(i) => vec![self.func.inputs[*i]],
            Tnode::Weight(_) | Tnode::Const(_) => {
                let op = op_of_leaf(&node).expect("value leaf");
                let kind = if matches!(op, Op::Weight { .. }) { "w" } else { "const" };
                let name = self.name_for(class, &hint, kind);
                let ty = self.ty(class);
                let n = self.func.push_node(op, vec![], vec![(name, ty)]);
                self.func.nodes[n].results.clone()
            }
            Tnode::Attr(_) => panic!("attribute class {class} used as a value"),
            Tnode::Op(kind, children) if *kind == GET => {
                let index = self.egraph[children[1]].data.attr().and_then(AttrLeaf::as_int).expect("get index");
                let all = self.emit(children[0], &hint);
                vec![all[index as usize]]
            }
            Tnode::Op(kind, children) => {
                // Names are taken before the operands are emitted, so a value claims its
                // anchor name before its dependencies can.
                let op = node_op(self.egraph, kind, children).expect("extracted nodes are well formed");
                let results: Vec<(String, Type)> = match &self.egraph[class].data {
                    Data::Tuple(types) => types
                        .iter()
                        .enumerate()
                        .map(|(i, t)| {
                            let get = self.get_class(class, i);
                            let name = match get {
                                Some(g) => self.name_for(g, &hint, kind),
                                None => self.fresh(&format!("{hint}_{kind}")),
                            };
                            (name, Type::Tensor(t.clone()))
                        })
                        .collect(),
                    Data::Effect => Vec::new(),
                    _ => vec![(self.name_for(class, &hint, kind), self.ty(class))],
                };
                let n_ops = operand_count(kind, children.len());
                let operands: Vec<ValueId> = children[..n_ops].iter().map(|&c| self.emit(c, &hint)[0]).collect();
                let n = self.func.push_node(op, operands, results);
                self.func.nodes[n].results.clone()
            }
        };
        self.values.insert(class, result.clone());
        result
    }

    /// The class of `(get multi i)`, if the e-graph has one.
    fn get_class(&self, multi: Id, i: usize) -> Option<Id> {
        let index = self.egraph.lookup(Tnode::Attr(AttrLeaf::Int(i as i64)))?;
        self.egraph.lookup(Tnode::op(GET, vec![multi, index]))
    }
}

/// The value `node` is a *view* of: a layout or precision change (`cast`, `reshape`,
/// `transpose`, `squeeze`, `expand_dims`) or a scaling by a scalar literal, of its first
/// operand. Views keep the name of what they view.
fn view_source(egraph: &EG, node: &Tnode) -> Option<Id> {
    let Tnode::Op(kind, ch) = node else { return None };
    let scalar = |c: Id| splat_of(egraph, c).is_some() && egraph[c].data.tensor().is_some_and(|t| t.numel() == 1);
    match *kind {
        "cast" | "reshape" | "transpose" | "squeeze" | "expand_dims" => Some(ch[0]),
        "mul" if scalar(ch[1]) => Some(ch[0]),
        "mul" if scalar(ch[0]) => Some(ch[1]),
        _ => None,
    }
    .map(|c| egraph.find(c))
}

/// For each e-class, the original value that names it and its program position.
///
/// Candidates, best first:
/// 1. the class's own *primary* original name;
/// 2. the primary name of `x` when the class holds `cast(x, _)` (the value that replaces
///    `x` at another precision inherits its name), or any view of a weight `x` (a weight
///    reshaped for a conv keeps the weight value's name; folding then drops `x`);
/// 3. the name of an original value that is no longer emitted and is a view (cast, reshape,
///    transpose, scaling by a scalar, … at most three steps away) of the class, or vice
///    versa: `resid_attn` in `[1, S, H]` names its channels-first replacement, `q_heads`
///    names its replacement computed from pre-scaled weights;
/// 4. a *secondary* own name.
///
/// Names containing a `.` are secondary: passes' IR steps use them for the helper casts they
/// insert (`hidden_states.fp32`), so that they lose to the names those helpers shadow.
///
/// The result is `(position, tier, name)`: values are emitted by position, and at equal
/// positions a class named through a cast (tier 0) comes before its source (tier 1), so the
/// converted value, which is what the rest of the function uses, keeps the plain name.
fn anchors(loaded: &Loaded, reachable: &HashSet<Id>) -> HashMap<Id, (usize, u8, String)> {
    let egraph = &loaded.egraph;
    let mut own: HashMap<Id, (usize, u8, String)> = HashMap::new();
    let mut secondary: HashMap<Id, (usize, u8, String)> = HashMap::new();
    for (pos, (id, name)) in loaded.names.iter().enumerate() {
        let (table, tier) = if name.contains('.') { (&mut secondary, 2) } else { (&mut own, 1) };
        table.entry(egraph.find(*id)).or_insert_with(|| (pos, tier, name.clone()));
    }
    let mut out = own.clone();
    let mut classes: Vec<Id> = egraph.classes().map(|c| c.id).collect();
    classes.sort();
    // View edges, both directions.
    let mut edges: HashMap<Id, Vec<Id>> = HashMap::new();
    for &c in &classes {
        for n in &egraph[c].nodes {
            if let Some(x) = view_source(egraph, n) {
                edges.entry(c).or_default().push(x);
                edges.entry(x).or_default().push(c);
            }
        }
    }
    for &c in &classes {
        if out.contains_key(&c) {
            continue;
        }
        let weight = egraph[c].data.is_weight();
        let via_cast = egraph[c]
            .nodes
            .iter()
            .filter(|n| weight || matches!(n, Tnode::Op("cast", _)))
            .filter_map(|n| view_source(egraph, n))
            .filter_map(|x| own.get(&x).map(|(p, _, n)| (*p, 0, n.clone())))
            .min();
        if let Some(a) = via_cast {
            out.insert(c, a);
        }
    }
    // Names of values no longer emitted flow to their nearest emitted, unnamed view.
    let mut sources: Vec<(usize, Id)> =
        own.iter().filter(|(c, _)| !reachable.contains(c)).map(|(c, (pos, _, _))| (*pos, *c)).collect();
    sources.sort();
    for (_, source) in sources {
        let mut frontier = vec![source];
        let mut seen: HashSet<Id> = HashSet::from([source]);
        'search: for _ in 0..3 {
            let mut next = Vec::new();
            for c in frontier {
                let mut around = edges.get(&c).cloned().unwrap_or_default();
                around.sort();
                for x in around {
                    if !seen.insert(x) || own.contains_key(&x) {
                        continue;
                    }
                    if reachable.contains(&x) && !out.contains_key(&x) {
                        let (pos, _, name) = own[&source].clone();
                        out.insert(x, (pos, 1, name));
                        break 'search;
                    }
                    next.push(x);
                }
            }
            frontier = next;
        }
    }
    for (c, a) in secondary {
        out.entry(c).or_insert(a);
    }
    out
}

/// Builds the function `name` with `original`'s signature from an extraction of `loaded`.
pub fn rebuild(original: &Function, loaded: &Loaded, extraction: &Extraction) -> Function {
    let egraph = &loaded.egraph;
    let reachable: HashSet<Id> = extraction.choice.keys().copied().collect();
    let anchored = anchors(loaded, &reachable);
    let names = anchored.iter().map(|(c, (_, _, n))| (*c, n.clone())).collect();
    let mut b = Builder {
        egraph,
        choice: &extraction.choice,
        names,
        used: HashSet::new(),
        func: Function::new(original.name.clone()),
        values: HashMap::new(),
    };
    for &i in &original.inputs {
        let v = &original.values[i];
        b.used.insert(v.name.clone());
        b.func.add_input(v.name.clone(), v.ty.clone());
    }
    let root = egraph.find(loaded.root);
    let Tnode::Op(kind, roots) = &extraction.choice[&root] else { panic!("the root is a roots node") };
    assert_eq!(*kind, ROOTS);
    // Anchored values first, in program order, so the output reads like the input.
    let mut order: Vec<(usize, u8, Id)> = anchored
        .iter()
        .filter(|(c, _)| extraction.choice.contains_key(c))
        .filter(|(c, _)| matches!(egraph[**c].data, Data::Tensor { .. } | Data::Tuple(_)))
        .map(|(c, (pos, tier, _))| (*pos, *tier, *c))
        .collect();
    order.sort();
    for (_, _, c) in order {
        let hint = b.names[&c].clone();
        b.emit(c, &hint);
    }
    let (outputs, effects) = roots.split_at(loaded.n_outputs);
    let output_values: Vec<ValueId> = outputs.iter().map(|&c| b.emit(c, "out")[0]).collect();
    // Every value an effect needs first, then the effects: all state reads precede writes.
    let mut pending = Vec::new();
    for &e in effects {
        let Tnode::Op(kind, children) = extraction.choice[&e].clone() else { panic!("effect is an op") };
        let n_ops = operand_count(kind, children.len());
        let operands: Vec<ValueId> = children[..n_ops].iter().map(|&c| b.emit(c, "effect")[0]).collect();
        pending.push((node_op(egraph, kind, &children).expect("effect op"), operands));
    }
    for (op, operands) in pending {
        b.func.push_node(op, operands, Vec::new());
    }
    for (o, v) in original.outputs.iter().zip(output_values) {
        b.func.add_output(o.name.clone(), v);
    }
    b.func
}
