//! The e-class analysis: every e-class carries the IR type of the value it denotes,
//! computed by the IR's own typing rules (`ir::typing::infer`), plus whether the value is
//! *weight-derived* (computable at compile time from module weights, so it will be folded
//! into a new weight recipe and costs nothing at run time).
//!
//! Invariants (they hold for every sound rule; a violation is a bug in a rule, reported as
//! an error, never a panic):
//! - every e-node a rule adds is well typed; an ill-typed node gets [`Data::Invalid`] and
//!   [`TypeAnalysis::make`] records the first such error, naming the node and the rule that
//!   built it, in [`TypeAnalysis::error`];
//! - two merged e-classes have the same [`Data`]; a merge of different types means a rule
//!   equated values of different types: [`TypeAnalysis::merge`] keeps the first class's data
//!   and records the error (both types and the rule being applied).
//!
//! egg's `make`/`merge` cannot fail, so whoever runs rules must check [`TypeAnalysis::error`]
//! after loading and after saturation (the runner does, and stops saturating at the first
//! error) and discard the e-graph if it is set: its contents are then meaningless.

use std::cell::RefCell;
use std::collections::HashMap;

use egg::{Analysis, DidMerge, EGraph, Id};

use crate::ir::typing::infer;
use crate::ir::{DType, Op, TensorType, Type};

use super::attrs::{op_from_parts, operand_count};
use super::lang::{AttrLeaf, GET, ROOTS, Tnode};

/// The e-graph type used throughout `opt`.
pub type EG = EGraph<Tnode, TypeAnalysis>;

/// What an e-class denotes.
#[derive(Clone, Debug, PartialEq)]
pub enum Data {
    /// A tensor value. `weight` is true when it is computed from module weights only by
    /// foldable ops (see [`is_foldable_kind`]).
    Tensor { ty: TensorType, weight: bool },
    /// A state (a function input of state type).
    State(TensorType),
    /// The results of a multi-result op, selected with `get`.
    Tuple(Vec<TensorType>),
    /// A side effect (`write_state`).
    Effect,
    /// The function's root list.
    Roots,
    /// An attribute value.
    Attr(AttrLeaf),
    /// An ill-typed node's class (the error is in [`TypeAnalysis::error`]).
    Invalid,
}

impl Data {
    pub fn tensor(&self) -> Option<&TensorType> {
        match self {
            Data::Tensor { ty, .. } => Some(ty),
            _ => None,
        }
    }

    pub fn is_weight(&self) -> bool {
        matches!(self, Data::Tensor { weight: true, .. })
    }

    pub fn attr(&self) -> Option<&AttrLeaf> {
        match self {
            Data::Attr(a) => Some(a),
            _ => None,
        }
    }

    fn as_type(&self) -> Option<Type> {
        match self {
            Data::Tensor { ty, .. } => Some(Type::Tensor(ty.clone())),
            Data::State(t) => Some(Type::State(t.clone())),
            _ => None,
        }
    }
}

/// Ops that fold into weight recipes when every tensor operand is weight-derived.
pub fn is_foldable_kind(kind: &str) -> bool {
    matches!(kind, "reshape" | "transpose" | "cast" | "slice" | "concat" | "squeeze" | "expand_dims" | "neg")
}

/// The analysis: the function's input types and the module's weight types are its context.
#[derive(Clone, Debug, Default)]
pub struct TypeAnalysis {
    /// Type of function input `i` (leaf `%i`).
    pub inputs: Vec<Type>,
    /// Type of every module weight by name (leaf `@name`).
    pub weights: HashMap<String, TensorType>,
    /// The first type error met (an ill-typed node or a merge of different types), naming
    /// the node or types and the rule; `None` while every node is well typed.
    pub error: Option<String>,
}

impl TypeAnalysis {
    /// Records `message` unless an earlier error is recorded (the first one is the cause;
    /// later ones are usually its consequences).
    fn record(&mut self, message: String) {
        self.error.get_or_insert(message);
    }
}

thread_local! {
    static CONTEXT: RefCell<String> = const { RefCell::new(String::new()) };
}

/// Runs `f` with `what` recorded as the current rule, so that type errors name it.
pub fn with_context<R>(what: &str, f: impl FnOnce() -> R) -> R {
    let previous = CONTEXT.with(|c| std::mem::replace(&mut *c.borrow_mut(), what.to_string()));
    let result = f();
    CONTEXT.with(|c| *c.borrow_mut() = previous);
    result
}

fn context() -> String {
    CONTEXT.with(|c| {
        let c = c.borrow();
        if c.is_empty() { "a rebuild (congruence) step".to_string() } else { c.clone() }
    })
}

/// The float splat value held by an e-class, if it contains a splat literal.
pub fn splat_of(egraph: &EG, id: Id) -> Option<f64> {
    egraph[id].nodes.iter().find_map(|n| match n {
        Tnode::Const(c) if c.dtype.is_float() => c.splat_value(),
        _ => None,
    })
}

/// The attribute leaf of an attribute e-class.
pub fn attr_of(egraph: &EG, id: Id) -> Option<&AttrLeaf> {
    egraph[id].data.attr()
}

/// The tensor type of an e-class, if it is a tensor.
pub fn tensor_of(egraph: &EG, id: Id) -> Option<&TensorType> {
    egraph[id].data.tensor()
}

/// Rebuilds the IR op of an op e-node from its attribute children.
pub fn node_op(egraph: &EG, kind: &'static str, children: &[Id]) -> Result<Op, String> {
    let n = operand_count(kind, children.len());
    let leaves: Vec<&AttrLeaf> = children[n..]
        .iter()
        .map(|&c| attr_of(egraph, c).ok_or_else(|| format!("`{kind}`: child {c} is not an attribute")))
        .collect::<Result<_, _>>()?;
    op_from_parts(kind, &leaves)
}

fn make_op(egraph: &EG, kind: &'static str, children: &[Id]) -> Result<Data, String> {
    if kind == ROOTS {
        return Ok(Data::Roots);
    }
    if kind == GET {
        let index = attr_of(egraph, children[1]).and_then(AttrLeaf::as_int).ok_or("`get` needs an index")?;
        return match &egraph[children[0]].data {
            Data::Tuple(types) => types
                .get(index as usize)
                .map(|t| Data::Tensor { ty: t.clone(), weight: false })
                .ok_or_else(|| format!("`get {index}` of {} results", types.len())),
            other => Err(format!("`get` of a non-tuple {other:?}")),
        };
    }
    let op = node_op(egraph, kind, children)?;
    let operands = &children[..operand_count(kind, children.len())];
    let types: Vec<Type> = operands
        .iter()
        .map(|&c| egraph[c].data.as_type().ok_or_else(|| format!("`{kind}`: operand {c} is not a value")))
        .collect::<Result<_, _>>()?;
    let refs: Vec<&Type> = types.iter().collect();
    let weights = &egraph.analysis.weights;
    let results = infer(&op, &refs, &|w| weights.get(w).cloned()).map_err(|e| format!("[{}] {}", e.rule, e.message))?;
    if matches!(op, Op::WriteState) {
        return Ok(Data::Effect);
    }
    if matches!(op, Op::Split { .. }) {
        return Ok(Data::Tuple(results.iter().map(|t| t.tensor().clone()).collect()));
    }
    let [Type::Tensor(ty)] = results.as_slice() else {
        return Err(format!("`{kind}` must have exactly one tensor result"));
    };
    let all_weight = operands.iter().all(|&c| egraph[c].data.is_weight());
    let weight = match &op {
        Op::Cast { dtype } => all_weight && dtype.is_float() && types[0].tensor().dtype.is_float(),
        Op::Mul => {
            // weight × splat literal (a `scale` recipe) when the result keeps the weight's type.
            let (a, b) = (operands[0], operands[1]);
            let scaled = |w: Id, c: Id| {
                egraph[w].data.is_weight() && splat_of(egraph, c).is_some() && tensor_of(egraph, w) == Some(ty)
            };
            scaled(a, b) || scaled(b, a)
        }
        _ => all_weight && is_foldable_kind(kind),
    };
    Ok(Data::Tensor { ty: ty.clone(), weight })
}

impl Analysis<Tnode> for TypeAnalysis {
    type Data = Data;

    fn make(egraph: &mut EG, enode: &Tnode, _id: Id) -> Data {
        let result = match enode {
            Tnode::Input(i) => match egraph.analysis.inputs.get(*i) {
                Some(Type::Tensor(t)) => Ok(Data::Tensor { ty: t.clone(), weight: false }),
                Some(Type::State(t)) => Ok(Data::State(t.clone())),
                None => Err(format!("input %{i} does not exist")),
            },
            Tnode::Weight(w) => match egraph.analysis.weights.get(w) {
                Some(t) => Ok(Data::Tensor { ty: t.clone(), weight: true }),
                None => Err(format!("weight @{w} is not declared")),
            },
            Tnode::Const(c) => {
                let op = Op::Const { ty: c.ty(), data: c.data() };
                infer(&op, &[], &|_| None)
                    .map(|_| Data::Tensor { ty: c.ty(), weight: false })
                    .map_err(|e| format!("[{}] {}", e.rule, e.message))
            }
            Tnode::Attr(a) => Ok(Data::Attr(a.clone())),
            Tnode::Op(kind, children) => make_op(egraph, kind, children),
        };
        match result {
            Ok(d) => d,
            Err(msg) => {
                egraph.analysis.record(format!("ill-typed e-node `{enode}` built by {}: {msg}", context()));
                Data::Invalid
            }
        }
    }

    fn merge(&mut self, a: &mut Data, b: Data) -> DidMerge {
        match (&mut *a, &b) {
            (Data::Tensor { ty: ta, weight: wa }, Data::Tensor { ty: tb, weight: wb }) if ta == tb => {
                let changed_a = !*wa && *wb;
                let changed_b = *wa && !*wb;
                *wa |= *wb;
                DidMerge(changed_a, changed_b)
            }
            (x, y) if *x == *y => DidMerge(false, false),
            _ => {
                self.record(format!(
                    "merged e-classes of different types ({a:?} vs {b:?}) while applying {}; the rule is unsound",
                    context()
                ));
                DidMerge(false, false)
            }
        }
    }
}

/// Convenience: the dtype of a tensor e-class.
pub fn dtype_of(egraph: &EG, id: Id) -> Option<DType> {
    tensor_of(egraph, id).map(|t| t.dtype)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::TensorType;

    fn graph() -> (EG, Id, Id) {
        let analysis = TypeAnalysis {
            inputs: vec![
                Type::Tensor(TensorType::new(DType::F16, vec![2, 3])),
                Type::Tensor(TensorType::new(DType::F16, vec![3, 2])),
            ],
            weights: HashMap::new(),
            error: None,
        };
        let mut eg = EG::new(analysis);
        let a = eg.add(Tnode::Input(0));
        let b = eg.add(Tnode::Input(1));
        (eg, a, b)
    }

    #[test]
    fn classes_carry_ir_types() {
        let (mut eg, a, _) = graph();
        let perm = eg.add(Tnode::Attr(AttrLeaf::Ints(vec![1, 0])));
        let t = eg.add(Tnode::op("transpose", vec![a, perm]));
        assert_eq!(eg[t].data.tensor().unwrap().to_string(), "fp16[3, 2]");
    }

    #[test]
    fn merging_different_types_is_recorded() {
        let (mut eg, a, b) = graph();
        with_context("rule `bogus`", || {
            eg.union(a, b);
            eg.rebuild();
        });
        let err = eg.analysis.error.as_deref().expect("recorded");
        assert!(err.starts_with("merged e-classes of different types") && err.contains("rule `bogus`"), "{err}");
    }

    #[test]
    fn ill_typed_nodes_are_recorded_and_the_first_error_is_kept() {
        let (mut eg, a, b) = graph();
        let bad = with_context("rule `bad-add`", || eg.add(Tnode::op("add", vec![a, b])));
        assert_eq!(eg[bad].data, Data::Invalid);
        with_context("rule `second`", || eg.add(Tnode::op("sub", vec![a, b])));
        let err = eg.analysis.error.as_deref().expect("recorded");
        assert!(err.starts_with("ill-typed e-node `add` built by rule `bad-add`"), "{err}");
    }
}
