//! [`evaluate`]: runs one function of a module on concrete inputs.
//!
//! Per call:
//! 1. every tensor input is bound by name and must match its declared type exactly; every
//!    state input is bound by its *input name* to an entry of the caller's state map, whose
//!    tensor must match the state's declared type; unknown input names are errors;
//! 2. the body runs in SSA order. Before each op its typing rule is re-applied to the actual
//!    operand types and must reproduce the declared result types; after it, each result must
//!    have exactly its declared type (shape and dtype). So kernels can rely on their typing
//!    preconditions, and a kernel bug cannot silently propagate;
//! 3. values are dropped after their last use (weights and states are shared `Arc`s, so no
//!    big tensor is copied except where an op changes it);
//! 4. state effects happen in program order, on a private copy of the state bindings that is
//!    committed to the caller's map only if the whole call succeeds: a failing call leaves
//!    the states exactly as they were;
//! 5. a large weight the [`WeightCache`] can serve in its stored form (fp16 or LUT indices
//!    of a memory-mapped package) stays packed ([`PackedWeight`]): `lut_to_dense` of it
//!    stays packed too, pointwise `conv` and axis-0 `gather` read its rows directly, and
//!    any other op gets the dense tensor with the same values.

use std::collections::HashMap;
use std::sync::Arc;

use crate::ir::typing::infer;
use crate::ir::{Function, Module, Node, Op, Type, ValueId};
use crate::weights::WeightCache;

use super::conv::{ConvAttrs, conv_pointwise, is_pointwise};
use super::dispatch::apply;
use super::error::InterpError;
use super::index::slice_update;
use super::packed::PackedWeight;
use super::tensor::Tensor;

/// What a value is bound to during a call.
#[derive(Clone)]
enum Slot {
    Tensor(Arc<Tensor>),
    /// Index into the call's state bindings.
    State(usize),
    /// A weight (or `lut_to_dense` of one) kept in its stored encoding.
    Packed(Arc<PackedWeight>),
}

/// One state input of the call: the caller's tensor and the current content.
struct StateBinding {
    name: String,
    /// The state input's value in the function.
    value: ValueId,
    original: Arc<Tensor>,
    current: Arc<Tensor>,
}

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
    let input_err =
        |input: &str, message: String| InterpError::Input { func: f.name.clone(), input: input.to_string(), message };

    // Validate every binding before touching the caller's state map.
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
        if &t.tensor_type() != v.ty.tensor() {
            return Err(input_err(&v.name, format!("declared {} but given {}", v.ty, t.tensor_type())));
        }
        declared.push((id, v));
    }
    for name in inputs.keys() {
        match declared.iter().find(|(_, v)| &v.name == name) {
            Some((_, v)) if v.ty.is_state() => {
                return Err(input_err(name, "is a state input: bind it in the states map".into()));
            }
            Some(_) => {}
            None => return Err(input_err(name, "the function has no input of this name".into())),
        }
    }

    let mut env: Vec<Option<Slot>> = vec![None; f.values.len()];
    let mut bindings = Vec::new();
    for (id, v) in declared {
        let slot = if v.ty.is_state() {
            // Present: validated above (a missing one would surface as an undefined operand).
            let Some(t) = states.remove(&v.name).map(Arc::new) else { continue };
            bindings.push(StateBinding { name: v.name.clone(), value: id, original: t.clone(), current: t });
            Slot::State(bindings.len() - 1)
        } else {
            let Some(t) = inputs.get(&v.name) else { continue };
            Slot::Tensor(Arc::new(t.clone()))
        };
        env[id.index()] = Some(slot);
    }

    let result = run_body(module, f, env, &mut bindings, weights, observer);
    let ok = result.is_ok();
    for b in bindings {
        let keep = if ok { b.current } else { b.original };
        states.insert(b.name, Arc::try_unwrap(keep).unwrap_or_else(|shared| (*shared).clone()));
    }
    result
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

fn run_body(
    module: &Module,
    f: &Function,
    mut env: Vec<Option<Slot>>,
    bindings: &mut [StateBinding],
    weights: &WeightCache,
    observer: Option<&dyn OpObserver>,
) -> Result<HashMap<String, Tensor>, InterpError> {
    let last = last_uses(f);
    let weight_type = |name: &str| module.weight(name).map(|w| w.ty.clone());
    for (node_id, node) in f.nodes.iter() {
        let index = node_id.index();
        let fail = |message: String| op_error(f, index, node, message);

        // Bind operands and re-check the typing rule on the actual types.
        let mut args = Vec::with_capacity(node.operands.len());
        let mut types = Vec::with_capacity(node.operands.len());
        for &o in &node.operands {
            let slot = env.get(o.index()).cloned().flatten().ok_or_else(|| {
                let name = f.values.try_get(o).map_or("?", |v| v.name.as_str());
                fail(format!("operand %{name} is not defined before this op"))
            })?;
            types.push(match &slot {
                Slot::Tensor(t) => Type::Tensor(t.tensor_type()),
                Slot::State(k) => Type::State(bindings[*k].current.tensor_type()),
                Slot::Packed(p) => Type::Tensor(p.tensor_type()),
            });
            args.push(slot);
        }
        let declared: Vec<&Type> = node
            .results
            .iter()
            .map(|&r| f.values.try_get(r).map(|v| &v.ty))
            .collect::<Option<_>>()
            .ok_or_else(|| fail("invalid result handle".into()))?;
        let type_refs: Vec<&Type> = types.iter().collect();
        let inferred = infer(&node.op, &type_refs, &weight_type)
            .map_err(|e| fail(format!("[{}] {} (actual operand types)", e.rule, e.message)))?;
        if inferred.iter().ne(declared.iter().copied()) {
            return Err(fail(format!(
                "the operands give result types {} but {} are declared",
                list(&inferred),
                list(&declared.iter().map(|t| (*t).clone()).collect::<Vec<_>>())
            )));
        }

        // Release operands at their last use (so `slice_update` may own its destination).
        for &o in &node.operands {
            if last.get(o.index()) == Some(&index) {
                env[o.index()] = None;
            }
        }

        if matches!(node.op, Op::SliceUpdate) {
            release_state_copy(f, index, &args, bindings);
        }

        if let Some(obs) = observer {
            let operands: Vec<Option<&Tensor>> = args
                .iter()
                .map(|a| match a {
                    Slot::Tensor(t) => Some(t.as_ref()),
                    Slot::State(_) | Slot::Packed(_) => None,
                })
                .collect();
            obs.before(module, f, node, &operands);
        }
        let key = matches!(node.op, Op::LutToDense).then(|| weight_operands(f, index, node)).flatten();
        let results = execute(module, node, args, bindings, weights, key.as_deref()).map_err(|e| match e {
            ExecError::Op(message) => fail(message),
            ExecError::Weight(weight, source) => {
                InterpError::Weight { func: f.name.clone(), index, weight, source: Box::new(source) }
            }
        })?;

        if results.len() != node.results.len() {
            return Err(fail(format!("produced {} results, {} declared", results.len(), node.results.len())));
        }
        for ((&r, slot), want) in node.results.iter().zip(results).zip(&declared) {
            let got = match &slot {
                Slot::Tensor(t) => t.tensor_type(),
                Slot::Packed(p) => p.tensor_type(),
                Slot::State(_) => return Err(fail("produced a state".into())),
            };
            if &got != want.tensor() || want.is_state() {
                return Err(fail(format!("result {got} does not match the declared {want}")));
            }
            if last.get(r.index()).is_some_and(|&l| l > index) {
                env[r.index()] = Some(slot);
            }
        }
    }
    collect_outputs(f, env)
}

/// Lets `slice_update` at node `index` update a state's current tensor in place instead of
/// copying it: when its destination is the current content of a state binding (and not the
/// call's original, which a failing call restores), and the next access to that state is a
/// `write_state` (so nothing reads the old content again), the binding lets go of it. The
/// KV-cache pattern read → slice_update → write_state then copies the cache once per call
/// instead of once per layer.
fn release_state_copy(f: &Function, index: usize, args: &[Slot], bindings: &mut [StateBinding]) {
    let Some(Slot::Tensor(x)) = args.first() else { return };
    let Some(b) = bindings.iter_mut().find(|b| Arc::ptr_eq(&b.current, x) && !Arc::ptr_eq(&b.original, x)) else {
        return;
    };
    let next = f
        .nodes
        .iter()
        .skip(index + 1)
        .find(|(_, n)| matches!(n.op, Op::ReadState | Op::WriteState) && n.operands.first() == Some(&b.value));
    if let Some((_, n)) = next
        && matches!(n.op, Op::WriteState)
    {
        // Never read: the next access to this state overwrites it.
        b.current = b.original.clone();
    }
}

fn collect_outputs(f: &Function, mut env: Vec<Option<Slot>>) -> Result<HashMap<String, Tensor>, InterpError> {
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
    env.clear();
    let mut out = HashMap::with_capacity(found.len());
    for (name, t) in found {
        if out.contains_key(&name) {
            return Err(InterpError::Output { func: f.name.clone(), output: name, message: "returned twice".into() });
        }
        out.insert(name, Arc::try_unwrap(t).unwrap_or_else(|shared| (*shared).clone()));
    }
    Ok(out)
}

enum ExecError {
    Op(String),
    Weight(String, crate::weights::WeightError),
}

impl From<String> for ExecError {
    fn from(message: String) -> Self {
        ExecError::Op(message)
    }
}

fn tensor_arg(args: &[Slot], i: usize) -> Result<&Arc<Tensor>, ExecError> {
    match args.get(i) {
        Some(Slot::Tensor(t)) => Ok(t),
        _ => Err(ExecError::Op(format!("operand #{i} must be a tensor"))),
    }
}

/// Replaces every packed operand by its dense tensor (for ops without a packed kernel).
fn densify(args: Vec<Slot>) -> Result<Vec<Slot>, ExecError> {
    args.into_iter()
        .map(|a| match a {
            Slot::Packed(p) => Ok(Slot::Tensor(Arc::new(p.dense()?))),
            other => Ok(other),
        })
        .collect()
}

/// The slot of weight `name`: packed when the cache serves it in its stored form and it is
/// large enough (see [`PackedWeight::from_stored`]), else the materialised tensor.
fn weight_slot(module: &Module, name: &str, weights: &WeightCache) -> Result<Slot, ExecError> {
    let weight_err = |e| ExecError::Weight(name.to_string(), e);
    let declared = module.weight(name).map(|w| &w.ty);
    if let (Some(stored), Some(ty)) = (weights.stored(name).map_err(weight_err)?, declared)
        && let Some(p) = PackedWeight::from_stored(stored, ty)
    {
        return Ok(Slot::Packed(Arc::new(p)));
    }
    Ok(Slot::Tensor(weights.get(name).map_err(weight_err)?))
}

/// The packed-operand kernels; `None` when the op has none for these operands.
fn execute_packed(op: &Op, args: &[Slot]) -> Option<Result<Slot, ExecError>> {
    let tensor = |t: Tensor| Slot::Tensor(Arc::new(t));
    match (op, args) {
        (Op::LutToDense, [Slot::Packed(idx), table]) => {
            let table = match table {
                Slot::Tensor(t) => Ok(t.clone()),
                Slot::Packed(t) => t.dense().map(Arc::new),
                Slot::State(_) => return None,
            };
            Some(table.and_then(|t| idx.lut(&t)).map(|p| Slot::Packed(Arc::new(p))).map_err(ExecError::Op))
        }
        (Op::Gather { axis }, [Slot::Packed(x), Slot::Tensor(i)]) => {
            x.gather(i, *axis).map(|r| r.map(tensor).map_err(ExecError::Op))
        }
        (Op::Conv { strides, pads, dilations, groups }, [Slot::Tensor(x), Slot::Packed(w), bias @ ..]) => {
            let attrs = ConvAttrs { strides, pads, dilations, groups: *groups };
            if !is_pointwise(&w.tensor_type().shape, &attrs) {
                return None;
            }
            let bias = match bias {
                [] => None,
                [Slot::Tensor(b)] => Some(b.as_ref()),
                _ => return None,
            };
            Some(w.rows().and_then(|rows| conv_pointwise(x, &rows, bias)).map(tensor).map_err(ExecError::Op))
        }
        _ => None,
    }
}

fn state_arg(args: &[Slot], i: usize) -> Result<usize, ExecError> {
    match args.get(i) {
        Some(Slot::State(k)) => Ok(*k),
        _ => Err(ExecError::Op(format!("operand #{i} must be a state"))),
    }
}

/// `weights:a|b|…` when every operand of node `index` is defined by a `weight` op (a key
/// for [`WeightCache::derived`]); `None` otherwise.
fn weight_operands(f: &Function, index: usize, node: &Node) -> Option<String> {
    let mut names = Vec::with_capacity(node.operands.len());
    for &o in &node.operands {
        let (_, def) = f.nodes.iter().take(index).rev().find(|(_, n)| n.results.contains(&o))?;
        let Op::Weight { name } = &def.op else { return None };
        names.push(name.as_str());
    }
    Some(format!("weights:{}", names.join("|")))
}

/// Runs one node on bound operands. `derived_key`, when given, names the weights all the
/// operands come from, so that a packed result may be built once per session.
fn execute(
    module: &Module,
    node: &Node,
    args: Vec<Slot>,
    bindings: &mut [StateBinding],
    weights: &WeightCache,
    derived_key: Option<&str>,
) -> Result<Vec<Slot>, ExecError> {
    if let Op::Weight { name } = &node.op {
        return Ok(vec![weight_slot(module, name, weights)?]);
    }
    if let (Op::LutToDense, Some(key), [Slot::Packed(_), _]) = (&node.op, derived_key, args.as_slice()) {
        let made = weights.derived(key, || match execute_packed(&node.op, &args) {
            Some(Ok(Slot::Packed(p))) => Ok(p),
            Some(Err(e)) => Err(e),
            _ => Err(ExecError::Op("internal: lut_to_dense of packed indices did not stay packed".into())),
        })?;
        return Ok(vec![Slot::Packed((*made).clone())]);
    }
    if let Some(result) = execute_packed(&node.op, &args) {
        return Ok(vec![result?]);
    }
    let args = densify(args)?;
    let tensors = |v: Vec<Arc<Tensor>>| v.into_iter().map(Slot::Tensor).collect();
    execute_tensors(node, args, bindings, weights).map(tensors)
}

/// [`execute`] for operands that are tensors or states.
fn execute_tensors(
    node: &Node,
    args: Vec<Slot>,
    bindings: &mut [StateBinding],
    weights: &WeightCache,
) -> Result<Vec<Arc<Tensor>>, ExecError> {
    match &node.op {
        Op::Weight { name } => Ok(vec![weights.get(name).map_err(|e| ExecError::Weight(name.clone(), e))?]),
        Op::ReadState => Ok(vec![bindings[state_arg(&args, 0)?].current.clone()]),
        Op::WriteState => {
            let k = state_arg(&args, 0)?;
            bindings[k].current = tensor_arg(&args, 1)?.clone();
            Ok(Vec::new())
        }
        Op::SliceUpdate => {
            let mut it = args.into_iter();
            match (it.next(), it.next(), it.next()) {
                (Some(Slot::Tensor(x)), Some(Slot::Tensor(u)), Some(Slot::Tensor(b))) => {
                    Ok(vec![Arc::new(slice_update(x, &u, &b)?)])
                }
                _ => Err(ExecError::Op("expects three tensor operands".into())),
            }
        }
        op => {
            let tensors: Vec<&Tensor> =
                (0..args.len()).map(|i| tensor_arg(&args, i).map(|t| t.as_ref())).collect::<Result<_, _>>()?;
            Ok(apply(op, &tensors)?.into_iter().map(Arc::new).collect())
        }
    }
}

fn op_error(f: &Function, index: usize, node: &Node, message: String) -> InterpError {
    let result = node
        .results
        .first()
        .and_then(|&r: &ValueId| f.values.try_get(r))
        .map(|v| format!(" (%{})", v.name))
        .unwrap_or_default();
    InterpError::Op { func: f.name.clone(), index, op: node.op.name(), result, message }
}

fn list(types: &[Type]) -> String {
    let items: Vec<String> = types.iter().map(ToString::to_string).collect();
    format!("({})", items.join(", "))
}
