//! [`ExecPlan::run`]: one call of a compiled function (binding and checking rules in
//! `eval.rs`'s module docs; why the typing holds in `exec`'s).

use std::collections::HashMap;
use std::sync::Arc;

use crate::ir::{Function, Module, Node, Type};
use crate::weights::WeightCache;

use super::super::error::InterpError;
use super::super::eval::OpObserver;
use super::super::tensor::Tensor;
use super::ops::{ExecError, derived_lut, execute, weight_slot};
use super::pool::BufferPool;
use super::state::{StateBinding, release_state_copy, update_original};
use super::{ExecPlan, Slot, StepKind, op_error};

/// Checks every binding of a call of `f` against its declared input, before anything runs:
/// each tensor input and state must be present with exactly its declared type, and no
/// unknown or misplaced name may be given.
pub(crate) fn check_inputs(
    f: &Function,
    inputs: &HashMap<String, Tensor>,
    states: &HashMap<String, Tensor>,
) -> Result<(), InterpError> {
    let input_err =
        |input: &str, message: String| InterpError::Input { func: f.name.clone(), input: input.to_string(), message };
    let mut declared = Vec::with_capacity(f.inputs.len());
    for (i, &id) in f.inputs.iter().enumerate() {
        let v = f.values.try_get(id).ok_or_else(|| input_err(&format!("#{i}"), "invalid value handle".into()))?;
        let (map_name, given) = match &v.ty {
            Type::Tensor(_) => ("inputs", inputs.get(&v.name)),
            Type::State(_) => ("states", states.get(&v.name)),
        };
        let Some(t) = given else {
            return Err(input_err(&v.name, format!("not bound (expected {} in the {map_name} map)", v.ty)));
        };
        if !has_type(t, v.ty.tensor()) {
            return Err(input_err(&v.name, format!("declared {} but given {}", v.ty, t.tensor_type())));
        }
        declared.push(v);
    }
    for name in inputs.keys() {
        match declared.iter().find(|v| &v.name == name) {
            Some(v) if v.ty.is_state() => {
                return Err(input_err(name, "is a state input: bind it in the states map".into()));
            }
            Some(_) => {}
            None => return Err(input_err(name, "the function has no input of this name".into())),
        }
    }
    Ok(())
}

/// Whether `t` has exactly type `ty` (without building a `TensorType`).
fn has_type(t: &Tensor, ty: &crate::ir::TensorType) -> bool {
    t.dtype() == ty.dtype && t.shape() == ty.shape.as_slice()
}

impl ExecPlan {
    /// Runs the compiled function once: inputs and states bound by name (checked against
    /// their declared types first), intermediates drawn from and returned to `pool`.
    /// Returns the outputs by name. A failing call leaves `states` exactly as they were.
    pub fn run(
        &mut self,
        module: &Module,
        inputs: &HashMap<String, Tensor>,
        states: &mut HashMap<String, Tensor>,
        weights: &WeightCache,
        observer: Option<&dyn OpObserver>,
        pool: &mut BufferPool,
    ) -> Result<HashMap<String, Tensor>, InterpError> {
        let f = self.function(module)?;
        check_inputs(f, inputs, states)?;
        if self.resolved_for != Some(weights.id()) {
            self.resolved.iter_mut().for_each(|r| *r = None);
            self.resolved_for = Some(weights.id());
        }

        let mut env: Vec<Option<Slot>> = vec![None; self.values];
        let mut bindings = Vec::new();
        for input in &self.inputs {
            let slot = if input.ty.is_state() {
                // Present: checked above.
                let Some(t) = states.remove(&input.name).map(Arc::new) else { continue };
                bindings.push(StateBinding::new(input.name.clone(), input.value, t));
                Slot::State(bindings.len() - 1)
            } else {
                let Some(t) = inputs.get(&input.name) else { continue };
                Slot::Tensor(Arc::new(super::ops::pooled_copy(t, pool).unwrap_or_else(|| t.clone())))
            };
            env[input.value] = Some(slot);
        }

        let result = self.run_body(module, f, env, &mut bindings, weights, observer, pool);
        let ok = result.is_ok();
        for b in bindings {
            let name = b.name.clone();
            states.insert(name, b.finish(ok, pool));
        }
        result
    }

    #[allow(clippy::too_many_arguments)]
    fn run_body(
        &mut self,
        module: &Module,
        f: &Function,
        mut env: Vec<Option<Slot>>,
        bindings: &mut [StateBinding],
        weights: &WeightCache,
        observer: Option<&dyn OpObserver>,
        pool: &mut BufferPool,
    ) -> Result<HashMap<String, Tensor>, InterpError> {
        for (index, ((_, node), step)) in f.nodes.iter().zip(&self.steps).enumerate() {
            let fail = |message: String| op_error(f, index, node, message);
            let mut args = Vec::with_capacity(step.operands.len());
            for (&o, id) in step.operands.iter().zip(&node.operands) {
                // Defined at compile time and kept until its last use; only an input bound
                // twice under one name can be missing here.
                let slot = env[o].clone().ok_or_else(|| {
                    let name = f.values.try_get(*id).map_or("?", |v| v.name.as_str());
                    fail(format!("operand %{name} is not defined before this op"))
                })?;
                args.push(slot);
            }
            // Release operands at their last use (so `slice_update` may own its destination).
            for &o in &step.release {
                env[o] = None;
            }
            if let StepKind::SliceUpdate { write_next } = &step.kind {
                release_state_copy(&args, bindings, write_next);
            }
            if let Some(obs) = observer {
                observe(obs, module, f, node, &args);
            }

            let results = match &step.kind {
                StepKind::Weight { name } => match &self.resolved[index] {
                    Some(slot) => Ok(vec![slot.clone()]),
                    None => weight_slot(module, name, weights).map(|slot| {
                        self.resolved[index] = Some(slot.clone());
                        vec![slot]
                    }),
                },
                StepKind::LutOfWeights { key } => match &self.resolved[index] {
                    Some(slot) => Ok(vec![slot.clone()]),
                    None => match derived_lut(&args, weights, key) {
                        Some(made) => made.map(|slot| {
                            self.resolved[index] = Some(slot.clone());
                            vec![slot]
                        }),
                        None => execute(&node.op, args, bindings, pool),
                    },
                },
                StepKind::SliceUpdate { write_next } => match update_original(&mut args, bindings, write_next) {
                    Some(result) => result.map(|slot| vec![slot]).map_err(ExecError::Op),
                    None => execute(&node.op, args, bindings, pool),
                },
                StepKind::Other => execute(&node.op, args, bindings, pool),
            }
            .map_err(|e| match e {
                ExecError::Op(message) => fail(message),
                ExecError::Weight(weight, source) => {
                    InterpError::Weight { func: f.name.clone(), index, weight, source: Box::new(source) }
                }
            })?;

            if results.len() != step.results.len() {
                return Err(fail(format!("produced {} results, {} declared", results.len(), step.results.len())));
            }
            for (slot, (value, want, keep)) in results.into_iter().zip(&step.results) {
                let fits = match (&slot, want) {
                    (Slot::Tensor(t), Type::Tensor(ty)) => has_type(t, ty),
                    (Slot::Packed(p), Type::Tensor(ty)) => &p.tensor_type() == ty,
                    (Slot::State(_), _) => return Err(fail("produced a state".into())),
                    (_, Type::State(_)) => false,
                };
                if !fits {
                    let got = match &slot {
                        Slot::Tensor(t) => t.tensor_type(),
                        Slot::Packed(p) => p.tensor_type(),
                        Slot::State(_) => unreachable!("rejected above"),
                    };
                    return Err(fail(format!("result {got} does not match the declared {want}")));
                }
                if *keep {
                    env[*value] = Some(slot);
                } else if let Slot::Tensor(t) = slot {
                    pool.recycle(t);
                }
            }
        }
        collect_outputs(f, env, pool)
    }
}

/// `t` copied onto a pooled buffer (the call owns its inputs, and returns their buffers to
/// the pool at their last use); the same elements and memory layout.
fn observe(obs: &dyn OpObserver, module: &Module, f: &Function, node: &Node, args: &[Slot]) {
    let operands: Vec<Option<&Tensor>> = args
        .iter()
        .map(|a| match a {
            Slot::Tensor(t) => Some(t.as_ref()),
            Slot::State(_) | Slot::Packed(_) => None,
        })
        .collect();
    obs.before(module, f, node, &operands);
}

fn collect_outputs(
    f: &Function,
    mut env: Vec<Option<Slot>>,
    pool: &mut BufferPool,
) -> Result<HashMap<String, Tensor>, InterpError> {
    let mut found = Vec::with_capacity(f.outputs.len());
    for o in &f.outputs {
        let err = |message: &str| InterpError::Output {
            func: f.name.clone(),
            output: o.name.clone(),
            message: message.to_string(),
        };
        match env.get(o.value.index()).cloned().flatten() {
            Some(Slot::Tensor(t)) => {
                if Type::Tensor(t.tensor_type()) != o.ty {
                    return Err(err(&format!("declared {} but the value is {}", o.ty, t.tensor_type())));
                }
                found.push((o.name.clone(), t));
            }
            Some(Slot::Packed(p)) => found.push((o.name.clone(), Arc::new(p.dense().map_err(|m| err(&m))?))),
            Some(Slot::State(_)) => return Err(err("a state cannot be returned")),
            None => return Err(err("returns an undefined value")),
        }
    }
    for slot in env.drain(..).flatten() {
        if let Slot::Tensor(t) = slot {
            pool.recycle(t);
        }
    }
    let mut out = HashMap::with_capacity(found.len());
    for (name, t) in found {
        if out.contains_key(&name) {
            return Err(InterpError::Output { func: f.name.clone(), output: name, message: "returned twice".into() });
        }
        out.insert(name, Arc::try_unwrap(t).unwrap_or_else(|shared| (*shared).clone()));
    }
    Ok(out)
}
