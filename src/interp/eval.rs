//! [`evaluate`]: runs one function of a module on concrete inputs, by compiling it into an
//! [`ExecPlan`] and running that once (a [`Session`](super::Session) keeps its plans and
//! their buffers across calls instead).
//!
//! Per call:
//! 1. every tensor input is bound by name and must match its declared type exactly; every
//!    state input is bound by its *input name* to an entry of the caller's state map, whose
//!    tensor must match the state's declared type; unknown input names are errors;
//! 2. the body runs in SSA order. Before each op its typing rule holds for the actual
//!    operand types and reproduces the declared result types (checked once, when the plan is
//!    compiled, on the declared types — which rule 1 and the result check make the actual
//!    ones; see `exec`); after it, each result must have exactly its declared type (shape
//!    and dtype). So kernels can rely on their typing preconditions, and a kernel bug cannot
//!    silently propagate;
//! 3. values are dropped after their last use, their buffers going back to the plan's
//!    [`BufferPool`](super::exec::BufferPool) (weights and states are shared `Arc`s, so no
//!    big tensor is copied except where an op changes it);
//! 4. state effects happen in program order, on a private copy of the state bindings that is
//!    committed to the caller's map only if the whole call succeeds: a failing call leaves
//!    the states exactly as they were;
//! 5. a large weight the [`WeightCache`] can serve in its stored form (fp16 or LUT indices
//!    of a memory-mapped package) stays packed ([`PackedWeight`](super::packed::PackedWeight)): `lut_to_dense` of it
//!    stays packed too, pointwise `conv` and axis-0 `gather` read its rows directly, and
//!    any other op gets the dense tensor with the same values.

use std::collections::HashMap;

use crate::ir::{Function, Module, Node};
use crate::weights::WeightCache;

use super::error::InterpError;
use super::exec::{BufferPool, ExecPlan, check_inputs};
use super::tensor::Tensor;

/// Sees every op of a call just before it runs, with its tensor operands (`None` for a
/// state operand). Calibration uses it to record the inputs of matmuls; an observer must not
/// assume anything about call order across functions.
pub trait OpObserver: Send + Sync {
    fn before(&self, module: &Module, f: &Function, node: &Node, operands: &[Option<&Tensor>]);
}

/// Evaluates `func_name` of `module`. See the module docs for binding and checking rules.
/// Returns the outputs by output name.
pub fn evaluate(
    module: &Module,
    func_name: &str,
    inputs: &HashMap<String, Tensor>,
    states: &mut HashMap<String, Tensor>,
    weights: &WeightCache,
) -> Result<HashMap<String, Tensor>, InterpError> {
    evaluate_observed(module, func_name, inputs, states, weights, None)
}

/// [`evaluate`] with an [`OpObserver`] called before each op.
pub fn evaluate_observed(
    module: &Module,
    func_name: &str,
    inputs: &HashMap<String, Tensor>,
    states: &mut HashMap<String, Tensor>,
    weights: &WeightCache,
    observer: Option<&dyn OpObserver>,
) -> Result<HashMap<String, Tensor>, InterpError> {
    let f = module.function(func_name).ok_or_else(|| InterpError::UnknownFunction { func: func_name.to_string() })?;
    // Bad bindings are reported before typing errors of the body, as always.
    check_inputs(f, inputs, states)?;
    let mut plan = ExecPlan::compile(module, func_name)?;
    plan.run(module, inputs, states, weights, observer, &mut BufferPool::new())
}
