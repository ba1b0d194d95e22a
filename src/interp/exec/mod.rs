//! [`ExecPlan`]: one function of a module compiled for repeated execution.
//!
//! Compiling ([`ExecPlan::compile`]) resolves, once, everything that does not depend on the
//! values of a call: each op's operand and result slots (value indices), its typing rule
//! applied to the *declared* operand types and checked against the declared result types,
//! the last use of every value, which `lut_to_dense` ops depend on weights only (their packed
//! result is then built once per weight cache), and for each `slice_update` the states whose
//! next access is a `write_state` (so the update may happen in place). Weight operands are
//! resolved on the first call and kept for later calls with the same [`WeightCache`].
//! Every intermediate tensor nothing else holds goes back, at its last use, to a
//! [`BufferPool`] the caller keeps across calls; the hot ops (pointwise `conv` on a packed
//! weight, float elementwise ops, `slice_update` copies, input copies) write their results
//! into buffers drawn from it (`ops.rs`). A state's own content is updated in place with
//! an undo list instead of being copied (`state.rs`).
//!
//! Why every kernel still sees its typing rule hold (the invariant of `eval.rs`): the IR is
//! statically typed, so each value has one declared type. Every call checks each input (and
//! state) against its declared type before anything runs, and after every op checks that
//! each result has exactly its declared shape and dtype (a comparison, no allocation). By
//! induction over the body every operand then has its declared type, and for declared
//! operand types the typing rule was checked at compile time — exactly the check `eval`
//! used to repeat on every call.
//!
//! A plan must be run with the module it was compiled from (the function is looked up by
//! its position and name, and a mismatch is an error, never a wrong result).

mod ops;
pub mod pool;
mod run;
mod state;

use std::sync::Arc;

use crate::ir::typing::infer;
use crate::ir::{Function, Module, Node, Op, Type};

use super::error::InterpError;
use super::packed::PackedWeight;
use super::tensor::Tensor;
pub use pool::{BufferPool, PoolStats};
pub(crate) use run::check_inputs;
use state::StateBinding;

/// What a value is bound to during a call.
#[derive(Clone)]
enum Slot {
    Tensor(Arc<Tensor>),
    /// Index into the call's state bindings.
    State(usize),
    /// A weight (or `lut_to_dense` of one) kept in its stored encoding.
    Packed(Arc<PackedWeight>),
}

/// How a step runs, beyond applying its op.
enum StepKind {
    /// `weight`: resolved once per weight cache.
    Weight {
        name: String,
    },
    /// `lut_to_dense` whose operands all come from `weight` ops: its packed result is
    /// built once per weight cache under this key.
    LutOfWeights {
        key: String,
    },
    /// `slice_update`: the state inputs (by value index) whose next access after this op
    /// is a `write_state` (their current content may be updated in place).
    SliceUpdate {
        write_next: Vec<usize>,
    },
    Other,
}

/// One op, resolved.
struct Step {
    /// Value indices of the operands, in order.
    operands: Vec<usize>,
    /// Operand value indices whose last use is this step (each once).
    release: Vec<usize>,
    /// Value index and declared type of each result, and whether a later step or an output
    /// uses it (otherwise it is dropped at once).
    results: Vec<(usize, Type, bool)>,
    kind: StepKind,
}

/// One declared input.
struct InputSpec {
    value: usize,
    name: String,
    ty: Type,
}

/// See the module docs.
pub struct ExecPlan {
    func_index: usize,
    func_name: String,
    values: usize,
    inputs: Vec<InputSpec>,
    steps: Vec<Step>,
    /// Weight-derived slots by step (for `Weight` and `LutOfWeights` steps), valid for the
    /// weight cache `resolved_for`.
    resolved: Vec<Option<Slot>>,
    resolved_for: Option<u64>,
}

impl ExecPlan {
    /// Compiles `func_name` of `module`; typing errors name the op as a failing call would.
    pub fn compile(module: &Module, func_name: &str) -> Result<ExecPlan, InterpError> {
        let (func_index, f) = module
            .functions
            .iter()
            .enumerate()
            .find(|(_, f)| f.name == func_name)
            .ok_or_else(|| InterpError::UnknownFunction { func: func_name.to_string() })?;
        let inputs = f
            .inputs
            .iter()
            .enumerate()
            .map(|(i, &id)| {
                let v = f.values.try_get(id).ok_or_else(|| InterpError::Input {
                    func: f.name.clone(),
                    input: format!("#{i}"),
                    message: "invalid value handle".into(),
                })?;
                Ok(InputSpec { value: id.index(), name: v.name.clone(), ty: v.ty.clone() })
            })
            .collect::<Result<Vec<_>, InterpError>>()?;
        let state_values: Vec<usize> = inputs.iter().filter(|i| i.ty.is_state()).map(|i| i.value).collect();
        let last = last_uses(f);
        let weight_type = |name: &str| module.weight(name).map(|w| w.ty.clone());

        let mut defined = vec![false; f.values.len()];
        for i in &inputs {
            if let Some(d) = defined.get_mut(i.value) {
                *d = true;
            }
        }
        let nodes: Vec<&Node> = f.nodes.iter().map(|(_, n)| n).collect();
        let mut steps = Vec::with_capacity(nodes.len());
        for (index, node) in nodes.iter().enumerate() {
            let fail = |message: String| op_error(f, index, node, message);
            let mut types = Vec::with_capacity(node.operands.len());
            for &o in &node.operands {
                let v = f.values.try_get(o).filter(|_| defined.get(o.index()) == Some(&true)).ok_or_else(|| {
                    let name = f.values.try_get(o).map_or("?", |v| v.name.as_str());
                    fail(format!("operand %{name} is not defined before this op"))
                })?;
                types.push(&v.ty);
            }
            let declared: Vec<&Type> = node
                .results
                .iter()
                .map(|&r| f.values.try_get(r).map(|v| &v.ty))
                .collect::<Option<_>>()
                .ok_or_else(|| fail("invalid result handle".into()))?;
            let inferred = infer(&node.op, &types, &weight_type)
                .map_err(|e| fail(format!("[{}] {} (declared operand types)", e.rule, e.message)))?;
            if inferred.iter().ne(declared.iter().copied()) {
                return Err(fail(format!(
                    "the operands give result types {} but {} are declared",
                    list(&inferred),
                    list(&declared.iter().map(|t| (*t).clone()).collect::<Vec<_>>())
                )));
            }
            let mut release: Vec<usize> = Vec::new();
            for &o in &node.operands {
                if last.get(o.index()) == Some(&index) && !release.contains(&o.index()) {
                    release.push(o.index());
                }
            }
            let results = node
                .results
                .iter()
                .zip(&declared)
                .map(|(&r, ty)| (r.index(), (*ty).clone(), last.get(r.index()).is_some_and(|&l| l > index)))
                .collect();
            for &r in &node.results {
                if let Some(d) = defined.get_mut(r.index()) {
                    *d = true;
                }
            }
            let kind = match &node.op {
                Op::Weight { name } => StepKind::Weight { name: name.clone() },
                Op::LutToDense => match weight_operands(&nodes[..index], node) {
                    Some(key) => StepKind::LutOfWeights { key },
                    None => StepKind::Other,
                },
                Op::SliceUpdate => StepKind::SliceUpdate { write_next: write_next(&nodes[index + 1..], &state_values) },
                _ => StepKind::Other,
            };
            let operands = node.operands.iter().map(|o| o.index()).collect();
            steps.push(Step { operands, release, results, kind });
        }
        let resolved = vec![None; steps.len()];
        Ok(ExecPlan {
            func_index,
            func_name: f.name.clone(),
            values: f.values.len(),
            inputs,
            steps,
            resolved,
            resolved_for: None,
        })
    }

    /// The name of the compiled function.
    pub fn function_name(&self) -> &str {
        &self.func_name
    }

    /// The compiled function in `module`, which must be the module compiled from.
    fn function<'m>(&self, module: &'m Module) -> Result<&'m Function, InterpError> {
        match module.functions.get(self.func_index) {
            Some(f) if f.name == self.func_name && f.nodes.len() == self.steps.len() => Ok(f),
            _ => Err(InterpError::Driver(format!("the plan of @{} was compiled from another module", self.func_name))),
        }
    }
}

/// For each value (by index), the index of the last node that uses it; outputs are never
/// released (`usize::MAX`); unused values are released right after their definition.
fn last_uses(f: &Function) -> Vec<usize> {
    let mut last = vec![0usize; f.values.len()];
    for (node_id, node) in f.nodes.iter() {
        for &r in &node.results {
            if let Some(slot) = last.get_mut(r.index()) {
                *slot = node_id.index();
            }
        }
        for &o in &node.operands {
            if let Some(slot) = last.get_mut(o.index()) {
                *slot = (*slot).max(node_id.index());
            }
        }
    }
    for o in &f.outputs {
        if let Some(slot) = last.get_mut(o.value.index()) {
            *slot = usize::MAX;
        }
    }
    last
}

/// `weights:a|b|…` when every operand of `node` is defined by a `weight` op among
/// `before` (a key for [`crate::weights::WeightCache::derived`]); `None` otherwise.
fn weight_operands(before: &[&Node], node: &Node) -> Option<String> {
    let mut names = Vec::with_capacity(node.operands.len());
    for &o in &node.operands {
        let def = before.iter().rev().find(|n| n.results.contains(&o))?;
        let Op::Weight { name } = &def.op else { return None };
        names.push(name.as_str());
    }
    Some(format!("weights:{}", names.join("|")))
}

/// The state inputs (value indices among `state_values`) whose next access among `after`
/// is a `write_state`.
fn write_next(after: &[&Node], state_values: &[usize]) -> Vec<usize> {
    let mut out = Vec::new();
    for &value in state_values {
        let next = after.iter().find(|n| {
            matches!(n.op, Op::ReadState | Op::WriteState) && n.operands.first().map(|o| o.index()) == Some(value)
        });
        if next.is_some_and(|n| matches!(n.op, Op::WriteState)) {
            out.push(value);
        }
    }
    out
}

fn op_error(f: &Function, index: usize, node: &Node, message: String) -> InterpError {
    let result =
        node.results.first().and_then(|&r| f.values.try_get(r)).map(|v| format!(" (%{})", v.name)).unwrap_or_default();
    InterpError::Op { func: f.name.clone(), index, op: node.op.name(), result, message }
}

fn list(types: &[Type]) -> String {
    let items: Vec<String> = types.iter().map(ToString::to_string).collect();
    format!("({})", items.join(", "))
}
